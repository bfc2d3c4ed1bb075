"""KubeSource against 5,000 pods: first list to state, one change to state, peak RSS.

The fake API server runs in a child process (`python -m megatui.lab.cluster`), so
this process's time and memory are the client's alone. Changes are made the way
any client makes them, with a PUT, and timed from just before the PUT until the
KubeSource publishes a state that shows them (so the server's work is included).

    python -m benchmarks.bench_kube [--pods 5000] [--changes 50] [--json PATH]

Budget (issue): first list <= 1.5 s, one change <= 50 ms, RSS <= 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks._proc import peak_rss_mb, rss_mb, start_cluster, stop_cluster
from benchmarks.results import Result, Row, add_json_argument, command_line, write_if_asked
from megatui.clock import SystemClock
from megatui.config import Settings
from megatui.sources.kube import KubeSource, KubeState

NAMESPACE = "argocd"








class Waiter:
    def __init__(self) -> None:
        self.state: KubeState | None = None
        self.calls = 0
        self.event = asyncio.Event()
        self.at = 0.0

    def __call__(self, state: KubeState) -> None:
        self.state = state
        self.calls += 1
        self.at = time.perf_counter()
        self.event.set()

    async def until(self, predicate: Any, timeout: float = 30.0) -> float:
        async with asyncio.timeout(timeout):
            while not (self.state is not None and predicate(self.state)):
                self.event.clear()
                await self.event.wait()
        return self.at


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def main(pods: int, changes: int, json_path: str | None = None) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="megatui-bench-kube-"))
    proc, info = await start_cluster(workdir, "--pods", str(pods), timeout=120)
    total_pods = pods + 7
    try:
        # Import the client before the baseline so the table shows what the data costs.
        import kubernetes.aio.config  # noqa: F401

        base_rss = rss_mb()
        waiter = Waiter()
        settings = Settings(kubeconfig=info["kubeconfig"], kube_request_timeout=30.0)
        source = KubeSource(settings, SystemClock(), waiter)
        started = time.perf_counter()
        cpu_started = time.process_time()
        task = asyncio.create_task(source.run())
        listed_at = await waiter.until(lambda s: len(s.pods) == total_pods)
        first_list = listed_at - started
        first_list_cpu = time.process_time() - cpu_started
        after_list_rss = rss_mb()

        base = f"{info['url']}/api/v1/namespaces/{NAMESPACE}/pods"
        latencies: list[float] = []
        async with aiohttp.ClientSession() as http:
            name = sorted(p.name for p in waiter.state.pods if p.name.startswith("load-"))[
                pods // 2
            ] if waiter.state else ""  # fmt: skip
            async with http.get(f"{base}/{name}") as resp:
                obj = await resp.json()
            # Change 0 is a warm-up, not timed: the watch may still be connecting.
            for i in range(changes + 1):
                status = obj["status"]["containerStatuses"][0]
                status["restartCount"] = 1000 + i
                obj["metadata"].pop("resourceVersion", None)
                t0 = time.perf_counter()
                async with http.put(f"{base}/{name}", json=obj) as resp:
                    assert resp.status == 200, await resp.text()
                    obj = await resp.json()
                want = str(1000 + i)
                t1 = await waiter.until(
                    lambda s, want=want: any(
                        p.name == name and p.restarts.split(" ")[0] == want for p in s.pods
                    )
                )
                if i:
                    latencies.append(max(0.0, t1 - t0))
                # Pace the changes past the 50 ms coalescing window: this measures one
                # change arriving alone, not a burst.
                await asyncio.sleep(0.06)
        peak = peak_rss_mb()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await stop_cluster(proc)

    rows = [
        ("pods", f"{total_pods}", ""),
        ("first list -> state", f"{first_list * 1000:.0f} ms", "<= 1500 ms"),
        ("  of which this process's CPU", f"{first_list_cpu * 1000:.0f} ms", ""),
        ("one change -> state p50", f"{statistics.median(latencies) * 1000:.1f} ms", "<= 50 ms"),
        ("one change -> state p95", f"{pct(latencies, 95) * 1000:.1f} ms", "<= 50 ms"),
        ("one change -> state max", f"{max(latencies) * 1000:.1f} ms", ""),
        ("RSS before first list", f"{base_rss:.0f} MB", ""),
        ("RSS after first list", f"{after_list_rss:.0f} MB", ""),
        ("peak RSS", f"{peak:.0f} MB", "<= 300 MB"),
    ]
    rows.append(("load average (1 min)", f"{os.getloadavg()[0]:.1f}", f"on {os.cpu_count()} CPUs"))
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>10}  budget")
    for label, value, budget in rows:
        print(f"{label:<{width}}  {value:>10}  {budget}")
    ok = first_list <= 1.5 and pct(latencies, 95) <= 0.05 and peak <= 300
    result = Result(
        bench="kube",
        title=f"Kubernetes source: {total_pods:,} pods",
        command=command_line("benchmarks.bench_kube"),
    )
    section = "KubeSource against the lab's fake API server (a child process, plain HTTP)"
    result.add(
        Row(
            section,
            f"first list -> state ({total_pods:,} pods)",
            "ms",
            "in-process, the Kubernetes client imported before the clock, server up: "
            "KubeSource.run() started -> a state holding every pod (request, transfer, "
            "JSON decode, rows)",
            value=first_list * 1000,
            budget=1500,
            judged="value",
        )
    )
    result.add(
        Row(
            section,
            "  of which this process's CPU",
            "ms",
            "process CPU time over the same span",
            value=first_list_cpu * 1000,
        )
    )
    result.add(
        Row.from_samples(
            section,
            "one pod change -> state",
            "ms",
            "watch open: just before an HTTP PUT of the pod (from this process) -> KubeSource "
            "publishes a state showing it (server work, watch event, decode included)",
            [x * 1000 for x in latencies],
            budget=50,
            judged="p95",
        )
    )
    result.add(
        Row(
            section,
            "peak resident memory (whole bench process)",
            "MB",
            f"ru_maxrss; {base_rss:.0f} MB with the client imported, before the list",
            value=peak,
            budget=300,
            judged="value",
        )
    )
    write_if_asked(result, json_path)
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=50)
    add_json_argument(parser)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.pods, args.changes, args.json)))
