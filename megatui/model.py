"""Plain data shared by every part of megatui.

Nothing here does I/O or imports a UI toolkit: the sources produce these values,
the monitor merges them into a `Snapshot`, and the TUI and the headless commands
only read them. Times are wall-clock epoch seconds (floats) unless named otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

# The names of the per-source statuses in `Snapshot.sources` (and in status --json).
SOURCE_TART = "tart"  # the VMs' source with a tart backend: see `vm_source`
SOURCE_SSH = "ssh"
SOURCE_KUBERNETES = "kubernetes"  # nodes and the ArgoCD namespace's pods
SOURCE_APPLICATIONS = "applications"  # ArgoCD Applications
SOURCE_DOCKER = "docker"
SOURCE_HOST = "host"  # the SSH connection to the Mac host, with --host


def vm_source(backend: str) -> str:
    """The name of the source that lists the VMs, as users see it (its key in
    `Snapshot.sources` and status --json, its `source` metrics label, the TUI's and
    doctor's lines): the backend's name. "tart" for local and --host tart, as it
    always was; "orchard" for a controller, which is not tart. The one rule."""
    return backend


#: The statuses each enabled source (a `--sources` name) reports: "kube" is two.
#: "tart" (the VMs' source) reports under `vm_source(backend)`: Snapshot.vm_source.
SOURCE_STATUSES: dict[str, tuple[str, ...]] = {
    "tart": (SOURCE_TART,),
    "ssh": (SOURCE_SSH,),
    "kube": (SOURCE_KUBERNETES, SOURCE_APPLICATIONS),
    "docker": (SOURCE_DOCKER,),
}


class StatusKind(StrEnum):
    """What a source's status means, for code to decide on (never its wording)."""

    OK = "ok"
    ERROR = "error"  # failed, for a reason no other kind names
    UNREACHABLE = "unreachable"  # the daemon or server did not take the connection
    TIMEOUT = "timeout"  # a call did not answer in time (a hung tart, a frozen server)
    NO_ANSWER = "no-answer"  # headless: the source said nothing before the deadline
    BAD_DATA = "bad-data"  # it answered, but not in a shape we understand
    NOT_INSTALLED = "not-installed"  # the program is not there (tart)
    LOCKED = "locked"  # the macOS login keychain is locked (tart)
    MISSING_NAMESPACE = "missing-namespace"  # the ArgoCD namespace does not exist
    MISSING_CRD = "missing-crd"  # ok, but the Applications CRD is not installed


class Phase(StrEnum):
    """Where a VM is on its way from power-off to a usable SSH login."""

    STOPPED = "stopped"
    SUSPENDED = "suspended"
    # A controller's (Orchard's) stages before `tart run`; a local tart VM skips them.
    SCHEDULING = "scheduling"
    PULLING = "pulling"
    CLONING = "cloning"
    STARTING = "starting"
    BOOTING = "booting"
    IP = "ip"
    SSH_PENDING = "ssh-pending"
    READY = "ready"
    STOPPING = "stopping"
    ERROR = "error"


#: The boot phases in order; progress runs through them and ends at READY.
BOOT_PHASES: tuple[Phase, ...] = (Phase.STARTING, Phase.BOOTING, Phase.IP, Phase.SSH_PENDING)

#: Typical macOS guest durations (seconds), used until megatui has seen any VM boot
#: (then the last boots of any VM count, see phases.BootHistory).
DEFAULT_PHASE_SECONDS: dict[Phase, float] = {
    Phase.STARTING: 30.0,
    Phase.BOOTING: 90.0,
    Phase.IP: 60.0,
    Phase.SSH_PENDING: 120.0,
}


# (readiness.Verdict and Decision look like this enum and dataclass: shape only.)
class TartState(StrEnum):
    """The only states Tart itself knows (docs/facts/tart.md §3.2)."""

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
    #: Which backend runs it ("tart" or "orchard") and, for a controller, where.
    backend: str = "tart"
    worker: str | None = None
    restart_policy: str | None = None
    restart_count: int = 0
    #: The data is old: the worker behind it is offline, or the host is in doubt.
    stale: bool = False


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
    #: What the status means. Left at OK on a failing status, it reads ERROR.
    kind: StatusKind = StatusKind.OK
    #: The whole story behind `error` for a detail view (the last attempt, the fix).
    detail: str | None = None

    def __post_init__(self) -> None:
        if not self.ok and self.kind is StatusKind.OK:
            object.__setattr__(self, "kind", StatusKind.ERROR)


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    status: str  # exactly as kubectl shows it, e.g. "Ready,SchedulingDisabled"
    roles: str
    version: str
    created: float | None
    container_state: str | None = None  # from Docker, when the node is a Kind container
    internal_ip: str | None = None
    container_exit_code: int | None = None  # the Kind container's State.ExitCode
    container_restarts: int | None = None  # the Kind container's RestartCount


@dataclass(frozen=True, slots=True)
class PodClue:
    """What the pod object itself says about a pod that is not running and ready
    (sources/pod_why.py); the monitor turns it and the pod's events into `Pod.why`."""

    uid: str
    since: float  # when the pod entered its present trouble (or was created)
    failing: bool  # a failure state (CrashLoopBackOff, ImagePullBackOff...), not start-up
    crashed: bool  # the detail is a container's last termination: the most telling clue
    detail: str | None  # a container's waiting message or last termination, a condition


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
    why: str | None = None  # one short line saying why a stuck pod is stuck
    clue: PodClue | None = None  # the pod's own evidence for `why` (not reported)


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


# (recovery.Notice and Record are frozen records like these two: shape only.)
@dataclass(frozen=True, slots=True)
class KindNodeContainer:
    name: str
    role: str
    state: str  # docker's State.Status: running, exited, created, paused, ...
    cluster: str
    # From GET /containers/{id}/json (the list has neither); None when not inspected.
    exit_code: int | None = None  # State.ExitCode of the last run
    restart_count: int | None = None  # RestartCount: restarts by the restart policy


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
class KubeEvent:
    """A Kubernetes Event (core/v1 or events.k8s.io/v1), repeats folded as kubectl
    folds them: one object per identity (namespace/name) with its count."""

    namespace: str
    name: str
    type: str  # Normal, Warning
    reason: str
    message: str
    object_kind: str  # "" when the event names no object
    object_name: str
    object_uid: str
    field_path: str
    count: int
    first: float | None  # eventTime, else firstTimestamp
    last: float | None  # series.lastObservedTime, else lastTimestamp, else first
    source: str  # source.component, else reportingComponent

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Event:
    """One line of the timeline: a phase change, a status change, a source going bad."""

    at: float
    kind: str  # "vm", "pod", "app", "node", "source"
    subject: str
    message: str
    severity: str = "info"  # info, warning, error
    key: str = ""  # an identity (a Kubernetes event's namespace/name): a repeat replaces


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
    #: The controller's workers (Orchard); empty for a tart backend.
    workers: tuple[Worker, ...] = ()
    #: Why the session is read-only when it was not asked to be (an account without
    #: compute:write), for the header.
    readonly_reason: str | None = None
    #: The key of the VMs' source in `sources`: `vm_source(backend)`.
    vm_source: str = SOURCE_TART

    def vm(self, name: str) -> VM | None:
        for vm in self.vms:
            if vm.name == name:
                return vm
        return None

    def vm_status(self) -> SourceStatus | None:
        """The status of the source that lists the VMs, whatever the backend."""
        return self.sources.get(self.vm_source)


# --- VM backends (megatui.backends): local tart, tart over --host, Orchard ----------------


class PreBootStage(StrEnum):
    """Where a VM managed by a controller is before `tart run` started (Orchard)."""

    SCHEDULING = "scheduling"  # pending, no worker chosen yet
    PULLING = "pulling"  # the worker pulls the image
    CLONING = "cloning"  # the worker clones and configures the VM
    FAILED = "failed"  # terminal: the first line of the controller's message says why


@dataclass(frozen=True, slots=True)
class BackendVM:
    """One VM as a backend lists it. `state` is Tart's vocabulary: for Orchard it is
    the power state the VM has or is heading to (a pending VM is RUNNING with a
    `stage`; a failed one STOPPED with stage FAILED). `stage` None means the VM is
    past its pre-boot stages: from here on the boot phases are the same for every
    backend (booting → ip → ssh-pending → ready)."""

    name: str
    state: TartState
    stage: PreBootStage | None = None
    #: Why it is in `stage` (scheduling: no free slot…; failed: the first line).
    stage_message: str | None = None
    worker: str | None = None
    #: Orchard's uid: a new one means a new machine (new clone, new host key).
    uid: str | None = None
    image: str | None = None
    restart_policy: str | None = None
    restart_count: int = 0
    backend: str = "tart"
    #: Its worker is offline: what is shown is the last known state.
    stale: bool = False
    disk_gb: int | None = None
    size_gb: int | None = None

    @classmethod
    def from_tart(cls, vm: TartVM, backend: str = "tart") -> BackendVM:
        return cls(
            name=vm.name, state=vm.state, backend=backend, disk_gb=vm.disk_gb, size_gb=vm.size_gb
        )

    def as_tart(self) -> TartVM:
        """The TartVM the phase engine knows (state only; stages are extra)."""
        return TartVM(name=self.name, state=self.state, disk_gb=self.disk_gb, size_gb=self.size_gb)


@dataclass(frozen=True, slots=True)
class Worker:
    """A Mac that runs VMs for a controller (Orchard), as the Workers panel shows it."""

    name: str
    online: bool
    last_seen: float | None
    scheduling_paused: bool
    vms_running: int
    vm_capacity: int
    cpu_used: int
    cpu_total: int
    memory_used_mib: int
    memory_total_mib: int
    #: The controller's own words about a failing worker, e.g. its VMs' failure text.
    failure: str | None = None
