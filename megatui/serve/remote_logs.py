"""An attached viewer's pod logs: the server's ndjson log stream (drill_routes.py)
read into a `LogBuffer`, with the local monitor's semantics.

A stream that breaks off (no `end` or `error` line) is opened again; the server
re-reads the tail, and the lines the buffer already holds are skipped by their
stamps (`LogBuffer.resume_filter`), so a reconnect adds no duplicate. Every line is
shape-checked and made inert again: the server is outside data too.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp

from megatui.api import ActionError
from megatui.sources.kube_logs import MAX_LINE_BYTES, LogBuffer, LogLine, inert

READ_IDLE = 45.0  # the server sends a keepalive every 15 s: silence this long is a dead link
MAX_JSON_LINE = 8 * MAX_LINE_BYTES  # a line's JSON, escapes and all
RETRIES = 5  # reopenings of a broken stream in a row, none bringing a new line
RETRY_DELAY = 1.0
_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z$")


class _Broken(Exception):
    """The stream broke off without its end: resume it."""


def logs_path(namespace: str, pod: str) -> str:
    q = urllib.parse.quote
    return f"/api/v1/pods/{q(namespace, safe='')}/{q(pod, safe='')}/logs"


def parse(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise ActionError("the server sent a log line that is not JSON") from None
    if not isinstance(data, dict):
        raise ActionError("the server sent a log line that is not an object")
    return data


def log_line(data: dict[str, Any]) -> LogLine:
    stamp, text = data.get("stamp"), data.get("text")
    if not isinstance(stamp, str) or not isinstance(text, str):
        raise ActionError("the server sent a log line without its stamp and text")
    if stamp and not _STAMP.match(stamp):
        raise ActionError(f"the server sent a log line with a bad stamp: {stamp[:40]!r}")
    return LogLine(stamp, inert(text[: MAX_LINE_BYTES + 64]))


async def _json_lines(content: aiohttp.StreamReader) -> AsyncIterator[list[bytes]]:
    """The complete lines of each chunk, as they arrive."""
    buffer = b""
    while True:
        try:
            async with asyncio.timeout(READ_IDLE):
                chunk = await content.readany()
        except TimeoutError:
            raise _Broken(f"no word from the server for {READ_IDLE:g} s") from None
        except aiohttp.ClientError as exc:
            raise _Broken(str(exc) or type(exc).__name__) from None
        if not chunk:
            return
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        if lines:
            yield lines
        if len(buffer) > MAX_JSON_LINE:
            raise ActionError("the server sent a log line that is too long")


# megatui's own server's error body ({"error", "status"}); sources/orchard.py reads
# Orchard's ({"message"}) alike in shape: two protocols, kept apart.
async def _error_of(reply: aiohttp.ClientResponse) -> ActionError:
    text = (await reply.text(errors="replace")).strip()
    message, status = "", reply.status
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        message = data["error"]
        if isinstance(data.get("status"), int):
            status = data["status"]
    message = message or (text.splitlines()[0] if text else f"the server answered {status}")
    return ActionError(message[:500], status=status)


async def read_once(
    session: aiohttp.ClientSession,
    path: str,
    params: dict[str, str],
    buffer: LogBuffer,
    on_lines: Callable[[list[LogLine]], None],
    keep: Callable[[LogLine], bool],
) -> None:
    """One connection: lines into `buffer` until the stream's end. Raises ActionError
    on a refusal, _Broken when it broke off."""
    try:
        async with session.get(path, params=params) as reply:
            if reply.status != 200:
                raise await _error_of(reply)
            async for chunk in _json_lines(reply.content):
                batch: list[LogLine] = []
                try:
                    for raw in chunk:
                        if raw.strip() and _take(parse(raw), batch, keep):
                            return
                finally:  # what came before an end or an error is shown too
                    for line in batch:
                        buffer.add(line)
                    if batch:
                        on_lines(batch)
    except (aiohttp.ClientError, OSError) as exc:
        raise _Broken(str(exc) or type(exc).__name__) from None
    raise _Broken("the server closed the log stream")


def _take(data: dict[str, Any], batch: list[LogLine], keep: Callable[[LogLine], bool]) -> bool:
    """Add a log line to `batch`; True at the stream's end; ActionError for its error."""
    if "stamp" in data or "text" in data:
        line = log_line(data)
        if keep(line):
            batch.append(line)
        return False
    if data.get("end") is True:
        return True
    if isinstance(data.get("error"), str):
        status = data.get("status")
        raise ActionError(data["error"][:500], status=status if isinstance(status, int) else None)
    if data.get("keepalive") is not True:
        raise ActionError("the server sent a log line of an unknown kind")
    return False


# MonitorAPI.follow_pod_logs's signature on purpose: RemoteMonitor hands the call on.
async def follow(
    session: aiohttp.ClientSession,
    namespace: str,
    pod: str,
    container: str,
    buffer: LogBuffer,
    on_lines: Callable[[list[LogLine]], None],
    *,
    previous: bool = False,
) -> None:
    """The log through the server, as `Monitor.follow_pod_logs` reads it locally:
    a broken stream is opened again after RETRY_DELAY, up to RETRIES times in a row
    without a new line."""
    params = {"container": container, "previous": str(previous).lower(), "follow": "true"}
    path = logs_path(namespace, pod)
    failures = 0
    first = True
    while True:
        keep: Callable[[LogLine], bool] = (lambda _line: True) if first else buffer.resume_filter()
        held = len(buffer.lines) + buffer.dropped
        try:
            await read_once(session, path, params, buffer, on_lines, keep)
            return
        except _Broken as exc:
            # A link that carried lines before it broke is worth trying again anew.
            failures = 1 if len(buffer.lines) + buffer.dropped > held else failures + 1
            if failures > RETRIES:
                raise ActionError(f"the log stream broke off: {exc}") from None
        first = False
        await asyncio.sleep(RETRY_DELAY)
