"""`megatui serve` budgets: /metrics with 200 VMs and 5,000 pods; 20 attached viewers
(one monitor, idle CPU, phase change to every viewer); 100 SSE clients held (memory).

The server runs in a child process (`bench_serve.py --server PORT`) around a synthetic
monitor, so its CPU time and RSS are read from /proc alone. The synthetic monitor
changes one VM's phase on request (POST /bench/change) and stamps the moment in the
VM's hint, so each viewer can time its arrival on the same clock.

    python -m benchmarks.bench_serve [--viewers 20] [--sse 100] [--hold 60] [--json PATH]

Budgets (issue #13): 20 viewers, server idle CPU <= 3 % of a core, a VM phase change
reaches every viewer <= 200 ms; /metrics scrape <= 50 ms with 200 VMs and 5,000 pods;
100 SSE clients held for 10 minutes (--hold 600) with RSS growth <= 20 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

import aiohttp
from aiohttp import web

from benchmarks.results import Result, Row, add_json_argument, command_line, write_if_asked
from megatui.model import VM, Application, Event, Phase, Pod, Snapshot, SourceStatus, TartState
from megatui.serve import auth
from megatui.serve.client import RemoteMonitor, Target
from megatui.serve.server import ControlServer, Options


def big_snapshot(vms: int = 200, pods: int = 5000) -> Snapshot:
    now = time.time()
    return Snapshot(
        generated_at=now,
        host="local",
        sources={n: SourceStatus(n, True, updated_at=now) for n in ("tart", "ssh", "kubernetes")},
        vms=tuple(
            VM(
                f"vm-{i:03d}",
                TartState.RUNNING,
                Phase.READY,
                f"10.0.{i // 250}.{i % 250}",
                1.0,
                now,
            )
            for i in range(vms)
        ),
        pods=tuple(
            Pod(
                f"app-{i % 250:03d}-7d9f8c6b5-{i:05d}"[:40],
                f"ns-{i % 10}",
                "1/1",
                "Running",
                str(i % 4),
                "worker",
                now,
                running_ready=True,
            )
            for i in range(pods)
        ),
        applications=tuple(
            Application(f"app-{i}", "argocd", "default", "Synced", "Healthy", "", "")
            for i in range(50)
        ),
    )


class SyntheticMonitor:
    """Enough of MonitorAPI for the server: a snapshot, a timeline, subscribers."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.events: list[Event] = []
        self._subscribers: list[Callable[[Snapshot], None]] = []

    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def retry_in(self, source: str) -> float | None:
        return None

    def change(self) -> None:
        stamp = time.time()
        vm = self.snapshot.vms[0]
        phase = Phase.STOPPING if vm.phase is Phase.READY else Phase.READY
        vms = (replace(vm, phase=phase, hint=repr(stamp)), *self.snapshot.vms[1:])
        self.snapshot = replace(self.snapshot, vms=vms, generated_at=stamp)
        self.events.append(Event(stamp, "vm", vm.name, f"→ {phase}"))
        del self.events[:-500]
        for callback in list(self._subscribers):
            callback(self.snapshot)


async def run_server(port: int, vms: int, pods: int) -> None:
    monitor = SyntheticMonitor(big_snapshot(vms, pods))
    server = ControlServer(monitor, Options(), auth.Policy(token=None))  # type: ignore[arg-type]
    app = server.make_app()

    async def change(_request: web.Request) -> web.Response:
        monitor.change()
        return web.Response(text="ok")

    app.router.add_post("/bench/change", change)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


def proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def metrics_scrape(vms: int, pods: int, runs: int = 30) -> list[float]:
    monitor = SyntheticMonitor(big_snapshot(vms, pods))
    server = ControlServer(monitor, Options(), auth.Policy(token=None))  # type: ignore[arg-type]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        body = server.metrics.exposition()
        times.append(time.perf_counter() - started)
    lines = body.count(b"\n")
    print(f"  exposition: {len(body) / 1024:.0f} KiB, {lines} lines")
    return times


async def viewers_bench(
    url: str, pid: int, count: int, changes: int
) -> tuple[float, list[float]]:
    viewers = [RemoteMonitor(Target.parse(url)) for _ in range(count)]
    for viewer in viewers:
        await viewer.start()
    try:
        for viewer in viewers:
            async with asyncio.timeout(60):
                await viewer.connected.wait()
        # Idle: nothing changes; the server only keeps the streams open.
        cpu0, wall0 = proc_cpu_seconds(pid), time.monotonic()
        await asyncio.sleep(10)
        idle = (proc_cpu_seconds(pid) - cpu0) / (time.monotonic() - wall0)
        print(f"  {count} viewers connected, server idle CPU: {idle * 100:.2f} % of a core")
        latencies: list[float] = []
        async with aiohttp.ClientSession(url) as session:
            for _ in range(changes):
                arrived: dict[int, float] = {}
                all_there = asyncio.Event()

                def record(
                    index: int, got: dict[int, float] = arrived, done: asyncio.Event = all_there
                ) -> None:
                    got.setdefault(index, time.time())
                    if len(got) == count:
                        done.set()

                unsubs = [v.subscribe(lambda _s, i=i: record(i)) for i, v in enumerate(viewers)]
                async with session.post("/bench/change") as reply:
                    await reply.read()
                async with asyncio.timeout(10):
                    await all_there.wait()
                for unsub in unsubs:
                    unsub()
                stamps = [float(v.snapshot.vms[0].hint or 0) for v in viewers]
                latencies.append(max(arrived[i] - stamps[i] for i in range(count)))
                await asyncio.sleep(0.2)
        latencies.sort()
        print(
            f"  phase change to the last of {count} viewers: median "
            f"{statistics.median(latencies) * 1000:.1f} ms, "
            f"max {latencies[-1] * 1000:.1f} ms over {changes} changes"
        )
        return idle, latencies
    finally:
        for viewer in viewers:
            await viewer.stop()


