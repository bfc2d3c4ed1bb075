"""TUI budgets of the control room, measured headless (not a test).

1. On the lab (DemoLab, real Monitor from build_monitor): first paint <= 0.5 s and
   every panel populated <= 1.5 s. The clock starts just before `MegatuiApp(...)` is
   built (modules imported, lab already up: its start-up is not the app's), and
   "first paint" is the first compositor frame of the main screen: the first
   `App._display` of a `CompositorUpdate`, including its encoding to terminal bytes
   (`render_segments`, which the headless driver would otherwise skip). "Populated"
   is the first such frame drawn while the VM, node, pod and Application tables all
   hold rows.
2. Idle CPU <= 2 % of one core once settled: the app alone on a FakeMonitor whose
   snapshot never changes (50 VMs ready/stopped, 2,000 pods, real clock so the header
   ages every second), and, reported as is, the whole `megatui demo` process on a
   settled lab (app + monitor on the main thread, the lab's servers on their thread,
   the `tart` invocations as child processes).
3. With 2,000 pods, 50 VMs and 500 events: keypress-to-repaint p95 <= 50 ms (down in
   the pod and VM tables, tab, 1-4, `/` filter typing and clearing), and
   snapshot-to-repaint for a snapshot in which a few pods changed. A key is a Key
   event posted to the app, as the terminal driver does; "complete" is the last frame
   before QUIET seconds without one, "first" the first frame after the key. Measured
   at 160x48 and again at 80x24, where the panels stack in one scrolling column. A key
   that changes nothing on screen (`3` when panel 3 already has the focus) draws no
   frame and is counted as "no repaint", not timed.

Every app runs with run_app's garbage-collector settings (megatui.ui.app.tune_gc);
--default-gc keeps CPython's, for comparison. Takes about 100 s.

Run: python -m benchmarks.bench_ui [--runs N] [--idle S] [--demo-idle S] [--default-gc]
     [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import RenderableType
from textual import events
from textual._compositor import CompositorUpdate
from textual.screen import Screen

from benchmarks.lab import SettledLab
from benchmarks.results import Result, Row, add_json_argument, command_line, write_if_asked
from megatui.api import MonitorAPI
from megatui.clock import Clock, FakeClock, SystemClock
from megatui.config import Settings, load_settings
from megatui.headless import build_monitor
from megatui.lab.demo import DemoLab, _LoopThread
from megatui.lab.tartlab import LabVMSpec
from megatui.model import (
    VM,
    Application,
    ArgoSummary,
    DockerStatus,
    Event,
    KindCluster,
    KindNodeContainer,
    Node,
    Phase,
    Pod,
    Snapshot,
    SourceStatus,
    TartState,
)
from megatui.ui.app import MegatuiApp, tune_gc
from megatui.ui.table import KeyedTable

SIZE = (160, 48)
SMALL = (80, 24)
TABLES = ("vm-table", "node-table", "pod-table", "app-table")
QUIET = 0.04  # a repaint is complete once no frame follows for this long


# --- a monitor without sources ---------------------------------------------------------


class FakeMonitor:
    """MonitorAPI with no source (as tests/ui_fakes.py's): shows what it is pushed."""

    def __init__(self, snapshot: Snapshot, events: Sequence[Event] = ()) -> None:
        self._snapshot = snapshot
        self._events = tuple(events)
        self._subscribers: list[Callable[[Snapshot], None]] = []

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def events(self) -> Sequence[Event]:
        return self._events

    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def push(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        for callback in list(self._subscribers):
            callback(snapshot)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def refresh(self) -> None:
        pass

    def retry_in(self, source: str) -> float | None:
        return None

    async def start_vm(self, name: str) -> None:
        pass

    async def stop_vm(self, name: str) -> None:
        pass

    def ssh_argv(self, name: str) -> list[str]:
        return ["ssh", name]

    def log_path(self, name: str) -> str:
        return f"/tmp/{name}.log"

    async def vm_details(self, name: str) -> dict[str, object]:
        return {}

    async def read_log_tail(self, name: str, lines: int = 50) -> list[str]:
        return []


def _typecheck(monitor: FakeMonitor) -> MonitorAPI:
    return monitor  # mypy proves FakeMonitor is a MonitorAPI


# --- the instrumented app -------------------------------------------------------------


class TimedApp(MegatuiApp):
    """MegatuiApp that timestamps every frame, and when each kind of data first
    arrived from the monitor and first reached the screen."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[float] = []
        self.populated_at: float | None = None
        self.mounted_at: float | None = None
        self.apply_costs: list[float] = []
        #: table -> when the monitor first published rows for it / a frame first showed them
        self.arrived: dict[str, float] = {}
        self.painted: dict[str, float] = {}

    def _on_monitor_snapshot(self, snapshot: Snapshot) -> None:
        now = time.perf_counter()
        for table, rows in table_rows(snapshot).items():
            if rows:
                self.arrived.setdefault(table, now)
        super()._on_monitor_snapshot(snapshot)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        start = time.perf_counter()
        if self.mounted_at is None:
            self.mounted_at = start  # the first call is on_mount's
            for table, rows in table_rows(snapshot).items():
                if rows:
                    self.arrived.setdefault(table, start)
        super().apply_snapshot(snapshot)
        self.apply_costs.append(time.perf_counter() - start)

    def _display(self, screen: Screen[Any], renderable: RenderableType | None) -> None:
        super()._display(screen, renderable)
        if not isinstance(renderable, CompositorUpdate) or self._batch_count:
            return
        # The headless driver skips this; a terminal would pay for it on every frame.
        renderable.render_segments(self.console)
        end = time.perf_counter()
        self.frames.append(end)
        if self.populated_at is None and self._drawable():
            for name in TABLES:
                if self.query_one(f"#{name}", KeyedTable).row_count:
                    self.painted.setdefault(name, end)
            if len(self.painted) == len(TABLES):
                self.populated_at = end

    def cell_writes(self) -> int:
        return sum(table.cell_writes for table in self.query(KeyedTable))


def table_rows(snapshot: Snapshot) -> dict[str, int]:
    return {
        "vm-table": len(snapshot.vms),
        "node-table": len(snapshot.nodes),
        "pod-table": len(snapshot.pods),
        "app-table": len(snapshot.applications),
    }


class GCWatch:
    """Collector pauses, from gc.callbacks: (start, seconds, generation)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        now = time.perf_counter()
        if phase == "start":
            self._start = now
        else:
            self.pauses.append((self._start, now - self._start, info["generation"]))

    def between(self, start: float, end: float) -> list[float]:
        return [seconds for at, seconds, _ in self.pauses if start <= at <= end]


GC = GCWatch()
#: run_app's collector settings (megatui.ui.app.tune_gc); off with --default-gc.
TUNE_GC = True


def prepare_process() -> None:
    """What run_app does to the process before it builds the app."""
    if TUNE_GC:
        tune_gc()


def make_app(monitor: MonitorAPI, settings: Settings, clock: Clock, root: Path) -> TimedApp:
    app = TimedApp(monitor, settings, clock=clock, theme_store=root / "theme")
    app.animation_level = "none"
    return app


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.005)


async def frames_after(app: TimedApp, since: int, timeout: float = 2.0) -> tuple[float, float]:
    """(first, last) frame time after frame number `since`; last = the frame after
    which the screen stayed unchanged for QUIET seconds."""
    await wait_until(lambda: len(app.frames) > since, timeout, "a repaint")
    while True:
        count = len(app.frames)
        await asyncio.sleep(QUIET)
        if len(app.frames) == count:
            return app.frames[since], app.frames[-1]


# --- 1. first paint on the lab --------------------------------------------------------


@dataclass
class FirstPaint:
    mounted: float
    first_frame: float
    populated: float
    #: table -> (data published by the monitor, first frame showing it), from t0
    tables: dict[str, tuple[float, float]]


async def first_paint_once(config: Path, root: Path) -> FirstPaint:
    settings = load_settings(config, environ={})
    monitor = build_monitor(settings)
    prepare_process()
    t0 = time.perf_counter()
    app = make_app(monitor, settings, SystemClock(), root)
    async with app.run_test(size=SIZE):
        await wait_until(lambda: app.populated_at is not None, 15.0, "all panels populated")
    assert app.mounted_at is not None and app.populated_at is not None
    return FirstPaint(
        app.mounted_at - t0,
        app.frames[0] - t0,
        app.populated_at - t0,
        {t: (app.arrived[t] - t0, app.painted[t] - t0) for t in TABLES},
    )


def cold_import_seconds() -> tuple[float, float]:
    """(import of megatui.ui.app, whole interpreter start + that import) in a new process."""
    code = (
        "import time; t = time.perf_counter(); import megatui.ui.app; "
        "print(time.perf_counter() - t)"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout), time.perf_counter() - start


# --- 2. idle CPU ----------------------------------------------------------------------


@dataclass
class Idle:
    seconds: float
    cpu: float  # process CPU over the window
    frames: int
    cell_writes: int
    main_thread: float = 0.0
    lab_thread: float = 0.0
    children: float = 0.0
    other: dict[str, float] = field(default_factory=dict)

    def percent(self, cpu: float | None = None) -> float:
        return 100 * (self.cpu if cpu is None else cpu) / self.seconds


async def idle_fake(root: Path, seconds: float) -> Idle:
    now = time.time()
    monitor = FakeMonitor(big_snapshot(now, settled=True), big_events(now))
    prepare_process()
    app = make_app(monitor, Settings(), SystemClock(), root)
    async with app.run_test(size=SIZE):
        await wait_until(lambda: app.populated_at is not None, 15.0, "all panels populated")
        await asyncio.sleep(2.0)  # first ticks, late layout
        return await measure_idle(app, seconds)


async def measure_idle(app: TimedApp, seconds: float, lab: _LoopThread | None = None) -> Idle:
    frames, writes = len(app.frames), app.cell_writes()
    lab_before = lab.call(lab_thread_time()) if lab else 0.0
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before, main_before, wall_before = (
        time.process_time(),
        time.thread_time(),
        time.perf_counter(),
    )
    await asyncio.sleep(seconds)
    cpu, main, wall = (
        time.process_time() - cpu_before,
        time.thread_time() - main_before,
        time.perf_counter() - wall_before,
    )
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lab_cpu = lab.call(lab_thread_time()) - lab_before if lab else 0.0
    children = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    return Idle(
        wall,
        cpu,
        len(app.frames) - frames,
        app.cell_writes() - writes,
        main_thread=main,
        lab_thread=lab_cpu,
        children=children,
    )


async def lab_thread_time() -> float:
    return time.thread_time()


class SettledDemoLab(SettledLab):
    """DemoLab with the cluster started settled (no Argo CD start-up animation, no
    crash loop), so nothing in it changes on its own (benchmarks.lab.SettledLab: it
    also makes the lab's SSH key, which the config's [ssh] key names)."""


SETTLED_VMS = (
    LabVMSpec(
        "ubuntu-runner",
        initial="running",
        ip_after=0.3,
        port_after=0.6,
        login_after=0.9,
        os="linux",
    ),
    LabVMSpec("sequoia-base", initial="stopped"),
)


async def idle_demo(config: Path, root: Path, lab: SettledDemoLab, seconds: float) -> Idle:
    settings = load_settings(config, environ={})
    monitor = build_monitor(settings)
    prepare_process()
    app = make_app(monitor, settings, SystemClock(), root)
    async with app.run_test(size=SIZE):

        def settled() -> bool:
            vms = app.snapshot.vms
            return bool(vms) and all(vm.phase in (Phase.READY, Phase.STOPPED) for vm in vms)

        await wait_until(settled, 30.0, "the lab's VMs ready or stopped")
        await wait_until(lambda: app.populated_at is not None, 15.0, "all panels populated")
        # Let the boot-pace tart polls end (1 s while booting, 10 s once settled).
        await asyncio.sleep(settings.tart_boot_poll_interval + 2.0)
        assert lab._loop is not None
        return await measure_idle(app, seconds, lab._loop)


# --- 3. latency with 2,000 pods and 50 VMs --------------------------------------------

NODES = ("kind-control-plane", "kind-worker", "kind-worker2", "kind-worker3")


def big_vms(now: float, settled: bool) -> tuple[VM, ...]:
    vms = []
    for i in range(50):
        name = f"vm-{i:02d}-{'sequoia' if i % 2 else 'ubuntu'}"
        if i % 3 == 0:
            vm = VM(name, TartState.STOPPED, Phase.STOPPED, None, 0.0, now - 86400)
        elif settled or i % 10:
            vm = VM(name, TartState.RUNNING, Phase.READY, f"192.168.64.{i + 10}", 1.0, now - 3600)
        else:
            vm = VM(name, TartState.RUNNING, Phase.BOOTING, None, 0.4, now - 30, eta_seconds=90)
        vms.append(vm)
    return tuple(vms)


#: Pods already handed out, so that an unchanged pod is the same object in the next
#: snapshot, as the Kubernetes source publishes them (a watch event replaces only the
#: row it names; sources/kube_rows.py's SortedRows keeps every other row object).
_PODS: dict[tuple[object, ...], Pod] = {}


def big_pods(born: float, changed: int = 0, offset: int = 0) -> tuple[Pod, ...]:
    """2,000 pods in 20 namespaces, created an hour or more before `born`; `changed`
    of them (from `offset`) crash-looping."""
    pods = []
    for i in range(2000):
        bad = offset <= i < offset + changed
        ident = (born, i, bad, offset if bad else None)
        pod = _PODS.get(ident)
        if pod is None:
            pod = _PODS[ident] = Pod(
                f"service-{i // 100:02d}-deployment-{i:04d}-7d9b8c6f5-m2n4b",
                f"team-{i // 100:02d}",
                "0/1" if bad else "1/1",
                "CrashLoopBackOff" if bad else "Running",
                f"{3 + offset} (1m ago)" if bad else "0",
                NODES[i % len(NODES)],
                born - 3600 - 7 * i,
                component=f"service-{i // 100:02d}",
                running_ready=not bad,
            )
        pods.append(pod)
    return tuple(pods)


def big_snapshot(
    now: float, *, settled: bool, changed: int = 0, offset: int = 0, born: float | None = None
) -> Snapshot:
    """50 VMs, 4 nodes, 2,000 pods, 40 Applications at `now`; pods as in big_pods."""
    nodes = tuple(
        Node(n, "Ready", "control-plane" if "control" in n else "", "v1.31.0", now - 86400)
        for n in NODES
    )
    apps = tuple(
        Application(
            f"app-{i:02d}",
            "argocd",
            "default",
            "Synced" if i % 7 else "OutOfSync",
            "Healthy" if i % 7 else "Degraded",
            "Succeeded",
            "successfully synced (all tasks run)",
        )
        for i in range(40)
    )
    docker = DockerStatus(
        reachable=True,
        server_version="27.3.1",
        kind_network=True,
        clusters=(
            KindCluster(
                "kind",
                tuple(KindNodeContainer(n, "node", "running", "kind") for n in NODES),
            ),
        ),
    )
    return Snapshot(
        generated_at=now,
        host="admin@mac-studio.local",
        sources={
            n: SourceStatus(n, True, updated_at=now)
            for n in ("tart", "ssh", "kubernetes", "applications", "docker")
        },
        vms=big_vms(now, settled),
        nodes=nodes,
        pods=big_pods(now if born is None else born, changed, offset),
        applications=apps,
        docker=docker,
        argocd=ArgoSummary(standard_install=True, ready=7, total=7),
        kube_context="kind-kind",
    )


def big_events(now: float) -> list[Event]:
    """A full timeline (the monitor keeps 500)."""
    return [
        Event(now - 500 + i, "pod", f"service-{i % 20:02d}-deployment-{i:04d}", "Pending → Running")
        for i in range(500)
    ]


@dataclass
class Latencies:
    first: dict[str, list[float]] = field(default_factory=dict)
    complete: dict[str, list[float]] = field(default_factory=dict)
    cpu: dict[str, list[float]] = field(default_factory=dict)
    missing: int = 0

    def add(self, kind: str, first: float, complete: float, cpu: float) -> None:
        self.first.setdefault(kind, []).append(first)
        self.complete.setdefault(kind, []).append(complete)
        self.cpu.setdefault(kind, []).append(cpu)

    @staticmethod
    def all(which: dict[str, list[float]]) -> list[float]:
        return [x for values in which.values() for x in values]


#: The characters a terminal sends for the keys the benchmark presses.
CHARS = {"tab": "\t", "slash": "/", "escape": "\x1b", "backspace": "\x7f", "down": None}


async def timed(app: TimedApp, kind: str, out: Latencies, cause: Callable[[], None]) -> None:
    """Time `cause()` (a key or a snapshot arriving) to its first and last frame."""
    await settle(app)
    since = len(app.frames)
    start, cpu = time.perf_counter(), time.thread_time()
    cause()
    try:
        first, last = await frames_after(app, since)
    except TimeoutError:
        out.missing += 1
        return
    out.add(kind, first - start, last - start, time.thread_time() - cpu)


async def settle(app: TimedApp) -> None:
    """Wait until no frame has come for QUIET seconds."""
    while True:
        count = len(app.frames)
        await asyncio.sleep(QUIET)
        if len(app.frames) == count:
            return


async def press(app: TimedApp, key: str, kind: str, out: Latencies) -> None:
    """A key as the terminal driver delivers it: a Key event posted to the app. (Not
    Pilot.press, whose wait for every widget to go idle wakes them all and runs on
    the same loop, inside the measured time.)"""
    char = CHARS.get(key, key)

    def send() -> None:
        event = events.Key(key, char)
        event.set_sender(app)
        app.post_message(event)

    await timed(app, kind, out, send)


@dataclass
class LatencyRun:
    keys: Latencies
    snapshots: Latencies
    first_frame: float
    populated: float
    apply_costs: list[float]
    writes_per_update: list[int]
    #: collector pauses while the keys and snapshots were timed, and that window
    gc_pauses: list[float]
    window: float


async def latency(root: Path, downs: int, updates: int, size: tuple[int, int] = SIZE) -> LatencyRun:
    clock = FakeClock(time.time())  # the clock tick repaints nothing, only keys do
    now = clock.now()
    monitor = FakeMonitor(big_snapshot(now, settled=False), big_events(now))
    prepare_process()
    t0 = time.perf_counter()
    app = make_app(monitor, Settings(), clock, root)
    keys, snaps = Latencies(), Latencies()
    writes: list[int] = []
    async with app.run_test(size=size):
        await wait_until(lambda: app.populated_at is not None, 15.0, "all panels populated")
        assert app.populated_at is not None
        first_frame, populated = app.frames[0] - t0, app.populated_at - t0
        await asyncio.sleep(0.3)
        window_start = time.perf_counter()

        await press(app, "3", "focus (1-4)", keys)
        for _ in range(downs):
            await press(app, "down", "down (pods)", keys)
        await press(app, "1", "focus (1-4)", keys)
        for _ in range(40):
            await press(app, "down", "down (VMs)", keys)
        for _ in range(10):
            await press(app, "tab", "tab", keys)
        for word in ("deployment-19", "service-07"):
            await press(app, "3", "focus (1-4)", keys)
            await press(app, "slash", "/ (open filter)", keys)
            for char in word:
                await press(app, char, "filter typing", keys)
            for _ in range(3):
                await press(app, "backspace", "filter typing", keys)
            await press(app, "escape", "filter clear (escape)", keys)

        apply_from = len(app.apply_costs)
        for n in range(updates):
            clock.advance(1.0)
            snap = big_snapshot(clock.now(), settled=False, changed=5, offset=37 * n, born=now)
            before = app.cell_writes()
            await timed(
                app, "snapshot (5 pods changed)", snaps, functools.partial(monitor.push, snap)
            )
            writes.append(app.cell_writes() - before)
        apply_costs = app.apply_costs[apply_from:]
        window_end = time.perf_counter()
    return LatencyRun(
        keys,
        snaps,
        first_frame,
        populated,
        apply_costs,
        writes,
        GC.between(window_start, window_end),
        window_end - window_start,
    )


# --- report ---------------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def spread(values: Sequence[float]) -> str:
    return (
        f"p50 {ms(statistics.median(values)):>9} p95 {ms(pct(values, 0.95)):>9} "
        f"max {ms(max(values)):>9}"
    )


def print_latencies(lat: Latencies) -> None:
    for kind, complete in lat.complete.items():
        print(
            f"   {kind:26} n={len(complete):3} | first frame {spread(lat.first[kind])} "
            f"| complete {spread(complete)} | CPU p50 {ms(statistics.median(lat.cpu[kind]))}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3, help="first-paint runs on the lab")
    parser.add_argument("--idle", type=float, default=20.0, help="idle window, app alone (s)")
    parser.add_argument("--demo-idle", type=float, default=20.0, help="idle window, demo (s)")
    parser.add_argument("--downs", type=int, default=200, help="down presses in the pod table")
    parser.add_argument("--updates", type=int, default=30, help="snapshot updates to time")
    parser.add_argument(
        "--default-gc", action="store_true", help="keep CPython's collector settings"
    )
    add_json_argument(parser)
    args = parser.parse_args()
    global TUNE_GC
    TUNE_GC = not args.default_gc
    root = Path(tempfile.mkdtemp(prefix="megatui-bench-ui-"))
    os.environ["MEGATUI_DATA_DIR"] = str(root / "data")
    os.environ["MEGATUI_STATE_DIR"] = str(root / "state")
    started = time.perf_counter()
    load = os.getloadavg()
    try:
        import_s, cold_process_s = cold_import_seconds()

        lab = DemoLab(root / "lab")
        try:
            lab.start()  # VMs, cluster and Docker up before the clock starts
            paints = [
                asyncio.run(first_paint_once(lab.config_path, root)) for _ in range(args.runs)
            ]
        finally:
            lab.stop()

        # Its ubuntu-runner is another machine under the same name: trust-on-first-use
        # host keys are kept by VM name, so it needs a data directory of its own.
        os.environ["MEGATUI_DATA_DIR"] = str(root / "data-settled")
        settled = SettledDemoLab(root / "settled", SETTLED_VMS)
        try:
            settled.start()
            demo = asyncio.run(idle_demo(settled.config_path, root, settled, args.demo_idle))
        finally:
            settled.stop()

        alone = asyncio.run(idle_fake(root, args.idle))
        lat = asyncio.run(latency(root, args.downs, args.updates))
        # The smallest usable terminal: the panels stack and scroll there, so a focus
        # change to another panel scrolls (and repaints) the whole screen.
        small = asyncio.run(latency(root, args.downs, args.updates, SMALL))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    total = time.perf_counter() - started

    print(f"megatui TUI budgets: headless {SIZE[0]}x{SIZE[1]}, {os.cpu_count()} CPUs, ", end="")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start")
    print()
    print("1. lab (DemoLab + build_monitor; t0 = just before MegatuiApp() is built, lab up):")
    for i, paint in enumerate(paints, 1):
        print(
            f"   run {i}: on_mount {ms(paint.mounted)}, first frame {ms(paint.first_frame)}, "
            f"all panels populated {ms(paint.populated)}"
        )
        print(
            "          data published by the monitor -> first frame showing it: "
            + ", ".join(
                f"{name.removesuffix('-table')} {ms(got)} -> {ms(shown)}"
                for name, (got, shown) in paint.tables.items()
            )
        )
    print(
        f"   for scale: a new python process importing megatui.ui.app takes "
        f"{cold_process_s:.3f} s (the import {import_s:.3f} s); not in the budget"
    )
    print()
    print("2. idle CPU, after everything settled:")
    print(
        f"   app alone (FakeMonitor, unchanging snapshot: 50 VMs ready/stopped, 2,000 pods, "
        f"500 events; real clock): {alone.cpu:.3f} s in {alone.seconds:.1f} s = "
        f"{alone.percent():.2f} % of a core; {alone.frames} frames, "
        f"{alone.cell_writes} table cell writes"
    )
    print(
        f"   whole demo process (settled lab: 1 VM ready, 1 stopped, 4 nodes, settled Argo CD): "
        f"{demo.cpu:.3f} s in {demo.seconds:.1f} s = {demo.percent():.2f} %"
    )
    print(
        f"     of which main thread (app + monitor) {demo.percent(demo.main_thread):.2f} %, "
        f"lab servers' thread {demo.percent(demo.lab_thread):.2f} %; plus the tart CLI "
        f"runs (child processes) {demo.percent(demo.children):.2f} %; {demo.frames} frames"
    )
    print()
    print(
        "3. 2,000 pods, 50 VMs, 500 events (FakeMonitor): event -> first frame, and -> "
        f"complete repaint (the last frame before {QUIET * 1000:.0f} ms without one):"
    )
    print(f"   initial load: first frame {ms(lat.first_frame)}, populated {ms(lat.populated)}")
    print_latencies(lat.keys)
    print_latencies(lat.snapshots)
    print(
        f"   apply_snapshot of those updates: {spread(lat.apply_costs)}; table cells "
        f"written per update: {statistics.median(lat.writes_per_update):.0f}; "
        f"keys with no repaint: {lat.keys.missing}"
    )
    print(f"   the same at {SMALL[0]}x{SMALL[1]} (panels stacked in one scrolling column):")
    print_latencies(small.keys)
    print_latencies(small.snapshots)
    print(f"   keys with no repaint: {small.keys.missing}")
    gc_mode = "run_app's tune_gc()" if TUNE_GC else "CPython's defaults (--default-gc)"
    print(
        f"   garbage collector ({gc_mode}): {len(lat.gc_pauses)} collections, "
        f"{sum(lat.gc_pauses):.2f} s of the {lat.window:.0f} s timed, longest "
        f"{ms(max(lat.gc_pauses, default=0.0))}"
    )
    print()
    worst_first = max(p.first_frame for p in paints)
    worst_populated = max(p.populated for p in paints)
    keys_complete = Latencies.all(lat.keys.complete)
    keys_first = Latencies.all(lat.keys.first)
    downs = lat.keys.complete["down (pods)"] + lat.keys.complete["down (VMs)"]
    snaps = Latencies.all(lat.snapshots.complete)
    small_keys = Latencies.all(small.keys.complete)
    rows = [
        ("first paint on the lab, worst of runs", ms(worst_first), "<= 500 ms", worst_first, 0.5),
        (
            "all panels populated on the lab, worst of runs",
            ms(worst_populated),
            "<= 1500 ms",
            worst_populated,
            1.5,
        ),
        (
            "idle CPU, app alone (2,000 pods)",
            f"{alone.percent():.2f} %",
            "<= 2 %",
            alone.percent(),
            2.0,
        ),
        (
            "idle CPU, whole demo process (+ tart children)",
            f"{demo.percent():.2f} % (+ {demo.percent(demo.children):.2f} %)",
            "",
            0.0,
            0.0,
        ),
        (
            f"keypress -> complete repaint, p95 of all {len(keys_complete)} keys",
            ms(pct(keys_complete, 0.95)),
            "<= 50 ms",
            pct(keys_complete, 0.95),
            0.05,
        ),
        ("keypress -> first frame, p95", ms(pct(keys_first, 0.95)), "", 0.0, 0.0),
        (
            f"keypress -> complete repaint at {SMALL[0]}x{SMALL[1]}, p95 of all "
            f"{len(small_keys)} keys",
            ms(pct(small_keys, 0.95)),
            "<= 50 ms",
            pct(small_keys, 0.95),
            0.05,
        ),
        (f"down only (n={len(downs)}), complete, p95", ms(pct(downs, 0.95)), "", 0.0, 0.0),
        (
            f"snapshot (5 pods changed) -> complete repaint, p95 of {len(snaps)}",
            ms(pct(snaps, 0.95)),
            "",
            0.0,
            0.0,
        ),
    ]
    print("| measure | result | budget | |")
    print("|---|---|---|---|")
    for measure, result, budget, value, limit in rows:
        mark = ("ok" if value <= limit else "MISSED") if budget else ""
        print(f"| {measure} | {result} | {budget} | {mark} |")
    print(f"\ntotal {total:.0f} s")
    sys.stdout.flush()
    result = to_result(paints, alone, demo, lat, small, (import_s, cold_process_s))
    write_if_asked(result, args.json)


#: The keypress method of this benchmark, named on every row it produces.
KEY_CLOCK = (
    "old method (bench_keys' pty figure is the honest one): a Key event posted to the app "
    "past the terminal input parser, FakeMonitor with no source work on the loop, "
    "headless; post -> last frame before 40 ms without one (frames encoded to bytes)"
)


def to_result(
    paints: list[FirstPaint],
    alone: Idle,
    demo: Idle,
    lat: LatencyRun,
    small: LatencyRun,
    cold: tuple[float, float],
) -> Result:
    result = Result(
        bench="ui",
        title="The TUI, headless (posted keys, fake monitor)",
        command=command_line("benchmarks.bench_ui"),
    )
    section = "first paint on the lab (DemoLab + the real monitor)"
    paint_clock = (
        "in-process, modules imported, lab already up, headless: just before MegatuiApp() "
        "is built -> {}; NOT from exec (no interpreter start, no imports)"
    )
    result.add(
        Row.from_samples(
            section,
            "first paint",
            "ms",
            paint_clock.format("the first frame of the main screen, encoded to bytes"),
            [p.first_frame * 1000 for p in paints],
            budget=500,
            judged="max",
        )
    )
    result.add(
        Row.from_samples(
            section,
            "all panels populated (the first run imports the clients)",
            "ms",
            paint_clock.format("the first frame with VM, node, pod and Application rows"),
            [p.populated * 1000 for p in paints],
            budget=1500,
            judged="max",
        )
    )
    result.add(
        Row(
            section,
            "for scale: a new python importing megatui.ui.app",
            "s",
            f"subprocess start -> exit of `python -c 'import megatui.ui.app'` (the import "
            f"itself {cold[0]:.3f} s); not a budget",
            value=cold[1],
        )
    )
    section = "idle CPU once settled"
    result.add(
        Row(
            section,
            "the app alone: 2,000 pods, 50 VMs, 500 events, real clock",
            "%",
            f"process CPU over {alone.seconds:.0f} s, % of one core; FakeMonitor whose "
            "snapshot never changes",
            value=alone.percent(),
            budget=2,
            judged="value",
        )
    )
    result.add(
        Row(
            section,
            "the whole demo process on a settled lab",
            "%",
            f"process CPU over {demo.seconds:.0f} s (app + monitor on the main thread "
            f"{demo.percent(demo.main_thread):.2f} %, the lab's servers' thread "
            f"{demo.percent(demo.lab_thread):.2f} %), plus the fake tart's child processes "
            f"{demo.percent(demo.children):.2f} %",
            value=demo.percent(),
        )
    )
    for run, (cols, rows) in ((lat, SIZE), (small, SMALL)):
        section = f"keys at {cols}x{rows}: 2,000 pods, 50 VMs, 500 events (posted Key events)"
        for kind, complete in run.keys.complete.items():
            result.add(
                Row.from_samples(
                    section,
                    f"{kind} -> complete repaint (posted Key event, fake monitor)",
                    "ms",
                    KEY_CLOCK,
                    [x * 1000 for x in complete],
                    budget=50,
                    judged="p95",
                )
            )
        pooled = Latencies.all(run.keys.complete)
        result.add(
            Row.from_samples(
                section,
                "all keys pooled (the old figure; hides the slow classes)",
                "ms",
                KEY_CLOCK,
                [x * 1000 for x in pooled],
            )
        )
        snaps = Latencies.all(run.snapshots.complete)
        result.add(
            Row.from_samples(
                section,
                "snapshot with 5 pods changed -> complete repaint",
                "ms",
                "FakeMonitor.push of the snapshot -> last frame before 40 ms without one",
                [x * 1000 for x in snaps],
                note="issue #14's 30 ms budget for this is bench_keys'",
            )
        )
        if run.keys.missing:
            result.notes.append(
                f"{cols}x{rows}: {run.keys.missing} key(s) changed nothing on screen "
                "(e.g. `3` with panel 3 focused): counted, not timed."
            )
    result.add(
        Row.from_samples(
            f"keys at {SIZE[0]}x{SIZE[1]}: 2,000 pods, 50 VMs, 500 events (posted Key events)",
            "apply_snapshot of a 5-pod change",
            "ms",
            "synchronous MegatuiApp.apply_snapshot only (no frame)",
            [x * 1000 for x in lat.apply_costs],
        )
    )
    return result


if __name__ == "__main__":
    main()
