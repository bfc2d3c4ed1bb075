"""Drill-down budgets (issue #12), measured headless (not a test).

1. Pod detail opens with its events <= 200 ms after the key: the real Monitor on the
   lab's API server (settled scenario, plain HTTP, in a child process, so that its
   heap is not this one's), the TUI headless at 160x48; from posting the `d` key on
   the crash-looping repo-server's row until
   the first frame (encoded to terminal bytes) of the detail screen showing its events
   (held by the monitor's events watch), and until the frame that also shows the Pod
   object fetched from the API.
3. Logs: a pod writing 2,000 lines/s followed for 60 s (the lab and its writer in a
   child process; `--lab-in-process` as before): keypress -> repaint p95 <= 50
   ms and RSS growth <= 50 MB (`--follow-seconds`, `--rate`).
2. Search over 10,000 lines <= 100 ms: the logs screen holding 10,000 lines (its
   buffer's limit), from submitting the search until the first match is selected;
   and the bare `search()` over the same lines.
4. The events watch adds <= 1 % idle CPU: the lab's API server (settled, bookmarks
   every 5 s) in a child process, the Monitor (kube only, no TUI) in this one; this
   process's CPU time over `--idle-seconds` of idleness after the first round, with
   the events watch and with it replaced by a task that only waits.

Run from the repo root: python -m benchmarks.bench_drill [--runs N] [--idle-seconds S]
[--follow-seconds S] [--only idle|detail|search|follow] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from textual import events
from textual._compositor import CompositorUpdate
from textual.app import App
from textual.screen import Screen

from benchmarks._proc import rss_mb
from benchmarks.results import Result, Row, add_json_argument, percentile
from megatui.config import load_settings
from megatui.lab.cluster import start_lab_cluster
from megatui.monitor import Monitor
from megatui.sources.kube_logs import LogLine, search
from megatui.ui.app import MegatuiApp
from megatui.ui.logs import LogsScreen
from megatui.ui.pod_detail import PodDetailScreen
from megatui.ui.table import KeyedTable

REPO = "argocd/argocd-repo-server-6c46b7867b-2x59w"


def pct(values: list[float], q: float) -> float:
    return percentile(values, q)


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def at_load(note: str = "") -> str:
    """A row's note with the load average (1, 5, 15 min) it was measured under."""
    return f"{note}; load {load()}" if note else f"load average {load()} (1, 5, 15 min)"


async def until(pilot: object, predicate: object, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():  # type: ignore[operator]
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.001)


class TimedApp(MegatuiApp):
    """Records when each frame reaches the terminal (encoded, as a real one would)."""

    # Times only: holding the frames' screens would keep every closed detail screen
    # alive and make the full GC pauses grow with each open (an artefact of the bench).
    frames: list[float]
    cpu: dict[float, float]  # frame time -> this process's CPU time then

    def _display(self, screen: Screen[Any], renderable: RenderableType | None) -> None:
        super()._display(screen, renderable)
        if not isinstance(renderable, CompositorUpdate) or self._batch_count:
            return
        renderable.render_segments(self.console)  # the headless driver skips this
        now = time.perf_counter()
        self.frames.append(now)
        self.cpu[now] = time.process_time()


async def first_frame_after(pilot: object, app: TimedApp, drawn: float) -> float:
    """When the first frame after `drawn` reached the terminal."""
    await until(pilot, lambda: bool(app.frames) and app.frames[-1] >= drawn)
    return next(t for t in app.frames if t >= drawn)


# The lab's API server in a child process. It stops when its stdin closes; a line
# "write NAMESPACE POD CONTAINER RATE" makes that container write RATE lines/s.
_LAB_CHILD = """
import asyncio, sys
from pathlib import Path
from megatui.lab.cluster import start_lab_cluster

async def write(book, namespace, pod, container, rate):
    n = 0
    while True:
        for _ in range(max(1, rate // 20)):
            book.write(namespace, pod, container, f'level=info msg="request {n}" path=/api/v1')
            n += 1
        await asyncio.sleep(0.05)

async def main() -> None:
    lab = await start_lab_cluster(tls=False, animate=False, workdir=Path(sys.argv[1]))
    print(lab.kubeconfig_path, flush=True)
    loop = asyncio.get_running_loop()
    tasks = []
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            verb, *args = line.split()
            if verb == "write":
                namespace, pod, container, rate = args
                book = lab.api.ext.logs
                tasks.append(asyncio.create_task(write(book, namespace, pod, container, int(rate))))
    finally:
        for task in tasks:
            task.cancel()
        await lab.stop()

asyncio.run(main())
"""


