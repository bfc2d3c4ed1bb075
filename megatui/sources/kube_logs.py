"""Pod logs from `GET .../pods/{name}/log` (docs/facts/kubernetes-drilldown.md §5): the last 500
lines, then follow; `previous`; reconnect from the last timestamp without duplicates.

* Lines are always asked for with `timestamps=true`: the stamp (fixed-width
  RFC3339Nano) is how a reconnect knows where it stopped. `sinceTime` has whole
  seconds only, so a reconnect re-reads the last second and skips, per stamp, the
  lines it already holds.
* The buffer keeps the last `MAX_LINES` lines (10,000); a line longer than
  `MAX_LINE_BYTES` is cut with a note saying how much was cut.
* Bytes are untrusted: decoded with `errors="replace"`, and every control
  character (ESC of ANSI sequences, BEL, backspace, NUL...) is replaced by a
  visible placeholder, so nothing in a log is ever interpreted by the terminal.
* The API's refusal (a 400/403/404 `Status`) becomes `LogError` whose str() is the
  API's own one line, e.g. `previous terminated container "x" in pod "y" not found`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from megatui.text import one_line

MAX_LINES = 10_000
MAX_LINE_BYTES = 16 * 1024
TAIL = 500
_STAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z) ")
# C0 controls but tab, DEL, and the C1 range (0x80-0x9f as code points): shown inert.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


class LogError(Exception):
    """The API refused or the stream failed; str() is one line for the user, and
    `status` the API's HTTP status when it refused."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class LogLine:
    stamp: str  # RFC3339Nano as the kubelet wrote it; "" when absent
    text: str  # inert: no control characters


class Response(Protocol):
    status: int

    @property
    def content(self) -> Any: ...

    async def read(self) -> bytes: ...

    def close(self) -> None: ...


Fetch = Callable[[str, list[tuple[str, Any]]], Awaitable[Response]]


def inert(text: str) -> str:
    """Control characters as visible `^X`-style glyphs (U+2400 block)."""

    def glyph(found: re.Match[str]) -> str:
        code = ord(found.group())
        return chr(0x2400 + code) if code < 32 else ("\u2421" if code == 127 else "\ufffd")

    return _CONTROL.sub(glyph, text)


def parse_line(raw: bytes, extra: int = 0) -> LogLine:
    """One line: its stamp split off, cut to MAX_LINE_BYTES (`extra` bytes were
    already dropped by the reader), decoded leniently, made inert."""
    raw = raw.rstrip(b"\n").rstrip(b"\r")
    stamp = ""
    found = _STAMP.match(raw)
    if found:
        stamp = found.group(1).decode()
        raw = raw[found.end() :]
    over = max(0, len(raw) - MAX_LINE_BYTES) + extra
    cut = f" … [{over:,} more bytes cut]" if over else ""
    raw = raw[:MAX_LINE_BYTES]
    return LogLine(stamp, inert(raw.decode("utf-8", errors="replace")) + cut)


def status_line(status: int, body: bytes) -> str:
    """The one line of a `Status` body (or of a plain-text body)."""
    try:
        data = json.loads(body)
        message = (
            str(data.get("message") or data.get("reason") or "") if isinstance(data, dict) else ""
        )
    except ValueError:
        message = body.decode("utf-8", "replace").strip()
    message = one_line(message, 300)
    return message or f"the API server answered {status}"


class LogBuffer:
    """The last MAX_LINES lines, and where a reconnect must resume."""

    def __init__(self, limit: int = MAX_LINES) -> None:
        self.lines: deque[LogLine] = deque(maxlen=limit)
        self.dropped = 0  # lines that fell off the front
        self.last_stamp = ""
        self._at_last = 0  # lines held with exactly last_stamp

    def add(self, line: LogLine) -> None:
        if len(self.lines) == self.lines.maxlen:
            self.dropped += 1
        self.lines.append(line)
        if line.stamp:
            if line.stamp == self.last_stamp:
                self._at_last += 1
            else:
                self.last_stamp, self._at_last = line.stamp, 1

    def resume_filter(self) -> Callable[[LogLine], bool]:
        """For a stream re-read from the last whole second: keep a line only if it is
        newer than what is held (lines before the stamp, and as many with the stamp
        as are held, are repeats)."""
        last, skip = self.last_stamp, self._at_last

        def keep(line: LogLine) -> bool:
            nonlocal skip
            if not last or not line.stamp or line.stamp > last:
                return True
            if line.stamp == last and skip > 0:
                skip -= 1
                return False
            return line.stamp > last

        return keep

    def since_time(self) -> str | None:
        return self.last_stamp[:19] + "Z" if self.last_stamp else None


