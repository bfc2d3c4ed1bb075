"""megatui's Orchard client against the lab's fake controller (every request it
sends is validated against Orchard's OpenAPI description by the `orchard_lab`
fixture) and against stub servers that misbehave."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncssh
import pytest
from aiohttp import ClientSession, WSMsgType, web
from orchard_fixtures import ADMIN, advance, orchard_lab_fixture  # noqa: F401

from megatui.lab.orchard import FakeOrchard
from megatui.lab.orchard.tls import self_signed
from megatui.sources.orchard import (
    NewVM,
    OrchardAPIError,
    OrchardBadResponse,
    OrchardClient,
    OrchardError,
    OrchardNotFound,
    OrchardPortClosed,
    OrchardPortForwardError,
    OrchardTLSError,
    OrchardUnreachable,
    WatchEvent,
)
from megatui.sources.orchard_config import OrchardConfig
from megatui.sources.orchard_ws import open_streams

_IMAGE = "ghcr.io/cirruslabs/macos-tahoe-base:latest"
_TOKEN = "s3cr3t-t0ken-value"
_DEADLINE = 15.0


def _client(lab: FakeOrchard, account: str = ADMIN[0], token: str = ADMIN[1]) -> OrchardClient:
    return OrchardClient(OrchardConfig(lab.url, account, token, lab.certificate_pem), timeout=5.0)


@pytest.fixture(name="client")
async def client_fixture(orchard_lab: FakeOrchard) -> AsyncIterator[OrchardClient]:
    client = _client(orchard_lab)
    try:
        yield client
    finally:
        await client.close()


async def _running(lab: FakeOrchard, client: OrchardClient, name: str, **kw: object) -> None:
    if not lab.store.workers:
        lab.add_worker("mini-1")
    await client.create_vm(NewVM(name, _IMAGE, **kw))  # type: ignore[arg-type]
    advance(lab, 10)


def _assert_one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and _TOKEN not in text and ADMIN[1] not in text
    assert "Traceback" not in text
    return text


# ------------------------------------------------------------------ the API


async def test_vm_lifecycle_typed(orchard_lab: FakeOrchard, client: OrchardClient) -> None:
    orchard_lab.add_worker("mini-1")
    info = await client.controller_info()
    assert info.version == "0.55.0" and "rpc-v2" in info.capabilities
    created = await client.create_vm(
        NewVM("ci-1", _IMAGE, cpu=4, memory=8192, restart_policy="OnFailure", password="pw")
    )
    assert (created.status, created.worker, created.restart_count) == ("pending", "", 0)
    assert created.resources == {"org.cirruslabs.tart-vms": 1} and created.uid
    assert "pw" not in repr(created)
    advance(orchard_lab, 10)
    (vm,) = await client.list_vms()
    assert (vm.name, vm.status, vm.status_message, vm.worker) == (
        "ci-1",
        "running",
        "VM started",
        "mini-1",
    )
    assert (vm.image, vm.uid, vm.restart_policy, vm.assigned_cpu) == (
        _IMAGE,
        created.uid,
        "OnFailure",
        4,
    )
    assert vm.condition("running") is True and vm.started_at is not None
    assert [v.name for v in await client.list_vms(worker="mini-1")] == ["ci-1"]
    assert await client.list_vms(worker="mini-2") == []
    (worker,) = await client.list_workers()
    assert worker.name == "mini-1" and worker.tart_vm_capacity == 2
    now = orchard_lab.clock.now()
    assert worker.online(now) and not worker.online(now + 200)
    await client.delete_vm("ci-1")
    with pytest.raises(OrchardNotFound) as caught:
        await client.get_vm("ci-1")
    assert _assert_one_line(caught.value).endswith("get VM 'ci-1': 404 Not Found")


async def test_stop_is_one_way_and_refusals_are_verbatim(
    orchard_lab: FakeOrchard, client: OrchardClient
) -> None:
    await _running(orchard_lab, client, "a")
    stopped = await client.set_power_state("a", "stopped")
    assert stopped.power_state == "stopped" and stopped.generation == 1
    with pytest.raises(OrchardAPIError) as caught:
        await client.set_power_state("a", "running")
    assert caught.value.status == 412
    assert _assert_one_line(caught.value).endswith(
        "update VM 'a': 412 Precondition Failed (invalid \"powerState\" transition: "
        "cannot transition from a terminal power state)"
    )
    with pytest.raises(OrchardAPIError) as caught:
        await client.create_vm(NewVM("a", _IMAGE))
    assert str(caught.value).endswith("409 Conflict (VM with this name already exists)")
    with pytest.raises(OrchardAPIError) as caught:
        await client.create_vm(NewVM("no spaces", _IMAGE))
    assert caught.value.message == (
        "VM name name contains restricted characters, please only use [A-Za-z0-9:-_.]"
    )


async def test_missing_role_is_verbatim(orchard_lab: FakeOrchard) -> None:
    orchard_lab.add_account("viewer", _TOKEN, ("compute:read",))
    async with _client(orchard_lab, "viewer", _TOKEN) as viewer:
        assert await viewer.list_vms() == []
        with pytest.raises(OrchardAPIError) as caught:
            await viewer.create_vm(NewVM("a", _IMAGE))
        assert caught.value.status == 401
        assert _assert_one_line(caught.value).endswith(
            "401 Unauthorized (all of the following roles must be present: compute:write)"
        )
    async with _client(orchard_lab, "viewer", "wrong") as wrong:
        with pytest.raises(OrchardAPIError) as caught:
            await wrong.list_vms()
        assert str(caught.value).endswith("list VMs: 401 Unauthorized")


# ------------------------------------------------------------------ watch


async def test_watch_follows_one_vm(orchard_lab: FakeOrchard, client: OrchardClient) -> None:
    orchard_lab.add_worker("mini-1")
    events: list[WatchEvent] = []

    async def follow() -> None:
        async for event in client.watch_vm("a"):
            events.append(event)
            if event.type == "DELETED":
                return

    task = asyncio.create_task(follow())
    await orchard_lab.wait_for_watch("a")
    await client.create_vm(NewVM("a", _IMAGE))
    advance(orchard_lab, 10)
    await client.delete_vm("a")
    await asyncio.wait_for(task, _DEADLINE)
    assert events[0].type == "ADDED" and events[-1] == WatchEvent("DELETED", None)
    messages = [e.vm.status_message for e in events if e.vm is not None]
    assert messages[-3:] == ["cloning VM...", "configuring VM...", "VM started"]


async def test_watch_cut_mid_line_is_one_line(
    orchard_lab: FakeOrchard, client: OrchardClient
) -> None:
    await client.create_vm(NewVM("a", _IMAGE))
    orchard_lab.cut_watch("a")
    with pytest.raises(OrchardBadResponse) as caught:
        async with asyncio.timeout(_DEADLINE):
            async for _event in client.watch_vm("a"):
                pass
    assert "stream ended in the middle of an event" in _assert_one_line(caught.value)


async def test_watch_is_cancellable(orchard_lab: FakeOrchard, client: OrchardClient) -> None:
    task = asyncio.create_task(anext(aiter(client.watch_vm("never"))))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # A caller's deadline ends a watch of a VM that never comes, and the client is
    # still usable after it.
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.2):
            async for _event in client.watch_vm("never"):
                pass
    assert isinstance(await client.list_vms(), list)


# ------------------------------------------------------------------ port-forward and SSH


async def test_ssh_login_through_the_port_forward(
    orchard_lab: FakeOrchard, client: OrchardClient
) -> None:
    await _running(orchard_lab, client, "a", username="admin", password="admin")
    host_key = asyncssh.read_private_key(orchard_lab.host_key_path("a"))
    known = asyncssh.import_known_hosts(f"a {host_key.export_public_key().decode()}")
    async with asyncio.timeout(_DEADLINE):
        conn = await asyncssh.connect(
            "a",
            22,
            tunnel=client.ssh_tunnel(wait=5),
            username="admin",
            password="admin",
            known_hosts=known,
            config=None,
        )
        async with conn:
            result = await conn.run("echo ready", check=True)
    assert result.stdout == "ready\n"
    # The stream form: the guest's SSH banner comes first.
    reader, writer = await client.open_port_forward("a", 22)
    try:
        banner = await asyncio.wait_for(reader.readline(), _DEADLINE)
        assert banner.startswith(b"SSH-2.0-")
    finally:
        writer.close()
    # A VM recreated under the same name is a new clone with a new host key.
    await client.delete_vm("a")
    await client.create_vm(NewVM("a", _IMAGE))
    advance(orchard_lab, 10)
    again = asyncssh.read_private_key(orchard_lab.host_key_path("a"))
    assert again.export_public_key() != host_key.export_public_key()


async def test_port_forward_refusals_are_oserrors(
    orchard_lab: FakeOrchard, client: OrchardClient
) -> None:
    orchard_lab.add_worker("mini-1")
    await client.create_vm(NewVM("a", _IMAGE))
    with pytest.raises(OrchardPortForwardError) as caught:
        await client.open_port_forward("a", 22, wait=0)
    assert caught.value.status == 408 and isinstance(caught.value, OSError)
    assert "not running yet" in _assert_one_line(caught.value)
    advance(orchard_lab, 7)  # running, sshd not up yet
    with pytest.raises(OrchardPortClosed) as closed:
        await client.open_port_forward("a", 22, wait=0)
    assert isinstance(closed.value, ConnectionRefusedError)
    with pytest.raises(OrchardPortForwardError) as caught:
        await client.open_port_forward("nope", 22, wait=0)
    assert caught.value.status == 404


# ------------------------------------------------------------------ bad controllers


async def test_html_answer_is_one_line(orchard_lab: FakeOrchard, client: OrchardClient) -> None:
    orchard_lab.answer_html(200)
    with pytest.raises(OrchardBadResponse) as caught:
        await client.list_vms()
    assert "HTML page" in _assert_one_line(caught.value)
    orchard_lab.answer_html(502)
    with pytest.raises(OrchardBadResponse) as caught:
        await client.list_vms()
    assert "HTML page (502 Bad Gateway)" in _assert_one_line(caught.value)
    orchard_lab.answer_html(None)


Stub = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _stub(handler: Stub) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    # A hanging handler must not hold the cleanup for aiohttp's default 60 s.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[{"name": 5}]', "list VMs: VM object: field 'name' is a number, expected a string"),
        ('[{"name": "a", "restart_count": "x"}]', "VM 'a': field 'restart_count' is a string"),
        ('{"items": []}', "VM list is an object, expected a JSON list"),
        ("[1", "list VMs: invalid JSON"),
        (
            '[{"name":"a","createdAt":"yesterday"}]',
            "field 'createdAt' is a string, expected an RFC 3339",
        ),
    ],
)
async def test_garbage_is_one_line(body: str, expected: str) -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="application/json")

    runner, url = await _stub(handler)
    try:
        async with OrchardClient(OrchardConfig(url, "sa", _TOKEN)) as client:
            with pytest.raises(OrchardBadResponse) as caught:
                await client.list_vms()
    finally:
        await runner.cleanup()
    assert expected in _assert_one_line(caught.value)


async def test_slow_and_unreachable_controllers(tmp_path: Path) -> None:
    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        return web.Response()

    runner, url = await _stub(hang)
    try:
        async with OrchardClient(OrchardConfig(url, "sa", _TOKEN), timeout=0.3) as client:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(OrchardUnreachable) as caught:
                await client.list_vms()
            assert loop.time() - started < 3.0
            assert "no answer within 0.3 s" in _assert_one_line(caught.value)
    finally:
        await runner.cleanup()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with OrchardClient(OrchardConfig(f"http://127.0.0.1:{port}", "sa", _TOKEN)) as client:
        with pytest.raises(OrchardUnreachable) as caught:
            await client.controller_info()
    assert "unreachable" in _assert_one_line(caught.value)


async def test_tls_pinned_certificate(tmp_path: Path) -> None:
    lab = FakeOrchard(tmp_path / "tls-lab")
    await lab.start(use_tls=True)
    try:
        assert lab.certificate_pem is not None
        async with _client(lab) as pinned:
            assert (await pinned.controller_info()).version == "0.55.0"
        other_cert, _key = self_signed()
        config = OrchardConfig(lab.url, ADMIN[0], ADMIN[1], other_cert, context="prod")
        async with OrchardClient(config, timeout=5.0) as mismatched:
            with pytest.raises(OrchardTLSError) as caught:
                await mismatched.list_vms()
        text = _assert_one_line(caught.value)
        assert "context 'prod'" in text and "not the pinned one" in text
        async with OrchardClient(OrchardConfig(lab.url, ADMIN[0], ADMIN[1])) as unpinned:
            with pytest.raises(OrchardTLSError):
                await unpinned.list_vms()
    finally:
        await lab.stop()


async def test_token_in_no_repr_or_error() -> None:
    config = OrchardConfig("http://127.0.0.1:9", "sa", _TOKEN, b"-----BEGIN CERTIFICATE-----")
    client = OrchardClient.__new__(OrchardClient)  # repr only: no TLS context for a fake PEM
    client.config = config
    assert _TOKEN not in repr(config) and _TOKEN not in repr(client)
    assert _TOKEN not in repr(NewVM("a", _IMAGE, password=_TOKEN))

    # A controller that echoes the credentials back in its error message.
    async def echo(request: web.Request) -> web.Response:
        pair = base64.b64decode(request.headers["Authorization"].removeprefix("Basic "))
        return web.json_response({"message": f"token {pair.decode()} refused"}, status=401)

    runner, url = await _stub(echo)
    try:
        async with OrchardClient(OrchardConfig(url, "sa", _TOKEN)) as real:
            with pytest.raises(OrchardError) as caught:
                await real.list_vms()
    finally:
        await runner.cleanup()
    assert "token sa:*** refused" in _assert_one_line(caught.value)


async def test_calls_are_cancellable() -> None:
    entered = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        entered.set()
        await asyncio.sleep(3600)
        return web.Response()

    runner, url = await _stub(hang)
    try:
        async with OrchardClient(OrchardConfig(url, "sa", _TOKEN), timeout=60) as client:
            for call in (client.list_vms(), client.set_power_state("a", "stopped")):
                entered.clear()
                task = asyncio.create_task(call)
                await asyncio.wait_for(entered.wait(), _DEADLINE)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await asyncio.wait_for(task, _DEADLINE)
    finally:
        await runner.cleanup()


async def test_html_watch_and_failed_vm_message(
    orchard_lab: FakeOrchard, client: OrchardClient
) -> None:
    await _running(orchard_lab, client, "a")
    orchard_lab.fail_vm("a", "failed to run startup script:\n#1: dial tcp: no route to host")
    vm = await client.get_vm("a")
    assert vm.status == "failed"
    assert vm.first_message_line == "VM failed: failed to run startup script:"
    orchard_lab.answer_html(200)
    with pytest.raises(OrchardBadResponse) as caught:
        async for _event in client.watch_vm("a"):
            pass
    assert "instead of an ndjson stream" in _assert_one_line(caught.value)
    orchard_lab.answer_html(None)
    await client.check()


async def test_port_forward_stream_order_and_backpressure() -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    runner, url = await _stub(echo)
    try:
        async with ClientSession() as session:
            ws = await session.ws_connect(url)
            reader, writer = open_streams(ws, ("vm", 22))
            data = bytes(range(256)) * 16384  # 4 MiB
            peak = 0

            async def send() -> None:
                nonlocal peak
                for i in range(0, len(data), 65536):
                    writer.write(data[i : i + 65536])
                    peak = max(peak, writer.transport.get_write_buffer_size())
                    await writer.drain()

            sender = asyncio.create_task(send())
            got = await asyncio.wait_for(reader.readexactly(len(data)), _DEADLINE)
            await sender
            writer.close()
    finally:
        await runner.cleanup()
    assert got == data
    assert peak <= (1 << 20) + 65536  # drain() waited once 1 MiB was queued
