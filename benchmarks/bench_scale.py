"""Scale that real installs reach (issue #14 item 4), and the 5-changed-pods repaint.

Each section runs in its own child process, so its memory figures are its own:

  pods5   2,000 pods, 50 VMs, 500 events: a snapshot in which 5 pods changed ->
          complete repaint (bench_ui.py's FakeMonitor and snapshots).
  apps    5,000 Argo CD Applications on the lab's fake API server (a child process,
          `python -m megatui.lab.cluster --apps 5000`): the real KubeSource's first
          list -> state (as bench_kube.py); then the TUI fed by that source: one change
          (a PUT of an Application's health) -> the frame that shows it; scrolling the
          Applications table; the process's peak RSS (TUI + source + 5,000 Applications).
  pods20k 20,000 pods in the argocd namespace, the server restarting 20 of them a
          second: the real KubeSource feeding the TUI for a while; for every snapshot
          the source published, the lag to the frame that drew it (or to the frame
          that drew a newer one, when the app coalesced it away), and peak RSS.
  vms     200 local VMs on the lab's fake tart (10 running Linux guests with real SSH
          servers, 190 stopped): `megatui status --json` from exec to exit, and keys
          in the TUI on the real Monitor (build_monitor) with its sources on the loop.

The TUI runs headless (App.run_test) and keys are Key events posted to the app, as
bench_ui.py does: no terminal, no input parser (the honest pty figures are another
benchmark's). "Complete" is the last frame before 40 ms without one, each frame
encoded to terminal bytes.

    python -m benchmarks.bench_scale [--json PATH] [--sections pods5,apps,pods20k,vms]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks import results
from benchmarks._proc import peak_rss_mb, rss_mb, start_cluster, stop_cluster
from benchmarks.bench_ui import (
    SIZE,
    FakeMonitor,
    Latencies,
    TimedApp,
    big_events,
    big_snapshot,
    make_app,
    prepare_process,
    press,
    timed,
    wait_until,
)
from megatui.clock import FakeClock, SystemClock
from megatui.config import Settings, load_settings
from megatui.model import Phase, Snapshot, SourceStatus
from megatui.ui.table import KeyedTable

SECTIONS = ("pods5", "apps", "pods20k", "vms")
NAMESPACE = "argocd"
HEADLESS = (
    "TUI headless (App.run_test, 160x48), Key events posted to the app (no pty, no "
    "input parser); each frame encoded to terminal bytes"
)


def ms(samples: Sequence[float]) -> list[float]:
    return [s * 1000 for s in samples]


# --- pods5 -----------------------------------------------------------------------------


async def pods5(root: Path, updates: int) -> list[results.Row]:
    clock = FakeClock(time.time())  # the clock tick repaints nothing, snapshots do
    now = clock.now()
    monitor = FakeMonitor(big_snapshot(now, settled=False), big_events(now))
    prepare_process()
    app = make_app(monitor, Settings(), clock, root)
    lat = Latencies()
    async with app.run_test(size=SIZE):
        await wait_until(lambda: app.populated_at is not None, 15.0, "all panels populated")
        await asyncio.sleep(0.3)
        costs = len(app.apply_costs)
        for n in range(updates):
            clock.advance(1.0)
            snap = big_snapshot(clock.now(), settled=False, changed=5, offset=37 * n, born=now)
            await timed(app, "5 pods", lat, functools.partial(monitor.push, snap))
        apply_costs = app.apply_costs[costs:]
    section = "2,000 pods: a snapshot with 5 changed pods"
    clock_text = "FakeMonitor.push (the app's subscriber posts the snapshot) -> frame; " + HEADLESS
    return [
        results.Row.from_samples(
            section,
            "snapshot -> complete repaint",
            "ms",
            clock_text,
            ms(lat.complete["5 pods"]),
            budget=30.0,
            judged="p95",
            note=f"{lat.missing} snapshots drew no frame",
        ),
        results.Row.from_samples(
            section, "snapshot -> first frame", "ms", clock_text, ms(lat.first["5 pods"])
        ),
        results.Row.from_samples(
            section,
            "apply_snapshot alone (all panels)",
            "ms",
            "MegatuiApp.apply_snapshot, Python time on the loop; no frame",
            ms(apply_costs),
        ),
    ]


# --- the lab's API server and the real KubeSource ----------------------------------------


class Feed:
    """The real KubeSource turned into snapshots for the app, as the Monitor does
    (one snapshot per change the source reports), with when each was published."""

    def __init__(self, monitor: FakeMonitor) -> None:
        from megatui.sources.kube import KubeState

        self.monitor = monitor
        self.state: KubeState | None = None
        self.event = asyncio.Event()
        self.published: list[tuple[Snapshot, float]] = []

    def __call__(self, state: Any) -> None:
        self.state = state
        self.event.set()
        snap = Snapshot(
            generated_at=time.time(),
            host="bench",
            sources={
                n: SourceStatus(n, True, updated_at=time.time())
                for n in ("kubernetes", "applications")
            },
            nodes=state.nodes,
            pods=state.pods,
            applications=state.applications,
            argocd=state.argocd,
            kube_context=state.context,
        )
        self.published.append((snap, time.perf_counter()))
        self.monitor.push(snap)

    async def until(self, predicate: Callable[[Any], bool], timeout: float = 60.0) -> float:
        async with asyncio.timeout(timeout):
            while not (self.state is not None and predicate(self.state)):
                self.event.clear()
                await self.event.wait()
        return time.perf_counter()


class ScaleApp(TimedApp):
    """TimedApp that also records which snapshot each apply drew, and when."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.applied: list[tuple[Snapshot, float]] = []
        #: Per apply: whether it left anything to repaint (a change off screen does not).
        self.dirty: list[bool] = []

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        super().apply_snapshot(snapshot)
        self.applied.append((snapshot, time.perf_counter()))
        self.dirty.append(
            any(
                w._repaint_required or w._layout_required
                for w in self.screen.walk_children(with_self=True)
            )
        )

    def frame_after(self, at: float) -> float | None:
        return next((f for f in self.frames if f >= at), None)


