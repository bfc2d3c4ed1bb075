"""What several benchmarks share about processes: memory read from /proc, and the
lab's fake Kubernetes API server run in a child process."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any


def rss_mb(pid: int | str = "self") -> float:
    """VmRSS of a process, in MB (NaN when /proc does not say)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def start_cluster(
    workdir: Path, *args: str, timeout: float = 300.0
) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    """`python -m megatui.lab.cluster --http --settled` in its own session; its first
    stdout line (JSON: where it listens) once it is up."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "megatui.lab.cluster", "--http", "--settled",
        "--workdir", str(workdir), *args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout)
    if not line:
        proc.kill()
        raise SystemExit("the lab server did not start")
    return proc, json.loads(line)


async def stop_cluster(proc: asyncio.subprocess.Process) -> None:
    """Close its stdin (the lab server ends then); kill its session if it lingers."""
    if proc.stdin:
        proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), 10)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
