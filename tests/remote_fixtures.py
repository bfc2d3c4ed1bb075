"""A loopback "Mac host" for RemoteTransport tests: a real OpenSSH sshd.

`loopback_host` yields a `LoopbackHost` built on tests/sshd_fixtures.py: sshd on
its own 127.0.0.x address, whose login sessions get a private HOME and a PATH
that starts with a `bin` directory the test controls (the place for a fake
`tart`, `kind` or `security`). Next to it are the client files megatui would
use: a key selected through an ssh_config file, and a known_hosts file.
The developer's own agent, keys and known_hosts are kept out (HOME is replaced).

Import with `from remote_fixtures import loopback_host_fixture  # noqa: F401`.
Without sshd the tests skip; under CI=true they fail (conftest.require_binary).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sshd_fixtures import RealSSHD, SSHDFactory, real_sshd_fixture  # noqa: F401

from megatui.config import RemoteSettings, Settings, load_settings, toml_value
from megatui.headless import build_transport
from megatui.lab.demo import DemoLab
from megatui.lab.tartlab import LabVMSpec
from megatui.remote import RemoteTransport


def _processes() -> list[tuple[int, int, str]]:
    out = subprocess.run(
        # -ww: piped ps cuts lines at 80 columns, and the config path is long.
        ["ps", "-A", "-ww", "-o", "pid=", "-o", "ppid=", "-o", "args="],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) >= 2:
            rows.append((int(parts[0]), int(parts[1]), parts[2] if len(parts) > 2 else ""))
    return rows


def sshd_listener_pids(sshd: RealSSHD) -> set[int]:
    config = str(sshd.config_path)
    return {pid for pid, _ppid, args in _processes() if config in args and "sshd" in args}


def sshd_connection_pids(sshd: RealSSHD) -> list[int]:
    """sshd's per-connection processes: its children, and theirs that are sshd."""
    rows = _processes()
    listeners = sshd_listener_pids(sshd)
    found = []
    for pid, ppid, args in rows:
        if ppid in listeners and args.startswith("sshd"):
            found.append(pid)
    found += [pid for pid, ppid, args in rows if ppid in found and args.startswith("sshd")]
    return found


class LoopbackHost:
    """The Mac host as megatui sees it: `spec`, and the files to trust and log in."""

    def __init__(self, sshd: RealSSHD, home: Path, bin_dir: Path, client_dir: Path) -> None:
        self.sshd = sshd
        self.home = home
        self.bin_dir = bin_dir
        self.address = sshd.host
        self.port = sshd.port
        self.user = sshd.user
        self.host_public_key = sshd.host_public_key
        client_dir.mkdir(parents=True, exist_ok=True)
        self.known_hosts = client_dir / "known_hosts"
        self.known_hosts.write_text(sshd.known_hosts_line() + "\n")
        self.ssh_config = client_dir / "ssh_config"
        self.ssh_config.write_text(
            f"Host *\n    IdentityFile {sshd.client_key_path}\n    IdentitiesOnly yes\n"
        )

    @property
    def spec(self) -> str:
        return f"{self.user}@{self.address}:{self.port}"

    @property
    def accepted(self) -> int:
        """SSH logins the server accepted since the fixture started."""
        return self.sshd.log.count("Accepted publickey")

    @property
    def login_attempts(self) -> int:
        """Times a client got as far as offering a key."""
        return sum("publickey for" in line for line in self.sshd.log.splitlines())

    def connection_pids(self) -> list[int]:
        """sshd's per-connection processes: its children, and theirs that are sshd."""
        return sshd_connection_pids(self.sshd)

    @property
    def open_connections(self) -> int:
        return len(self.connection_pids())

    async def drop_connections(self) -> None:
        """Kill every sshd process serving a connection, as a crash would; the
        listener and the users' own processes stay."""
        for pid in self.connection_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    async def stop(self) -> None:
        await asyncio.to_thread(self.sshd.stop)

    async def start(self) -> None:
        """Listen again on the same address and port, with the same host key."""
        port = self.port
        await asyncio.to_thread(self.sshd.start)
        assert self.sshd.port == port, "sshd came back on another port"


def make_transport(host: LoopbackHost, **kwargs: Any) -> RemoteTransport:
    """A RemoteTransport to the loopback host with test-friendly [remote] settings
    (`kwargs` are RemoteSettings fields)."""
    options: dict[str, Any] = {
        "known_hosts": str(host.known_hosts),
        "ssh_config": str(host.ssh_config),
        "connect_timeout": 5.0,
        "reconnect_delay": 0.05,
        "reconnect_max_delay": 0.4,
    }
    options.update(kwargs)
    return RemoteTransport(host.spec, RemoteSettings(**options))


