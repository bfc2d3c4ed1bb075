"""Snapshots to JSON and back, for the server's API and the clients that attach to it.

`encode` is `report.snapshot_json` (the `status --json` contract) plus the keys a
viewer needs to draw the same TUI (boot history, ports, the ArgoCD summary, ...): it
only ever adds keys to that document. `decode` is its inverse for everything the
document carries, and it trusts nothing: every field's type is checked, and a bad
document is one `SnapshotFormatError` naming the field.

Times in the document are whole seconds (ISO 8601, UTC), so `encode(decode(doc)) ==
doc` holds for every document `encode` makes, while `decode(encode(snap))` equals
`snap` up to the sub-second parts of its times.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from megatui import report
from megatui.model import (
    SOURCE_TART,
    VM,
    Application,
    ArgoSummary,
    DockerStatus,
    Event,
    KindCluster,
    KindNodeContainer,
    KubeEvent,
    Node,
    Phase,
    PhaseSpan,
    Pod,
    Snapshot,
    SourceStatus,
    StatusKind,
    TartState,
    Worker,
)

T = TypeVar("T")


class SnapshotFormatError(ValueError):
    """A document that is not a snapshot; the message names the bad field."""


# --- encoding ------------------------------------------------------------------------


def encode(snap: Snapshot, retry_in: Callable[[str], float | None] | None = None) -> dict[str, Any]:
    """The `status --json` document of `snap`, with the viewer's extra keys."""
    doc = report.snapshot_json(snap)
    doc["kube_context"] = snap.kube_context
    doc["readonly"] = snap.readonly
    doc["argocd"] = _argo_json(snap.argocd)
    doc["readonly_reason"] = snap.readonly_reason
    for vm, out in zip(snap.vms, doc["vms"], strict=True):
        out["port"] = vm.port
        out["backend"] = vm.backend
        out["worker"] = vm.worker
        out["restart_policy"] = vm.restart_policy
        out["restart_count"] = vm.restart_count
        out["stale"] = vm.stale
        out["history"] = [
            {"phase": str(s.phase), "started": report.iso(s.started), "ended": report.iso(s.ended)}
            for s in vm.history
        ]
    for node, out in zip(snap.nodes, doc["nodes"], strict=True):
        out["internal_ip"] = node.internal_ip
    for pod, out in zip(snap.pods, doc["pods"], strict=True):
        out["component"] = pod.component
        out["running_ready"] = pod.running_ready
    for app, out in zip(snap.applications, doc["applications"], strict=True):
        out["revision"] = app.revision
    for name, out in doc["sources"].items():
        out["detail"] = snap.sources[name].detail
        wait = retry_in(name) if retry_in is not None else None
        out["retry_in_seconds"] = None if wait is None else round(wait, 1)
    return doc


# Keys spelt out as in report.py's *_json (a wire contract, not asdict): alike in shape.
def _argo_json(argo: ArgoSummary | None) -> dict[str, Any] | None:
    if argo is None:
        return None
    return {
        "standard_install": argo.standard_install,
        "ready": argo.ready,
        "total": argo.total,
        "missing": list(argo.missing),
    }


def encode_kube_event(ev: KubeEvent) -> dict[str, Any]:
    """A pod's Kubernetes Event, for GET /api/v1/pods/{ns}/{name}/events."""
    return _write(ev, _KUBE_EVENT)


def encode_event(event: Event) -> dict[str, Any]:
    return _write(event, _EVENT)


# --- decoding ------------------------------------------------------------------------


