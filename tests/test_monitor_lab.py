"""The monitor against the lab's fake tart and VM SSH servers: the readiness core end
to end, with real processes and real SSH logins."""

from __future__ import annotations

import os
from pathlib import Path

from lab_fixtures import TartLabFactory, fast_vm, tart_lab_fixture, wait_for  # noqa: F401
from monitor_helpers import lab_settings, wait_snapshot

from megatui import report
from megatui.api import ActionError
from megatui.lab.tartlab import process_alive
from megatui.model import Phase, Snapshot, TartState
from megatui.monitor import Monitor


def phase_of(snap: Snapshot, name: str) -> Phase | None:
    vm = snap.vm(name)
    return vm.phase if vm else None


async def test_start_to_ready_through_every_phase(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    lab = tart_lab([fast_vm("alpha", ip_after=0.4, port_after=0.9, login_after=1.4)])
    monitor = Monitor(lab_settings(lab, tmp_path), sources={"tart", "ssh"})
    seen: list[tuple[Phase, float]] = []
    monitor.subscribe(lambda s: seen.append((s.vms[0].phase, s.vms[0].progress)) if s.vms else None)
    await monitor.start()
    try:
        await wait_snapshot(monitor, lambda s: phase_of(s, "alpha") is Phase.STOPPED)
        await monitor.start_vm("alpha")
        snap = await wait_snapshot(monitor, lambda s: phase_of(s, "alpha") is Phase.READY)
    finally:
        await monitor.stop()
    vm = snap.vm("alpha")
    assert vm is not None and vm.progress == 1.0 and vm.ip is not None
    phases = [p for p, _ in seen]
    boot = [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p]
    # Every boot phase is observed, in order (booting may be too brief to catch
    # only if tart already reports an address on its first answer).
    order = [Phase.STARTING, Phase.IP, Phase.SSH_PENDING, Phase.READY]
    positions = [boot.index(p) for p in order]
    assert positions == sorted(positions), boot
    progress = [pr for p, pr in seen if p is not Phase.STOPPED]
    assert progress == sorted(progress), "progress went backwards during the boot"
    assert all(pr < 1.0 for p, pr in seen if p is not Phase.READY)
    assert any(e.subject == "alpha" and "ssh-pending → ready" in e.message for e in monitor.events)


async def test_stop_goes_back_to_stopped_and_drops_the_stale_lease(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running")])
    monitor = Monitor(lab_settings(lab, tmp_path), sources={"tart", "ssh"})
    await monitor.start()
    try:
        await wait_snapshot(monitor, lambda s: phase_of(s, "alpha") is Phase.READY)
        pid = lab.run_pid("alpha")
        await monitor.stop_vm("alpha")
        snap = await wait_snapshot(monitor, lambda s: phase_of(s, "alpha") is Phase.STOPPED)
    finally:
        await monitor.stop()
    vm = snap.vm("alpha")
    assert vm is not None
    assert vm.ip is None, "a stopped VM's DHCP lease is stale, not an address"
    assert vm.state is TartState.STOPPED
    assert pid is not None and not process_alive(pid)


async def test_failed_login_is_an_error_not_endless_ssh_pending(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running", reject_logins=True)])
    monitor = Monitor(lab_settings(lab, tmp_path), sources={"tart", "ssh"})
    await monitor.start()
    try:
        snap = await wait_snapshot(monitor, lambda s: phase_of(s, "alpha") is Phase.ERROR)
    finally:
        await monitor.stop()
    vm = snap.vm("alpha")
    assert vm is not None and vm.ip is not None
    assert vm.error == f"authentication failed for admin@{vm.ip}"


async def test_changed_host_key_blocks_the_login(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running")])
    settings = lab_settings(lab, tmp_path)
    monitor = Monitor(settings, sources={"tart", "ssh"})
    await monitor.start()
    try:
        await wait_snapshot(monitor, lambda s: phase_of(s, "alpha") is Phase.READY)
        trusted = monitor.hostkeys.lookup("alpha")
        assert trusted is not None
        await monitor.stop_vm("alpha")
        await wait_snapshot(monitor, lambda s: phase_of(s, "alpha") is Phase.STOPPED)
        lab.rotate_host_key("alpha")
        await monitor.start_vm("alpha")
        snap = await wait_snapshot(monitor, lambda s: phase_of(s, "alpha") is Phase.ERROR)
    finally:
        await monitor.stop()
    vm = snap.vm("alpha")
    assert vm is not None and vm.error is not None
    assert "host key of VM 'alpha' changed" in vm.error
    assert monitor.hostkeys.lookup("alpha") == trusted, "the new key must not be trusted"


async def test_hanging_tart_times_out_and_leaves_nothing_running(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    lab = tart_lab([fast_vm("alpha")], start=False)
    lab.set_hang("list", True)
    monitor = Monitor(lab_settings(lab, tmp_path, tart_timeout=0.5), sources={"tart", "ssh"})
    await monitor.start()
    try:
        snap = await wait_snapshot(
            monitor, lambda s: "tart" in s.sources and not s.sources["tart"].ok, timeout=10
        )
        assert monitor.retry_in("tart") is not None
    finally:
        await monitor.stop()
    error = snap.sources["tart"].error or ""
    assert "did not answer within 0.5 s" in error, error
    hung = lab.hung_pids()
    assert hung, "the fake tart recorded no hung process"
    assert not any(process_alive(pid) for pid in hung)


async def test_start_of_unknown_or_running_vm_is_a_one_line_error(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running")])
    monitor = Monitor(lab_settings(lab, tmp_path), sources={"tart"})
    await monitor.start()
    try:
        await wait_snapshot(monitor, lambda s: s.vm("alpha") is not None)
        for name, message in (("nope", "unknown VM 'nope'"), ("alpha", "already running")):
            try:
                await monitor.start_vm(name)
            except ActionError as exc:
                assert message in str(exc)
            else:
                raise AssertionError("start_vm should have failed")
    finally:
        await monitor.stop()


async def test_readonly_refuses_start_and_stop(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    lab = tart_lab([fast_vm("alpha")], start=False)
    monitor = Monitor(lab_settings(lab, tmp_path, readonly=True), sources={"tart"})
    await monitor.start()
    try:
        await wait_snapshot(monitor, lambda s: s.vm("alpha") is not None)
        for action in (monitor.start_vm, monitor.stop_vm):
            try:
                await action("alpha")
            except ActionError as exc:
                assert "read-only" in str(exc)
            else:
                raise AssertionError("read-only mode allowed a change")
    finally:
        await monitor.stop()
    assert lab.run_pid("alpha") is None


def _children() -> set[int]:
    return {int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == os.getpid()}


async def test_no_zombie_children_left(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    """Detached starts are our children, reaped by a thread as soon as they exit: the
    `tart run` this test starts and stops is not left a zombie (whatever other tests did)."""
    lab = tart_lab([fast_vm("alpha")])
    monitor = Monitor(lab_settings(lab, tmp_path), sources={"tart", "ssh"})
    before = _children()
    await monitor.start()
    try:
        await wait_snapshot(monitor, lambda s: phase_of(s, "alpha") is Phase.STOPPED)
        await monitor.start_vm("alpha")
        await wait_snapshot(monitor, lambda s: phase_of(s, "alpha") is Phase.READY)
        ours = _children() - before
        pid = lab.run_pid("alpha")
        assert pid in ours, f"tart run ({pid}) is not our child: {ours}"
        await monitor.stop_vm("alpha")
        await wait_snapshot(monitor, lambda s: phase_of(s, "alpha") is Phase.STOPPED)
    finally:
        await monitor.stop()
    # The reaper is a thread with nothing to wait on from here: poll, with a deadline.
    wait_for(lambda: _state(pid) != "Z", 5.0, what=f"tart run {pid} reaped, not a zombie")
    assert not [c for c in ours if _state(c) == "Z"]


async def test_reports_never_show_the_login_password(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    """The snapshot a report is made of never holds the VM password: not when the login
    works, not when it is refused (the error line)."""
    secret = "pw-7c1e9b-not-for-reports"
    lab = tart_lab([fast_vm("alpha", password=secret), fast_vm("beta", password=secret)])
    lab.set_reject_logins("beta", True)
    monitor = Monitor(lab_settings(lab, tmp_path), sources={"tart", "ssh"})
    await monitor.start()
    try:
        for name in ("alpha", "beta"):
            await wait_snapshot(monitor, lambda s, n=name: phase_of(s, n) is Phase.STOPPED)
            await monitor.start_vm(name)
        snap = await wait_snapshot(
            monitor,
            lambda s: phase_of(s, "alpha") is Phase.READY and phase_of(s, "beta") is Phase.ERROR,
            timeout=20,
        )
    finally:
        await monitor.stop()
    assert secret in (tmp_path / "megatui.toml").read_text()  # it was there to leak
    beta = snap.vm("beta")
    assert beta is not None and beta.error  # the refusal is reported, without the secret
    for text in (report.dumps(report.snapshot_json(snap)), report.snapshot_text(snap)):
        assert secret not in text


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


async def test_log_tail_shows_only_the_latest_run(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    from megatui.monitor import RUN_MARKER

    lab = tart_lab([fast_vm("alpha")])
    monitor = Monitor(lab_settings(lab, tmp_path), sources={"tart", "ssh"})
    await monitor.start()
    try:
        for run in range(2):
            await wait_snapshot(monitor, lambda s: phase_of(s, "alpha") is Phase.STOPPED)
            await monitor.start_vm("alpha")
            await wait_snapshot(monitor, lambda s: phase_of(s, "alpha") is Phase.READY)
            tail = await monitor.read_log_tail("alpha")
            if run == 0:
                await monitor.stop_vm("alpha")
    finally:
        await monitor.stop()
    whole = Path(monitor.log_path("alpha")).read_text().splitlines()
    assert sum(line.startswith(RUN_MARKER) for line in whole) == 2
    # The second run's lines only, from its marker on.
    assert tail[0].startswith(RUN_MARKER)
    assert sum(line.startswith(RUN_MARKER) for line in tail) == 1
    assert tail == whole[len(whole) - len(tail) :]