def log_path(namespace: str, pod: str) -> str:
    from urllib.parse import quote

    return f"/api/v1/namespaces/{quote(namespace, safe='')}/pods/{quote(pod, safe='')}/log"


# MonitorAPI.follow_pod_logs's signature on purpose: drill.py hands the call on.
async def follow(
    fetch: Fetch,
    namespace: str,
    pod: str,
    container: str,
    buffer: LogBuffer,
    on_lines: Callable[[list[LogLine]], None],
    *,
    previous: bool = False,
    tail: int = TAIL,
    retries: int = 5,
    retry_delay: float = 1.0,
) -> None:
    """Read the log into `buffer`, following unless `previous`. A follow that
    drops (connection broke, server ended a running container's stream early) is
    resumed from the last stamp. Ends when the stream ends cleanly; raises LogError
    on a refusal or when reconnects keep failing."""
    path = log_path(namespace, pod)
    failures = 0
    first = True
    while True:
        query: list[tuple[str, Any]] = [("container", container), ("timestamps", "true")]
        if previous:
            query.append(("previous", "true"))
        else:
            query.append(("follow", "true"))
        keep: Callable[[LogLine], bool] = lambda _line: True  # noqa: E731
        since = None if first else buffer.since_time()
        if since:
            query.append(("sinceTime", since))
            keep = buffer.resume_filter()
        elif first:
            query.append(("tailLines", str(tail)))
        resp = await fetch(path, query)
        if resp.status == 204:
            resp.close()
            return  # not scheduled yet: no logs
        if resp.status != 200:
            body = await resp.read()
            resp.close()
            raise LogError(status_line(resp.status, body), resp.status)
        first = False
        try:
            clean = await _read(resp, buffer, on_lines, keep)
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
            clean = False
            failures += 1
            if failures > retries:
                raise LogError(f"the log stream broke off: {exc}") from None
        finally:
            resp.close()
        if clean or previous:
            return
        await asyncio.sleep(retry_delay)


async def _read(
    resp: Response,
    buffer: LogBuffer,
    on_lines: Callable[[list[LogLine]], None],
    keep: Callable[[LogLine], bool],
) -> bool:
    """Chunks split into lines by hand: a line of any size costs at most
    MAX_LINE_BYTES of memory (the rest is counted, not kept)."""
    partial = bytearray()
    extra = 0  # bytes of the current line beyond what is kept

    def emit(raw: bytes, batch: list[LogLine]) -> None:
        nonlocal extra
        line = parse_line(raw, extra)
        extra = 0
        if keep(line):
            buffer.add(line)
            batch.append(line)

    while True:
        try:
            chunk = await resp.content.readany()
        except Exception as exc:  # aiohttp.ClientPayloadError and friends
            raise ConnectionError(str(exc) or type(exc).__name__) from None
        batch: list[LogLine] = []
        if not chunk:
            if partial:
                emit(bytes(partial), batch)  # a last line without its newline
            if batch:
                on_lines(batch)
            return True
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            room = MAX_LINE_BYTES + 64 - len(partial)  # + room for the stamp
            if len(piece) > room:
                extra += len(piece) - max(room, 0)
                piece = piece[: max(room, 0)]
            partial += piece
            if end < 0:
                break
            emit(bytes(partial), batch)
            partial.clear()
            start = end + 1
        if batch:
            on_lines(batch)


def search(lines: list[str], needle: str) -> list[int]:
    """Indexes of the lines containing `needle` (case-insensitive)."""
    low = needle.lower()
    return [i for i, text in enumerate(lines) if low in text.lower()]
