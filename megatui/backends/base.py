"""The one VM-backend interface: local tart, tart over `--host`, and Orchard.

The monitor, the phase engine, the panels and the headless commands talk to a
`VMBackend` and never ask which one it is. What differs between backends is kept
behind four ideas:

* `list_vms()` gives `BackendVM`s (Tart's states, plus pre-boot stages and worker
  facts when a controller schedules the VMs);
* `ssh_route()` says what to dial for a VM's sshd and through what: an `SSHReach`
  (`open_connection` + `ssh_tunnel`, the two things `SSHProber` uses of a
  `Transport`), so the prober reaches any backend's VMs with the same code;
* `ssh_command()` gives the pieces the user's own `ssh` needs (`-J host`, a
  ProxyCommand, or nothing) and the destination host to put after `user@`;
* every failure is a `BackendError`: one line, with a machine-readable kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from megatui.model import BackendVM, Worker
from megatui.text import one_line

_MAX_MESSAGE = 300


class BackendErrorKind(StrEnum):
    NOT_FOUND = "not-found"  # no such VM
    CONFLICT = "conflict"  # 409: the name is taken
    REFUSED = "refused"  # 412 and its kind: name rules, a terminal VM, a bad transition
    UNAUTHORIZED = "unauthorized"  # 401: bad credentials or a missing role
    ALREADY_RUNNING = "already-running"
    NOT_RUNNING = "not-running"
    VM_LIMIT = "vm-limit"  # Apple's 2-macOS-VM limit on one Mac
    UNREACHABLE = "unreachable"  # no answer from tart's host or the controller
    TIMEOUT = "timeout"
    BAD_RESPONSE = "bad-response"  # HTML, garbage, a cut stream
    NOT_INSTALLED = "not-installed"
    LOCKED = "locked"  # tart: the macOS login keychain is locked
    UNSUPPORTED = "unsupported"  # this backend cannot do that (e.g. a restart policy on tart)
    OTHER = "other"


class BackendError(Exception):
    """A failed backend call. `str()` is one line fit for the user; `kind` is for code;
    `status` is the controller's HTTP status when there was one."""

    def __init__(
        self,
        kind: BackendErrorKind,
        message: str,
        *,
        vm: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(one_line(message, _MAX_MESSAGE))
        self.kind = kind
        self.vm = vm
        self.status = status


@dataclass(frozen=True)
class NewVMSpec:
    """What `create` makes. None leaves the backend's default."""

    name: str
    image: str
    cpu: int | None = None
    memory_mib: int | None = None
    disk_gb: int | None = None
    restart_policy: Literal["Never", "OnFailure"] | None = None
    username: str | None = None
    password: str | None = None

    def __repr__(self) -> str:  # the password stays out of logs
        return f"NewVMSpec(name={self.name!r}, image={self.image!r})"


class SSHReach(Protocol):
    """How SSH connections to VMs are opened: the subset of `Transport` that
    `SSHProber` uses. A local or remote `Transport` is one as it is."""

    async def open_connection(
        self, host: str, port: int, *, timeout: float
    ) -> tuple[asyncio.StreamReader | Any, asyncio.StreamWriter | Any]: ...

    def ssh_tunnel(self) -> Any | None:
        """An object for asyncssh's `tunnel=`, or None to connect directly."""
        ...


@dataclass(frozen=True)
class SSHRoute:
    """Where a VM's sshd is: dial `host:port` through `reach` (asyncssh:
    `connect(host, port, tunnel=reach.ssh_tunnel())`). For tart `host` is the VM's
    IP; for Orchard it is the VM's name (the controller forwards by name)."""

    host: str
    port: int
    reach: SSHReach


@dataclass(frozen=True)
class SSHCommand:
    """Pieces of the user's own `ssh` to a VM: `ssh *options ... user@destination`."""

    options: tuple[str, ...]
    destination: str


@runtime_checkable
class VMBackend(Protocol):
    """Where VMs live and how they are driven. Every call has a timeout, can be
    cancelled, and raises only `BackendError` (besides cancellation)."""

    @property
    def label(self) -> str:
        """Shown in the header: "local", "user@mac", "orchard prod"."""
        ...

    @property
    def name(self) -> str:
        """`BackendVM.backend` and status --json's `backend`: "tart" or "orchard"."""
        ...

    @property
    def can_watch(self) -> bool:
        """Whether `watch()` streams changes (else poll `list_vms`)."""
        ...

    async def list_vms(self) -> list[BackendVM]: ...

    async def ip(self, name: str) -> str | None:
        """The VM's address, None while it has none. Only meaningful for a RUNNING
        VM past its pre-boot stages."""
        ...

    async def start(self, name: str) -> str | None:
        """Start the VM; returns a note for the user when starting is more than
        that (Orchard recreates a stopped VM from its spec: a new machine)."""
        ...

    async def stop(self, name: str) -> None: ...

    async def suspend(self, name: str) -> None: ...

    async def create(self, spec: NewVMSpec) -> None: ...

    async def delete(self, name: str) -> None: ...

    async def details(self, name: str) -> dict[str, object]: ...

    async def log_tail(self, name: str, lines: int = 50) -> list[str]:
        """The last lines of the VM's log; [] when there is none to read."""
        ...

    def ssh_route(self, name: str, ip: str | None, port: int) -> SSHRoute | None:
        """What the readiness probe dials, None while the VM cannot be reached."""
        ...

    def ssh_command(self, name: str, address: str | None, port: int) -> SSHCommand:
        """For the user's own ssh; raises BackendError while there is no address."""
        ...

    async def workers(self) -> list[Worker] | None:
        """The Macs behind a controller; None for tart (one Mac, no workers)."""
        ...

    async def readonly_reason(self) -> str | None:
        """Why this session cannot change anything (an account without the role
        to write), None when it can."""
        ...

    def watch(self, name: str) -> AsyncIterator[BackendVM | None]:
        """Each change of one VM (None: deleted) until the stream ends; for a VM in
        transition. Ends at once when `can_watch` is False."""
        ...

    async def close(self) -> None: ...
