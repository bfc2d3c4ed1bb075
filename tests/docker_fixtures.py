"""Docker test plumbing: a real dockerd in a temporary directory, a busybox image made
without a registry, the lab's fake Engine API, and misbehaving unix-socket servers.

Load with `pytest_plugins = ["docker_fixtures"]` in a test module.

The real daemon runs with everything that would touch the host's own setup turned off:
vfs storage (no overlay mounts), no iptables, no default bridge (`docker0`), no
ip_forward change, and its own data, exec and containerd namespaces, so it can run next to
another Docker on the same machine. What the tests create on it (containers, the bridge
networks `kind` and `kind-old`) is removed again, and teardown checks that no process,
bridge interface or cgroup of it is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import os
import shutil
import signal
import socket
import struct
import subprocess
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
from conftest import IN_CI, require_binary

from megatui.lab.docker_api import FakeDocker, start_fake_docker

CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ROLE_LABEL = "io.x-k8s.kind.role"
NODE_IMAGE = "megatui-test/kind-node:busybox"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

#: The flags that work in this sandbox (as root, no registry, maybe beside another Docker).
DOCKERD_FLAGS = (
    "--storage-driver=vfs",
    "--iptables=false",
    "--ip6tables=false",
    "--ip-forward=false",
    "--ip-masq=false",
    "--bridge=none",
    "--userland-proxy=false",
    # Tests force-remove their containers; this only bounds a shutdown that finds one.
    "--shutdown-timeout=2",
)

BUSYBOX_APPLETS = ("sh", "sleep", "true")


def short_tempdir(prefix: str) -> Path:
    """A directory whose socket paths stay under the 108-byte unix socket limit,
    which pytest's tmp_path can exceed."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@pytest.fixture
def docker_sock_dir() -> Iterator[Path]:
    path = short_tempdir("mt-dk-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


# ---- the lab's fake Engine API --------------------------------------------------------


@pytest.fixture
async def fake_docker(docker_sock_dir: Path) -> AsyncIterator[FakeDocker]:
    fake = await start_fake_docker(docker_sock_dir / "fake-docker.sock")
    try:
        yield fake
    finally:
        await fake.stop()


# ---- unix socket servers that are not a Docker daemon ----------------------------------


def refusing_socket(path: Path) -> Path:
    """A unix socket file with nothing listening: what a crashed daemon leaves behind."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))
    return path


def free_loopback_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (just released by us)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


ConnectionHandler = Callable[
    [asyncio.StreamReader, asyncio.StreamWriter], Coroutine[Any, Any, None]
]


@dataclass
class RawServer:
    """An asyncio unix server running `handler` per connection, counting connections."""

    path: Path
    connections: int = 0
    finished: int = 0
    _server: asyncio.AbstractServer | None = None
    _idle: asyncio.Event = field(default_factory=asyncio.Event)
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    async def start(self, handler: ConnectionHandler) -> None:
        async def run(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            self._idle.clear()
            task = asyncio.current_task()
            if task is not None:
                self._handlers.add(task)
            try:
                await handler(reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass  # the client hung up: the normal end of these conversations
            except asyncio.CancelledError:
                # stop() cancels handlers whose client never hung up (a dropped pooled
                # connection that only the garbage collector closes). Ending normally,
                # because Python 3.11's stream server logs cancelled handlers as errors.
                pass
            finally:
                if task is not None:
                    self._handlers.discard(task)
                writer.close()
                self.finished += 1
                if self.finished == self.connections:
                    self._idle.set()

        self._server = await asyncio.start_unix_server(run, path=str(self.path))

    async def wait_idle(self, timeout: float) -> None:
        """Until every connection so far has ended."""
        if self.finished < self.connections:
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


@contextlib.asynccontextmanager
async def raw_server(path: Path, handler: ConnectionHandler) -> AsyncIterator[RawServer]:
    server = RawServer(path)
    await server.start(handler)
    try:
        yield server
    finally:
        await server.stop()


async def _read_request_head(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        await reader.readuntil(b"\r\n\r\n")


def replying(data: bytes) -> ConnectionHandler:
    """Answers every request with `data`, then closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request_head(reader)
        writer.write(data)
        await writer.drain()

    return handler


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Accepts and never answers; holds the connection until the client gives up."""
    await reader.read()


def dripping(release: asyncio.Event, interval: float) -> ConnectionHandler:
    """Sends a status line one byte per `interval` until `release` is set: every socket
    read succeeds, so only an overall deadline can stop a client."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request_head(reader)
        for byte in b"HTTP/1.1 200 OK" * 1000:
            if release.is_set():
                return
            writer.write(bytes([byte]))
            await writer.drain()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(release.wait(), interval)

    return handler


# ---- a real dockerd ----------------------------------------------------------------------


def _ping(sock_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2.0)
            s.connect(str(sock_path))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := s.recv(4096):
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def _proc_cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _proc_ppid_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), fields[0]


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def processes_of(base: Path) -> list[int]:
    """Live processes whose command line names `base` (containerd, shims) and all their
    descendants (the containers' own processes)."""
    marker = str(base)
    parents = {pid: _proc_ppid_state(pid) for pid in _all_pids()}
    live = {pid: ps for pid, ps in parents.items() if ps is not None and ps[1] != "Z"}
    found = {pid for pid in live if pid != os.getpid() and marker in _proc_cmdline(pid)}
    grew = True
    while grew:
        children = {pid for pid, ps in live.items() if ps[0] in found} - found
        grew = bool(children)
        found |= children
    return sorted(found)


