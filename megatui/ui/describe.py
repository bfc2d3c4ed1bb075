"""Describe-grade text of a Pod, an Application and a Node, from their raw objects
(the detail screens render these; nothing here talks to the API).

Outside data is untrusted: every field is read with a type check, every string
goes through `literal` (no markup) and `one_line` where a line is expected.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.table import Table
from rich.text import Text

from megatui.model import KubeEvent, Node
from megatui.sources.kube_status import human_duration, parse_time
from megatui.sources.pod_why import one_line, termination_text
from megatui.ui import render
from megatui.ui.render import BAD, MUTED, OK, WARN, literal

JSON = dict[str, Any]


def _d(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _s(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _since(stamp: Any, now: float) -> str:
    t = parse_time(_s(stamp) or None)
    return "" if t is None else human_duration(now - t)


def field_table(rows: Iterable[tuple[str, Text | str]]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style=MUTED, no_wrap=True)
    table.add_column()
    for key, value in rows:
        table.add_row(key, value if isinstance(value, Text) else literal(value))
    return table


def grid(headers: Sequence[str], rows: Iterable[Sequence[Text | str]]) -> Table:
    table = Table(box=None, padding=(0, 2, 0, 0), show_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(*(c if isinstance(c, Text) else literal(c) for c in row))
    return table


# --------------------------------------------------------------------------- pod


def age_text(event: KubeEvent, now: float) -> str:
    """kubectl describe's Age: `5m (x3 over 10m)` or just the first time (§3.3)."""

    def since(t: float | None) -> str:
        return "<unknown>" if t is None else human_duration(now - t)

    if event.count > 1:
        return f"{since(event.last)} (x{event.count} over {since(event.first)})"
    return since(event.first or event.last)


def pod_summary(pod: JSON) -> Table:
    meta, spec, status = _d(pod.get("metadata")), _d(pod.get("spec")), _d(pod.get("status"))
    owners = ", ".join(
        f"{_s(o.get('kind'))}/{_s(o.get('name'))}" for o in map(_d, _l(meta.get("ownerReferences")))
    )
    return field_table(
        [
            ("Namespace", _s(meta.get("namespace"))),
            ("Node", f"{_s(spec.get('nodeName')) or '<none>'} / {_s(status.get('hostIP'))}"),
            ("IP", _s(status.get("podIP")) or "<none>"),
            ("Phase", _s(status.get("phase"))),
            ("QoS", _s(status.get("qosClass"))),
            ("Owner", owners or "<none>"),
        ]
    )


def _state_text(state: JSON, now: float) -> Text:
    if "running" in state:
        started = _since(_d(state["running"]).get("startedAt"), now)
        return Text.assemble(("Running", OK), (f" for {started}" if started else "", MUTED))
    if "terminated" in state:
        term = _d(state["terminated"])
        style = OK if term.get("exitCode") == 0 else BAD
        return literal(one_line(termination_text("Terminated", term)), style)
    waiting = _d(state.get("waiting"))
    reason = _s(waiting.get("reason")) or "Waiting"
    message = _s(waiting.get("message"))
    return Text.assemble(
        (reason, WARN if reason in ("ContainerCreating", "PodInitializing") else BAD),
        (f": {one_line(message)}" if message else "", MUTED),
    )


def containers(pod: JSON, now: float) -> Table:
    spec, status = _d(pod.get("spec")), _d(pod.get("status"))
    statuses = {
        _s(cs.get("name")): cs
        for key in ("initContainerStatuses", "containerStatuses")
        for cs in map(_d, _l(status.get(key)))
    }
    rows = []
    for key, label in (("initContainers", "init "), ("containers", "")):
        for c in map(_d, _l(spec.get(key))):
            name = _s(c.get("name"))
            cs = _d(statuses.get(name))
            last = _d(_d(cs.get("lastState")).get("terminated"))
            rows.append(
                (
                    literal(label + name, "bold"),
                    literal(_s(c.get("image"))),
                    _state_text(_d(cs.get("state")), now),
                    literal("yes" if cs.get("ready") else "no", OK if cs.get("ready") else WARN),
                    literal(_s(cs.get("restartCount") or 0)),
                    literal(one_line(termination_text("last", last)) if last else "", MUTED),
                )
            )
    return grid(("CONTAINER", "IMAGE", "STATE", "READY", "RESTARTS", "LAST TERMINATION"), rows)


