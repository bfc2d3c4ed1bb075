"""A simulated Tart host on this machine: VMs, a fake `tart` executable, SSH servers.

`create_tart_lab(root, vms)` writes a TART_HOME with real-looking VM directories, one
spec file per VM, and `root/bin/tart`, an executable wrapper that hard-codes the lab
root, so the fake works with no environment at all (for example when another process
runs it over SSH). Every VM gets its own loopback address and free high port; its SSH
server lives inside its `tart run` process (see `megatui.lab.vmserver`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from hashlib import sha256
from pathlib import Path
from typing import Literal

import megatui
from megatui.lab.fake_tart import (
    FAULTS,
    LabPaths,
    lock_holder,
    read_json,
    swift_json,
    write_atomic,
)
from megatui.lab.vmserver import SSHD_FAULTS

#: The image a lab caches by default, so `tart list` shows OCI entries (twice each).
DEFAULT_OCI_IMAGES: tuple[str, ...] = ("ghcr.io/cirruslabs/macos-sequoia-base:latest",)

#: Apple's limit on running macOS VMs per host (docs/facts/tart.md §9.4).
MACOS_VM_LIMIT = 2

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")


@dataclass(frozen=True)
class LabVMSpec:
    """One lab VM. Times are seconds after its `tart run` starts."""

    name: str
    initial: Literal["stopped", "running", "suspended"] = "stopped"
    ip_after: float = 2.0
    port_after: float = 4.0
    login_after: float = 6.0
    user: str = "admin"
    password: str = "admin"
    #: An OpenSSH public key or authorized_keys line, or the path of a .pub file.
    authorized_key: str | None = None
    reject_logins: bool = False
    os: str = "darwin"
    disk_gb: int = 50

    def __post_init__(self) -> None:
        # Names become directory names and TOML keys; keep to docs/facts/tart.md §8's advice.
        if not self.name or not set(self.name) <= _NAME_CHARS or self.name in (".", ".."):
            raise ValueError(f"lab VM name {self.name!r}: use only A-Z a-z 0-9 . _ -")
        if self.initial not in ("stopped", "running", "suspended"):
            raise ValueError(f"lab VM {self.name}: unknown initial state {self.initial!r}")
        if self.os not in ("darwin", "linux"):
            raise ValueError(f"lab VM {self.name}: os must be darwin or linux")
        if self.ip_after < 0 or not 0 <= self.port_after <= self.login_after:
            raise ValueError(f"lab VM {self.name}: need 0 <= port_after <= login_after")


def many_vms(count: int, running: int = 0) -> tuple[LabVMSpec, ...]:
    """`count` Linux VMs (no macOS limit), the first `running` of them running and
    quick to boot, the rest stopped: a big local host, for scale benchmarks."""
    return tuple(
        LabVMSpec(
            f"vm-{i:03d}",
            initial="running" if i < running else "stopped",
            ip_after=0.2,
            port_after=0.4,
            login_after=0.6,
            os="linux",
        )
        for i in range(count)
    )


def process_alive(pid: int) -> bool:
    """Whether pid is a live process (a zombie counts as dead: it can do nothing)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    tasks = Path(f"/proc/{pid}/task")
    if tasks.is_dir():
        # Every thread counts: a process whose main thread has exited shows "Z" while
        # its other threads still run, and still hold its files (and its locks).
        for stat in tasks.glob("*/stat"):
            try:
                # The state letter follows the parenthesised command name.
                if stat.read_text().rpartition(")")[2].split()[0] != "Z":
                    return True
            except (OSError, IndexError):
                continue
        return False
    out = subprocess.run(
        ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return out.returncode == 0 and not out.stdout.strip().startswith("Z")


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
        return out.stdout


def _read_authorized_key(value: str | None) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if " " not in text and Path(text).expanduser().is_file():
        return Path(text).expanduser().read_text("utf-8").strip()
    return text


def _host_key_text() -> bytes:
    import asyncssh  # only lab creation and rotation pay for it

    return asyncssh.generate_private_key("ssh-ed25519", comment="megatui-lab").export_private_key()


def _pick_ip(index: int) -> str:
    """127.0.0.(10+i) where the whole 127/8 answers (Linux); 127.0.0.1 otherwise (macOS)."""
    candidate = f"127.0.0.{10 + index}"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((candidate, 0))
        except OSError:
            return "127.0.0.1"
    return candidate


def _free_port(ip: str, taken: set[int]) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port
    raise RuntimeError(f"no free port on {ip}")


def _mac() -> str:
    octets = [random.randrange(256) for _ in range(6)]
    octets[0] = (octets[0] | 0x02) & 0xFE  # locally administered, unicast
    return ":".join(f"{o:02x}" for o in octets)


def _vm_config(os_name: str) -> dict[str, object]:
    """config.json as VMConfig.save writes it (docs/facts/tart.md §4)."""
    config: dict[str, object] = {
        "version": 1,
        "os": os_name,
        "arch": "arm64",
        "cpuCountMin": 4,
        "cpuCount": 4,
        "memorySizeMin": 4 * 1024**3,
        "memorySize": 8 * 1024**3,
        "macAddress": _mac(),
        "display": {"width": 1024, "height": 768},
        "diskFormat": "raw",
    }
    if os_name == "darwin":
        config["ecid"] = base64.b64encode(os.urandom(8)).decode()
        config["hardwareModel"] = base64.b64encode(os.urandom(32)).decode()
    return config


def _write_vm_files(vm_dir: Path, os_name: str, disk_gb: int) -> None:
    vm_dir.mkdir(parents=True)
    (vm_dir / "config.json").write_text(swift_json(_vm_config(os_name)) + "\n")
    with (vm_dir / "disk.img").open("wb") as disk:
        disk.truncate(disk_gb * 10**9)  # sparse: the apparent size is what Disk shows
    (vm_dir / "nvram.bin").write_bytes(b"\0" * 1024)


class TartLab:
    """A lab created by `create_tart_lab`, or found again with `TartLab.load`."""

    def __init__(self, root: Path, specs: Sequence[LabVMSpec]) -> None:
        self.root = root
        self.paths = LabPaths(root)
        self.tart_path: Path = self.paths.tart
        self.specs: tuple[LabVMSpec, ...] = tuple(specs)
        self._runners: dict[str, subprocess.Popen[bytes]] = {}

    @classmethod
    def load(cls, root: Path) -> TartLab:
        paths = LabPaths(root)
        settings = read_json(paths.settings)
        if settings is None:
            raise FileNotFoundError(f"no megatui tart lab at {root}")
        fields = LabVMSpec.__dataclass_fields__
        specs = []
        for name in settings.get("vms", []):
            data = read_json(paths.spec(name)) or {}
            specs.append(LabVMSpec(**{k: v for k, v in data.items() if k in fields}))
        return cls(root, specs)

    # ----------------------------------------------------------------- lookups

    def spec(self, name: str) -> LabVMSpec:
        for s in self.specs:
            if s.name == name:
                return s
        raise KeyError(f"no lab VM named {name!r}")

    def address(self, name: str) -> tuple[str, int]:
        """The VM's (IP, SSH port) once it is up."""
        self.spec(name)
        data = read_json(self.paths.spec(name)) or {}
        return str(data["ip"]), int(data["port"])

    def run_pid(self, name: str) -> int | None:
        """The pid of the `tart run` process holding the VM, if it is running."""
        return lock_holder(self.paths.vm_dir(name) / "config.json") or None

    def log_path(self, name: str) -> Path:
        return self.paths.log(name)

    def host_key_path(self, name: str) -> Path:
        return self.paths.host_key(name)

    def hung_pids(self) -> list[int]:
        """Pids recorded by fake tart invocations that were told to hang."""
        try:
            return sorted(int(p.name) for p in self.paths.hung.iterdir() if p.name.isdigit())
        except FileNotFoundError:
            return []

    def megatui_config_toml(self) -> str:
        """A megatui config file pointing at this lab."""
        default_user = self.specs[0].user if self.specs else "admin"
        default_password = self.specs[0].password if self.specs else "admin"
        q = json.dumps  # a JSON string is a valid TOML basic string
        lines = [
            "# megatui configuration for the tart lab at " + str(self.root),
            "[tart]",
            f"path = {q(str(self.tart_path))}",
            "",
            "[ssh]",
            f"user = {q(default_user)}",
            f"password = {q(default_password)}",
            "agent = false  # lab VMs take passwords; keep personal keys out of it",
        ]
        for s in self.specs:
            _ip, port = self.address(s.name)
            lines += ["", f"[vms.{q(s.name)}]", f"port = {port}"]
            if s.user != default_user:
                lines.append(f"user = {q(s.user)}")
            if s.password != default_password:
                lines.append(f"password = {q(s.password)}")
        return "\n".join(lines) + "\n"

    # ----------------------------------------------------------------- control

    def start(self, name: str, *, timeout: float = 10.0) -> int:
        """Start one VM the way a user would (`tart run --no-graphics` in its own
        session) and return its pid once it holds the VM."""
        proc = self._spawn(name)
        self._await_running({name: proc}, timeout)
        return proc.pid

    def start_running(self, *, timeout: float = 10.0) -> None:
        """Start the VMs whose initial state is running; return once all hold their VM."""
        procs = {
            s.name: self._spawn(s.name)
            for s in self.specs
            if s.initial == "running" and self.run_pid(s.name) is None
        }
        self._await_running(procs, timeout)

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        self.spec(name)
        log_path = self.paths.log(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [str(self.tart_path), "run", "--no-graphics", name],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._runners[name] = proc
        return proc

    def _await_running(self, procs: dict[str, subprocess.Popen[bytes]], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        waiting = dict(procs)
        while waiting:
            for name, proc in list(waiting.items()):
                record = read_json(self.paths.run_record(name)) or {}
                # The lock comes first, the run record right after: wait for both.
                if self.run_pid(name) == proc.pid and record.get("pid") == proc.pid:
                    del waiting[name]
                elif proc.poll() is not None:
                    lines = self.paths.log(name).read_text("utf-8", "replace").strip()
                    tail = lines.splitlines()[-1:] or ["no output"]
                    raise RuntimeError(
                        f"lab VM {name} did not start (exit {proc.returncode}): {tail[0]}"
                    )
            if waiting and time.monotonic() >= deadline:
                raise RuntimeError(f"lab VMs {sorted(waiting)} did not start within {timeout:g} s")
            if waiting:
                time.sleep(0.01)

    def stop_all(self, timeout: float = 5.0) -> None:
        """Kill every process of this lab (VM runners however started, hung fake
        tarts) and wait until each is gone."""
        pids = {pid for s in self.specs if (pid := self.run_pid(s.name))}
        pids |= {p.pid for p in self._runners.values() if p.poll() is None}
        marker = str(self.tart_path)
        for pid in self.hung_pids():
            # The pid may have been reused since it was recorded: check it is ours.
            if process_alive(pid) and marker in _command_line(pid):
                pids.add(pid)
            with contextlib.suppress(FileNotFoundError):
                (self.paths.hung / str(pid)).unlink()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for proc in self._runners.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        self._runners.clear()
        deadline = time.monotonic() + timeout
        while any(process_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.01)
        while any(self.run_pid(s.name) for s in self.specs) and time.monotonic() < deadline:
            time.sleep(0.01)
        left = sorted(p for p in pids if process_alive(p))
        if left:
            raise RuntimeError(f"lab processes still alive after SIGKILL: {left}")

    def crash(self, name: str, timeout: float = 5.0) -> None:
        """The VM dies under its user (a guest panic, a killed Virtualization process):
        its `tart run` is SIGKILLed, nobody asked for a stop. Returns once tart sees it
        stopped."""
        pid = self.run_pid(name)
        if pid is None:
            raise RuntimeError(f"lab VM {name} is not running")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while self.run_pid(name) == pid:
            if time.monotonic() >= deadline:
                raise RuntimeError(f"lab VM {name}: its tart run {pid} survived SIGKILL")
            time.sleep(0.01)

    def set_hang(self, command: str, hang: bool) -> None:
        """Make `tart <command>` (e.g. "list", "ip", "version") block forever, or not."""
        flag = self.paths.hang / command
        if hang:
            flag.parent.mkdir(parents=True, exist_ok=True)
            flag.touch()
        else:
            with contextlib.suppress(FileNotFoundError):
                flag.unlink()

    def set_fault(self, command: str, fault: str | None) -> None:
        """Make `tart <command>` act out a fault of fake_tart.FAULTS ("garbage",
        "locked"), or behave again (None)."""
        flag = self.paths.fault / command
        if fault is None:
            with contextlib.suppress(FileNotFoundError):
                flag.unlink()
            return
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}: one of {', '.join(sorted(FAULTS))}")
        flag.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(flag, fault + "\n")

    def set_sshd_fault(self, name: str, fault: str | None) -> None:
        """Break the running VM's sshd: "down" (nothing listens, sessions are cut) or
        "listener-dead" (nothing listens, open sessions live on); None mends it."""
        self.spec(name)
        flag = self.paths.lab_vm_dir(name) / "sshd_fault"
        if fault is None:
            with contextlib.suppress(FileNotFoundError):
                flag.unlink()
            return
        if fault not in SSHD_FAULTS:
            raise ValueError(f"unknown sshd fault {fault!r}: one of {sorted(SSHD_FAULTS)}")
        write_atomic(flag, fault + "\n")

    def rotate_host_key(self, name: str) -> None:
        """Give the VM a new SSH host key; new connections see it at once."""
        self.spec(name)
        write_atomic(self.paths.host_key(name), _host_key_text(), mode=0o600)

    def set_reject_logins(self, name: str, flag: bool) -> None:
        """Make the VM's SSH server refuse every login (or accept them again)."""
        self._update_spec(name, reject_logins=flag)

    def _update_spec(self, name: str, **changes: object) -> None:
        data = read_json(self.paths.spec(name))
        if data is None:
            raise KeyError(f"no lab VM named {name!r}")
        data.update(changes)
        write_atomic(self.paths.spec(name), json.dumps(data, indent=2) + "\n")
        self.specs = tuple(
            LabVMSpec(**{**asdict(s), **changes}) if s.name == name else s for s in self.specs
        )


def _wrapper_script(root: Path) -> str:
    package_parent = str(Path(megatui.__file__).resolve().parent.parent)
    body = (
        "import sys\n"
        f"sys.path.insert(0, {package_parent!r})\n"
        "from megatui.lab.fake_tart import main\n"
        f"sys.exit(main(sys.argv[1:], root={str(root)!r}))\n"
    )
    if " " in sys.executable or len(sys.executable) > 120:
        # A shebang cannot hold spaces (and has a length limit): go through sh.
        return f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -c {shlex.quote(body)} "$@"\n'
    return f"#!{sys.executable}\n# megatui lab: fake tart (megatui.lab.fake_tart)\n{body}"


def _write_oci_image(paths: LabPaths, image: str) -> None:
    repo, _, tag = image.rpartition(":")
    if not repo or "/" not in repo:
        raise ValueError(f"OCI image {image!r}: expected host/namespace/name:tag")
    repo_dir = paths.oci / repo
    digest = "sha256:" + sha256(image.encode()).hexdigest()
    _write_vm_files(repo_dir / digest, "darwin", 50)
    (repo_dir / tag).symlink_to(digest)


def create_tart_lab(
    root: Path,
    vms: Sequence[LabVMSpec],
    *,
    oci_images: Iterable[str] = DEFAULT_OCI_IMAGES,
    ip_retry_interval: float = 1.0,
) -> TartLab:
    """Write a lab into root (which must not hold one already). No VM is started;
    call `TartLab.start_running()` for those whose initial state is running.

    `ip_retry_interval` is how long a failing `tart ip` sleeps between attempts
    (real tart: 1 s); tests shorten it."""
    names = [v.name for v in vms]
    if len(set(names)) != len(names):
        raise ValueError("lab VM names must be unique")
    running = [v.name for v in vms if v.initial == "running" and v.os == "darwin"]
    if len(running) > MACOS_VM_LIMIT:
        raise ValueError(f"at most {MACOS_VM_LIMIT} macOS VMs can run at once: {running}")
    paths = LabPaths(root)
    if paths.settings.exists():
        raise FileExistsError(f"{root} already holds a tart lab (use TartLab.load)")
    paths.vms.mkdir(parents=True, exist_ok=True)
    paths.oci.mkdir(parents=True, exist_ok=True)
    taken: set[int] = set()
    for index, spec in enumerate(vms):
        ip = _pick_ip(index)
        port = _free_port(ip, taken)
        taken.add(port)
        vm_dir = paths.vm_dir(spec.name)
        _write_vm_files(vm_dir, spec.os, spec.disk_gb)
        if spec.initial == "suspended":
            (vm_dir / "state.vzvmsave").write_bytes(b"megatui lab suspended VM state\n")
        data = asdict(spec)
        data.update(authorized_key=_read_authorized_key(spec.authorized_key), ip=ip, port=port)
        write_atomic(paths.spec(spec.name), json.dumps(data, indent=2) + "\n")
        write_atomic(paths.host_key(spec.name), _host_key_text(), mode=0o600)
    for image in oci_images:
        _write_oci_image(paths, image)
    write_atomic(
        paths.settings,
        json.dumps({"vms": names, "ip_retry_interval": ip_retry_interval}, indent=2) + "\n",
    )
    paths.bin_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(paths.tart, _wrapper_script(root), mode=0o755)
    return TartLab(root, vms)
