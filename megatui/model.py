"""Plain data shared by every part of megatui.

Nothing here does I/O or imports a UI toolkit: the sources produce these values,
the monitor merges them into a `Snapshot`, and the TUI and the headless commands
only read them. Times are wall-clock epoch seconds (floats) unless named otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# The names of the per-source statuses in `Snapshot.sources` (and in status --json).
SOURCE_TART = "tart"
SOURCE_SSH = "ssh"
SOURCE_KUBERNETES = "kubernetes"  # nodes and the ArgoCD namespace's pods
SOURCE_APPLICATIONS = "applications"  # ArgoCD Applications
SOURCE_DOCKER = "docker"
SOURCE_HOST = "host"  # the SSH connection to the Mac host, with --host


class Phase(StrEnum):
    """Where a VM is on its way from power-off to a usable SSH login."""

    STOPPED = "stopped"
    SUSPENDED = "suspended"
    STARTING = "starting"
    BOOTING = "booting"
    IP = "ip"
    SSH_PENDING = "ssh-pending"
    READY = "ready"
    STOPPING = "stopping"
    ERROR = "error"


#: The boot phases in order; progress runs through them and ends at READY.
BOOT_PHASES: tuple[Phase, ...] = (Phase.STARTING, Phase.BOOTING, Phase.IP, Phase.SSH_PENDING)

#: Typical macOS guest durations (seconds) used until a VM has its own history.
DEFAULT_PHASE_SECONDS: dict[Phase, float] = {
    Phase.STARTING: 30.0,
    Phase.BOOTING: 90.0,
    Phase.IP: 60.0,
    Phase.SSH_PENDING: 120.0,
}


class TartState(StrEnum):
    """The only states Tart itself knows (tart.md §3.2)."""

    RUNNING = "running"
    SUSPENDED = "suspended"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class TartVM:
    """One local VM as `tart list --format json` reports it."""

    name: str
    state: TartState
    disk_gb: int | None = None
    size_gb: int | None = None
    accessed: str | None = None


class ProbeStage(StrEnum):
    """How far an SSH readiness probe got."""

    CLOSED = "closed"  # TCP connect to the SSH port failed
    OPEN = "open"  # port open, but the login or readiness command did not succeed yet
    READY = "ready"  # logged in and the readiness command succeeded
    AUTH_FAILED = "auth-failed"  # the server rejected our credentials: a real error
    HOST_KEY_CHANGED = "host-key-changed"  # refused: the key differs from the one we trusted
    ERROR = "error"  # any other definite failure (bad key file, command failed for good)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    stage: ProbeStage
    checked_at: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PhaseSpan:
    """A finished (or the current, with `ended` None) stay in one phase."""

    phase: Phase
    started: float
    ended: float | None = None

    def duration(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.started


@dataclass(frozen=True, slots=True)
class VM:
    """A VM as the user sees it: Tart's state plus the derived boot phase."""

    name: str
    state: TartState
    phase: Phase
    ip: str | None
    progress: float
    phase_since: float
    eta_seconds: float | None = None
    error: str | None = None
    hint: str | None = None
    history: tuple[PhaseSpan, ...] = ()
    port: int = 22


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """Health of one outside system as the monitor last saw it."""

    name: str
    ok: bool
    error: str | None = None
    updated_at: float | None = None  # last successful data
    next_retry_at: float | None = None  # set while failing
    #: A calm remark while ok: nothing broken, but something to know (the Applications
    #: CRD is not installed, so there is nothing to list).
    note: str | None = None
    #: The whole story behind `error` for a detail view (the last attempt, the fix).
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    status: str  # exactly as kubectl shows it, e.g. "Ready,SchedulingDisabled"
    roles: str
    version: str
    created: float | None
    container_state: str | None = None  # from Docker, when the node is a Kind container
    internal_ip: str | None = None


@dataclass(frozen=True, slots=True)
class Pod:
    name: str
    namespace: str
    ready: str  # "1/1"
    status: str  # kubectl's STATUS column
    restarts: str  # "3 (5m ago)"; rendered against the snapshot time
    node: str
    created: float | None
    component: str | None = None  # app.kubernetes.io/name, used for the ArgoCD summary
    running_ready: bool = False  # Running phase and every container ready


@dataclass(frozen=True, slots=True)
class Application:
    name: str
    namespace: str
    project: str
    sync: str
    health: str
    operation: str
    message: str
    revision: str = ""


@dataclass(frozen=True, slots=True)
class KindNodeContainer:
    name: str
    role: str
    state: str  # docker's State.Status: running, exited, created, paused, ...
    cluster: str


@dataclass(frozen=True, slots=True)
class KindCluster:
    name: str
    nodes: tuple[KindNodeContainer, ...]


@dataclass(frozen=True, slots=True)
class DockerStatus:
    reachable: bool
    error: str | None = None
    server_version: str | None = None
    kind_network: bool = False
    clusters: tuple[KindCluster, ...] = ()


@dataclass(frozen=True, slots=True)
class ArgoSummary:
    """How many of the standard ArgoCD components run and are ready."""

    standard_install: bool
    ready: int
    total: int
    missing: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the timeline: a phase change, a status change, a source going bad."""

    at: float
    kind: str  # "vm", "pod", "app", "node", "source"
    subject: str
    message: str
    severity: str = "info"  # info, warning, error


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything megatui knows at one moment. Immutable; the monitor makes new ones."""

    generated_at: float
    host: str
    sources: dict[str, SourceStatus] = field(default_factory=dict)
    vms: tuple[VM, ...] = ()
    nodes: tuple[Node, ...] = ()
    pods: tuple[Pod, ...] = ()
    applications: tuple[Application, ...] = ()
    docker: DockerStatus | None = None
    argocd: ArgoSummary | None = None
    kube_context: str | None = None
    readonly: bool = False

    def vm(self, name: str) -> VM | None:
        for vm in self.vms:
            if vm.name == name:
                return vm
        return None