def _kill_and_wait(pids: list[int], timeout: float) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Gone, or a zombie that its parent (init) reaps: either way it holds nothing.
        alive = [pid for pid in pids if (ps := _proc_ppid_state(pid)) is not None and ps[1] != "Z"]
        if not alive:
            return
        time.sleep(0.05)  # polling /proc for the condition, bounded by the deadline
    raise RuntimeError(f"processes {pids} survived SIGKILL for {timeout:g} s")


def _is_static_elf(path: str) -> bool:
    """True for an ELF executable without a PT_INTERP header (no dynamic loader needed),
    which is what an empty rootfs can run."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return False
        is64, little = head[4] == 2, head[5] == 1
        end = "<" if little else ">"
        if is64:
            phoff, phentsize, phnum = (
                struct.unpack_from(end + "Q", head, 32)[0],
                *struct.unpack_from(end + "HH", head, 54),
            )
        else:
            phoff, phentsize, phnum = (
                struct.unpack_from(end + "I", head, 28)[0],
                *struct.unpack_from(end + "HH", head, 42),
            )
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            (p_type,) = struct.unpack(end + "I", f.read(4))
            if p_type == 3:  # PT_INTERP
                return False
    return True


def busybox_rootfs_tar(busybox: str) -> bytes:
    """A rootfs with just a static busybox and the applets the tests run."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for directory in ("bin", "tmp", "proc", "sys", "dev", "etc"):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        data = Path(busybox).read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size = len(data)
        info.mode = 0o755
        tar.addfile(info, io.BytesIO(data))
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tar.addfile(info)
    return out.getvalue()


