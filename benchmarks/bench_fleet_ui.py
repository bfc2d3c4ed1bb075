"""The fleet's VMs panel under load (not a test): 200 VMs over 100 workers.

Measures, headless at 160x48:
- keypress → repaint, the way bench_ui.py measures it (its TimedApp, FakeMonitor and
  `press`): a Key event posted to the app as the terminal driver does, timed to the
  first compositor frame after it ("first", including its encoding to terminal
  bytes) and to the last frame before QUIET seconds without one ("complete"). Per
  key class: cursor (`down`) in the VM table, cursor in the workers table, `tab`.
  Budget (issue #11): p95 <= 50 ms. The load average is printed with the numbers;
- the draw of a snapshot in which one VM and one worker changed
  (`MegatuiApp.apply_snapshot`, synchronous), and the cells it wrote.

Run: PYTHONPATH=.:tests python -m benchmarks.bench_fleet_ui [--presses N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from ui_fakes import NOW, FakeMonitor, make_app, sample_fleet_snapshot

from benchmarks import bench_ui
from benchmarks.results import Result, Row, add_json_argument, command_line, write_if_asked
from megatui.clock import FakeClock
from megatui.config import Settings
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


async def keys_to_frames(presses: int) -> bench_ui.Latencies:
    """Key event → frame per key class, on 200 VMs over 100 workers."""
    with tempfile.TemporaryDirectory(prefix="megatui-bench-") as tmp:
        clock = FakeClock(NOW)  # the clock tick repaints nothing, only keys do
        app = bench_ui.make_app(bench_ui.FakeMonitor(fleet()), Settings(), clock, Path(tmp))
        keys = bench_ui.Latencies()
        async with app.run_test(size=(160, 48)):
            await bench_ui.wait_until(lambda: len(app.frames) > 0, 15.0, "the first frame")
            panel = app.query_one(VMPanel)
            await asyncio.sleep(0.3)
            load = os.getloadavg()
            for kind, focus, key in (
                ("cursor, VM table", panel.table, "down"),
                ("cursor, workers table", panel.worker_table, "down"),
                ("tab", panel.table, "tab"),
            ):
                for _ in range(presses):
                    if app.focused is not focus and key != "tab":
                        focus.focus()
                    await bench_ui.press(app, key, kind, keys)
    print(f"keypress → repaint, 200 VMs over 100 workers, 160x48 (load average {load[0]:.2f}):")
    for kind, firsts in keys.first.items():
        complete = keys.complete[kind]
        print(
            f"  {kind:24} first p95 {bench_ui.pct(firsts, 0.95) * 1000:6.1f} ms  "
            f"complete median {statistics.median(complete) * 1000:6.1f} ms  "
            f"p95 {bench_ui.pct(complete, 0.95) * 1000:6.1f} ms  "
            f"(budget p95 50 ms, n={len(complete)})"
        )
    if keys.missing:
        print(f"  keys that drew no frame: {keys.missing}")
    return keys


async def main(presses: int) -> Result:
    keys = await keys_to_frames(presses)
    clock = FakeClock(NOW)
    snap = fleet()
    monitor = FakeMonitor(snap, clock=clock)
    app = make_app(monitor, clock=clock)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        panel = app.query_one(VMPanel)
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
    return to_result(keys, draws, max(writes))


#: bench_ui's keypress method, named so on every row it produces.
KEY_CLOCK = (
    "old method (not the pty one): a Key event posted to the app past the terminal input "
    "parser, FakeMonitor with no source work on the loop, headless; from the post to "
    "the last frame before 40 ms without one (frames encoded to terminal bytes)"
)


def to_result(keys: bench_ui.Latencies, draws: list[float], writes: int) -> Result:
    result = Result(
        bench="fleet_ui",
        title="Keypress -> repaint with 200 VMs over 100 workers",
        command=command_line("benchmarks.bench_fleet_ui"),
    )
    section = "headless 160x48, 200 VMs over 100 workers"
    for kind, complete in keys.complete.items():
        result.add(
            Row.from_samples(
                section,
                f"{kind}: key -> complete repaint (posted Key event, fake monitor)",
                "ms",
                KEY_CLOCK,
                [x * 1000 for x in complete],
                budget=50,
                judged="p95",
            )
        )
        result.add(
            Row.from_samples(
                section,
                f"{kind}: key -> first frame (posted Key event, fake monitor)",
                "ms",
                "as above, to the first frame after the key",
                [x * 1000 for x in keys.first[kind]],
            )
        )
    result.add(
        Row.from_samples(
            section,
            "snapshot with 1 VM + 1 worker changed: apply_snapshot",
            "ms",
            f"synchronous MegatuiApp.apply_snapshot call only (no frame); {writes} cells "
            "written at most",
            draws,
        )
    )
    if keys.missing:
        result.notes.append(f"{keys.missing} key(s) drew no frame and are not timed.")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--presses", type=int, default=100)
    add_json_argument(parser)
    args = parser.parse_args()
    write_if_asked(asyncio.run(main(args.presses)), args.json)
