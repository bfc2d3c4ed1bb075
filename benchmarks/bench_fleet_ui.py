"""The fleet's VMs panel under load (not a test): 200 VMs over 100 workers.

Measures, headless at 160x48 with a FakeMonitor:
- keypress → idle: `down` in the VM table and in the workers table, `tab` between
  them (the wall time of a pilot press plus the pause that lets the frame be drawn:
  an upper bound of keypress-to-repaint);
- the same `down` on the 7-VM tart sample, as the baseline of that method (the
  pilot's own waits are most of the time it measures);
- the draw of a snapshot in which one VM and one worker changed
  (`MegatuiApp.apply_snapshot`, synchronous), and the cells it wrote.

Run: PYTHONPATH=.:tests python benchmarks/bench_fleet_ui.py [--presses N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import replace

from ui_fakes import NOW, FakeMonitor, make_app, sample_fleet_snapshot, sample_monitor

from megatui.clock import FakeClock
from megatui.model import VM, Phase, Snapshot, TartState, Worker
from megatui.ui.panels import VMPanel

PHASES = (Phase.READY, Phase.BOOTING, Phase.PULLING, Phase.SCHEDULING, Phase.STOPPED)


def fleet(vms: int = 200, workers: int = 100) -> Snapshot:
    base = sample_fleet_snapshot(NOW)
    pool = tuple(
        Worker(f"mini-{i:03}", i % 17 != 0, NOW - 5, i % 11 == 0, 2, 2, 8, 8, 16384, 24576)
        for i in range(workers)
    )
    machines = tuple(
        VM(
            f"vm-{i:03}",
            TartState.RUNNING,
            PHASES[i % len(PHASES)],
            f"10.0.{i // 250}.{i % 250}",
            0.5,
            NOW - 30,
            eta_seconds=60,
            backend="orchard",
            worker=pool[i % workers].name,
            stale=not pool[i % workers].online,
        )
        for i in range(vms)
    )
    return replace(base, vms=machines, workers=pool)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1] if len(samples) >= 20 else max(samples)


def report(label: str, times: list[float]) -> None:
    print(f"{label:24} median {statistics.median(times):6.1f} ms  p95 {p95(times):6.1f} ms")


async def baseline(presses: int) -> None:
    clock = FakeClock(NOW)
    app = make_app(sample_monitor(NOW, clock=clock), clock=clock)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        times = []
        for _ in range(presses):
            start = time.perf_counter()
            await pilot.press("down")
            await pilot.pause()
            times.append((time.perf_counter() - start) * 1000)
        report("baseline: down, 7 tart", times)


async def main(presses: int) -> None:
    await baseline(presses)
    clock = FakeClock(NOW)
    snap = fleet()
    monitor = FakeMonitor(snap, clock=clock)
    app = make_app(monitor, clock=clock)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        panel = app.query_one(VMPanel)
        for label, key, focus in (
            ("down, VM table", "down", panel.table),
            ("down, workers table", "down", panel.worker_table),
        ):
            focus.focus()
            await pilot.pause()
            times = []
            for _ in range(presses):
                start = time.perf_counter()
                await pilot.press(key)
                await pilot.pause()
                times.append((time.perf_counter() - start) * 1000)
            report(label, times)
        times = []
        for _ in range(presses // 4):
            start = time.perf_counter()
            await pilot.press("tab")
            await pilot.press("shift+tab")
            await pilot.pause()
            times.append((time.perf_counter() - start) * 1000 / 2)
        report("tab / shift+tab", times)
        draws, writes = [], []
        for i in range(presses // 4):
            vms = list(snap.vms)
            vms[i] = replace(vms[i], progress=vms[i].progress + 0.01 * (i + 1))
            pool = list(snap.workers)
            pool[i] = replace(pool[i], cpu_used=(pool[i].cpu_used + 1) % 9)
            snap = replace(snap, vms=tuple(vms), workers=tuple(pool))
            before = panel.table.cell_writes + panel.worker_table.cell_writes
            start = time.perf_counter()
            app.apply_snapshot(snap)
            draws.append((time.perf_counter() - start) * 1000)
            writes.append(panel.table.cell_writes + panel.worker_table.cell_writes - before)
            await pilot.pause()
        print(
            f"{'snapshot, 1 VM + 1 worker':24} median {statistics.median(draws):6.1f} ms  "
            f"p95 {p95(draws):6.1f} ms  cells written {max(writes)} at most"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=100)
    asyncio.run(main(parser.parse_args().presses))