class DockerDaemon:
    """One dockerd under `base`, startable and stoppable more than once."""

    def __init__(self, dockerd: str, base: Path) -> None:
        self.dockerd = dockerd
        self.base = base
        self.socket = base / "docker.sock"
        self.log_path = base / "dockerd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._bridges: set[str] = set()
        (base / "daemon.json").write_text("{}\n")  # keep /etc/docker/daemon.json out
        # containerd accepts only [A-Za-z0-9] runs joined by single [._-]; mkdtemp's
        # random names can break that, a digest of them cannot.
        namespace = "megatui-test-" + hashlib.sha256(str(base).encode()).hexdigest()[:12]
        # Containers' cgroups go under a parent of this daemon's own, removed at the end,
        # rather than the host's shared /docker.
        self.cgroup_parent = namespace
        self.argv = [
            dockerd,
            *DOCKERD_FLAGS,
            f"--data-root={base / 'data'}",
            f"--exec-root={base / 'exec'}",
            f"--host=unix://{self.socket}",
            f"--pidfile={base / 'docker.pid'}",
            f"--config-file={base / 'daemon.json'}",
            # Own namespaces in case dockerd picks up a system containerd.
            f"--containerd-namespace={namespace}",
            f"--containerd-plugins-namespace={namespace}-plugins",
            f"--cgroup-parent=/{self.cgroup_parent}",
        ]

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> Any:
        return docker.DockerClient(base_url=self.url, version="auto", timeout=30)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        assert self.proc is None, "already running"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not _ping(self.socket):
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                raise RuntimeError(f"dockerd exited with {code}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dockerd not ready in {START_TIMEOUT:g} s:\n{self.log_tail()}")
            time.sleep(0.05)  # polling /_ping for readiness, bounded by the deadline

    def remove_test_objects(self) -> None:
        """Every container and every network that is not built in."""
        client = self.client()
        try:
            for container in client.containers.list(all=True):
                container.remove(force=True)
            for network in client.networks.list():
                if network.name not in ("bridge", "host", "none"):
                    self._bridges.add("br-" + network.id[:12])
                    network.remove()
        finally:
            client.close()

    def stop(self) -> list[int]:
        """Stops dockerd and returns the pids of processes it left behind (now killed)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            if proc.poll() is None:
                with contextlib.suppress(Exception):
                    self.remove_test_objects()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
        strays = processes_of(self.base)
        _kill_and_wait(strays, STOP_TIMEOUT)
        return strays

    def leftover_bridges(self) -> list[str]:
        return sorted(b for b in self._bridges if Path("/sys/class/net", b).exists())

    def remove_cgroups(self) -> list[str]:
        """Removes the (then empty) cgroup parents; returns those that would not go."""
        left = []
        for path in [
            *Path("/sys/fs/cgroup").glob(f"*/{self.cgroup_parent}"),
            Path("/sys/fs/cgroup", self.cgroup_parent),
        ]:
            if path.is_dir():
                try:
                    path.rmdir()
                except FileNotFoundError:
                    pass  # cpu and cpuacct can be one hierarchy under two names
                except OSError:
                    left.append(str(path))
        return left


def require_dockerd() -> str:
    dockerd = require_binary("dockerd", "/usr/sbin/dockerd")
    if os.geteuid() != 0:
        message = "dockerd needs root"
        if IN_CI:
            pytest.fail(f"{message}, but CI=true requires it", pytrace=False)
        pytest.skip(message)
    return dockerd


@dataclass
class DockerEngine:
    """The session's daemon, a client for it and the imported node image."""

    daemon: DockerDaemon
    client: Any  # docker.DockerClient
    image: str

    @property
    def url(self) -> str:
        return self.daemon.url

    def reset(self) -> None:
        self.daemon.remove_test_objects()

    def create_network(self, name: str) -> Any:
        return self.client.networks.create(name, driver="bridge")

    def run_node(
        self,
        name: str,
        *,
        cluster: str | None,
        role: str | None = None,
        command: tuple[str, ...] = ("sleep", "3600"),
        network: str | None = "kind",
    ) -> Any:
        """Starts a container named and labelled like a Kind node (no labels when cluster
        is None). Returns once it runs; a `true` container has then already exited."""
        labels: dict[str, str] = {}
        if cluster is not None:
            labels[CLUSTER_LABEL] = cluster
        if role is not None:
            labels[ROLE_LABEL] = role
        networking: dict[str, str] = {"network": network} if network else {"network_mode": "none"}
        return self.client.containers.run(
            self.image,
            list(command),
            name=name,
            hostname=name,
            labels=labels,
            detach=True,
            **networking,
        )


def _finish_daemon(daemon: DockerDaemon) -> None:
    strays = daemon.stop()
    bridges = daemon.leftover_bridges()
    for bridge in bridges:
        subprocess.run(["ip", "link", "delete", bridge], check=False, capture_output=True)
    cgroups = daemon.remove_cgroups()
    shutil.rmtree(daemon.base, ignore_errors=True)
    assert not strays, f"dockerd left processes behind: {strays}"
    assert not bridges, f"dockerd left bridge interfaces behind: {bridges}"
    assert not cgroups, f"dockerd left cgroups behind: {cgroups}"


@pytest.fixture(scope="session")
def docker_session_engine() -> Iterator[DockerEngine]:
    dockerd = require_dockerd()
    busybox = require_binary("busybox")
    if not _is_static_elf(busybox):
        message = f"{busybox} is dynamically linked; the test image needs busybox-static"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    daemon = DockerDaemon(dockerd, short_tempdir("mt-dockerd-"))
    client = None
    try:
        daemon.start()
        client = daemon.client()
        repository, tag = NODE_IMAGE.rsplit(":", 1)
        client.api.import_image_from_data(
            busybox_rootfs_tar(busybox), repository=repository, tag=tag
        )
        yield DockerEngine(daemon=daemon, client=client, image=NODE_IMAGE)
    finally:
        if client is not None:
            client.close()
        _finish_daemon(daemon)


@pytest.fixture
def docker_engine(docker_session_engine: DockerEngine) -> Iterator[DockerEngine]:
    """The session's engine, emptied of containers and networks after each test."""
    docker_session_engine.reset()
    yield docker_session_engine
    docker_session_engine.reset()


@pytest.fixture
def private_daemon() -> Iterator[DockerDaemon]:
    """A daemon of the test's own, which it may stop and start."""
    daemon = DockerDaemon(require_dockerd(), short_tempdir("mt-dockerd-"))
    try:
        yield daemon
    finally:
        _finish_daemon(daemon)
