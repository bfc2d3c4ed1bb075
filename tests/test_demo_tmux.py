"""`megatui demo` end to end in a real terminal (tmux): start a stopped VM with `s`,
watch its bar reach ready, stop it with `x` through the confirmation."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_binary
from tmux_helpers import Tmux, _processes, _wait

pytestmark = pytest.mark.tmux

VM = "sequoia-base"  # stopped in the demo, and the first row of the VM table


def vm_line(screen: str) -> str:
    for line in screen.splitlines():
        if re.search(rf"│\s+{VM}\s", line):
            return line
    return ""


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Tmux, Path]]:
    tmux = Tmux(require_binary("tmux"), tmp_path / "tmux.sock")
    lab = tmp_path / "lab"
    env = {
        "MEGATUI_DATA_DIR": str(tmp_path / "data"),
        "MEGATUI_STATE_DIR": str(tmp_path / "state"),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
    }
    command = " ".join(
        [
            *(f"{k}={shlex.quote(v)}" for k, v in env.items()),
            shlex.join([sys.executable, "-m", "megatui", "demo", "--dir", str(lab)]),
        ]
    )
    tmux("new-session", "-d", "-s", "megatui", "-x", "160", "-y", "48", command)
    try:
        yield tmux, lab
    finally:
        with contextlib.suppress(Exception):
            tmux("send-keys", "-t", "megatui", "q")
        with contextlib.suppress(pytest.fail.Exception):
            _wait(
                lambda: not any(str(lab) in args for _p, _pp, args in _processes()),
                20,
                "the demo and its lab to exit",
            )
        for pid, _ppid, args in _processes():
            if str(lab) in args:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            tmux("kill-server")


def test_start_watch_ready_and_stop_through_the_confirmation(demo: tuple[Tmux, Path]) -> None:
    tmux, lab = demo
    _wait(lambda: "stopped" in vm_line(tmux.screen()), 60, f"{VM} listed as stopped")
    assert "Traceback" not in tmux.screen()

    # Once megatui has seen another VM boot (sonoma-builder was booting at start),
    # the first boot of this one is estimated from it: seconds, not the macOS minutes.
    _wait(
        lambda: re.search(r"sonoma-builder\s+ready", tmux.screen()) is not None,
        60,
        "sonoma-builder to be ready",
    )
    tmux("send-keys", "-t", "megatui", "s")
    _wait(
        lambda: re.search(r"starting|booting|\bip\b", vm_line(tmux.screen())) is not None,
        30,
        f"{VM} to start booting",
    )
    eta = re.search(r"eta (\S+)", vm_line(tmux.screen()))
    assert eta is None or "m" not in eta.group(1), vm_line(tmux.screen())
    # The bar moves through the boot phases to ready (the lab VM needs about 10 s).
    _wait(lambda: "ready" in vm_line(tmux.screen()), 60, f"{VM} to become ready")
    line = vm_line(tmux.screen())
    assert re.search(r"127\.0\.0\.\d+", line), line

    tmux("send-keys", "-t", "megatui", "x")
    _wait(lambda: "Cancel" in tmux.screen(), 10, "the stop confirmation")
    # The default button is Cancel: Enter alone must not stop the VM.
    tmux("send-keys", "-t", "megatui", "Enter")
    _wait(lambda: "Cancel" not in tmux.screen(), 10, "the dialog to close")
    assert "ready" in vm_line(tmux.screen())

    tmux("send-keys", "-t", "megatui", "x")
    _wait(lambda: "Cancel" in tmux.screen(), 10, "the stop confirmation")
    tmux("send-keys", "-t", "megatui", "Tab")
    tmux("send-keys", "-t", "megatui", "Enter")
    _wait(
        lambda: re.search(rf"{VM}\s+stopped", vm_line(tmux.screen())) is not None,
        30,
        f"{VM} to stop",
    )
    assert not any(
        f"run --no-graphics {VM}" in args and str(lab) in args for _p, _pp, args in _processes()
    )


def test_enter_logs_in_to_a_demo_vm_without_a_password(demo: tuple[Tmux, Path]) -> None:
    require_binary("ssh")
    tmux, lab = demo
    # Where the user looks first: how to log in, the password included.
    _wait(lambda: "VM logins: user admin" in tmux.screen(), 60, "the login notice")
    _wait(
        lambda: re.search(r"ubuntu-runner\s+ready", tmux.screen()) is not None,
        60,
        "ubuntu-runner to be ready",
    )
    tmux("send-keys", "-t", "megatui", "/")
    tmux("send-keys", "-t", "megatui", "-l", "ubuntu")
    tmux("send-keys", "-t", "megatui", "Enter")
    _wait(lambda: vm_line(tmux.screen()) == "", 10, "the filter to hide the other VMs")
    tmux("send-keys", "-t", "megatui", "Enter")
    # The system's ssh, with the lab's key: straight to the lab shell's prompt.
    _wait(lambda: "admin@ubuntu-runner ~ %" in tmux.screen(), 30, "the lab shell")
    screen = tmux.screen()
    assert "password" not in screen.lower(), screen
    tmux("send-keys", "-t", "megatui", "-l", "pwd")
    tmux("send-keys", "-t", "megatui", "Enter")
    _wait(lambda: "/home/admin" in tmux.screen(), 10, "pwd")
    tmux("send-keys", "-t", "megatui", "-l", "exit")
    tmux("send-keys", "-t", "megatui", "Enter")
    _wait(lambda: "q quit" in tmux.screen(), 30, "back in megatui")
    assert (lab / "ssh" / "id_ed25519").stat().st_mode & 0o077 == 0
