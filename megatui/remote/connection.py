"""`RemoteTransport`: the one SSH connection to the Mac host, its commands, and its
reconnects.

While the connection is down it is rebuilt in the background with backoff, and every
call fails fast with one line ("connection to ... lost; reconnecting in 4 s"); a
user's refresh retries at once. Logging in and its errors are `login.py`, one
command's exec channel `command.py`, the forwards `forwards.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import getpass
import itertools
import logging
import math
import os
import random
import shlex
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import asyncssh

from megatui.backoff import backoff_delay
from megatui.config import RemoteSettings
from megatui.remote.command import (
    NOT_FOUND,
    Completed,
    RunSession,
    env_script,
    remote_command_line,
    session_factory,
)
from megatui.remote.errors import (
    ConnectionLost,
    HostKeyChanged,
    HostKeyUnknown,
    LoginRefused,
    RemoteCommandNotFound,
    RemoteError,
    parse_host_spec,
)
from megatui.remote.forwards import Forwards
from megatui.remote.login import HostClient, client_options, connect_error, host_key_algs
from megatui.subscribers import Subscribers
from megatui.text import one_line
from megatui.transport import (
    CommandResult,
    CommandTimeout,
    TransportError,
    spawn_detached_via_sh,
)

log = logging.getLogger(__name__)


def _config_paths(path: str | None) -> Sequence[str] | None:
    """`ssh -F`: one file instead of ~/.ssh/config; None keeps asyncssh's default."""
    return [os.path.expanduser(path)] if path else None


