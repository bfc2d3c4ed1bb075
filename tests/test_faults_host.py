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
QUICK_BACKOFF = {"remote_reconnect_delay": 0.5, "remote_reconnect_max_delay": 2.0}
#: For runs with `r`: the next attempt would be 16 s or more away, so a recovery
#: within the bound proves that refresh retried at once.
SLOW_BACKOFF = {"remote_reconnect_delay": 20.0, "remote_reconnect_max_delay": 20.0}


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
        fresh = set(_fds().items()) - set(fds_before.items())
        left.clear()
        left.update(fd for fd in fresh if fd[0] not in keep and fd[1] != str(host.sshd.log_path))
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


@pytest.mark.parametrize("press_r", [False, True], ids=["wait", "r"])
async def test_host_frozen(host_lab: HostLab, press_r: bool) -> None:
    # A Mac asleep or sshd stopped: no reset, no answer; only keepalives tell. The
    # listener is frozen too, so reconnecting fails until the fault is removed.
    # The transport's default keepalives are what is tested here.
    async with monitored(host_lab, **(SLOW_BACKOFF if press_r else QUICK_BACKOFF)) as run:
        await run.until(healthy, 30, "everything up")
        since, first = len(run.monitor.events), len(run.snaps)
        frozen = [*host_lab.listener_pids(), *host_lab.connection_pids()]
        _freeze(frozen, signal.SIGSTOP)
        try:
            line = f"connection to {run.transport.label} lost: Server not responding to keepalive"
            seen = await run.until(behind_say(line), 20, f"every source to say {line!r}")
            assert seen < 15.0
            assert phases(run.snaps[first:]) == {Phase.READY}, "the VM was blamed for the host"
        finally:
            _freeze(frozen, signal.SIGCONT)
        if press_r:
            run.monitor.refresh()
        back = await run.until(healthy, 20, "recovery")
        # Without r: an attempt already under way may wait out its connect timeout (5 s).
        assert back < (6.0 if press_r else 10.0)
        assert phases(run.snaps[first:]) == {Phase.READY}, "the VM was blamed for the host"
        events = [(e.subject, e.severity) for e in run.source_events(since)]
        # Maybe one "not answering" before the keepalives declare the connection lost.
        assert events in (
            [(SOURCE_HOST, "error"), (SOURCE_HOST, "info")],
            [(SOURCE_HOST, "error"), (SOURCE_HOST, "error"), (SOURCE_HOST, "info")],
        ), run.source_events(since)


@pytest.mark.parametrize("press_r", [False, True], ids=["wait", "r"])
async def test_host_rekeyed(host_lab: HostLab, press_r: bool) -> None:
    # The Mac was reinstalled (or an attacker answers): the new key is never trusted
    # silently; once the user accepts it, megatui comes back by itself.
    async with monitored(host_lab, **(SLOW_BACKOFF if press_r else QUICK_BACKOFF)) as run:
        await run.until(healthy, 30, "everything up")
        since, first = len(run.monitor.events), len(run.snaps)
        await asyncio.to_thread(host_lab.sshd.restart, new_host_key=True)
        if press_r:
            run.monitor.refresh()  # retry at once: the key change is seen at once
        key = host_lab.sshd.host_public_key.split()[0]

        def key_changed(snap: Snapshot) -> bool:
            host = snap.sources.get(SOURCE_HOST)
            return bool(host and host.error and "HOST KEY CHANGED" in host.error)

        seen = await run.until(key_changed, 10, "the changed key")
        assert seen < (3.0 if press_r else 5.0)
        line = run.host_line() or ""
        prefix = f"connection to {run.transport.label} lost: HOST KEY CHANGED (now {key} SHA256:"
        assert line.startswith(prefix) and line.endswith(")"), line
        await run.until(behind_say(line), 5, "every source to say the host's line")
        detail = run.snap.sources[SOURCE_HOST].detail or ""
        assert "ssh-keygen -R" in detail, detail
        assert phases(run.snaps[first:]) == {Phase.READY}, "the VM was blamed for the host"

        host_lab.trust()
        if press_r:
            run.monitor.refresh()
        back = await run.until(healthy, 15, "recovery")
        assert back < (6.0 if press_r else 10.0)
        subjects = {e.subject for e in run.source_events(since)}
        assert subjects == {SOURCE_HOST}, run.source_events(since)


