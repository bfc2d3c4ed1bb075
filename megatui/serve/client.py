"""`megatui attach`: a `MonitorAPI` over a running server's HTTP API.

The snapshot comes from /api/v1/status and then from the /api/v1/events stream
(reconnecting with Last-Event-ID); actions are POSTs. Everything received is
shape-checked (snapshot_json.decode). While the server cannot be reached the
snapshot carries a failing `server` source, which the TUI shows like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
from yarl import URL

from megatui.api import ActionError
from megatui.backends.base import NewVMSpec
from megatui.config import Settings, state_dir
from megatui.model import Event, KubeEvent, Snapshot, SourceStatus
from megatui.recovery import RecoveryStatus, status_from_json
from megatui.serve import remote_logs
from megatui.snapshot_json import SnapshotFormatError, decode, decode_event, decode_kube_event
from megatui.sources.kube_logs import LogBuffer, LogLine
from megatui.subscribers import Subscribers

log = logging.getLogger(__name__)

SOURCE_SERVER = "server"
MAX_EVENTS = 500
RECONNECT_MAX = 10.0
EVENTS_FRESH = 2.0  # a pod's events are asked for again when older than this
EVENTS_PODS = 32  # pods whose events are cached
_MAX_NOTE = 300  # an action's note, as any one-line message


class AttachError(Exception):
    """The server cannot be used; one line, with its exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    """Where the server is: an http(s) URL, or `unix:PATH` for its private socket."""

    base: str
    socket: str | None = None
    token: str | None = None

    @classmethod
    def parse(cls, url: str, token: str | None = None) -> Target:
        if url.startswith("unix:"):
            return cls("http://localhost", url[5:], token)
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise AttachError(f"not a server URL: {url!r} (expected http://HOST:PORT)", 2)
        token = parsed.query.get("token") or token
        return cls(str(parsed.with_query(None).with_path("")).rstrip("/"), None, token)

    def session(self, timeout: float | None = 10.0) -> aiohttp.ClientSession:
        connector: aiohttp.BaseConnector | None = (
            aiohttp.UnixConnector(path=self.socket) if self.socket else None
        )
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        if self.socket is None:
            headers["Origin"] = self.base
        return aiohttp.ClientSession(
            self.base,
            connector=connector,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout, connect=5.0),
        )


async def _read_error(reply: aiohttp.ClientResponse) -> str:
    text = await reply.text()
    try:
        data = json.loads(text)
        message = data.get("error") if isinstance(data, dict) else None
    except ValueError:
        message = None
    return str(message or text.strip().splitlines()[0] if text.strip() else reply.reason)


def _note(text: str) -> str | None:
    """The note of an action's reply (`{"note": "recreated from its spec"}`): one
    line of text, or None when there is none, or it is not that shape (a server from
    before notes, or garbage: the action itself succeeded either way)."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    note = data.get("note") if isinstance(data, dict) else None
    if not isinstance(note, str) or not note.strip():
        return None
    line = " ".join(note.split())
    return line if len(line) <= _MAX_NOTE else line[: _MAX_NOTE - 1] + "…"


async def probe(target: Target) -> dict[str, Any]:
    """The server's /api/v1/healthz; AttachError when it cannot be used."""
    try:
        async with target.session() as session, session.get("/api/v1/healthz") as reply:
            if reply.status == 401:
                raise AttachError("the server refused the token (401): pass --token-file", 2)
            if reply.status != 200:
                raise AttachError(f"the server answered {reply.status}: {await _read_error(reply)}")
            data = await reply.json()
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise AttachError(f"cannot reach {target.base}: {exc or type(exc).__name__}") from None
    if not isinstance(data, dict) or data.get("ok") is not True:
        raise AttachError(f"{target.base} is not a megatui server")
    return data


