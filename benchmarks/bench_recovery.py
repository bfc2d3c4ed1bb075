"""Recovery's cost on the served monitor: it evaluates on every snapshot.

Times one RecoveryEngine.evaluate over N managed VMs (all ready, a tenth of them
crashing and being restarted each round) plus the intents file read, as the runner
does it, and the /metrics recovery families for those VMs.

    python -m benchmarks.bench_recovery [--vms 200] [--rounds 2000] [--json PATH]

No budget of its own: it must stay far below /metrics' 50 ms and a snapshot's cost.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks import results as bench_results
from megatui import vm_intents
from megatui.clock import FakeClock
from megatui.config import RecoveryPolicy
from megatui.model import VM, Phase, TartState
from megatui.recovery import RecoveryEngine, Result
from megatui.serve.metrics import RecoveryStats, _recovery_metrics


def vm(name: str, up: bool) -> VM:
    state = TartState.RUNNING if up else TartState.STOPPED
    return VM(name, state, Phase.READY if up else Phase.STOPPED, None, 1.0, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vms", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2000)
    bench_results.add_json_argument(parser)
    args = parser.parse_args()
    result = bench_results.Result(
        bench="recovery",
        title="Recovery's cost per snapshot",
        command=bench_results.command_line("benchmarks.bench_recovery"),
    )
    clock = FakeClock()
    engine = RecoveryEngine(clock, random.Random(1))
    names = [f"vm{i:03d}" for i in range(args.vms)]
    policy = RecoveryPolicy(restart="unhealthy", max_restarts=10_000, backoff=1.0)
    policies = dict.fromkeys(names, policy)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "vm-intents.json"
        for name in names[::7]:
            vm_intents.record(name, "start", clock.now(), path)
        reader = vm_intents.Reader(path)
        times: list[float] = []
        for round_ in range(args.rounds):
            down = set(names[round_ % 10 :: 10])
            vms = [vm(n, n not in down) for n in names]
            started = time.perf_counter()
            intents = reader.load()
            plan = engine.evaluate(vms, policies, intents, readonly=False, health_interval=30.0)
            times.append(time.perf_counter() - started)
            for action in plan.actions:
                engine.begin(action, policy)
                engine.finish(action, Result.OK, "ready")
            clock.advance(5.0)
        started = time.perf_counter()
        families = list(_recovery_metrics(RecoveryStats.of(engine)))
        metrics_ms = (time.perf_counter() - started) * 1000
    times.sort()
    print(
        f"evaluate {args.vms} VMs: median {statistics.median(times) * 1e3:.3f} ms, "
        f"p99 {times[int(len(times) * 0.99)] * 1e3:.3f} ms over {args.rounds} rounds; "
        f"{sum(engine.counts.values())} actions"
    )
    print(f"recovery metrics families: {metrics_ms:.2f} ms ({len(families)} families)")
    clock = "in-process, modules imported: the intents file read plus one evaluate call"
    result.add(
        bench_results.Row.from_samples(
            "evaluate",
            f"RecoveryEngine.evaluate over {args.vms} managed VMs (a tenth restarting)",
            "ms",
            clock,
            [t * 1000 for t in times],
            note="no budget of its own: far below a snapshot's cost",
        )
    )
    result.add(
        bench_results.Row(
            "evaluate",
            f"/metrics recovery families for {args.vms} VMs",
            "ms",
            "in-process: building the families once (no HTTP, no text formatting)",
            value=metrics_ms,
        )
    )
    bench_results.write_if_asked(result, args.json)


if __name__ == "__main__":
    main()
