"""`megatui demo --orchard` / `lab --orchard`: the demo lab with a fake Orchard
controller of three workers, and megatui (the same monitor the TUI runs) on it:
this Mac's cluster and the fleet's VMs side by side."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from monitor_helpers import wait_snapshot

from megatui.config import load_settings
from megatui.headless import build_monitor
from megatui.lab.demo import FLEET_VMS, FLEET_WORKERS, DemoLab
from megatui.model import Phase


@pytest.fixture(name="fleet_demo")
def fleet_demo_fixture(tmp_path: Path) -> Iterator[DemoLab]:
    lab = DemoLab(tmp_path / "lab", fleet=True)
    lab.start()
    try:
        yield lab
    finally:
        lab.stop()


async def test_the_fleet_demo_shows_three_workers_and_its_vms(fleet_demo: DemoLab) -> None:
    settings = load_settings(fleet_demo.config_path, environ={})
    assert settings.orchard
    monitor = build_monitor(settings, sources={"tart", "ssh"})
    await monitor.start()
    try:
        snap = await wait_snapshot(
            monitor, lambda s: len(s.vms) == len(FLEET_VMS) and len(s.workers) == 3, timeout=30
        )
        # Six VMs fill the three workers' macOS slots; the seventh waits for one.
        snap = await wait_snapshot(
            monitor,
            lambda s: sum(vm.phase is Phase.READY for vm in s.vms) >= 1,
            timeout=60,
        )
    finally:
        await monitor.stop()
    assert [w.name for w in snap.workers] == list(FLEET_WORKERS)
    assert all(vm.backend == "orchard" for vm in snap.vms)
    spare = snap.vm("spare")
    assert spare is not None and spare.phase is Phase.SCHEDULING, spare
    assert "orchard" in snap.host
