"""How one command runs on the host over an SSH exec channel: the fixed wrapper line
the login shell parses, the environment sent on stdin, and the session that collects
the output and the wrapper's pid (for killing the command's process group)."""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import asyncssh

from megatui.transport import TransportError

# The remote login shell (zsh on a Mac) parses only this fixed, fully quoted line:
# `exec /bin/sh -c WRAPPER megatui ARGV...`. Every argv element is a separate
# positional parameter, so a VM named `a b;touch x` reaches tart as one argument.
# WRAPPER
#  * prints its pid first: `exec` keeps it, and sshd made it a session (and process
#    group) leader, so a timeout can kill the whole group over the same connection;
#  * adds Homebrew's directories, which a non-interactive macOS login never has;
#  * reads `export K=V` lines from stdin, so values never appear in `ps` on the host,
#    and stdin is at EOF afterwards, as with LocalTransport's DEVNULL;
#  * reports a missing program with a marker, so exit code 127 from the program
#    itself is never mistaken for "not installed".
NOT_FOUND = "megatui-remote: command not found"
_WRAPPER = (
    "echo $$; "
    'PATH="$PATH:/opt/homebrew/bin:/usr/local/bin"; export PATH; '
    'eval "$(cat)" || exit 125; '
    'command -v "$1" >/dev/null 2>&1 || { printf "%s: %s\\n" "' + NOT_FOUND + '" "$1" >&2; '
    "exit 127; }; "
    'exec "$@"'
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def remote_command_line(argv: Sequence[str]) -> str:
    """The exact string sent as the SSH exec request for argv."""
    if not argv:
        raise ValueError("empty argv")
    return "exec /bin/sh -c " + shlex.join([_WRAPPER, "megatui", *argv])


def env_script(env: Mapping[str, str] | None) -> bytes:
    lines = []
    for name, value in (env or {}).items():
        if not _ENV_NAME.match(name):
            raise TransportError(f"invalid environment variable name {name!r}")
        lines.append(f"export {name}={shlex.quote(value)}\n")
    return "".join(lines).encode()


@dataclass
class Completed:
    exit_code: int
    stdout: bytes
    stderr: bytes


class RunSession(asyncssh.SSHClientSession[bytes]):
    """Collects one command's output; the first stdout line is the wrapper's pid."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self._head: bytearray | None = bytearray()  # None once the pid line is read
        self.stdout = bytearray()
        self.stderr = bytearray()
        self.exit_status: int | None = None
        self.exit_signal: str | None = None
        loop = asyncio.get_running_loop()
        self.started: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[Exception | None] = loop.create_future()

    def data_received(self, data: bytes, datatype: asyncssh.DataType) -> None:
        if datatype == asyncssh.EXTENDED_DATA_STDERR:
            self.stderr += data
            return
        if self._head is None:
            self.stdout += data
            return
        self._head += data
        line, sep, rest = bytes(self._head).partition(b"\n")
        if sep:
            self._head = None
            if line.strip().isdigit():
                self.pid = int(line.strip())
                self.stdout += rest
            else:
                self.stdout += line + sep + rest
            if not self.started.done():
                self.started.set_result(None)

    def exit_status_received(self, status: int) -> None:
        self.exit_status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.exit_signal = signal

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head:
            self.stdout += self._head
        self._head = None
        if not self.started.done():
            self.started.set_result(None)
        if not self.closed.done():
            self.closed.set_result(exc)

    def returncode(self) -> int | None:
        if self.exit_status is not None:
            return self.exit_status
        if self.exit_signal is not None:
            try:
                return -int(signal.Signals[f"SIG{self.exit_signal}"])
            except KeyError:
                return -1
        return None


def session_factory(session: RunSession) -> Callable[[], RunSession]:
    return lambda: session
