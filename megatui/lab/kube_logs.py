"""`GET /api/v1/namespaces/{ns}/pods/{name}/log` in the lab's fake API server.

What a client depends on (docs/facts/kubernetes-drilldown.md §5): `container` (400 when
missing on a multi-container pod or unknown), `previous`, `timestamps` (fixed-width
RFC3339Nano prefix), `tailLines`, `sinceSeconds`/`sinceTime`, `limitBytes`,
`follow` (chunked, flushed per line, ends when the container stops running);
`text/plain` bodies; 204 for an unscheduled pod; the kubelet's exact refusals
(§5.4) as 400 `Status` bodies; `pods/log` can be forbidden on its own.

Logs are kept per container as a list of runs: a restart starts a new run, and
which run a request reads follows the container's status as the kubelet does.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from megatui.lab.kube_api import JSON, PODS, parse_bool, parse_time

if TYPE_CHECKING:
    from megatui.lab.kube_api import FakeKubeAPI

_LOG_PATH = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")
_RUN_LIMIT = 50_000  # lines kept per run


def nano_stamp(epoch: float) -> str:
    """RFC3339NanoFixed: nine fractional digits, always."""
    whole = datetime.datetime.fromtimestamp(int(epoch), datetime.UTC)
    # Epoch floats carry microseconds at best: round there, then pad to nine digits.
    micros = min(round((epoch - int(epoch)) * 1e6), 999_999)
    return whole.strftime("%Y-%m-%dT%H:%M:%S") + f".{micros * 1000:09d}Z"


@dataclass
class _Run:
    lines: deque[tuple[float, bytes]] = field(default_factory=lambda: deque(maxlen=_RUN_LIMIT))
    written: int = 0  # every line ever written, also those the deque dropped


class LogBook:
    """The containers' output: runs of (time, raw line bytes) per container."""

    def __init__(self, clock: object = time.time) -> None:
        self._clock = clock
        self._runs: dict[tuple[str, str, str], list[_Run]] = {}
        self._changed = asyncio.Event()

    def _key(self, namespace: str, pod: str, container: str) -> tuple[str, str, str]:
        return (namespace, pod, container)

    def runs(self, namespace: str, pod: str, container: str) -> list[_Run]:
        return self._runs.setdefault(self._key(namespace, pod, container), [])

    def start_run(self, namespace: str, pod: str, container: str) -> None:
        runs = self.runs(namespace, pod, container)
        runs.append(_Run())
        del runs[:-3]  # the kubelet keeps the current and the previous instance
        self._wake()

    def write(
        self, namespace: str, pod: str, container: str, line: str | bytes, at: float | None = None
    ) -> None:
        """One line of output (a `\\n` is added unless the bytes end without one on purpose)."""
        runs = self.runs(namespace, pod, container)
        if not runs:
            runs.append(_Run())
        data = line.encode() if isinstance(line, str) else line
        if isinstance(line, str):
            data += b"\n"
        clock = self._clock
        stamp = at if at is not None else (clock() if callable(clock) else time.time())
        runs[-1].lines.append((stamp, data))
        runs[-1].written += 1
        self._wake()

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_change(self, timeout: float) -> None:
        changed = self._changed
        try:
            async with asyncio.timeout(timeout):
                await changed.wait()
        except TimeoutError:
            pass


def _bad_request(api: FakeKubeAPI, message: str) -> web.Response:
    return api._status(400, "BadRequest", message)


def _statuses(pod: JSON) -> list[JSON]:
    status = pod.get("status") or {}
    found: list[JSON] = []
    for key in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        found.extend(s for s in status.get(key) or [] if isinstance(s, dict))
    return found


def _container_names(pod: JSON) -> list[str]:
    spec = pod.get("spec") or {}
    names: list[str] = []
    for key in ("initContainers", "containers", "ephemeralContainers"):
        names.extend(str(c.get("name")) for c in spec.get(key) or [] if isinstance(c, dict))
    return names


def _pick_run(pod: JSON, container: str, previous: bool) -> tuple[int | None, str | None]:
    """Which run (-1 current, -2 the one before) the kubelet reads, or its refusal
    (validateContainerLogStatus, §5.4)."""
    pod_name = (pod.get("metadata") or {}).get("name", "")
    status = next((s for s in _statuses(pod) if s.get("name") == container), None)
    if status is None:
        return None, f'container "{container}" in pod "{pod_name}" is not available'
    state = status.get("state") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    if previous:
        if not last or not last.get("containerID"):
            return (
                None,
                f'previous terminated container "{container}" in pod "{pod_name}" not found',
            )
        # Waiting after a crash: the last terminated run is the newest one.
        return (-2 if "running" in state or "terminated" in state else -1), None
    if "running" in state or "terminated" in state:
        return -1, None
    if last:
        return -1, None
    reason = (state.get("waiting") or {}).get("reason", "")
    prefix = f'container "{container}" in pod "{pod_name}" is waiting to start'
    if reason == "ErrImagePull":
        return None, f"{prefix}: image can't be pulled"
    if reason == "ImagePullBackOff":
        return None, f"{prefix}: trying and failing to pull image"
    if reason:
        return None, f"{prefix}: {reason}"
    return None, f"{prefix} - no logs yet"


