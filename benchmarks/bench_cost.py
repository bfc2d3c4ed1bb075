"""What megatui costs over time: the real TUI in a pseudo-terminal on the lab, for
N minutes, while VMs start and stop on a schedule (not a test).

The TUI is `python -m megatui --config LAB` (what users run) on a 160x48 pseudo-terminal
whose output this process reads and discards, so the app writes every frame as it
would to a terminal. The lab (settled DemoLab: fake tart with 4 Linux VMs, the Kind-like
API server, the fake Docker API) runs its servers in this process; every 30-60 s
(random) one VM is started (`tart run`) or stopped (`tart stop`).

Once a minute, from /proc:
* megatui's CPU: the TUI process's own time plus its reaped children (the `tart`
  invocations its monitor runs), as % of one core over that minute;
* the lab's CPU: this process (the lab's servers, the scheduler, the sampling) plus
  the VM runner processes alive at the sample and the reaped ones (approximate: a
  runner's time counts when it is reaped);
* megatui's RSS (VmRSS).

Budgets (issue #14): RSS growth after the first 5 minutes <= 10 % (the largest RSS
after minute 5 against the RSS at minute 5); CPU <= 2 % of a core (the median minute;
with VMs changing every 30-60 s this is not idle, so it is stricter than idle).

    PYTHONPATH=.:tests python -m benchmarks.bench_cost [--minutes 30] [--json PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks._proc import rss_mb
from benchmarks.lab import SettledLab, megatui_argv
from benchmarks.results import Result, Row, add_json_argument, command_line, write_if_asked
from megatui.lab.tartlab import LabVMSpec

COLS, ROWS = 160, 48
TICK = os.sysconf("SC_CLK_TCK")
VMS = tuple(
    LabVMSpec(
        f"cost-{i}",
        initial="running" if i < 2 else "stopped",
        ip_after=1.0,
        port_after=2.0,
        login_after=4.0,
        os="linux",
    )
    for i in range(4)
)


def proc_times(pid: int, children: bool = True) -> float:
    """CPU seconds of a process (utime + stime, and its reaped children's if asked)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        return int(fh.read().rsplit(")", 1)[1].split()[1])




class Terminal:
    """The TUI on a pseudo-terminal; its output is read (and dropped) by a thread."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        env = {**env, "TERM": "xterm-256color", "COLUMNS": str(COLS), "LINES": str(ROWS)}
        for key in ("NO_COLOR", "TEXTUAL_THEME"):
            env.pop(key, None)
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
        os.close(slave)
        self.master = master
        self.bytes = 0
        self.tail = b""
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.bytes += len(chunk)
            self.tail = (self.tail + chunk)[-4000:]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        os.close(self.master)


@dataclass
class Minute:
    minute: int
    megatui_cpu: float  # % of one core over the minute
    lab_cpu: float
    rss: float  # MB at the sample
    changes: int  # VM starts and stops during the minute


@dataclass
class Lab:
    lab: SettledLab
    rng: random.Random
    changes: list[str] = field(default_factory=list)
    runners: dict[int, tuple[float, bool]] = field(default_factory=dict)
    gone: float = 0.0

    def running(self) -> list[str]:
        assert self.lab.tart is not None
        return [s.name for s in VMS if self.lab.tart.run_pid(s.name) is not None]

    def toggle(self) -> None:
        """Start a stopped VM or stop a running one (keeping at least one running)."""
        assert self.lab.tart is not None
        running = self.running()
        stopped = [s.name for s in VMS if s.name not in running]
        if stopped and (len(running) <= 1 or self.rng.random() < 0.5):
            name = self.rng.choice(stopped)
            try:
                self.lab.tart.start(name)
            except RuntimeError as exc:  # a 30-minute run outlives one failed start
                self.changes.append(f"start {name} failed ({exc})")
                return
            self.changes.append(f"start {name}")
        else:
            name = self.rng.choice(running)
            try:
                subprocess.run(
                    [str(self.lab.tart.tart_path), "stop", name],
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                self.changes.append(f"stop {name} timed out")
                return
            self.changes.append(f"stop {name}")

    def cpu(self) -> float:
        """This process (lab servers, scheduler) and its children but the TUI's.

        A VM runner that is not this process's child takes its CPU time with it when it
        ends, which made a minute's lab CPU negative: its last reading is kept."""
        assert self.lab.tart is not None
        total = proc_times(os.getpid())
        live: dict[int, tuple[float, bool]] = {}
        for spec in VMS:
            pid = self.lab.tart.run_pid(spec.name)
            if pid:
                with contextlib.suppress(OSError):
                    live[pid] = (proc_times(pid), parent_of(pid) == os.getpid())
        for pid, (seconds, ours) in self.runners.items():
            if pid not in live and not ours:  # a child's time is in our cutime now
                self.gone += seconds
        self.runners = live
        return total + self.gone + sum(seconds for seconds, _ours in live.values())


def run(minutes: int, seed: int, root: Path) -> tuple[list[Minute], Lab, int]:
    lab = SettledLab(root / "lab", VMS)
    lab.start()
    term: Terminal | None = None
    try:
        sched = Lab(lab, random.Random(seed))
        term = Terminal(megatui_argv(lab.config_path), lab.process_env())
        samples: list[Minute] = []
        start = time.monotonic()
        next_change = start + sched.rng.uniform(30, 60)
        last_cpu = (proc_times(term.proc.pid), sched.cpu(), start, 0)
        for minute in range(1, int(minutes) + 1):
            sample_at = start + 60 * minute
            while (now := time.monotonic()) < sample_at:
                if not term.alive():
                    raise SystemExit(
                        f"megatui exited ({term.proc.returncode}): "
                        + term.tail.decode(errors="replace")[-600:]
                    )
                if now >= next_change:
                    sched.toggle()
                    next_change = time.monotonic() + sched.rng.uniform(30, 60)
                time.sleep(min(1.0, max(0.0, min(sample_at, next_change) - now)))
            ours, theirs, wall = proc_times(term.proc.pid), sched.cpu(), time.monotonic()
            seconds = wall - last_cpu[2]
            samples.append(
                Minute(
                    minute,
                    100 * (ours - last_cpu[0]) / seconds,
                    100 * (theirs - last_cpu[1]) / seconds,
                    rss_mb(term.proc.pid),
                    len(sched.changes) - last_cpu[3],
                )
            )
            last_cpu = (ours, theirs, wall, len(sched.changes))
            s = samples[-1]
            print(
                f"minute {minute:3}: megatui CPU {s.megatui_cpu:5.2f} %, lab CPU "
                f"{s.lab_cpu:5.2f} %, megatui RSS {s.rss:6.1f} MB, VM changes {s.changes}",
                flush=True,
            )
        if term.bytes < 1000:
            raise SystemExit("megatui drew nothing on its terminal: not a run of the TUI")
        return samples, sched, term.bytes
    finally:
        if term is not None:
            term.close()
        lab.stop()


def to_result(samples: list[Minute], warmup: int, changes: list[str], out_bytes: int) -> Result:
    result = Result(
        bench="cost",
        title="Cost over time: the TUI on the lab with VMs starting and stopping",
        command=command_line("benchmarks.bench_cost"),
    )
    minutes = len(samples)
    section = f"{minutes} minutes, the real TUI in a {COLS}x{ROWS} pseudo-terminal"
    base = samples[warmup - 1].rss
    later = [s.rss for s in samples[warmup:]] or [base]
    growth = 100 * (max(later) - base) / base
    result.add(
        Row(
            section,
            f"RSS growth after minute {warmup}",
            "%",
            f"megatui's VmRSS: the largest after minute {warmup} against minute {warmup}'s "
            f"({base:.1f} MB -> max {max(later):.1f}, last {samples[-1].rss:.1f} MB)",
            value=growth,
            budget=10,
            judged="value",
        )
    )
    result.add(
        Row.from_samples(
            section,
            "megatui CPU per minute",
            "%",
            "the TUI process and its reaped children (the monitor's tart calls), % of one "
            f"core per minute; {len(changes)} VM starts/stops during the run",
            [s.megatui_cpu for s in samples],
            budget=2,
            judged="median",
        )
    )
    result.add(
        Row.from_samples(
            section,
            "the lab's CPU per minute (not megatui's)",
            "%",
            "the bench process (lab servers, scheduler) and the VM runners, % of one core",
            [s.lab_cpu for s in samples],
        )
    )
    result.add(
        Row.from_samples(
            section,
            "megatui RSS, sampled each minute",
            "MB",
            "VmRSS of the TUI process",
            [s.rss for s in samples],
        )
    )
    per_minute = ", ".join(f"{s.megatui_cpu:.2f}" for s in samples)
    rss = ", ".join(f"{s.rss:.1f}" for s in samples)
    result.notes.append(f"megatui CPU % by minute: {per_minute}.")
    result.notes.append(f"megatui RSS MB by minute: {rss}.")
    result.notes.append(
        f"The TUI wrote {out_bytes / 1e6:.1f} MB to its terminal. VM changes: "
        + ", ".join(changes)
        + "."
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5, help="minutes before RSS is held flat")
    parser.add_argument("--seed", type=int, default=14)
    add_json_argument(parser)
    args = parser.parse_args()
    if args.minutes < 2:
        parser.error("--minutes must be at least 2")
    warmup = min(args.warmup, args.minutes - 1)
    if warmup != args.warmup:
        print(f"--minutes {args.minutes}: RSS growth measured after minute {warmup}")
    with tempfile.TemporaryDirectory(prefix="mt-bench-cost-") as tmp:
        root = Path(tmp)
        os.environ["MEGATUI_DATA_DIR"] = str(root / "data")
        os.environ["MEGATUI_STATE_DIR"] = str(root / "state")
        samples, sched, out_bytes = run(args.minutes, args.seed, root)
    result = to_result(samples, warmup, sched.changes, out_bytes)
    for row in result.rows:
        figure = row.value if row.value is not None else row.median
        verdict = {True: "met", False: "MISSED", None: "no budget"}[row.met]
        print(f"{row.measure}: {figure:.2f} {row.unit} ({verdict})")
    write_if_asked(result, args.json)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
