"""The monitor's drill-down side (issue #12): the namespace's Events, what the detail
screens fetch (a Pod, a Node, an Application), and pod logs.

`DrillDown` runs `sources.kube_events.EventsSource` and borrows its API client
for one-off GETs and log streams, so a detail screen opens no connection of its
own. Warning events join the timeline once per identity: a repeat replaces its
line (with the new count) instead of adding one.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import urllib.parse
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from megatui.api import ActionError
from megatui.clock import Clock
from megatui.config import Settings
from megatui.model import Event, KubeEvent, Pod

if TYPE_CHECKING:  # the kubernetes client is a slow import: only when used
    from megatui.sources.kube_events import EventsSource, EventsState
    from megatui.sources.kube_logs import LogBuffer, LogLine

log = logging.getLogger(__name__)

JSON = dict[str, Any]
KINDS = ("pod", "node", "application")
T = TypeVar("T")


async def detached(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro` run in an empty context instead of the caller's.

    A screen asks from its worker, whose context variables hold the Worker and so
    the screen. The API client's pooled connection (its socket reader handle) and
    aiohttp's timers keep the context they were created in: a request made in the
    worker's context kept each closed detail screen, with every strip it drew,
    alive for as long as the connection stayed in the pool, and the full GC pauses
    grew with every open. Cancelling the caller cancels the request.
    """
    return await asyncio.get_running_loop().create_task(coro, context=contextvars.Context())


def object_path(kind: str, namespace: str, name: str) -> str:
    q = urllib.parse.quote
    if kind == "pod":
        return f"/api/v1/namespaces/{q(namespace, safe='')}/pods/{q(name, safe='')}"
    if kind == "node":
        return f"/api/v1/nodes/{q(name, safe='')}"
    if kind == "application":
        return (
            f"/apis/argoproj.io/v1alpha1/namespaces/{q(namespace, safe='')}"
            f"/applications/{q(name, safe='')}"
        )
    raise ValueError(f"unknown kind {kind!r}")


class DrillDown:
    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        on_change: Callable[[], None],
        on_timeline: Callable[[Event], None],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._on_change = on_change
        self._on_timeline = on_timeline
        self.state: EventsState | None = None
        self._source: EventsSource | None = None
        self._seen: dict[str, tuple[int, float | None]] = {}  # warning key -> (count, last)

    @property
    def answered(self) -> bool:
        return self.state is not None and self.state.status is not None

    async def run(self, settings: Settings | None = None) -> None:
        from megatui.sources.kube_events import EventsSource

        self._source = EventsSource(settings or self.settings, self.clock, self._events)
        await self._source.run()

    def _events(self, state: EventsState) -> None:
        first = self.state is None
        self.state = state
        for ev in state.warnings():
            seen = self._seen.get(ev.key)
            if seen == (ev.count, ev.last):
                continue
            self._seen[ev.key] = (ev.count, ev.last)
            if first and ev.last is not None and self.clock.now() - ev.last > 3600:
                continue  # an hour-old event at start-up is history, not news
            self._on_timeline(timeline_event(ev, self.clock.now()))
        self._on_change()

    # --- what the screens ask for -------------------------------------------------------

    def problem(self) -> str | None:
        """The events watch's one-line error, if it is failing."""
        state = self.state
        if state is None or state.status is None or state.status.ok:
            return None
        return state.status.error

    def latest_warning(self, pod: Pod) -> tuple[str, str, int] | None:
        return self.state.latest_warning(pod) if self.state is not None else None

    def pod_events(self, namespace: str, name: str, uid: str = "") -> list[KubeEvent]:
        return self.state.for_pod(namespace, name, uid) if self.state is not None else []

    def _client(self) -> Any:
        client = self._source._client if self._source is not None else None
        if client is None:
            raise ActionError("not connected to the Kubernetes API server")
        return client

    async def _fetch(self, path: str, query: list[tuple[str, Any]], *, stream: bool) -> Any:
        import aiohttp

        from megatui.sources.kubeconfig import KubeError

        assert self._source is not None
        limit = self.settings.kube_request_timeout
        timeout = (
            aiohttp.ClientTimeout(total=None, sock_connect=limit)
            if stream
            else aiohttp.ClientTimeout(total=limit)
        )
        try:
            return await self._source._get(self._client(), path, query, timeout)
        except KubeError as exc:
            raise ActionError(str(exc)) from None

    async def get_object(self, kind: str, namespace: str, name: str) -> JSON:
        """GET one object; ActionError with the API's one line (404, 403...)."""
        return await detached(self._get_object(kind, namespace, name))

    async def _get_object(self, kind: str, namespace: str, name: str) -> JSON:
        from megatui.sources.kube_logs import status_line

        resp = await self._fetch(object_path(kind, namespace, name), [], stream=False)
        try:
            async with asyncio.timeout(self.settings.kube_request_timeout):
                body = await resp.read()
        except (TimeoutError, OSError) as exc:
            raise ActionError(f"reading the {kind} failed: {exc}") from None
        finally:
            resp.release()
        if resp.status != 200:
            raise ActionError(
                f"{status_line(resp.status, body)} ({resp.status})", status=resp.status
            )
        try:
            data = json.loads(body)
        except ValueError:
            raise ActionError(f"the API server sent an unreadable {kind}") from None
        if not isinstance(data, dict):
            raise ActionError(f"the API server sent an unreadable {kind}")
        return data

    # Monitor.follow_pod_logs's signature (MonitorAPI), to which it hands the call.
    async def follow_logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        buffer: LogBuffer,
        on_lines: Callable[[list[LogLine]], None],
        *,
        previous: bool = False,
    ) -> None:
        from megatui.sources.kube_logs import LogError, follow

        async def fetch(path: str, query: list[tuple[str, Any]]) -> Any:
            return await self._fetch(path, query, stream=True)

        # The stream runs detached (see `detached`); the lines are handed over in the
        # caller's context, where the screen's own calls (timers, `app`) work.
        caller = contextvars.copy_context()

        def arrived(lines: list[LogLine]) -> None:
            caller.run(on_lines, lines)

        try:
            await detached(
                follow(fetch, namespace, pod, container, buffer, arrived, previous=previous)
            )
        except LogError as exc:
            raise ActionError(str(exc), status=exc.status) from None


def timeline_event(ev: KubeEvent, now: float) -> Event:
    from megatui.sources.pod_why import one_line

    kind = (ev.object_kind or "object").lower()
    subject = f"{kind}/{ev.object_name}" if ev.object_name else kind
    times = f" (x{ev.count})" if ev.count > 1 else ""
    return Event(
        at=ev.last or now,
        kind="k8s",
        subject=subject,
        message=one_line(f"{ev.reason}{times}: {ev.message}", 200),
        severity="warning",
        key=ev.key,
    )
