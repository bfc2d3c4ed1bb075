"""One result format for every benchmark, so one command can write docs/performance.md.

A benchmark given `--json PATH` writes one `Result`: its rows are the figures it
measured, each saying what its clock includes, the budget it is held to (if any) and
whether it was met. The renderer (`python -m benchmarks`) reads these files only; it
never parses a benchmark's printed text.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCHEMA = 1


@dataclasses.dataclass(frozen=True)
class Stats:
    n: int
    median: float
    p95: float
    max: float


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the value a fraction q of the samples do not exceed.

    Nearest-rank (not interpolated) so that a p95 is always a value that was measured.
    """
    if not values:
        raise ValueError("no samples")
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def summarize(values: Sequence[float]) -> Stats:
    return Stats(
        n=len(values),
        median=statistics.median(values),
        p95=percentile(values, 0.95),
        max=max(values),
    )


@dataclasses.dataclass
class Row:
    """One figure. `budget` is the limit in `unit` held against `judged` (median/p95/max/value)."""

    section: str
    measure: str
    unit: str  # "ms", "s", "MB", "%", "count", "ratio", ...
    clock: str  # what the figure includes: process start? imports? first network call?
    n: int | None = None
    median: float | None = None
    p95: float | None = None
    max: float | None = None
    value: float | None = None  # a single figure (a count, a peak, a ratio)
    budget: float | None = None
    judged: str | None = None  # which of median/p95/max/value the budget applies to
    alternative: str | None = None  # for comparisons: what a user would run instead
    note: str | None = None
    #: for comparison rows: this row's judged figure (median if unset) over megatui's
    ratio: float | None = None

    @classmethod
    def from_samples(
        cls,
        section: str,
        measure: str,
        unit: str,
        clock: str,
        samples: Sequence[float],
        **extra: Any,
    ) -> Row:
        s = summarize(samples)
        return cls(
            section=section,
            measure=measure,
            unit=unit,
            clock=clock,
            n=s.n,
            median=s.median,
            p95=s.p95,
            max=s.max,
            **extra,
        )

    @property
    def met(self) -> bool | None:
        if self.budget is None or self.judged is None:
            return None
        figure = getattr(self, self.judged)
        return None if figure is None else bool(figure <= self.budget)


@dataclasses.dataclass
class Result:
    bench: str  # the module name without "bench_"
    title: str
    command: str  # the exact command that produced it
    rows: list[Row] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)
    #: when and at which load the benchmark's process began (this module is imported
    #: at its start), not when the Result object was built
    started: str = dataclasses.field(default_factory=lambda: _STARTED)
    commit: str = dataclasses.field(default_factory=lambda: _commit())
    cpus: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 0)
    load_start: float = dataclasses.field(default_factory=lambda: _LOAD_AT_START)
    load_end: float | None = None
    finished: str | None = None  # set by write(), like load_end
    seconds: float | None = None  # the process's run time up to write()

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def write(self, path: str | Path) -> None:
        self.load_end = os.getloadavg()[0]
        self.finished = _now()
        self.seconds = round(time.monotonic() - _T0, 1)
        doc = dataclasses.asdict(self)
        doc["schema"] = SCHEMA
        for row, raw in zip(self.rows, doc["rows"], strict=True):
            raw["met"] = row.met
        Path(path).write_text(json.dumps(doc, indent=1) + "\n")


def read(path: str | Path) -> Result:
    doc = json.loads(Path(path).read_text())
    doc.pop("schema", None)
    fields = {f.name for f in dataclasses.fields(Row)}
    # Unknown keys are dropped so that an older reader can render a newer file.
    rows = [Row(**{k: v for k, v in raw.items() if k in fields}) for raw in doc.pop("rows")]
    known = {f.name for f in dataclasses.fields(Result)}
    return Result(rows=rows, **{k: v for k, v in doc.items() if k in known})


def command_line(module: str, argv: Sequence[str] | None = None) -> str:
    """The command that reproduces this run: `python -m MODULE ARGS` without `--json`."""
    args = list(sys.argv[1:] if argv is None else argv)
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--json":
            skip = True
        elif not arg.startswith("--json="):
            kept.append(arg)
    return shlex.join(["python", "-m", module, *kept])


def write_if_asked(result: Result, path: str | None) -> None:
    """Write `result` to `path` when the benchmark was given `--json PATH`."""
    if path:
        result.write(path)
        print(f"results written to {path}")


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", metavar="PATH", help="write the results as JSON (benchmarks/results.py)"
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


_STARTED = _now()
_T0 = time.monotonic()
_LOAD_AT_START = os.getloadavg()[0]


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    if out.returncode != 0:
        return ""
    # Uncommitted changes to the measured code make the commit alone misleading.
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "megatui"],
        capture_output=True,
        text=True,
        timeout=5,
        cwd=Path(__file__).parent,
    ).stdout.strip()
    return out.stdout.strip() + ("+uncommitted megatui/ changes" if dirty else "")
