"""The fake controller's state: VMs, workers, service accounts, scheduler and the
workers' side of the VM lifecycle, all driven by one injectable clock.

Nothing here sleeps: `OrchardStore.step()` looks at the clock and moves every VM
and worker as far as its timings allow, so a test with a `FakeClock` advances the
clock and calls `step()`, while the server calls it from a short real-time loop.

Facts (docs/orchard.md): POST defaults, the 2-macOS-VM `org.cirruslabs.tart-vms`
resource, `status_message` progression (§3.3), power states are one-way (§3.5),
the 3-minute offline rule and its failure text (§3.2), `OnFailure` restarts with
a new `localName`, 409/412 texts verbatim (§2, §6), DELETED events carrying a
zero-value object (§3.5).
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

from megatui.clock import Clock
from megatui.lab.orchard import gojson
from megatui.sources.orchard_model import restricted_chars

TART_VMS = "org.cirruslabs.tart-vms"
LOGICAL_CORES = "org.cirruslabs.logical-cores"
MEMORY_MIB = "org.cirruslabs.memory-mib"

ROLES = ("compute:read", "compute:write", "compute:connect", "admin:read", "admin:write")

MSG_OFFLINE = "VM is assigned to a worker that lost connection with the controller"
MSG_GONE = "VM is assigned to a worker that doesn't exist anymore"

#: Keys of the Go VMSpec struct: the only part a PUT can change (§3.5).
_SPEC_KEYS = (
    "os",
    "arch",
    "runtime",
    "net-softnet",
    "netSoftnet",
    "netSoftnetAllow",
    "netSoftnetBlock",
    "suspendable",
    "powerState",
)
_STRING_KEYS = frozenset(
    [
        "image",
        "imagePullPolicy",
        "net-bridged",
        "os",
        "arch",
        "runtime",
        "powerState",
        "status",
        "status_message",
        "worker",
        "username",
        "password",
        "restart_policy",
        "uid",
        "image_fqn",
        "name",
    ]
)
_UINT_KEYS = frozenset(
    [
        "cpu",
        "memory",
        "diskSize",
        "assignedCPU",
        "assignedMemory",
        "restart_count",
        "generation",
        "observedGeneration",
        "version",
    ]
)
_BOOL_KEYS = frozenset(
    ["headless", "nested", "net-softnet", "netSoftnet", "suspendable", "randomSerial"]
)


_TERMINAL_POWER = 'invalid "powerState" transition: cannot transition from a terminal power state'


class ApiError(Exception):
    """An answer other than 200: a status and the `{"message"}` text, or an empty body."""

    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(f"{status} {message or ''}".strip())
        self.status = status
        self.message = message


@dataclass
class Timings:
    """Seconds on the store's clock. Defaults are close to a real Mac mini."""

    schedule: float = 1.0  # pending -> picked by the scheduler
    pull: float = 30.0  # "pulling VM image..." (imagePullPolicy Always only)
    clone: float = 8.0  # "cloning VM..."
    configure: float = 1.5  # "configuring VM..." then `tart run`: status running
    boot: float = 25.0  # `tart run` -> the guest's sshd takes logins
    stop: float = 3.0  # "Stopping VM" / "Suspending VM" -> the tart VM is down
    restart: float = 2.0  # failed -> pending again under OnFailure
    heartbeat: float = 5.0  # how often a live worker refreshes last_seen
    offline_after: float = 180.0  # --worker-offline-timeout (3m)


@dataclass
class ServiceAccount:
    name: str
    token: str = field(repr=False)
    roles: tuple[str, ...]
    created_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return gojson.encode(
            gojson.SERVICE_ACCOUNT_FIELDS,
            {
                "name": self.name,
                "token": self.token,
                "roles": list(self.roles),
                "createdAt": self.created_at,
            },
        )