def conditions(obj: JSON, now: float, *, good_when_false: bool = False) -> Table:
    rows = []
    for c in map(_d, _l(_d(obj.get("status")).get("conditions"))):
        ok = (c.get("status") == "True") != good_when_false
        if good_when_false and c.get("type") == "Ready":
            ok = c.get("status") == "True"
        rows.append(
            (
                literal(_s(c.get("type"))),
                literal(_s(c.get("status")), OK if ok else BAD),
                literal(_s(c.get("reason"))),
                literal(_since(c.get("lastTransitionTime"), now)),
                literal(one_line(_s(c.get("message")), 120), MUTED),
            )
        )
    return grid(("CONDITION", "STATUS", "REASON", "SINCE", "MESSAGE"), rows)


def _volume_source(volume: JSON) -> str:
    for kind, src in volume.items():
        if kind == "name" or not isinstance(src, dict):
            continue
        if kind == "hostPath":
            kind_ = _s(src.get("type"))
            return f"hostPath {_s(src.get('path'))}" + (f" (type {kind_})" if kind_ else "")
        if kind in ("configMap", "secret"):
            ref = _s(src.get("name") or src.get("secretName"))
            return f"{kind} {ref}"
        if kind == "persistentVolumeClaim":
            return f"pvc {_s(src.get('claimName'))}"
        return kind
    return "?"


def volumes(pod: JSON) -> Table:
    rows = [
        (literal(_s(v.get("name"))), literal(_volume_source(v)))
        for v in map(_d, _l(_d(pod.get("spec")).get("volumes")))
    ]
    return grid(("VOLUME", "SOURCE"), rows)


def events_table(events: Sequence[KubeEvent], now: float) -> Table | Text:
    """Newest first, as the detail shows them: age (with count), type, reason,
    from, message (with kubectl 1.35's fieldPath prefix)."""
    if not events:
        return literal("<none> (events expire after an hour)", MUTED)
    rows = []
    for ev in events:
        message = f"{ev.field_path}: {ev.message}" if ev.field_path else ev.message
        rows.append(
            (
                literal(age_text(ev, now)),
                literal(ev.type, WARN if ev.type == "Warning" else ""),
                literal(ev.reason, "bold" if ev.type == "Warning" else ""),
                literal(ev.source),
                literal(one_line(message, 300)),
            )
        )
    return grid(("AGE", "TYPE", "REASON", "FROM", "MESSAGE"), rows)


def container_names(pod: JSON) -> list[str]:
    spec = _d(pod.get("spec"))
    return [_s(_d(c).get("name")) for c in _l(spec.get("containers"))] + [
        _s(_d(c).get("name")) for c in _l(spec.get("initContainers"))
    ]


# --------------------------------------------------------------------------- application


UNHEALTHY = ("Degraded", "Missing", "Unknown", "Progressing", "Suspended")


def resource_rows(app: JSON) -> list[JSON]:
    """status.resources, unhealthy and out-of-sync first (then kind/namespace/name)."""
    status = _d(app.get("status"))
    tree = status.get("resourceHealthSource") == "appTree"
    out = []
    for r in map(_d, _l(status.get("resources"))):
        health = _d(r.get("health"))
        out.append(
            {
                "group": _s(r.get("group")),
                "kind": _s(r.get("kind")),
                "namespace": _s(r.get("namespace")),
                "name": _s(r.get("name")),
                "sync": _s(r.get("status")),
                # Argo CD >= 3 keeps health out of the CR (resourceHealthSource appTree).
                "health": "" if tree else _s(health.get("status")),
                "message": _s(health.get("message")),
            }
        )

    def rank(r: JSON) -> tuple[int, str]:
        bad = r["health"] in UNHEALTHY
        out_of_sync = r["sync"] == "OutOfSync"
        return (0 if bad else 1 if out_of_sync else 2, f"{r['kind']}/{r['namespace']}/{r['name']}")

    return sorted(out, key=rank)