async def start_lab_child(work: Path) -> tuple[asyncio.subprocess.Process, str]:
    """The lab's API server (settled) in a child process; its kubeconfig path."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _LAB_CHILD,
        str(work / "kube"),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    try:
        line = await asyncio.wait_for(child.stdout.readline(), 60)
    except BaseException:
        await stop_lab_child(child)
        raise
    return child, line.decode().strip()


async def stop_lab_child(child: asyncio.subprocess.Process) -> None:
    if child.stdin is not None:
        child.stdin.close()
    try:
        await asyncio.wait_for(child.wait(), 15)
    except TimeoutError:
        child.kill()
        await child.wait()


class FullCollections:
    """Durations (ms) of the full (generation 2) GC collections while it is installed."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append((time.perf_counter() - self._start) * 1000)

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


async def bench_pod_detail(
    runs: int, collections: FullCollections
) -> tuple[list[float], list[float], list[float]]:
    """Key -> frame with events, key -> frame with the Pod object (ms of wall time),
    and this process's CPU time (ms) from the key to the frame with its events."""
    work = Path(tempfile.mkdtemp(prefix="bench-drill-"))
    child, kubeconfig = await start_lab_child(work)
    config = work / "megatui.toml"
    config.write_text(f'[kube]\nkubeconfig = "{kubeconfig}"\n')
    monitor = Monitor(load_settings(config, environ={}), sources={"kube"})
    app = TimedApp(monitor, load_settings(config, environ={}))
    app.frames = []
    app.cpu = {}
    app.animation_level = "none"
    times: list[float] = []
    with_events: list[float] = []
    cpu: list[float] = []
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            table = app.query_one("#pod-table", KeyedTable)
            await until(pilot, lambda: REPO in table.keys and monitor.drill.answered, 30)
            collections.pauses.clear()
            for _ in range(runs):
                table.focus()
                table.select_key(REPO)
                await pilot.pause()
                start, start_cpu = time.perf_counter(), time.process_time()
                app.post_message(events.Key("d", "d"))

                def ready() -> bool:
                    screen = app.screen
                    return (
                        isinstance(screen, PodDetailScreen)
                        and screen.loaded
                        and screen.obj is not None
                        and bool(monitor.pod_events("argocd", REPO.split("/")[1]))
                    )

                def mounted() -> bool:
                    return isinstance(app.screen, PodDetailScreen) and app.screen.is_mounted

                await until(pilot, mounted)  # its first draw shows the events it holds
                # The screen opens once the Pod is in when that is quick
                # (ui/object_screen.py): then its first frame has the object as well.
                came_with_it = ready()
                events_frame = await first_frame_after(pilot, app, time.perf_counter())
                if came_with_it:
                    object_frame = events_frame
                else:
                    await until(pilot, ready)
                    object_frame = await first_frame_after(pilot, app, time.perf_counter())
                with_events.append((events_frame - start) * 1000)
                cpu.append((app.cpu[events_frame] - start_cpu) * 1000)
                times.append((object_frame - start) * 1000)
                await pilot.press("escape")
                await until(pilot, lambda: not isinstance(app.screen, PodDetailScreen))
    finally:
        await stop_lab_child(child)
    return with_events, times, cpu


class _LinesMonitor:
    """Just enough MonitorAPI for a LogsScreen: hands over the lines, then follows."""

    def __init__(self, lines: list[LogLine]) -> None:
        self.lines = lines

    async def follow_pod_logs(self, *args: Any, **kwargs: Any) -> None:
        buffer, on_lines = args[3], args[4]
        for line in self.lines:
            buffer.add(line)
        on_lines(self.lines)
        await asyncio.Event().wait()