@dataclass
class LabWorker:
    name: str
    cores: int = 8
    memory_mib: int = 16384
    tart_vms: int = 2
    utc_offset_minutes: int = 0
    scheduling_paused: bool = False
    #: False once the test made the worker stop talking to the controller.
    alive: bool = True
    last_seen: float = 0.0
    created_at: float = 0.0
    machine_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def resources(self) -> dict[str, int]:
        return {TART_VMS: self.tart_vms, LOGICAL_CORES: self.cores, MEMORY_MIB: self.memory_mib}

    def to_json(self) -> dict[str, Any]:
        return gojson.encode(
            gojson.WORKER_FIELDS,
            {
                "last_seen": gojson.go_time(self.last_seen, self.utc_offset_minutes),
                "machine_id": self.machine_id,
                "scheduling_paused": self.scheduling_paused,
                "resources": self.resources,
                "defaultCPU": 4,
                "defaultMemory": 8192,
                "arch": "arm64",
                "runtime": "tart",
                "name": self.name,
                "createdAt": self.created_at,
            },
        )


@dataclass
class LabVM:
    """One VM resource. `fields` holds the Go struct's values by JSON key (times as
    epoch floats); `phase` is where the worker is with it."""

    fields: dict[str, Any]
    phase: str = "pending"
    phase_since: float = 0.0  # monotonic
    #: Monotonic time from which the guest's sshd takes logins (None: not booted).
    guest_up_at: float | None = None

    @property
    def name(self) -> str:
        return str(self.fields["name"])

    def to_json(self) -> dict[str, Any]:
        return gojson.encode(gojson.VM_FIELDS, self.fields)


def _conditions(**states: bool) -> list[dict[str, str]]:
    return [{"type": kind, "state": "true" if value else "false"} for kind, value in states.items()]


def _local_name(name: str, uid: str, restarts: int) -> str:
    return f"orchard-{name}-{uid}-{restarts}"


def _check_types(body: object) -> dict[str, Any]:
    """What Go's ShouldBindJSON would refuse: 400 "invalid JSON was provided"."""
    bad = ApiError(400, "invalid JSON was provided")
    if not isinstance(body, dict):
        raise bad
    for key, value in body.items():
        if value is None:
            continue
        if key in _STRING_KEYS and not isinstance(value, str):
            raise bad
        if key in _UINT_KEYS and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise bad
        if key in _BOOL_KEYS and not isinstance(value, bool):
            raise bad
    for key, allowed in (("os", ("", "darwin", "linux")), ("arch", ("", "arm64", "amd64"))):
        if body.get(key) not in (None, *allowed):
            raise bad
    if body.get("runtime") not in (None, "", "tart", "vetu"):
        raise bad
    return body