@pytest.mark.parametrize("press_r", [False, True], ids=["wait", "r"])
async def test_host_key_unknown(host_lab: HostLab, press_r: bool) -> None:
    host_lab.known_hosts.write_text("")
    async with monitored(host_lab, **(SLOW_BACKOFF if press_r else QUICK_BACKOFF)) as run:
        label = run.transport.label
        # known_hosts is the default one, in the (test's) HOME.
        line = f"cannot connect to {label}: host key not trusted yet (not in ~/.ssh/known_hosts)"
        seen = await run.until(behind_say(line), 5, f"every source to say {line!r}")
        assert seen < 3.0
        detail = run.snap.sources[SOURCE_HOST].detail or ""
        key = host_lab.sshd.host_public_key.split()[0]
        assert detail.startswith(line + "\n"), detail
        assert f"check that the Mac's key is {key} SHA256:" in detail
        assert f"`ssh -p {host_lab.sshd.port} {host_lab.sshd.user}@{host_lab.sshd.host}`" in detail
        assert f"ssh-keyscan -p {host_lab.sshd.port} {host_lab.sshd.host}" in detail
        assert not any("lost" in e.message for e in run.monitor.events), "never connected"

        host_lab.trust()
        if press_r:
            run.monitor.refresh()
        back = await run.until(healthy, 30, "recovery")
        assert back < (10.0 if press_r else 15.0)


@pytest.mark.parametrize("press_r", [False, True], ids=["wait", "r"])
async def test_remote_login_off(host_lab: HostLab, press_r: bool) -> None:
    # Nothing listens on the port (Remote Login off, or a wrong port): refused.
    await asyncio.to_thread(host_lab.sshd.stop)
    async with monitored(host_lab, **(SLOW_BACKOFF if press_r else QUICK_BACKOFF)) as run:
        line = f"cannot connect to {run.transport.label}: connection refused"
        seen = await run.until(behind_say(line), 5, f"every source to say {line!r}")
        assert seen < 3.0
        assert "Remote Login" in (run.snap.sources[SOURCE_HOST].detail or "")
        # One countdown: every source behind the host counts down to the host's retry.
        await eventually(lambda: run.monitor.retry_in(SOURCE_HOST) is not None, 5, "a countdown")
        host_retry = run.monitor.retry_in(SOURCE_HOST)
        assert host_retry is not None
        for name in BEHIND:
            retry = run.monitor.retry_in(name)
            assert retry is not None and abs(retry - host_retry) < 0.5, (name, retry, host_retry)

        await asyncio.to_thread(host_lab.sshd.start)
        if press_r:
            run.monitor.refresh()
        back = await run.until(healthy, 30, "recovery")
        assert back < (10.0 if press_r else 15.0)


async def test_wrong_address(host_lab: HostLab) -> None:
    # An address where something accepts TCP but never speaks SSH (a wrong machine,
    # a blackholing firewall): the connect timeout bounds it.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        transport = host_lab.transport(
            host=f"admin@127.0.0.1:{port}", remote_connect_timeout=2.0, **QUICK_BACKOFF
        )
        monitor = Monitor(host_lab.settings(**FAST), transport=transport)
        await monitor.start()
        try:
            line = f"cannot connect to admin@127.0.0.1:{port}: no answer within 2 s"
            started = time.monotonic()
            await eventually(lambda: behind_say(line)(monitor.snapshot), 10, repr(line))
            assert time.monotonic() - started < 5.0
            detail = monitor.snapshot.sources[SOURCE_HOST].detail or ""
            assert "fix: check the address 127.0.0.1" in detail
            assert all(not task.done() for task in monitor._tasks)
        finally:
            await monitor.stop()
    assert not host_lab.private_dirs()
