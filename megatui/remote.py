"""`RemoteTransport`: everything megatui does on a Mac host, over ONE SSH connection.

Why one in-process asyncssh connection rather than `ssh` subprocesses or
`ssh -L` tunnels: lazydocker's `ssh://` mode (its most re-filed bug, peers.md
§4.3) runs `ssh` in the background and waits for a forwarded socket to appear, so
a host key prompt, a password prompt, a wrong socket path on Docker Desktop or a
server that refuses streamlocal forwarding all end as "ssh tunneled socket never
became available: context deadline exceeded", and a tunnel that dies is never
rebuilt. Here the connection is ours: host key and login failures are one clear
line, each forward names the socket it could not reach, and a dropped connection
is rebuilt in the background while every caller fails fast in the meantime.

Commands, VM probes (direct-tcpip: the VMs at 192.168.64.x are reachable from the
Mac only, tart.md §9.3), the Kind API server (bound to the Mac's 127.0.0.1,
kubernetes.md §9.1) and the Docker socket all share that connection; in steady
state `connections_opened` stays at 1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import errno
import getpass
import itertools
import logging
import math
import os
import random
import re
import shlex
import shutil
import signal
import socket
import tempfile
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.public_key import get_default_certificate_algs, get_default_public_key_algs

from megatui.config import Settings
from megatui.transport import (
    CommandNotFound,
    CommandResult,
    CommandTimeout,
    Transport,
    TransportError,
    spawn_detached_via_sh,
)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- errors


class RemoteError(TransportError):
    """A failure of the connection to the Mac host itself. `str()` is one line.

    `reason` is the short form a status line has room for, `fix` what the user can
    do about it (both default to the whole line)."""

    def __init__(self, message: str, *, reason: str | None = None, fix: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.fix = fix


class HostSpecError(RemoteError):
    """`--host` is not `[user@]mac[:port]`."""


class HostKeyUnknown(RemoteError):
    """The host's key is not in known_hosts: never trusted silently."""


class HostKeyChanged(RemoteError):
    """known_hosts holds a different key for the host: possibly an attacker."""


class HostUnreachable(RemoteError):
    """No TCP connection or no SSH answer."""


class LoginRefused(RemoteError):
    """The host rejected every key we offered."""


class ConnectionLost(RemoteError):
    """The connection is down and being rebuilt; calls fail fast until then."""


class RemoteCommandNotFound(CommandNotFound):
    def __init__(self, program: str, label: str) -> None:
        super().__init__(program)
        # Over SSH the login PATH is short (no Homebrew on a non-interactive
        # macOS shell), so say where we looked.
        self.args = (
            f"{program}: not found on {label} "
            "(looked in the login PATH, /opt/homebrew/bin and /usr/local/bin)",
        )


# --------------------------------------------------------------------------- host spec


@dataclass(frozen=True, slots=True)
class HostSpec:
    user: str | None
    host: str
    port: int | None

    @property
    def target(self) -> str:
        """The host as the user typed it, for messages and `ssh` hints."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port is not None else self.host


_SPEC = re.compile(
    r"^(?:(?P<user>[^@\s]+)@)?(?:\[(?P<v6>[^\]\s]+)\]|(?P<host>[^:@\s\[\]]+))(?::(?P<port>\d+))?$"
)


def parse_host_spec(spec: str) -> HostSpec:
    match = _SPEC.match(spec.strip())
    host = match and (match.group("v6") or match.group("host"))
    if not match or not host or host.startswith("-"):
        raise HostSpecError(f"invalid host '{spec}': expected [USER@]MAC[:PORT]")
    port = int(match.group("port")) if match.group("port") else None
    if port is not None and not 1 <= port <= 65535:
        raise HostSpecError(f"invalid host '{spec}': port {port} is not between 1 and 65535")
    return HostSpec(user=match.group("user"), host=host, port=port)


# --------------------------------------------------------------------------- helpers


def backoff_delay(failures: int, base: float, cap: float, rand: random.Random) -> float:
    """Delay before reconnect attempt number `failures + 1`: doubling, capped, and
    jittered by ±20 % so that several megatuis do not hammer a rebooted Mac in step."""
    delay: float = min(cap, base * 2.0 ** min(failures, 32))
    return delay * rand.uniform(0.8, 1.2)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _tilde(path: str) -> str:
    home = os.path.expanduser("~")
    if path == home or path.startswith(home + os.sep):
        return "~" + path[len(home) :]
    return path


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
_NOT_FOUND = "megatui-remote: command not found"
_WRAPPER = (
    "echo $$; "
    'PATH="$PATH:/opt/homebrew/bin:/usr/local/bin"; export PATH; '
    'eval "$(cat)" || exit 125; '
    'command -v "$1" >/dev/null 2>&1 || { printf "%s: %s\\n" "' + _NOT_FOUND + '" "$1" >&2; '
    "exit 127; }; "
    'exec "$@"'
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def remote_command_line(argv: Sequence[str]) -> str:
    """The exact string sent as the SSH exec request for argv."""
    if not argv:
        raise ValueError("empty argv")
    return "exec /bin/sh -c " + shlex.join([_WRAPPER, "megatui", *argv])


def _env_script(env: Mapping[str, str] | None) -> bytes:
    lines = []
    for name, value in (env or {}).items():
        if not _ENV_NAME.match(name):
            raise TransportError(f"invalid environment variable name {name!r}")
        lines.append(f"export {name}={shlex.quote(value)}\n")
    return "".join(lines).encode()


@dataclass
class _Completed:
    exit_code: int
    stdout: bytes
    stderr: bytes


class _RunSession(asyncssh.SSHClientSession[bytes]):
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


def _factory(session: _RunSession) -> Callable[[], _RunSession]:
    return lambda: session


class _HostClient(asyncssh.SSHClient):
    """Tells the transport when its connection dies, and notes the offered host key."""

    def __init__(self, on_lost: Callable[[Exception | None], None]) -> None:
        super().__init__()
        self._on_lost = on_lost
        self.offered: asyncssh.SSHKey | None = None
        self.offered_at: tuple[str, str, int] | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        # Called only for a key that known_hosts does not trust: refuse, and keep
        # it so the error can say whether it is new or changed.
        self.offered = key
        self.offered_at = (host, addr, port)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost(exc)


Opener = Callable[[asyncssh.SSHClientConnection], Awaitable[tuple[Any, Any]]]


@dataclass
class _Forward:
    """A local listener whose every accepted connection opens a channel over the
    transport's CURRENT connection, so it keeps working across reconnects."""

    description: str
    local: str
    server: asyncio.AbstractServer | None = None
    #: Connection tasks and the streams that end them when closed.
    pipes: dict[asyncio.Task[Any], list[Any]] = field(default_factory=dict)
    last_error: str | None = None
    connections: int = 0