def _running(pod: JSON | None, container: str) -> bool:
    if pod is None:
        return False
    status = next((s for s in _statuses(pod) if s.get("name") == container), None)
    return status is not None and "running" in (status.get("state") or {})


def _format(stamp: float, data: bytes, timestamps: bool) -> bytes:
    return (nano_stamp(stamp).encode() + b" " + data) if timestamps else data


async def serve_pod_log(
    api: FakeKubeAPI, book: LogBook, request: web.Request, path: str
) -> web.StreamResponse | None:
    found = _LOG_PATH.match(path)
    if found is None:
        return None
    namespace, name = found.group(1), found.group(2)
    if {"pods/log", "*"} & api.forbidden:
        return api.forbidden_status(
            request,
            f'pods "{name}"',
            "get",
            "pods/log",
            "",
            namespace,
            {"name": name, "kind": "pods"},
        )
    pod = api.store.get(PODS, name, namespace)
    if pod is None:
        return api._status(
            404, "NotFound", f'pods "{name}" not found', {"name": name, "kind": "pods"}
        )
    query = request.query
    names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []]
    container = query.get("container", "")
    if not container:
        if len(names) != 1:
            every = _container_names(pod)
            if not every:
                return _bad_request(api, f"a container name must be specified for pod {name}")
            return _bad_request(
                api,
                f"a container name must be specified for pod {name}, "
                f"choose one of: [{' '.join(every)}]",
            )
        container = names[0]
    if container not in _container_names(pod):
        return _bad_request(api, f"container {container} is not valid for pod {name}")
    if not (pod.get("spec") or {}).get("nodeName"):
        return web.Response(status=204)
    previous = parse_bool(query.get("previous"))
    which, refusal = _pick_run(pod, container, previous)
    if refusal is not None or which is None:
        return _bad_request(api, refusal or "no logs")
    try:
        tail = int(query["tailLines"]) if "tailLines" in query else None
        since_s = int(query["sinceSeconds"]) if "sinceSeconds" in query else None
        limit = int(query["limitBytes"]) if "limitBytes" in query else None
    except ValueError as exc:
        return _bad_request(api, f"invalid log option: {exc}")
    since = parse_time(query.get("sinceTime")) if "sinceTime" in query else None
    if since_s is not None:
        since_from_s = api._clock() - since_s
        since = since_from_s if since is None else max(since, since_from_s)
    timestamps = parse_bool(query.get("timestamps"))
    follow = parse_bool(query.get("follow")) and not previous
    runs = book.runs(namespace, name, container)
    run = runs[which] if len(runs) >= -which else _Run()
    lines = [(t, d) for t, d in run.lines if since is None or t >= since]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    response = web.StreamResponse(status=200)
    response.content_type = "text/plain"
    if follow:
        response.enable_chunked_encoding()
    await response.prepare(request)
    sent = 0
    for stamp, data in lines:
        chunk = _format(stamp, data, timestamps)
        if limit is not None and sent + len(chunk) > limit:
            await response.write(chunk[: max(0, limit - sent)])
            await response.write_eof()
            return response
        sent += len(chunk)
        await response.write(chunk)
    if follow:
        await _follow(api, book, response, (namespace, name, container), run, timestamps)
    await response.write_eof()
    return response


async def _follow(
    api: FakeKubeAPI,
    book: LogBook,
    response: web.StreamResponse,
    key: tuple[str, str, str],
    run: _Run,
    timestamps: bool,
) -> None:
    """New lines of this run as they come; ends when the container stops running."""
    namespace, name, container = key
    seen = run.written
    while not api._stopping:
        fresh = min(run.written - seen, len(run.lines))
        seen = run.written
        if fresh > 0:
            for stamp, data in list(run.lines)[-fresh:]:
                await response.write(_format(stamp, data, timestamps))
        runs = book.runs(namespace, name, container)
        pod = api.store.get(PODS, name, namespace)
        if (runs and runs[-1] is not run) or not _running(pod, container):
            return
        await book.wait_change(1.0)
