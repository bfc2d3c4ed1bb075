"""A program on a pseudo-terminal, for benchmarks that time what a user sees.

`Terminal` forks a pty (the size set with TIOCSWINSZ before exec), reads the program's
output with a timestamp per chunk, and keeps a `Screen`: just enough of a terminal to
read what is on it. Used by bench_keys.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import termios
import time
from collections.abc import Iterator

_ESCAPES = re.compile(
    rb"\x1b(\[[0-9;?<>=]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|.)"
)


def visible_text(data: bytes) -> str:
    """The printed characters of terminal output, escape sequences removed."""
    return _ESCAPES.sub(b"", data).decode("utf-8", "replace")


_SEQUENCE = re.compile(
    rb"\x1b\[([0-9;?<>=]*)[ -/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\\\)|\x1b[()][0-9A-Za-z]"
    rb"|\x1b[^\[\]()]"
)


class Screen:
    """Just enough of a terminal to read what is on screen: Textual positions every run
    of text with CUP (ESC [ row ; col H) and styles it with SGR, which is ignored."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.cols, self.rows = size
        self.cells = [[" "] * self.cols for _ in range(self.rows)]
        self.row = self.col = 0
        self._pending = b""

    def feed(self, data: bytes) -> None:
        data, self._pending = self._pending + data, b""
        pos = 0
        while pos < len(data):
            esc = data.find(b"\x1b", pos)
            self._text(data[pos : len(data) if esc < 0 else esc])
            if esc < 0:
                return
            match = _SEQUENCE.match(data, esc)
            if match is None:  # an incomplete sequence: wait for the rest
                self._pending = data[esc:]
                return
            if match.group(2) == b"H":
                row, _, col = match.group(1).decode().partition(";")
                self.row, self.col = int(row or 1) - 1, int(col or 1) - 1
            pos = match.end()

    def _text(self, data: bytes) -> None:
        for char in data.decode("utf-8", "replace"):
            if char == "\r":
                self.col = 0
            elif char == "\n":
                self.row = min(self.row + 1, self.rows - 1)
            elif char >= " " and 0 <= self.row < self.rows and 0 <= self.col < self.cols:
                self.cells[self.row][self.col] = char
                self.col += 1

    def text(self) -> str:
        return "\n".join("".join(line) for line in self.cells)


class Terminal:
    """`argv` exec'd on a pty of `size` (COLSxROWS) with `env`; output read with timestamps."""

    def __init__(self, argv: list[str], size: tuple[int, int], env: dict[str, str]) -> None:
        self.size = size
        child_env = env
        self.output = bytearray()
        self.screen = Screen(size)
        self.chunks: list[tuple[float, int]] = []  # (time, end offset in output)
        self.started = time.monotonic()
        pid, fd = pty.fork()
        if pid == 0:  # the child: size the terminal, then become megatui
            try:
                cols, rows = size
                fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
                os.execvpe(argv[0], argv, child_env)
            finally:
                os._exit(127)
        self.pid, self.fd = pid, fd
        self.exit_status: int | None = None

    # reading

    def pump(self, timeout: float) -> bool:
        """Read what is there within `timeout` s; False if nothing came."""
        ready, _, _ = select.select([self.fd], [], [], max(0.0, timeout))
        if not ready:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            data = b""
        if not data:
            raise EOFError("megatui closed the terminal")
        now = time.monotonic()
        self.output += data
        self.screen.feed(data)
        self.chunks.append((now, len(self.output)))
        return True

    def last_output(self) -> float:
        return self.chunks[-1][0] if self.chunks else self.started

    def settle(self, quiet: float, limit: float = 10.0) -> float:
        """Read until no output for `quiet` s; the time of the last output byte."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            came = self.pump(self.last_output() + quiet - time.monotonic())
            if not came and time.monotonic() - self.last_output() >= quiet:
                return self.last_output()
        raise TimeoutError(f"the output did not settle within {limit:g} s")

    def wait_text(self, pattern: str, since: int, timeout: float) -> float:
        """The time of the chunk with which `pattern` first shows in output[since:]."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        # Searched at most every 20 ms (this process shares the CPUs with megatui);
        # the exact chunk is found afterwards from the timestamps.
        while not regex.search(visible_text(bytes(self.output[since:]))):
            until = min(deadline, time.monotonic() + 0.02)
            while (left := until - time.monotonic()) > 0:
                self.pump(left)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{pattern!r} did not show within {timeout:g} s")
        for at, end in self.chunks:
            if end > since and regex.search(visible_text(bytes(self.output[since:end]))):
                return at
        raise AssertionError("unreachable: the text is in the output")

    # writing

    def write(self, data: bytes) -> float:
        at = time.monotonic()
        os.write(self.fd, data)
        return at

    # ending

    def close(self) -> None:
        """Quit as a user does (q), then SIGTERM, then SIGKILL: never left running."""
        if self.exit_status is None:
            with contextlib.suppress(OSError):
                self.write(b"q")
            for sig in (None, signal.SIGTERM, signal.SIGKILL):
                if sig is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.pid, sig)
                if self._reap(10.0):
                    break
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def _reap(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.exit_status = status
                return True
            with contextlib.suppress(EOFError):
                self.pump(0.05)  # keep the pty drained so the child can write and exit
        return False


@contextlib.contextmanager
def terminal(argv: list[str], size: tuple[int, int], env: dict[str, str]) -> Iterator[Terminal]:
    term = Terminal(argv, size, env)
    try:
        yield term
    finally:
        term.close()