class _Reader:
    """Typed access to one JSON object, with the path of each field for errors."""

    def __init__(self, value: object, where: str) -> None:
        if not isinstance(value, dict):
            raise SnapshotFormatError(f"{where or 'document'}: expected an object")
        self.data: Mapping[str, object] = value
        self.where = where

    def _path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def get(self, key: str, kind: type[T], *, optional: bool = False) -> T:
        if key not in self.data:
            if optional:
                return None  # type: ignore[return-value]
            raise SnapshotFormatError(f"{self._path(key)}: missing")
        value = self.data[key]
        if value is None and optional:
            return None  # type: ignore[return-value]
        # bool is an int in Python; a number field must not accept true/false.
        ok = isinstance(value, kind) and not (kind is not bool and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)  # type: ignore[return-value]
        if not ok:
            raise SnapshotFormatError(f"{self._path(key)}: expected {kind.__name__}")
        return value  # type: ignore[return-value]

    def text(self, key: str) -> str:
        return self.get(key, str)

    def opt_text(self, key: str) -> str | None:
        value: str | None = self.get(key, str, optional=True)
        return value

    def opt_int(self, key: str) -> int | None:
        """An integer that files written before it existed do not have."""
        value: int | None = self.get(key, int, optional=True)
        return value

    def time(self, key: str) -> float:
        value = self.opt_time(key)
        if value is None:
            raise SnapshotFormatError(f"{self._path(key)}: missing")
        return value

    def opt_time(self, key: str) -> float | None:
        text = self.opt_text(key)
        if text is None:
            return None
        try:
            stamp = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise SnapshotFormatError(f"{self._path(key)}: not an ISO 8601 UTC time") from None
        return stamp.timestamp()

    def items(self, key: str, *, optional: bool = False) -> list[_Reader]:
        values = self.get(key, list, optional=optional)
        if values is None:
            return []
        return [_Reader(v, f"{self._path(key)}[{i}]") for i, v in enumerate(values)]

    def enum(self, key: str, kind: Callable[[str], T]) -> T:
        text = self.text(key)
        try:
            return kind(text)
        except ValueError:
            raise SnapshotFormatError(f"{self._path(key)}: unknown value {text!r}") from None


@dataclass(frozen=True, slots=True)
class _Kind:
    """How one field of a flat record is read from (and written to) the document."""

    read: Callable[[_Reader, str], Any]
    write: Callable[[Any], Any] = lambda value: value


TEXT = _Kind(_Reader.text)
OPT_TEXT = _Kind(_Reader.opt_text)
#: Text that documents written before the field existed do not have.
TEXT_OR_EMPTY = _Kind(lambda r, key: r.opt_text(key) or "")
INT = _Kind(lambda r, key: r.get(key, int))
OPT_INT = _Kind(_Reader.opt_int)
BOOL = _Kind(lambda r, key: r.get(key, bool))
#: A flag that documents written before it existed do not have.
FLAG = _Kind(lambda r, key: bool(r.get(key, bool, optional=True)))
TIME = _Kind(_Reader.time, report.iso)
OPT_TIME = _Kind(_Reader.opt_time, report.iso)

# The flat records: dataclass field -> kind, in the document's key order. The keys of
# workers, nodes, pods and applications are `report`'s (the `status --json` contract,
# which writes them) plus the viewer's keys `encode` adds.
_EVENT = {"at": TIME, "kind": TEXT, "subject": TEXT, "message": TEXT, "severity": TEXT}
_KUBE_EVENT = {
    "namespace": TEXT,
    "name": TEXT,
    "type": TEXT,
    "reason": TEXT,
    "message": TEXT,
    "object_kind": TEXT,
    "object_name": TEXT,
    "object_uid": TEXT,
    "field_path": TEXT,
    "count": INT,
    "first": OPT_TIME,
    "last": OPT_TIME,
    "source": TEXT,
}
_WORKER = {
    "name": TEXT,
    "online": BOOL,
    "last_seen": OPT_TIME,
    "scheduling_paused": BOOL,
    "vms_running": INT,
    "vm_capacity": INT,
    "cpu_used": INT,
    "cpu_total": INT,
    "memory_used_mib": INT,
    "memory_total_mib": INT,
    "failure": OPT_TEXT,
}
_NODE = {
    "name": TEXT,
    "status": TEXT,
    "roles": TEXT,
    "version": TEXT,
    "created": OPT_TIME,
    "container_state": OPT_TEXT,
    "internal_ip": OPT_TEXT,
    "container_exit_code": OPT_INT,
    "container_restarts": OPT_INT,
}
_POD = {
    "name": TEXT,
    "namespace": TEXT,
    "ready": TEXT,
    "status": TEXT,
    "restarts": TEXT,
    "node": TEXT,
    "created": OPT_TIME,
    "component": OPT_TEXT,
    "running_ready": FLAG,
    "why": OPT_TEXT,
}
_APP = {
    "name": TEXT,
    "namespace": TEXT,
    "project": TEXT,
    "sync": TEXT,
    "health": TEXT,
    "operation": TEXT,
    "message": TEXT,
    "revision": TEXT_OR_EMPTY,
}


def _read(r: _Reader, table: Mapping[str, _Kind]) -> dict[str, Any]:
    return {key: kind.read(r, key) for key, kind in table.items()}


def _write(record: object, table: Mapping[str, _Kind]) -> dict[str, Any]:
    return {key: kind.write(getattr(record, key)) for key, kind in table.items()}