# --------------------------------------------------------------------------- the transport


class RemoteTransport:
    """`transport.Transport` on a Mac host over one asyncssh connection."""

    is_remote = True

    def __init__(
        self,
        host_spec: str,
        *,
        known_hosts: str | None = None,
        config_paths: Sequence[str] | None = None,
        connect_timeout: float = 10.0,
        # asyncssh sends a keepalive after `interval` s with nothing received and drops
        # the connection after `count_max` unanswered ones: a frozen Mac (asleep, sshd
        # stopped, traffic blackholed) is declared lost (count_max + 1) * interval =
        # 12 s after it went silent, before VM probes through it would time out.
        keepalive_interval: float = 4.0,
        keepalive_count_max: int = 2,
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        max_sessions: int = 8,
        rand: random.Random | None = None,
    ) -> None:
        self.spec = parse_host_spec(host_spec)
        self._known_hosts = known_hosts
        self._config_paths = tuple(config_paths) if config_paths is not None else None
        self._connect_timeout = connect_timeout
        self._keepalive_interval = keepalive_interval
        self._keepalive_count_max = keepalive_count_max
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._rand = rand or random.Random()
        self._user = self.spec.user or getpass.getuser()
        # OpenSSH's MaxSessions (10 by default, also on macOS) caps concurrent
        # exec channels per connection; beyond it sshd refuses the channel. Stay
        # below it and keep room for the kill of a timed-out command.
        self._sessions = asyncio.Semaphore(max_sessions)
        self._busy = 0

        self._conn: asyncssh.SSHClientConnection | None = None
        self._generation = 0
        self._home: tuple[int, str] | None = None
        self._connect_lock = asyncio.Lock()
        self._reconnect_task: asyncio.Task[None] | None = None
        self._next_attempt: float | None = None  # loop time of the next reconnect
        self._failures = 0
        self._drop_reason: str | None = None
        self._needs_user = False
        self._closed = False
        self._listeners: list[Callable[[RemoteTransport], None]] = []
        self._forwards: dict[str, _Forward] = {}
        self._forward_dir: str | None = None

        self.connections_opened = 0
        self.last_error: str | None = None
        # Why we are not connected, short (for status lines) and what to do about it.
        self._reason: str | None = None
        self._fix: str | None = None
        self._wake_reconnect = asyncio.Event()
        #: An operation over the live connection timed out and the host did not
        #: answer a check since: what fails behind it may be the host's fault.
        self.in_doubt = False
        #: Session opens the host refused while others of ours were open (retried).
        self.session_retries = 0

    # --- identity and state ---------------------------------------------------------------

    @property
    def label(self) -> str:
        return f"{self._user}@{self.spec.target}"

    @property
    def connected(self) -> bool:
        return self._conn is not None

    @property
    def reconnecting(self) -> bool:
        return self._reconnect_task is not None and not self._reconnect_task.done()

    def add_listener(self, callback: Callable[[RemoteTransport], None]) -> Callable[[], None]:
        """Call `callback(self)` whenever `connected` or `last_error` changes."""
        self._listeners.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(callback)

        return remove

    def status_line(self) -> str:
        """One line for a status bar: connected, or why not and when the next try is."""
        if self._conn is not None:
            return f"connected to {self.label}"
        return self._lost_message()

    def _notify(self) -> None:
        for callback in list(self._listeners):
            try:
                callback(self)
            except Exception:  # a consumer's bug must not break the connection logic
                log.exception("transport listener failed")

    def problem(self) -> str | None:
        """One line without a countdown (that is `reconnect_in`), None while connected:
        "cannot connect" until a connection existed, "lost" after; the cause stays the
        same line for the whole outage, so it is one event, not one per attempt."""
        if self._conn is not None:
            return None
        if self._closed:
            return f"connection to {self.label} is closed"
        if self.connections_opened == 0:
            return f"cannot connect to {self.label}: {self._reason or 'connecting'}"
        # The drop's reason for the whole outage, unless reconnecting needs the user
        # (a changed host key, a refused login): that is a new cause, worth its line.
        reason = self._reason if self._needs_user else self._drop_reason
        return f"connection to {self.label} lost: {reason or 'closed by the host'}"

    def problem_detail(self) -> str | None:
        """The whole story for a detail view: the line, the last attempt, the fix."""
        line = self.problem()
        if line is None:
            return None
        parts = [line]
        if self.last_error and self.last_error not in line:
            parts.append(f"last attempt: {self.last_error}")
        if self._fix:
            parts.append(f"fix: {self._fix}")
        return "\n".join(parts)

    def reconnect_in(self) -> float | None:
        """Seconds until the next reconnect attempt, None if none is scheduled."""
        if self._conn is not None or not self.reconnecting or self._next_attempt is None:
            return None
        return max(0.0, self._next_attempt - asyncio.get_running_loop().time())

    def retry_now(self) -> None:
        """Reconnect at once and start the backoff over (the user pressed refresh)."""
        if self.reconnecting:
            self._failures = 0
            self._wake_reconnect.set()

    def _lost_message(self) -> str:
        if self._closed:
            return f"connection to {self.label} is closed"
        if self.connections_opened == 0:
            message = f"cannot connect to {self.label}: {self._reason or 'connecting'}"
            if self.reconnecting and self._next_attempt is not None:
                remaining = self._next_attempt - asyncio.get_running_loop().time()
                message += f"; retrying in {max(1, math.ceil(remaining))} s"
            return message
        if not self.reconnecting:
            return f"connection to {self.label} lost"
        if self._next_attempt is None:
            when = "reconnecting now"
        else:
            remaining = self._next_attempt - asyncio.get_running_loop().time()
            when = f"reconnecting in {max(1, math.ceil(remaining))} s"
        message = f"connection to {self.label} lost; {when}"
        if self._failures and self.last_error:
            message += f" (last attempt: {self.last_error})"
        return message

    def _require(self) -> asyncssh.SSHClientConnection:
        if self._conn is None:
            raise ConnectionLost(self._lost_message())
        return self._conn

    # --- connecting ---------------------------------------------------------------------------

    async def connect(self, *, keep_trying: bool = False) -> None:
        """Open the connection. Raises a one-line `RemoteError` on failure; with
        `keep_trying`, the background reconnect loop also starts (for the TUI, which
        must come up and show the error rather than exit)."""
        if self._closed:
            raise RemoteError(f"connection to {self.label} is closed")
        try:
            async with self._connect_lock:
                if self._conn is None:
                    await self._open()
        except RemoteError as exc:
            self._failed(exc)
            if keep_trying:
                self._failures = 1
                self._start_reconnect()
            self._notify()
            raise

    async def _options(self) -> asyncssh.SSHClientConnectionOptions:
        kwargs: dict[str, Any] = {
            "host": self.spec.host,
            "config": self._config_paths if self._config_paths is not None else (),
            "connect_timeout": self._connect_timeout,
            "keepalive_interval": self._keepalive_interval,
            "keepalive_count_max": self._keepalive_count_max,
            "agent_forwarding": False,
            # megatui runs without a prompt: no password or keyboard-interactive.
            "password_auth": False,
            "kbdint_auth": False,
        }
        if self.spec.port is not None:
            kwargs["port"] = self.spec.port
        if self.spec.user is not None:
            kwargs["username"] = self.spec.user
        if self._known_hosts is not None:
            kwargs["known_hosts"] = os.path.expanduser(self._known_hosts)
        options: asyncssh.SSHClientConnectionOptions = (
            await asyncssh.SSHClientConnectionOptions.construct(None, **kwargs)
        )
        if options.known_hosts is None:
            # `UserKnownHostsFile none` in ~/.ssh/config turns checking off in
            # asyncssh; the Mac host runs VMs, so never connect unverified.
            kwargs["known_hosts"] = self._default_known_hosts()
            options = await asyncssh.SSHClientConnectionOptions.construct(None, **kwargs)
        return options

    @staticmethod
    def _default_known_hosts() -> str | bytes:
        path = Path("~/.ssh/known_hosts").expanduser()
        return str(path) if path.is_file() else b""

    def _known_hosts_name(self, options: asyncssh.SSHClientConnectionOptions) -> str:
        known: Any = options.known_hosts
        if isinstance(known, str):
            return _tilde(known)
        if isinstance(known, list | tuple) and known and isinstance(known[0], str):
            return _tilde(known[0])
        return "~/.ssh/known_hosts"

    async def _open(self) -> None:
        try:
            options = await self._options()
        except (asyncssh.Error, OSError, ValueError) as exc:
            raise RemoteError(
                f"cannot prepare SSH to {self.spec.target}: {_one_line(str(exc))}"
            ) from None
        generation = self._generation + 1
        client = _HostClient(lambda exc: self._on_lost(generation, exc))
        ssh_cmd = self._ssh_hint()
        try:
            # asyncssh's connect_timeout covers TCP, key exchange and login; the outer
            # deadline also covers a DNS lookup that hangs.
            async with asyncio.timeout(self._connect_timeout + 1.0):
                conn = await asyncssh.connect(
                    self.spec.host,
                    options=options,
                    client_factory=lambda: client,
                    **self._host_key_algs(options),
                )
        except asyncssh.HostKeyNotVerifiable:
            raise self._host_key_error(options, client) from None
        except asyncssh.PermissionDenied:
            raise LoginRefused(
                f"{options.username}@{self.spec.target} refused our login: no key from the "
                f"SSH agent or ~/.ssh was accepted (`{ssh_cmd}` must work without a password)",
                reason="login refused: no key from the SSH agent or ~/.ssh was accepted",
                fix=f"`{ssh_cmd}` must work without a password: add your public key to "
                "~/.ssh/authorized_keys on the Mac (`ssh-copy-id`), or load it into the agent",
            ) from None
        except TimeoutError:
            raise HostUnreachable(
                f"cannot reach {self.spec.target}: no answer within {self._connect_timeout:g} s",
                reason=f"no answer within {self._connect_timeout:g} s",
                fix=f"check the address {self.spec.host}, and that the Mac is awake and on "
                "the network (a firewall may drop the connection)",
            ) from None
        except socket.gaierror:
            raise HostUnreachable(
                f"cannot reach {self.spec.target}: unknown host",
                reason=f"unknown host {self.spec.host}",
                fix="check the name in --host (or `host` in the config), or use the Mac's address",
            ) from None
        except ConnectionRefusedError:
            raise HostUnreachable(
                f"cannot reach {self.spec.target}: connection refused "
                "(is Remote Login enabled on the Mac?)",
                reason="connection refused",
                fix="turn on Remote Login on the Mac (System Settings > General > Sharing) "
                "and check the address and port",
            ) from None
        except asyncssh.KeyExchangeFailed as exc:
            if "host key" in exc.reason.lower():
                # asyncssh offers only the key types known_hosts has for the host; a
                # host that no longer has one of them is a changed key, OpenSSH says.
                raise HostKeyChanged(
                    f"HOST KEY OF {self.spec.target} CHANGED: it offers none of the key types "
                    f"{self._known_hosts_name(options)} has for it; refusing to connect",
                    reason="HOST KEY CHANGED (it offers none of the key types we trust)",
                    fix=f"if the Mac was reinstalled, run `ssh-keygen -R "
                    f"{self._known_hosts_host()}` and `{ssh_cmd}` to verify the new key",
                ) from None
            raise RemoteError(
                f"SSH to {self.spec.target} failed: {_one_line(exc.reason)}"
            ) from None
        except asyncssh.DisconnectError as exc:
            raise RemoteError(
                f"SSH to {self.spec.target} failed: {_one_line(exc.reason)}"
            ) from None
        except OSError as exc:
            reason = _one_line(exc.strerror or str(exc))
            raise HostUnreachable(
                f"cannot reach {self.spec.target}: {reason}",
                reason=reason,
                fix=f"check the address {self.spec.host} and that the Mac is on the network",
            ) from None
        except (asyncssh.Error, ValueError) as exc:
            raise RemoteError(f"SSH to {self.spec.target} failed: {_one_line(str(exc))}") from None
        if self._closed:
            conn.close()
            raise RemoteError(f"connection to {self.label} is closed")
        self._generation = generation
        self._conn = conn
        self._user = options.username
        self.connections_opened += 1
        self.last_error = None
        self._reason = self._fix = self._drop_reason = None
        self._needs_user = False
        self.in_doubt = False
        self._failures = 0
        self._next_attempt = None
        log.info("connected to %s", self.label)
        self._notify()

    def _host_key_algs(self, options: asyncssh.SSHClientConnectionOptions) -> dict[str, Any]:
        """As OpenSSH does: the key types known_hosts has for the host first, the
        others still allowed. asyncssh alone offers only the known types, so a host
        that now has only another type of key fails the key exchange with no word
        about the key, instead of being reported as a changed key."""
        if options.config.get("HostKeyAlgorithms"):
            return {}  # the user chose; asyncssh applies it
        known: Any = options.known_hosts or self._default_known_hosts()
        port = options.port if options.port != 22 else None
        try:
            keys = asyncssh.match_known_hosts(
                known, options.host_key_alias or options.host, "", port
            )[0]
        except Exception:  # unreadable known_hosts: asyncssh reports it when connecting
            return {}
        first = [alg.decode("ascii") for key in keys for alg in key.sig_algorithms]
        if not first:
            return {}
        rest = [
            alg.decode("ascii")
            for alg in (*get_default_certificate_algs(), *get_default_public_key_algs())
        ]
        return {"server_host_key_algs": list(dict.fromkeys(first + rest))}

    def _ssh_hint(self) -> str:
        port = f"-p {self.spec.port} " if self.spec.port is not None else ""
        user = f"{self.spec.user}@" if self.spec.user else ""
        return f"ssh {port}{user}{self.spec.host}"

    def _host_key_error(
        self, options: asyncssh.SSHClientConnectionOptions, client: _HostClient
    ) -> RemoteError:
        where = self._known_hosts_name(options)
        target = self.spec.target
        offered = client.offered
        if offered is None or client.offered_at is None:
            # Refused by a revocation or CA rule rather than by our callback.
            return HostKeyChanged(
                f"host key of {target} is revoked or not signed by a trusted CA in {where}: "
                "refusing to connect",
                reason=f"host key revoked or not signed by a trusted CA in {where}",
                fix=f"check {where} with whoever manages the Mac",
            )
        host, addr, port = client.offered_at
        trusted: list[asyncssh.SSHKey] = []
        # Empty means asyncssh's default, ~/.ssh/known_hosts, resolved at connect time.
        known: Any = options.known_hosts or self._default_known_hosts()
        with contextlib.suppress(Exception):
            lookup_port = port if port != 22 else None
            name = options.host_key_alias or host
            trusted = list(asyncssh.match_known_hosts(known, name, addr, lookup_port)[0])
        fingerprint = offered.get_fingerprint()
        fix = (
            f"if the Mac was reinstalled, run `ssh-keygen -R {self._known_hosts_host()}` "
            f"and `{self._ssh_hint()}` to verify the new key"
        )
        if trusted:
            return HostKeyChanged(
                f"HOST KEY OF {target} CHANGED: it now offers {offered.get_algorithm()} "
                f"{fingerprint}, which does not match {where}; refusing to connect ({fix})",
                reason=f"HOST KEY CHANGED (now {offered.get_algorithm()} {fingerprint})",
                fix=fix,
            )
        keyscan = f"ssh-keyscan {self._keyscan_port()}{self.spec.host} >> {where}"
        return HostKeyUnknown(
            f"host key of {target} is not in {where}: connect once with `{self._ssh_hint()}` "
            f"to verify and accept it ({offered.get_algorithm()} {fingerprint})",
            reason=f"host key not trusted yet (not in {where})",
            fix=f"check that the Mac's key is {offered.get_algorithm()} {fingerprint}, then "
            f"connect once with `{self._ssh_hint()}` and accept it (or `{keyscan}`)",
        )

    def _keyscan_port(self) -> str:
        return f"-p {self.spec.port} " if self.spec.port is not None else ""

    def _known_hosts_host(self) -> str:
        if self.spec.port is not None and self.spec.port != 22:
            return f"'[{self.spec.host}]:{self.spec.port}'"
        return self.spec.host

    def _on_lost(self, generation: int, exc: Exception | None) -> None:
        if generation != self._generation or self._conn is None:
            return
        self._conn = None
        self._home = None
        if self._closed:
            return
        reason = _one_line(str(exc)) if exc else "closed by the host"
        self._drop_reason = reason or type(exc).__name__
        self.in_doubt = False
        self.last_error = f"connection to {self.label} lost: {self._drop_reason}"
        log.warning("%s", self.last_error)
        self._failures = 0
        self._start_reconnect()
        self._notify()

    def _start_reconnect(self) -> None:
        if self._closed or self.reconnecting:
            return
        self._reconnect_task = asyncio.get_running_loop().create_task(
            self._reconnect_loop(), name=f"reconnect {self.label}"
        )

    async def _reconnect_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._closed and self._conn is None:
            delay = backoff_delay(self._failures, self._backoff_base, self._backoff_cap, self._rand)
            self._next_attempt = loop.time() + delay
            self._notify()  # a new countdown: listeners may show it
            self._wake_reconnect.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake_reconnect.wait()
            self._next_attempt = None
            try:
                async with self._connect_lock:
                    if self._conn is None and not self._closed:
                        await self._open()
            except RemoteError as exc:
                self._failures += 1
                self._failed(exc)
                log.info("reconnect to %s failed: %s", self.label, exc)
                self._notify()
            except Exception as exc:  # never let the loop die: the TUI must not exit
                self._failures += 1
                self.last_error = f"reconnect to {self.label} failed: {type(exc).__name__}: {exc}"
                log.exception("reconnect to %s", self.label)
                self._notify()

    def _failed(self, exc: RemoteError) -> None:
        self.last_error = str(exc)
        self._reason, self._fix = exc.reason, exc.fix
        self._needs_user = isinstance(exc, HostKeyChanged | HostKeyUnknown | LoginRefused)

    async def confirm_alive(self, timeout: float = 3.0) -> bool:
        """Whether the host answers right now. Called when something behind it (a VM
        probe) failed: a frozen host must not be blamed on the VMs. A host that does not
        answer is `in_doubt` until it answers again or the keepalives drop it."""
        if self._conn is None:
            return False
        try:
            await self._exec(["true"], timeout=timeout)
        except CommandTimeout:
            if self._conn is not None and not self.in_doubt:
                self.in_doubt = True
                self._notify()
            return False
        except TransportError:
            return False
        if self.in_doubt:
            self.in_doubt = False
            self._notify()
        return True

    def discard(self) -> None:
        """Remove the private directory now, without the event loop: the last resort
        of an exit that cannot run `close()` (a hard exit after a hangup, a crash)."""
        if self._forward_dir is not None:
            shutil.rmtree(self._forward_dir, ignore_errors=True)
            self._forward_dir = None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        task, self._reconnect_task = self._reconnect_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for forward in self._forwards.values():
            await self._close_forward(forward)
        self._forwards.clear()
        if self._forward_dir is not None:
            shutil.rmtree(self._forward_dir, ignore_errors=True)
            self._forward_dir = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await conn.wait_closed()
        self._notify()

    # --- commands -----------------------------------------------------------------------------

    def _channel_error(self, exc: BaseException, what: str) -> RemoteError:
        if self._conn is None or self._closed:
            return ConnectionLost(self._lost_message())
        if isinstance(exc, asyncssh.ChannelOpenError):
            return RemoteError(f"{self.label} refused {what}: {_one_line(exc.reason)}")
        return RemoteError(f"{what} on {self.label} failed: {_one_line(str(exc))}")

    async def _exec(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> _Completed:
        stdin = _env_script(env)
        command = remote_command_line(argv)
        conn = self._require()
        session = _RunSession()
        opening: asyncio.Future[Any] | None = None
        chan: asyncssh.SSHClientChannel[bytes] | None = None
        try:
            async with asyncio.timeout(timeout), self._sessions:
                self._busy += 1
                try:
                    for attempt in itertools.count():
                        session = _RunSession()
                        # Shielded: cancelled mid-open, the channel could still open
                        # and its command run unwatched; the handlers below wait for
                        # it instead.
                        opening = asyncio.ensure_future(
                            conn.create_session(_factory(session), command, encoding=None)
                        )
                        try:
                            chan, _ = await asyncio.shield(opening)
                            break
                        except asyncssh.ChannelOpenError as exc:
                            # sshd frees a closed session's MaxSessions slot one loop
                            # turn after the close, so with our other sessions just
                            # closing it can refuse one it has room for: retry while
                            # any of ours are in flight (the timeout still bounds it).
                            if self._conn is conn and self._busy > 1:
                                self.session_retries += 1
                                await asyncio.sleep(min(0.5, 0.02 * 2**attempt))
                                continue
                            raise self._channel_error(exc, f"a session for {argv[0]}") from None
                        except (asyncssh.Error, OSError) as exc:
                            raise self._channel_error(exc, f"a session for {argv[0]}") from None
                    assert chan is not None
                    chan.write(stdin)
                    chan.write_eof()
                    lost = await asyncio.shield(session.closed)
                finally:
                    self._busy -= 1
        except TimeoutError:
            await asyncio.shield(self._abort(conn, opening, session))
            raise CommandTimeout(argv, timeout) from None
        except asyncio.CancelledError:
            await asyncio.shield(self._abort(conn, opening, session))
            raise
        code = session.returncode()
        if code is None:
            if self._conn is None or self._conn is not conn:
                raise ConnectionLost(self._lost_message()) from None
            detail = f": {_one_line(str(lost))}" if lost else ""
            raise RemoteError(f"{argv[0]} on {self.label} ended without an exit status{detail}")
        if session.pid is None:
            # The wrapper never ran: a forced command in authorized_keys, or a login
            # shell that is not a shell.
            raise RemoteError(
                f"{self.label} did not run our command (exit {code}; a forced command in "
                f"authorized_keys?): {_one_line(session.stderr.decode('utf-8', 'replace'))}"
            )
        if code == 127 and session.stderr.startswith(_NOT_FOUND.encode()):
            raise RemoteCommandNotFound(argv[0], self.label)
        return _Completed(code, bytes(session.stdout), bytes(session.stderr))

    async def _abort(
        self,
        conn: asyncssh.SSHClientConnection,
        opening: asyncio.Future[Any] | None,
        session: _RunSession,
    ) -> None:
        """Kill a timed-out or cancelled command's process group on the host, and wait
        until sshd reports the session gone, so nothing is left running there."""
        if opening is None:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                chan: asyncssh.SSHClientChannel[bytes]
                chan, _ = await opening
                if not session.closed.done():
                    # The wrapper prints its pid before anything else runs.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(2.0):
                            await asyncio.shield(session.started)
                if session.pid and not session.closed.done():
                    pid = session.pid
                    kill = f"kill -s KILL -- -{pid} 2>/dev/null || kill -s KILL {pid}"
                    # Not through the session semaphore: a full semaphore must not
                    # keep a timed-out command alive.
                    await conn.run(f"exec /bin/sh -c {shlex.quote(kill)}", check=False)
                elif not session.closed.done():
                    # No pid: OpenSSH (7.9+) delivers a signal request to the session.
                    chan.send_signal("KILL")
                chan.close()
                await session.closed

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        done = await self._exec(argv, timeout=timeout, env=env)
        return CommandResult(
            argv=tuple(argv),
            exit_code=done.exit_code,
            stdout=done.stdout.decode("utf-8", "replace"),
            stderr=done.stderr.decode("utf-8", "replace"),
        )

    async def home(self, *, timeout: float = 10.0) -> str:
        """The host user's home directory (cached per connection)."""
        generation = self._generation
        if self._home is not None and self._home[0] == generation and self._conn is not None:
            return self._home[1]
        done = await self._exec(["/bin/sh", "-c", 'printf "%s" "$HOME"'], timeout=timeout)
        home = done.stdout.decode("utf-8", "replace")
        if done.exit_code != 0 or not home.startswith("/"):
            raise RemoteError(f"cannot find the home directory of {self.label}")
        self._home = (generation, home)
        return home

    async def expand(self, path: str, *, timeout: float = 10.0) -> str:
        """`~` and `~/x` as the host sees them; other paths unchanged."""
        if path == "~" or path.startswith("~/"):
            return (await self.home(timeout=timeout)).rstrip("/") + path[1:]
        return path

    async def spawn_detached(self, argv: Sequence[str], *, log_path: str) -> int:
        return await spawn_detached_via_sh(self, argv, log_path=await self.expand(log_path))

    async def read_file(self, path: str, *, timeout: float) -> bytes:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        full = await self.expand(path, timeout=timeout)
        done = await self._exec(["cat", "--", full], timeout=max(0.1, deadline - loop.time()))
        if done.exit_code == 0:
            return done.stdout
        reason = _one_line(done.stderr.decode("utf-8", "replace"))
        message = f"{path} on {self.label}: {reason or f'cat exited {done.exit_code}'}"
        if "No such file" in reason:
            raise FileNotFoundError(errno.ENOENT, message, path)
        if "Permission denied" in reason:
            raise PermissionError(errno.EACCES, message, path)
        if "Is a directory" in reason:
            raise IsADirectoryError(errno.EISDIR, message, path)
        raise OSError(errno.EIO, message, path)

    # --- connections --------------------------------------------------------------------------

    async def open_connection(
        self, host: str, port: int, *, timeout: float
    ) -> tuple[asyncssh.SSHReader[bytes], asyncssh.SSHWriter[bytes]]:
        conn = self._require()
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await conn.open_connection(host, port)
        except TimeoutError:
            raise TimeoutError(
                f"{host}:{port} via {self.label}: no answer within {timeout:g} s"
            ) from None
        except asyncssh.ChannelOpenError as exc:
            if self._conn is not conn:
                raise ConnectionLost(self._lost_message()) from None
            # What a local connect() would raise, so callers treat both alike.
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"{host}:{port} via {self.label}: {_one_line(exc.reason)}"
            ) from None
        return reader, writer

    def ssh_tunnel(self) -> asyncssh.SSHClientConnection:
        """The current connection, for `asyncssh.connect(..., tunnel=)` to a VM.

        Raises ConnectionLost while reconnecting: falling back to a direct connection
        would probe 192.168.64.x from the wrong machine."""
        return self._require()

    async def probe_unix(self, path: str, *, timeout: float = 10.0) -> None:
        """Raise unless a unix socket on the host accepts a connection right now."""
        conn = self._require()
        full = await self.expand(path, timeout=timeout)
        try:
            async with asyncio.timeout(timeout):
                _reader, writer = await conn.open_unix_connection(full)
        except asyncssh.ChannelOpenError as exc:
            if self._conn is not conn:
                raise ConnectionLost(self._lost_message()) from None
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"{path} on {self.label}: {_one_line(exc.reason)}"
            ) from None
        writer.close()

    async def forward_tcp(self, remote_host: str, remote_port: int) -> int:
        """A 127.0.0.1 port here that reaches remote_host:remote_port as the host sees it.

        Any local user can connect to a loopback port. Used only for the Kubernetes API
        (a kubeconfig's server must be a URL): the API server authenticates every
        request with the client certificate or token, which live in the kubeconfig
        copy readable by this user alone, so the port gives nobody else anything. A
        service without its own authentication (a `tcp://` Docker daemon) goes through
        `forward_tcp_private` instead."""
        key = f"tcp:{remote_host}:{remote_port}"
        existing = self._forwards.get(key)
        if existing is not None:
            return int(existing.local)
        forward = _Forward(description=f"{remote_host}:{remote_port}", local="")
        opener = self._tcp_opener(forward, remote_host, remote_port)
        forward.server = await asyncio.start_server(
            lambda r, w: self._accept(forward, opener, r, w), "127.0.0.1", 0
        )
        forward.local = str(forward.server.sockets[0].getsockname()[1])
        self._forwards[key] = forward
        return int(forward.local)

    async def forward_tcp_private(self, remote_host: str, remote_port: int) -> str:
        """A unix socket here, usable by this user only (it is in `private_dir`), that
        reaches remote_host:remote_port as the host sees it."""
        key = f"tcp-private:{remote_host}:{remote_port}"
        existing = self._forwards.get(key)
        if existing is not None:
            return existing.local
        local = str(self.private_dir() / f"fwd{len(self._forwards)}.sock")
        forward = _Forward(description=f"{remote_host}:{remote_port}", local=local)
        opener = self._tcp_opener(forward, remote_host, remote_port)
        forward.server = await asyncio.start_unix_server(
            lambda r, w: self._accept(forward, opener, r, w), path=local
        )
        os.chmod(local, 0o600)
        self._forwards[key] = forward
        return local

    def _tcp_opener(self, forward: _Forward, remote_host: str, remote_port: int) -> Opener:
        async def opener(conn: asyncssh.SSHClientConnection) -> tuple[Any, Any]:
            try:
                return await conn.open_connection(remote_host, remote_port)
            except asyncssh.ChannelOpenError as exc:
                raise ConnectionRefusedError(
                    errno.ECONNREFUSED,
                    f"{forward.description} on {self.label}: {_one_line(exc.reason)}",
                ) from None

        return opener

    async def forward_unix(self, remote_path: str | Sequence[str]) -> str:
        """A unix socket path here (in a private directory) that reaches a socket on
        the host. Given several paths, each new connection uses the first that
        accepts (Docker Desktop moves its socket), starting with the last that did."""
        order = [remote_path] if isinstance(remote_path, str) else list(remote_path)
        if not order:
            raise ValueError("no remote socket path")
        key = "unix:" + "\0".join(order)
        existing = self._forwards.get(key)
        if existing is not None:
            return existing.local
        local = str(self.private_dir() / f"fwd{len(self._forwards)}.sock")
        forward = _Forward(description=order[0], local=local)

        async def opener(conn: asyncssh.SSHClientConnection) -> tuple[Any, Any]:
            errors = []
            for path in list(order):
                try:
                    pair = await conn.open_unix_connection(await self.expand(path))
                except asyncssh.ChannelOpenError as exc:
                    errors.append(f"{path}: {_one_line(exc.reason)}")
                    continue
                if order[0] != path:  # sticky: try the one that answered first next time
                    order.remove(path)
                    order.insert(0, path)
                forward.description = path
                return pair
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"no socket answers on {self.label}: " + "; ".join(errors)
            )

        forward.server = await asyncio.start_unix_server(
            lambda r, w: self._accept(forward, opener, r, w), path=local
        )
        os.chmod(local, 0o600)
        self._forwards[key] = forward
        return local

    def forward_error(self, local: str | int) -> str | None:
        """Why the last connection through the forward at `local` failed, if it did."""
        for forward in self._forwards.values():
            if forward.local == str(local):
                return forward.last_error
        return None

    def private_dir(self) -> Path:
        """A directory only this user can enter, removed by close(): forwarded
        sockets live here, and the host's kubeconfig (it holds credentials)."""
        if self._forward_dir is None:
            # AF_UNIX paths are limited to 104 bytes on macOS; its $TMPDIR is long.
            base = tempfile.gettempdir()
            if len(base) > 60 and os.path.isdir("/tmp"):
                base = "/tmp"
            self._forward_dir = tempfile.mkdtemp(prefix="megatui-", dir=base)
            os.chmod(self._forward_dir, 0o700)
        return Path(self._forward_dir)

    async def _accept(
        self,
        forward: _Forward,
        opener: Opener,
        local_reader: asyncio.StreamReader,
        local_writer: asyncio.StreamWriter,
    ) -> None:
        # Registered so that close() can end this by closing its streams: cancelling
        # a start_server callback task makes asyncio log the cancellation as an error.
        task = asyncio.current_task()
        streams: list[Any] = [local_writer]
        if task is not None:
            forward.pipes[task] = streams
        try:
            await self._open_and_splice(forward, opener, local_reader, local_writer, streams)
        except asyncio.CancelledError:
            # Only the loop's own shutdown cancels this (close() ends it by closing its
            # streams). Not re-raised: Python 3.11's start_server callback reports a
            # cancelled handler as an error, a traceback on the user's terminal.
            pass
        finally:
            for stream in streams:
                stream.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(2.0):
                    await local_writer.wait_closed()
            if task is not None:
                forward.pipes.pop(task, None)

    async def _open_and_splice(
        self,
        forward: _Forward,
        opener: Opener,
        local_reader: asyncio.StreamReader,
        local_writer: asyncio.StreamWriter,
        streams: list[Any],
    ) -> None:
        conn = self._conn
        if conn is None or self._closed:
            forward.last_error = self._lost_message()
            return
        try:
            async with asyncio.timeout(self._connect_timeout):
                remote_reader, remote_writer = await opener(conn)
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            if self._conn is not conn:
                forward.last_error = self._lost_message()
            elif isinstance(exc, OSError) and exc.strerror:
                forward.last_error = exc.strerror
            else:
                forward.last_error = (
                    f"{forward.description} on {self.label}: "
                    f"{_one_line(str(exc)) or type(exc).__name__}"
                )
            return
        streams.append(remote_writer)
        if self._closed:
            return
        forward.last_error = None
        forward.connections += 1
        await _splice(local_reader, local_writer, remote_reader, remote_writer)

    async def _close_forward(self, forward: _Forward) -> None:
        if forward.server is not None:
            forward.server.close()
        for streams in list(forward.pipes.values()):
            for stream in streams:
                stream.close()
        tasks = list(forward.pipes)
        if tasks:
            _done, stuck = await asyncio.wait(tasks, timeout=3.0)
            for task in stuck:
                task.cancel()
        if forward.server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await forward.server.wait_closed()


