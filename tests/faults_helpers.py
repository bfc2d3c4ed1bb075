"""What every fault test checks afterwards: nothing left behind, nothing on stderr.

`Leaks.take()` notes this process's open file descriptors, child processes, temp
entries (in the test's private_tempdir) and asyncio tasks before a Monitor starts;
`Leaks.check()` waits (with a deadline, never a fixed sleep) until all of them are
back to that.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from megatui.model import Snapshot, SourceStatus
from megatui.monitor import Monitor


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def _describe(target: str) -> str:
    """A socket fd's line in /proc/net/{unix,tcp,tcp6}, to tell what it was."""
    if target.startswith("socket:["):
        inode = target[len("socket:[") : -1]
        for table in ("unix", "tcp", "tcp6"):
            for line in Path(f"/proc/net/{table}").read_text().splitlines():
                if inode in line.split():
                    return f"{target} {table}: {' '.join(line.split())}"
    return target


def _children() -> set[int]:
    me = str(os.getpid())
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The ppid is the 2nd field after the parenthesised command name.
        if stat.rsplit(")", 1)[1].split()[1] == me:
            found.add(int(entry))
    return found


def _temp_entries() -> set[str]:
    # The test's own temp dir (private_tempdir): /tmp is shared with other processes.
    return set(os.listdir(tempfile.gettempdir()))


def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point this process's temp files at a directory of the test's own, so that what
    megatui leaves there is told apart from what other processes put in /tmp."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setenv("TMPDIR", str(path))
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


@dataclass
class Leaks:
    fds: set[str]
    children: set[int]
    temps: set[str]
    tasks: set[asyncio.Task[object]]

    @classmethod
    def take(cls) -> Leaks:
        return cls(_fds(), _children(), _temp_entries(), set(asyncio.all_tasks()))

    def left(self) -> list[str]:
        problems = []
        extra_fds = _fds() - self.fds
        if extra_fds:
            targets = []
            for fd in sorted(extra_fds):
                try:
                    targets.append(os.readlink(f"/proc/self/fd/{fd}"))
                except OSError:
                    continue  # closed meanwhile (the listing's own fd)
            if targets:
                problems.append(f"file descriptors: {[_describe(t) for t in targets]}")
        if _children() - self.children:
            problems.append(f"child processes: {_children() - self.children}")
        if _temp_entries() - self.temps:
            problems.append(f"temp entries: {_temp_entries() - self.temps}")
        tasks = {t for t in asyncio.all_tasks() - self.tasks if not t.done()}
        if tasks:
            problems.append(f"asyncio tasks: {[t.get_name() for t in tasks]}")
        return problems

    async def check(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            problems = self.left()
            if not problems:
                return
            if time.monotonic() > deadline:
                raise AssertionError("left behind: " + "; ".join(problems))
            # Closed sockets and cancelled tasks settle over a few loop turns.
            await asyncio.sleep(0.05)


async def wait_status(
    monitor: Monitor,
    name: str,
    predicate: Callable[[SourceStatus], bool],
    timeout: float,
) -> tuple[SourceStatus, float]:
    """The first published status of `name` that satisfies predicate, and how many
    seconds it took to appear. Fails after `timeout` seconds."""
    start = time.monotonic()
    changed = asyncio.Event()

    def current(snapshot: Snapshot) -> SourceStatus | None:
        status = snapshot.sources.get(name)
        return status if status is not None and predicate(status) else None

    unsubscribe = monitor.subscribe(lambda _s: changed.set())
    try:
        async with asyncio.timeout(timeout):
            while (found := current(monitor.snapshot)) is None:
                changed.clear()
                await changed.wait()
    except TimeoutError:
        last = monitor.snapshot.sources.get(name)
        raise AssertionError(
            f"{name}: no matching status within {timeout} s; last: {last}"
        ) from None
    finally:
        unsubscribe()
    return found, time.monotonic() - start


def assert_running(monitor: Monitor) -> None:
    """megatui never exits: every source task is still alive."""
    for task in monitor._tasks:
        assert not task.done(), f"source task {task.get_name()} ended"