class OrchardStore:
    def __init__(self, clock: Clock, timings: Timings | None = None) -> None:
        self.clock = clock
        self.timings = timings or Timings()
        self.vms: dict[str, LabVM] = {}
        self.workers: dict[str, LabWorker] = {}
        self.accounts: dict[str, ServiceAccount] = {}
        self.scheduler_profile = "optimize-utilization"
        self._version = 0
        self._watchers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {}
        #: Set whenever a watch opens (tests wait on it rather than poll).
        self.watch_opened = asyncio.Event()
        self._last_heartbeat: dict[str, float] = {}

    # ------------------------------------------------------------ accounts

    def add_account(self, name: str, token: str, roles: tuple[str, ...]) -> ServiceAccount:
        account = ServiceAccount(name, token, roles, created_at=self.clock.now())
        self.accounts[name] = account
        return account

    # ------------------------------------------------------------ workers

    def add_worker(self, worker: LabWorker) -> LabWorker:
        worker.created_at = worker.created_at or self.clock.now()
        worker.last_seen = self.clock.now()
        self._last_heartbeat[worker.name] = self.clock.monotonic()
        self.workers[worker.name] = worker
        return worker

    def delete_worker(self, name: str) -> None:
        if self.workers.pop(name, None) is None:
            raise ApiError(404)
        self._last_heartbeat.pop(name, None)

    def worker_online(self, worker: LabWorker) -> bool:
        return self.clock.now() - worker.last_seen <= self.timings.offline_after

    def used_resources(self, worker_name: str) -> dict[str, int]:
        """Resources held by the worker's VMs: running ones; stopped VMs hold none."""
        return self._usage().get(worker_name, {})

    def _usage(self) -> dict[str, dict[str, int]]:
        """Per worker: the resources its VMs hold, and "" = how many VMs it runs."""
        usage: dict[str, dict[str, int]] = {}
        for vm in self.vms.values():
            worker = vm.fields.get("worker")
            if not worker or vm.phase in ("stopped", "failed"):
                continue
            used = usage.setdefault(str(worker), {})
            for key, amount in (vm.fields.get("resources") or {}).items():
                used[key] = used.get(key, 0) + int(amount)
        return usage

    # ------------------------------------------------------------ VMs: API side

    def get_vm(self, name: str) -> LabVM:
        vm = self.vms.get(name)
        if vm is None:
            raise ApiError(404)
        return vm

    def list_vms(self, worker: str | None = None) -> list[dict[str, Any]]:
        return [
            vm.to_json()
            for vm in self.vms.values()
            if worker is None or vm.fields.get("worker") == worker
        ]

    def create_vm(self, body: object) -> dict[str, Any]:
        spec = _check_types(body)
        name = spec.get("name") or ""
        if not name:
            raise ApiError(412, "VM name is empty")
        if restricted_chars(name):
            raise ApiError(
                412,
                "VM name name contains restricted characters, please only use [A-Za-z0-9:-_.]",
            )
        if not spec.get("image"):
            raise ApiError(412, "VM image is empty")
        fields = {k: copy.deepcopy(v) for k, v in spec.items() if v is not None}
        uid = str(uuid.uuid4())
        fields.update(
            status="pending",
            createdAt=self.clock.now(),
            restarted_at=None,
            restart_count=0,
            uid=uid,
            powerState="running",
            localName=_local_name(name, uid, 0),
            tartName=_local_name(name, uid, 0),
            generation=0,
            observedGeneration=0,
            conditions=_conditions(scheduled=False),
            os=fields.get("os") or "darwin",
            arch=fields.get("arch") or "arm64",
            runtime=fields.get("runtime") or "tart",
        )
        for key in ("worker", "status_message", "scheduled_at", "started_at", "version"):
            fields.pop(key, None)
        if fields.get("netSoftnet") or fields.get("net-softnet") or fields.get("netSoftnetAllow"):
            fields["netSoftnet"] = fields["net-softnet"] = True
        if fields["os"] == "darwin" and fields["runtime"] == "tart":
            resources = dict(fields.get("resources") or {})
            resources.setdefault(TART_VMS, 1)
            fields["resources"] = resources
        pull = fields.get("imagePullPolicy")
        if pull and pull not in ("IfNotPresent", "Always"):
            raise ApiError(412, f'unsupported image pull policy: "{pull}"')
        fields["imagePullPolicy"] = pull or "IfNotPresent"
        policy = fields.get("restart_policy")
        if policy and policy not in ("Never", "OnFailure"):
            raise ApiError(412, f'unsupported restart policy: "{policy}"')
        fields["restart_policy"] = policy or "Never"
        if name in self.vms:
            raise ApiError(409, "VM with this name already exists")
        # The POST answer is the object before the store stamped a version on it.
        answer = gojson.encode(gojson.VM_FIELDS, fields)
        vm = LabVM(fields, phase="pending", phase_since=self.clock.monotonic())
        self.vms[name] = vm
        self._save(vm, "ADDED")
        return answer

    def update_vm(self, name: str, body: object) -> dict[str, Any]:
        user = _check_types(body)
        vm = self.get_vm(name)
        db = vm.fields
        if db.get("status") == "failed":
            raise ApiError(412, "cannot update VM in a terminal state")
        for key in ("os", "arch", "runtime"):
            if (user.get(key) or "") != db.get(key):
                raise ApiError(412, '"os", "arch" and "runtime" fields cannot be modified')
        new = {key: user.get(key) for key in _SPEC_KEYS}
        if new["net-softnet"] or new["netSoftnet"] or new["netSoftnetAllow"]:
            new["net-softnet"] = new["netSoftnet"] = True
        if db.get("suspendable") and not new["suspendable"]:
            raise ApiError(412, '"suspendable" cannot be toggled for suspendable VMs')
        power = new["powerState"] or ""
        if power not in ("running", "stopped", "suspended"):
            raise ApiError(412, f'invalid "powerState" value: {power}')
        if db.get("powerState") != "running":
            raise ApiError(
                412,
                'invalid "powerState" transition: cannot transition from a terminal power state',
            )
        if not db.get("suspendable") and power == "suspended":
            raise ApiError(
                412, 'invalid "powerState" transition: only suspendable VMs can be suspended'
            )
        old = {key: db.get(key) or None for key in _SPEC_KEYS}
        if {k: v or None for k, v in new.items()} == old:
            return vm.to_json()
        for key, value in new.items():
            if value in (None, False, "", []):
                db.pop(key, None)
            else:
                db[key] = value
        db["generation"] = int(db.get("generation", 0)) + 1
        self._save(vm)
        return vm.to_json()

    def delete_vm(self, name: str) -> None:
        self.get_vm(name)
        del self.vms[name]
        self._version += 1
        # A DELETED event carries a zero-value VM (§3.5).
        self._notify(name, {"type": "DELETED", "object": gojson.encode(gojson.VM_FIELDS, {})})

    # ------------------------------------------------------------ watch

    def watch(self, name: str) -> asyncio.Queue[dict[str, Any]]:
        """Events for one VM; the first is ADDED with the current object if it exists."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._watchers.setdefault(name, set()).add(queue)
        self.watch_opened.set()
        vm = self.vms.get(name)
        if vm is not None:
            queue.put_nowait({"type": "ADDED", "object": vm.to_json()})
        return queue

    def watchers(self, name: str) -> int:
        return len(self._watchers.get(name, ()))

    def unwatch(self, name: str, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._watchers.get(name, set()).discard(queue)

    def _save(self, vm: LabVM, kind: str = "MODIFIED") -> None:
        self._version += 1
        vm.fields["version"] = self._version
        self._notify(vm.name, {"type": kind, "object": vm.to_json()})

    def _notify(self, name: str, event: dict[str, Any]) -> None:
        for queue in self._watchers.get(name, ()):
            queue.put_nowait(event)

    # ------------------------------------------------------------ the clock moves

    def step(self) -> None:
        """Heartbeats, offline workers, scheduling and every VM's progress."""
        now, mono = self.clock.now(), self.clock.monotonic()
        for worker in self.workers.values():
            last = self._last_heartbeat.get(worker.name, mono)
            if worker.alive and mono - last >= self.timings.heartbeat:
                worker.last_seen = now
                self._last_heartbeat[worker.name] = mono
        for vm in list(self.vms.values()):
            self._advance(vm, now, mono)
        self._schedule(now, mono)

    def _set_phase(self, vm: LabVM, phase: str, mono: float, **changes: Any) -> None:
        vm.phase, vm.phase_since = phase, mono
        for key, value in changes.items():
            if value is None and key not in ("scheduled_at", "started_at", "restarted_at"):
                vm.fields.pop(key, None)
            else:
                vm.fields[key] = value
        self._save(vm)

    def fail(self, vm: LabVM, message: str) -> None:
        """The VM fails (§3.2): both conditions false, status_message the reason."""
        vm.guest_up_at = None
        self._set_phase(
            vm,
            "failed",
            self.clock.monotonic(),
            status="failed",
            status_message=message,
            conditions=_conditions(scheduled=False, running=False),
        )

    def _advance(self, vm: LabVM, now: float, mono: float) -> None:
        f, t = vm.fields, self.timings
        worker = self.workers.get(str(f.get("worker") or ""))
        if f.get("worker") and vm.phase not in ("failed", "stopped"):
            if worker is None:
                self.fail(vm, MSG_GONE)
                return
            if not self.worker_online(worker):
                self.fail(vm, MSG_OFFLINE)
                return
            if not worker.alive:
                return  # a silent worker does nothing until it counts as offline
        elapsed = mono - vm.phase_since
        if vm.phase == "failed":
            if f.get("restart_policy") == "OnFailure" and elapsed >= t.restart:
                self._restart(vm, now, mono)
            return
        if f.get("powerState") != "running" and vm.phase in ("running", "stopping"):
            self._power_down(vm, mono, elapsed)
            return
        if vm.phase == "scheduled":
            if f.get("imagePullPolicy") == "Always":
                self._set_phase(vm, "pulling", mono, status_message="pulling VM image...")
            else:
                self._set_phase(vm, "cloning", mono, status_message="cloning VM...")
        elif vm.phase == "pulling" and elapsed >= t.pull:
            self._set_phase(vm, "cloning", mono, status_message="cloning VM...")
        elif vm.phase == "cloning" and elapsed >= t.clone:
            image = str(f.get("image"))
            digest = uuid.uuid5(uuid.NAMESPACE_URL, image).hex * 2
            self._set_phase(
                vm,
                "configuring",
                mono,
                status_message="configuring VM...",
                image_fqn=f"{image.split(':')[0]}@sha256:{digest}",
            )
        elif vm.phase == "configuring" and elapsed >= t.configure:
            vm.guest_up_at = mono + t.boot
            script = f.get("startup_script")
            self._set_phase(
                vm,
                "running",
                mono,
                status="running",
                status_message="VM started, running startup script..." if script else "VM started",
                started_at=now,
                observedGeneration=f.get("generation", 0),
                conditions=_conditions(scheduled=True, running=True),
            )
        elif vm.phase == "running" and f.get("observedGeneration") != f.get("generation"):
            self._set_phase(vm, "running", mono, observedGeneration=f.get("generation", 0))

    def _power_down(self, vm: LabVM, mono: float, elapsed: float) -> None:
        f = vm.fields
        if vm.phase == "running":
            text = "Suspending VM" if f.get("powerState") == "suspended" else "Stopping VM"
            # status stays "running" after a stop (§3.5)
            self._set_phase(
                vm,
                "stopping",
                mono,
                status_message=text,
                observedGeneration=f.get("generation", 0),
                conditions=_conditions(scheduled=True, running=False),
            )
        elif elapsed >= self.timings.stop:
            vm.guest_up_at = None
            vm.phase, vm.phase_since = "stopped", mono

    def _restart(self, vm: LabVM, now: float, mono: float) -> None:
        f = vm.fields
        count = int(f.get("restart_count", 0)) + 1
        local = _local_name(vm.name, str(f["uid"]), count)
        self._set_phase(
            vm,
            "pending",
            mono,
            status="pending",
            status_message=None,
            worker=None,
            assignedCPU=None,
            assignedMemory=None,
            restart_count=count,
            restarted_at=now,
            localName=local,
            tartName=local,
            scheduled_at=None,
            started_at=None,
            conditions=_conditions(scheduled=False),
        )

    def _schedule(self, now: float, mono: float) -> None:
        due = [
            vm
            for vm in self.vms.values()
            if vm.phase == "pending"
            and vm.fields.get("powerState") == "running"
            and mono - vm.phase_since >= self.timings.schedule
        ]
        if not due:
            return
        usage = self._usage()  # once per pass: a fleet of hundreds stays cheap
        for vm in due:
            worker = self._pick_worker(vm, usage)
            if worker is None:
                continue  # stays pending until a slot frees up
            used = usage.setdefault(worker.name, {})
            for key, amount in (vm.fields.get("resources") or {}).items():
                used[key] = used.get(key, 0) + int(amount)
            f = vm.fields
            self._set_phase(
                vm,
                "scheduled",
                mono,
                worker=worker.name,
                scheduled_at=now,
                assignedCPU=f.get("cpu") or 4,
                assignedMemory=f.get("memory") or 8192,
                conditions=_conditions(scheduled=True),
            )

    def _pick_worker(self, vm: LabVM, usage: dict[str, dict[str, int]]) -> LabWorker | None:
        need = vm.fields.get("resources") or {}
        fitting: list[tuple[int, LabWorker]] = []
        for worker in self.workers.values():
            if worker.scheduling_paused or not worker.alive or not self.worker_online(worker):
                continue
            used = usage.get(worker.name, {})
            have = worker.resources
            if all(used.get(k, 0) + int(v) <= have.get(k, 0) for k, v in need.items()):
                fitting.append((sum(used.values()), worker))
        if not fitting:
            return None
        # optimize-utilization (the default): the busiest worker that fits first.
        busiest_first = self.scheduler_profile != "distribute-load"
        fitting.sort(key=lambda pair: pair[0], reverse=busiest_first)
        return fitting[0][1]
