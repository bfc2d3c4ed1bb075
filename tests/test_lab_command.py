"""`megatui lab` runs the simulated platform on its own and says how to use it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path


def test_lab_prints_how_to_point_megatui_at_it(tmp_path: Path) -> None:
    lab_dir = tmp_path / "lab"
    proc = subprocess.Popen(
        [sys.executable, "-m", "megatui", "lab", "--dir", str(lab_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Press Ctrl-C" in line:
                break
        output = "".join(lines)
        assert "megatui lab is running" in output, output + (
            proc.stderr.read() if proc.poll() else ""
        )
        command = next(line.strip() for line in lines if line.strip().endswith(" status"))
        argv = shlex.split(command)
        env = dict(os.environ)
        while "=" in argv[0]:
            key, _, value = argv.pop(0).partition("=")
            env[key] = value
        assert argv[:2] == ["megatui", "--config"]
        result = subprocess.run(
            [sys.executable, "-m", "megatui", *argv[1:], "--json", "--timeout", "20"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        assert {vm["name"] for vm in data["vms"]} >= {"sequoia-base", "ubuntu-runner"}
        assert data["sources"]["kubernetes"]["ok"] and data["sources"]["docker"]["ok"]
        assert len(data["nodes"]) == 4
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    leftovers = subprocess.run(
        ["ps", "-A", "-ww", "-o", "args="], capture_output=True, text=True, check=True
    ).stdout
    assert str(lab_dir) not in leftovers, "the lab left processes behind"
