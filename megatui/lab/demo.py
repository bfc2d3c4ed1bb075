"""`megatui demo` and `megatui lab`: the whole simulated Megalopolis in one place.

The lab's servers (fake Kubernetes API, fake Docker API) run on their own event loop
in a background thread, so the TUI's loop is free and the lab behaves like the
outside world it stands in for. VMs are real processes (the fake `tart run`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from megatui.lab.tartlab import LabVMSpec, TartLab, create_tart_lab

DEMO_VMS: tuple[LabVMSpec, ...] = (
    # Linux guests do not count against Apple's 2-macOS-VM limit, so the demo can
    # show two running VMs and still let the user start the stopped macOS one.
    LabVMSpec(
        "ubuntu-runner",
        initial="running",
        ip_after=0.5,
        port_after=1.0,
        login_after=1.5,
        os="linux",
    ),
    LabVMSpec("sonoma-builder", initial="running", ip_after=6.0, port_after=14.0, login_after=24.0),
    LabVMSpec("sequoia-base", initial="stopped", ip_after=3.0, port_after=6.0, login_after=9.0),
    LabVMSpec("tahoe-xcode", initial="stopped", ip_after=4.0, port_after=8.0, login_after=12.0),
)


class _LoopThread:
    """An asyncio loop in a daemon thread, for the lab's servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="megatui-lab", daemon=True
        )
        self._thread.start()

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            # Its self-pipe sockets would otherwise be left to the garbage collector.
            self.loop.close()


class DemoLab:
    """Tart VMs, a Kind-like cluster with ArgoCD, and a Docker daemon, all simulated."""

    def __init__(self, root: Path, vms: tuple[LabVMSpec, ...] = DEMO_VMS) -> None:
        self.root = root
        self.specs = vms
        self.tart: TartLab | None = None
        self._loop: _LoopThread | None = None
        self._cluster: Any = None
        self._docker: Any = None

    @property
    def config_path(self) -> Path:
        return self.root / "megatui.toml"

    def start(self) -> None:
        from megatui.lab.cluster import start_lab_cluster
        from megatui.lab.docker_api import start_fake_docker

        self.root.mkdir(parents=True, exist_ok=True)
        self.tart = create_tart_lab(self.root / "tart", self.specs)
        self._loop = _LoopThread()
        self._cluster = self._loop.call(
            start_lab_cluster(host="127.0.0.1", port=0, tls=True, workdir=self.root / "kube")
        )
        self._docker = self._loop.call(start_fake_docker(self.root / "docker.sock"))
        self.tart.start_running()
        self.config_path.write_text(self._config_toml())

    def _config_toml(self) -> str:
        assert self.tart is not None
        return (
            self.tart.megatui_config_toml()
            + "\n[kube]\n"
            + f"kubeconfig = {_toml_str(str(self._cluster.kubeconfig_path))}\n"
            + f"context = {_toml_str(self._cluster.context)}\n"
            + "\n[docker]\n"
            + f"host = {_toml_str(self._docker.url)}\n"
            + "\n[doctor]\nexpected_nodes = 4\n"
        )

    def stop(self) -> None:
        if self.tart is not None:
            self.tart.stop_all()
        loop, self._loop = self._loop, None  # stop() may run twice (hangup, then finally)
        if loop is not None:
            for server in (self._docker, self._cluster):
                if server is not None:
                    with contextlib.suppress(Exception):
                        loop.call(server.stop(), timeout=10)
            loop.close()

    def environ(self) -> dict[str, str]:
        """Keep the demo's host keys, boot history and logs out of the user's dirs:
        lab VM names may clash with real ones, and keys are trusted by name."""
        return {
            "MEGATUI_DATA_DIR": str(self.root / "data"),
            "MEGATUI_STATE_DIR": str(self.root / "state"),
        }


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def lab_directory(directory: str | None) -> Iterator[Path]:
    if directory:
        path = Path(directory).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    # Short path: unix socket paths are limited to ~104 bytes on macOS.
    path = Path(tempfile.mkdtemp(prefix="megatui-lab-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_demo(directory: str | None) -> int:
    from megatui.config import load_settings
    from megatui.headless import build_monitor
    from megatui.ui.app import run_app

    with lab_directory(directory) as root:
        lab = DemoLab(root)
        try:
            lab.start()
            os.environ.update(lab.environ())
            settings = load_settings(lab.config_path, environ={})
            return run_app(build_monitor(settings), settings, on_hangup=lab.stop)
        finally:
            lab.stop()


def run_lab(directory: str | None) -> int:
    with lab_directory(directory) as root:
        lab = DemoLab(root)
        try:
            lab.start()
            env = " ".join(f"{k}={v}" for k, v in lab.environ().items())
            print("megatui lab is running. Point megatui at it with:\n")
            print(f"    {env} megatui --config {lab.config_path}\n")
            print(f"    {env} megatui --config {lab.config_path} status\n")
            assert lab.tart is not None
            print(f"tart: {lab.tart.tart_path}")
            for spec in lab.specs:
                host, port = lab.tart.address(spec.name)
                print(f"  VM {spec.name}: {host}:{port} ({spec.initial})")
            print("\nPress Ctrl-C to stop the lab.")
            sys.stdout.flush()
            _wait_for_signal()
            return 0
        finally:
            lab.stop()


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
