"""The monitor driving an Orchard controller: the lab's fake controller (orchard.md),
three workers with the 2-macOS-VM limit, VMs that are real SSH servers behind the
WebSocket port-forward. The fake controller's clock is driven forward in the
background while the monitor runs at its own (shortened) pace."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from backend_fixtures import orchard_backend
from monitor_helpers import FAST_SETTINGS, wait_snapshot
from orchard_fixtures import ADMIN, FAST, advance, validate_exchange
from prometheus_client import CollectorRegistry, generate_latest

from megatui import readiness, report, vm_tracker
from megatui.api import ActionError
from megatui.backends.orchard import RECREATED_NOTE
from megatui.clock import FakeClock
from megatui.config import Settings
from megatui.lab.orchard import FakeOrchard, Timings
from megatui.model import Phase, Snapshot
from megatui.monitor import Monitor
from megatui.serve.metrics import SnapshotCollector
from megatui.sources.orchard import NewVM

IMAGE = "ghcr.io/cirruslabs/macos-tahoe-base:latest"
WORKERS = ("mini-1", "mini-2", "mini-3")
VIEWER = ("viewer", "viewer-token-not-to-be-seen")


@pytest.fixture(autouse=True)
def _fast_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    # The controller pace (2 s / 10 s) shortened so a test takes seconds.
    monkeypatch.setattr(vm_tracker, "CONTROLLER_MOVING_INTERVAL", 0.2)
    monkeypatch.setattr(vm_tracker, "CONTROLLER_SETTLED_INTERVAL", 0.5)
    monkeypatch.setattr(vm_tracker, "WATCH_RETRY", 0.1)


@pytest.fixture(name="fleet")
async def fleet_fixture(tmp_path: Path) -> AsyncIterator[FakeOrchard]:
    # The controller fails a silent worker's VMs later than the client's 3-minute
    # rule calls the worker offline (--worker-offline-timeout is configurable).
    timings = Timings(**{**vars(FAST), "offline_after": 600.0})
    lab = FakeOrchard(tmp_path / "orchard", clock=FakeClock(), timings=timings, poll_interval=0.05)
    await lab.start()
    for worker in WORKERS:
        lab.add_worker(worker)
    try:
        yield lab
    finally:
        await lab.stop()
    for ex in lab.exchanges:
        validate_exchange(ex)


@contextlib.asynccontextmanager
async def clock_running(lab: FakeOrchard, step: float = 0.5) -> AsyncIterator[None]:
    """Move the controller's clock `step` s every 20 ms of real time."""

    async def drive() -> None:
        while True:
            advance(lab, step)
            await asyncio.sleep(0.02)

    task = asyncio.create_task(drive())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def settings() -> Settings:
    return Settings(ssh_user="admin", ssh_password="admin", ssh_agent=False, **FAST_SETTINGS)


def fleet_monitor(lab: FakeOrchard, account: tuple[str, str] = ADMIN) -> Monitor:
    return Monitor(
        settings(), sources={"tart", "ssh"}, backend=orchard_backend(lab, account), clock=lab.clock
    )


async def create(lab: FakeOrchard, *names: str) -> None:
    backend = orchard_backend(lab)
    try:
        for name in names:
            await backend.client.create_vm(NewVM(name, IMAGE, username="admin", password="admin"))
    finally:
        await backend.close()


def phases(snap: Snapshot) -> dict[str, Phase]:
    return {vm.name: vm.phase for vm in snap.vms}


def all_in(names: tuple[str, ...], phase: Phase) -> Callable[[Snapshot], bool]:
    return lambda s: all(phases(s).get(n) is phase for n in names)


async def test_fleet_reaches_ready_through_the_port_forward(fleet: FakeOrchard) -> None:
    names = tuple(f"vm-{i}" for i in range(1, 8))
    await create(fleet, *names)
    monitor = fleet_monitor(fleet)
    await monitor.start()
    try:
        async with clock_running(fleet):
            # 3 workers x 2 macOS VMs: six boot to a real SSH login, the seventh waits.
            snap = await wait_snapshot(
                monitor,
                lambda s: sum(p is Phase.READY for p in phases(s).values()) == 6,
                timeout=30,
            )
        waiting = [vm for vm in snap.vms if vm.phase is not Phase.READY]
        argv = monitor.ssh_argv(next(vm.name for vm in snap.vms if vm.phase is Phase.READY))
    finally:
        await monitor.stop()
    assert [vm.phase for vm in waiting] == [Phase.SCHEDULING]
    assert waiting[0].hint is not None and "free macOS VM slot" in waiting[0].hint
    ready = [vm for vm in snap.vms if vm.phase is Phase.READY]
    per_worker = {w: sum(vm.worker == w for vm in ready) for w in WORKERS}
    assert per_worker == dict.fromkeys(WORKERS, 2)
    assert all(vm.backend == "orchard" and vm.ip for vm in ready)
    assert [(w.name, w.online, w.vms_running) for w in snap.workers] == [
        (w, True, 2) for w in WORKERS
    ]
    # The user's ssh goes through `megatui orchard-proxy`, never with the token.
    proxy = next(a for a in argv if a.startswith("ProxyCommand="))
    assert "orchard-proxy" in proxy and argv[-1].endswith(ready[0].name)
    data = report.dumps(report.snapshot_json(snap))
    assert ADMIN[1] not in data and ADMIN[1] not in " ".join(argv)
    workers = json.loads(data)["workers"]
    assert {w["name"] for w in workers} == set(WORKERS)
    # The VMs' source is named for what it is: the controller, not tart.
    assert snap.vm_source == "orchard" and "tart" not in snap.sources
    assert json.loads(data)["vm_source"] == "orchard"
    assert json.loads(data)["sources"]["orchard"]["ok"] is True
    scrape = generate_latest(_registry(snap)).decode()
    assert 'megatui_source_up{source="orchard"} 1.0' in scrape
    assert 'source="tart"' not in scrape


