"""A private tmux server for end-to-end tests of the TUI, and process helpers."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest


def _processes() -> list[tuple[int, int, str]]:
    out = subprocess.run(
        ["ps", "-A", "-ww", "-o", "pid=", "-o", "ppid=", "-o", "stat=", "-o", "args="],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 3)
        # Zombies have finished; only their parent's bookkeeping is left.
        if len(parts) == 4 and not parts[2].startswith("Z"):
            rows.append((int(parts[0]), int(parts[1]), parts[3]))
    return rows


def _tree(root: int, rows: list[tuple[int, int, str]]) -> set[int]:
    found = {root}
    grew = True
    while grew:
        grew = False
        for pid, ppid, _args in rows:
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}", pytrace=False)
        time.sleep(0.1)


class Tmux:
    """A private tmux server (its own socket), so nothing touches the user's tmux."""

    def __init__(self, binary: str, socket_path: Path) -> None:
        self.binary = binary
        self.socket = socket_path

    def __call__(self, *args: str) -> str:
        return subprocess.run(
            [self.binary, "-S", str(self.socket), "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout

    def screen(self) -> str:
        try:
            return self("capture-pane", "-p", "-t", "megatui")
        except subprocess.CalledProcessError:
            return ""
