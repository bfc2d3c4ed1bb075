"""megatui's TUI inside an SSH session (the "run it on the Mac over SSH" use), in tmux.

A real OpenSSH sshd on loopback serves the session; tmux is the terminal. The test
waits for the demo's screen to render, then ends the SSH session the two ways it
ends in real life, and checks that megatui exits and leaves nothing behind (the
demo's VMs are `tart run` processes: tart.md §6.4, a VM dies with SIGHUP only if
nobody cleans up).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require_binary
from sshd_fixtures import SSHDFactory, real_sshd_fixture  # noqa: F401
from tmux_helpers import Tmux, _processes, _tree, _wait

pytestmark = [pytest.mark.sshd, pytest.mark.tmux]

REPO = Path(__file__).resolve().parent.parent
# The demo's first VM row: proof that the screen rendered real content, not a banner.
RENDERED = "ubuntu-runner"


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    server = Tmux(require_binary("tmux"), tmp_path / "tmux.sock")
    yield server
    with contextlib.suppress(Exception):
        server("kill-server")


@pytest.mark.parametrize("ending", ["ssh-client-killed", "tmux-session-closed"])
def test_tui_over_ssh_exits_with_the_session(
    real_sshd: SSHDFactory, tmux: Tmux, tmp_path: Path, ending: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    demo_dir = tmp_path / "demo"
    sshd = real_sshd(
        env={
            "HOME": str(home),
            "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
            # Textual picks its colours from these; keep them fixed.
            "LANG": "C.UTF-8",
        }
    )
    megatui_argv = [sys.executable, "-m", "megatui", "demo", "--dir", str(demo_dir)]
    remote = f"cd {shlex.quote(str(REPO))} && exec {shlex.join(megatui_argv)}"
    ssh = sshd.ssh_argv(remote)
    ssh.insert(1, "-tt")  # a terminal on the far side, as an interactive login has
    tmux("new-session", "-d", "-s", "megatui", "-x", "140", "-y", "45", shlex.join(ssh))
    stray: set[int] = set()
    try:
        _wait(lambda: RENDERED in tmux.screen(), 90, f"{RENDERED!r} on the screen")
        screen = tmux.screen()
        assert "Traceback" not in screen

        rows = _processes()
        # The python process itself (the ssh client's and tmux's argv hold it too).
        megatui = [pid for pid, _ppid, args in rows if args == " ".join(megatui_argv)]
        assert len(megatui) == 1, megatui
        # megatui and everything it started (the lab's `tart run`s and their VM servers).
        stray = _tree(megatui[0], rows)
        assert len(stray) > 1, "the demo should have started its VMs"

        if ending == "ssh-client-killed":
            # The laptop's side vanishes (network gone, client crashed): sshd sees
            # the connection drop and hangs up the session's terminal.
            client = int(tmux("display-message", "-p", "-t", "megatui", "#{pane_pid}"))
            os.kill(client, signal.SIGKILL)
        else:
            # The terminal window closes: tmux sends SIGHUP to the ssh client.
            tmux("kill-session", "-t", "megatui")

        left: list[str] = []

        def gone() -> bool:
            left[:] = [f"{pid} {args}" for pid, _ppid, args in _processes() if pid in stray]
            return not left

        with contextlib.suppress(pytest.fail.Exception):
            _wait(gone, 30, "megatui and everything it started to exit")
        assert not left, "still running after the SSH session ended:\n" + "\n".join(left)
    finally:
        # Leave nothing behind even when the test fails, early or late.
        rows = _processes()
        alive = {pid for pid, _ppid, _args in rows}
        stray |= {pid for pid, _ppid, args in rows if str(demo_dir) in args}
        for pid in stray & alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
