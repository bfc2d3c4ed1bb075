"""Events in the lab's fake API server: core/v1 and events.k8s.io/v1.

core/v1 Events are ordinary objects of the store (resource `EVENTS`), so lists,
watches, field selectors and resourceVersions come from the generic machinery in
`kube_api`. This module adds what is particular to events
(docs/facts/kubernetes-drilldown.md §1-§3):

* `EventRecorder`: writes events as the kubelet's `record` package does (the same
  event again is the same object with `count+1` and a new `lastTimestamp`) or as the
  scheduler's events.k8s.io recorder does (`eventTime`, `series` on repeats, null
  first/last timestamps in the core/v1 view);
* the `events.k8s.io/v1` view of the same objects, converted field by field
  (§2.2), with its own field-label conversions and the 400 for unknown labels;
* the server-side table `kubectl get events` prints (§3.5).
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from megatui.lab import kube_api
from megatui.lab.kube_api import (
    EVENTS,
    JSON,
    TABLE_COLUMNS,
    ResourceExpired,
    StoreEvent,
    _col,
    encode_event,
    field_selector,
    human_duration,
    parse_bool,
    parse_time,
    read_verb,
    rfc3339,
)

if TYPE_CHECKING:
    from megatui.lab.kube_api import FakeKubeAPI, KubeStore

EVENTS_GROUP = "events.k8s.io"
EVENTS_V1_PATH = "/apis/events.k8s.io/v1"
EVENTS_GROUP_VERSION = {"groupVersion": "events.k8s.io/v1", "version": "v1"}


def micro_time(epoch: float) -> str:
    """metav1.MicroTime: UTC with six fractional digits."""
    stamp = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_name(involved_name: str, epoch: float) -> str:
    """`<name>.<hex UnixNano>`, as client-go's GenerateEventName."""
    return f"{involved_name}.{int(epoch * 1e9):x}"


