"""Run every benchmark, one at a time, then write docs/performance.md from their results.

    python -m benchmarks                  # every benchmark (bench_cost runs 30 minutes)
    python -m benchmarks --skip cost      # all but the 30-minute cost run
    python -m benchmarks --only ui kube   # just these
    python -m benchmarks --render         # only rewrite the page from stored results
    python -m benchmarks --list           # names and default arguments

Each benchmark runs as its own process, `python -m benchmarks.bench_NAME --json
benchmarks/results/NAME.json [its default args]`, from the repository root with the
tests' fixtures on the path. A benchmark that fails keeps its previous results file
(the page then shows that earlier run, with its date and commit).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import render

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

#: Each benchmark's arguments in the default run: long enough to be stable, short
#: enough that the whole run (bench_cost aside) stays near half an hour.
DEFAULT_ARGS: dict[str, list[str]] = {
    "compare": [],
    "coldstart": [],
    "readiness": ["--boots", "12", "--steady", "60"],
    "kube": [],
    "remote": ["--runs", "9", "--seconds", "30"],
    "fleet": [],
    "fleet_ui": [],
    "ui": [],
    "serve": ["--hold", "60"],
    "recovery": [],
    "cost": ["--minutes", "30"],
}


def discover() -> list[str]:
    names = [p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py")]
    return render.ordered_names(names)


def writes_json(name: str) -> bool:
    """Whether the benchmark accepts `--json` (benchmarks/results.py's format)."""
    source = (HERE / f"bench_{name}.py").read_text()
    return "add_json_argument" in source or '"--json"' in source


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "tests"), *filter(None, [env.get("PYTHONPATH")])]
    )
    # The TUI benchmarks must see the app as users do: colours on, the default theme.
    # PYTHONDONTWRITEBYTECODE (set on some CI machines) would make every start of a
    # checkout recompile megatui (~0.15 s): a pip install leaves bytecode, so cold
    # starts are measured with it (main() compiles the checkout first).
    for key in ("NO_COLOR", "TEXTUAL_THEME", "PYTHONDONTWRITEBYTECODE"):
        env.pop(key, None)
    return env


def compile_checkout() -> None:
    """Bytecode for megatui and the benchmarks, as `pip install` leaves it."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(ROOT / "megatui"), str(HERE)],
        check=True,
        env=environment(),
    )


def run_one(name: str, extra: list[str]) -> tuple[int, float]:
    out = HERE / "results" / f"{name}.json"
    partial = out.with_suffix(".json.partial")
    argv = [sys.executable, "-m", f"benchmarks.bench_{name}", "--json", str(partial)]
    argv += DEFAULT_ARGS.get(name, []) + extra
    print(f"\n=== bench_{name}: {' '.join(argv[1:])}", flush=True)
    started = time.monotonic()
    code = subprocess.run(argv, cwd=ROOT, env=environment(), check=False).returncode
    seconds = time.monotonic() - started
    if partial.exists():
        # A missed budget is a result (some benchmarks exit 1 for it); a run that wrote
        # nothing is not, and leaves the previous file in place.
        partial.replace(out)
        print(f"=== bench_{name}: exit {code} after {seconds:.0f} s, wrote {out.name}")
    else:
        print(f"=== bench_{name}: exit {code} after {seconds:.0f} s, NO RESULTS (kept the old)")
    return code, seconds


def main(argv: list[str] | None = None) -> int:
    names = discover()
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=names)
    parser.add_argument("--skip", nargs="+", metavar="NAME", choices=names, default=[])
    parser.add_argument("--render", action="store_true", help="only rewrite the page")
    parser.add_argument("--list", action="store_true", help="list the benchmarks")
    args = parser.parse_args(argv)
    if args.list:
        for name in names:
            state = "" if writes_json(name) else "  (no --json yet: not run)"
            print(f"{name:18} {' '.join(DEFAULT_ARGS.get(name, []))}{state}")
        return 0
    if not args.render:
        (HERE / "results").mkdir(exist_ok=True)
        compile_checkout()
        chosen = [n for n in (args.only or names) if n not in args.skip]
        failed: list[str] = []
        started = time.monotonic()
        for name in chosen:
            if not writes_json(name):
                print(f"\n=== bench_{name}: does not write --json yet, not run")
                continue
            code, _ = run_one(name, [])
            if code:
                failed.append(f"{name} (exit {code})")
        print(f"\nall benchmarks: {time.monotonic() - started:.0f} s")
        if failed:
            print("non-zero exits (a missed budget or a failure): " + ", ".join(failed))
    page = render.write()
    print(f"wrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
