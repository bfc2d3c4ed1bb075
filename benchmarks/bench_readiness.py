"""Readiness budgets of the VM core, measured on the lab (not a test).

1. Detection latency: from the moment a VM's sshd starts accepting logins to the
   moment the monitor publishes `ready`. Budget: median <= 0.5 s, p95 <= 1.0 s.
   (A script that sleeps 15 s between tries needs up to 15 s.)
2. Steady state with 2 ready VMs, default pacing: tart invocations per minute
   (budget <= 10) and new SSH handshakes beyond the health checks (budget 0).

Run: python -m benchmarks.bench_readiness [--boots N] [--steady SECONDS] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._timing import phase, wait_for
from benchmarks.results import Result, Row, add_json_argument, command_line, write_if_asked
from megatui.config import load_settings
from megatui.lab.tartlab import LabVMSpec, TartLab, create_tart_lab
from megatui.model import Phase, Snapshot
from megatui.monitor import Monitor

LOGIN_AFTER = 2.5  # long enough for the lab VM's sshd to have loaded


async def detection_latency(lab: TartLab, config: Path, boots: int) -> list[float]:
    settings = load_settings(config, environ={})  # default pacing, as users get it
    monitor = Monitor(settings, sources={"tart", "ssh"})
    ready_at: dict[int, float] = {}
    boot = 0

    def on_snapshot(snap: Snapshot) -> None:
        if phase(snap, "bench") is Phase.READY and boot not in ready_at:
            ready_at[boot] = time.time()

    monitor.subscribe(on_snapshot)
    await monitor.start()
    latencies = []
    try:
        await wait_for(monitor, lambda s: phase(s, "bench") is Phase.STOPPED)
        for boot in range(1, boots + 1):
            await monitor.start_vm("bench")
            await wait_for(monitor, lambda s: phase(s, "bench") is Phase.READY)
            record = json.loads(lab.paths.run_record("bench").read_text())
            accepting = float(record["started_at"]) + LOGIN_AFTER
            latencies.append(ready_at[boot] - accepting)
            await monitor.stop_vm("bench")
            await wait_for(monitor, lambda s: phase(s, "bench") is Phase.STOPPED)
    finally:
        await monitor.stop()
    return latencies


async def steady_state(
    lab: TartLab, config: Path, seconds: float, calls_log: Path
) -> dict[str, float]:
    settings = load_settings(config, environ={})
    monitor = Monitor(settings, sources={"tart", "ssh"})
    await monitor.start()
    try:
        await wait_for(
            monitor,
            lambda s: all(phase(s, n) is Phase.READY for n in ("steady-1", "steady-2")),
        )
        # Let the boot-pace polls finish before counting the steady pace.
        await asyncio.sleep(settings.tart_poll_interval + 1)
        calls_before = len(calls_log.read_text().splitlines())
        handshakes_before = monitor.prober.handshakes
        await asyncio.sleep(seconds)
        calls = len(calls_log.read_text().splitlines()) - calls_before
        handshakes = monitor.prober.handshakes - handshakes_before
    finally:
        await monitor.stop()
    return {
        "seconds": seconds,
        "tart_calls": calls,
        "tart_calls_per_minute": calls * 60 / seconds,
        "new_handshakes": handshakes,
    }


def counting_wrapper(lab: TartLab, root: Path) -> tuple[Path, Path]:
    """A `tart` that logs each invocation, then runs the lab's."""
    log = root / "tart-calls.log"
    log.touch()
    wrapper = root / "counting-tart"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {lab.tart_path} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, log


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--boots", type=int, default=20)
    parser.add_argument("--steady", type=float, default=60.0)
    add_json_argument(parser)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="megatui-bench-"))
    os.environ["MEGATUI_DATA_DIR"] = str(root / "data")
    os.environ["MEGATUI_STATE_DIR"] = str(root / "state")

    lab = create_tart_lab(
        root / "lab",
        [
            LabVMSpec("bench", ip_after=0.5, port_after=1.0, login_after=LOGIN_AFTER, os="linux"),
            LabVMSpec(
                "steady-1",
                initial="running",
                ip_after=0.3,
                port_after=0.6,
                login_after=0.9,
                os="linux",
            ),
            LabVMSpec(
                "steady-2",
                initial="running",
                ip_after=0.3,
                port_after=0.6,
                login_after=0.9,
                os="linux",
            ),
        ],
    )
    wrapper, calls_log = counting_wrapper(lab, root)
    config = root / "megatui.toml"
    config.write_text(lab.megatui_config_toml().replace(str(lab.tart_path), str(wrapper)))
    try:
        lab.start_running()
        steady = asyncio.run(steady_state(lab, config, args.steady, calls_log))
        latencies = asyncio.run(detection_latency(lab, config, args.boots))
    finally:
        lab.stop_all()
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
    print(
        f"readiness detection latency over {len(latencies)} boots "
        "(sshd accepting logins -> monitor publishes ready):"
    )
    print(
        f"  median {statistics.median(latencies):.3f} s   p95 {p95:.3f} s   "
        f"min {latencies[0]:.3f} s   max {latencies[-1]:.3f} s   (budget: 0.5 / 1.0 s)"
    )
    print(f"steady state, 2 ready VMs, {steady['seconds']:.0f} s at default pacing:")
    print(
        f"  tart invocations: {steady['tart_calls']:.0f} "
        f"({steady['tart_calls_per_minute']:.1f}/min, budget <= 10/min)"
    )
    print(f"  new SSH handshakes: {steady['new_handshakes']:.0f} (budget 0)")
    sys.stdout.flush()
    write_if_asked(to_result(latencies, steady), args.json)


def to_result(latencies: list[float], steady: dict[str, float]) -> Result:
    result = Result(
        bench="readiness",
        title="VM readiness core (tart lab)",
        command=command_line("benchmarks.bench_readiness"),
    )
    section = "detection latency"
    clock = (
        "in-process monitor (tart + ssh sources, default pacing), modules imported: the lab "
        "VM's sshd accepting logins (its run record's start + login_after) -> the monitor "
        "publishes ready"
    )
    for judged, limit in (("median", 0.5), ("p95", 1.0)):
        result.add(
            Row.from_samples(
                section,
                f"sshd accepting logins -> ready published ({judged} budget)",
                "s",
                clock,
                latencies,
                budget=limit,
                judged=judged,
            )
        )
    section = f"steady state, 2 ready VMs, {steady['seconds']:g} s"
    result.add(
        Row(
            section,
            "tart invocations per minute",
            "count",
            "processes started by the monitor, counted by a logging tart wrapper",
            value=steady["tart_calls_per_minute"],
            budget=10,
            judged="value",
        )
    )
    result.add(
        Row(
            section,
            "new SSH handshakes (health checks use the kept connection)",
            "count",
            "the prober's handshake counter over the window",
            value=steady["new_handshakes"],
            budget=0,
            judged="value",
        )
    )
    return result


if __name__ == "__main__":
    main()
