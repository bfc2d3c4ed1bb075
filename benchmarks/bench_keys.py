"""Keys, honestly (issue #14 item 2) and the TUI's cold start from exec (not a test).

The real `megatui` command runs in a pseudo-terminal, exec'd as a user starts it
(TERM=xterm-256color, the window size set on the pty before exec), on the live demo
lab in a separate process: 50 tart VMs (a few running with their SSH servers, the rest
stopped), the fake Kubernetes API server with 2,000 pods in the Argo CD namespace, the
fake Docker API. So the real Textual driver and its input parser read the key bytes,
and the real monitor runs its sources on the app's loop while keys are timed.

A key is timed from the write of its bytes to the pty until the terminal output
settles: the last output byte before QUIET seconds with no output. That clock includes
the input parser (a lone escape byte is delivered only once Textual's input thread has
waited ~100 ms for a following byte: a user feels that), the app's handling, the repaint and its
encoding, and the pty. The header ages every second (the app's 1 s timer), so keys are
pressed in bursts just after a tick has settled, and a sample whose window reaches the
next expected tick is discarded and counted ("tick-overlapped"), not timed.
Snapshots: the lab changes N pods on its API server (restart counts); the clock runs
from the end of that change on the server to the output settling, so it includes the
watch delivery, the source, the monitor's publishing and the repaint.

Cold start: from just before fork+exec of `megatui` to the first output that shows the
main screen's panel titles (first paint), and to the first moment all four tables show
rows (all panels populated). See MARKERS below for exactly what marks each.

Run: python -m benchmarks.bench_keys [--sizes 160x48,80x24] [--samples N] [--quiet MS]
     [--cold-runs N] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from benchmarks.pty_terminal import Terminal, terminal, visible_text
from benchmarks.results import Result, Row, add_json_argument

ROOT = Path(__file__).resolve().parent.parent
VMS = 50
RUNNING_VMS = 4  # each running lab VM is a process with its own SSH server
PODS = 2000  # in the Argo CD namespace, the seven Argo CD pods included
ARGOCD_PODS = 7
KEY_BUDGET_MS = 50.0
SNAPSHOT5_BUDGET_MS = 30.0
FIRST_PAINT_BUDGET_S = 0.8
POPULATED_BUDGET_S = 1.5
TICK = 1.0  # the app's age timer (MegatuiApp.tick)
#: Cold starts run at this size whatever --sizes says: every panel's first rows fit on it.
COLD_SIZE = (160, 48)
BOOKMARK_INTERVAL = 60.0

# Key bytes as an xterm sends them.
KEYS: dict[str, bytes] = {
    "up": b"\x1b[A",
    "down": b"\x1b[B",
    "pageup": b"\x1b[5~",
    "pagedown": b"\x1b[6~",
    "tab": b"\t",
    "shift+tab": b"\x1b[Z",
    "escape": b"\x1b",
    "enter": b"\r",
    "slash": b"/",
    "backspace": b"\x7f",
}

#: What marks the cold-start moments, in the output's text (escape sequences removed).
#: First paint: the main screen's panel titles ("1 VMs" ... are its border titles, drawn
#: in its first frame whatever the data). Populated: a row of each table.
FIRST_PAINT_MARKERS = {"VMs title": r"1 VMs", "ArgoCD title": r"3 ArgoCD"}
#: A name followed by its next cell (a node name alone also shows in the Docker line).
POPULATED_MARKERS = {
    "VM row": r"bench-vm-00 +\S",
    "node row": r"kind-control-plane +Ready",
    "pod row": r"argocd-application-controller-0 +1/1",
    "Application row": r"kustomize-guestbook +Synced",
}
#: The header's "updated HH:MM:SS (N s ago)": redrawn by every tick and every snapshot,
#: so a key whose output holds it had background output inside its window.
HEADER_AGE = re.compile(r"\(\d+ s ago\)")


# --- the lab, in its own process ------------------------------------------------------


def lab_child(root: Path, vms: int, running: int, pods: int) -> int:
    """`--lab-child`: run the demo lab until stdin closes; obey `change N` lines."""
    from megatui.lab.demo import DemoLab
    from megatui.lab.tartlab import LabVMSpec

    specs = tuple(
        LabVMSpec(
            f"bench-vm-{i:02d}",
            initial="running" if i < running else "stopped",
            ip_after=0.2,
            port_after=0.4,
            login_after=0.6,
            os="linux",
        )
        for i in range(vms)
    )
    lab = DemoLab(
        root,
        specs,
        extra_pods=pods - ARGOCD_PODS,
        animate=False,
        # The lab's default (5 s, to exercise bookmarks in tests) publishes a snapshot
        # about every second over its four watches; a real apiserver sends about one a
        # minute per watch.
        bookmark_interval=BOOKMARK_INTERVAL,
    )
    stopping = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise SystemExit(0)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        lab.start()
        print(json.dumps({"config": str(lab.config_path), "env": lab.environ()}), flush=True)
        for line in sys.stdin:
            words = line.split()
            if words[:1] == ["change"]:
                start, end = lab.call(_change_pods(lab.cluster, int(words[1])))
                print(f"changed {start:.6f} {end:.6f}", flush=True)
    finally:
        lab.stop()
    return 0


async def _change_pods(cluster: Any, count: int) -> tuple[float, float]:
    """Bump the restart count of the first `count` load pods by name: a RESTARTS cell
    changes in the rows shown first (the seven Argo CD pods sort before them).

    Returns (start, end) of the change, taken on the lab's loop: the watches send
    nothing in between (the change does not yield), and they send at once after it,
    before the thread that asked may even get the CPU back on a loaded machine."""
    from megatui.lab.kube_api import PODS as POD_RESOURCE

    start = time.monotonic()
    names = [
        obj["metadata"]["name"]
        for obj in cluster.store.objects(POD_RESOURCE, "argocd")
        if obj["metadata"]["name"].startswith("load-")
    ]
    for i in range(count):
        pod = json.loads(json.dumps(cluster.pod(names[i % len(names)])))
        for status in pod["status"].get("containerStatuses", []):
            status["restartCount"] = status.get("restartCount", 0) + 1
        cluster.set_object(POD_RESOURCE, pod)
    return start, time.monotonic()


class Lab:
    """The lab child process: started in its own session, ended on every path."""

    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.bench_keys",
                "--lab-child",
                str(root),
            ],
            cwd=ROOT,
            env=_python_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a Ctrl-C of the benchmark is handled by us, not it
        )
        assert self.proc.stdout is not None and self.proc.stdin is not None
        self._in: IO[str] = self.proc.stdin
        self._out: IO[str] = self.proc.stdout
        line = self._readline(120.0)
        info = json.loads(line)
        self.config = Path(info["config"])
        self.env: dict[str, str] = info["env"]

    def _readline(self, timeout: float) -> str:
        ready, _, _ = select.select([self._out], [], [], timeout)
        line = self._out.readline() if ready else ""
        if not line:
            raise RuntimeError("the lab did not answer (see its output above)")
        return line

    def change(self, count: int, term: Terminal | None = None) -> tuple[float, float]:
        """Change `count` pods on the API server: (start, end) on the monotonic clock.
        `term` is read meanwhile, so that its output is timed as it comes."""
        self._in.write(f"change {count}\n")
        self._in.flush()
        deadline = time.monotonic() + 30.0
        while term is not None and time.monotonic() < deadline:
            lab_fd = self._out.fileno()
            ready, _, _ = select.select([lab_fd, term.fd], [], [], deadline - time.monotonic())
            if lab_fd in ready:
                break
            term.pump(0)
        words = self._readline(max(0.0, deadline - time.monotonic())).split()
        return float(words[1]), float(words[2])

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._in.close()  # the lab stops its VMs and servers when stdin closes
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        with contextlib.suppress(OSError):
            self._out.close()


def _python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    return env


# --- megatui in a pseudo-terminal -----------------------------------------------------

#: --profile: megatui runs under cProfile, its statistics written here on exit.
PROFILE: Path | None = None
#: --escdelay: Textual's wait for a byte after a lone escape, in ms (None: its default).
ESCDELAY: int | None = None


def megatui_command() -> list[str]:
    if PROFILE is not None:
        return [sys.executable, "-m", "cProfile", "-o", str(PROFILE), "-m", "megatui"]
    script = Path(sys.executable).parent / "megatui"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "megatui"]


def megatui_terminal(
    config: Path, size: tuple[int, int], env: dict[str, str]
) -> contextlib.AbstractContextManager[Terminal]:
    """`megatui --config CONFIG` on a pty of `size`, as a user's terminal starts it."""
    child_env = _python_env()
    for name in ("NO_COLOR", "TEXTUAL_THEME", "TEXTUAL_ANIMATIONS", "COLUMNS", "LINES"):
        child_env.pop(name, None)
    child_env.update(env)
    child_env["TERM"] = "xterm-256color"
    child_env.pop("ESCDELAY", None)
    if ESCDELAY is not None:
        child_env["ESCDELAY"] = str(ESCDELAY)
    child_env.setdefault("LANG", "C.UTF-8")
    return terminal([*megatui_command(), "--config", str(config)], size, child_env)