def _registry(snap: Snapshot) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: snap, lambda: None, lambda: (0, 0)))
    return registry


async def test_failed_vm_and_offline_worker(fleet: FakeOrchard) -> None:
    await create(fleet, "a", "b", "c")
    monitor = fleet_monitor(fleet)
    await monitor.start()
    try:
        async with clock_running(fleet):
            snap = await wait_snapshot(monitor, all_in(("a", "b", "c"), Phase.READY), timeout=30)
        fleet.fail_vm("a", "tart run exited: guest panic\nstack...")
        # All settled: the controller is listed every 10 s, so allow a few of those.
        snap = await wait_snapshot(monitor, lambda s: phases(s)["a"] is Phase.ERROR, timeout=30)
        failed = snap.vm("a")
        assert failed is not None and failed.error == "VM failed: tart run exited: guest panic"
        # A worker falls silent: after the 3-minute rule its VMs are the last known state.
        victim = next(vm for vm in snap.vms if vm.worker != failed.worker)
        assert victim.worker is not None
        fleet.worker_silent(victim.worker)
        async with clock_running(fleet, step=5.0):
            snap = await wait_snapshot(
                monitor, lambda s: bool((v := s.vm(victim.name)) and v.stale)
            )
    finally:
        await monitor.stop()
    stale = snap.vm(victim.name)
    assert stale is not None and stale.hint is not None
    assert f"worker {victim.worker} is offline" in stale.hint
    worker = next(w for w in snap.workers if w.name == victim.worker)
    assert not worker.online and worker.failure == stale.hint


async def test_wait_rides_out_an_onfailure_restart(fleet: FakeOrchard) -> None:
    # The one readiness rule keeps waiting for a failed VM the controller restarts:
    # no snapshot between the failure and the new boot makes `wait` or doctor give up.
    backend = orchard_backend(fleet)
    try:
        await backend.client.create_vm(
            NewVM("r", IMAGE, username="admin", password="admin", restart_policy="OnFailure")
        )
    finally:
        await backend.close()
    monitor = fleet_monitor(fleet)
    verdicts: list[readiness.Verdict] = []
    await monitor.start()
    try:
        async with clock_running(fleet):
            await wait_snapshot(monitor, all_in(("r",), Phase.READY), timeout=30)
        unsubscribe = monitor.subscribe(
            lambda s: verdicts.append(readiness.decide("r", s.vm("r"), s.vm_status()).verdict)
        )
        fleet.fail_vm("r", "tart run exited with 1")
        failed = await wait_snapshot(monitor, lambda s: phases(s)["r"] is Phase.ERROR)
        decision = readiness.decide("r", failed.vm("r"), failed.vm_status())
        async with clock_running(fleet):
            snap = await wait_snapshot(
                monitor,
                lambda s: bool((v := s.vm("r")) and v.phase is Phase.READY and v.restart_count),
                timeout=30,
            )
        unsubscribe()
        events = [e.message for e in monitor.events if e.subject == "r"]
    finally:
        await monitor.stop()
    # The restart is a new clone with a new host key: learned anew, not refused.
    assert any(m.startswith("restarted by the controller (restart 1)") for m in events), events
    assert decision.verdict is readiness.Verdict.WAITING
    assert decision.reason is not None and "restart policy OnFailure" in decision.reason
    vm = snap.vm("r")
    assert vm is not None and vm.restart_count == 1 and vm.restart_policy == "OnFailure"
    # The verdicts and the VM's timeline say what happened if this ever fails.
    assert readiness.Verdict.GIVE_UP not in verdicts, (verdicts, events)
    assert verdicts[-1] is readiness.Verdict.READY, (verdicts, events)