MAX_LINE = 64 * 1024 * 1024  # a snapshot of a big platform is one long data line


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Lines of any length up to MAX_LINE (aiohttp's readline stops at 128 KiB)."""
    buffer = b""
    while True:
        chunk = await content.readany()
        if not chunk:
            return
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            yield buffer[:end]
            buffer = buffer[end + 1 :]
        if len(buffer) > MAX_LINE:
            raise SnapshotFormatError(f"an event line longer than {MAX_LINE} bytes")


async def sse_messages(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, str, str]]:
    """(id, event, data) for each message of a text/event-stream."""
    ident = event = ""
    data: list[str] = []
    async for raw in _lines(content):
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line:
            if data:
                yield ident, event or "message", "\n".join(data)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            ident = value
        elif field == "event":
            event = value
        elif field == "data":
            data.append(value)


class RemoteMonitor:
    """MonitorAPI fed by a megatui server."""

    def __init__(self, target: Target, *, actions: bool = False) -> None:
        self.target = target
        self.actions = actions
        self._snapshot = Snapshot(generated_at=time.time(), host=target.base, readonly=not actions)
        self._events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self._retry: dict[str, float] = {}
        self._retry_base = time.monotonic()
        self._subscribers: Subscribers[Snapshot] = Subscribers("snapshot subscriber")
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_id: str | None = None
        self.connected = asyncio.Event()
        # Pod events: (namespace, name, uid) -> (when fetched, events), newest use last.
        self._pod_events: dict[tuple[str, str, str], tuple[float, list[KubeEvent]]] = {}
        self._events_tasks: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._events_problem: str | None = None
        self._events_error: str | None = None

    # --- MonitorAPI ------------------------------------------------------------------
    # (Its signatures stand again in api.py and monitor.py: a Protocol's methods are
    # spelt out in each implementation.)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def events(self) -> Sequence[Event]:
        return tuple(self._events)

    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        return self._subscribers.subscribe(callback)

    async def start(self) -> None:
        if self._task is None:
            self._session = self.target.session(timeout=None)
            self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        for task in list(self._events_tasks.values()):
            task.cancel()
        self._events_tasks.clear()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    def refresh(self) -> None:
        """The server's monitor keeps its own pace; nothing to do from a viewer."""

    def retry_in(self, source: str) -> float | None:
        wait = self._retry.get(source)
        if wait is None:
            return None
        return max(0.0, wait - (time.monotonic() - self._retry_base))

    async def start_vm(self, name: str) -> str | None:
        return await self._action(name, "start")

    async def stop_vm(self, name: str) -> None:
        await self._action(name, "stop")

    async def suspend_vm(self, name: str) -> None:
        await self._action(name, "suspend")

    async def create_vm(self, spec: NewVMSpec) -> None:
        raise ActionError("creating a VM is not available in an attached viewer yet")

    async def delete_vm(self, name: str) -> None:
        raise ActionError("deleting a VM is not available in an attached viewer yet")

    def ssh_argv(self, name: str) -> list[str]:
        raise ActionError("ssh is not available in an attached viewer: ssh from the server's side")

    def log_path(self, name: str) -> str:
        return f"{self.target.base} (the server's log of {name})"

    async def vm_details(self, name: str) -> dict[str, object]:
        data = await self._get(f"/api/v1/vms/{name}")
        if not isinstance(data, dict):
            raise ActionError("the server sent VM details that are not an object")
        return data

    async def read_log_tail(self, name: str, lines: int = 50) -> list[str]:
        try:
            data = await self._get(f"/api/v1/vms/{name}/log", {"lines": str(lines)})
        except ActionError:
            return []
        got = data.get("lines") if isinstance(data, dict) else None
        if not isinstance(got, list):
            return []
        return [line for line in got if isinstance(line, str)]

    async def recovery_status(self, name: str) -> RecoveryStatus | None:
        """The server's recovery of the VM (policy, restarts), for the detail screen."""
        data = await self._get("/api/v1/recovery")
        vms = data.get("vms") if isinstance(data, dict) else None
        return status_from_json(vms.get(name)) if isinstance(vms, dict) else None

    # --- drill-down, through the server (drill_routes.py) ------------------------------

    def pod_events(self, namespace: str, name: str, uid: str = "") -> list[KubeEvent]:
        """What the server last said, at once (the screen asks on every redraw); an
        answer older than EVENTS_FRESH is asked for again, and a changed one redraws."""
        key = (namespace, name, uid)
        cached = self._pod_events.get(key)
        stale = cached is None or time.monotonic() - cached[0] > EVENTS_FRESH
        if stale and key not in self._events_tasks and self._session is not None:
            task = asyncio.get_running_loop().create_task(self._fetch_events(key))
            self._events_tasks[key] = task
            task.add_done_callback(lambda _t: self._events_tasks.pop(key, None))
        return list(cached[1]) if cached is not None else []

    def events_problem(self) -> str | None:
        return self._events_error or self._events_problem

    async def _fetch_events(self, key: tuple[str, str, str]) -> None:
        namespace, name, uid = key
        path = f"/api/v1/pods/{_quote(namespace)}/{_quote(name)}/events"
        old = self._pod_events.get(key)
        before = (old[1] if old else None, self._events_problem, self._events_error)
        try:
            data = await self._get(path, {"uid": uid} if uid else None)
            events, self._events_problem = _decode_pod_events(data)
            self._events_error = None
        except (ActionError, SnapshotFormatError) as exc:
            self._events_error = f"server: {exc}"
        else:
            self._pod_events.pop(key, None)  # the newest last: the oldest goes first
            self._pod_events[key] = (time.monotonic(), events)
            while len(self._pod_events) > EVENTS_PODS:
                del self._pod_events[next(iter(self._pod_events))]
        new = self._pod_events.get(key)
        if before != (new[1] if new else None, self._events_problem, self._events_error):
            self._publish(self._snapshot)  # the detail screen draws the events anew

    async def kube_object(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        from megatui.drill import KINDS

        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        where = f"{_quote(namespace)}/" if namespace and kind != "node" else ""
        data = await self._get(f"/api/v1/objects/{kind}/{where}{_quote(name)}")
        meta = data.get("metadata") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(meta, dict):
            raise ActionError(f"the server sent a {kind} that is not a Kubernetes object")
        if meta.get("name") != name:
            raise ActionError(f"the server sent another {kind} than {name!r}")
        return data

    async def follow_pod_logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        buffer: LogBuffer,
        on_lines: Callable[[list[LogLine]], None],
        *,
        previous: bool = False,
    ) -> None:
        await remote_logs.follow(
            self._client(),
            namespace,
            pod,
            container,
            buffer,
            on_lines,
            previous=previous,
        )

    # --- HTTP --------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise ActionError("not connected to the server")
        return self._session

    async def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            async with asyncio.timeout(15.0):
                async with self._client().get(path, params=params) as reply:
                    if reply.status != 200:
                        raise ActionError(await _read_error(reply), status=reply.status)
                    return await reply.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ActionError(f"server: {exc or type(exc).__name__}") from None

    async def _action(self, name: str, verb: str) -> str | None:
        """POST the action; the server's note about it (see `_note`), if any."""
        if not self.actions:
            raise ActionError(f"refusing to {verb} VMs: the server is read-only for viewers")
        try:
            async with asyncio.timeout(60.0):
                async with self._client().post(f"/api/v1/vms/{name}/{verb}") as reply:
                    if reply.status >= 300:
                        raise ActionError(await _read_error(reply))
                    return _note(await reply.text())
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ActionError(f"server: {exc or type(exc).__name__}") from None

    # --- following the server ------------------------------------------------------------

    async def _follow(self) -> None:
        delay = 0.5
        while True:
            try:
                await self._stream()
                problem = "the server closed the event stream"
            except (aiohttp.ClientError, OSError, TimeoutError, ActionError) as exc:
                problem = f"cannot reach the server: {exc or type(exc).__name__}"
            except SnapshotFormatError as exc:
                problem = f"the server sent a bad snapshot: {exc}"
            if self.connected.is_set():  # it was up: try again soon
                delay = 0.5
            self.connected.clear()
            self._mark_down(problem, delay)
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX, delay * 2)

    async def _stream(self) -> None:
        session = self._client()
        if not self._events:
            timeline = await self._get("/api/v1/timeline")
            items = timeline.get("events") if isinstance(timeline, dict) else None
            if isinstance(items, list):
                self._events.extend(decode_event(e) for e in items)
        headers = {"Last-Event-ID": self._last_id} if self._last_id else {}
        async with session.get("/api/v1/events", headers=headers) as reply:
            if reply.status != 200:
                raise aiohttp.ClientError(f"events: {reply.status} {await _read_error(reply)}")
            async for ident, event, data in sse_messages(reply.content):
                self._last_id = ident or self._last_id
                self._handle(event, data)

    def _handle(self, event: str, data: str) -> None:
        try:
            doc = json.loads(data)
        except ValueError:
            raise SnapshotFormatError(f"{event}: not JSON") from None
        if event == "timeline":
            self._events.append(decode_event(doc))
        elif event == "snapshot":
            snap, retry = decode(doc)
            self._retry, self._retry_base = retry, time.monotonic()
            self.connected.set()
            self._publish(replace(snap, readonly=snap.readonly or not self.actions))
        elif event == "gap":
            self._events.append(
                Event(time.time(), "source", SOURCE_SERVER, "missed events while away", "warning")
            )

    def _mark_down(self, problem: str, retry: float) -> None:
        sources = dict(self._snapshot.sources)
        sources[SOURCE_SERVER] = SourceStatus(SOURCE_SERVER, ok=False, error=problem)
        self._retry[SOURCE_SERVER] = retry
        self._retry_base = time.monotonic()
        self._publish(replace(self._snapshot, sources=sources, generated_at=time.time()))

    def _publish(self, snap: Snapshot) -> None:
        self._snapshot = snap
        self._subscribers.publish(snap)


