"""The lab's fake Kubernetes API server (aiohttp), faithful to the wire protocol.

What it reproduces, because clients depend on it (docs/facts/kubernetes.md §2-§5, §10):

* discovery (`/api`, `/apis`, `/api/v1`, `/apis/argoproj.io/v1alpha1`, `/version`)
  so that kubectl works against it;
* lists with `Content-Length` and `metadata.resourceVersion`, items without
  `kind`/`apiVersion`;
* watches: chunked, one newline-terminated JSON event per chunk, flushed each
  event; one global increasing resourceVersion with a bounded history ring; an
  expired RV gets HTTP 200 plus a single `ERROR` event (Status code 410); BOOKMARKs
  with `allowWatchBookmarks`; `timeoutSeconds` ends the stream cleanly;
* server-side printing (`Accept: ...;as=Table`), which is what `kubectl get`
  shows: an independent transcription of the apiserver's printPod/printNode and of
  the Application CRD's printer columns;
* `Status` bodies for every error.

Fault hooks for tests live on `FakeKubeAPI`: cut watch streams, hang, freeze (a
stopped process: nothing answered, open watches fall silent), silence the watches
only, expire the history, require credentials, forbid resources, inject errors,
serve raw list bodies and watch lines (garbage), drop the CRD.
The store and the server must be used from the event loop that runs them.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import random
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON = dict[str, Any]

#: What `/version` reports; Kind's node image for Kubernetes 1.33.
SERVER_VERSION: JSON = {
    "major": "1",
    "minor": "33",
    "emulationMajor": "1",
    "emulationMinor": "33",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "32",
    "gitVersion": "v1.33.1",
    "gitCommit": "8adc0f041b8e7ad1d30e29cc59c6ae7a15e19828",
    "gitTreeState": "clean",
    "buildDate": "2025-05-15T08:19:08Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_READ_VERBS = ["get", "list", "watch"]
_ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_version(self) -> str:
        return self.api_version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    def discovery(self) -> JSON:
        entry: JSON = {
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": _ALL_VERBS,
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        if self.group == "" and self.plural != "namespaces":
            entry["storageVersionHash"] = ""
        return entry


NAMESPACES = ResourceType("", "v1", "namespaces", "namespace", "Namespace", False, ("ns",))
NODES = ResourceType("", "v1", "nodes", "node", "Node", False, ("no",))
PODS = ResourceType("", "v1", "pods", "pod", "Pod", True, ("po",), ("all",))
APPLICATIONS = ResourceType(
    "argoproj.io", "v1alpha1", "applications", "application", "Application", True, ("app", "apps")
)
EVENTS = ResourceType("", "v1", "events", "event", "Event", True, ("ev",))
RESOURCES: tuple[ResourceType, ...] = (NAMESPACES, NODES, PODS, APPLICATIONS, EVENTS)


# --------------------------------------------------------------------------- time


def rfc3339(epoch: float) -> str:
    """Kubernetes' metav1.Time format: whole seconds, UTC, `Z`."""
    return datetime.datetime.fromtimestamp(int(epoch), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


# A second transcription on purpose: the lab does not import the rules it tests.
def human_duration(seconds: float) -> str:
    """k8s.io/apimachinery/pkg/util/duration.HumanDuration, as kubectl's AGE shows it."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def _since(value: Any, now: float) -> str:
    ts = parse_time(value)
    return "<unknown>" if ts is None else human_duration(now - ts)


# --------------------------------------------------------------------------- selectors


def _split_top(expr: str) -> list[str]:
    """Split on commas outside parentheses (`a in (x,y),b=c`)."""
    parts: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in expr:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


Predicate = Callable[[JSON], bool]


@dataclass(frozen=True, slots=True)
class _Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: frozenset[str] = frozenset()

    def holds(self, value: str | None) -> bool:
        if self.op == "=":
            return value is not None and value in self.values
        if self.op == "!=":
            return value is None or value not in self.values
        if self.op == "in":
            return value in self.values
        if self.op == "notin":
            return value not in self.values
        if self.op == "exists":
            return value is not None
        return value is None


def _requirements(expr: str, *, labels: bool) -> list[_Requirement]:
    reqs: list[_Requirement] = []
    for part in _split_top(expr):
        words = part.split()
        if labels and len(words) >= 3 and words[1] in ("in", "notin"):
            inner = part.split("(", 1)[-1].rstrip(")")
            values = frozenset(v.strip() for v in inner.split(","))
            reqs.append(_Requirement(words[0], words[1], values))
        elif "!=" in part:
            key, value = part.split("!=", 1)
            reqs.append(_Requirement(key.strip(), "!=", frozenset({value.strip()})))
        elif "=" in part:
            key, value = part.replace("==", "=").split("=", 1)
            reqs.append(_Requirement(key.strip(), "=", frozenset({value.strip()})))
        elif labels and part.startswith("!"):
            reqs.append(_Requirement(part[1:].strip(), "!exists"))
        elif labels:
            reqs.append(_Requirement(part, "exists"))
        # Anything else is ignored rather than failing the request.
    return reqs


def label_selector(expr: str | None) -> Predicate:
    """Equality and set-based label selectors."""
    reqs = _requirements(expr or "", labels=True)

    def match(obj: JSON) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.holds(labels.get(r.key)) for r in reqs)

    return match


def _field(obj: JSON, path: str) -> str:
    cur: Any = obj
    for key in path.split("."):
        if not isinstance(cur, dict):
            return ""
        cur = cur.get(key)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def field_selector(expr: str | None) -> Predicate:
    """`metadata.name=x`, `spec.nodeName!=y`, comma-AND, over any dotted path."""
    reqs = _requirements(expr or "", labels=False)
    return lambda obj: all(r.holds(_field(obj, r.key)) for r in reqs)


def read_verb(request: web.Request, name: str | None) -> str:
    """The RBAC verb of a GET: get one object, or list or watch many."""
    if name:
        return "get"
    return "watch" if parse_bool(request.query.get("watch")) else "list"


def parse_bool(value: str | None) -> bool:
    """The apiserver accepts true/True/TRUE/1 (docs/facts/kubernetes.md trap 2)."""
    return value is not None and value.strip().lower() in ("true", "1", "t", "yes")


# --------------------------------------------------------------------------- store


@dataclass(slots=True)
class _Entry:
    obj: JSON
    _item: bytes | None = None

    def item_bytes(self) -> bytes:
        # Serialised once and reused by every list: lists of 5,000 pods stay cheap.
        if self._item is None:
            self._item = json.dumps(self.obj, separators=(",", ":")).encode()
        return self._item


@dataclass(slots=True)
class StoreEvent:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    resource: ResourceType
    obj: JSON  # without kind/apiVersion, like stored objects
    _line: bytes | None = None

    @property
    def namespace(self) -> str:
        return str((self.obj.get("metadata") or {}).get("namespace") or "")

    def line(self) -> bytes:
        if self._line is None:
            self._line = encode_event(self.type, with_kind(self.resource, self.obj))
        return self._line


def with_kind(resource: ResourceType, obj: JSON) -> JSON:
    """Watch event objects and single GETs carry kind/apiVersion; list items do not."""
    return {"kind": resource.kind, "apiVersion": resource.api_version, **obj}


def encode_event(event_type: str, obj: JSON) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


@dataclass(eq=False)
class Subscription:
    resource: ResourceType
    namespace: str | None
    match: Predicate
    bookmarks: bool = False
    queue: asyncio.Queue[StoreEvent | str | bytes] = field(default_factory=asyncio.Queue)

    def wants(self, event: StoreEvent) -> bool:
        if event.resource is not self.resource:
            return False
        if self.namespace is not None and event.namespace != self.namespace:
            return False
        return self.match(event.obj)


class ResourceExpired(Exception):
    def __init__(self, requested: int, floor: int) -> None:
        super().__init__(f"too old resource version: {requested} ({floor})")


class KubeStore:
    """Objects by resource, one global resourceVersion, and the event history.

    Every change takes the next RV and lands in a bounded ring; a watch can
    resume from any RV at or above `floor`, older ones get 410."""

    def __init__(self, *, history_size: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._rv = 1
        self._floor = 1
        self._history: deque[StoreEvent] = deque(maxlen=history_size)
        self._objects: dict[str, dict[tuple[str, str], _Entry]] = {r.plural: {} for r in RESOURCES}
        self._subs: set[Subscription] = set()

    # -- reading

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def floor(self) -> int:
        return self._floor

    def get(self, resource: ResourceType, name: str, namespace: str | None = None) -> JSON | None:
        entry = self._objects[resource.plural].get((namespace or "", name))
        return entry.obj if entry else None

    def entries(self, resource: ResourceType, namespace: str | None = None) -> list[_Entry]:
        table = self._objects[resource.plural]
        found = [e for (ns, _n), e in table.items() if namespace is None or ns == namespace]
        found.sort(
            key=lambda e: (e.obj["metadata"].get("namespace", ""), e.obj["metadata"]["name"])
        )
        return found

    def objects(self, resource: ResourceType, namespace: str | None = None) -> list[JSON]:
        return [e.obj for e in self.entries(resource, namespace)]

    def history_since(self, rv: int) -> list[StoreEvent]:
        if rv < self._floor:
            raise ResourceExpired(rv, self._floor)
        return [ev for ev in self._history if ev.rv > rv]

    # -- writing

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _record(self, event: StoreEvent) -> None:
        if self._history.maxlen is not None and len(self._history) == self._history.maxlen:
            self._floor = self._history[0].rv
        self._history.append(event)
        for sub in self._subs:
            if sub.wants(event):
                sub.queue.put_nowait(event)

    def set(self, resource: ResourceType, obj: JSON) -> JSON:
        """Create or replace an object (a deep copy is stored). Watchers see ADDED or
        MODIFIED. Missing uid, creationTimestamp and namespace are filled in."""
        stored: JSON = json.loads(json.dumps(obj))
        stored.pop("kind", None)
        stored.pop("apiVersion", None)
        meta = stored.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            raise ValueError("object has no metadata.name")
        if resource.namespaced:
            meta.setdefault("namespace", "default")
        else:
            meta.pop("namespace", None)
        key = (meta.get("namespace", ""), name)
        table = self._objects[resource.plural]
        old = table.get(key)
        if old is not None:
            meta["uid"] = old.obj["metadata"]["uid"]
            meta["creationTimestamp"] = old.obj["metadata"]["creationTimestamp"]
        else:
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", rfc3339(self._clock()))
        rv = self._next_rv()
        meta["resourceVersion"] = str(rv)
        entry = _Entry(stored)
        # Serialised now rather than at the first list, as an apiserver's watch cache
        # holds objects ready to send: a first list of thousands stays quick.
        entry.item_bytes()
        table[key] = entry
        self._record(StoreEvent(rv, "MODIFIED" if old else "ADDED", resource, stored))
        return stored

    def delete(
        self, resource: ResourceType, name: str, namespace: str | None = None
    ) -> JSON | None:
        """Remove an object; watchers get DELETED with its final state at a new RV."""
        entry = self._objects[resource.plural].pop((namespace or "", name), None)
        if entry is None:
            return None
        final: JSON = json.loads(json.dumps(entry.obj))
        rv = self._next_rv()
        final["metadata"]["resourceVersion"] = str(rv)
        self._record(StoreEvent(rv, "DELETED", resource, final))
        return final

    def bump(self, steps: int = 1) -> int:
        """Advance the RV as unrelated writes would (leases, events): no watched change."""
        self._rv += steps
        return self._rv

    def expire_history(self) -> None:
        """Forget every past event: a watch from any older RV now gets 410."""
        self._history.clear()
        self._floor = self._rv

    def clear(self, resource: ResourceType) -> None:
        """Drop every object of a kind without events (its CRD went away)."""
        self._objects[resource.plural].clear()

    # -- watching

    def subscribe(
        self, resource: ResourceType, namespace: str | None, match: Predicate | None = None
    ) -> Subscription:
        sub = Subscription(resource, namespace, match or (lambda _o: True))
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    def subscriptions(self) -> Iterator[Subscription]:
        return iter(list(self._subs))


# --------------------------------------------------------------------------- printing


def _status_obj(code: int, reason: str, message: str, details: JSON | None = None) -> JSON:
    body: JSON = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


def pod_cells(pod: JSON, now: float) -> list[Any]:
    """NAME, READY, STATUS, RESTARTS, AGE, IP, NODE, NOMINATED NODE, READINESS GATES:
    a transcription of printPod (pkg/printers/internalversion/printers.go,
    docs/facts/kubernetes.md §13), kept independent of megatui.sources.kube_status on purpose
    so that tests comparing the two mean something."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    restarts = 0
    sidecar_restarts = 0
    total = len(spec.get("containers") or [])
    ready = 0
    last_restart: float | None = None
    last_sidecar_restart: float | None = None
    reason = str(status.get("phase") or "")
    if status.get("reason"):
        reason = str(status["reason"])
    conditions = status.get("conditions") or []
    for cond in conditions:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    init_specs = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in init_specs if c.get("restartPolicy") == "Always"}
    total += len(sidecars)

    def finished(cs: JSON) -> float | None:
        term = (cs.get("lastState") or {}).get("terminated")
        return parse_time(term.get("finishedAt")) if term else None

    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        count = int(cs.get("restartCount") or 0)
        restarts += count
        fin = finished(cs)
        if fin is not None and (last_restart is None or fin > last_restart):
            last_restart = fin
        is_sidecar = cs.get("name") in sidecars
        if is_sidecar:
            sidecar_restarts += count
            if fin is not None and (last_sidecar_restart is None or fin > last_sidecar_restart):
                last_sidecar_restart = fin
        state = cs.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term is not None and int(term.get("exitCode") or 0) == 0:
            continue
        if is_sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            if term.get("reason"):
                reason = "Init:" + str(term["reason"])
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode', 0)}"
        elif waiting and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + str(waiting["reason"])
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    initialized = any(
        c.get("type") == "Initialized" and c.get("status") == "True" for c in conditions
    )
    if not initializing or initialized:
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            fin = finished(cs)
            if fin is not None and (last_restart is None or fin > last_restart):
                last_restart = fin
            state = cs.get("state") or {}
            waiting = state.get("waiting")
            term = state.get("terminated")
            if waiting and waiting.get("reason"):
                reason = str(waiting["reason"])
            elif term is not None and term.get("reason"):
                reason = str(term["reason"])
            elif term is not None:
                reason = (
                    f"Signal:{term['signal']}"
                    if term.get("signal")
                    else f"ExitCode:{term.get('exitCode', 0)}"
                )
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            pod_ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
            )
            reason = "Running" if pod_ready else "NotReady"

    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif meta.get("deletionTimestamp") and status.get("phase") not in ("Succeeded", "Failed"):
        reason = "Terminating"

    restarts_text = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    ips = status.get("podIPs") or []
    ip = ips[0].get("ip") if ips else status.get("podIP")
    gates = spec.get("readinessGates") or []
    gates_text = "<none>"
    if gates:
        true_conds = {c.get("type") for c in conditions if c.get("status") == "True"}
        passed = sum(1 for g in gates if g.get("conditionType") in true_conds)
        gates_text = f"{passed}/{len(gates)}"
    return [
        meta.get("name", ""),
        f"{ready}/{total}",
        reason,
        restarts_text,
        _since(meta.get("creationTimestamp"), now),
        ip or "<none>",
        spec.get("nodeName") or "<none>",
        status.get("nominatedNodeName") or "<none>",
        gates_text,
    ]