def empty_snapshot() -> Snapshot:
    return Snapshot(generated_at=time.time(), host="bench")


async def kube_app(root: Path, kubeconfig: str) -> tuple[ScaleApp, FakeMonitor, Feed, Any]:
    from megatui.sources.kube import KubeSource

    monitor = FakeMonitor(empty_snapshot())
    prepare_process()
    app = ScaleApp(monitor, Settings(), clock=SystemClock(), theme_store=root / "theme")
    app.animation_level = "none"
    feed = Feed(monitor)
    settings = Settings(kubeconfig=kubeconfig, kube_request_timeout=30.0)
    source = KubeSource(settings, SystemClock(), feed)
    return app, monitor, feed, source


# --- apps ------------------------------------------------------------------------------


async def apps(root: Path, count: int, changes: int, scrolls: int) -> list[results.Row]:
    import aiohttp
    import kubernetes.aio.config  # noqa: F401  (the client's import is not the data's cost)

    proc, info = await start_cluster(root / "kube", "--apps", str(count))
    total = count + 3  # the settled lab's own three
    section = f"{count:,} Argo CD Applications"
    try:
        base_rss = rss_mb()
        app, _monitor, feed, source = await kube_app(root, info["kubeconfig"])
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            started = time.perf_counter()
            task = asyncio.create_task(source.run())
            listed_at = await feed.until(lambda s: len(s.applications) == total)
            table = app.query_one("#app-table", KeyedTable)
            await wait_until(lambda: table.row_count == total, 30.0, "the Applications drawn")
            drawn_at = app.frame_after(app.applied[-1][1]) or time.perf_counter()
            await asyncio.sleep(0.5)

            url = f"{info['url']}/apis/argoproj.io/v1alpha1/namespaces/{NAMESPACE}/applications"
            name = f"load-app-{count // 2:05d}"
            key = f"{NAMESPACE}/{name}"
            # On screen, or its change draws nothing until something else repaints.
            table.focus()
            table.select_key(key)
            await asyncio.sleep(0.2)
            visible: list[float] = []
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{url}/{name}") as resp:
                    obj = await resp.json()
                for i in range(changes + 1):  # change 0 is a warm-up
                    health = "Degraded" if i % 2 == 0 else "Healthy"
                    obj["status"]["health"]["status"] = health
                    obj["metadata"].pop("resourceVersion", None)
                    t0 = time.perf_counter()
                    async with http.put(f"{url}/{name}", json=obj) as resp:
                        assert resp.status == 200, await resp.text()
                        obj = await resp.json()
                    await wait_until(
                        lambda h=health: table.get_row(key)[2].plain == h, 10.0, "the change"
                    )
                    shown = app.applied[-1][1]
                    await wait_until(lambda s=shown: app.frame_after(s) is not None, 2.0, "frame")
                    frame = app.frame_after(shown)
                    assert frame is not None
                    if i:
                        visible.append(frame - t0)
                    await asyncio.sleep(0.1)  # one change alone, past the 50 ms coalescing

            await press(app, "home", "end/home", Latencies())
            keys = Latencies()
            for _ in range(scrolls):
                await press(app, "down", "down", keys)
            for _ in range(scrolls // 4):
                await press(app, "pagedown", "pagedown", keys)
            for _ in range(scrolls // 4):
                await press(app, "pageup", "pageup", keys)
            await press(app, "end", "end/home", keys)
            await press(app, "home", "end/home", keys)
            peak = peak_rss_mb()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await stop_cluster(proc)
    scroll = Latencies.all(keys.complete)
    return [
        results.Row(
            section,
            "first list -> state",
            "s",
            "KubeSource.run() started (client imported, server up) -> the state holding "
            "every Application published; server in a child process, plain HTTP",
            value=listed_at - started,
            budget=1.5,
            judged="value",
        ),
        results.Row(
            section,
            "first list -> drawn",
            "s",
            "as above, to the first frame showing all of them in the TUI (headless)",
            value=drawn_at - started,
        ),
        results.Row.from_samples(
            section,
            "one change -> visible",
            "ms",
            "just before the PUT of one Application's health -> the first frame after "
            "the apply that shows it (server, watch, KubeSource's 50 ms coalescing, app); "
            + HEADLESS,
            ms(visible),
            budget=50.0,
            judged="p95",
        ),
        results.Row.from_samples(
            section,
            "scrolling the Applications table (down, pageup/down, end/home)",
            "ms",
            "Key event posted -> complete repaint; " + HEADLESS,
            ms(scroll),
            budget=50.0,
            judged="p95",
            note=", ".join(
                f"{k} p95 {results.percentile(ms(v), 0.95):.1f} ms"
                for k, v in keys.complete.items()
            ),
        ),
        results.Row(
            section,
            "peak RSS",
            "MB",
            "this process's ru_maxrss: Textual app + KubeSource + the data; "
            f"{base_rss:.0f} MB before the first list",
            value=peak,
            budget=300.0,
            judged="value",
        ),
    ]


# --- pods20k ---------------------------------------------------------------------------


async def pods20k(root: Path, count: int, churn: float, window: float) -> list[results.Row]:
    import kubernetes.aio.config  # noqa: F401

    proc, info = await start_cluster(root / "kube", "--pods", str(count), "--churn", str(churn))
    section = f"{count:,} pods in the argocd namespace, {churn:g} pod changes a second"
    try:
        app, _monitor, feed, source = await kube_app(root, info["kubeconfig"])
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            started = time.perf_counter()
            task = asyncio.create_task(source.run())
            listed_at = await feed.until(lambda s: len(s.pods) >= count, 120.0)
            table = app.query_one("#pod-table", KeyedTable)
            await wait_until(lambda: table.row_count >= count, 60.0, "the pods drawn")
            await asyncio.sleep(2.0)
            first = len(feed.published)
            applied_from = len(app.applied)
            cpu = time.process_time()
            await asyncio.sleep(window)
            window_cpu = time.process_time() - cpu
            await asyncio.sleep(0.5)  # the last snapshot's frame
            published = feed.published[first:]
            applied = app.applied[applied_from:]
            dirties = app.dirty[applied_from:]
            costs = app.apply_costs[applied_from:]
            peak = peak_rss_mb()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await stop_cluster(proc)
    # Each published snapshot is drawn by the first apply of it or of a newer one: at
    # the frame after that apply, or at the apply itself when what changed is off
    # screen (no frame is due: the screen already shows what it should).
    order = {id(snap): i for i, (snap, _) in enumerate(published)}
    applies = [
        (order[id(s)], at, dirty)
        for (s, at), dirty in zip(applied, dirties, strict=True)
        if id(s) in order
    ]
    lags: list[float] = []
    behind = framed = 0
    for i, (_snap, at) in enumerate(published):
        hit = next(((a, d) for j, a, d in applies if j >= i), None)
        drawn = hit and (app.frame_after(hit[0]) if hit[1] else hit[0])
        if not drawn:
            behind += 1
            continue
        framed += bool(hit and hit[1])
        lags.append(drawn - at)
    rows = [
        results.Row(
            section,
            "first list -> state",
            "s",
            "KubeSource.run() started -> the state holding every pod; server in a child "
            "process, plain HTTP",
            value=listed_at - started,
        ),
        results.Row.from_samples(
            section,
            "snapshot published -> drawn (lag)",
            "ms",
            "the source's callback publishing a snapshot -> the first frame after the "
            "apply of it or of a newer one (the app drops queued snapshots for the "
            "newest), or that apply itself when nothing on screen changed; over "
            f"{window:g} s; budget: two of the source's 50 ms coalescing windows; " + HEADLESS,
            ms(lags),
            budget=100.0,
            judged="p95",
            note=(
                f"{len(published)} snapshots published, {len(applies)} applied "
                f"({len(published) - len(applies)} coalesced), {framed} needed a frame, "
                f"{behind} never drawn; process CPU {100 * window_cpu / window:.0f} % of a core"
            ),
        ),
        results.Row.from_samples(
            section,
            f"apply_snapshot with {count:,} pods",
            "ms",
            "MegatuiApp.apply_snapshot, Python time on the loop; no frame",
            ms(costs),
        ),
        results.Row(
            section,
            "peak RSS",
            "MB",
            "this process's ru_maxrss: Textual app + KubeSource + the data (no budget "
            "in the issue for 20,000 pods; bench_kube.py --pods 20000 shows the source's share)",
            value=peak,
        ),
    ]
    return rows


# --- vms -------------------------------------------------------------------------------


def status_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        MEGATUI_DATA_DIR=str(root / "data"),
        MEGATUI_STATE_DIR=str(root / "state"),
        # No cluster and no Docker here: both fail at once (a missing file, a missing
        # socket), so the figure is the VMs' own.
        MEGATUI_KUBECONFIG=str(root / "no-kubeconfig"),
        MEGATUI_DOCKER_HOST=f"unix://{root / 'no-docker.sock'}",
    )
    return env


async def vms(root: Path, count: int, running: int, runs: int) -> list[results.Row]:
    from megatui.headless import build_monitor
    from megatui.lab.tartlab import create_tart_lab, many_vms

    lab = create_tart_lab(root / "tart", many_vms(count, running))
    config = root / "megatui.toml"
    section = f"{count} local VMs (lab's fake tart, {running} running)"
    try:
        lab.start_running(timeout=60)
        config.write_text(lab.megatui_config_toml())
        await asyncio.sleep(1.5)  # every running guest past its login_after
        env = status_env(root)
        walls: list[float] = []
        ready: list[int] = []
        for _ in range(runs):
            t0 = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "megatui", "--config", str(config), "status", "--json"),
                stdout=subprocess.PIPE,
                env=env,
            )
            stdout, _ = await asyncio.wait_for(proc.communicate(), 60)
            walls.append(time.perf_counter() - t0)
            doc = json.loads(stdout)
            if len(doc["vms"]) != count:
                raise SystemExit(f"status listed {len(doc['vms'])} VMs, not {count}")
            ready.append(sum(vm["phase"] == "ready" for vm in doc["vms"]))

        os.environ.update(status_env(root))
        settings = load_settings(config, environ=status_env(root))
        # The same command's work without the interpreter's start and the imports
        # (those are the cold-start budget's): headless.status in this process.
        from megatui import headless

        inside: list[float] = []
        for _ in range(runs):
            t0 = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                await headless.status(settings, True, 10.0)
            inside.append(time.perf_counter() - t0)
        monitor = build_monitor(settings)
        prepare_process()
        app = make_app(monitor, settings, SystemClock(), root)
        keys = Latencies()
        async with app.run_test(size=SIZE):

            def settled() -> bool:
                vms = app.snapshot.vms
                return len(vms) == count and all(
                    vm.phase in (Phase.READY, Phase.STOPPED) for vm in vms
                )

            await wait_until(settled, 60.0, "the lab's VMs ready or stopped")
            await asyncio.sleep(settings.tart_boot_poll_interval + 1.0)
            await press(app, "1", "focus (1-4)", keys)
            for _ in range(60):
                await press(app, "down", "down (VMs)", keys)
            for _ in range(8):
                await press(app, "pagedown", "page", keys)
                await press(app, "pageup", "page", keys)
            for _ in range(6):
                await press(app, "tab", "tab", keys)
            for word in ("vm-1", "vm-19"):
                await press(app, "1", "focus (1-4)", keys)
                await press(app, "slash", "/ (open filter)", keys)
                for char in word:
                    await press(app, char, "filter typing", keys)
                for _ in range(2):
                    await press(app, "backspace", "filter typing", keys)
                await press(app, "escape", "escape", keys)
            for panel in "23414":
                await press(app, panel, "focus (1-4)", keys)
    finally:
        lab.stop_all()
    return [
        results.Row.from_samples(
            section,
            "megatui status --json",
            "s",
            "exec of a new python process -> its exit (interpreter start, imports, tart "
            "list, tart ip of each running VM, an SSH login to each); no cluster, no "
            "Docker configured (they fail at once)",
            walls,
            budget=1.0,
            judged="median",
            note=f"VMs ready in its output: {sorted(set(ready))} of {running} running",
        ),
        results.Row.from_samples(
            section,
            "status --json without process start and imports",
            "s",
            "headless.status() called in a process that has imported it: build_monitor, "
            "tart list, tart ip of each running VM, an SSH login to each, the JSON",
            inside,
        ),
        *(
            results.Row.from_samples(
                section,
                f"{cls}: key -> complete repaint",
                "ms",
                "Key event posted -> complete repaint, the real Monitor on the lab with "
                "its sources on the same loop; " + HEADLESS,
                ms(samples),
                budget=50.0,
                judged="p95",
                note=f"{keys.missing} keys of all classes drew nothing",
            )
            for cls, samples in keys.complete.items()
        ),
    ]


