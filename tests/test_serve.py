"""`megatui serve` as a process: binding, the token file, bad ports, clean exit."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


class Served:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.errors: list[str] = []
        self.changed = threading.Condition()
        for stream, sink in ((proc.stdout, self.lines), (proc.stderr, self.errors)):
            threading.Thread(target=self._pump, args=(stream, sink), daemon=True).start()

    def _pump(self, stream: object, sink: list[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            with self.changed:
                sink.append(line.rstrip("\n"))
                self.changed.notify_all()

    def wait_line(self, prefix: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    pytest.fail(f"no {prefix!r} line; out={self.lines} err={self.errors}")
                self.changed.wait(min(left, 0.5))

    def url(self) -> str:
        return self.wait_line("megatui serve: ").split()[2]


def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MEGATUI_STATE_DIR": str(tmp_path / "state"),
        "MEGATUI_DATA_DIR": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }


@contextmanager
def serving(tmp_path: Path, *args: str) -> Iterator[Served]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "megatui", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path),
    )
    try:
        yield Served(proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail("megatui serve did not stop on SIGTERM within 20 s")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_on_localhost_serves_the_api_and_stops_on_sigterm(tmp_path: Path) -> None:
    with serving(tmp_path, "--demo", "--port", "0") as served:
        url = served.url()
        assert url.startswith("http://127.0.0.1:")
        deadline = time.monotonic() + 30
        while True:  # the demo's VMs appear once tart has answered
            status, body = get(url + "api/v1/status")
            assert status == 200
            if json.loads(body)["vms"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # polling a server with no event to wait on
        names = {vm["name"] for vm in json.loads(body)["vms"]}
        assert "ubuntu-runner" in names
        status, page = get(url)
        assert status == 200 and b"<html" in page.lower()
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        outside = [
            a for a in socket.gethostbyname_ex(socket.gethostname())[2] if not a.startswith("127.")
        ]
        if outside:
            with socket.socket() as s:
                s.settimeout(1)
                assert s.connect_ex((outside[0], port)) != 0
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=20) == 0


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "megatui", "serve", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env(tmp_path),
            timeout=60,
        )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "in use" in lines[0], lines


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_bad_port_is_one_line_and_exit_2(tmp_path: Path, port: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "megatui", "serve", f"--port={port}"],
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=60,
    )
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "port" in done.stderr


def test_tls_cert_without_key_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "megatui", "serve", "--port=0", "--tls-cert", "x.pem"],
        capture_output=True,
        text=True,
        env=env(tmp_path),
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "megatui: --tls-cert and --tls-key go together"


def test_beyond_loopback_a_token_is_made_once_kept_0600_and_required(tmp_path: Path) -> None:
    with serving(tmp_path, "--demo", "--bind", "0.0.0.0", "--port", "0") as served:
        served.url()
        shown = served.wait_line("open once")
        token = shown.rsplit("?token=", 1)[1]
        token_file = tmp_path / "state" / "serve-token"
        assert "token" in token_file.name
        assert token_file.read_text().strip() == token
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        port = served.url().rstrip("/").rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}/"
        assert get(base + "api/v1/status") == (401, b"401: unauthorized\n")
        status, _ = get(base + "api/v1/status", {"Authorization": f"Bearer {token}"})
        assert status == 200
        with served.changed:
            served.changed.wait_for(lambda: any("plain HTTP" in e for e in served.errors), 10)
        assert any("plain HTTP" in e for e in served.errors), served.errors
    # A second run reuses the token and does not show it again.
    with serving(tmp_path, "--demo", "--bind", "0.0.0.0", "--port", "0") as served:
        served.url()
        line = served.wait_line("token: ")
        assert str(tmp_path / "state" / "serve-token") in line
        assert not any(token in line for line in served.lines)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_browser_tab_processes_end_when_the_server_is_killed(tmp_path: Path) -> None:
    if not Path("/proc/self/task").exists():
        pytest.skip("needs /proc to find the tab process")
    import asyncio

    import aiohttp

    args = ["--tart", str(tmp_path / "no-tart"), "--docker-host", "unix:///nonexistent.sock"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "megatui", *args, "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env(tmp_path), "KUBECONFIG": str(tmp_path / "no-kubeconfig")},
    )
    served = Served(proc)
    tab = 0
    sockets: list[Path] = []  # a killed server cannot remove its socket directory
    try:
        url = served.url()

        async def open_tab() -> None:
            nonlocal tab
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(url + "ws?width=80&height=24", origin=url.rstrip("/")) as ws,
            ):
                await ws.receive(timeout=60)  # the app is up and drawing
                tab = next(iter(_children(proc.pid)))
                argv = Path(f"/proc/{tab}/cmdline").read_bytes().split(b"\0")
                sockets.append(Path(next(a for a in argv if a.startswith(b"unix:"))[5:].decode()))
                proc.kill()  # no chance to clean up
                proc.wait()

        asyncio.run(open_tab())
        deadline = time.monotonic() + 20
        while not _gone(tab):
            assert time.monotonic() < deadline, "the tab's attach process outlived the server"
            time.sleep(0.1)  # waiting on another process's exit: no event to wait on
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if tab and not _gone(tab):
            os.kill(tab, signal.SIGKILL)
        for path in sockets:
            shutil.rmtree(path.parent, ignore_errors=True)


def _descendants(pid: int) -> list[int]:
    found: list[int] = []
    todo = [pid]
    while todo:
        with contextlib.suppress(FileNotFoundError):
            kids = _children(todo.pop())
            found += kids
            todo += kids
    return found


@pytest.mark.parametrize("when", ["at once", "as soon as it listens"])
def test_sigterm_while_starting_cleans_up_the_demo(tmp_path: Path, when: str) -> None:
    if not Path("/proc/self/task").exists():
        pytest.skip("needs /proc to find the lab's processes")
    proc = subprocess.Popen(
        [sys.executable, "-m", "megatui", "serve", "--demo", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(tmp_path),
    )
    served = Served(proc)
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        if when == "at once":
            # As soon as the lab has started a VM process, before the server listens.
            while not any("tart" in _cmdline(p) for p in _descendants(proc.pid)):
                assert time.monotonic() < deadline and proc.poll() is None, served.errors
                time.sleep(0.02)  # watching another process start: no event to wait on
        else:
            served.url()
        seen = set(_descendants(proc.pid))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while not all(_gone(p) for p in seen):
            assert time.monotonic() < deadline, [_cmdline(p) for p in seen if not _gone(p)]
            time.sleep(0.1)  # waiting on other processes' exits
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in seen:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (FileNotFoundError, ProcessLookupError):
        return ""