# --- timing keys ----------------------------------------------------------------------


@dataclass
class Samples:
    """Per class: times in ms, and the presses that were not timed (and why)."""

    ms: dict[str, list[float]] = field(default_factory=dict)
    overlapped: dict[str, int] = field(default_factory=dict)
    silent: dict[str, int] = field(default_factory=dict)
    #: snapshots: output before the change was complete (not ours), and samples kept
    #: although a tick fell inside them (dropping them would drop the slowest)
    early: dict[str, int] = field(default_factory=dict)
    with_tick: dict[str, int] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def _seen(self, cls: str) -> None:
        if cls not in self.order:
            self.order.append(cls)

    def add(self, cls: str, seconds: float) -> None:
        self._seen(cls)
        self.ms.setdefault(cls, []).append(seconds * 1000)

    def skip(self, cls: str, why: dict[str, int]) -> None:
        self._seen(cls)
        why[cls] = why.get(cls, 0) + 1


class Session:
    """One megatui on a pty of one size, on the shared lab, with keys timed in bursts
    just after the header's once-a-second tick."""

    #: Keys are pressed only while this much of the tick period is left.
    BURST = 0.6

    def __init__(self, term: Terminal, lab: Lab, quiet: float, samples: Samples) -> None:
        self.term, self.lab, self.quiet, self.samples = term, lab, quiet, samples
        self.tick_at = 0.0  # first output byte of the last tick seen

    def sync_tick(self) -> None:
        """Wait for the next tick (output with no key pressed) and for it to settle. On a
        screen that shows nothing ticking, give up after 1.5 periods and go on."""
        self.term.settle(self.quiet)
        if self.term.pump(1.5 * TICK):
            self.tick_at = self.term.last_output()
            self.term.settle(self.quiet)
        else:
            self.tick_at = time.monotonic()

    def _ready(self) -> None:
        """Settled, and early enough in the tick period for a key's window."""
        self.term.settle(self.quiet)
        if time.monotonic() > self.tick_at + self.BURST:
            self.sync_tick()

    def press(self, key: str, cls: str | None, *, new_screen: bool = False) -> None:
        """Press `key`; time it into class `cls` (None: an untimed setup key).
        `new_screen`: the key changes screens, so the header's age shows in its own
        output, and only the tick's expected time tells whether one overlapped."""
        self._ready()
        data = KEYS.get(key, key.encode())
        since = len(self.term.output)
        start = self.term.write(data)
        self._time(cls, start, since, new_screen=new_screen)

    def snapshot(self, count: int, cls: str) -> None:
        """Change `count` pods on the lab's API server and time it to the repaint."""
        self.sync_tick()  # the change itself takes a while on the server (500 pods)
        since = len(self.term.output)
        chunks = len(self.term.chunks)
        _begin, changed = self.lab.change(count, self.term)
        # The terminal was read while the lab answered, so its chunks' times are true.
        if any(at < changed for at, _ in self.term.chunks[chunks:]):
            # Output before the change was complete on the server cannot be its own
            # (the lab applies it in one step on its loop): a tart poll or similar.
            self.samples.skip(cls, self.samples.early)
            self.sync_tick()
            return
        self._time(cls, changed, since, snapshot=True)

    def _time(
        self,
        cls: str | None,
        start: float,
        since: int,
        *,
        snapshot: bool = False,
        new_screen: bool = False,
    ) -> None:
        # Wait for the first output, then for the output to settle.
        deadline = time.monotonic() + 3.0
        while len(self.term.output) == since and time.monotonic() < deadline:
            self.term.pump(deadline - time.monotonic())
        if cls is None:
            self.term.settle(self.quiet)
            return
        if len(self.term.output) == since:
            self.samples.skip(cls, self.samples.silent)
            return
        last = self.term.settle(self.quiet)
        text = visible_text(bytes(self.term.output[since:]))
        ages = HEADER_AGE.findall(text)
        # A snapshot redraws the header as "(0 s ago)"; any other age is a tick.
        background = [a for a in ages if a != "(0 s ago)"] if snapshot else ages
        if snapshot and background:
            # A long repaint reaches the next tick: kept, counted.
            self.samples.skip(cls, self.samples.with_tick)
            background = []
        if new_screen:
            # The ticks come every TICK s after the one seen (Textual's timers do not
            # drift); its work starts a little before its first output byte.
            due = self.tick_at + math.ceil((start - self.tick_at) / TICK) * TICK - 0.05
            background = [""] if due <= last else []
        if background:
            self.samples.skip(cls, self.samples.overlapped)
            self.sync_tick()
            return
        self.samples.add(cls, last - start)