def _quote(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _decode_pod_events(data: object) -> tuple[list[KubeEvent], str | None]:
    if not isinstance(data, dict) or not isinstance(data.get("events"), list):
        raise SnapshotFormatError("pod events: expected an object with an events list")
    problem = data.get("problem")
    if problem is not None and not isinstance(problem, str):
        raise SnapshotFormatError("pod events: problem: expected str")
    events = [decode_kube_event(e, f"events[{i}]") for i, e in enumerate(data["events"])]
    return events, problem


def resolve_token(url: str, token_file: str | None, environ: dict[str, str]) -> str | None:
    """The token for `url`: --token-file, then MEGATUI_TOKEN, then the URL's own,
    then this machine's server token file (a server of this user)."""
    from megatui.serve.auth import TOKEN_FILE

    if token_file:
        try:
            with open(token_file, encoding="ascii") as handle:
                return handle.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise AttachError(f"cannot read the token file {token_file}: {exc}", 2) from None
    if environ.get("MEGATUI_TOKEN"):
        return environ["MEGATUI_TOKEN"]
    if "token=" in url or url.startswith("unix:"):
        return None
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return (state_dir() / TOKEN_FILE).read_text(encoding="ascii").strip() or None
    return None


def run_attach(url: str, token_file: str | None, settings: Settings) -> int:
    """`megatui attach`: the TUI on a server's monitor; the exit code."""
    from megatui.ui.app import run_app

    try:
        target = Target.parse(url, resolve_token(url, token_file, dict(os.environ)))
        health = asyncio.run(probe(target))
    except AttachError as exc:
        print(f"megatui: {exc}", file=sys.stderr)
        return exc.code
    actions = health.get("actions") is True
    monitor = RemoteMonitor(target, actions=actions)
    if target.socket is not None:
        watch_parent()
    return run_app(monitor, replace(settings, readonly=settings.readonly or not actions))


def watch_parent(interval: float = 0.5, grace: float = 5.0) -> None:
    """End this process when its parent goes: a browser tab's viewer must not outlive a
    server that was killed outright (it would keep drawing for nobody). SIGHUP lets the
    app quit as if its terminal closed; if it has not within `grace`, exit anyway."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(grace)
        os._exit(129)

    threading.Thread(target=watch, name="megatui-parent-watch", daemon=True).start()
