"""TartCLI against the lab's fake tart, through a real LocalTransport."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from lab_fixtures import TartLabFactory, fast_vm, tart_lab_fixture  # noqa: F401

from megatui.lab.tartlab import LabVMSpec, TartLab, process_alive
from megatui.model import TartState
from megatui.sources.tart import TartCLI, TartError, TartErrorKind
from megatui.transport import LocalTransport


def cli_for(lab: TartLab, timeout: float = 10.0) -> TartCLI:
    return TartCLI(LocalTransport(), str(lab.tart_path), timeout=timeout)


async def eventually(
    probe: Callable[[], Awaitable[bool]], timeout: float = 5.0, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.02)


async def all_gone(pids: list[int]) -> None:
    """SIGKILL is asynchronous: a killed process needs a moment to finish exiting."""

    async def none_alive() -> bool:
        return not [p for p in pids if process_alive(p)]

    await eventually(none_alive, timeout=2.0, what=f"processes {pids} to exit")


async def states(cli: TartCLI) -> dict[str, TartState]:
    return {vm.name: vm.state for vm in await cli.list_vms()}


# --------------------------------------------------------------------------- reads


async def test_list_reports_local_vms_and_hides_oci_images(tart_lab: TartLabFactory) -> None:
    lab = tart_lab(
        [
            fast_vm("alpha", initial="running"),
            fast_vm("beta"),
            fast_vm("gamma", initial="suspended"),
        ]
    )
    vms = await cli_for(lab).list_vms()
    assert [(v.name, v.state) for v in vms] == [
        ("alpha", TartState.RUNNING),
        ("beta", TartState.STOPPED),
        ("gamma", TartState.SUSPENDED),
    ]
    assert all(v.disk_gb == 50 and v.accessed for v in vms)


async def test_list_of_an_empty_host(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([], oci_images=())
    assert await cli_for(lab).list_vms() == []


async def test_ip_is_none_before_the_lease_and_for_a_never_started_vm(
    tart_lab: TartLabFactory,
) -> None:
    lab = tart_lab([fast_vm("slow", initial="running", ip_after=60.0), fast_vm("off")])
    cli = cli_for(lab)
    assert await cli.ip("slow") is None
    assert await cli.ip("off") is None


async def test_ip_appears_then_survives_stop_as_a_stale_lease(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running")])
    cli = cli_for(lab)
    expected, _port = lab.address("alpha")
    seen: list[str | None] = []

    async def has_ip() -> bool:
        seen.append(await cli.ip("alpha"))
        return seen[-1] is not None

    await eventually(has_ip, what="tart ip to answer")
    assert seen[-1] == expected
    await cli.stop("alpha", timeout=5)
    assert (await states(cli))["alpha"] == TartState.STOPPED
    assert await cli.ip("alpha") == expected  # stale: docs/facts/tart.md §5.5


async def test_ip_get_stop_of_unknown_vm(tart_lab: TartLabFactory) -> None:
    cli = cli_for(tart_lab([fast_vm("alpha")]))
    for call in (cli.ip("ghost"), cli.get("ghost"), cli.stop("ghost")):
        with pytest.raises(TartError) as info:
            await call
        assert info.value.kind == TartErrorKind.VM_NOT_FOUND
        assert str(info.value) == 'VM "ghost" does not exist'


async def test_get_and_version(tart_lab: TartLabFactory) -> None:
    cli = cli_for(tart_lab([fast_vm("alpha", os="linux")]))
    info = await cli.get("alpha")
    assert info["OS"] == "linux"
    assert info["State"] == "stopped"
    assert isinstance(info["Size"], str)  # a string in get, an int in list (tart #1241)
    assert await cli.version() == "2.35.0"


# --------------------------------------------------------------------------- stop


async def test_stop_ends_the_runner(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running")])
    pid = lab.run_pid("alpha")
    assert pid is not None and process_alive(pid)
    cli = cli_for(lab)
    await cli.stop("alpha", timeout=5)
    await all_gone([pid])
    assert (await states(cli))["alpha"] == TartState.STOPPED
    assert "Stopping VM..." in lab.log_path("alpha").read_text()


async def test_stop_of_a_stopped_vm_is_not_running(tart_lab: TartLabFactory) -> None:
    cli = cli_for(tart_lab([fast_vm("alpha")]))
    with pytest.raises(TartError) as info:
        await cli.stop("alpha")
    assert info.value.kind == TartErrorKind.NOT_RUNNING
    assert info.value.vm == "alpha"


async def test_stop_of_a_suspended_vm_discards_its_state(tart_lab: TartLabFactory) -> None:
    cli = cli_for(tart_lab([fast_vm("alpha", initial="suspended")]))
    await cli.stop("alpha")
    assert (await states(cli))["alpha"] == TartState.STOPPED


# --------------------------------------------------------------------------- start


async def test_start_detaches_a_runner_that_outlives_the_call(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    lab = tart_lab([fast_vm("alpha")])
    cli = cli_for(lab)
    log = tmp_path / "logs" / "alpha.log"
    await cli.start("alpha", str(log))
    assert (await states(cli))["alpha"] == TartState.RUNNING
    pid = lab.run_pid("alpha")
    assert pid is not None and process_alive(pid)
    assert log.exists()


async def test_start_resumes_a_suspended_vm(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    lab = tart_lab([fast_vm("alpha", initial="suspended")])
    cli = cli_for(lab)
    log = tmp_path / "alpha.log"
    await cli.start("alpha", str(log))
    assert (await states(cli))["alpha"] == TartState.RUNNING
    assert "resuming VM..." in log.read_text()


async def test_start_unknown_vm(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    cli = cli_for(tart_lab([fast_vm("alpha")]))
    with pytest.raises(TartError) as info:
        await cli.start("ghost", str(tmp_path / "ghost.log"))
    assert info.value.kind == TartErrorKind.VM_NOT_FOUND
    assert str(info.value) == 'VM "ghost" does not exist'


async def test_start_already_running(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    cli = cli_for(tart_lab([fast_vm("alpha", initial="running")]))
    with pytest.raises(TartError) as info:
        await cli.start("alpha", str(tmp_path / "a.log"))
    assert info.value.kind == TartErrorKind.ALREADY_RUNNING
    assert str(info.value) == 'VM "alpha" is already running'


async def test_start_third_macos_vm_hits_apples_limit(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    lab = tart_lab([fast_vm("a", initial="running"), fast_vm("b", initial="running"), fast_vm("c")])
    cli = cli_for(lab)
    log = tmp_path / "c.log"
    started = time.monotonic()
    with pytest.raises(TartError) as info:
        await cli.start("c", str(log))
    assert time.monotonic() - started < 5.0  # found from the dead runner, not the deadline
    assert info.value.kind == TartErrorKind.VM_LIMIT
    assert str(info.value) == (
        "Apple allows at most 2 running macOS VMs per host: other running VMs: a, b"
    )
    assert (await states(cli))["c"] == TartState.STOPPED


async def test_linux_vms_do_not_count_against_the_macos_limit(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    lab = tart_lab(
        [
            fast_vm("a", initial="running"),
            fast_vm("b", initial="running"),
            fast_vm("tux", os="linux"),
        ]
    )
    cli = cli_for(lab)
    await cli.start("tux", str(tmp_path / "tux.log"))
    assert (await states(cli))["tux"] == TartState.RUNNING


async def test_start_ignores_errors_left_in_the_log_by_an_earlier_run(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    lab = tart_lab([fast_vm("alpha")])
    log = tmp_path / "alpha.log"
    log.write_text("The number of VMs exceeds the system limit (other running VMs: x, y)\n")
    await cli_for(lab).start("alpha", str(log))
    assert lab.run_pid("alpha") is not None


async def test_start_returns_at_the_deadline_while_the_runner_lives(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    lab = tart_lab([fast_vm("alpha")])
    lab.set_hang("run", True)  # the runner lives but never takes the VM
    cli = cli_for(lab, timeout=1.0)
    started = time.monotonic()
    await cli.start("alpha", str(tmp_path / "alpha.log"))
    assert 1.0 <= time.monotonic() - started < 4.0
    assert (await states(cli))["alpha"] == TartState.STOPPED
    assert any(process_alive(p) for p in lab.hung_pids())  # stop_all cleans up


# --------------------------------------------------------------------------- failures


async def test_tart_missing(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-tart")
    cli = TartCLI(LocalTransport(), missing, timeout=5.0)
    expected = f'tart not installed (looked for "{missing}"; set --tart, MEGATUI_TART or tart.path)'
    for call in (cli.list_vms(), cli.ip("a"), cli.start("a", str(tmp_path / "a.log"))):
        with pytest.raises(TartError) as info:
            await call
        assert info.value.kind == TartErrorKind.NOT_INSTALLED
        assert str(info.value) == expected


async def test_hanging_tart_times_out_and_leaves_no_process(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([fast_vm("alpha")])
    lab.set_hang("list", True)
    cli = cli_for(lab, timeout=1.5)
    started = time.monotonic()
    with pytest.raises(TartError) as info:
        await cli.list_vms()
    elapsed = time.monotonic() - started
    assert info.value.kind == TartErrorKind.TIMEOUT
    assert str(info.value) == "tart list did not answer within 1.5 s"
    assert 1.5 <= elapsed < 4.0
    hung = lab.hung_pids()
    assert len(hung) == 2  # the hung tart and the child it forked
    await all_gone(hung)
    lab.set_hang("list", False)
    assert [v.name for v in await cli.list_vms()] == ["alpha"]


async def test_cancelling_a_call_kills_the_hung_tart(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([fast_vm("alpha")])
    lab.set_hang("ip", True)
    task = asyncio.create_task(cli_for(lab).ip("alpha"))

    async def both_hung() -> bool:
        return len(lab.hung_pids()) == 2

    await eventually(both_hung, what="the fake tart to hang")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await all_gone(lab.hung_pids())


def test_lab_spec_names_are_checked() -> None:
    with pytest.raises(ValueError, match="use only"):
        LabVMSpec("bad name")