# --- driver ----------------------------------------------------------------------------


def run_section(name: str, args: argparse.Namespace) -> list[results.Row]:
    root = Path(tempfile.mkdtemp(prefix=f"megatui-bench-scale-{name}-"))
    os.environ.setdefault("MEGATUI_DATA_DIR", str(root / "data"))
    os.environ.setdefault("MEGATUI_STATE_DIR", str(root / "state"))
    try:
        if name == "pods5":
            return asyncio.run(pods5(root, args.updates))
        if name == "apps":
            return asyncio.run(apps(root, args.apps, args.changes, args.scrolls))
        if name == "pods20k":
            return asyncio.run(pods20k(root, args.pods, args.churn, args.window))
        if name == "vms":
            return asyncio.run(vms(root, args.vms, args.running, args.runs))
        raise SystemExit(f"unknown section {name}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    results.add_json_argument(parser)
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--updates", type=int, default=60, help="pods5: snapshots timed")
    parser.add_argument("--apps", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=30, help="apps: changes timed")
    parser.add_argument("--scrolls", type=int, default=80, help="apps: down presses")
    parser.add_argument("--pods", type=int, default=20000)
    parser.add_argument("--churn", type=float, default=20.0, help="pods20k: changes a second")
    parser.add_argument("--window", type=float, default=20.0, help="pods20k: seconds watched")
    parser.add_argument("--vms", type=int, default=200)
    parser.add_argument("--running", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5, help="vms: status runs")
    parser.add_argument("--child", metavar="SECTION", help=argparse.SUPPRESS)
    parser.add_argument("--rows-out", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        rows = run_section(args.child, args)
        Path(args.rows_out).write_text(json.dumps([asdict(r) for r in rows]))
        return 0

    result = results.Result(
        bench="scale",
        title="Scale that real installs reach",
        command=results.command_line("benchmarks.bench_scale"),
    )
    passthrough = list(sys.argv[1:])
    if "--json" in passthrough:
        i = passthrough.index("--json")
        del passthrough[i : i + 2]
    passthrough = [a for a in passthrough if not a.startswith("--json=")]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sections.split(","):
            out = Path(tmp) / f"{name}.json"
            argv = [sys.executable, "-m", "benchmarks.bench_scale", "--child", name]
            subprocess.run([*argv, "--rows-out", str(out), *passthrough], check=True)
            for raw in json.loads(out.read_text()):
                result.add(results.Row(**raw))
    result.notes.append(
        "TUI figures are headless (App.run_test): Key events are posted to the app, not "
        "typed into a terminal; see each row's clock."
    )
    width = max(len(f"{r.section}: {r.measure}") for r in result.rows)
    for row in result.rows:
        figure = (
            f"p50 {row.median:.3g} p95 {row.p95:.3g} max {row.max:.3g} (n={row.n})"
            if row.n
            else f"{row.value:.3g}"
        )
        budget = f"<= {row.budget:g} {row.unit} ({row.judged})" if row.budget else ""
        mark = {True: "ok", False: "MISSED", None: ""}[row.met]
        label = f"{row.section}: {row.measure}"
        print(f"{label:<{width}}  {figure} {row.unit}  {budget} {mark}")
        if row.note:
            print(f"{'':<{width}}  {row.note}")
    results.write_if_asked(result, args.json)
    return 0 if all(r.met is not False for r in result.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