async def test_recreate_on_start_learns_the_new_host_key(fleet: FakeOrchard) -> None:
    await create(fleet, "alpha")
    monitor = fleet_monitor(fleet)
    await monitor.start()
    try:
        async with clock_running(fleet):
            await wait_snapshot(monitor, all_in(("alpha",), Phase.READY), timeout=30)
            old_key = monitor.hostkeys.lookup("alpha")
            assert old_key is not None
            await monitor.stop_vm("alpha")
            await wait_snapshot(monitor, all_in(("alpha",), Phase.STOPPED), timeout=30)
            note = await monitor.start_vm("alpha")
            assert note == RECREATED_NOTE
            snap = await wait_snapshot(monitor, all_in(("alpha",), Phase.READY), timeout=30)
            new_key = monitor.hostkeys.lookup("alpha")
    finally:
        await monitor.stop()
    assert new_key is not None and new_key != old_key, "a new machine has a new key"
    messages = [e.message for e in monitor.events if e.subject == "alpha"]
    assert any("recreated (new uid" in m and "learned anew" in m for m in messages), messages
    assert any(RECREATED_NOTE in m for m in messages)
    assert snap.vm("alpha") is not None


async def test_an_account_without_compute_write_is_read_only(fleet: FakeOrchard) -> None:
    fleet.add_account(VIEWER[0], VIEWER[1], ("compute:read",))
    await create(fleet, "alpha")
    monitor = fleet_monitor(fleet, VIEWER)
    await monitor.start()
    try:
        async with clock_running(fleet):
            snap = await wait_snapshot(monitor, lambda s: s.readonly_reason is not None)
            with pytest.raises(ActionError) as refused:
                await monitor.stop_vm("alpha")
    finally:
        await monitor.stop()
    assert snap.readonly and snap.readonly_reason is not None
    assert "compute:write" in snap.readonly_reason
    assert str(refused.value) == snap.readonly_reason
    assert VIEWER[1] not in report.dumps(report.snapshot_json(snap))
    assert VIEWER[1] not in str(refused.value)


def lists(lab: FakeOrchard) -> int:
    return sum(ex.method == "GET" and ex.path == "/v1/vms" for ex in lab.exchanges)


def per_vm(lab: FakeOrchard, names: tuple[str, ...]) -> int:
    return sum(any(ex.path.startswith(f"/v1/vms/{n}") for n in names) for ex in lab.exchanges)


async def test_the_controller_is_polled_at_the_budgets_pace(fleet: FakeOrchard) -> None:
    """Settled: one list per settled interval and nothing per VM; moving: one watch
    per VM in transition. (The intervals are shortened: 0.2 s and 0.5 s for 2 s
    and 10 s.)"""
    await create(fleet, "a", "b")
    monitor = fleet_monitor(fleet)
    await monitor.start()
    try:
        async with clock_running(fleet):
            await wait_snapshot(monitor, all_in(("a", "b"), Phase.READY), timeout=30)
            # Let the list that saw them ready pass: from now on all is settled.
            await asyncio.sleep(0.6)
            before, before_vm = lists(fleet), per_vm(fleet, ("a", "b"))
            await asyncio.sleep(3.0)
            settled, settled_vm = lists(fleet) - before, per_vm(fleet, ("a", "b")) - before_vm
            assert fleet.store.watchers("a") == fleet.store.watchers("b") == 0
        # With the controller's clock held, "c" stays pending: the next list sees it
        # scheduling and follows it with a watch.
        await create(fleet, "c")
        await asyncio.wait_for(fleet.wait_for_watch("c"), 10)
        most = 0
        deadline = asyncio.get_running_loop().time() + 30
        async with clock_running(fleet):
            while (vm := monitor.snapshot.vm("c")) is None or vm.phase is not Phase.READY:
                most = max(most, fleet.store.watchers("c"))
                assert fleet.store.watchers("a") == 0
                assert asyncio.get_running_loop().time() < deadline, monitor.snapshot
                await asyncio.sleep(0.01)
    finally:
        await monitor.stop()
    # 3 s at one list per 0.5 s (not the moving 0.2 s): 6, with a list's slack.
    assert 3 <= settled <= 8, settled
    assert settled_vm == 0, "a settled VM is not polled on its own"
    assert most == 1, "one watch for the VM in transition"


async def test_a_vm_recreated_while_megatui_was_away_is_a_new_machine(
    fleet: FakeOrchard,
) -> None:
    await create(fleet, "alpha")
    first = fleet_monitor(fleet)
    await first.start()
    try:
        async with clock_running(fleet):
            await wait_snapshot(first, all_in(("alpha",), Phase.READY), timeout=30)
    finally:
        await first.stop()
    old_key = first.hostkeys.lookup("alpha")
    # Someone else deletes and recreates it: a new clone with a new host key.
    backend = orchard_backend(fleet)
    try:
        await backend.client.delete_vm("alpha")
    finally:
        await backend.close()
    advance(fleet, 1.0)
    await create(fleet, "alpha")
    second = fleet_monitor(fleet)
    await second.start()
    try:
        async with clock_running(fleet):
            snap = await wait_snapshot(second, all_in(("alpha",), Phase.READY), timeout=30)
    finally:
        await second.stop()
    assert snap.vm("alpha") is not None
    new_key = second.hostkeys.lookup("alpha")
    assert old_key is not None and new_key is not None and new_key != old_key
    assert any("recreated (new uid" in e.message for e in second.events)
