"""The server's drill-down routes: a pod's Events, one Kubernetes object, pod logs.

They answer what the detail screens ask `MonitorAPI` for, so that an attached TUI
(and the browser) drills down as a local one does. All are read-only: no
--allow-actions needed; the auth middleware applies as to every route.

Pod logs are a stream of newline-delimited JSON (application/x-ndjson), one object
per line:

  {"stamp": "2026-...Z", "text": "..."}   a log line (stamp "" when the kubelet gave none)
  {"keepalive": true}                     every KEEPALIVE seconds of quiet
  {"end": true}                           the log ended (the container stopped, or
                                          the previous run was read): do not reconnect
  {"error": "...", "status": 400}         the API server refused (or the read failed)

A refusal that comes before any line is the response itself, with its HTTP status
(400, 403, 404 as the API server answered; 502 when it could not be asked). A stream
without its `end` or `error` line broke off: the client resumes it. Each stream is
bounded (a viewer that does not keep up is cut off, not buffered for) and its read
of the API server is cancelled when the viewer goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from aiohttp import web

from megatui.api import ActionError, MonitorAPI
from megatui.drill import KINDS
from megatui.snapshot_json import encode_kube_event
from megatui.sources.kube_logs import LogBuffer, LogLine

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
#: Statuses of the API server passed on as they are; any other failure is 502.
PASSED_ON = frozenset({400, 403, 404, 410})
QUEUE = 256  # batches of lines waiting to be written, per stream
FIRST_WAIT = 3.0  # how long a refusal may take to count as the response's status
KEEPALIVE = 15.0
GONE_CHECK = 1.0
WRITE_TIMEOUT = 10.0
SNAPSHOT_IDLE = 1.0  # follow=false: the tail ends after this long without new lines


def error_status(exc: ActionError) -> int:
    return exc.status if exc.status in PASSED_ON else 502


def _error(status: int, message: str) -> web.Response:
    body = json.dumps({"error": message, "status": status}, ensure_ascii=False) + "\n"
    return web.Response(status=status, text=body, content_type="application/json")


def _flag(value: str | None, default: bool) -> bool | None:
    if value is None or value == "":
        return default
    return {"true": True, "1": True, "false": False, "0": False}.get(value.lower())


def _line(data: object) -> bytes:
    return (json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


class _Overflow(Exception):
    """The viewer does not read fast enough."""


class DrillRoutes:
    def __init__(self, monitor: MonitorAPI, max_streams: int = 32) -> None:
        self.monitor = monitor
        self.max_streams = max_streams
        self._streams: set[asyncio.Task[object]] = set()
        #: Log streams opened so far (for tests and metrics).
        self.opened = 0

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/pods/{namespace}/{name}/events", self.pod_events),
            web.get("/api/v1/pods/{namespace}/{name}/logs", self.pod_logs),
            web.get("/api/v1/objects/{kind}/{name}", self.kube_object),
            web.get("/api/v1/objects/{kind}/{namespace}/{name}", self.kube_object),
        ]

    @property
    def streams(self) -> int:
        return len(self._streams)

    def close(self) -> None:
        """Cut every log stream (the server stops, or a test plays a broken link)."""
        for task in list(self._streams):
            task.cancel()

    async def pod_events(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        uid = request.query.get("uid", "")
        events = self.monitor.pod_events(namespace, name, uid)
        body = {
            "events": [encode_kube_event(e) for e in events],
            "problem": self.monitor.events_problem(),
        }
        return web.Response(
            text=json.dumps(body, ensure_ascii=False) + "\n", content_type="application/json"
        )

    async def kube_object(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        namespace = request.match_info.get("namespace", "")
        name = request.match_info["name"]
        if kind not in KINDS:
            return _error(404, f"unknown kind '{kind}' ({', '.join(KINDS)})")
        if (kind == "node") != (namespace == ""):
            where = "no namespace" if kind == "node" else "a namespace"
            return _error(404, f"a {kind} takes {where}")
        try:
            obj = await self.monitor.kube_object(kind, namespace, name)
        except ActionError as exc:
            return _error(error_status(exc), str(exc))
        return web.Response(
            text=json.dumps(obj, ensure_ascii=False) + "\n", content_type="application/json"
        )

    # --- pod logs ----------------------------------------------------------------------

    async def pod_logs(self, request: web.Request) -> web.StreamResponse:
        namespace, pod = request.match_info["namespace"], request.match_info["name"]
        container = request.query.get("container", "")
        previous = _flag(request.query.get("previous"), False)
        follow = _flag(request.query.get("follow"), True)
        if not container:
            return _error(400, "container: required")
        if previous is None or follow is None:
            return _error(400, "previous, follow: expected true or false")
        if len(self._streams) >= self.max_streams:
            return _error(503, "busy: too many log streams at once")
        me = asyncio.current_task()
        assert me is not None
        self._streams.add(me)
        self.opened += 1
        queue: asyncio.Queue[list[LogLine]] = asyncio.Queue(maxsize=QUEUE)
        overflow = False

        def arrived(lines: list[LogLine]) -> None:
            nonlocal overflow
            try:
                queue.put_nowait(lines)
            except asyncio.QueueFull:
                overflow = True
                reader.cancel()

        reader = asyncio.create_task(
            self.monitor.follow_pod_logs(
                namespace, pod, container, LogBuffer(limit=1), arrived, previous=previous
            )
        )
        try:
            return await self._stream(request, reader, queue, lambda: overflow, follow or previous)
        except asyncio.CancelledError:
            if request.transport is not None:  # cut, as a broken link would be
                request.transport.abort()
            raise
        finally:
            self._streams.discard(me)
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def _stream(
        self,
        request: web.Request,
        reader: asyncio.Task[None],
        queue: asyncio.Queue[list[LogLine]],
        overflowed: Callable[[], bool],
        wait_for_end: bool,
    ) -> web.StreamResponse:
        # A refusal comes within moments: wait for it (or the first lines) so that it
        # can be the response's own status.
        getter = asyncio.ensure_future(queue.get())
        done, _ = await asyncio.wait(
            {reader, getter}, timeout=FIRST_WAIT, return_when="FIRST_COMPLETED"
        )
        first: list[LogLine] = []
        if getter in done:
            first = getter.result()
        else:
            getter.cancel()
        if reader in done and not first and queue.empty():
            exc = reader.exception()
            if isinstance(exc, ActionError):
                return _error(error_status(exc), str(exc))
        response = web.StreamResponse(
            headers={"Content-Type": NDJSON, "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        if first:
            await self._write(response, first)
        idle = 0.0
        while True:
            if reader.done() and queue.empty():
                break
            try:
                async with asyncio.timeout(GONE_CHECK):
                    batch = await queue.get() if not reader.done() or not queue.empty() else []
                idle = 0.0
                await self._write(response, batch)
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    return response  # the viewer went: `finally` stops the read
                idle += GONE_CHECK
                if not wait_for_end and idle >= SNAPSHOT_IDLE:
                    reader.cancel()
                    await self._send(response, {"end": True})
                    return response
                if idle >= KEEPALIVE:
                    idle = 0.0
                    await self._send(response, {"keepalive": True})
            except (ConnectionError, _Overflow):
                return response
        await self._send(response, self._outcome(reader, overflowed()))
        await response.write_eof()
        return response

    @staticmethod
    def _outcome(reader: asyncio.Task[None], overflowed: bool) -> dict[str, object]:
        if overflowed:
            return {"error": "the viewer did not keep up with the log", "status": 503}
        exc = reader.exception() if not reader.cancelled() else None
        if exc is None:
            return {"end": True}
        if isinstance(exc, ActionError):
            return {"error": str(exc), "status": error_status(exc)}
        log.error("reading a pod log failed", exc_info=exc)
        return {"error": f"cannot read the log: {exc}", "status": 502}

    async def _write(self, response: web.StreamResponse, batch: list[LogLine]) -> None:
        if batch:
            data = b"".join(_line({"stamp": x.stamp, "text": x.text}) for x in batch)
            await self._send_bytes(response, data)

    async def _send(self, response: web.StreamResponse, data: object) -> None:
        await self._send_bytes(response, _line(data))

    @staticmethod
    async def _send_bytes(response: web.StreamResponse, data: bytes) -> None:
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await response.write(data)
        except TimeoutError:
            log.warning("dropping a log viewer whose writes stall")
            raise _Overflow from None