async def _pump(reader: Any, writer: Any) -> None:
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


async def _splice(
    local_reader: asyncio.StreamReader,
    local_writer: asyncio.StreamWriter,
    remote_reader: Any,
    remote_writer: Any,
) -> None:
    """Copy both ways until both sides are done or either side fails."""
    up = asyncio.ensure_future(_pump(local_reader, remote_writer))
    down = asyncio.ensure_future(_pump(remote_reader, local_writer))
    try:
        pending: set[asyncio.Future[None]] = {up, down}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(not t.cancelled() and t.exception() is not None for t in done):
                break
    finally:
        for t in (up, down):
            t.cancel()
        for t in (up, down):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


# --------------------------------------------------------------------------- host-side glue


#: Where the Docker daemon's socket lives on a Mac, in the order they are tried:
#: the classic path (Docker Desktop's optional symlink, or a Linux host), Docker
#: Desktop's per-user socket, then Colima and OrbStack.
DOCKER_SOCKETS = (
    "/var/run/docker.sock",
    "~/.docker/run/docker.sock",
    "~/.colima/default/docker.sock",
    "~/.orbstack/run/docker.sock",
)

_LOOPBACK_NAMES = {"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"}


@dataclass(frozen=True, slots=True)
class RemoteSetup:
    """Settings whose kubeconfig and docker_host point at local ends of forwards,
    and one line per source whose host-side part could not be prepared."""

    settings: Settings
    #: The settings as given, naming paths on the host (for `refresh_kubeconfig`).
    host_settings: Settings
    problems: Mapping[str, str]
    #: Where the kubeconfig came from on the host, e.g. "~/.kube/config".
    kubeconfig_source: str | None = None
    #: The host socket Docker answered on, e.g. "~/.docker/run/docker.sock".
    docker_socket: str | None = None