class RemoteTransport:
    """`transport.Transport` on a Mac host over one asyncssh connection."""

    is_remote = True

    def __init__(self, host_spec: str, settings: RemoteSettings | None = None) -> None:
        self.spec = parse_host_spec(host_spec)
        self.settings = settings or RemoteSettings()
        self._connect_timeout = self.settings.connect_timeout
        self._rand = random.Random()
        self._user = self.spec.user or getpass.getuser()
        self._sessions = asyncio.Semaphore(self.settings.max_sessions)
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
        self._listeners: Subscribers[RemoteTransport] = Subscribers("transport listener")
        self._forwards = Forwards(self, connect_timeout=self._connect_timeout)
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
    def closed(self) -> bool:
        return self._closed

    def current_connection(self) -> asyncssh.SSHClientConnection | None:
        """The live connection, None while down (for the forwards)."""
        return self._conn

    @property
    def reconnecting(self) -> bool:
        return self._reconnect_task is not None and not self._reconnect_task.done()

    def add_listener(self, callback: Callable[[RemoteTransport], None]) -> Callable[[], None]:
        """Call `callback(self)` whenever `connected` or `last_error` changes."""
        return self._listeners.subscribe(callback)

    def status_line(self) -> str:
        """One line for a status bar: connected, or why not and when the next try is."""
        if self._conn is not None:
            return f"connected to {self.label}"
        return self.lost_message()

    def _notify(self) -> None:
        self._listeners.publish(self)

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

    def lost_message(self) -> str:
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
            raise ConnectionLost(self.lost_message())
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

    async def _open(self) -> None:
        try:
            options = await client_options(
                self.spec,
                known_hosts=self.settings.known_hosts,
                config_paths=_config_paths(self.settings.ssh_config),
                connect_timeout=self._connect_timeout,
                keepalive_interval=self.settings.keepalive_interval,
                keepalive_count_max=self.settings.keepalive_count,
            )
        except (asyncssh.Error, OSError, ValueError) as exc:
            raise RemoteError(
                f"cannot prepare SSH to {self.spec.target}: {one_line(str(exc))}"
            ) from None
        generation = self._generation + 1
        client = HostClient(lambda exc: self._on_lost(generation, exc))
        try:
            # asyncssh's connect_timeout covers TCP, key exchange and login; the outer
            # deadline also covers a DNS lookup that hangs.
            async with asyncio.timeout(self._connect_timeout + 1.0):
                conn = await asyncssh.connect(
                    self.spec.host,
                    options=options,
                    client_factory=lambda: client,
                    **host_key_algs(options),
                )
        except (asyncssh.Error, OSError, ValueError) as exc:
            raise connect_error(exc, self.spec, options, client, self._connect_timeout) from None
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

    def _on_lost(self, generation: int, exc: Exception | None) -> None:
        if generation != self._generation or self._conn is None:
            return
        self._conn = None
        self._home = None
        if self._closed:
            return
        reason = one_line(str(exc)) if exc else "closed by the host"
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
            delay = backoff_delay(
                self._failures,
                self.settings.reconnect_delay,
                self.settings.reconnect_max_delay,
                self._rand,
            )
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
        await self._forwards.close()
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
            return ConnectionLost(self.lost_message())
        if isinstance(exc, asyncssh.ChannelOpenError):
            return RemoteError(f"{self.label} refused {what}: {one_line(exc.reason)}")
        return RemoteError(f"{what} on {self.label} failed: {one_line(str(exc))}")

    async def _exec(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> Completed:
        stdin = env_script(env)
        command = remote_command_line(argv)
        conn = self._require()
        session = RunSession()
        opening: asyncio.Future[Any] | None = None
        chan: asyncssh.SSHClientChannel[bytes] | None = None
        try:
            async with asyncio.timeout(timeout), self._sessions:
                self._busy += 1
                try:
                    for attempt in itertools.count():
                        session = RunSession()
                        # Shielded: cancelled mid-open, the channel could still open
                        # and its command run unwatched; the handlers below wait for
                        # it instead.
                        opening = asyncio.ensure_future(
                            conn.create_session(session_factory(session), command, encoding=None)
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
                raise ConnectionLost(self.lost_message()) from None
            detail = f": {one_line(str(lost))}" if lost else ""
            raise RemoteError(f"{argv[0]} on {self.label} ended without an exit status{detail}")
        if session.pid is None:
            # The wrapper never ran: a forced command in authorized_keys, or a login
            # shell that is not a shell.
            raise RemoteError(
                f"{self.label} did not run our command (exit {code}; a forced command in "
                f"authorized_keys?): {one_line(session.stderr.decode('utf-8', 'replace'))}"
            )
        if code == 127 and session.stderr.startswith(NOT_FOUND.encode()):
            raise RemoteCommandNotFound(argv[0], self.label)
        return Completed(code, bytes(session.stdout), bytes(session.stderr))

    async def _abort(
        self,
        conn: asyncssh.SSHClientConnection,
        opening: asyncio.Future[Any] | None,
        session: RunSession,
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

    # Transport.run's signature (transport.py), as each implementation spells it.
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
        reason = one_line(done.stderr.decode("utf-8", "replace"))
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
            raise self._refused(conn, exc, f"{host}:{port} via {self.label}") from None
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
            raise self._refused(conn, exc, f"{path} on {self.label}") from None
        writer.close()

    def _refused(
        self, conn: asyncssh.SSHClientConnection, exc: asyncssh.ChannelOpenError, what: str
    ) -> Exception:
        """A refused channel: the connection died under it, or the host's end refused
        (then what a local connect() would raise, so callers treat both alike)."""
        if self._conn is not conn:
            return ConnectionLost(self.lost_message())
        return ConnectionRefusedError(errno.ECONNREFUSED, f"{what}: {one_line(exc.reason)}")

    # --- forwards ----------------------------------------------------------------------------

    async def forward_tcp(self, remote_host: str, remote_port: int) -> int:
        """A 127.0.0.1 port here that reaches remote_host:remote_port as the host sees
        it (see `Forwards.tcp` for why a loopback port is safe for the API server)."""
        return await self._forwards.tcp(remote_host, remote_port)

    async def forward_tcp_private(self, remote_host: str, remote_port: int) -> str:
        """A unix socket here, usable by this user only (it is in `private_dir`), that
        reaches remote_host:remote_port as the host sees it."""
        return await self._forwards.tcp_private(remote_host, remote_port)

    async def forward_unix(self, remote_path: str | Sequence[str]) -> str:
        """A unix socket here (in `private_dir`) that reaches a socket on the host;
        given several paths, the first that accepts (`Forwards.unix`)."""
        return await self._forwards.unix(remote_path)

    def forward_error(self, local: str | int) -> str | None:
        """Why the last connection through the forward at `local` failed, if it did."""
        return self._forwards.error(local)

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