async def sse_hold(url: str, pid: int, count: int, hold: float) -> tuple[float, float, float]:
    async with aiohttp.ClientSession(
        url,
        timeout=aiohttp.ClientTimeout(total=None),
        connector=aiohttp.TCPConnector(limit=0),  # the clients plus the change requests
    ) as session:
        replies = [await session.get("/api/v1/events") for _ in range(count)]

        async def drain(reply: aiohttp.ClientResponse) -> None:
            async for _chunk in reply.content.iter_any():
                pass

        drains = [asyncio.create_task(drain(r)) for r in replies]
        await asyncio.sleep(2)
        start_rss = proc_rss_mb(pid)
        peak = start_rss
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:
            async with session.post("/bench/change") as reply:
                await reply.read()
            await asyncio.sleep(0.5)
            peak = max(peak, proc_rss_mb(pid))
        end_rss = proc_rss_mb(pid)
        print(
            f"  {count} SSE clients for {hold:g} s with a change every 0.5 s: RSS "
            f"{start_rss:.1f} -> {end_rss:.1f} MB "
            f"(peak {peak:.1f}, growth {end_rss - start_rss:+.1f})"
        )
        for task in drains:
            task.cancel()
        for reply in replies:
            reply.close()
    return start_rss, end_rss, peak


#: The viewers' server's snapshot (the fan-out budget is not about its size).
SMALL = ("--vms", "20", "--pods", "200")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--vms", type=int, default=200)
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--viewers", type=int, default=20)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--sse", type=int, default=100)
    parser.add_argument("--hold", type=float, default=60.0, help="seconds (the budget: 600)")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    if args.server:
        asyncio.run(run_server(args.server, args.vms, args.pods))
        return
    print(f"/metrics with {args.vms} VMs and {args.pods} pods:")
    times = sorted(metrics_scrape(args.vms, args.pods))
    print(
        f"  scrape: median {statistics.median(times) * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms"
    )
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The viewers' server carries a small snapshot: the budget is about fan-out.
    server = subprocess.Popen(
        [*(sys.executable, "-m", "benchmarks.bench_serve", "--server", str(port)), *SMALL],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        url = f"http://127.0.0.1:{port}"
        idle, latencies = asyncio.run(viewers_bench(url, server.pid, args.viewers, args.changes))
        rss = asyncio.run(sse_hold(url, server.pid, args.sse, args.hold))
    finally:
        server.terminate()
        server.wait(timeout=10)
    write_if_asked(to_result(args, times, idle, latencies, rss), args.json)


def to_result(
    args: argparse.Namespace,
    scrapes: list[float],
    idle: float,
    latencies: list[float],
    rss: tuple[float, float, float],
) -> Result:
    result = Result(
        bench="serve",
        title="The served control room (megatui serve)",
        command=command_line("benchmarks.bench_serve"),
    )
    result.add(
        Row.from_samples(
            "/metrics",
            f"/metrics exposition with {args.vms} VMs and {args.pods:,} pods",
            "ms",
            "in-process, modules imported: building the text exposition (no HTTP)",
            [t * 1000 for t in scrapes],
            budget=50,
            judged="median",
        )
    )
    section = f"{args.viewers} viewers (RemoteMonitor, what attach and browser tabs run)"
    result.add(
        Row(
            section,
            "server CPU at idle, viewers attached",
            "%",
            "the server process's CPU (from /proc) over 10 s with nothing changing, "
            "% of one core",
            value=idle * 100,
            budget=3,
            judged="value",
        )
    )
    result.add(
        Row.from_samples(
            section,
            f"a VM phase change -> the last of {args.viewers} viewers has it",
            "ms",
            "stamped by the server when it publishes the change -> the viewer's snapshot "
            "callback in this process (server fan-out, HTTP stream, JSON decode)",
            [t * 1000 for t in latencies],
            budget=200,
            judged="p95",
        )
    )
    start, end, peak = rss
    result.add(
        Row(
            f"{args.sse} SSE clients held {args.hold:g} s, a change every 0.5 s",
            "server RSS growth",
            "MB",
            f"server VmRSS from /proc: {start:.1f} -> {end:.1f} MB (peak {peak:.1f}); the "
            "budget is for 600 s (--hold 600)",
            value=end - start,
            budget=20,
            judged="value",
        )
    )
    return result


if __name__ == "__main__":
    main()
