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
from dataclasses import replace
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


#: `demo --orchard`: three Mac minis and more VMs than their 2-macOS-VM slots hold.
FLEET_WORKERS = ("mini-1", "mini-2", "mini-3")
FLEET_VMS: tuple[dict[str, Any], ...] = (
    {"name": "ci-runner-1", "image": "ghcr.io/cirruslabs/macos-tahoe-base:latest"},
    {"name": "ci-runner-2", "image": "ghcr.io/cirruslabs/macos-tahoe-base:latest"},
    {"name": "xcode-16", "image": "ghcr.io/cirruslabs/macos-sequoia-xcode:16"},
    {
        "name": "nightly",
        "image": "ghcr.io/cirruslabs/macos-tahoe-xcode:latest",
        "imagePullPolicy": "Always",
        "restart_policy": "OnFailure",
    },
    {"name": "ui-tests", "image": "ghcr.io/cirruslabs/macos-sequoia-base:latest"},
    {"name": "release", "image": "ghcr.io/cirruslabs/macos-tahoe-base:latest"},
    # The seventh waits for a free slot (Apple allows 2 macOS VMs per Mac).
    {"name": "spare", "image": "ghcr.io/cirruslabs/macos-tahoe-base:latest"},
)
#: Demo timings: a real fleet's shape, minutes turned into seconds.
FLEET_TIMINGS = {"schedule": 1.0, "pull": 12.0, "clone": 4.0, "configure": 1.0, "boot": 8.0}
FLEET_TOKEN = "lab-admin-token"  # the fake controller's own bootstrap admin (a lab)


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

    def __init__(
        self,
        root: Path,
        vms: tuple[LabVMSpec, ...] = DEMO_VMS,
        *,
        fleet: bool = False,
        extra_pods: int = 0,
        animate: bool = True,
        bookmark_interval: float | None = 5.0,
    ) -> None:
        """`extra_pods`: that many more pods in the Argo CD namespace; `animate=False`:
        the cluster starts settled; `bookmark_interval`: seconds between watch bookmarks
        (a real apiserver sends about one a minute). For benchmarks; see start_lab_cluster."""
        # Keeps what it is handed, as host_outage.HostOutage does: shape only.
        self.root = root
        self.specs = vms
        self.fleet = fleet
        self.extra_pods = extra_pods
        self.animate = animate
        self.bookmark_interval = bookmark_interval
        self.orchard: Any = None
        self.tart: TartLab | None = None
        self._loop: _LoopThread | None = None
        self._cluster: Any = None
        self._docker: Any = None

    @property
    def config_path(self) -> Path:
        return self.root / "megatui.toml"

    @property
    def key_path(self) -> Path:
        """The lab's own SSH key: every lab VM accepts it, so `Enter` (the system's
        ssh) logs in without asking for the password."""
        return self.root / "ssh" / "id_ed25519"

    @property
    def cluster(self) -> Any:
        """The running LabCluster (its store changes what the fake apiserver serves)."""
        return self._cluster

    def call(self, coro: Any, timeout: float = 30.0) -> Any:
        """Run `coro` on the lab's loop (where its servers live) and return its result."""
        assert self._loop is not None, "the lab is not running"
        return self._loop.call(coro, timeout)

    def start(self) -> None:
        from megatui.lab.cluster import start_lab_cluster
        from megatui.lab.docker_api import start_fake_docker

        self.root.mkdir(parents=True, exist_ok=True)
        public = _ensure_key(self.key_path)
        self.specs = tuple(replace(s, authorized_key=public) for s in self.specs)
        self.tart = create_tart_lab(self.root / "tart", self.specs)
        self._loop = _LoopThread()
        self._cluster = self._loop.call(
            start_lab_cluster(
                host="127.0.0.1",
                port=0,
                tls=True,
                workdir=self.root / "kube",
                animate=self.animate,
                extra_pods=self.extra_pods,
                bookmark_interval=self.bookmark_interval,
            )
        )
        self._docker = self._loop.call(start_fake_docker(self.root / "docker.sock"))
        if self.fleet:
            self.orchard = self._loop.call(self._start_fleet())
        self.tart.start_running()
        self.config_path.write_text(self._config_toml())

    def _config_toml(self) -> str:
        assert self.tart is not None
        text = self.tart.megatui_config_toml()
        # The key first: ssh (Enter) and the probes log in with it, no password asked.
        text = text.replace("[ssh]\n", f"[ssh]\nkey = {_toml_str(str(self.key_path))}\n", 1)
        return (
            text
            + "\n[kube]\n"
            + f"kubeconfig = {_toml_str(str(self._cluster.kubeconfig_path))}\n"
            + f"context = {_toml_str(self._cluster.context)}\n"
            + "\n[docker]\n"
            + f"host = {_toml_str(self._docker.url)}\n"
            + "\n[doctor]\nexpected_nodes = 4\n"
            + self._fleet_toml()
        )

    async def _start_fleet(self) -> Any:
        from megatui.lab.orchard import FakeOrchard, Timings

        lab = FakeOrchard(
            self.root / "orchard", timings=Timings(**FLEET_TIMINGS), admin_token=FLEET_TOKEN
        )
        await lab.start()
        for worker in FLEET_WORKERS:
            lab.add_worker(worker)
        spec = self.specs[0] if self.specs else None
        login = {"username": spec.user, "password": spec.password} if spec else {}
        for vm in FLEET_VMS:
            lab.store.create_vm({**vm, **login})
        return lab

    def _fleet_toml(self) -> str:
        if self.orchard is None:
            return ""
        from megatui.lab.orchard.controller import BOOTSTRAP_ADMIN

        return (
            "\n[orchard]\n"
            + f"url = {_toml_str(self.orchard.url)}\n"
            + f"service_account = {_toml_str(BOOTSTRAP_ADMIN)}\n"
            + f"token = {_toml_str(FLEET_TOKEN)}\n"
        )

    def stop(self) -> None:
        if self.tart is not None:
            self.tart.stop_all()
        loop, self._loop = self._loop, None  # stop() may run twice (hangup, then finally)
        if loop is not None:
            for server in (self.orchard, self._docker, self._cluster):
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


