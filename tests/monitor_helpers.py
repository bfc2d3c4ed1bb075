"""Helpers for tests that run a real Monitor against the lab."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from megatui.config import Settings, load_settings
from megatui.lab.tartlab import TartLab
from megatui.model import Snapshot
from megatui.monitor import Monitor

#: Fast pacing so lab timelines of a second or two are observed closely.
FAST_SETTINGS: dict[str, Any] = {
    "tart_boot_poll_interval": 0.2,
    "tart_poll_interval": 0.5,
    "ssh_probe_interval": 0.1,
    "ssh_connect_timeout": 3.0,
    "tart_timeout": 5.0,
}


def lab_settings(lab: TartLab, tmp_path: Path, **overrides: Any) -> Settings:
    path = tmp_path / "megatui.toml"
    path.write_text(lab.megatui_config_toml())
    return load_settings(path, {**FAST_SETTINGS, **overrides}, environ={})


async def wait_snapshot(
    monitor: Monitor, predicate: Callable[[Snapshot], bool], timeout: float = 10.0
) -> Snapshot:
    """Wait until a published snapshot satisfies predicate (no fixed sleeps)."""
    if predicate(monitor.snapshot):
        return monitor.snapshot
    changed = asyncio.Event()
    unsubscribe = monitor.subscribe(lambda _s: changed.set())
    try:
        async with asyncio.timeout(timeout):
            while not predicate(monitor.snapshot):
                changed.clear()
                await changed.wait()
    except TimeoutError:
        raise AssertionError(
            f"no matching snapshot within {timeout} s; last: {monitor.snapshot}"
        ) from None
    finally:
        unsubscribe()
    return monitor.snapshot
