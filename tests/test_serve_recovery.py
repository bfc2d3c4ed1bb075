"""Recovery end to end: the lab's VM crashes, the served monitor starts it again; a VM
the user stopped (through the API, or from another megatui process) is left stopped."""

from __future__ import annotations

import asyncio
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from lab_fixtures import TartLabFactory, fast_vm, tart_lab_fixture  # noqa: F401
from monitor_helpers import FAST_SETTINGS, wait_snapshot
from serve_fixtures import serve

from megatui import recovery_history
from megatui.config import Settings, load_settings
from megatui.lab.tartlab import TartLab
from megatui.model import Phase, TartState
from megatui.monitor import Monitor
from megatui.recovery import USER_STOPPED, ActionKind, Result
from megatui.serve.client import RemoteMonitor, Target
from megatui.serve.recovery_runner import RecoveryRunner

ROOT = Path(__file__).resolve().parent.parent
POLICY = (
    '[recovery.alpha]\nrestart = "on-exit"\nmax_restarts = 3\nbackoff = 1\nready_timeout = 30\n'
)


def recovery_settings(lab: TartLab, tmp_path: Path, policy: str = POLICY) -> Settings:
    path = tmp_path / "megatui.toml"
    path.write_text(lab.megatui_config_toml() + "\n" + policy)
    return load_settings(path, FAST_SETTINGS, environ={})


def ready(name: str) -> Callable[[object], bool]:
    def check(snap: object) -> bool:
        vm = snap.vm(name)  # type: ignore[attr-defined]
        return vm is not None and vm.phase is Phase.READY

    return check


async def wait_event(monitor: Monitor, text: str, timeout: float) -> None:
    await wait_snapshot(monitor, lambda _s: any(text in e.message for e in monitor.events), timeout)


async def test_a_crashed_vm_is_restarted_and_a_vm_the_user_stopped_is_left_stopped(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running")])
    settings = recovery_settings(lab, tmp_path)
    monitor = Monitor(settings, sources={"tart", "ssh"})
    runner = RecoveryRunner(monitor, settings)
    await monitor.start()
    try:
        async with serve(monitor=monitor, allow_actions=True, recovery=runner) as s:
            await wait_snapshot(monitor, ready("alpha"), 30)
            first_pid = lab.run_pid("alpha")
            await asyncio.to_thread(lab.crash, "alpha")

            await wait_event(monitor, "recovery: start: ready again", 60)
            assert ready("alpha")(monitor.snapshot)
            assert lab.run_pid("alpha") not in (None, first_pid)
            async with s.session() as api:
                async with api.get("/api/v1/timeline") as reply:
                    lines = [e["message"] for e in (await reply.json())["events"]]
                assert any(
                    m.startswith("recovery: exited unexpectedly: starting it (attempt 1")
                    for m in lines
                ), lines
                async with api.get("/metrics") as reply:
                    metrics = await reply.text()
                assert (
                    'megatui_recovery_actions_total{action="start",result="ok",vm="alpha"} 1.0'
                    in metrics
                )
                assert 'megatui_recovery_restarts_last_hour{vm="alpha"} 1.0' in metrics
                async with api.get("/api/v1/recovery") as reply:
                    report = await reply.json()
                alpha = report["vms"]["alpha"]
                assert alpha["policy"]["restart"] == "on-exit"
                assert alpha["restarts_last_hour"] == 1
                assert [(h["action"], h["result"]) for h in alpha["history"]] == [("start", "ok")]
            # An attached viewer's detail screen gets the same from the server.
            remote = RemoteMonitor(Target.parse(s.url))
            await remote.start()
            try:
                status = await remote.recovery_status("alpha")
            finally:
                await remote.stop()
            assert status is not None
            assert (status.policy.restart, status.restarts_last_hour) == ("on-exit", 1)
            async with s.session() as api:
                # The user stops it through the API: recovery leaves it stopped.
                async with api.post("/api/v1/vms/alpha/stop") as reply:
                    assert reply.status == 202, await reply.text()
                await wait_event(monitor, USER_STOPPED, 30)
                assert monitor.snapshot.vm("alpha").state is TartState.STOPPED  # type: ignore[union-attr]
                runner.evaluate()  # once more, now: still nothing to do
                assert not runner._actions
                async with api.get("/api/v1/recovery") as reply:
                    alpha = (await reply.json())["vms"]["alpha"]
                assert alpha["state"] == "user-stopped"
                assert len(alpha["history"]) == 1
            assert lab.run_pid("alpha") is None
    finally:
        await monitor.stop()
    assert runner._loop_task is None and not runner._actions  # cleaned up with the server
    # The server restarts: the hour's attempt and the history are still there (#13).
    again = RecoveryRunner(monitor, settings)
    assert again.engine.restarts_last_hour("alpha") == 1
    assert [(r.action, r.result) for r in again.engine.history("alpha")] == [
        (ActionKind.START, Result.OK)
    ]
    assert recovery_history.default_path().stat().st_mode & 0o777 == 0o600


STOP_FROM_ANOTHER_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    from megatui.config import load_settings
    from megatui.monitor import Monitor

    async def main():
        monitor = Monitor(load_settings(sys.argv[1], environ={}), sources={"tart"})
        await monitor.start()
        try:
            await monitor.wait_first_round(20)
            await monitor.stop_vm("alpha")
        finally:
            await monitor.stop()

    asyncio.run(main())
    """
)


async def test_a_stop_made_by_another_megatui_process_is_not_fought(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running")])
    settings = recovery_settings(lab, tmp_path)
    monitor = Monitor(settings, sources={"tart", "ssh"})
    runner = RecoveryRunner(monitor, settings)
    await monitor.start()
    try:
        async with serve(monitor=monitor, recovery=runner):
            await wait_snapshot(monitor, ready("alpha"), 30)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                STOP_FROM_ANOTHER_PROCESS,
                str(settings.config_path),
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            async with asyncio.timeout(60):
                assert await proc.wait() == 0
            await wait_event(monitor, USER_STOPPED, 30)
            runner.evaluate()
            assert not runner._actions
            assert runner.engine.history("alpha") == ()
            assert lab.run_pid("alpha") is None
    finally:
        await monitor.stop()
