"""`megatui serve` puts the TUI in a browser through textual-serve, on localhost only."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_on_localhost() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "megatui", "serve", "--demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        page = b""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/", timeout=2) as reply:
                    page = reply.read()
                    break
            except OSError:
                time.sleep(0.1)  # polling a server that is starting: no event to wait on
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
        assert b"<html" in page.lower()
        # Bound to localhost only: textual-serve has no authentication.
        with socket.socket() as s:
            s.settimeout(1)
            outside = [
                a
                for a in socket.gethostbyname_ex(socket.gethostname())[2]
                if not a.startswith("127.")
            ]
            if outside:
                assert s.connect_ex((outside[0], port)) != 0
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
