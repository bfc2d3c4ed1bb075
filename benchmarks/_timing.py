"""What the readiness benchmarks share: waiting for the monitor to publish a state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from megatui.model import Phase, Snapshot
from megatui.monitor import Monitor


async def wait_for(
    monitor: Monitor, predicate: Callable[[Snapshot], bool], timeout: float = 30.0
) -> Snapshot:
    """The first published snapshot for which `predicate` holds (TimeoutError after
    `timeout` s)."""
    changed = asyncio.Event()
    unsubscribe = monitor.subscribe(lambda _s: changed.set())
    try:
        async with asyncio.timeout(timeout):
            while not predicate(monitor.snapshot):
                changed.clear()
                await changed.wait()
    finally:
        unsubscribe()
    return monitor.snapshot


def phase(snap: Snapshot, name: str) -> Phase | None:
    vm = snap.vm(name)
    return vm.phase if vm else None