#: The key blocks a session runs, by name (--only picks some).
BLOCKS = ("snapshot", "cursor", "page", "tab", "focus", "filter", "detail")


def run_keys(
    lab: Lab, size: tuple[int, int], n: int, quiet: float, blocks: tuple[str, ...] = BLOCKS
) -> Samples:
    """Every key class `n` times (cursor 3n) at `size`, on a fresh megatui."""
    samples = Samples()
    with megatui_terminal(lab.config, size, lab.env) as term:
        # At 80x24 the panels stack and scroll: only the VM table shows at first.
        term.wait_text(POPULATED_MARKERS["VM row"], 0, 60.0)
        end = time.monotonic() + 4.0  # the 2,000 pods listed, the lab's VMs settled
        while time.monotonic() < end:
            term.pump(end - time.monotonic())
        s = Session(term, lab, quiet, samples)
        s.sync_tick()
        s.press("3", None)
        if "snapshot" in blocks:
            # Down the pod table until the first load pods (the ones the lab changes) show.
            for _ in range(20):
                if "load-0000-" in term.screen.text():
                    break
                s.press("down", None)
            in_view = "load-0000-" in term.screen.text()
            samples.notes.append("changed pods in view: " + ("yes" if in_view else "no"))
            for _ in range(n):
                s.snapshot(5, "snapshot, 5 pods changed")
            for _ in range(n):
                s.snapshot(500, "snapshot, 500 pods changed")
        if "cursor" in blocks:
            for i in range(3 * n):
                s.press("down" if i % 4 < 2 else "up", "cursor (up/down)")
        if "page" in blocks:
            for i in range(n):
                s.press("pagedown" if i % 4 < 2 else "pageup", "page (pgup/pgdn)")
        if "tab" in blocks:
            for i in range(n):
                s.press("tab" if i % 2 == 0 else "shift+tab", "Tab / shift+Tab")
        if "focus" in blocks:
            for i in range(n):
                s.press("1234"[i % 4], "focus (1-4)")
        if "filter" in blocks:
            words = ("load", "argo", "0012", "serv")
            for i in range(n):
                s.press("3", None)
                s.press("slash", "/ (open filter)")
                for char in words[i % len(words)]:
                    s.press(char, "filter typing")
                s.press("escape", "escape (clear filter)")
        if "detail" in blocks:
            s.press("3", None)
            for i in range(n):
                key = "d" if i % 2 == 0 else "enter"
                s.press(key, "d / Enter (open pod detail)", new_screen=True)
                s.press("escape", "escape (back from detail)", new_screen=True)
    return samples


