"""megatui's TUI inside an SSH session (the "run it on the Mac over SSH" use), in tmux.

A real OpenSSH sshd on loopback serves the session; tmux is the terminal. The test
waits for the demo's screen to render, then ends the SSH session the two ways it
ends in real life, and checks that megatui exits and leaves nothing behind (the
demo's VMs are `tart run` processes: docs/facts/tart.md §6.4, a VM dies with SIGHUP only if
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
from remote_fixtures import HostLab, host_lab_fixture  # noqa: F401
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


# --------------------------------------------------------------------------- megatui --host

# A crash: an unexpected exception in the app (the help key raises).
_CRASHING = (
    "import sys\n"
    "from megatui.ui.app import MegatuiApp\n"
    "def boom(self):\n"
    "    raise RuntimeError('injected crash')\n"
    "MegatuiApp.action_help = boom\n"
    "from megatui.cli import main\n"
    "main(sys.argv[1:])\n"
)


def _start_host_tui(tmux: Tmux, host: HostLab, tmp_path: Path, *, crashing: bool = False) -> Path:
    """`megatui --host` in a tmux pane; returns the file its exit code is written to.
    Everything the terminal shows is also logged, to look for tracebacks."""
    exit_file = tmp_path / "exit-code"
    env = {k: host.env[k] for k in ("HOME", "TMPDIR", "MEGATUI_DATA_DIR", "MEGATUI_STATE_DIR")}
    program = ["-c", _CRASHING] if crashing else ["-m", "megatui"]
    argv = [sys.executable, *program, "--host", host.spec, "--config", str(host.config)]
    line = (
        f"env -u SSH_AUTH_SOCK {' '.join(f'{k}={shlex.quote(v)}' for k, v in env.items())} "
        f"LANG=C.UTF-8 {shlex.join(argv)}; echo $? > {shlex.quote(str(exit_file))}; sleep 600"
    )
    tmux("new-session", "-d", "-s", "megatui", "-x", "140", "-y", "45", "-c", str(REPO), line)
    tmux(
        "pipe-pane", "-o", "-t", "megatui", f"cat >> {shlex.quote(str(tmp_path / 'terminal.log'))}"
    )
    return exit_file


def _megatui_pid(host: HostLab) -> int:
    pids = [
        pid
        for pid, _ppid, args in _processes()
        if f"--host {host.spec}" in args and args.startswith(sys.executable)
    ]
    assert len(pids) == 1, pids
    return pids[0]


@pytest.mark.parametrize(
    ("ending", "code"),
    [("q", 0), ("sigterm", 143), ("sighup", 129), ("terminal-closed", None), ("crash", 1)],
)
def test_host_tui_exit_closes_the_connection_and_removes_the_private_dir(
    host_lab: HostLab, tmux: Tmux, tmp_path: Path, ending: str, code: int | None
) -> None:
    exit_file = _start_host_tui(tmux, host_lab, tmp_path, crashing=ending == "crash")
    pid = None
    try:
        _wait(lambda: "runner" in tmux.screen() and "ready" in tmux.screen(), 60, "a ready VM")
        pid = _megatui_pid(host_lab)
        assert host_lab.private_dirs(), "the test needs the private directory to exist"
        assert host_lab.connection_pids(), "the test needs a connection to the host"
        started = _tree(pid, _processes())

        if ending == "q":
            tmux("send-keys", "-t", "megatui", "q")
        elif ending == "crash":
            tmux("send-keys", "-t", "megatui", "?")
        elif ending == "terminal-closed":
            tmux("kill-session", "-t", "megatui")
        else:
            os.kill(pid, signal.SIGTERM if ending == "sigterm" else signal.SIGHUP)

        alive = {p for p, _pp, _a in _processes()}
        _wait(lambda: not (started & {p for p, _pp, _a in _processes()}), 15, "megatui to exit")
        assert started & alive  # it was running until the ending
        if code is not None:
            # The shell creates the file before `echo` writes into it: wait for the text.
            _wait(
                lambda: exit_file.exists() and bool(exit_file.read_text().strip()),
                5,
                "the exit code",
            )
            assert exit_file.read_text().strip() == str(code)
        log = (tmp_path / "terminal.log").read_text(errors="replace")
        assert "CancelledError" not in log
        if ending == "crash":
            assert "injected crash" in log  # the crash's own report, and only that
        else:
            assert "Traceback" not in log
        assert not host_lab.private_dirs(), "the private directory (kubeconfig copy) is left"
        # Nor any other temp file: the kubernetes client's copies of the key included.
        assert not list(host_lab.tmpdir.iterdir()), list(host_lab.tmpdir.iterdir())
        _wait(lambda: not host_lab.connection_pids(), 10, "sshd to see the connection closed")
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_host_that_never_connected_says_why_and_how_to_fix(
    host_lab: HostLab, tmux: Tmux, tmp_path: Path
) -> None:
    host_lab.known_hosts.write_text("")
    _start_host_tui(tmux, host_lab, tmp_path)
    label = host_lab.spec
    line = f"cannot connect to {label}: host key not trusted yet"
    _wait(lambda: line in tmux.screen(), 30, repr(line))
    screen = tmux.screen()
    assert "waiting for tart" not in screen and "lost" not in screen, screen
    # The header, and the panels behind the host (VMs: its line; all: stale lines).
    header = screen.splitlines()[0]
    assert "cannot connect to" in header, header
    assert screen.count(f"cannot connect to {label}") >= 3, screen
    tmux("send-keys", "-t", "megatui", "d")
    _wait(lambda: "ssh-keyscan" in tmux.screen(), 10, "the fix, after d")
    tmux("send-keys", "-t", "megatui", "q")
    _wait(lambda: (tmp_path / "exit-code").exists(), 15, "megatui to exit")
    assert not host_lab.private_dirs()
