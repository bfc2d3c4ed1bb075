"""Cold starts of the headless commands, from exec to exit (not a test).

Each command runs as a new process, `python -m megatui ...` (the console script's entry
point), timed from just before the subprocess is created to its exit (stdout read
from a pipe). Nothing is warmed between runs except the OS page cache, as for a script
calling megatui in a loop.

* `megatui --version`                                   budget <= 0.15 s (median)
* `megatui status --json` on the lab (settled DemoLab)   budget <= 0.6 s (median)
* `megatui --host ... status --json` through a real OpenSSH sshd on loopback with the
  demo lab behind it (as bench_remote)                  budget <= 1.0 s (median)

and, as a note, `python -X importtime`'s top 10 cumulative imports of `status --json`.
The TUI's first paint from exec is bench_keys' (a pseudo-terminal), not this one's.

    PYTHONPATH=.:tests python -m benchmarks.bench_coldstart [--runs 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from benchmarks.lab import REPO_PATH, VMS, SettledLab, megatui_argv
from benchmarks.results import Result, Row, add_json_argument, command_line, write_if_asked

CLOCK = "a new process: exec -> exit ({}), median of the runs"


def timed_runs(
    argv: Sequence[str], env: Mapping[str, str], runs: int, check_json: bool = False
) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        out = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=120)
        times.append(time.perf_counter() - started)
        if out.returncode != 0:
            raise SystemExit(f"{' '.join(argv[2:])}: exit {out.returncode}: {out.stderr.strip()}")
        if check_json and not out.stdout.lstrip().startswith("{"):
            raise SystemExit(f"{' '.join(argv[2:])}: no JSON on stdout")
    return times


def import_top(argv: Sequence[str], env: Mapping[str, str], top: int = 10) -> list[str]:
    """The `top` imports with the largest cumulative time under `python -X importtime`."""
    out = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows: list[tuple[int, str]] = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _self, cumulative, name = line.removeprefix("import time:").split("|", 2)
        rows.append((int(cumulative), name.strip()))
    rows.sort(reverse=True)
    return [f"{name} {us / 1e6:.3f} s" for us, name in rows[:top]]


def lab_runs(root: Path, runs: int) -> tuple[list[float], list[float], list[str]]:
    lab = SettledLab(root / "lab", VMS)
    lab.start()
    try:
        env = lab.process_env()
        base = megatui_argv(lab.config_path)
        version = timed_runs([sys.executable, "-m", "megatui", "--version"], env, runs)
        status_argv = [*base, "status", "--json", "--timeout", "30"]
        timed_runs(status_argv, env, 1)  # the first run learns the VM's host key
        status = timed_runs(status_argv, env, runs, check_json=True)
        top = import_top(status_argv, env)
    finally:
        lab.stop()
    return version, status, top


def remote_runs(root: Path, runs: int) -> list[float]:
    from benchmarks.bench_remote import Host  # needs tests/ on the path (sshd_fixtures)

    host = Host(root / "remote")
    try:
        env = dict(host.env)
        env["PYTHONPATH"] = REPO_PATH
        argv = [*megatui_argv(host.config)[:3], "--host", host.spec, "--config", str(host.config)]
        argv += ["status", "--json", "--timeout", "30"]
        timed_runs(argv, env, 1)
        return timed_runs(argv, env, runs, check_json=True)
    finally:
        host.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--no-remote", action="store_true", help="skip the --host figure")
    add_json_argument(parser)
    args = parser.parse_args()
    result = Result(
        bench="coldstart",
        title="Cold starts of the headless commands",
        command=command_line("benchmarks.bench_coldstart"),
    )
    with tempfile.TemporaryDirectory(prefix="mt-bench-cold-") as tmp:
        root = Path(tmp)
        os.environ["MEGATUI_DATA_DIR"] = str(root / "data")
        os.environ["MEGATUI_STATE_DIR"] = str(root / "state")
        version, status, top = lab_runs(root, args.runs)
        remote = None if args.no_remote else remote_runs(root, args.runs)
    section = "exec -> exit, `python -m megatui` (the console script's entry point)"
    result.add(
        Row.from_samples(
            section,
            "megatui --version",
            "s",
            CLOCK.format("interpreter start, the CLI's imports, the version line"),
            version,
            budget=0.15,
            judged="median",
        )
    )
    result.add(
        Row.from_samples(
            section,
            "megatui status --json on the lab (settled DemoLab, 2 VMs: 1 ready)",
            "s",
            CLOCK.format(
                "interpreter start, imports, every source's first round: tart list, the SSH "
                "probe of the running VM, the Kubernetes and Docker APIs on loopback"
            ),
            status,
            budget=0.6,
            judged="median",
        )
    )
    if remote is not None:
        result.add(
            Row.from_samples(
                section,
                "megatui --host ... status --json (real OpenSSH sshd on loopback, demo lab)",
                "s",
                CLOCK.format(
                    "interpreter start, imports, SSH connect and login, host-side setup, "
                    "every source's first round through the connection"
                ),
                remote,
                budget=1.0,
                judged="median",
            )
        )
    result.notes.append(
        "`python -X importtime -m megatui status --json`, top 10 cumulative: "
        + "; ".join(f"`{line}`" for line in top)
    )
    for row in result.rows:
        print(f"{row.measure}: median {row.median:.3f} s, p95 {row.p95:.3f} s (n={row.n})")
    print("importtime top 10 cumulative:\n  " + "\n  ".join(top))
    write_if_asked(result, args.json)


if __name__ == "__main__":
    main()