def decode(doc: object) -> tuple[Snapshot, dict[str, float]]:
    """The snapshot in `doc`, and each failing source's seconds until its next retry.
    Raises SnapshotFormatError."""
    r = _Reader(doc, "")
    sources: dict[str, SourceStatus] = {}
    retry: dict[str, float] = {}
    for name, value in r.get("sources", dict).items():
        s = _Reader(value, f"sources.{name}")
        kind = s.opt_text("kind")
        sources[name] = SourceStatus(
            name,
            ok=s.get("ok", bool),
            error=s.opt_text("error"),
            note=s.opt_text("note"),
            updated_at=s.opt_time("updated_at"),
            kind=StatusKind.OK if kind is None else s.enum("kind", StatusKind),
            detail=s.opt_text("detail"),
        )
        wait = s.get("retry_in_seconds", float, optional=True)
        if wait is not None:
            retry[name] = wait
    snap = Snapshot(
        generated_at=r.time("generated_at"),
        host=r.text("host"),
        sources=sources,
        vms=tuple(_vm(v) for v in r.items("vms")),
        nodes=tuple(_node(n) for n in r.items("nodes")),
        pods=tuple(_pod(p) for p in r.items("pods")),
        applications=tuple(_app(a) for a in r.items("applications")),
        docker=_docker(r.get("docker", dict, optional=True)),
        argocd=_argo(r.get("argocd", dict, optional=True)),
        kube_context=r.opt_text("kube_context"),
        readonly=bool(r.get("readonly", bool, optional=True)),
        readonly_reason=r.opt_text("readonly_reason"),
        workers=tuple(_worker(w) for w in r.items("workers", optional=True)),
        # Documents from before it was there listed VMs with tart.
        vm_source=r.opt_text("vm_source") or SOURCE_TART,
    )
    return snap, retry


def decode_event(doc: object) -> Event:
    return Event(**_read(_Reader(doc, "event"), _EVENT))


def decode_kube_event(doc: object, where: str = "event") -> KubeEvent:
    return KubeEvent(**_read(_Reader(doc, where), _KUBE_EVENT))


def _worker(r: _Reader) -> Worker:
    return Worker(**_read(r, _WORKER))


def _vm(r: _Reader) -> VM:
    eta = r.get("eta_seconds", float, optional=True)
    port = r.get("port", int, optional=True)
    return VM(
        name=r.text("name"),
        state=r.enum("state", TartState),
        phase=r.enum("phase", Phase),
        ip=r.opt_text("ip"),
        progress=r.get("progress", float),
        phase_since=r.time("phase_since"),
        eta_seconds=eta,
        error=r.opt_text("error"),
        hint=r.opt_text("hint"),
        history=tuple(
            PhaseSpan(h.enum("phase", Phase), h.time("started"), h.opt_time("ended"))
            for h in r.items("history", optional=True)
        ),
        port=22 if port is None else port,
        backend=r.opt_text("backend") or "tart",
        worker=r.opt_text("worker"),
        restart_policy=r.opt_text("restart_policy"),
        restart_count=r.get("restart_count", int, optional=True) or 0,
        stale=bool(r.get("stale", bool, optional=True)),
    )


def _node(r: _Reader) -> Node:
    return Node(**_read(r, _NODE))


def _pod(r: _Reader) -> Pod:
    return Pod(**_read(r, _POD))


def _app(r: _Reader) -> Application:
    return Application(**_read(r, _APP))


def _docker(value: dict[str, Any] | None) -> DockerStatus | None:
    if value is None:
        return None
    r = _Reader(value, "docker")
    clusters = []
    for c in r.items("clusters"):
        name = c.text("name")
        nodes = tuple(
            KindNodeContainer(
                n.text("name"),
                n.text("role"),
                n.text("state"),
                name,
                exit_code=n.opt_int("exit_code"),
                restart_count=n.opt_int("restart_count"),
            )
            for n in c.items("nodes")
        )
        clusters.append(KindCluster(name, nodes))
    return DockerStatus(
        reachable=r.get("reachable", bool),
        error=r.opt_text("error"),
        server_version=r.opt_text("server_version"),
        kind_network=r.get("kind_network", bool),
        clusters=tuple(clusters),
    )


def _argo(value: dict[str, Any] | None) -> ArgoSummary | None:
    if value is None:
        return None
    r = _Reader(value, "argocd")
    missing = r.get("missing", list)
    if not all(isinstance(m, str) for m in missing):
        raise SnapshotFormatError("argocd.missing: expected a list of strings")
    return ArgoSummary(
        standard_install=r.get("standard_install", bool),
        ready=r.get("ready", int),
        total=r.get("total", int),
        missing=tuple(missing),
    )