class StateWatch:
    """Wakes a test when the transport's connected state or last error changes."""

    def __init__(self, transport: RemoteTransport) -> None:
        self._changed = asyncio.Event()
        transport.add_listener(lambda _t: self._changed.set())

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                self._changed.clear()
                if condition():
                    return
                await self._changed.wait()


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], timeout: float = 5.0, what: str = ""
) -> None:
    """Poll something only the host can show (a process gone, a file written)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or check}")
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture(name="loopback_host")
async def loopback_host_fixture(
    real_sshd: SSHDFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LoopbackHost]:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    local_home = tmp_path / "local-home"
    local_home.mkdir()
    monkeypatch.setenv("HOME", str(local_home))
    home = tmp_path / "host-home"
    bin_dir = tmp_path / "host-bin"
    home.mkdir()
    bin_dir.mkdir()
    sshd = real_sshd(env={"HOME": str(home), "PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"})
    yield LoopbackHost(sshd, home, bin_dir, tmp_path / "client")


# --------------------------------------------------------------------------- the whole lab


#: One Linux VM that is running and ready within a second: host faults need a ready VM.
HOST_LAB_VMS = (
    LabVMSpec(
        "runner", initial="running", ip_after=0.3, port_after=0.6, login_after=0.9, os="linux"
    ),
)


class HostLab:
    """The demo lab (tart VMs, a Kind-like API server, Docker) as a Mac host behind a
    real sshd: the host's kubeconfig and Docker socket where a Mac keeps them, tart on
    the login PATH, and a local side (HOME, known_hosts, ssh_config, a short TMPDIR
    for megatui's private directory) that nothing else uses."""

    def __init__(self, sshd: RealSSHD, lab: DemoLab, root: Path, tmpdir: Path) -> None:
        assert lab.tart is not None
        self.sshd = sshd
        self.lab = lab
        self.tmpdir = tmpdir
        self.local_home = root / "local-home"
        (self.local_home / ".ssh").mkdir(parents=True)
        self.known_hosts = self.local_home / ".ssh" / "known_hosts"
        self.trust()
        self.ssh_config = self.local_home / ".ssh" / "config"
        self.ssh_config.write_text(
            f"Host *\n    IdentityFile {sshd.client_key_path}\n    IdentitiesOnly yes\n"
        )
        settings = load_settings(lab.config_path, environ={})
        # Host-side paths only: tart by name on the login PATH, the kubeconfig and the
        # Docker socket found in the host's HOME. Locally none of these exist.
        self.config = root / "megatui.toml"
        toml = lab.tart.megatui_config_toml().replace(
            f'path = "{lab.tart.tart_path}"', 'path = "tart"'
        )
        self.config.write_text(
            toml
            + f'\n[kube]\ncontext = "{settings.kube_context}"\n'
            + "\n[remote]\nconnect_timeout = 5.0\n"
            + f"known_hosts = {toml_value(str(self.known_hosts))}\n"
            + f"ssh_config = {toml_value(str(self.ssh_config))}\n"
        )
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("MEGATUI_", "SSH_"))}
        self.env.update(HOME=str(self.local_home), TMPDIR=str(tmpdir), **lab.environ())

    @property
    def spec(self) -> str:
        return f"{self.sshd.user}@{self.sshd.host}:{self.sshd.port}"

    def trust(self) -> None:
        """Put the host's current key into known_hosts (the user accepted it)."""
        self.known_hosts.write_text(self.sshd.known_hosts_line() + "\n")

    def connection_pids(self) -> list[int]:
        return sshd_connection_pids(self.sshd)

    def listener_pids(self) -> set[int]:
        return sshd_listener_pids(self.sshd)

    def settings(self, **overrides: Any) -> Settings:
        return load_settings(self.config, overrides, environ={})

    def transport(self, **overrides: Any) -> RemoteTransport:
        """The transport `megatui --host` builds from this lab's config (its [remote]
        table) with `overrides` (Settings attributes) on top."""
        transport = build_transport(self.settings(**{"host": self.spec, **overrides}))
        assert isinstance(transport, RemoteTransport)
        return transport

    def private_dirs(self) -> list[Path]:
        return sorted(self.tmpdir.glob("megatui-*"))


@pytest.fixture(name="host_lab")
def host_lab_fixture(
    real_sshd: SSHDFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[HostLab]:
    """A HostLab; the test's own process uses its local side too (HOME, TMPDIR)."""
    lab = DemoLab(tmp_path / "lab", HOST_LAB_VMS)
    # Short: unix socket paths are limited to 104 bytes on macOS, and to keep
    # megatui's private directory in it (it falls back to /tmp for a long TMPDIR).
    tmpdir = Path(tempfile.mkdtemp(prefix="mt-", dir="/tmp"))
    lab.start()
    try:
        assert lab.tart is not None
        settings = load_settings(lab.config_path, environ={})
        assert settings.kubeconfig and settings.docker_host
        host_home = tmp_path / "host-home"
        (host_home / ".kube").mkdir(parents=True)
        (host_home / ".docker" / "run").mkdir(parents=True)
        shutil.copy(settings.kubeconfig, host_home / ".kube" / "config")
        (host_home / ".docker" / "run" / "docker.sock").symlink_to(
            settings.docker_host.removeprefix("unix://")
        )
        sshd = real_sshd(
            env={"HOME": str(host_home), "PATH": f"{lab.tart.paths.bin_dir}:/usr/bin:/bin"}
        )
        host = HostLab(sshd, lab, tmp_path, tmpdir)
        monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
        for name, value in host.env.items():
            if name in ("HOME", "TMPDIR") or name.startswith("MEGATUI_"):
                monkeypatch.setenv(name, value)
        monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
        yield host
    finally:
        lab.stop()
        _forget_kube_temp_files(tmpdir)
        shutil.rmtree(tmpdir, ignore_errors=True)


def _forget_kube_temp_files(tmpdir: Path) -> None:
    """The kubernetes client writes a kubeconfig's inline certificates and key to temp
    files, cached by content for the whole process: the lab's certificates are the
    same in every test, so the next test would be handed files in a deleted TMPDIR."""
    with contextlib.suppress(ImportError, AttributeError):
        from kubernetes.aio.config import kube_config

        cache: dict[str, str] = kube_config._temp_files
        for content, path in list(cache.items()):
            if str(path).startswith(str(tmpdir)):
                del cache[content]
