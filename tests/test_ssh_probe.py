"""SSHProber and HostKeyStore against in-process asyncssh servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from asyncssh.public_key import get_default_public_key_algs
from conftest import require_binary

from megatui.clock import FakeClock
from megatui.model import ProbeStage
from megatui.sources.hostkeys import (
    HostKeyStore,
    HostKeyStoreError,
    default_path,
    normalize_key,
)
from megatui.sources.ssh_probe import Credentials, SSHProber, key_text
from megatui.transport import LocalTransport

# A socket or transport the prober forgot to close shows up as a ResourceWarning
# from a destructor; make that fail the test that leaked it.
pytestmark = [
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]

HOST = "127.0.0.7"
PASSWORD = "s3cret-pw"
ADMIN = Credentials(user="admin", password=PASSWORD, use_agent=False)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class FakeVM:
    """An SSH server standing in for a VM's sshd, recording what clients did.

    Commands: `echo ready` prints and exits 0 (or `ready_exit` when set),
    `exit N` exits N, `hang` blocks until the channel closes.
    """

    def __init__(self, host: str, *, password: str = PASSWORD) -> None:
        self.host = host
        self.port = 0
        self.password = password
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.authorized: list[asyncssh.SSHKey] = []
        self.auth_events: list[tuple[str, str]] = []
        self.commands: list[str] = []
        self.accepted = 0
        self.ready_exit = 0
        self.hang_started = asyncio.Event()
        self._open: set[asyncssh.SSHServerConnection] = set()
        self._changed = asyncio.Condition()
        self._listener: asyncssh.SSHAcceptor | None = None

    @property
    def public_key(self) -> str:
        return key_text(self.host_key.convert_to_public())

    @property
    def open_connections(self) -> int:
        return len(self._open)

    async def start(self) -> None:
        vm = self

        class Server(asyncssh.SSHServer):
            def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
                vm.accepted += 1
                vm._open.add(conn)
                self._conn = conn

            def connection_lost(self, exc: Exception | None) -> None:
                vm._open.discard(self._conn)
                asyncio.get_running_loop().create_task(vm._notify())

            def begin_auth(self, username: str) -> bool:
                vm.auth_events.append(("begin", username))
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                vm.auth_events.append(("password", username))
                return username == "admin" and password == vm.password

            def public_key_auth_supported(self) -> bool:
                return bool(vm.authorized)

            def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
                vm.auth_events.append(("publickey", username))
                return key in vm.authorized

        async def handle(process: asyncssh.SSHServerProcess[str]) -> None:
            command = process.command or ""
            vm.commands.append(command)
            if command == "echo ready":
                process.stdout.write("ready\n")
                process.exit(vm.ready_exit)
            elif command.startswith("exit "):
                process.exit(int(command.split()[1]))
            elif command == "hang":
                vm.hang_started.set()
                await process.channel.wait_closed()
            else:
                process.exit(127)

        self._listener = await asyncssh.listen(
            self.host,
            self.port,
            server_factory=Server,
            server_host_keys=[self.host_key],
            process_factory=handle,
            encoding="utf-8",
        )
        self.port = self._listener.get_port()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_all_closed(self, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: not self._open)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.close()
            await self._listener.wait_closed()
            self._listener = None
        # Like a rebooting VM: established sessions die with the server.
        for conn in list(self._open):
            conn.abort()
        await self.wait_all_closed()

    async def restart(self) -> None:
        await self.stop()
        await self.start()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_listener(handler: Handler) -> AsyncIterator[int]:
    """A plain TCP listener (a Mac whose sshd is not up yet). Yields its port.

    On exit it waits for every connection handler to end; a handler that reads
    until EOF ends only if the prober closed its socket, so a leaked socket fails
    the test here instead of warning at interpreter exit.
    """
    tasks: list[asyncio.Task[Any]] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(tracked, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
        async with asyncio.timeout(5):
            await asyncio.gather(*tasks)


async def _read_to_eof(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
    while await reader.read(4096):
        pass


@pytest.fixture
async def fake_vm() -> AsyncIterator[Callable[..., Awaitable[FakeVM]]]:
    started: list[FakeVM] = []

    async def start(host: str = HOST, **kwargs: Any) -> FakeVM:
        vm = FakeVM(host, **kwargs)
        await vm.start()
        started.append(vm)
        return vm

    yield start
    for vm in started:
        await vm.stop()


@pytest.fixture
def store(tmp_path: Path) -> HostKeyStore:
    return HostKeyStore(tmp_path / "data" / "vm_host_keys.json")


@pytest.fixture
async def prober(store: HostKeyStore) -> AsyncIterator[SSHProber]:
    p = SSHProber(LocalTransport(), store, FakeClock(), connect_timeout=3.0, command_timeout=3.0)
    yield p
    await p.close()


# --- stages before login


async def test_closed_port_is_closed(prober: SSHProber) -> None:
    result = await prober.probe("mac1", HOST, _free_port(HOST), ADMIN)
    assert result.stage is ProbeStage.CLOSED
    assert result.checked_at == FakeClock().now()
    assert prober.handshakes == 0


async def test_listener_that_closes_at_once_is_open_not_error(
    prober: SSHProber, store: HostKeyStore
) -> None:
    async def slam(_r: asyncio.StreamReader, _w: asyncio.StreamWriter) -> None:
        return None  # raw_listener closes the socket at once

    async with raw_listener(slam) as port:
        result = await prober.probe("mac1", HOST, port, ADMIN)
    assert result.stage is ProbeStage.OPEN
    assert result.error is None
    assert prober.handshakes == 1
    assert store.lookup("mac1") is None


async def test_silent_listener_times_out_as_open(store: HostKeyStore) -> None:
    prober = SSHProber(LocalTransport(), store, FakeClock(), connect_timeout=0.3)
    async with raw_listener(_read_to_eof) as port:
        result = await prober.probe("mac1", HOST, port, ADMIN)
    await prober.close()
    assert result.stage is ProbeStage.OPEN
    assert not prober.has_connection("mac1")


class _FailingTransport(LocalTransport):
    async def open_connection(self, host: str, port: int, *, timeout: float) -> Any:
        raise OSError(113, "No route to host")


async def test_transport_failure_is_closed(store: HostKeyStore) -> None:
    prober = SSHProber(_FailingTransport(), store, FakeClock())
    result = await prober.probe("mac1", HOST, 22, ADMIN)
    assert result.stage is ProbeStage.CLOSED
    assert prober.handshakes == 0


# --- login and the kept connection


async def test_password_login_ready_then_reuses_connection(
    fake_vm: Callable[..., Awaitable[FakeVM]], prober: SSHProber, store: HostKeyStore
) -> None:
    vm = await fake_vm()
    first = await prober.probe("mac1", HOST, vm.port, ADMIN)
    assert (first.stage, first.error) == (ProbeStage.READY, None)
    assert prober.has_connection("mac1")
    assert store.lookup("mac1") == vm.public_key
    accepted = vm.accepted  # the TCP check and the login

    second = await prober.probe("mac1", HOST, vm.port, ADMIN)
    assert second.stage is ProbeStage.READY
    assert prober.handshakes == 1
    assert vm.accepted == accepted
    assert vm.commands == ["echo ready", "echo ready"]


async def test_server_restart_drops_kept_connection_and_logs_in_again(
    fake_vm: Callable[..., Awaitable[FakeVM]], prober: SSHProber
) -> None:
    vm = await fake_vm()
    assert (await prober.probe("mac1", HOST, vm.port, ADMIN)).stage is ProbeStage.READY
    await vm.restart()

    result = await prober.probe("mac1", HOST, vm.port, ADMIN)
    assert result.stage is ProbeStage.READY
    assert prober.handshakes == 2
    assert prober.has_connection("mac1")
    assert vm.open_connections == 1


async def test_failing_health_check_reports_open_and_keeps_connection(
    fake_vm: Callable[..., Awaitable[FakeVM]], prober: SSHProber
) -> None:
    vm = await fake_vm()
    assert (await prober.probe("mac1", HOST, vm.port, ADMIN)).stage is ProbeStage.READY
    vm.ready_exit = 1
    result = await prober.probe("mac1", HOST, vm.port, ADMIN)
    assert result.stage is ProbeStage.OPEN
    assert result.error == "readiness command `echo ready` exited 1"
    assert prober.handshakes == 1
    vm.ready_exit = 0
    assert (await prober.probe("mac1", HOST, vm.port, ADMIN)).stage is ProbeStage.READY
    assert prober.handshakes == 1


async def test_wrong_password_is_auth_failed_without_the_password(
    fake_vm: Callable[..., Awaitable[FakeVM]], prober: SSHProber, store: HostKeyStore
) -> None:
    vm = await fake_vm(password="the-real-one")
    result = await prober.probe("mac1", HOST, vm.port, ADMIN)
    assert result.stage is ProbeStage.AUTH_FAILED
    assert result.error == f"authentication failed for admin@{HOST}"
    assert ("password", "admin") in vm.auth_events
    assert not prober.has_connection("mac1")
    # The key exchange completed, so the key is the server's own: trusted.
    assert store.lookup("mac1") == vm.public_key
    await vm.wait_all_closed()


async def test_public_key_login(
    fake_vm: Callable[..., Awaitable[FakeVM]], prober: SSHProber, tmp_path: Path
) -> None:
    vm = await fake_vm()
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = tmp_path / "id_ed25519"
    client_key.write_private_key(str(key_path))
    vm.authorized.append(client_key.convert_to_public())

    creds = Credentials(user="admin", key_path=str(key_path), use_agent=False)
    result = await prober.probe("mac1", HOST, vm.port, creds)
    assert result.stage is ProbeStage.READY
    assert ("publickey", "admin") in vm.auth_events
    assert ("password", "admin") not in vm.auth_events


async def test_no_surprise_default_keys_without_agent(
    fake_vm: Callable[..., Awaitable[FakeVM]],
    prober: SSHProber,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A key in ~/.ssh that the server would accept must not be offered when the
    # user asked for password-only login.
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    default_key = asyncssh.generate_private_key("ssh-ed25519")
    default_key.write_private_key(str(home / ".ssh" / "id_ed25519"))
    monkeypatch.setenv("HOME", str(home))
    vm = await fake_vm(password="other")
    vm.authorized.append(default_key.convert_to_public())

    result = await prober.probe("mac1", HOST, vm.port, ADMIN)
    assert result.stage is ProbeStage.AUTH_FAILED
    assert ("publickey", "admin") not in vm.auth_events


@pytest.fixture
async def ssh_agent(tmp_path: Path) -> AsyncIterator[str]:
    """A real ssh-agent on a socket in tmp_path. Yields the socket path."""
    agent = require_binary("ssh-agent", "/usr/bin/ssh-agent")
    sock = tmp_path / "agent.sock"
    proc = await asyncio.create_subprocess_exec(
        agent, "-D", "-a", str(sock), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        # It prints the SSH_AUTH_SOCK line once the socket is listening.
        async with asyncio.timeout(10):
            assert b"SSH_AUTH_SOCK" in await proc.stdout.readline()
        yield str(sock)
    finally:
        proc.kill()
        await proc.wait()


async def test_agent_keys_are_used_only_when_asked(
    fake_vm: Callable[..., Awaitable[FakeVM]],
    prober: SSHProber,
    ssh_agent: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh keys to fall back on
    monkeypatch.setenv("SSH_AUTH_SOCK", ssh_agent)
    key = asyncssh.generate_private_key("ssh-ed25519")
    agent = await asyncssh.connect_agent(ssh_agent)
    assert agent is not None
    async with agent:
        await agent.add_keys([key])
    vm = await fake_vm(password="unknown")
    vm.authorized.append(key.convert_to_public())

    without = Credentials(user="admin", use_agent=False)
    assert (await prober.probe("mac1", HOST, vm.port, without)).stage is ProbeStage.AUTH_FAILED
    assert ("publickey", "admin") not in vm.auth_events

    result = await prober.probe("mac1", HOST, vm.port, Credentials(user="admin"))
    assert result.stage is ProbeStage.READY


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "No such file or directory"), (b"not a key\n", "Invalid private key")],
    ids=["missing", "garbage"],
)
async def test_bad_key_file_is_a_one_line_error(
    fake_vm: Callable[..., Awaitable[FakeVM]],
    prober: SSHProber,
    tmp_path: Path,
    content: bytes | None,
    reason: str,
) -> None:
    vm = await fake_vm()
    key_path = tmp_path / "id_broken"
    if content is not None:
        key_path.write_bytes(content)
    creds = Credentials(user="admin", password=PASSWORD, key_path=str(key_path))
    result = await prober.probe("mac1", HOST, vm.port, creds)
    assert result.stage is ProbeStage.ERROR
    assert result.error is not None
    assert result.error.startswith(f"cannot use SSH key {key_path}: ")
    assert reason in result.error
    assert "\n" not in result.error
    assert vm.auth_events == []


# --- host keys


async def test_changed_host_key_is_refused_before_any_auth(
    fake_vm: Callable[..., Awaitable[FakeVM]], prober: SSHProber, store: HostKeyStore
) -> None:
    original = await fake_vm()
    assert (await prober.probe("mac1", HOST, original.port, ADMIN)).stage is ProbeStage.READY
    trusted = store.lookup("mac1")

    # Same VM name, rebuilt (new key) and on another address: Tart reuses IPs,
    # the name is what identifies the machine.
    impostor = await fake_vm("127.0.0.8")
    result = await prober.probe("mac1", "127.0.0.8", impostor.port, ADMIN)

    new_fp = impostor.host_key.get_fingerprint("sha256")
    old_fp = original.host_key.get_fingerprint("sha256")
    assert result.stage is ProbeStage.HOST_KEY_CHANGED
    assert result.error == (
        f"host key of VM 'mac1' changed (now {new_fp}, trusted {old_fp}): refusing to log in; "
        "if the VM was rebuilt, run `megatui forget-key mac1`"
    )
    assert impostor.auth_events == []
    assert impostor.commands == []
    assert store.lookup("mac1") == trusted
    assert not prober.has_connection("mac1")
    # The kept connection to the old address went away with the move.
    await original.wait_all_closed()

    # Probing again must not wear the refusal down.
    again = await prober.probe("mac1", "127.0.0.8", impostor.port, ADMIN)
    assert again.stage is ProbeStage.HOST_KEY_CHANGED

    assert store.forget("mac1") is True
    after = await prober.probe("mac1", "127.0.0.8", impostor.port, ADMIN)
    assert after.stage is ProbeStage.READY
    assert store.lookup("mac1") == impostor.public_key


async def test_trusted_key_type_is_preferred_over_other_server_keys(
    prober: SSHProber, store: HostKeyStore
) -> None:
    # A server with several host keys must keep showing the one we pinned, or a
    # harmless algorithm preference would look like a changed key. So pin the
    # key type asyncssh would NOT pick by itself.
    keys = [
        asyncssh.generate_private_key("ssh-ed25519"),
        asyncssh.generate_private_key("ssh-rsa", key_size=2048),
    ]
    defaults = get_default_public_key_algs()

    def rank(key: asyncssh.SSHKey) -> int:
        return min(defaults.index(a) for a in key.sig_algorithms if a in defaults)

    pinned = max(keys, key=rank)
    store.trust("mac1", key_text(pinned.convert_to_public()))
    listener = await asyncssh.listen(
        HOST,
        0,
        server_host_keys=keys,
        process_factory=lambda process: process.exit(0),
        server_factory=_AcceptAdmin,
    )
    try:
        result = await prober.probe("mac1", HOST, listener.get_port(), ADMIN)
    finally:
        await prober.close()
        listener.close()
    assert result.stage is ProbeStage.READY
    assert store.lookup("mac1") == key_text(pinned.convert_to_public())


class _AcceptAdmin(asyncssh.SSHServer):
    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return password == PASSWORD


async def test_damaged_store_is_an_error_without_login(
    fake_vm: Callable[..., Awaitable[FakeVM]], prober: SSHProber, store: HostKeyStore
) -> None:
    vm = await fake_vm()
    store.path.parent.mkdir(parents=True)
    store.path.write_text("{not json")
    result = await prober.probe("mac1", HOST, vm.port, ADMIN)
    assert result.stage is ProbeStage.ERROR
    assert result.error == f"host key store {store.path} is damaged (not JSON); fix or delete it"
    assert prober.handshakes == 0
    assert store.path.read_text() == "{not json"


# --- readiness command


async def test_failing_readiness_command_is_open_and_not_kept(
    fake_vm: Callable[..., Awaitable[FakeVM]], prober: SSHProber
) -> None:
    vm = await fake_vm()
    result = await prober.probe("mac1", HOST, vm.port, ADMIN, command="exit 3")
    assert result.stage is ProbeStage.OPEN
    assert result.error == "readiness command `exit 3` exited 3"
    assert not prober.has_connection("mac1")
    await vm.wait_all_closed()


async def test_hanging_readiness_command_times_out_as_open(
    fake_vm: Callable[..., Awaitable[FakeVM]], store: HostKeyStore
) -> None:
    vm = await fake_vm()
    prober = SSHProber(LocalTransport(), store, FakeClock(), command_timeout=0.2)
    result = await prober.probe("mac1", HOST, vm.port, ADMIN, command="hang")
    assert result.stage is ProbeStage.OPEN
    assert result.error == "readiness command `hang` did not finish within 0.2 s"
    assert not prober.has_connection("mac1")
    await vm.wait_all_closed()


# --- cancellation and shutdown


async def test_cancel_during_command_leaves_no_connection(
    fake_vm: Callable[..., Awaitable[FakeVM]], prober: SSHProber
) -> None:
    vm = await fake_vm()
    task = asyncio.create_task(prober.probe("mac1", HOST, vm.port, ADMIN, command="hang"))
    async with asyncio.timeout(5):
        await vm.hang_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not prober.has_connection("mac1")
    await vm.wait_all_closed()


async def test_cancel_during_health_check_drops_the_kept_connection(
    fake_vm: Callable[..., Awaitable[FakeVM]], prober: SSHProber
) -> None:
    vm = await fake_vm()
    assert (await prober.probe("mac1", HOST, vm.port, ADMIN)).stage is ProbeStage.READY
    task = asyncio.create_task(prober.probe("mac1", HOST, vm.port, ADMIN, command="hang"))
    async with asyncio.timeout(5):
        await vm.hang_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert prober.handshakes == 1
    assert not prober.has_connection("mac1")
    await vm.wait_all_closed()


async def test_cancel_during_handshake_closes_the_socket(prober: SSHProber) -> None:
    # One event per accepted socket, set when the client's side reaches EOF.
    accepted: asyncio.Queue[asyncio.Event] = asyncio.Queue()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        eof = asyncio.Event()
        await accepted.put(eof)
        await _read_to_eof(reader, writer)
        eof.set()

    async with raw_listener(mute) as port:
        task = asyncio.create_task(prober.probe("mac1", HOST, port, ADMIN))
        async with asyncio.timeout(5):
            await (await accepted.get()).wait()  # the TCP check, closed by the prober
            login_eof = await accepted.get()  # the SSH login, now waiting for a banner
        assert not login_eof.is_set()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(5):
            await login_eof.wait()
    assert not prober.has_connection("mac1")


async def test_close_and_drop_release_kept_connections(
    fake_vm: Callable[..., Awaitable[FakeVM]], store: HostKeyStore
) -> None:
    a = await fake_vm()
    b = await fake_vm("127.0.0.8")
    prober = SSHProber(LocalTransport(), store, FakeClock())
    assert (await prober.probe("a", HOST, a.port, ADMIN)).stage is ProbeStage.READY
    assert (await prober.probe("b", "127.0.0.8", b.port, ADMIN)).stage is ProbeStage.READY

    await prober.drop("a")
    assert not prober.has_connection("a")
    assert prober.has_connection("b")
    await a.wait_all_closed()

    await prober.close()
    assert not prober.has_connection("b")
    await b.wait_all_closed()


# --- through a tunnel (the Mac host as jump box)


class _JumpServer(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> bool:
        return True


class _TunnelTransport(LocalTransport):
    def __init__(self, jump: asyncssh.SSHClientConnection) -> None:
        self.jump = jump
        self.tcp_checks: list[tuple[str, int]] = []

    async def open_connection(self, host: str, port: int, *, timeout: float) -> Any:
        self.tcp_checks.append((host, port))
        async with asyncio.timeout(timeout):
            return await self.jump.open_connection(host, port)

    def ssh_tunnel(self) -> Any:
        return self.jump


async def test_probe_through_transport_tunnel(
    fake_vm: Callable[..., Awaitable[FakeVM]], store: HostKeyStore
) -> None:
    vm = await fake_vm()
    jump_key = asyncssh.generate_private_key("ssh-ed25519")
    jump = await asyncssh.listen(
        "127.0.0.9", 0, server_host_keys=[jump_key], server_factory=_JumpServer
    )
    async with asyncssh.connect(
        "127.0.0.9", jump.get_port(), known_hosts=None, username="me", config=None
    ) as jump_conn:
        transport = _TunnelTransport(jump_conn)
        prober = SSHProber(transport, store, FakeClock())
        result = await prober.probe("mac1", HOST, vm.port, ADMIN)
        closed = await prober.probe("mac2", HOST, _free_port(HOST), ADMIN)
        await prober.close()
    jump.close()
    assert result.stage is ProbeStage.READY
    assert closed.stage is ProbeStage.CLOSED
    assert transport.tcp_checks[0] == (HOST, vm.port)


# --- credentials


def test_credentials_repr_hides_password() -> None:
    creds = Credentials(user="admin", password="hunter2")
    assert "hunter2" not in repr(creds)
    assert "admin" in repr(creds)


# --- HostKeyStore


def _pub() -> str:
    return key_text(asyncssh.generate_private_key("ssh-ed25519").convert_to_public())


def test_store_persists_across_instances_and_keeps_other_entries(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "vm_host_keys.json"
    k1, k2 = _pub(), _pub()
    HostKeyStore(path).trust("mac1", k1)
    HostKeyStore(path).trust("mac2", k2 + " root@builder")
    reopened = HostKeyStore(path)
    assert reopened.lookup("mac1") == k1
    assert reopened.lookup("mac2") == k2  # comment dropped
    assert reopened.lookup("mac3") is None
    assert json.loads(path.read_text()) == {"version": 1, "keys": {"mac1": k1, "mac2": k2}}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_store_forget(tmp_path: Path) -> None:
    store = HostKeyStore(tmp_path / "keys.json")
    k1, k2 = _pub(), _pub()
    store.trust("mac1", k1)
    store.trust("mac2", k2)
    assert store.forget("mac1") is True
    assert store.forget("mac1") is False
    assert HostKeyStore(store.path).all() == {"mac2": k2}


def test_store_failed_write_keeps_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = HostKeyStore(tmp_path / "keys.json")
    k1 = _pub()
    store.trust("mac1", k1)
    before = store.path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(HostKeyStoreError, match="No space left on device"):
        store.trust("mac2", _pub())
    monkeypatch.undo()

    assert store.path.read_bytes() == before
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert leftovers == ["keys.json", "keys.json.lock"]


def test_store_damaged_file_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text('{"keys": ["x"]}')
    store = HostKeyStore(path)
    with pytest.raises(HostKeyStoreError) as info:
        store.lookup("mac1")
    assert "\n" not in str(info.value)
    with pytest.raises(HostKeyStoreError):
        store.trust("mac1", _pub())
    assert path.read_text() == '{"keys": ["x"]}'


def test_store_rejects_text_that_is_not_a_key(tmp_path: Path) -> None:
    store = HostKeyStore(tmp_path / "keys.json")
    for bad in ("", "ssh-ed25519", "ssh-ed25519 !!!", "ssh-rsa " + _pub().split()[1]):
        with pytest.raises(ValueError):
            store.trust("mac1", bad)
    assert not store.path.exists()


def test_store_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys = {f"vm{i}": _pub() for i in range(24)}
    barrier = threading.Barrier(len(keys))

    def writer(name: str, key: str) -> None:
        barrier.wait()
        HostKeyStore(path).trust(name, key)

    threads = [threading.Thread(target=writer, args=item) for item in keys.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert HostKeyStore(path).all() == keys


def test_default_path_is_in_the_data_dir() -> None:
    assert default_path() == Path(os.environ["MEGATUI_DATA_DIR"]) / "vm_host_keys.json"


def test_normalize_key_keeps_algorithm_and_blob() -> None:
    key = _pub()
    assert normalize_key(f"  {key} a comment with spaces \n") == key