def node_roles(labels: dict[str, str]) -> list[str]:
    roles: set[str] = set()
    for key, value in labels.items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.removeprefix("node-role.kubernetes.io/")
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return sorted(roles)


def node_cells(node: JSON, now: float) -> list[Any]:
    """NAME, STATUS, ROLES, AGE, VERSION + wide columns (printNode,
    docs/facts/kubernetes.md §11.7)."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    conds = {c.get("type"): c for c in status.get("conditions") or []}
    states: list[str] = []
    if "Ready" in conds:
        states.append("Ready" if conds["Ready"].get("status") == "True" else "NotReady")
    if not states:
        states.append("Unknown")
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    info = status.get("nodeInfo") or {}
    addresses = status.get("addresses") or []

    def address(kind: str) -> str:
        for a in addresses:
            if a.get("type") == kind:
                return str(a.get("address"))
        return "<none>"

    return [
        meta.get("name", ""),
        ",".join(states),
        ",".join(node_roles(meta.get("labels") or {})) or "<none>",
        _since(meta.get("creationTimestamp"), now),
        info.get("kubeletVersion", ""),
        address("InternalIP"),
        address("ExternalIP"),
        info.get("osImage", ""),
        info.get("kernelVersion", ""),
        info.get("containerRuntimeVersion", ""),
    ]


def application_cells(app: JSON, now: float) -> list[Any]:
    """The Application CRD's additionalPrinterColumns (docs/facts/kubernetes.md §12.2)."""
    status = app.get("status") or {}
    sync = status.get("sync") or {}
    health = status.get("health") or {}
    return [
        (app.get("metadata") or {}).get("name", ""),
        sync.get("status"),
        health.get("status"),
        sync.get("revision"),
        (app.get("spec") or {}).get("project"),
    ]


