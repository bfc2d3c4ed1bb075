"""RemoteTransport against a loopback SSH host (tests/remote_fixtures.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import pwd
import random
import re
import shlex
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs
from remote_fixtures import (  # noqa: F401
    LoopbackHost,
    StateWatch,
    eventually,
    loopback_host_fixture,
    make_transport,
)
from sshd_fixtures import RealSSHD, SSHDFactory, real_sshd_fixture  # noqa: F401

from megatui.backoff import backoff_delay
from megatui.config import RemoteSettings, Settings, load_settings
from megatui.keychain import KEYCHAIN_HINT, keychain_hint, keychain_locked
from megatui.lab.tartlab import create_tart_lab, process_alive
from megatui.remote import (
    ConnectionLost,
    HostKeyChanged,
    HostKeyUnknown,
    HostSpecError,
    HostUnreachable,
    LoginRefused,
    RemoteTransport,
    parse_host_spec,
    prepare_remote,
    refresh_kubeconfig,
    remote_command_line,
)
from megatui.transport import CommandNotFound, CommandTimeout, TransportError

pytestmark = pytest.mark.sshd

LOST = re.compile(r"^connection to \S+ lost; reconnecting (in \d+ s|now)( \(last attempt: .*\))?$")


@pytest.fixture
async def transport(loopback_host: LoopbackHost) -> AsyncIterator[RemoteTransport]:
    t = make_transport(loopback_host)
    await t.connect()
    try:
        yield t
    finally:
        await t.close()


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("spec", "user", "host", "port"),
    [
        ("mac.local", None, "mac.local", None),
        ("admin@mac.local", "admin", "mac.local", None),
        ("admin@mac.local:2222", "admin", "mac.local", 2222),
        ("10.0.0.5:22", None, "10.0.0.5", 22),
        ("me@[fe80::1]:2200", "me", "fe80::1", 2200),
    ],
)
def test_host_spec(spec: str, user: str | None, host: str, port: int | None) -> None:
    parsed = parse_host_spec(spec)
    assert (parsed.user, parsed.host, parsed.port) == (user, host, port)


@pytest.mark.parametrize(
    "spec", ["", "@mac", "mac:", "mac:99999", "a@b@c", "-oProxyCommand=x", "mac:x"]
)
def test_bad_host_spec_is_one_line(spec: str) -> None:
    with pytest.raises(HostSpecError) as info:
        parse_host_spec(spec)
    assert "\n" not in str(info.value)
    assert "[USER@]MAC[:PORT]" in str(info.value) or "port" in str(info.value)


def test_label_names_user_host_and_port() -> None:
    assert RemoteTransport("admin@mac.local").label == "admin@mac.local"
    assert RemoteTransport("admin@mac.local:2222").label == "admin@mac.local:2222"
    t = RemoteTransport("admin@mac")
    assert t.is_remote and not t.connected and t.connections_opened == 0


def test_command_line_keeps_every_argument_whole() -> None:
    argv = ["tart", "ip", "a b;touch x", "$(reboot)", "it's", "`id`", "new\nline", ""]
    words = shlex.split(remote_command_line(argv))
    assert words[:3] == ["exec", "/bin/sh", "-c"]
    assert words[4:] == ["megatui", *argv]


def test_backoff_doubles_to_the_cap_with_jitter() -> None:
    rand = random.Random(7)
    delays = [backoff_delay(n, 1.0, 30.0, rand) for n in range(8)]
    for n, delay in enumerate(delays):
        nominal = min(30.0, 2.0**n)
        assert 0.8 * nominal <= delay <= 1.2 * nominal
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered, not in lockstep


def test_keychain_hint_recognises_tart_failures() -> None:
    assert keychain_hint("Error: SecKeyCreateRandomKey_ios failed") == KEYCHAIN_HINT
    assert keychain_hint("Keychain returned unsuccessful status -25308") == KEYCHAIN_HINT
    assert keychain_hint('the specified VM "x" does not exist') is None
    assert "security unlock-keychain login.keychain" in KEYCHAIN_HINT


# --------------------------------------------------------------------------- commands


async def test_run_passes_output_exit_code_and_stderr(transport: RemoteTransport) -> None:
    result = await transport.run(
        ["sh", "-c", 'printf "out\\n"; printf "err\\n" >&2; exit 3'], timeout=10
    )
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert result.argv == ("sh", "-c", 'printf "out\\n"; printf "err\\n" >&2; exit 3')


async def test_vm_name_reaches_tart_as_one_argument(
    transport: RemoteTransport, loopback_host: LoopbackHost, tmp_path: Path
) -> None:
    lab = create_tart_lab(tmp_path / "lab", [])
    (loopback_host.bin_dir / "tart").symlink_to(lab.tart_path)
    # sshd starts sessions in the account's home directory, whatever HOME says.
    places = {loopback_host.home, tmp_path, Path.cwd(), Path(pwd.getpwuid(os.geteuid()).pw_dir)}
    before = {where: _stat(where / "x") for where in places}
    name = "a b;touch x"
    result = await transport.run(["tart", "ip", name], timeout=10)
    assert result.exit_code == 2  # docs/facts/tart.md §1: VMDoesNotExist from run() exits 2
    assert result.stderr.strip() == 'the specified VM "a b;touch x" does not exist'
    run = await transport.run(["tart", "run", "--no-graphics", name], timeout=10)
    assert run.exit_code == 1
    assert run.stderr.strip() == 'Error: the specified VM "a b;touch x" does not exist'
    assert {where: _stat(where / "x") for where in places} == before


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


async def test_environment_values_arrive_verbatim(transport: RemoteTransport) -> None:
    value = 'it\'s $HOME `id` "q"\nline2'
    result = await transport.run(
        ["sh", "-c", 'printf "%s" "$MEGATUI_T"'], timeout=10, env={"MEGATUI_T": value}
    )
    assert result.stdout == value
    with pytest.raises(TransportError):
        await transport.run(["true"], timeout=10, env={"BAD NAME": "x"})


async def test_homebrew_directories_are_on_the_path(transport: RemoteTransport) -> None:
    result = await transport.run(["sh", "-c", 'printf "%s" "$PATH"'], timeout=10)
    assert result.stdout.split(":")[-2:] == ["/opt/homebrew/bin", "/usr/local/bin"]


async def test_missing_program_is_command_not_found(transport: RemoteTransport) -> None:
    with pytest.raises(CommandNotFound) as info:
        await transport.run(["megatui-no-such-tool", "list"], timeout=10)
    assert info.value.program == "megatui-no-such-tool"
    assert str(info.value).startswith(f"megatui-no-such-tool: not found on {transport.label}")
    # A program that exits 127 by itself is just a result.
    result = await transport.run(["sh", "-c", "echo 'sh: x: not found' >&2; exit 127"], timeout=10)
    assert result.exit_code == 127


async def _pids_from(path: Path) -> list[int]:
    await eventually(lambda: path.exists() and len(path.read_text().split()) >= 3, what=str(path))
    return [int(p) for p in path.read_text().split()]


# Starts a child and a grandchild, writes the three pids, then blocks.
_TREE = (
    "sh -c 'sleep 300' & c=$!; "
    '(sleep 301 & echo $! > "$1.g"; wait) & '
    'while [ ! -s "$1.g" ]; do :; done; '
    'echo $$ $c $(cat "$1.g") > "$1.tmp"; mv "$1.tmp" "$1"; wait'
)


async def test_timeout_kills_the_remote_process_group(
    transport: RemoteTransport, loopback_host: LoopbackHost
) -> None:
    marker = loopback_host.home / "tree.pids"
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        await transport.run(["sh", "-c", _TREE, "sh", str(marker)], timeout=1.5)
    assert str(info.value) == "sh did not finish within 1.5 s"
    assert time.monotonic() - started < 8
    pids = await _pids_from(marker)
    await eventually(lambda: not any(process_alive(p) for p in pids), what="the tree to die")


async def test_cancellation_kills_the_remote_process_group(
    transport: RemoteTransport, loopback_host: LoopbackHost
) -> None:
    marker = loopback_host.home / "tree.pids"
    task = asyncio.create_task(transport.run(["sh", "-c", _TREE, "sh", str(marker)], timeout=60))
    pids = await _pids_from(marker)
    assert all(process_alive(p) for p in pids)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await eventually(lambda: not any(process_alive(p) for p in pids), what="the tree to die")
    # The connection is still fine afterwards.
    assert (await transport.run(["true"], timeout=10)).exit_code == 0
    assert transport.connections_opened == 1


async def test_more_commands_than_max_sessions_at_once(
    transport: RemoteTransport, loopback_host: LoopbackHost
) -> None:
    async def burst(t: RemoteTransport) -> list[object]:
        return await asyncio.gather(
            *(t.run(["sh", "-c", f"sleep 0.3; echo {n}"], timeout=30) for n in range(30)),
            return_exceptions=True,
        )

    results = await burst(transport)
    assert [getattr(r, "stdout", r) for r in results] == [f"{n}\n" for n in range(30)]
    assert transport.connections_opened == 1
    # Without the limit sshd (MaxSessions 10) refuses the excess, and only the
    # retries get every command through.
    unlimited = make_transport(loopback_host, max_sessions=30)
    try:
        await unlimited.connect()
        results = await burst(unlimited)
        assert [getattr(r, "stdout", r) for r in results] == [f"{n}\n" for n in range(30)]
        assert unlimited.session_retries >= 20
    finally:
        await unlimited.close()


async def test_read_file_expands_tilde_on_the_host(
    transport: RemoteTransport, loopback_host: LoopbackHost
) -> None:
    (loopback_host.home / ".kube").mkdir()
    (loopback_host.home / ".kube" / "config").write_bytes(b"\x00\xffbinary\n")
    assert await transport.read_file("~/.kube/config", timeout=10) == b"\x00\xffbinary\n"
    with pytest.raises(FileNotFoundError) as info:
        await transport.read_file("~/missing", timeout=10)
    assert "\n" not in str(info.value)
    assert await transport.home() == str(loopback_host.home)


async def test_spawn_detached_survives_the_connection_dropping(
    transport: RemoteTransport, loopback_host: LoopbackHost
) -> None:
    watch = StateWatch(transport)
    pid = await transport.spawn_detached(
        ["sh", "-c", "echo started; exec sleep 300"], log_path="~/.megatui/logs/vm.log"
    )
    log = loopback_host.home / ".megatui" / "logs" / "vm.log"
    try:
        await eventually(lambda: log.exists() and log.read_text() == "started\n", what="the log")
        await loopback_host.drop_connections()
        await watch.until(lambda: not transport.connected)
        assert process_alive(pid)
        await watch.until(lambda: transport.connected)
        assert process_alive(pid)
    finally:
        os.kill(pid, 9)


# --------------------------------------------------------------------------- connections


async def _closed(writer: asyncio.StreamWriter | asyncssh.SSHWriter[bytes]) -> None:
    """Close and wait, so no socket is left for the garbage collector."""
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        await _closed(writer)


async def _echo_server() -> tuple[asyncio.AbstractServer, int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


async def _roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    await writer.drain()
    got = b""
    async with asyncio.timeout(10):
        while len(got) < len(data):
            chunk = await reader.read(65536)
            if not chunk:
                break
            got += chunk
    return got


async def test_open_connection_goes_through_the_host(transport: RemoteTransport) -> None:
    server, port = await _echo_server()
    async with server:
        reader, writer = await transport.open_connection("127.0.0.1", port, timeout=5)
        assert await reader_roundtrip(reader, writer, b"ping") == b"ping"
        await _closed(writer)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed_port = s.getsockname()[1]
        with pytest.raises(ConnectionRefusedError):
            await transport.open_connection("127.0.0.1", closed_port, timeout=5)


async def reader_roundtrip(
    reader: asyncssh.SSHReader[bytes], writer: asyncssh.SSHWriter[bytes], data: bytes
) -> bytes:
    writer.write(data)
    return await reader.readexactly(len(data))


async def test_forward_tcp(transport: RemoteTransport) -> None:
    server, port = await _echo_server()
    async with server:
        local = await transport.forward_tcp("127.0.0.1", port)
        assert await transport.forward_tcp("127.0.0.1", port) == local
        for n in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", local)
            payload = os.urandom(200_000) + str(n).encode()
            assert await _roundtrip(reader, writer, payload) == payload
            await _closed(writer)
    assert transport.connections_opened == 1


async def test_a_tcp_docker_host_is_forwarded_to_a_private_socket(
    transport: RemoteTransport,
) -> None:
    # A plain tcp:// Docker daemon has no authentication: its local end must be
    # usable by this user only, so a unix socket in the 0700 private directory, not
    # a loopback port any local user can reach.
    server, port = await _echo_server()
    async with server:
        setup = await prepare_remote(
            transport, Settings(docker_host=f"tcp://127.0.0.1:{port}"), docker_sockets=()
        )
        docker_host = setup.settings.docker_host or ""
        assert docker_host.startswith("unix://"), docker_host
        local = Path(docker_host.removeprefix("unix://"))
        assert local.parent == transport.private_dir()
        assert stat.S_IMODE(local.parent.stat().st_mode) == 0o700
        assert stat.S_IMODE(local.stat().st_mode) == 0o600
        reader, writer = await asyncio.open_unix_connection(str(local))
        assert await _roundtrip(reader, writer, b"ping") == b"ping"
        await _closed(writer)
    await transport.close()
    assert not local.parent.exists()


async def test_forward_unix_tries_paths_in_order(
    transport: RemoteTransport, loopback_host: LoopbackHost
) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello from the host\n")
        await writer.drain()
        await _closed(writer)

    socket_dir = loopback_host.home / ".docker" / "run"
    socket_dir.mkdir(parents=True)
    server = await asyncio.start_unix_server(echo, path=str(socket_dir / "docker.sock"))
    async with server:
        local = await transport.forward_unix(
            [str(loopback_host.home / "absent.sock"), "~/.docker/run/docker.sock"]
        )
        assert stat.S_IMODE(os.stat(os.path.dirname(local)).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(local).st_mode) == 0o600
        for _ in range(3):
            reader, writer = await asyncio.open_unix_connection(local)
            assert await reader.readline() == b"hello from the host\n"
            await _closed(writer)
        assert transport.forward_error(local) is None
    # The daemon is gone: the local socket still accepts, closes at once, and says why.
    reader, writer = await asyncio.open_unix_connection(local)
    assert await reader.read() == b""
    await _closed(writer)
    error = transport.forward_error(local)
    assert error is not None and "no socket answers" in error and "\n" not in error


# --------------------------------------------------------------------------- reconnecting


async def test_dropped_connection_fails_fast_then_reconnects(
    loopback_host: LoopbackHost,
) -> None:
    t = make_transport(loopback_host, reconnect_delay=0.5, reconnect_max_delay=0.5)
    watch = StateWatch(t)
    server, port = await _echo_server()
    unix_server = await asyncio.start_unix_server(_echo, path=str(loopback_host.home / "echo.sock"))
    try:
        async with server, unix_server:
            await t.connect()
            local = await t.forward_tcp("127.0.0.1", port)
            local_unix = await t.forward_unix("~/echo.sock")
            reader, writer = await asyncio.open_connection("127.0.0.1", local)
            assert await _roundtrip(reader, writer, b"before") == b"before"
            r, w = await asyncio.open_unix_connection(local_unix)
            assert await _roundtrip(r, w, b"before") == b"before"
            await _closed(w)

            await loopback_host.drop_connections()
            await watch.until(lambda: not t.connected)
            # The piped connection ends; nothing hangs.
            async with asyncio.timeout(5):
                assert await reader.read() == b""
            await _closed(writer)

            started = time.monotonic()
            for call in (
                t.run(["true"], timeout=30),
                t.read_file("~/x", timeout=30),
                t.open_connection("127.0.0.1", port, timeout=30),
            ):
                with pytest.raises(ConnectionLost) as info:
                    await call
                assert LOST.match(str(info.value)), str(info.value)
            with pytest.raises(ConnectionLost):
                t.ssh_tunnel()
            assert time.monotonic() - started < 0.5
            assert t.last_error is not None and "lost" in t.last_error

            # A local connection while down is closed at once, with the reason kept.
            reader, writer = await asyncio.open_connection("127.0.0.1", local)
            async with asyncio.timeout(5):
                assert await reader.read() == b""
            await _closed(writer)
            assert LOST.match(t.forward_error(local) or ""), t.forward_error(local)

            await watch.until(lambda: t.connected)
            assert t.connections_opened == 2 and t.last_error is None
            assert (await t.run(["echo", "again"], timeout=10)).stdout == "again\n"
            reader, writer = await asyncio.open_connection("127.0.0.1", local)
            assert await _roundtrip(reader, writer, b"after") == b"after"
            await _closed(writer)
            r, w = await asyncio.open_unix_connection(local_unix)
            assert await _roundtrip(r, w, b"after") == b"after"
            await _closed(w)
            assert t.connections_opened == 2
    finally:
        await t.close()


async def test_a_frozen_host_is_noticed_by_keepalives(loopback_host: LoopbackHost) -> None:
    # A Mac that sleeps or a network that vanishes sends no reset: only keepalives tell.
    t = make_transport(loopback_host, keepalive_interval=0.2, keepalive_count=2)
    watch = StateWatch(t)
    await t.connect()
    frozen = loopback_host.connection_pids()
    assert frozen
    for pid in frozen:
        # A helper process of sshd may have ended since it was listed.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGSTOP)
    try:
        await watch.until(lambda: not t.connected, timeout=10)
        assert t.last_error is not None and t.last_error.startswith(f"connection to {t.label} lost")
        with pytest.raises(ConnectionLost):
            await t.run(["true"], timeout=30)
        # sshd's listener is not frozen: the reconnect gets a fresh session.
        await watch.until(lambda: t.connected, timeout=10)
        assert (await t.run(["echo", "back"], timeout=10)).stdout == "back\n"
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        await t.close()


async def test_reconnect_backs_off_while_the_host_is_down(loopback_host: LoopbackHost) -> None:
    t = make_transport(loopback_host, reconnect_delay=0.05, reconnect_max_delay=0.2)
    failures: list[str] = []
    t.add_listener(lambda tr: failures.append(tr.last_error or "") if not tr.connected else None)
    watch = StateWatch(t)
    try:
        await t.connect()
        await loopback_host.stop()
        await watch.until(lambda: not t.connected)
        await watch.until(lambda: sum("cannot reach" in f for f in failures) >= 3)
        with pytest.raises(ConnectionLost) as info:
            await t.run(["true"], timeout=10)
        assert LOST.match(str(info.value)), str(info.value)
        assert "last attempt: cannot reach" in str(info.value)
        assert "connection refused" in str(info.value)
        assert t.connections_opened == 1

        await loopback_host.start()
        await watch.until(lambda: t.connected)
        assert (await t.run(["true"], timeout=10)).exit_code == 0
        assert t.connections_opened == 2
    finally:
        await t.close()


async def test_close_stops_reconnecting(loopback_host: LoopbackHost) -> None:
    t = make_transport(loopback_host)
    watch = StateWatch(t)
    await t.connect()
    await loopback_host.stop()
    await watch.until(lambda: not t.connected)
    await t.close()
    assert not t.reconnecting
    with pytest.raises(TransportError):
        await t.run(["true"], timeout=5)


# --------------------------------------------------------------------------- refusing


async def test_unknown_host_key_is_refused_before_login(loopback_host: LoopbackHost) -> None:
    loopback_host.known_hosts.write_text("")
    t = make_transport(loopback_host)
    with pytest.raises(HostKeyUnknown) as info:
        await t.connect()
    message = str(info.value)
    host = f"{loopback_host.address}:{loopback_host.port}"
    assert message.startswith(f"host key of {host} is not in ")
    assert f"`ssh -p {loopback_host.port} {loopback_host.user}@{loopback_host.address}`" in message
    assert "SHA256:" in message and "\n" not in message
    assert loopback_host.login_attempts == 0
    assert not t.connected and t.last_error == message
    await t.close()


async def test_changed_host_key_is_refused(loopback_host: LoopbackHost) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    loopback_host.known_hosts.write_text(
        f"[{loopback_host.address}]:{loopback_host.port} {other}\n"
    )
    t = make_transport(loopback_host)
    with pytest.raises(HostKeyChanged) as info:
        await t.connect()
    message = str(info.value)
    assert message.startswith(f"HOST KEY OF {loopback_host.address}:{loopback_host.port} CHANGED")
    assert "refusing to connect" in message and "ssh-keygen -R" in message
    assert "\n" not in message
    assert loopback_host.login_attempts == 0
    await t.close()


async def test_known_key_of_another_type_is_a_changed_key(loopback_host: LoopbackHost) -> None:
    # known_hosts knows only an RSA key; the host (sshd here) has only ed25519.
    rsa = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    loopback_host.known_hosts.write_text(
        f"[{loopback_host.address}]:{loopback_host.port} "
        f"{rsa.export_public_key().decode().strip()}\n"
    )
    t = make_transport(loopback_host)
    with pytest.raises(HostKeyChanged) as info:
        await t.connect()
    assert str(info.value).startswith(
        f"HOST KEY OF {loopback_host.address}:{loopback_host.port} CHANGED: "
        "it now offers ssh-ed25519 SHA256:"
    )
    assert loopback_host.login_attempts == 0
    await t.close()


async def test_the_known_key_is_chosen_among_several(
    real_sshd: SSHDFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The host has ed25519 and RSA keys; known_hosts has only the RSA one, which
    # must be the one negotiated (asyncssh's own preference would be ed25519).
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    rsa = asyncssh.generate_private_key("ssh-rsa", key_size=2048)
    rsa_path = tmp_path / "host_rsa"
    rsa.write_private_key(rsa_path)
    rsa_path.chmod(0o600)
    sshd = real_sshd(extra_config=[f"HostKey {rsa_path}"])
    known = tmp_path / "known_hosts"
    known.write_text(f"[{sshd.host}]:{sshd.port} {rsa.export_public_key().decode().strip()}\n")
    config = tmp_path / "ssh_config"
    config.write_text(f"Host *\n    IdentityFile {sshd.client_key_path}\n    IdentitiesOnly yes\n")
    t = RemoteTransport(
        f"{sshd.user}@{sshd.host}:{sshd.port}",
        RemoteSettings(known_hosts=str(known), ssh_config=str(config), connect_timeout=5),
    )
    try:
        await t.connect()
        assert (await t.run(["echo", "ok"], timeout=10)).stdout == "ok\n"
    finally:
        await t.close()


async def test_changed_key_in_the_default_known_hosts_is_refused(
    loopback_host: LoopbackHost,
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    ssh_dir = Path(os.environ["HOME"]) / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "known_hosts").write_text(
        f"[{loopback_host.address}]:{loopback_host.port} {other}\n"
    )
    t = RemoteTransport(
        loopback_host.spec,
        RemoteSettings(ssh_config=str(loopback_host.ssh_config), connect_timeout=5),
    )
    with pytest.raises(HostKeyChanged) as info:
        await t.connect()
    assert "does not match ~/.ssh/known_hosts" in str(info.value)
    assert loopback_host.login_attempts == 0
    await t.close()


async def test_ssh_config_cannot_turn_host_key_checking_off(
    loopback_host: LoopbackHost, tmp_path: Path
) -> None:
    config = tmp_path / "lax_config"
    config.write_text(
        loopback_host.ssh_config.read_text()
        + "    UserKnownHostsFile none\n    StrictHostKeyChecking no\n"
    )
    t = RemoteTransport(
        loopback_host.spec, RemoteSettings(ssh_config=str(config), connect_timeout=5)
    )
    with pytest.raises(HostKeyUnknown) as info:
        await t.connect()
    assert "~/.ssh/known_hosts" in str(info.value)
    await t.close()


async def test_default_known_hosts_and_ssh_config_alias(
    loopback_host: LoopbackHost, tmp_path: Path
) -> None:
    home = Path(os.environ["HOME"])
    (home / ".ssh").mkdir()
    (home / ".ssh" / "known_hosts").write_text(loopback_host.known_hosts.read_text())
    config = tmp_path / "alias_config"
    config.write_text(
        "Host mymac\n"
        f"    HostName {loopback_host.address}\n"
        f"    Port {loopback_host.port}\n"
        f"    User {loopback_host.user}\n"
        + "".join(line + "\n" for line in loopback_host.ssh_config.read_text().splitlines()[1:])
    )
    t = RemoteTransport("mymac", RemoteSettings(ssh_config=str(config), connect_timeout=5))
    try:
        await t.connect()
        assert t.label == f"{loopback_host.user}@mymac"
        assert (await t.run(["echo", "ok"], timeout=10)).stdout == "ok\n"
    finally:
        await t.close()


async def test_unreachable_host_is_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t = RemoteTransport(
        f"me@127.0.0.1:{port}", RemoteSettings(known_hosts=os.devnull, connect_timeout=3)
    )
    with pytest.raises(HostUnreachable) as info:
        await t.connect()
    assert str(info.value) == (
        f"cannot reach 127.0.0.1:{port}: connection refused (is Remote Login enabled on the Mac?)"
    )
    with pytest.raises(ConnectionLost) as lost:
        await t.run(["true"], timeout=5)
    assert str(lost.value) == f"cannot connect to me@127.0.0.1:{port}: connection refused"
    assert t.problem() == str(lost.value)
    detail = t.problem_detail() or ""
    assert "fix: turn on Remote Login on the Mac" in detail
    await t.close()


async def test_rejected_key_is_login_refused(loopback_host: LoopbackHost, tmp_path: Path) -> None:
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    key = tmp_path / "stranger"
    stranger.write_private_key(key)
    key.chmod(0o600)
    config = tmp_path / "stranger_config"
    config.write_text(f"Host *\n    IdentityFile {key}\n    IdentitiesOnly yes\n")
    t = make_transport(loopback_host, ssh_config=str(config))
    with pytest.raises(LoginRefused) as info:
        await t.connect()
    assert "refused our login" in str(info.value) and "\n" not in str(info.value)
    await t.close()


async def test_connect_keep_trying_comes_up_later(loopback_host: LoopbackHost) -> None:
    await loopback_host.stop()
    t = make_transport(loopback_host)
    watch = StateWatch(t)
    try:
        with pytest.raises(HostUnreachable):
            await t.connect(keep_trying=True)
        assert t.reconnecting
        await loopback_host.start()
        await watch.until(lambda: t.connected)
        assert t.connections_opened == 1
    finally:
        await t.close()


# --------------------------------------------------------------------------- steady state


async def test_one_connection_in_steady_state(
    transport: RemoteTransport, loopback_host: LoopbackHost
) -> None:
    server, port = await _echo_server()
    async with server:
        local = await transport.forward_tcp("127.0.0.1", port)
        for _ in range(5):
            await asyncio.gather(
                *(transport.run(["true"], timeout=10) for _ in range(5)),
                transport.read_file("/etc/hostname", timeout=10),
            )
            _reader, writer = await transport.open_connection("127.0.0.1", port, timeout=5)
            await _closed(writer)
            r, w = await asyncio.open_connection("127.0.0.1", local)
            assert await _roundtrip(r, w, b"x") == b"x"
            await _closed(w)
    assert transport.connections_opened == 1
    assert loopback_host.accepted == 1
    assert loopback_host.open_connections == 1


async def test_vm_login_tunnels_through_the_one_connection(
    transport: RemoteTransport, loopback_host: LoopbackHost
) -> None:
    # A "VM" sshd that only the host could reach in real life.
    vm_key = asyncssh.generate_private_key("ssh-ed25519")

    class VM(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return True

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            return (username, password) == ("admin", "admin")

    async def ready(process: asyncssh.SSHServerProcess[str]) -> None:
        process.stdout.write("ready\n")
        process.exit(0)

    listener = await asyncssh.listen(
        "127.0.0.1", 0, server_factory=VM, server_host_keys=[vm_key], process_factory=ready
    )
    try:
        async with asyncssh.connect(
            "127.0.0.1",
            listener.get_port(),
            tunnel=transport.ssh_tunnel(),
            username="admin",
            password="admin",
            known_hosts=None,
            config=None,
            client_keys=None,
        ) as vm:
            assert (await vm.run("echo ready")).stdout == "ready\n"
    finally:
        listener.close()
    assert transport.connections_opened == 1 and loopback_host.accepted == 1


# --------------------------------------------------------------------------- host glue


@pytest.mark.parametrize("server_host", ["127.0.0.1", "localhost"])
async def test_remote_settings_forwards_kind_api_with_tls_and_docker(
    transport: RemoteTransport, loopback_host: LoopbackHost, tmp_path: Path, server_host: str
) -> None:
    import k8s_objects

    from megatui.lab.docker_api import start_fake_docker
    from megatui.lab.kube_api import NODES, start_fake_api
    from megatui.lab.kube_certs import (
        generate_certs,
        kubeconfig_dict,
        server_ssl_context,
        write_kubeconfig,
    )
    from megatui.sources.docker import DockerSource

    # Kind's API certificate covers 127.0.0.1; the "localhost" case has a certificate
    # for that name only, so it verifies only through tls-server-name.
    certs = generate_certs(
        ("127.0.0.1", "localhost") if server_host == "127.0.0.1" else ("localhost",)
    )
    api = await start_fake_api(ssl_context=server_ssl_context(certs, tmp_path / "tls"))
    api.store.set(NODES, k8s_objects.node("kind-control-plane"))
    host_kube = loopback_host.home / ".kube" / "config"
    write_kubeconfig(host_kube, kubeconfig_dict(f"https://{server_host}:{api.port}", certs=certs))
    sock_dir = loopback_host.home / ".docker" / "run"
    sock_dir.mkdir(parents=True)
    docker = await start_fake_docker(sock_dir / "docker.sock")
    try:
        setup = await prepare_remote(
            transport,
            Settings(host=loopback_host.spec),
            tmp_path / "work",
            docker_sockets=(str(tmp_path / "no-daemon.sock"), "~/.docker/run/docker.sock"),
        )
        assert setup.problems == {}
        assert setup.kubeconfig_source == "~/.kube/config"
        local_kube = Path(setup.settings.kubeconfig or "")
        assert stat.S_IMODE(local_kube.stat().st_mode) == 0o600
        assert local_kube.parent == tmp_path / "work"

        assert await _get_like_kubernetes_client(local_kube, "/api/v1/nodes") == [
            "kind-control-plane"
        ]
        if server_host == "localhost":
            # The check has teeth: without the server name, verification fails.
            with pytest.raises(ssl.SSLCertVerificationError):
                await _get_like_kubernetes_client(local_kube, "/api/v1/nodes", sni=False)
        assert setup.docker_socket == "~/.docker/run/docker.sock"
        source = DockerSource(setup.settings.docker_host, timeout=5)
        try:
            status = await source.poll()
        finally:
            await source.close()
        assert status.reachable, status.error
        assert [c.name for c in status.clusters] == ["kind"]
    finally:
        await docker.stop()
        await api.stop()
    assert transport.connections_opened == 1


async def _get_like_kubernetes_client(
    kubeconfig: Path, path: str, *, sni: bool = True
) -> list[str]:
    """GET path with the TLS settings the official kubeconfig loader derives (CA,
    client certificate, tls-server-name), over Python's ssl as urllib3/aiohttp do.
    (A real list_node call costs seconds of client start-up per test.)"""
    from kubernetes import client, config

    conf = client.Configuration()
    config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=str(kubeconfig), client_configuration=conf
    )
    url = urllib.parse.urlsplit(conf.host)
    ctx = ssl.create_default_context(cafile=conf.ssl_ca_cert)
    assert conf.cert_file and conf.key_file
    ctx.load_cert_chain(conf.cert_file, conf.key_file)
    name = (conf.tls_server_name or url.hostname) if sni else url.hostname
    reader, writer = await asyncio.open_connection(
        url.hostname, url.port, ssl=ctx, server_hostname=name
    )
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {url.netloc}\r\nConnection: close\r\n\r\n".encode()
        )
        async with asyncio.timeout(10):
            raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return [item["metadata"]["name"] for item in json.loads(body)["items"]]


async def test_refresh_kubeconfig_follows_a_recreated_cluster(
    transport: RemoteTransport, loopback_host: LoopbackHost, tmp_path: Path
) -> None:
    host_kube = loopback_host.home / ".kube" / "config"
    host_kube.parent.mkdir()

    def write(port: int) -> None:
        cluster = {"name": "kind-kind", "cluster": {"server": f"https://127.0.0.1:{port}"}}
        host_kube.write_text(yaml.safe_dump({"clusters": [cluster]}))

    write(6443)
    setup = await prepare_remote(
        transport, Settings(), tmp_path / "work", docker_sockets=(str(tmp_path / "x.sock"),)
    )
    local = Path(setup.settings.kubeconfig or "")
    before = (local.read_text(), local.stat().st_mtime_ns)
    assert await refresh_kubeconfig(transport, setup) is False
    assert (local.read_text(), local.stat().st_mtime_ns) == before
    write(7443)  # `kind create cluster` again: a new port
    assert await refresh_kubeconfig(transport, setup) is True
    assert local.read_text() != before[0]
    assert stat.S_IMODE(local.stat().st_mode) == 0o600


async def test_remote_kubeconfig_rewrites_servers(
    transport: RemoteTransport, loopback_host: LoopbackHost, tmp_path: Path
) -> None:
    ca_file = loopback_host.home / "ca.crt"
    ca_file.write_bytes(b"CA PEM")
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kind-kind",
                "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority": "ca.crt"},
            },
            {"name": "named", "cluster": {"server": "https://localhost:7443/prefix"}},
            {
                "name": "pinned",
                "cluster": {"server": "https://10.1.2.3:443", "tls-server-name": "api.example"},
            },
        ],
        "users": [],
        "contexts": [],
    }
    explicit = loopback_host.home / "elsewhere.yaml"
    explicit.write_text(yaml.safe_dump(config))
    setup = await prepare_remote(
        transport,
        Settings(kubeconfig=str(explicit)),
        tmp_path / "work",
        docker_sockets=(str(tmp_path / "none.sock"),),
    )
    assert "kube" not in setup.problems
    written = yaml.safe_load(Path(setup.settings.kubeconfig or "").read_text())
    clusters = {c["name"]: c["cluster"] for c in written["clusters"]}
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+", clusters["kind-kind"]["server"])
    assert "tls-server-name" not in clusters["kind-kind"]
    assert base64.b64decode(clusters["kind-kind"]["certificate-authority-data"]) == b"CA PEM"
    assert "certificate-authority" not in clusters["kind-kind"]
    assert re.fullmatch(r"https://127\.0\.0\.1:\d+/prefix", clusters["named"]["server"])
    assert clusters["named"]["tls-server-name"] == "localhost"
    assert clusters["pinned"]["tls-server-name"] == "api.example"
    assert setup.problems["docker"].startswith(f"no Docker socket answers on {transport.label}")


async def test_kubeconfig_copy_is_private_and_gone_after_close(
    loopback_host: LoopbackHost, tmp_path: Path
) -> None:
    host_kube = loopback_host.home / ".kube" / "config"
    host_kube.parent.mkdir()
    host_kube.write_text(
        yaml.safe_dump({"clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1"}}]})
    )
    t = make_transport(loopback_host)
    await t.connect()
    setup = await prepare_remote(t, Settings(), docker_sockets=(str(tmp_path / "x.sock"),))
    local = Path(setup.settings.kubeconfig or "")
    assert local.exists() and local.parent == t.private_dir()
    assert stat.S_IMODE(local.parent.stat().st_mode) == 0o700
    await t.close()
    assert not local.parent.exists()


async def test_prepared_while_the_host_is_down_then_filled_in(
    loopback_host: LoopbackHost, tmp_path: Path
) -> None:
    # The TUI comes up while the Mac is unreachable, and catches up when it answers.
    host_kube = loopback_host.home / ".kube" / "config"
    host_kube.parent.mkdir()
    host_kube.write_text(
        yaml.safe_dump({"clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:1"}}]})
    )
    await loopback_host.stop()
    t = make_transport(loopback_host)
    watch = StateWatch(t)
    try:
        with pytest.raises(HostUnreachable):
            await t.connect(keep_trying=True)
        setup = await prepare_remote(t, Settings(), docker_sockets=(str(tmp_path / "x.sock"),))
        # Never connected: "cannot connect" and why, never "lost".
        assert setup.problems["kube"].startswith(f"cannot connect to {t.label}: connection refused")
        assert setup.settings.docker_host and setup.settings.kubeconfig
        assert not Path(setup.settings.kubeconfig).exists()
        await loopback_host.start()
        await watch.until(lambda: t.connected)
        assert await refresh_kubeconfig(t, setup) is True
        assert Path(setup.settings.kubeconfig).exists()
    finally:
        await t.close()


async def test_missing_kubeconfig_is_a_problem_not_a_failure(
    transport: RemoteTransport, tmp_path: Path
) -> None:
    setup = await prepare_remote(
        transport, Settings(), tmp_path / "work", docker_sockets=(str(tmp_path / "x.sock"),)
    )
    assert setup.problems["kube"] == (
        f"no kubeconfig on {transport.label}: ~/.kube/config does not exist and kind is not "
        "installed"
    )
    # Never the local machine's own kubeconfig or daemon.
    assert setup.settings.kubeconfig == str(tmp_path / "work" / "kubeconfig")
    assert not Path(setup.settings.kubeconfig).exists()
    assert (setup.settings.docker_host or "").startswith(f"unix://{tempfile_root()}")


def tempfile_root() -> str:
    import tempfile

    base = tempfile.gettempdir()
    return "/tmp" if len(base) > 60 else base


async def test_kind_get_kubeconfig_is_the_fallback(
    transport: RemoteTransport, loopback_host: LoopbackHost, tmp_path: Path
) -> None:
    kind = loopback_host.bin_dir / "kind"
    kind.write_text(
        "#!/bin/sh\n"
        '[ "$1 $2" = "get kubeconfig" ] || exit 64\n'
        "cat <<'EOF'\n"
        + json.dumps(
            {"clusters": [{"name": "kind-kind", "cluster": {"server": "https://127.0.0.1:5555"}}]}
        )
        + "\nEOF\n"
    )
    kind.chmod(0o755)
    setup = await prepare_remote(
        transport, Settings(), tmp_path / "work", docker_sockets=(str(tmp_path / "x.sock"),)
    )
    assert "kube" not in setup.problems
    assert setup.kubeconfig_source == "kind get kubeconfig"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("echo 'Keychain \"login.keychain\" no-timeout'; exit 0", False),
        (
            "echo 'security: SecKeychainCopySettings login.keychain: User interaction is not "
            "allowed.' >&2; exit 36",
            True,
        ),
        (
            "echo 'security: SecKeychainCopySettings login.keychain: The specified keychain "
            "could not be found.' >&2; exit 50",
            None,
        ),
    ],
)
async def test_keychain_locked(
    transport: RemoteTransport, loopback_host: LoopbackHost, script: str, expected: bool | None
) -> None:
    security = loopback_host.bin_dir / "security"
    security.write_text(
        '#!/bin/sh\n[ "$1 $2" = "show-keychain-info login.keychain" ] || exit 64\n' + script + "\n"
    )
    security.chmod(0o755)
    assert await keychain_locked(transport) is expected


async def test_keychain_unknown_without_security(transport: RemoteTransport) -> None:
    assert await keychain_locked(transport, security="megatui-no-security") is None


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def demo_host(
    real_sshd: SSHDFactory, tmp_path: Path
) -> Iterator[tuple[RealSSHD, Path, dict[str, str]]]:
    """The demo lab (tart VMs, Kind-like API server, Docker) as a Mac host behind sshd,
    with its kubeconfig and Docker socket where a Mac keeps them in the host's HOME,
    and a local HOME that knows the host key and the login key: `megatui --host` as a
    user runs it. Yields (sshd, megatui config, environment)."""
    from megatui.lab.demo import DemoLab

    lab = DemoLab(tmp_path / "lab")
    lab.start()
    try:
        assert lab.tart is not None
        host_home = tmp_path / "host-home"
        (host_home / ".kube").mkdir(parents=True)
        (host_home / ".docker" / "run").mkdir(parents=True)
        settings = load_settings(lab.config_path, environ={})
        assert settings.kubeconfig and settings.docker_host
        shutil.copy(settings.kubeconfig, host_home / ".kube" / "config")
        (host_home / ".docker" / "run" / "docker.sock").symlink_to(
            settings.docker_host.removeprefix("unix://")
        )
        sshd = real_sshd(
            env={"HOME": str(host_home), "PATH": f"{lab.tart.paths.bin_dir}:/usr/bin:/bin"}
        )
        local_home = tmp_path / "local-home"
        (local_home / ".ssh").mkdir(parents=True)
        (local_home / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line() + "\n")
        (local_home / ".ssh" / "config").write_text(
            f"Host *\n    IdentityFile {sshd.client_key_path}\n    IdentitiesOnly yes\n"
        )
        # Host-side paths only: tart by name on the login PATH, the kubeconfig and
        # Docker socket found on the host. Locally none of these exist.
        config = tmp_path / "megatui.toml"
        toml = lab.tart.megatui_config_toml().replace(
            f'path = "{lab.tart.tart_path}"', 'path = "tart"'
        )
        config.write_text(toml + f'\n[kube]\ncontext = "{settings.kube_context}"\n')
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MEGATUI_", "SSH_"))}
        env.update(HOME=str(local_home), **lab.environ())
        yield sshd, config, env
    finally:
        lab.stop()


def _status(sshd: RealSSHD, config: Path, env: dict[str, str]) -> tuple[dict[str, Any], str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "megatui",
            "--host",
            f"{sshd.user}@{sshd.host}:{sshd.port}",
            "--config",
            str(config),
            "status",
            "--json",
            "--timeout",
            "30",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), result.stderr


def test_status_json_over_the_host_runs_tart_and_probes_through_one_connection(
    demo_host: tuple[RealSSHD, Path, dict[str, str]],
) -> None:
    sshd, config, env = demo_host
    data, _stderr = _status(sshd, config, env)
    assert data["host"] == f"{sshd.user}@{sshd.host}:{sshd.port}"
    assert data["sources"]["tart"] == {**data["sources"]["tart"], "ok": True, "error": None}
    assert sorted(vm["name"] for vm in data["vms"]) == [
        "sequoia-base",
        "sonoma-builder",
        "tahoe-xcode",
        "ubuntu-runner",
    ]
    # tart list/ip and every VM probe went over the same single login.
    assert sshd.log.count("Accepted publickey") == 1


def test_status_json_over_the_host_reaches_kube_and_docker_on_the_host(
    demo_host: tuple[RealSSHD, Path, dict[str, str]],
) -> None:
    sshd, config, env = demo_host
    data, _stderr = _status(sshd, config, env)
    for source in ("kubernetes", "docker", "tart"):
        assert data["sources"][source]["ok"], data["sources"][source]
    assert data["nodes"] and data["docker"]["reachable"]
    assert sshd.log.count("Accepted publickey") == 1
