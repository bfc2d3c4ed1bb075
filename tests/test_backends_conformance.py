"""The same contract, run against every VM backend (tests/backend_fixtures.py):
what the monitor, the panels and the headless commands will rely on without
knowing which backend they drive."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from backend_fixtures import DEADLINE, BackendCase, backend_case_fixture, state_of  # noqa: F401

from megatui.backends.base import BackendError, BackendErrorKind, SSHCommand, VMBackend
from megatui.backends.orchard import RECREATED_NOTE
from megatui.clock import SystemClock
from megatui.model import ProbeStage, TartState
from megatui.sources.hostkeys import HostKeyStore
from megatui.sources.ssh_probe import SSHProber
from megatui.transport import Transport


async def test_is_a_vm_backend(backend_case: BackendCase) -> None:
    assert isinstance(backend_case.backend, VMBackend)
    assert backend_case.backend.name == backend_case.kind


async def test_list_names_and_states(backend_case: BackendCase) -> None:
    vms = await backend_case.settle(
        lambda vms: (
            (run := state_of(vms, backend_case.running)) is not None
            and run.state is TartState.RUNNING
            and run.stage is None
        )
    )
    stopped = state_of(vms, backend_case.stopped)
    assert stopped is not None and stopped.state is TartState.STOPPED
    assert {v.backend for v in vms} == {backend_case.kind}


async def test_ip_and_ssh_reach_through_the_route(
    backend_case: BackendCase, tmp_path: object
) -> None:
    backend = backend_case.backend
    name = backend_case.running
    await backend_case.settle(lambda vms: state_of(vms, name) is not None)
    ip = None
    for _ in range(200):
        ip = await backend.ip(name)
        if ip:
            break
        await asyncio.sleep(0.05)
    assert ip is not None and ip.count(".") == 3
    route = backend.ssh_route(name, ip, backend_case.port(name))
    assert route is not None
    # The prober uses only open_connection and ssh_tunnel of what it is given.
    store = HostKeyStore(tmp_path / "hostkeys.json")  # type: ignore[operator]
    prober = SSHProber(cast(Transport, route.reach), store, SystemClock(), connect_timeout=5.0)
    try:
        result = None
        async with asyncio.timeout(DEADLINE):
            while result is None or result.stage is not ProbeStage.READY:
                result = await prober.probe(name, route.host, route.port, backend_case.creds)
                if result.stage is not ProbeStage.READY:
                    await asyncio.sleep(0.1)
        assert prober.has_connection(name)
        assert store.lookup(name) is not None, "the host key was learned on first use"
    finally:
        await prober.close()


async def test_stop_then_start(backend_case: BackendCase) -> None:
    backend = backend_case.backend
    name = backend_case.running
    await backend_case.settle(
        lambda vms: (v := state_of(vms, name)) is not None and v.state is TartState.RUNNING
    )
    await backend.stop(name)
    await backend_case.settle(
        lambda vms: (v := state_of(vms, name)) is not None and v.state is TartState.STOPPED
    )
    note = await backend.start(name)
    assert note == (RECREATED_NOTE if backend_case.kind == "orchard" else None)
    vms = await backend_case.settle(
        lambda vms: (
            (v := state_of(vms, name)) is not None
            and v.state is TartState.RUNNING
            and v.stage is None
        )
    )
    assert state_of(vms, name) is not None
    with pytest.raises(BackendError) as caught:
        await backend.start(name)
    assert caught.value.kind is BackendErrorKind.ALREADY_RUNNING
    assert "\n" not in str(caught.value)


async def test_details_and_log(backend_case: BackendCase) -> None:
    backend = backend_case.backend
    name = backend_case.stopped
    await backend.start(name)
    await backend_case.settle(
        lambda vms: (v := state_of(vms, name)) is not None and v.state is TartState.RUNNING
    )
    details = await backend.details(name)
    assert details and all(isinstance(k, str) for k in details)
    assert "password" not in details
    # tart's runner writes its log when it stops; Orchard's log is its events and status.
    await backend.stop(name)
    await backend_case.settle(
        lambda vms: (v := state_of(vms, name)) is not None and v.state is TartState.STOPPED
    )
    log: list[str] = []
    async with asyncio.timeout(DEADLINE):
        while not log:
            log = await backend.log_tail(name, 5)
            await asyncio.sleep(0.05)
    assert 0 < len(log) <= 5 and all(isinstance(line, str) for line in log)
    assert await backend.log_tail("no-such-vm", 5) == []


async def test_unknown_vm_is_not_found_in_one_line(backend_case: BackendCase) -> None:
    backend = backend_case.backend
    for call in (backend.details, backend.stop, backend.start):
        with pytest.raises(BackendError) as caught:
            await call("no-such-vm")
        assert caught.value.kind is BackendErrorKind.NOT_FOUND, caught.value
        assert "\n" not in str(caught.value) and "no-such-vm" in str(caught.value)


async def test_ssh_command_pieces(backend_case: BackendCase) -> None:
    backend = backend_case.backend
    command = backend.ssh_command(backend_case.running, "192.168.64.9", 22)
    assert isinstance(command, SSHCommand)
    if backend_case.kind == "orchard":
        assert command.destination == backend_case.running
        (flag, option) = command.options
        assert flag == "-o" and option.startswith("ProxyCommand=")
        assert "orchard-proxy" in option and option.endswith(f"{backend_case.running} 22")
    else:
        assert command == SSHCommand((), "192.168.64.9")
        with pytest.raises(BackendError) as caught:
            backend.ssh_command(backend_case.running, None, 22)
        assert caught.value.kind is BackendErrorKind.NOT_RUNNING


async def test_workers_and_access(backend_case: BackendCase) -> None:
    backend = backend_case.backend
    workers = await backend.workers()
    assert await backend.readonly_reason() is None
    if backend_case.kind == "tart":
        assert workers is None and not backend.can_watch
        assert [v async for v in backend.watch(backend_case.running)] == []
    else:
        assert workers is not None and [w.name for w in workers] == ["mini-1"]
        assert backend.can_watch