# --- cold start -----------------------------------------------------------------------


@dataclass
class ColdStart:
    first_paint: float
    populated: float
    tables: dict[str, float]


def cold_start(lab: Lab, size: tuple[int, int]) -> ColdStart:
    with megatui_terminal(lab.config, size, lab.env) as term:
        first = max(term.wait_text(p, 0, 30.0) for p in FIRST_PAINT_MARKERS.values())
        tables = {name: term.wait_text(p, 0, 60.0) for name, p in POPULATED_MARKERS.items()}
        return ColdStart(
            first - term.started,
            max(tables.values()) - term.started,
            {name: at - term.started for name, at in tables.items()},
        )


# --- report ---------------------------------------------------------------------------

SECTION_KEYS = "Keys on the live lab, real terminal"
SECTION_COLD = "TUI cold start from exec"


def key_clock(quiet_ms: float, snapshot: bool) -> str:
    end = (
        f"to the last output byte on the pty before {quiet_ms:g} ms without output (the gap "
        "itself not counted)"
    )
    if snapshot:
        return (
            "from the end of the change on the lab's API server (another process) " + end + "; "
            "includes the watch delivery over HTTPS, the Kubernetes source, the monitor's "
            "publishing and the repaint, on the app's loop"
        )
    return (
        "from the write of the key's bytes to the pty " + end + "; includes Textual's input "
        "parser (a lone escape is delivered after its input thread's ~100 ms wait for a "
        "following byte), the "
        "app's handling on the loop it shares with the live monitor, the repaint, its "
        "encoding and the pty"
    )


