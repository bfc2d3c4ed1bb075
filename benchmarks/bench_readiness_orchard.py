"""Readiness through the Orchard port-forward, measured on the lab's fake controller
(not a test).

From the moment a VM's sshd accepts logins (the fake worker's guest is up: its
`guest_up_at`, on the controller's monotonic clock, which is the system's here) to
the moment the monitor publishes `ready` for it. Budget (issue #11): median <= 0.5 s,
max <= 1.0 s. The monitor runs at its default pace; the fake controller retries a
port-forward dial about once a second until `wait` runs out (orchard.md §5), as
Orchard does, so a probe that arrives just before the guest is up waits up to 1 s
inside the controller. Each boot is a new VM created and deleted through the monitor
(as `megatui create` does), with a guest boot of 0.5 to 1.5 x --boot seconds after `tart run`;
the first is a warm-up (the lab's SSH server imports asyncssh) and is not counted.

Run: python benchmarks/bench_readiness_orchard.py [--boots N] [--poll SECONDS]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from megatui.backends.base import NewVMSpec
from megatui.backends.orchard import PROBE_WAIT, OrchardBackend
from megatui.config import Settings
from megatui.lab.orchard import FakeOrchard, Timings
from megatui.lab.orchard.controller import BOOTSTRAP_ADMIN
from megatui.model import Phase, Snapshot
from megatui.monitor import Monitor
from megatui.sources.orchard import OrchardClient
from megatui.sources.orchard_config import OrchardConfig

IMAGE = "ghcr.io/cirruslabs/macos-tahoe-base:latest"
TOKEN = "bench-token"


async def wait_for(monitor: Monitor, predicate: object, timeout: float = 60.0) -> Snapshot:
    changed = asyncio.Event()
    unsubscribe = monitor.subscribe(lambda _s: changed.set())
    try:
        async with asyncio.timeout(timeout):
            while not predicate(monitor.snapshot):  # type: ignore[operator]
                changed.clear()
                await changed.wait()
    finally:
        unsubscribe()
    return monitor.snapshot


def phase(snap: Snapshot, name: str) -> Phase | None:
    vm = snap.vm(name)
    return vm.phase if vm else None


async def measure(
    root: Path, boots: int, poll: float, boot_s: float, probe_wait: int
) -> list[float]:
    rng = random.Random(11)
    # Realistic stage order, short stages: what is measured starts when sshd is up.
    timings = Timings(schedule=0.3, pull=0.5, clone=0.5, configure=0.3, boot=boot_s, stop=0.5)
    lab = FakeOrchard(root, timings=timings, admin_token=TOKEN, poll_interval=poll, tick=0.02)
    await lab.start()
    lab.add_worker("mini-1")
    client = OrchardClient(OrchardConfig(lab.url, BOOTSTRAP_ADMIN, TOKEN))
    settings = Settings(ssh_user="admin", ssh_password="admin", ssh_agent=False)
    monitor = Monitor(
        settings, sources={"tart", "ssh"}, backend=OrchardBackend(client, probe_wait=probe_wait)
    )
    ready_at: dict[str, float] = {}

    def on_snapshot(snap: Snapshot) -> None:
        for vm in snap.vms:
            if vm.phase is Phase.READY and vm.name not in ready_at:
                ready_at[vm.name] = time.monotonic()

    monitor.subscribe(on_snapshot)
    latencies: list[float] = []
    try:
        await monitor.start()
        for boot in range(boots + 1):
            name = f"bench-{boot:02d}"
            # Guests boot in 0.5 .. 1.5 x --boot: a fixed boot would lock sshd's start
            # to one phase of the controller's 1-s dial retry and of the probe pace.
            lab.store.timings = replace(lab.store.timings, boot=boot_s * rng.uniform(0.5, 1.5))
            # Created through megatui, as `megatui create` or the TUI's dialog does.
            await monitor.create_vm(NewVMSpec(name, IMAGE, username="admin", password="admin"))
            await wait_for(monitor, lambda s, n=name: phase(s, n) is Phase.READY)
            up = lab.store.get_vm(name).guest_up_at
            assert up is not None
            if boot:
                latencies.append(ready_at[name] - up)
            await monitor.delete_vm(name)
            await wait_for(monitor, lambda s, n=name: s.vm(n) is None)
    finally:
        await monitor.stop()
        await lab.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=20)
    parser.add_argument(
        "--poll", type=float, default=1.0, help="the controller's dial retry (Orchard: ~1 s)"
    )
    parser.add_argument("--boot", type=float, default=8.0, help="mean guest boot after tart run")
    parser.add_argument(
        "--probe-wait", type=int, default=PROBE_WAIT, help="the probe's port-forward `wait`"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="megatui-bench-") as tmp:
        root = Path(tmp)
        os.environ["MEGATUI_DATA_DIR"] = str(root / "data")
        os.environ["MEGATUI_STATE_DIR"] = str(root / "state")
        load = os.getloadavg()
        latencies = sorted(
            asyncio.run(
                measure(root / "orchard", args.boots, args.poll, args.boot, args.probe_wait)
            )
        )
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    result = {
        "boots": len(latencies),
        "controller_dial_retry_s": args.poll,
        "guest_boot_s": args.boot,
        "probe_wait": args.probe_wait,
        "median_s": round(statistics.median(latencies), 3),
        "p95_s": round(p95, 3),
        "min_s": round(latencies[0], 3),
        "max_s": round(latencies[-1], 3),
        "budget_median_s": 0.5,
        "budget_max_s": 1.0,
        "loadavg_at_start": [round(x, 2) for x in load],
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