async def prepare_remote(
    transport: RemoteTransport,
    settings: Settings,
    workdir: Path | None = None,
    *,
    timeout: float = 10.0,
    docker_sockets: Sequence[str] = DOCKER_SOCKETS,
) -> RemoteSetup:
    """Fetch the host's kubeconfig and forward its API servers and Docker socket.

    `settings.kubeconfig` and `settings.docker_host`, when given, name things on the
    host. Nothing here is fatal: a source that cannot be prepared gets a local path
    that does not exist (never this machine's own kubeconfig or Docker daemon), and
    the reason is in `problems` for the monitor to show. The local kubeconfig goes
    to `workdir`, by default the transport's private directory (gone after close)."""
    workdir = workdir or transport.private_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    problems: dict[str, str] = {}
    kube_path = workdir / "kubeconfig"
    kube_source: str | None = None
    try:
        kube_source, _changed = await _forward_kubeconfig(transport, settings, kube_path, timeout)
    except (TransportError, OSError, ValueError) as exc:
        problems["kube"] = _reason(exc)
        with contextlib.suppress(OSError):
            kube_path.unlink()
    docker_host, socket_path, problem = await _forward_docker(
        transport, settings, timeout, docker_sockets
    )
    if problem:
        problems["docker"] = problem
    new = replace(settings, kubeconfig=str(kube_path), docker_host=docker_host)
    return RemoteSetup(new, settings, problems, kube_source, socket_path)