class SearchApp(App[None]):
    def __init__(self, lines: list[LogLine]) -> None:
        super().__init__()
        self.lines = lines

    def on_mount(self) -> None:
        monitor: Any = _LinesMonitor(self.lines)
        self.push_screen(LogsScreen(monitor, "argocd", "bench", ["app"]))


async def bench_search(runs: int) -> tuple[list[float], list[float]]:
    lines = [
        LogLine(f"2026-01-01T00:00:{i % 60:02d}.{i:09d}Z", f'level=info msg="request {i} served"')
        for i in range(10_000)
    ]
    lines[9_990] = LogLine(lines[9_990].stamp, 'level=fatal msg="needle in the haystack"')
    bare = []
    for _ in range(runs):
        start = time.perf_counter()
        found = search([line.text for line in lines], "NEEDLE")
        bare.append((time.perf_counter() - start) * 1000)
        assert found == [9_990]

    app = SearchApp(lines)
    screen_times: list[float] = []
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, LogsScreen))
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        await until(pilot, lambda: len(screen.view.lines) >= 10_000)
        for _ in range(runs):
            screen.needle = "needle"
            screen.view.scroll_home(animate=False, immediate=True)
            start = time.perf_counter()
            screen._find(keep=False)
            screen_times.append((time.perf_counter() - start) * 1000)
            assert screen.matches == [9_990]
    return bare, screen_times




async def bench_follow(
    seconds: float, rate: int, key: str, lab_in_process: bool
) -> tuple[list[float], float, int]:
    """A pod writing `rate` lines/s followed for `seconds`: keypress -> next frame,
    RSS growth, lines held at the end. The lab (and its writer) in a child process,
    or in this one (`lab_in_process`), sharing the TUI's event loop."""
    work = Path(tempfile.mkdtemp(prefix="bench-follow-"))
    pod, container = "argocd-server-7b67dbdff8-2xzs9", "argocd-server"
    stop = asyncio.Event()
    lab: Any = None
    child: asyncio.subprocess.Process | None = None
    if lab_in_process:
        lab = await start_lab_cluster(tls=False, animate=False, workdir=work / "kube")
        kubeconfig = str(lab.kubeconfig_path)
    else:
        child, kubeconfig = await start_lab_child(work)
    config = work / "megatui.toml"
    config.write_text(f'[kube]\nkubeconfig = "{kubeconfig}"\n')
    monitor = Monitor(load_settings(config, environ={}), sources={"kube"})
    app = TimedApp(monitor, load_settings(config, environ={}))
    app.frames = []
    app.cpu = {}

    async def writer() -> None:
        if child is not None:
            assert child.stdin is not None
            child.stdin.write(f"write argocd {pod} {container} {rate}\n".encode())
            await child.stdin.drain()
            return
        book = lab.api.ext.logs
        n = 0
        batch = max(1, rate // 20)
        while not stop.is_set():
            for _ in range(batch):
                book.write("argocd", pod, container, f'level=info msg="request {n}" path=/api/v1')
                n += 1
            await asyncio.sleep(0.05)

    latencies: list[float] = []
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: monitor.drill.answered, 15)
            app.push_screen(LogsScreen(monitor, "argocd", pod, [container]))
            await until(pilot, lambda: isinstance(app.screen, LogsScreen))
            screen = app.screen
            assert isinstance(screen, LogsScreen)
            before = rss_mb()
            task = asyncio.create_task(writer())
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                await asyncio.sleep(0.5)
                start = time.perf_counter()
                app.post_message(events.Key(key, None))
                latencies.append((await first_frame_after(pilot, app, start) - start) * 1000)
            stop.set()
            await task
            growth = rss_mb() - before
            held = len(screen.buffer.lines)
    finally:
        if lab is not None:
            await lab.stop()
        if child is not None:
            await stop_lab_child(child)
    return latencies, growth, held


class _NoEventsMonitor(Monitor):
    """The Monitor with its events watch replaced by a task that only waits."""

    async def _drill_task(self) -> None:
        await asyncio.Event().wait()