def object_ref(obj: JSON, kind: str, api_version: str = "v1", field_path: str = "") -> JSON:
    meta = obj.get("metadata") or {}
    ref: JSON = {
        "kind": kind,
        "namespace": meta.get("namespace", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "apiVersion": api_version,
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if field_path:
        ref["fieldPath"] = field_path
    if not ref["namespace"]:
        del ref["namespace"]
    return ref


class EventRecorder:
    """Writes events into a store as the kubelet and the scheduler do."""

    def __init__(self, store: KubeStore) -> None:
        self._store = store
        self._by_key: dict[tuple[str, ...], str] = {}  # dedup key -> event name
        self._seq = 0

    def _name(self, involved: str, now: float) -> str:
        # Several events in one instant must not share a name: the nanoseconds differ.
        self._seq += 1
        return event_name(involved, now + self._seq * 1e-6)

    def _record(
        self,
        key: tuple[str, ...],
        namespace: str,
        involved: str,
        now: float,
        again: Callable[[JSON], None],
        first: JSON,
    ) -> JSON:
        """The recorders' one dedup rule: the same key again updates a copy of the stored
        event in place (`again`); a new key stores `first` under a fresh name."""
        name = self._by_key.get(key)
        old = self._store.get(EVENTS, name, namespace) if name else None
        if old is not None:
            event: JSON = json.loads(json.dumps(old))
            again(event)
            return self._store.set(EVENTS, event)
        name = self._name(involved, now)
        self._by_key[key] = name
        return self._store.set(
            EVENTS, {"metadata": {"name": name, "namespace": namespace}, **first}
        )

    def kubelet(
        self,
        pod: JSON,
        reason: str,
        message: str,
        *,
        now: float,
        type_: str = "Warning",
        container: str | None = None,
        component: str = "kubelet",
    ) -> JSON:
        """A core/v1 event; the same one again is PATCHed: count+1, new lastTimestamp."""
        meta = pod.get("metadata") or {}
        namespace = meta.get("namespace", "default")
        host = (pod.get("spec") or {}).get("nodeName", "")
        field_path = f"spec.containers{{{container}}}" if container else ""
        ref = object_ref(pod, "Pod", field_path=field_path)
        key = (namespace, ref["uid"], field_path, type_, reason, message, component)
        source = {"component": component, "host": host} if host else {"component": component}
        first: JSON = {
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "source": source,
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": host,
        }

        def again(event: JSON) -> None:
            event["count"] = int(event.get("count") or 1) + 1
            event["lastTimestamp"] = rfc3339(now)

        return self._record(key, namespace, meta.get("name", "x"), now, again, first)

    def scheduler(
        self, pod: JSON, reason: str, note: str, *, now: float, action: str, type_: str
    ) -> JSON:
        """An events.k8s.io event: the first note is kept, repeats grow `series`."""
        meta = pod.get("metadata") or {}
        namespace = meta.get("namespace", "default")
        ref = object_ref(pod, "Pod")
        key = (namespace, ref["uid"], type_, reason, action, "default-scheduler")

        first: JSON = {
            "involvedObject": ref,
            "reason": reason,
            "message": note,
            "source": {},
            "firstTimestamp": None,
            "lastTimestamp": None,
            "type": type_,
            "eventTime": micro_time(now),
            "action": action,
            "reportingComponent": "default-scheduler",
            "reportingInstance": "default-scheduler-kind-control-plane",
        }

        def again(event: JSON) -> None:
            count = int((event.get("series") or {}).get("count") or 1) + 1
            event["series"] = {"count": count, "lastObservedTime": micro_time(now)}

        return self._record(key, namespace, meta.get("name", "x"), now, again, first)


# --------------------------------------------------------------------------- events.k8s.io/v1

_V1_RENAMES = {
    "involvedObject": "regarding",
    "message": "note",
    "source": "deprecatedSource",
    "firstTimestamp": "deprecatedFirstTimestamp",
    "lastTimestamp": "deprecatedLastTimestamp",
    "count": "deprecatedCount",
    "reportingComponent": "reportingController",
}

#: events.k8s.io field labels and the core/v1 paths they stand for (§2.3).
_V1_FIELDS = {
    "reason": "reason",
    "reportingController": "reportingComponent",
    "source": "source.component",
    "type": "type",
    "metadata.namespace": "metadata.namespace",
    "metadata.name": "metadata.name",
    **{
        f"regarding.{k}": f"involvedObject.{k}"
        for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
    },
}


def to_events_v1(core: JSON) -> JSON:
    """The events.k8s.io/v1 view of a stored core/v1 event (conversion.go)."""
    out: JSON = {"kind": "Event", "apiVersion": "events.k8s.io/v1"}
    for key, value in core.items():
        if key in ("kind", "apiVersion"):
            continue
        new = _V1_RENAMES.get(key, key)
        if new == "deprecatedSource" and not value:
            continue
        if value is None and new != "eventTime":
            continue
        out[new] = value
    out.setdefault("eventTime", None)
    return out


class FieldLabelError(ValueError):
    pass


def _v1_selector(expr: str) -> str:
    """Rewrites an events.k8s.io field selector into core/v1 paths."""
    terms = []
    for term in (t for t in expr.split(",") if t.strip()):
        for op in ("!=", "==", "="):
            if op in term:
                label, value = term.split(op, 1)
                break
        else:
            raise FieldLabelError(f"invalid field selector term {term!r}")
        path = _V1_FIELDS.get(label.strip())
        if path is None:
            raise FieldLabelError(f"field label not supported: {label.strip()}")
        terms.append(f"{path}{op}{value}")
    return ",".join(terms)


def _v1_namespace(path: str) -> tuple[bool, str | None, str | None]:
    """(is an events.k8s.io events path, namespace, name)."""
    rest = [p for p in path[len(EVENTS_V1_PATH) :].split("/") if p]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or rest[0] != "events" or len(rest) > 2:
        return False, None, None
    return True, namespace, rest[1] if len(rest) == 2 else None


async def serve_events_v1(
    api: FakeKubeAPI, request: web.Request, path: str
) -> web.StreamResponse | None:
    """Discovery, list, get and watch of /apis/events.k8s.io/v1 (None: not ours)."""
    if path == "/apis/events.k8s.io":
        return web.json_response(
            {
                "kind": "APIGroup",
                "apiVersion": "v1",
                "name": EVENTS_GROUP,
                "versions": [EVENTS_GROUP_VERSION],
                "preferredVersion": EVENTS_GROUP_VERSION,
            }
        )
    if path == EVENTS_V1_PATH:
        entry = EVENTS.discovery()
        entry["shortNames"] = ["ev"]
        return web.json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "events.k8s.io/v1",
                "resources": [entry],
            }
        )
    if not path.startswith(EVENTS_V1_PATH + "/"):
        return None
    ours, namespace, name = _v1_namespace(path)
    if not ours:
        return None
    if request.method != "GET":
        return api._status(405, "MethodNotAllowed", "the lab serves events.k8s.io read-only")
    if {"events", "*"} & api.forbidden:
        return api.forbidden_status(
            request,
            "events.events.k8s.io",
            read_verb(request, name),
            "events",
            EVENTS_GROUP,
            namespace,
            {"group": EVENTS_GROUP, "kind": "events"},
        )
    if name is not None:
        obj = api.store.get(EVENTS, name, namespace)
        if obj is None:
            return api._status(
                404, "NotFound", f'events.events.k8s.io "{name}" not found',
                {"name": name, "group": EVENTS_GROUP, "kind": "events"},
            )  # fmt: skip
        return web.json_response(to_events_v1(obj))
    try:
        match = field_selector(_v1_selector(request.query.get("fieldSelector", "")))
    except FieldLabelError as exc:
        return api._status(400, "BadRequest", str(exc))
    if parse_bool(request.query.get("watch")):
        return await _watch_v1(api, request, namespace, match)
    items = [to_events_v1(o) for o in api.store.objects(EVENTS, namespace) if match(o)]
    for item in items:
        item.pop("kind")
        item.pop("apiVersion")
    return web.json_response(
        {
            "kind": "EventList",
            "apiVersion": "events.k8s.io/v1",
            "metadata": {"resourceVersion": str(api.store.resource_version)},
            "items": items,
        }
    )