async def refresh_kubeconfig(
    transport: RemoteTransport, setup: RemoteSetup, *, timeout: float = 10.0
) -> bool:
    """Fetch the host's kubeconfig again and rewrite the local copy if it changed
    (Kind recreated the cluster: new port, new certificates). The file is left
    untouched otherwise, so the kube source's change detection stays quiet.
    Returns whether it changed; raises one-line errors like `prepare_remote` reports."""
    dest = Path(setup.settings.kubeconfig or "")
    _source, changed = await _forward_kubeconfig(transport, setup.host_settings, dest, timeout)
    return changed


async def remote_settings(
    transport: RemoteTransport, settings: Settings, workdir: Path | None = None
) -> Settings:
    """`prepare_remote(...).settings`; problems are logged."""
    setup = await prepare_remote(transport, settings, workdir)
    for source, problem in setup.problems.items():
        log.warning("%s: %s", source, problem)
    return setup.settings


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return _one_line(exc.strerror)
    return _one_line(str(exc))


async def _read_kubeconfig(
    transport: RemoteTransport, settings: Settings, timeout: float
) -> tuple[bytes, str]:
    if settings.kubeconfig:
        return await transport.read_file(settings.kubeconfig, timeout=timeout), settings.kubeconfig
    try:
        return await transport.read_file("~/.kube/config", timeout=timeout), "~/.kube/config"
    except FileNotFoundError:
        pass
    try:
        result = await transport.run(["kind", "get", "kubeconfig"], timeout=timeout)
    except CommandNotFound:
        raise FileNotFoundError(
            errno.ENOENT,
            f"no kubeconfig on {transport.label}: ~/.kube/config does not exist and kind "
            "is not installed",
        ) from None
    if result.exit_code != 0 or not result.stdout.strip():
        reason = _one_line(result.stderr) or f"exit {result.exit_code}"
        raise FileNotFoundError(
            errno.ENOENT,
            f"no kubeconfig on {transport.label}: ~/.kube/config does not exist and "
            f"`kind get kubeconfig` failed: {reason}",
        )
    return result.stdout.encode(), "kind get kubeconfig"


