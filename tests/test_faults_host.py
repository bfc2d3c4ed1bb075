"""Faults of the Mac host (`--host`), end to end: a real OpenSSH sshd in front of the
demo lab (tart VMs, Kind-like API server, Docker), and a real Monitor over one
RemoteTransport, in this process.

Each fault asserts the exact line shown, an upper bound on how fast it is seen and
on recovery once it is removed (with and without `r`, which also resets the
reconnect backoff), that the monitor keeps running, and that afterwards no task,
file descriptor, temp directory or sshd connection is left. The TUI's exit paths
with --host are in test_remote_tmux.py.

Bounds are upper bounds with slack for a loaded 2-core machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from remote_fixtures import HostLab, eventually, host_lab_fixture  # noqa: F401
from sshd_fixtures import real_sshd_fixture  # noqa: F401

from megatui.model import SOURCE_HOST, Event, Phase, Snapshot
from megatui.monitor import Monitor
from megatui.remote import RemoteTransport

pytestmark = [pytest.mark.sshd]

#: Fast pacing, so a fault is seen by the next poll, not a default 10 s later.
FAST: dict[str, Any] = {
    "tart_poll_interval": 1.0,
    "tart_boot_poll_interval": 0.5,
    "ssh_health_interval": 1.0,
    "ssh_probe_interval": 0.2,
    "ssh_connect_timeout": 3.0,
    "tart_timeout": 5.0,
    "docker_poll_interval": 1.0,
}
#: The statuses of the sources behind the host connection.
BEHIND = ("tart", "ssh", "kubernetes", "applications", "docker")
VM = "runner"

#: Reconnect backoff for runs without `r`: recovery is bounded by its cap.
QUICK_BACKOFF = {"backoff_base": 0.5, "backoff_cap": 2.0}
#: For runs with `r`: the next attempt would be 16 s or more away, so a recovery
#: within the bound proves that refresh retried at once.
SLOW_BACKOFF = {"backoff_base": 20.0, "backoff_cap": 20.0}


def _fds() -> dict[str, str]:
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
    return found


@dataclass
class Run:
    host: HostLab
    monitor: Monitor
    transport: RemoteTransport
    snaps: list[Snapshot] = field(default_factory=list)

    @property
    def snap(self) -> Snapshot:
        return self.monitor.snapshot

    async def until(
        self, predicate: Callable[[Snapshot], bool], timeout: float, what: str
    ) -> float:
        """Seconds until a published snapshot satisfies predicate."""
        started = time.monotonic()
        try:
            await eventually(lambda: predicate(self.monitor.snapshot), timeout, what)
        except pytest.fail.Exception:
            snap = self.monitor.snapshot
            sources = {n: (s.ok, s.error) for n, s in snap.sources.items()}
            vms = [(vm.name, vm.phase, vm.error) for vm in snap.vms]
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}: {sources} {vms}")
        return time.monotonic() - started

    def host_line(self) -> str | None:
        status = self.snap.sources.get(SOURCE_HOST)
        return status.error if status is not None and not status.ok else None

    def source_events(self, since: int) -> list[Event]:
        return [e for e in list(self.monitor.events)[since:] if e.kind == "source"]


def healthy(snap: Snapshot) -> bool:
    vm = snap.vm(VM)
    statuses = [snap.sources.get(name) for name in (SOURCE_HOST, *BEHIND)]
    return (
        all(s is not None and s.ok for s in statuses) and vm is not None and vm.phase is Phase.READY
    )


def phases(snaps: list[Snapshot]) -> set[Phase]:
    return {vm.phase for snap in snaps for vm in snap.vms if vm.name == VM}


def behind_say(line: str) -> Callable[[Snapshot], bool]:
    """Every source behind the host says the host's line, and nothing else."""

    def check(snap: Snapshot) -> bool:
        statuses = [snap.sources.get(name) for name in (SOURCE_HOST, *BEHIND)]
        return all(s is not None and not s.ok and s.error == line for s in statuses)

    return check


@contextlib.asynccontextmanager
async def monitored(host: HostLab, **transport_kwargs: Any) -> AsyncIterator[Run]:
    fds_before = _fds()
    tasks_before = asyncio.all_tasks()
    transport = host.transport(**transport_kwargs)
    monitor = Monitor(host.settings(**FAST), transport=transport)
    run = Run(host, monitor, transport)
    monitor.subscribe(run.snaps.append)
    await monitor.start()
    try:
        yield run
        # megatui never exits on a host fault: every task of the monitor is alive.
        assert all(not task.done() for task in monitor._tasks), monitor._tasks
    finally:
        await monitor.stop()
    assert not host.private_dirs(), "the private directory (kubeconfig copy) is left"
    current = asyncio.current_task()

    def no_tasks() -> bool:
        return not {t for t in asyncio.all_tasks() - tasks_before if t is not current}

    await eventually(no_tasks, 5, "the monitor's tasks to end")
    await eventually(lambda: not host.connection_pids(), 10, "sshd to see the connection closed")

    left: set[tuple[str, str]] = set()

    def no_new_fds() -> bool:
        # The log pipe of a restarted sshd belongs to the fixture, not to megatui.
        proc = host.sshd._proc
        keep = {str(proc.stderr.fileno())} if proc is not None and proc.stderr else set()
        left.clear()
        left.update(fd for fd in set(_fds().items()) - set(fds_before.items()) if fd[0] not in keep)
        return not left

    with contextlib.suppress(pytest.fail.Exception):
        await eventually(no_new_fds, 5, "no file descriptor left")
    assert not left, f"file descriptors left: {sorted(left)}"


def _freeze(pids: Any, sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize("press_r", [False, True], ids=["wait", "r"])
async def test_host_sshd_killed(host_lab: HostLab, press_r: bool) -> None:
    async with monitored(host_lab, **(SLOW_BACKOFF if press_r else QUICK_BACKOFF)) as run:
        await run.until(healthy, 30, "everything up")
        since, first = len(run.monitor.events), len(run.snaps)
        await asyncio.to_thread(host_lab.sshd.stop)  # the listener and every session
        line = f"connection to {run.transport.label} lost: Connection lost"
        seen = await run.until(behind_say(line), 5, f"every source to say {line!r}")
        assert seen < 3.0
        vm = run.snap.vm(VM)
        assert vm is not None and vm.phase is Phase.READY, "the VM is stale, not demoted"

        await asyncio.to_thread(host_lab.sshd.start)
        if press_r:
            run.monitor.refresh()
        back = await run.until(healthy, 15, "recovery")
        assert back < (6.0 if press_r else 10.0)
        assert [(e.subject, e.severity) for e in run.source_events(since)] == [
            (SOURCE_HOST, "error"),
            (SOURCE_HOST, "info"),
        ], run.source_events(since)
        assert phases(run.snaps[first:]) == {Phase.READY}, "the VM was blamed for the host"