def _col(name: str, description: str, priority: int = 0, fmt: str = "") -> JSON:
    return {
        "name": name,
        "type": "string",
        "format": fmt,
        "description": description,
        "priority": priority,
    }


_NAME_COL = _col("Name", "Name must be unique within a namespace.", fmt="name")
_AGE_COL = _col("Age", "CreationTimestamp is a timestamp representing the server time.")
# kubectl's server-side columns per resource, as data copied from the API server:
# the lists are alike in shape only (the duplicates scan pairs them).
TABLE_COLUMNS: dict[str, list[JSON]] = {
    "pods": [
        _NAME_COL,
        _col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
        _col("Status", "The aggregate status of the containers in this pod."),
        _col("Restarts", "The number of times the containers in this pod have been restarted."),
        _AGE_COL,
        _col("IP", "IP address allocated to the pod.", 1),
        _col("Node", "Name of the node this pod is assigned to.", 1),
        _col("Nominated Node", "Name of the node the pod is nominated to.", 1),
        _col("Readiness Gates", "Pod readiness gates.", 1),
    ],
    "nodes": [
        _NAME_COL,
        _col("Status", "The status of the node"),
        _col("Roles", "The roles of the node"),
        _AGE_COL,
        _col("Version", "Kubelet Version reported by the node."),
        _col("Internal-IP", "List of internal IPs of the node.", 1),
        _col("External-IP", "List of external IPs of the node.", 1),
        _col("OS-Image", "OS Image reported by the node.", 1),
        _col("Kernel-Version", "Kernel Version reported by the node.", 1),
        _col("Container-Runtime", "Container Runtime Version reported by the node.", 1),
    ],
    "applications": [
        _NAME_COL,
        _col("Sync Status", ""),
        _col("Health Status", ""),
        _col("Revision", "", 10),
        _col("Project", "", 10),
    ],
    "namespaces": [
        _NAME_COL,
        _col("Status", "The status of the namespace"),
        _AGE_COL,
    ],
}