async def _forward_kubeconfig(
    transport: RemoteTransport, settings: Settings, dest: Path, timeout: float
) -> tuple[str, bool]:
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; kubernetes depends on it

    raw, source = await _read_kubeconfig(transport, settings, timeout)
    try:
        config = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source} on {transport.label} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{source} on {transport.label} is not a kubeconfig")
    base_dir = os.path.dirname(source) if source.startswith(("/", "~")) else "~"
    for entry in config.get("clusters") or []:
        cluster = entry.get("cluster") if isinstance(entry, dict) else None
        if not isinstance(cluster, dict) or not isinstance(cluster.get("server"), str):
            continue
        cluster["server"] = await _forward_server(transport, cluster)
        await _inline(transport, cluster, "certificate-authority", base_dir, timeout)
    for entry in config.get("users") or []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if isinstance(user, dict):
            await _inline(transport, user, "client-certificate", base_dir, timeout)
            await _inline(transport, user, "client-key", base_dir, timeout)
    text = yaml.safe_dump(config, sort_keys=False)
    with contextlib.suppress(OSError):
        if dest.read_text() == text:
            return source, False
    tmp = dest.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a file that existed
    tmp.replace(dest)
    return source, True


async def _forward_server(transport: RemoteTransport, cluster: dict[str, Any]) -> str:
    server: str = cluster["server"]
    url = urllib.parse.urlsplit(server)
    if url.scheme not in ("http", "https") or not url.hostname:
        return server
    port = url.port or (443 if url.scheme == "https" else 80)
    host = url.hostname
    target = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    local = await transport.forward_tcp(target, port)
    if url.scheme == "https" and host != "127.0.0.1" and not cluster.get("tls-server-name"):
        # Kind's API certificate has IP SAN 127.0.0.1, so 127.0.0.1:LOCAL verifies as
        # is; any other name must still be what the certificate is checked against.
        cluster["tls-server-name"] = host
    return urllib.parse.urlunsplit(
        (url.scheme, f"127.0.0.1:{local}", url.path, url.query, url.fragment)
    )


