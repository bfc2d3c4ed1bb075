"""Kubernetes Events of the watched namespace: list + watch, folded as kubectl folds them.

The list/watch loop is `KubeSource`'s (sources/kube.py): `EventsSource` is a
KubeSource over one resource, the namespace's events, and reports `EventsState`
instead of nodes and pods. core/v1 is watched (docs/facts/kubernetes-drilldown.md trap 1);
`parse_event` also reads the events.k8s.io/v1 shape (`regarding`, `note`,
`deprecated*`), so either API's objects fold into the same `KubeEvent`.

Folding (§1.4, §3.3-§3.5): the kubelet PATCHes a repeated event (count+1, new
lastTimestamp) and the events API grows `series`; both are one object, so the
index is keyed by the event's identity (namespace/name) and shows its count, never
one row per repeat. Time: first = eventTime or firstTimestamp; last =
series.lastObservedTime, lastTimestamp, else first (an event may carry only
eventTime).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from megatui.clock import Clock
from megatui.config import Settings
from megatui.model import KubeEvent, Pod, SourceStatus
from megatui.sources.kube import KubeSource, KubeState
from megatui.sources.kube_rows import Resource
from megatui.sources.kube_status import parse_time

EVENTS = "events"
MAX_MESSAGE = 1024  # notes may be up to 64 kB; a line in a table needs far less

JSON = dict[str, Any]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def parse_event(obj: JSON) -> KubeEvent:
    """A KubeEvent from a core/v1 or events.k8s.io/v1 object; never raises (a missing
    involvedObject leaves the object fields empty)."""
    meta = _dict(obj.get("metadata"))
    v1 = "regarding" in obj or "note" in obj or "deprecatedCount" in obj
    ref = _dict(obj.get("regarding" if v1 else "involvedObject"))
    series = _dict(obj.get("series"))
    source = _dict(obj.get("deprecatedSource" if v1 else "source"))
    first = parse_time(obj.get("eventTime")) or parse_time(
        obj.get("deprecatedFirstTimestamp" if v1 else "firstTimestamp")
    )
    last = (
        parse_time(series.get("lastObservedTime"))
        or parse_time(obj.get("deprecatedLastTimestamp" if v1 else "lastTimestamp"))
        or first
    )
    raw_count = series.get("count") or obj.get("deprecatedCount" if v1 else "count") or 1
    count = raw_count if isinstance(raw_count, int) and raw_count > 0 else 1
    message = _str(obj.get("note" if v1 else "message")).strip()[:MAX_MESSAGE]
    component = _str(source.get("component")) or _str(
        obj.get("reportingController" if v1 else "reportingComponent")
    )
    return KubeEvent(
        namespace=_str(meta.get("namespace")),
        name=_str(meta.get("name")),
        type=_str(obj.get("type")) or "Normal",
        reason=_str(obj.get("reason")),
        message=message,
        object_kind=_str(ref.get("kind")),
        object_name=_str(ref.get("name")),
        object_uid=_str(ref.get("uid")),
        field_path=_str(ref.get("fieldPath")),
        count=count,
        first=first,
        last=last,
        source=component,
    )


def _event_entry(obj: JSON, _now: float) -> tuple[str, Any]:
    event = parse_event(obj)
    return event.key, event


@dataclass(frozen=True, slots=True)
class EventsState:
    events: tuple[KubeEvent, ...] = ()
    status: SourceStatus | None = None
    _by_pod: dict[str, list[KubeEvent]] = field(default_factory=dict, compare=False)

    @classmethod
    def build(cls, events: Iterable[KubeEvent], status: SourceStatus | None) -> EventsState:
        items = tuple(events)
        by_pod: dict[str, list[KubeEvent]] = {}
        for ev in items:
            if ev.object_kind in ("Pod", "") and ev.object_name:
                by_pod.setdefault(f"{ev.namespace}/{ev.object_name}", []).append(ev)
        for found in by_pod.values():
            found.sort(key=lambda e: e.last or e.first or 0.0, reverse=True)
        return cls(items, status, by_pod)

    def for_pod(self, namespace: str, name: str, uid: str = "") -> list[KubeEvent]:
        """The pod's events, newest first; with a uid, those of an older pod of the
        same name (a recreated StatefulSet pod) are left out, as describe does."""
        found = self._by_pod.get(f"{namespace}/{name}", [])
        if uid:
            found = [e for e in found if not e.object_uid or e.object_uid == uid]
        return found

    def latest_warning(self, pod: Pod) -> tuple[str, str, int] | None:
        uid = pod.clue.uid if pod.clue else ""
        for ev in self.for_pod(pod.namespace, pod.name, uid):
            if ev.type == "Warning":
                return ev.reason, ev.message, ev.count
        return None

    def warnings(self) -> list[KubeEvent]:
        return [e for e in self.events if e.type == "Warning"]


class EventsSource(KubeSource):
    """List + watch of the namespace's events with KubeSource's loop (RV, bookmarks,
    410 relist, backoff, one-line errors)."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        on_events: Callable[[EventsState], None],
        *,
        api: str = "v1",
    ) -> None:
        super().__init__(settings, clock, self._report)
        self.on_events = on_events
        ns = urllib.parse.quote(settings.namespace, safe="")
        path = (
            f"/apis/events.k8s.io/v1/namespaces/{ns}/events"
            if api == "events.k8s.io/v1"
            else f"/api/v1/namespaces/{ns}/events"
        )
        self.events = Resource(EVENTS, path, _event_entry)
        self._resources = (self.events,)  # type: ignore[assignment]

    def _build_state(self) -> KubeState:
        h = self.events.health
        status = (
            SourceStatus(EVENTS, h.ok, h.error, h.updated_at, h.next_retry_at, h.note)
            if h.known
            else None
        )
        return KubeState(
            context=self._context,
            statuses={EVENTS: status} if status else {},
            answered=h.known,
        )

    def _report(self, state: KubeState) -> None:
        self.on_events(EventsState.build(self.events.rows.rows(), state.statuses.get(EVENTS)))