async def _watch_v1(
    api: FakeKubeAPI, request: web.Request, namespace: str | None, match: Any
) -> web.StreamResponse:
    rv_param = request.query.get("resourceVersion", "")
    sub = api.store.subscribe(EVENTS, namespace, match)
    response = web.StreamResponse(status=200)
    response.content_type = "application/json"
    response.enable_chunked_encoding()
    try:
        initial: list[tuple[str, JSON]] = []
        if rv_param in ("", "0"):
            initial = [("ADDED", o) for o in api.store.objects(EVENTS, namespace) if match(o)]
        else:
            try:
                history = api.store.history_since(int(rv_param))
            except (ResourceExpired, ValueError) as exc:
                await response.prepare(request)
                status = kube_api._status_obj(410, "Expired", str(exc))
                await response.write(encode_event("ERROR", status))
                await response.write_eof()
                return response
            initial = [(ev.type, ev.obj) for ev in history if sub.wants(ev)]
        await response.prepare(request)
        for event_type, obj in initial:
            await response.write(encode_event(event_type, to_events_v1(obj)))
        timeout = float(request.query.get("timeoutSeconds") or 1800)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not api._stopping and loop.time() < deadline:
            try:
                async with asyncio.timeout(deadline - loop.time()):
                    item = await sub.queue.get()
            except TimeoutError:
                break
            if isinstance(item, StoreEvent):
                await response.write(encode_event(item.type, to_events_v1(item.obj)))
            elif item == "end":
                break
        await response.write_eof()
        return response
    except ConnectionError:
        raise asyncio.CancelledError from None
    finally:
        api.store.unsubscribe(sub)


# --------------------------------------------------------------------------- kubectl get events


def _event_cells(event: JSON, now: float) -> list[Any]:
    """printEvent: LAST SEEN, TYPE, REASON, OBJECT, MESSAGE, then the wide columns."""
    first_ts = parse_time(event.get("firstTimestamp")) or parse_time(event.get("eventTime"))
    series = event.get("series") or {}
    last_ts = parse_time(series.get("lastObservedTime")) or parse_time(event.get("lastTimestamp"))
    first = "<unknown>" if first_ts is None else human_duration(now - first_ts)
    last = first if last_ts is None else human_duration(now - last_ts)
    ref = event.get("involvedObject") or {}
    kind = str(ref.get("kind") or "").lower()
    obj = f"{kind}/{ref.get('name')}" if ref.get("name") else kind
    source = event.get("source") or {}
    component = source.get("component") or event.get("reportingComponent") or ""
    host = source.get("host") or event.get("reportingInstance") or ""
    count = int(event.get("count") or series.get("count") or 1)
    return [
        last,
        event.get("type", ""),
        event.get("reason", ""),
        obj,
        ref.get("fieldPath", ""),
        f"{component}, {host}" if host else component,
        str(event.get("message") or "").strip(),
        first,
        count,
        (event.get("metadata") or {}).get("name", ""),
    ]


TABLE_COLUMNS["events"] = [
    _col("Last Seen", "Time when this Event was last seen"),
    _col("Type", "Type of this event (Normal, Warning), new types could be added in future."),
    _col("Reason", "This should be a short, machine understandable string."),
    _col("Object", "The object this Event is about."),
    _col("Subobject", "The subobject this Event is about.", 1),
    _col("Source", "The component reporting this event.", 1),
    _col("Message", "A human-readable description of the status of this operation."),
    _col("First Seen", "The time at which the event was first recorded.", 1),
    _col("Count", "The number of times this event has occurred.", 1),
    _col("Name", "Name must be unique within a namespace.", 1, "name"),
]
kube_api._CELLS["events"] = _event_cells