def key_rows(result: Result, size: tuple[int, int], samples: Samples, quiet: float) -> None:
    for cls in samples.order:
        values = samples.ms.get(cls, [])
        snapshot = cls.startswith("snapshot")
        budget = SNAPSHOT5_BUDGET_MS if cls == "snapshot, 5 pods changed" else KEY_BUDGET_MS
        note = (
            f"not timed: {samples.overlapped.get(cls, 0)} with a header tick or another "
            f"snapshot inside the window, {samples.silent.get(cls, 0)} with no output"
        )
        if snapshot:
            note += (
                f", {samples.early.get(cls, 0)} with other output before the change was "
                f"complete; timed although a tick repainted the header inside the window: "
                f"{samples.with_tick.get(cls, 0)}"
            )
        if "escape" in cls:
            wait = f"ESCDELAY={ESCDELAY} ms" if ESCDELAY is not None else "megatui's 25 ms"
            note += (
                f"; includes the parser's wait for a byte after a lone escape ({wait}; "
                "megatui/ui/driver.py wakes at that deadline)"
            )
        measure = f"{cls} at {size[0]}x{size[1]}"
        if not values:
            result.add(
                Row(SECTION_KEYS, measure, "ms", key_clock(quiet * 1000, snapshot), n=0, note=note)
            )
            continue
        result.add(
            Row.from_samples(
                SECTION_KEYS,
                measure,
                "ms",
                key_clock(quiet * 1000, snapshot),
                values,
                budget=budget,
                judged="p95",
                note=note,
            )
        )


def cold_rows(result: Result, runs: list[ColdStart], size: tuple[int, int]) -> None:
    where = f"megatui exec'd on a {size[0]}x{size[1]} pty, the lab already up"
    result.add(
        Row.from_samples(
            SECTION_COLD,
            "first paint",
            "s",
            "from just before fork+exec of `megatui --config …` to the output chunk in which "
            "both the '1 VMs' and '3 ArgoCD' panel titles have been written; includes the "
            f"interpreter's start and every import ({where})",
            [r.first_paint for r in runs],
            budget=FIRST_PAINT_BUDGET_S,
            judged="median",
        )
    )
    result.add(
        Row.from_samples(
            SECTION_COLD,
            "all panels populated",
            "s",
            "from just before fork+exec to the output chunk by which a row of each table has "
            "been written: 'bench-vm-00' with its phase, 'kind-control-plane  Ready', "
            "'argocd-application-controller-0  1/1', 'kustomize-guestbook  Synced'; includes "
            f"the first tart list, the Kubernetes list of 2,000 pods over HTTPS ({where})",
            [r.populated for r in runs],
            budget=POPULATED_BUDGET_S,
            judged="median",
        )
    )


def print_rows(result: Result) -> None:
    print(f"{'measure':58} {'n':>4} {'median':>9} {'p95':>9} {'max':>9} {'budget':>16}")
    for row in result.rows:
        if not row.n:
            print(f"{row.measure:58} {0:>4}   (nothing timed; {row.note})")
            continue
        assert row.median is not None and row.p95 is not None and row.max is not None
        met = {True: "ok", False: "MISSED", None: ""}[row.met]
        budget = f"{row.judged} <= {row.budget:g} {row.unit} {met}" if row.budget else ""
        print(
            f"{row.measure:58} {row.n:>4} {row.median:>9.1f} {row.p95:>9.1f} {row.max:>9.1f}"
            f" {budget:>16}"
        )
        if row.note and (" 0 with a header" not in row.note or "snapshot" in row.measure):
            print(f"    {row.note}")