async def bench_idle_cpu(seconds: float) -> tuple[float, float]:
    """Idle CPU % of this process (the Monitor) with and without the events watch."""
    work = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    child, kubeconfig = await start_lab_child(work)
    try:
        config = work / "megatui.toml"
        config.write_text(f'[kube]\nkubeconfig = "{kubeconfig}"\n')
        out = []
        for cls in (Monitor, _NoEventsMonitor):
            monitor = cls(load_settings(config, environ={}), sources={"kube"})
            await monitor.start()
            try:
                deadline = time.monotonic() + 30
                watching = cls is Monitor
                while not (monitor.snapshot.pods and (monitor.drill.answered or not watching)):
                    if time.monotonic() > deadline:
                        raise TimeoutError("no pods from the lab")
                    await asyncio.sleep(0.1)
                await asyncio.sleep(5)  # let the first lists and their parsing settle
                assert monitor.drill.answered == watching
                cpu, wall = time.process_time(), time.monotonic()
                await asyncio.sleep(seconds)
                out.append(100 * (time.process_time() - cpu) / (time.monotonic() - wall))
            finally:
                await monitor.stop()
        return out[0], out[1]
    finally:
        await stop_lab_child(child)


DETAIL_CLOCK = (
    "from posting the `d` key on the pod's row (TUI headless 160x48, real Monitor) until "
    "the first frame after the detail screen is mounted, encoded to terminal bytes; the "
    "lab's API server runs in a child process (plain HTTP on localhost)"
)
FOLLOW_CLOCK = (
    "from posting the key to the LogsScreen until the first frame after it reached the "
    "terminal (encoded), one key every 0.5 s while the lab's pod writes lines to the "
    "follow stream; the lab's API server (and the writer) in {where}"
)


def run_detail(args: argparse.Namespace, result: Result) -> None:
    with FullCollections() as full:
        with_events, detail, cpu = asyncio.run(bench_pod_detail(args.runs, full))
    for what, values, clock in (
        ("key -> frame with its events", with_events, DETAIL_CLOCK),
        (
            "key -> frame with the Pod object from the API too",
            detail,
            DETAIL_CLOCK.replace("mounted", "mounted and its GET of the Pod answered"),
        ),
    ):
        print(
            f"pod detail, {what}, {len(values)} runs: median {statistics.median(values):.1f} "
            f"ms, p95 {pct(values, 0.95):.1f} ms, max {max(values):.1f} ms (budget 200 ms); "
            f"load {load()}"
        )
        result.add(
            Row.from_samples(
                "Pod detail", what, "ms", clock, values, budget=200.0, judged="p95", note=at_load()
            )
        )
    print(
        f"pod detail, CPU time of the TUI process from the key to the frame with its events: "
        f"median {statistics.median(cpu):.1f} ms, p95 {pct(cpu, 0.95):.1f} ms, "
        f"max {max(cpu):.1f} ms"
    )
    result.add(
        Row.from_samples(
            "Pod detail",
            "CPU time of the TUI process, key -> frame with its events",
            "ms",
            "time.process_time() of the TUI process (all threads) between posting the key "
            "and the frame with its events: the work, without the waits for a loaded CPU",
            cpu,
            note=at_load(),
        )
    )
    pauses = full.pauses or [0.0]
    print(
        f"full GC collections during the opens: {len(full.pauses)}, {sum(pauses):.0f} ms in "
        f"all, longest {max(pauses):.1f} ms, last {pauses[-1]:.1f} ms"
    )
    result.add(
        Row(
            section="Pod detail",
            measure="full (generation 2) GC collections during the opens",
            unit="count",
            clock="gc.callbacks, generation 2, from the first open to the last close",
            value=float(len(full.pauses)),
            note=at_load(
                f"{sum(pauses):.0f} ms in all, longest {max(pauses):.1f} ms, "
                f"last {pauses[-1]:.1f} ms"
            ),
        )
    )