async def _inline(
    transport: RemoteTransport, entry: dict[str, Any], key: str, base_dir: str, timeout: float
) -> None:
    """A file reference names a file on the host: embed it as `<key>-data`."""
    path = entry.get(key)
    if not isinstance(path, str) or entry.get(f"{key}-data"):
        return
    full = path if path.startswith(("/", "~")) else f"{base_dir.rstrip('/')}/{path}"
    data = await transport.read_file(full, timeout=timeout)
    entry[f"{key}-data"] = base64.b64encode(data).decode("ascii")
    del entry[key]


async def _forward_docker(
    transport: RemoteTransport, settings: Settings, timeout: float, defaults: Sequence[str]
) -> tuple[str, str | None, str | None]:
    """(docker_host URL here, the host socket that answered, problem line)."""
    configured = settings.docker_host
    if configured and configured.startswith("tcp://"):
        url = urllib.parse.urlsplit(configured)
        if url.hostname and url.port:
            # A unix socket in the private directory, not a loopback port: a plain
            # tcp:// daemon has no authentication, so any local user could drive it.
            local = await transport.forward_tcp_private(url.hostname, url.port)
            return f"unix://{local}", None, None
    if configured and configured.startswith("unix://"):
        candidates: list[str] = [configured[len("unix://") :]]
    elif configured and configured.startswith("/"):
        candidates = [configured]
    else:
        candidates = list(defaults)
    errors = []
    working: str | None = None
    for path in candidates:
        try:
            await transport.probe_unix(path, timeout=timeout)
        except (TransportError, OSError) as exc:
            errors.append(_reason(exc))
            continue
        working = path
        break
    if working is not None:
        candidates.remove(working)
        candidates.insert(0, working)
    local = await transport.forward_unix(candidates)
    problem = None
    if working is None:
        problem = f"no Docker socket answers on {transport.label}: tried " + ", ".join(errors)
    return f"unix://{local}", working, problem