def _namespace_cells(ns: JSON, now: float) -> list[Any]:
    meta = ns.get("metadata") or {}
    phase = (ns.get("status") or {}).get("phase", "Active")
    return [meta.get("name", ""), phase, _since(meta.get("creationTimestamp"), now)]


_CELLS: dict[str, Callable[[JSON, float], list[Any]]] = {
    "pods": pod_cells,
    "nodes": node_cells,
    "applications": application_cells,
    "namespaces": _namespace_cells,
}


def table(
    resource: ResourceType,
    objs: Iterable[JSON],
    now: float,
    rv: int | None,
    include_object: str = "Metadata",
    headers: bool = True,
) -> JSON:
    """A meta.k8s.io/v1 Table, as the apiserver's TableConvertor answers kubectl."""
    rows = []
    for obj in objs:
        row: JSON = {"cells": _CELLS[resource.plural](obj, now)}
        if include_object == "Object":
            row["object"] = with_kind(resource, obj)
        elif include_object != "None":
            row["object"] = {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata") or {},
            }
        rows.append(row)
    meta: JSON = {"resourceVersion": str(rv)} if rv is not None else {}
    body: JSON = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
    # The apiserver omits the headers on watch events after the first one.
    body["columnDefinitions"] = TABLE_COLUMNS[resource.plural] if headers else None
    body["rows"] = rows
    return body


# --------------------------------------------------------------------------- server


@dataclass(frozen=True, slots=True)
class RequestRecord:
    method: str
    path: str
    query: dict[str, str]
    accept: str
    authorization: str | None
    at: float

    @property
    def watch(self) -> bool:
        return parse_bool(self.query.get("watch"))


@dataclass(slots=True)
class _Route:
    resource: ResourceType
    namespace: str | None
    name: str | None


@dataclass(slots=True)
class _InjectedList:
    plural: str
    body: Callable[[], Iterable[bytes]]
    remaining: int | None


