"""Server-Sent Events from one monitor to many viewers, with bounded memory.

Every monitor change becomes a `snapshot` event (the whole document, encoded once for
all viewers) and one `timeline` event per new timeline entry. Ids are
`EPOCH-SEQUENCE`; the last `RING` timeline events are kept so that a viewer that
reconnects with `Last-Event-ID` gets what it missed, then the current snapshot. An id
from another server run, or one older than the ring, gets a `gap` event first: the
viewer knows it lost timeline entries.

Each viewer has a bounded queue. A viewer that does not keep up (its queue is full, or
one write takes longer than `write_timeout`) is dropped, never buffered for.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from megatui.api import MonitorAPI
from megatui.model import Event, Snapshot
from megatui.snapshot_json import encode, encode_event

log = logging.getLogger(__name__)

RING = 1000
QUEUE = 64
KEEPALIVE = 15.0
GONE_CHECK = 1.0


@dataclass(frozen=True, slots=True)
class Message:
    id: str
    event: str
    data: str

    def frame(self) -> bytes:
        lines = "".join(f"data: {line}\n" for line in self.data.split("\n"))
        return f"id: {self.id}\nevent: {self.event}\n{lines}\n".encode()


class _Viewer:
    def __init__(self, task: asyncio.Task[object] | None, size: int) -> None:
        self.queue: asyncio.Queue[Message] = asyncio.Queue(maxsize=size)
        self.task = task
        self.dropped = False


class EventHub:
    """Turns monitor changes into SSE messages and hands them to every viewer."""

    def __init__(
        self,
        monitor: MonitorAPI,
        *,
        ring: int = RING,
        queue: int = QUEUE,
        write_timeout: float = 10.0,
        keepalive: float = KEEPALIVE,
        max_viewers: int = 200,
    ) -> None:
        self.monitor = monitor
        self.epoch = secrets.token_hex(4)
        self.queue_size = queue
        self.write_timeout = write_timeout
        self.keepalive = keepalive
        self.max_viewers = max_viewers
        self._seq = 0
        self._ring: deque[tuple[int, Message]] = deque(maxlen=ring)
        self._viewers: set[_Viewer] = set()
        self._last_event: Event | None = None
        self._snap = monitor.snapshot
        self._snap_id = self._next_id()[1]
        self._snap_message: Message | None = None
        events = monitor.events
        self._last_event = events[-1] if events else None
        self._unsubscribe: Callable[[], None] | None = None
        #: How many viewers were dropped for not keeping up (for tests and metrics).
        self.dropped = 0

    def start(self) -> None:
        self._unsubscribe = self.monitor.subscribe(self._on_snapshot)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for viewer in list(self._viewers):
            self._drop(viewer, count=False)

    @property
    def viewers(self) -> int:
        return len(self._viewers)

    def _next_id(self) -> tuple[int, str]:
        self._seq += 1
        return self._seq, f"{self.epoch}-{self._seq}"

    @property
    def _snapshot_message(self) -> Message:
        """The newest snapshot as a message, encoded once, and only when someone needs it
        (with nobody watching, a change costs no encoding)."""
        if self._snap_message is None:
            data = json.dumps(encode(self._snap, self.monitor.retry_in), separators=(",", ":"))
            self._snap_message = Message(self._snap_id, "snapshot", data)
        return self._snap_message

    def _new_events(self) -> Sequence[Event]:
        """The timeline entries since the last call: the monitor's timeline is bounded
        and only appended to, so they are the ones after the last entry seen."""
        events = self.monitor.events
        if not events:
            return ()
        last = self._last_event
        start = 0
        if last is not None:
            # The same object normally; an equal one if the monitor copied its timeline.
            for same in (lambda e: e is last, lambda e: e == last):
                found = next((i for i in range(len(events) - 1, -1, -1) if same(events[i])), None)
                if found is not None:
                    start = found + 1
                    break
        self._last_event = events[-1]
        return events[start:]

    def _on_snapshot(self, snap: Snapshot) -> None:
        for event in self._new_events():
            seq, ident = self._next_id()
            message = Message(ident, "timeline", json.dumps(encode_event(event)))
            self._ring.append((seq, message))
            self._broadcast(message)
        self._snap, self._snap_id, self._snap_message = snap, self._next_id()[1], None
        if self._viewers:
            self._broadcast(self._snapshot_message)

    def _broadcast(self, message: Message) -> None:
        for viewer in list(self._viewers):
            try:
                viewer.queue.put_nowait(message)
            except asyncio.QueueFull:
                log.warning("dropping an event viewer that does not keep up")
                self._drop(viewer)

    def _drop(self, viewer: _Viewer, *, count: bool = True) -> None:
        if viewer.dropped:
            return
        viewer.dropped = True
        self._viewers.discard(viewer)
        if count:
            self.dropped += 1
        if viewer.task is not None:
            viewer.task.cancel()

    def backlog(self, last_id: str | None) -> list[Message]:
        """What a viewer that last saw `last_id` gets first."""
        out: list[Message] = []
        if last_id:
            epoch, _, seq_text = last_id.partition("-")
            seq = int(seq_text) if seq_text.isdigit() else -1
            oldest = self._ring[0][0] if self._ring else self._seq + 1
            if epoch != self.epoch or seq < oldest - 1 or seq > self._seq:
                out.append(Message(self._snapshot_message.id, "gap", "{}"))
            else:
                out.extend(m for s, m in self._ring if s > seq)
        out.append(self._snapshot_message)
        return out

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """The handler of GET /api/v1/events."""
        if len(self._viewers) >= self.max_viewers:
            raise web.HTTPServiceUnavailable(text="too many event viewers\n")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        backlog = self.backlog(request.headers.get("Last-Event-ID"))
        viewer = _Viewer(asyncio.current_task(), self.queue_size + len(backlog))
        for message in backlog:
            viewer.queue.put_nowait(message)
        self._viewers.add(viewer)
        try:
            idle = 0.0
            while True:
                try:
                    async with asyncio.timeout(GONE_CHECK):
                        message = await viewer.queue.get()
                    payload, idle = message.frame(), 0.0
                except TimeoutError:
                    # A viewer that went away is noticed within GONE_CHECK, not at the
                    # next write.
                    if request.transport is None or request.transport.is_closing():
                        break
                    idle += GONE_CHECK
                    if idle < self.keepalive:
                        continue
                    payload, idle = b": keepalive\n\n", 0.0
                async with asyncio.timeout(self.write_timeout):
                    await response.write(payload)
        except TimeoutError:
            log.warning("dropping an event viewer whose writes stall")
            self._drop(viewer)
        except ConnectionError:
            pass
        except asyncio.CancelledError:
            if not viewer.dropped:  # the server is stopping, not a drop of ours
                raise
        finally:
            self._viewers.discard(viewer)
            viewer.dropped = True
        # A dropped viewer's connection is cut, not drained: its buffers may be full.
        if request.transport is not None:
            request.transport.abort()
        return response