def _ensure_key(path: Path) -> str:
    """An ed25519 key pair at `path` (made once); returns the public key line."""
    public = path.with_suffix(".pub")
    if not (path.is_file() and public.is_file()):
        import asyncssh

        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="megatui-lab")
        # ssh refuses a private key that others can read.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.export_private_key())
        public.write_bytes(key.export_public_key())
    return public.read_text("utf-8").strip()


def login_line(lab: DemoLab) -> str:
    """How to log in to the lab's VMs, for where the user looks first."""
    spec = lab.specs[0] if lab.specs else None
    user, password = (spec.user, spec.password) if spec else ("admin", "admin")
    return (
        f"VM logins: user {user}, key {lab.key_path} (Enter uses it); "
        f"password {password} where a password is asked"
    )


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


def run_demo(directory: str | None, *, fleet: bool = False) -> int:
    from megatui.config import load_settings
    from megatui.headless import build_monitor
    from megatui.ui.app import run_app

    with lab_directory(directory) as root:
        lab = DemoLab(root, fleet=fleet)
        try:
            lab.start()
            os.environ.update(lab.environ())
            settings = load_settings(lab.config_path, environ={})
            return run_app(
                build_monitor(settings), settings, on_hangup=lab.stop, notice=login_line(lab)
            )
        finally:
            lab.stop()


def run_lab(directory: str | None, *, fleet: bool = False) -> int:
    with lab_directory(directory) as root:
        lab = DemoLab(root, fleet=fleet)
        try:
            lab.start()
            env = " ".join(f"{k}={v}" for k, v in lab.environ().items())
            print("megatui lab is running. Point megatui at it with:\n")
            print(f"    {env} megatui --config {lab.config_path}\n")
            print(f"    {env} megatui --config {lab.config_path} status\n")
            assert lab.tart is not None
            print(f"tart: {lab.tart.tart_path}")
            print(login_line(lab))
            for spec in lab.specs:
                host, port = lab.tart.address(spec.name)
                print(f"  VM {spec.name}: {host}:{port} ({spec.initial})")
            if lab.orchard is not None:
                print(f"Orchard controller: {lab.orchard.url} ({len(FLEET_WORKERS)} workers)")
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