def parse_size(text: str) -> tuple[int, int]:
    cols, _, rows = text.partition("x")
    return int(cols), int(rows)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # every way to stop the run goes through the same cleanup


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--lab-child", metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--vms", type=int, default=VMS, help=argparse.SUPPRESS)
    parser.add_argument("--running", type=int, default=RUNNING_VMS, help=argparse.SUPPRESS)
    parser.add_argument("--pods", type=int, default=PODS, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="160x48,80x24", help="terminal sizes, COLSxROWS,...")
    parser.add_argument("--samples", type=int, default=20, help="presses per class (cursor: 3x)")
    parser.add_argument(
        "--quiet", type=float, default=60.0, help="quiet gap that ends a repaint (ms)"
    )
    parser.add_argument("--cold-runs", type=int, default=10, help="cold starts (0: none)")
    parser.add_argument(
        "--only", default=",".join(BLOCKS), help=f"key blocks to run, of {','.join(BLOCKS)}"
    )
    parser.add_argument(
        "--escdelay", type=int, help="ESCDELAY (ms) for megatui; default: megatui's own (25 ms)"
    )
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="run megatui under cProfile and write its statistics to PATH (one size, no JSON)",
    )
    add_json_argument(parser)
    args = parser.parse_args()
    global PROFILE, ESCDELAY
    PROFILE = Path(args.profile).resolve() if args.profile else None
    ESCDELAY = args.escdelay
    blocks = tuple(b for b in args.only.split(",") if b in BLOCKS)
    if PROFILE is not None:  # profiled figures are no measurement: one size, nothing kept
        args.cold_runs, args.sizes, args.json = 0, args.sizes.split(",")[0], None
    if args.lab_child:
        return lab_child(Path(args.lab_child), args.vms, args.running, args.pods)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    quiet = args.quiet / 1000
    result = Result(
        bench="keys",
        title="Keys on a real terminal, and the TUI's cold start from exec",
        command="python -m benchmarks.bench_keys " + " ".join(sys.argv[1:]),
    )
    result.notes.append(
        f"Lab in its own process: {VMS} tart VMs ({RUNNING_VMS} running with SSH servers, the "
        f"rest stopped), {PODS:,} pods in the Argo CD namespace, 3 Applications, 4 nodes; "
        "megatui exec'd on a pty, TERM=xterm-256color."
    )
    if ESCDELAY is not None:
        result.notes.append(f"megatui ran with ESCDELAY={ESCDELAY} (Textual's default: 100 ms)")
    root = Path(tempfile.mkdtemp(prefix="mtbk-"))  # short: unix socket paths are limited
    lab: Lab | None = None
    try:
        lab = Lab(root / "lab")
        if args.cold_runs:
            runs = []
            for _ in range(args.cold_runs):
                runs.append(cold_start(lab, COLD_SIZE))
                print(
                    f"cold start: first paint {runs[-1].first_paint:.3f} s, populated "
                    f"{runs[-1].populated:.3f} s ("
                    + ", ".join(f"{k} {v:.3f}" for k, v in runs[-1].tables.items())
                    + ")",
                    flush=True,
                )
            cold_rows(result, runs, COLD_SIZE)
        for size in sizes:
            load = os.getloadavg()[0]
            samples = run_keys(lab, size, args.samples, quiet, blocks)
            key_rows(result, size, samples, quiet)
            result.notes.append(
                f"{size[0]}x{size[1]}: load average {load:.2f} -> {os.getloadavg()[0]:.2f}; "
                + "; ".join(samples.notes)
            )
            print(f"{size[0]}x{size[1]} done", flush=True)
    except KeyboardInterrupt:
        print("interrupted: megatui and the lab were stopped", file=sys.stderr)
        return 130
    finally:
        if lab is not None:
            lab.stop()
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(
        f"load average {result.load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end;"
        f" quiet gap {args.quiet:g} ms"
    )
    print_rows(result)
    if args.json:
        result.write(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