def run_search(args: argparse.Namespace, result: Result) -> None:
    bare, screen = asyncio.run(bench_search(args.runs))
    print(
        f"search over 10,000 lines: search() median {statistics.median(bare):.2f} ms, "
        f"p95 {pct(bare, 0.95):.2f} ms; logs screen find+select median "
        f"{statistics.median(screen):.2f} ms, p95 {pct(screen, 0.95):.2f} ms (budget 100 ms); "
        f"load {load()}"
    )
    result.add(
        Row.from_samples(
            "Logs search",
            "search() over 10,000 lines",
            "ms",
            "the bare sources.kube_logs.search() call over 10,000 lines, one match",
            bare,
            budget=100.0,
            judged="p95",
            note=at_load(),
        )
    )
    result.add(
        Row.from_samples(
            "Logs search",
            "logs screen: find and select the match in 10,000 lines",
            "ms",
            "LogsScreen._find() (search, select, scroll request), no frame drawn",
            screen,
            budget=100.0,
            judged="p95",
            note=at_load(),
        )
    )


def run_follow(args: argparse.Namespace, result: Result) -> None:
    for key in ("up", "w"):
        keys, growth, held = asyncio.run(
            bench_follow(args.follow_seconds, args.rate, key, args.lab_in_process)
        )
        print(
            f"logs following {args.rate} lines/s for {args.follow_seconds:g} s: {key!r} -> frame "
            f"median {statistics.median(keys):.1f} ms, p95 {pct(keys, 0.95):.1f} ms "
            f"(budget 50 ms); RSS growth {growth:.1f} MB (budget 50 MB); {held:,} lines held; "
            f"load {load()}"
        )
        what = f"{args.rate:,} lines/s followed {args.follow_seconds:g} s"
        result.add(
            Row.from_samples(
                "Logs follow",
                f"{what}: `{key}` -> repaint",
                "ms",
                FOLLOW_CLOCK.format(
                    where="this process, sharing the TUI's event loop"
                    if args.lab_in_process
                    else "a child process"
                ),
                keys,
                budget=50.0,
                judged="p95",
                note=at_load(),
            )
        )
        result.add(
            Row(
                section="Logs follow",
                measure=f"{what} (`{key}` run): RSS growth",
                unit="MB",
                clock="VmRSS of this process (the TUI, and the lab if in process) after the "
                "screen opened, to the end",
                value=round(growth, 1),
                budget=50.0,
                judged="value",
                note=at_load(f"{held:,} lines held at the end"),
            )
        )


def run_idle(args: argparse.Namespace, result: Result) -> None:
    with_watch, without = asyncio.run(bench_idle_cpu(args.idle_seconds))
    print(
        f"idle CPU of the monitor over {args.idle_seconds:g} s: {with_watch:.2f} % with the "
        f"events watch, {without:.2f} % without: the watch adds {with_watch - without:.2f} "
        f"% (budget 1 %); load {load()}"
    )
    result.add(
        Row(
            section="Events watch",
            measure="idle CPU added by the events watch",
            unit="%",
            clock=(
                f"process CPU time of the Monitor (kube only, no TUI) over {args.idle_seconds:g}"
                " s of idleness after the first round, with the watch minus without it; the "
                "lab's API server in a child process, bookmarks every 5 s"
            ),
            value=round(with_watch - without, 3),
            budget=1.0,
            judged="value",
            note=at_load(f"{with_watch:.2f} % with the watch, {without:.2f} % without"),
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--follow-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=int, default=2000, help="log lines per second")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument(
        "--lab-in-process",
        action="store_true",
        help="logs follow: run the lab's API server and writer in this process (as before)",
    )
    parser.add_argument("--only", choices=("idle", "detail", "search", "follow"), default=None)
    add_json_argument(parser)
    args = parser.parse_args()
    result = Result(
        bench="drill",
        title="Drill-down: pod detail, logs, events watch (issue #12)",
        command="python -m benchmarks.bench_drill " + " ".join(sys.argv[1:]),
    )
    for name, run in (
        ("idle", run_idle),
        ("detail", run_detail),
        ("search", run_search),
        ("follow", run_follow),
    ):
        if args.only in (None, name):
            run(args, result)
    if args.json:
        result.write(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