# --------------------------------------------------------------------------- keychain

#: tart.md §6.6: on macOS 15+ Virtualization.framework needs an unlocked login keychain.
KEYCHAIN_HINT = (
    "the Mac's login keychain is locked, and on macOS 15+ tart cannot start VMs without "
    "it: run `security unlock-keychain login.keychain` on the Mac (in the same SSH "
    "session type megatui uses), or log in to the Mac's desktop (automatic login)"
)

_KEYCHAIN_SIGNS = (
    "SecKeyCreateRandomKey_ios",
    "Failed to generate keypair",
    "Interaction is not allowed with the Security Server",
    "User interaction is not allowed",
    "-25308",
)


def keychain_hint(text: str) -> str | None:
    """KEYCHAIN_HINT if `text` (a tart start failure, its log) shows the keychain cause."""
    return KEYCHAIN_HINT if any(sign in text for sign in _KEYCHAIN_SIGNS) else None


async def keychain_locked(
    transport: Transport, *, timeout: float = 5.0, security: str = "security"
) -> bool | None:
    """True if the host's login keychain is locked, False if unlocked, None if unknown
    (not a Mac: no `security`; or no login keychain)."""
    try:
        result = await transport.run(
            [security, "show-keychain-info", "login.keychain"], timeout=timeout
        )
    except CommandNotFound:
        return None
    if result.exit_code == 0:
        return False
    if "could not be found" in result.stderr:
        return None
    if keychain_hint(result.stderr) or "locked" in result.stderr.lower():
        return True
    return None