@dataclass(slots=True)
class _InjectedError:
    code: int
    message: str
    plural: str | None
    remaining: int | None


_CUT = "cut"
_CUT_PARTIAL = "cut-partial"
_BOOKMARK = "bookmark"
_END = "end"


class FakeKubeAPI:
    """An aiohttp Kubernetes API server over a `KubeStore`.

    Fault hooks (all take effect for new requests at once):
    `hang`, `require_auth`/`tokens`, `forbid()`, `inject_error()`, `drop_crd()`,
    `cut_watches()`, `expire_history()`, `send_bookmarks()`, `freeze()`/`thaw()`,
    `silence()`, `inject_list()`, `send_raw()`.

    Bookmarks go to watches that allow them every `bookmark_interval` seconds (the
    real watch cache sends one about every minute; docs/facts/kubernetes.md §4 says clients must
    not count on any interval, and megatui does not).
    """

    def __init__(
        self,
        store: KubeStore | None = None,
        *,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        bookmark_interval: float | None = 60.0,
        min_request_timeout: float = 1800.0,
    ) -> None:
        self.store = store or KubeStore(clock=clock)
        self._ssl = ssl_context
        self._clock = clock
        self.bookmark_interval = bookmark_interval
        self.min_request_timeout = min_request_timeout
        # Bounded: a lab left running for a day must not grow without end.
        self.requests: deque[RequestRecord] = deque(maxlen=20_000)
        # Faults.
        self.hang = False
        self.require_auth = ssl_context is not None
        self.tokens: set[str] = set()
        self.forbidden: set[str] = set()  # plurals, or "*"
        self.crd_installed = True
        self._errors: list[_InjectedError] = []
        self._lists: list[_InjectedList] = []
        # Cleared while watches must send nothing (freeze(), silence()).
        self._speaking = asyncio.Event()
        self._speaking.set()
        self._release = asyncio.Event()
        self._watches: set[Subscription] = set()
        self._tick = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self.url = ""
        self.port = 0
        # events.k8s.io and pods/log are served by their own modules (kube_extensions).
        from megatui.lab.kube_extensions import Extensions

        self.ext = Extensions(self)

    # -- life

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        # handler_cancellation: a client that gives up (timeout) must not leave a
        # hanging or streaming handler behind.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self._ssl)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1]
        scheme = "https" if self._ssl else "http"
        self.url = f"{scheme}://{host}:{self.port}"
        return self.url

    async def stop(self) -> None:
        self._stopping = True
        self._release.set()
        self._speaking.set()
        for sub in list(self._watches):
            sub.queue.put_nowait(_END)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeKubeAPI:
        if not self.url:
            await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- observation for tests

    def calls(self, resource: ResourceType, *, watch: bool | None = None) -> list[RequestRecord]:
        """Requests for a resource's collection (list or watch)."""
        found = []
        for rec in self.requests:
            route = self._route(rec.path)
            if (
                isinstance(route, _Route)
                and route.resource is resource
                and route.name is None
                and (watch is None or rec.watch == watch)
            ):
                found.append(rec)
        return found

    def watch_count(self, resource: ResourceType | None = None) -> int:
        return sum(1 for s in self._watches if resource is None or s.resource is resource)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until predicate() holds; it is re-checked on every request and every
        watch start or end. Raises TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._tick.wait()

    def _notify(self) -> None:
        # Wake every waiter once; each re-checks its predicate and waits on the new event.
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()

    # -- faults

    def forbid(self, *plurals: str) -> None:
        """403 for these resources (no names: every resource)."""
        self.forbidden = set(plurals) if plurals else {"*"}

    def allow(self) -> None:
        self.forbidden = set()

    def inject_error(
        self, code: int, message: str, *, plural: str | None = None, times: int | None = None
    ) -> None:
        """Answer resource requests with a Status of `code` (`times` requests, or until
        clear_errors())."""
        self._errors.append(_InjectedError(code, message, plural, times))

    def clear_errors(self) -> None:
        self._errors.clear()
        self._lists.clear()

    def set_hang(self, on: bool) -> None:
        """Accept connections and never answer them (until turned off: then the
        held requests are dropped without an answer)."""
        self.hang = on
        if on:
            self._release = asyncio.Event()
        else:
            self._release.set()

    def freeze(self) -> None:
        """Behave like a stopped API server process (SIGSTOP): connections are accepted
        by the kernel but no request is answered, and open watches send nothing more,
        not even the end of the stream at timeoutSeconds."""
        self.set_hang(True)
        self._speaking.clear()

    def thaw(self) -> None:
        """Undo freeze(): held requests are dropped, watches resume."""
        self.set_hang(False)
        self._speaking.set()

    def silence(self, on: bool) -> None:
        """Watches (open and new) send nothing: no event, no bookmark, no end, while
        lists are still answered. A proxy that buffers streams looks like this."""
        if on:
            self._speaking.clear()
        else:
            self._speaking.set()

    def inject_list(
        self, plural: str, body: Callable[[], Iterable[bytes]], *, times: int | None = None
    ) -> None:
        """Answer lists of `plural` with the chunks body() yields (HTTP 200, chunked,
        no Content-Length): garbage of any shape or size. `times` lists, or until
        clear_errors()."""
        self._lists.append(_InjectedList(plural, body, times))

    def send_raw(self, line: bytes, resource: ResourceType | None = None) -> int:
        """Write these raw bytes to every open watch (of `resource`), as they are."""
        n = 0
        for sub in list(self._watches):
            if resource is None or sub.resource is resource:
                sub.queue.put_nowait(line)
                n += 1
        return n

    def cut_watches(self, resource: ResourceType | None = None, *, partial: bool = False) -> int:
        """Close open watch streams abruptly, without the final chunk; with `partial`,
        after half an event line. Returns how many were cut."""
        n = 0
        for sub in list(self._watches):
            if resource is None or sub.resource is resource:
                sub.queue.put_nowait(_CUT_PARTIAL if partial else _CUT)
                n += 1
        return n

    def end_watches(self, resource: ResourceType | None = None) -> int:
        """End open watches cleanly, as timeoutSeconds would."""
        n = 0
        for sub in list(self._watches):
            if resource is None or sub.resource is resource:
                sub.queue.put_nowait(_END)
                n += 1
        return n

    def send_bookmarks(self) -> int:
        """A BOOKMARK at the current RV to every watch that allowed bookmarks."""
        n = 0
        for sub in list(self._watches):
            if sub.bookmarks:
                sub.queue.put_nowait(_BOOKMARK)
                n += 1
        return n

    def expire_history(self) -> None:
        self.store.expire_history()

    def drop_crd(self) -> None:
        """Uninstall the Application CRD: its group vanishes from discovery, its
        paths answer 404, its objects are gone and its watches end."""
        self.crd_installed = False
        self.store.clear(APPLICATIONS)
        self.end_watches(APPLICATIONS)

    def install_crd(self) -> None:
        self.crd_installed = True

    # -- plumbing

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        self.requests.append(
            RequestRecord(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                accept=request.headers.get("Accept", ""),
                authorization=request.headers.get("Authorization"),
                at=time.monotonic(),
            )
        )
        self._notify()
        if self.hang and not self._stopping:
            release = self._release
            await release.wait()
            # Never answered: drop the connection as a dead server would.
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        if self.require_auth and self._user(request) is None:
            return self._status(401, "Unauthorized", "Unauthorized")
        result: web.StreamResponse = await handler(request)
        return result

    def _user(self, request: web.Request) -> str | None:
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport else None
        if peercert:
            for rdn in peercert.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        return str(value)
            return "unknown"
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and auth[7:].strip() in self.tokens:
            return "token-user"
        return None

    def _status(
        self, code: int, reason: str, message: str, details: JSON | None = None
    ) -> web.Response:
        return web.json_response(_status_obj(code, reason, message, details), status=code)

    def _route(self, path: str) -> _Route | str | None:
        """A resource route, a discovery document name, or None."""
        parts = [p for p in path.split("/") if p]
        if parts[:2] == ["api", "v1"]:
            rest = parts[2:]
            group = ""
        elif len(parts) >= 3 and parts[0] == "apis":
            group = parts[1]
            if parts[2] != "v1alpha1" or group != "argoproj.io":
                return "unknown"
            rest = parts[3:]
        else:
            return None
        if not rest:
            return "discovery"
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace = rest[1]
            rest = rest[2:]
        plural = rest[0]
        name = rest[1] if len(rest) > 1 else None
        if len(rest) > 2:
            return "unknown"  # subresources are not served
        for res in RESOURCES:
            if res.plural == plural and res.group == group:
                if namespace is not None and not res.namespaced:
                    return "unknown"
                return _Route(res, namespace, name)
        return "unknown"

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path == "/version":
            return web.json_response(SERVER_VERSION)
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/api":
            return web.json_response(
                {
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [
                        {"clientCIDR": "0.0.0.0/0", "serverAddress": "172.18.0.2:6443"}
                    ],
                }
            )
        if path == "/apis":
            groups = []
            if self.crd_installed:
                gv = {"groupVersion": APPLICATIONS.group_version, "version": "v1alpha1"}
                groups.append({"name": "argoproj.io", "versions": [gv], "preferredVersion": gv})
            groups.extend(self.ext.groups())
            return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        if path == "/apis/argoproj.io" and self.crd_installed:
            gv = {"groupVersion": APPLICATIONS.group_version, "version": "v1alpha1"}
            return web.json_response(
                {
                    "kind": "APIGroup",
                    "apiVersion": "v1",
                    "name": "argoproj.io",
                    "versions": [gv],
                    "preferredVersion": gv,
                }
            )
        handled = await self.ext.dispatch(request, path)
        if handled is not None:
            return handled
        route = self._route(path)
        if route == "discovery":
            core = path == "/api/v1"
            if not core and not self.crd_installed:
                return self._not_found()
            resources = [r for r in RESOURCES if (r.group == "") == core]
            return web.json_response(
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": "v1" if core else APPLICATIONS.group_version,
                    "resources": [r.discovery() for r in resources],
                }
            )
        if not isinstance(route, _Route):
            return self._not_found()
        if route.resource is APPLICATIONS and not self.crd_installed:
            return self._not_found()
        denied = self._denied(request, route)
        if denied is not None:
            return denied
        for err in list(self._errors):
            if err.plural in (None, route.resource.plural):
                if err.remaining is not None:
                    err.remaining -= 1
                    if err.remaining <= 0:
                        self._errors.remove(err)
                reason = {500: "InternalError", 503: "ServiceUnavailable", 429: "TooManyRequests"}
                return self._status(err.code, reason.get(err.code, "Unknown"), err.message)
        if request.method == "GET":
            if route.name is not None:
                return self._get(request, route)
            if parse_bool(request.query.get("watch")):
                return await self._watch(request, route)
            injected = self._injected_list(route.resource.plural)
            if injected is not None:
                return await self._raw_list(request, injected)
            return self._list(request, route)
        if request.method in ("PUT", "POST"):
            return await self._write(request, route)
        if request.method == "DELETE" and route.name is not None:
            gone = self.store.delete(route.resource, route.name, route.namespace)
            if gone is None:
                return self._missing(route)
            return web.json_response(with_kind(route.resource, gone))
        return self._status(405, "MethodNotAllowed", "the server does not allow this method")

    def _not_found(self) -> web.Response:
        # What kube-apiserver says for a path no API serves (e.g. a missing CRD).
        return self._status(404, "NotFound", "the server could not find the requested resource", {})

    def _missing(self, route: _Route) -> web.Response:
        plural = route.resource.plural
        details: JSON = {"name": route.name, "kind": plural}
        if route.resource.group:
            details["group"] = route.resource.group
        qualified = f"{plural}.{route.resource.group}" if route.resource.group else plural
        return self._status(404, "NotFound", f'{qualified} "{route.name}" not found', details)

    def _denied(self, request: web.Request, route: _Route) -> web.Response | None:
        plural = route.resource.plural
        if "*" not in self.forbidden and plural not in self.forbidden:
            return None
        if request.method == "GET":
            verb = read_verb(request, route.name)
        else:
            verb = {"PUT": "update", "POST": "create", "DELETE": "delete"}.get(
                request.method, "patch"
            )
        details: JSON = {"kind": plural}
        if route.resource.group:
            details["group"] = route.resource.group
        return self.forbidden_status(
            request, plural, verb, plural, route.resource.group, route.namespace, details
        )

    def forbidden_status(
        self,
        request: web.Request,
        subject: str,
        verb: str,
        resource: str,
        group: str,
        namespace: str | None,
        details: JSON,
    ) -> web.Response:
        """The API server's RBAC refusal, worded once for every route of the lab (the
        events.k8s.io and pods/log routes too)."""
        user = self._user(request) or "system:anonymous"
        scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
        message = (
            f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
            f'in API group "{group}" {scope}'
        )
        return self._status(403, "Forbidden", message, details)

    @staticmethod
    def _wants_table(request: web.Request) -> bool:
        return "as=Table" in request.headers.get("Accept", "")

    def _get(self, request: web.Request, route: _Route) -> web.Response:
        obj = self.store.get(route.resource, route.name or "", route.namespace)
        if obj is None:
            return self._missing(route)
        if self._wants_table(request):
            return web.json_response(
                table(
                    route.resource,
                    [obj],
                    self._clock(),
                    None,
                    request.query.get("includeObject", "Metadata"),
                )
            )
        return web.json_response(with_kind(route.resource, obj))

    def _matcher(self, request: web.Request) -> Predicate:
        labels = label_selector(request.query.get("labelSelector"))
        fields = field_selector(request.query.get("fieldSelector"))
        return lambda obj: labels(obj) and fields(obj)

    def _injected_list(self, plural: str) -> _InjectedList | None:
        for inj in self._lists:
            if inj.plural == plural:
                if inj.remaining is not None:
                    inj.remaining -= 1
                    if inj.remaining <= 0:
                        self._lists.remove(inj)
                return inj
        return None

    async def _raw_list(self, request: web.Request, inj: _InjectedList) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            for chunk in inj.body():
                await response.write(chunk)
            await response.write_eof()
        except (ConnectionResetError, ConnectionError):
            raise asyncio.CancelledError from None
        return response

    def _list(self, request: web.Request, route: _Route) -> web.Response:
        match = self._matcher(request)
        entries = [e for e in self.store.entries(route.resource, route.namespace) if match(e.obj)]
        rv = self.store.resource_version
        if self._wants_table(request):
            return web.json_response(
                table(
                    route.resource,
                    [e.obj for e in entries],
                    self._clock(),
                    rv,
                    request.query.get("includeObject", "Metadata"),
                )
            )
        head = json.dumps(
            {
                "kind": route.resource.list_kind,
                "apiVersion": route.resource.api_version,
                "metadata": {"resourceVersion": str(rv)},
            },
            separators=(",", ":"),
        ).encode()
        body = head[:-1] + b',"items":[' + b",".join(e.item_bytes() for e in entries) + b"]}"
        # web.Response sets Content-Length for a bytes body: lists are not chunked.
        return web.Response(body=body, content_type="application/json")

    async def _write(self, request: web.Request, route: _Route) -> web.Response:
        try:
            obj = await request.json()
        except ValueError:
            return self._status(400, "BadRequest", "the request body is not valid JSON")
        if not isinstance(obj, dict):
            return self._status(400, "BadRequest", "the request body is not an object")
        meta = obj.setdefault("metadata", {})
        if route.namespace:
            meta["namespace"] = route.namespace
        name = route.name or meta.get("name")
        if not name:
            return self._status(422, "Invalid", "metadata.name: Required value")
        meta["name"] = name
        existing = self.store.get(route.resource, name, route.namespace)
        if request.method == "POST" and existing is not None:
            return self._status(
                409, "AlreadyExists", f'{route.resource.plural} "{name}" already exists'
            )
        if request.method == "PUT":
            if existing is None:
                return self._missing(_Route(route.resource, route.namespace, name))
            wanted = meta.get("resourceVersion")
            if wanted and wanted != existing["metadata"]["resourceVersion"]:
                return self._status(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {route.resource.plural} "{name}": '
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again",
                )
        stored = self.store.set(route.resource, obj)
        return web.json_response(
            with_kind(route.resource, stored), status=201 if request.method == "POST" else 200
        )

    async def _watch(self, request: web.Request, route: _Route) -> web.StreamResponse:
        query = request.query
        as_table = self._wants_table(request)
        include = query.get("includeObject", "Metadata")
        bookmarks = parse_bool(query.get("allowWatchBookmarks"))
        timeout_param = query.get("timeoutSeconds")
        try:
            timeout = (
                float(int(timeout_param))
                if timeout_param
                else self.min_request_timeout * (random.random() + 1.0)
            )
        except ValueError:
            return self._status(400, "BadRequest", f"invalid timeoutSeconds {timeout_param!r}")
        rv_param = query.get("resourceVersion", "")
        if rv_param not in ("", "0"):
            try:
                start_rv = int(rv_param)
            except ValueError:
                return self._status(
                    400,
                    "BadRequest",
                    f'resourceVersion: Invalid value: "{rv_param}": '
                    "strconv.ParseUint: invalid syntax",
                )
        match = self._matcher(request)
        sub = self.store.subscribe(route.resource, route.namespace, match)
        sub.bookmarks = bookmarks
        response = web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        first_table = True

        def encode(event_type: str, obj: JSON) -> bytes:
            nonlocal first_table
            if as_table and event_type != "ERROR":
                if event_type == "BOOKMARK":
                    obj = {
                        "kind": "Table",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": obj["metadata"],
                        "columnDefinitions": None,
                        "rows": None,
                    }
                else:
                    obj = table(route.resource, [obj], self._clock(), None, include, first_table)
                    first_table = False
            return encode_event(event_type, obj)

        try:
            # Subscribing and reading the history happen with no await in between,
            # so no event can fall into a gap or arrive twice.
            initial: list[tuple[str, JSON]] = []
            expired: ResourceExpired | None = None
            if rv_param in ("", "0"):
                for entry in self.store.entries(route.resource, route.namespace):
                    if match(entry.obj):
                        initial.append(("ADDED", with_kind(route.resource, entry.obj)))
            else:
                try:
                    history = self.store.history_since(start_rv)
                except ResourceExpired as exc:
                    expired = exc
                else:
                    initial = [
                        (ev.type, with_kind(ev.resource, ev.obj)) for ev in history if sub.wants(ev)
                    ]
            await response.prepare(request)  # headers go out at once, before any event
            if expired is not None:
                # 410 is an ERROR event inside HTTP 200 (docs/facts/kubernetes.md §4.1).
                status = _status_obj(410, "Expired", str(expired))
                await response.write(encode_event("ERROR", status))
                await response.write_eof()
                return response
            self._watches.add(sub)
            self._notify()
            await self._speaking.wait()
            for event_type, obj in initial:
                await response.write(encode(event_type, obj))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            next_bookmark = (
                loop.time() + self.bookmark_interval
                if bookmarks and self.bookmark_interval
                else None
            )
            while not self._stopping:
                if not self._speaking.is_set():
                    # Frozen or silenced: nothing goes out, not even the timeout's end.
                    await self._speaking.wait()
                    continue
                now = loop.time()
                if now >= deadline:
                    break
                wake = deadline if next_bookmark is None else min(deadline, next_bookmark)
                try:
                    async with asyncio.timeout(wake - now):
                        item = await sub.queue.get()
                except TimeoutError:
                    if next_bookmark is not None and loop.time() >= next_bookmark:
                        item = _BOOKMARK
                        next_bookmark = loop.time() + (self.bookmark_interval or 60.0)
                    else:
                        continue
                if not self._speaking.is_set():
                    await self._speaking.wait()  # held until the freeze ends
                if isinstance(item, StoreEvent):
                    line = (
                        encode(item.type, with_kind(item.resource, item.obj))
                        if as_table
                        else item.line()
                    )
                    await response.write(line)
                elif isinstance(item, bytes):
                    await response.write(item)
                elif item == _BOOKMARK:
                    mark = {
                        "kind": route.resource.kind,
                        "apiVersion": route.resource.api_version,
                        "metadata": {"resourceVersion": str(self.store.resource_version)},
                    }
                    await response.write(encode("BOOKMARK", mark))
                elif item in (_CUT, _CUT_PARTIAL):
                    if item == _CUT_PARTIAL:
                        await response.write(b'{"type":"MODIFIED","object":{"kind":"')
                    transport = request.transport
                    if transport is not None:
                        transport.close()
                    # No final chunk: the client must see a broken stream.
                    raise asyncio.CancelledError
                elif item == _END:
                    break
            await response.write_eof()
            return response
        except (ConnectionResetError, ConnectionError):
            raise asyncio.CancelledError from None
        finally:
            self.store.unsubscribe(sub)
            self._watches.discard(sub)
            self._notify()


async def start_fake_api(
    store: KubeStore | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    bookmark_interval: float | None = 60.0,
) -> FakeKubeAPI:
    api = FakeKubeAPI(store, ssl_context=ssl_context, bookmark_interval=bookmark_interval)
    await api.start(host, port)
    return api