def app_summary(app: JSON, now: float) -> Table:
    status = _d(app.get("status"))
    sync, health = _d(status.get("sync")), _d(status.get("health"))
    spec_src = _d(_d(app.get("spec")).get("source"))
    revision = _s(sync.get("revision"))
    sync_status = _s(sync.get("status")) or "Unknown"
    health_status = _s(health.get("status")) or "Unknown"
    return field_table(
        [
            ("Project", _s(_d(app.get("spec")).get("project"))),
            ("Source", f"{_s(spec_src.get('repoURL'))} {_s(spec_src.get('path'))}".strip()),
            (
                "Sync",
                Text.assemble(
                    (sync_status, render.SYNC_STYLE.get(sync_status, "")),
                    (f" to {_s(spec_src.get('targetRevision'))} ({revision[:7]})", MUTED)
                    if revision
                    else "",
                ),
            ),
            (
                "Health",
                Text.assemble(
                    (health_status, render.HEALTH_STYLE.get(health_status, "")),
                    (f"  {one_line(_s(health.get('message')))}", MUTED)
                    if health.get("message")
                    else "",
                ),
            ),
        ]
    )


def app_conditions(app: JSON, now: float) -> Table | Text:
    found = list(map(_d, _l(_d(app.get("status")).get("conditions"))))
    if not found:
        return literal("<none>", MUTED)
    rows = [
        (
            literal(_s(c.get("type")), BAD if _s(c.get("type")).endswith("Error") else WARN),
            literal(one_line(_s(c.get("message")), 300)),
            literal(_since(c.get("lastTransitionTime"), now)),
        )
        for c in found
    ]
    return grid(("CONDITION", "MESSAGE", "SINCE"), rows)


def last_operation(app: JSON, now: float) -> Table | Text:
    op = _d(_d(app.get("status")).get("operationState"))
    if not op:
        return literal("<none>", MUTED)
    phase = _s(op.get("phase"))
    started = _since(op.get("startedAt"), now)
    finished = _since(op.get("finishedAt"), now)
    return field_table(
        [
            ("Phase", literal(phase, render.OPERATION_STYLE.get(phase, ""))),
            ("Message", one_line(_s(op.get("message")), 300)),
            ("Started", f"{started} ago" if started else ""),
            ("Finished", f"{finished} ago" if finished else "still running"),
            ("Retries", _s(op.get("retryCount") or 0)),
        ]
    )


# --------------------------------------------------------------------------- node


def kind_container(node: Node) -> Table:
    """The Docker container behind a Kind node: state, last exit code, restart count."""
    state = node.container_state or "unknown"
    exit_code, restarts = node.container_exit_code, node.container_restarts
    return field_table(
        [
            ("Name", literal(node.name)),
            ("State", literal(state, OK if state == "running" else BAD)),
            # A running container's ExitCode is 0 by definition: only a stopped one's says why.
            ("Exit code", literal("?" if exit_code is None else str(exit_code),
                                  BAD if exit_code and state != "running" else "")),
            ("Restarts", literal("?" if restarts is None else str(restarts),
                                 WARN if restarts else "")),
        ]
    )  # fmt: skip


def node_text(node: JSON, kind: Node | None, now: float) -> list[tuple[str, Table | Text]]:
    status, spec = _d(node.get("status")), _d(node.get("spec"))
    info = _d(status.get("nodeInfo"))
    capacity, allocatable = _d(status.get("capacity")), _d(status.get("allocatable"))
    res = grid(
        ("RESOURCE", "CAPACITY", "ALLOCATABLE"),
        [(k, _s(capacity.get(k)), _s(allocatable.get(k))) for k in sorted(capacity)],
    )
    taints = [
        (
            f"{_s(t.get('key'))}={_s(t.get('value'))}:{_s(t.get('effect'))}"
            if t.get("value")
            else f"{_s(t.get('key'))}:{_s(t.get('effect'))}"
        )
        for t in map(_d, _l(spec.get("taints")))
    ]
    versions = field_table(
        [
            ("Kubelet", _s(info.get("kubeletVersion"))),
            ("Runtime", _s(info.get("containerRuntimeVersion"))),
            ("OS", f"{_s(info.get('osImage'))} ({_s(info.get('architecture'))})"),
            ("Kernel", _s(info.get("kernelVersion"))),
        ]
    )
    container = (
        kind_container(kind)
        if kind is not None and kind.container_state
        else literal("no Kind container seen by Docker", MUTED)
    )
    return [
        ("Conditions", conditions(node, now, good_when_false=True)),
        ("Capacity and allocatable", res),
        ("Versions", versions),
        ("Taints", literal("\n".join(taints) if taints else "<none>")),
        ("Container", container),
    ]
