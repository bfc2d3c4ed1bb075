"""Orchard as a VM backend: many Macs behind one controller (docs/orchard.md).

The controller's vocabulary is mapped onto Tart's here, once:

* `status` pending → RUNNING (the VM is on its way up) with a pre-boot stage:
  `scheduling` while no worker took it (with the reason when no worker has room),
  `pulling` / `cloning` from `status_message`; `running` → RUNNING with no stage
  (Orchard's running only means `tart run` started: booting → ip → ssh-pending
  → ready follow as for any backend); `failed` → STOPPED with stage `failed` and
  the first line of `status_message`; `powerState` stopped/suspended wins over a
  `status` that stays running.
* A stopped Orchard VM can never run again (§3.5): `start` recreates it from its
  spec (GET, DELETE, POST the same spec), a new machine with a new uid and host
  key, and says so.
* SSH goes through the controller's WebSocket port-forward, by VM name.

The backend does not poll on its own; `watch()` follows one VM in transition.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from megatui.backends.base import (
    BackendError,
    BackendErrorKind,
    NewVMSpec,
    SSHCommand,
    SSHRoute,
)
from megatui.clock import Clock, SystemClock
from megatui.model import BackendVM, PreBootStage, TartState, Worker
from megatui.sources.orchard import (
    NewVM,
    OrchardAPIError,
    OrchardBadResponse,
    OrchardClient,
    OrchardError,
    OrchardNotFound,
    OrchardPortForwardError,
    OrchardUnreachable,
    OrchardVM,
    OrchardWorker,
)
from megatui.sources.orchard_model import LOGICAL_CORES, MEMORY_MIB, TART_VMS, parse_list

#: What `start` says when it recreates a stopped VM.
RECREATED_NOTE = (
    "recreated from its spec: a new machine (Orchard cannot restart a stopped VM), "
    "its host key will be learned anew"
)
#: Readiness probes through the port-forward (docs/orchard.md, "Readiness"). The
#: controller retries its dial of the VM's port about once a second within a
#: request's `wait` (orchard.md §5), so one waiting request connects up to 1 s after
#: sshd comes up. A probe therefore sends up to PROBE_REQUESTS requests started
#: PROBE_STAGGER apart, each waiting PROBE_WAIT s: together they sample the 1 s
#: retry grid every 1/3 s. The first to connect wins; the others are cancelled.
PROBE_WAIT = 3
PROBE_REQUESTS = 3
PROBE_STAGGER = 1.0 / 3
#: The controller's answers that mean "not yet" (nothing on the port, the VM not
#: running yet, the worker not answering): the other requests of a probe go on.
_NOT_YET = frozenset({408, 500, 503})
#: `/ip`'s `wait`: with 0 a real controller may answer 500 before the worker could
#: (docs/facts/orchard.md §5.2); one second lets a running VM's worker answer.
IP_WAIT = 1
#: How long `start` keeps re-posting a recreated VM while the controller still
#: holds the deleted one (409).
RECREATE_RETRY_SECONDS = 5.0
#: The workers fetched with a list are reused by `workers()` for this long.
FLEET_REUSE_SECONDS = 1.0
#: `watch()` reads pending VMs against workers listed at most this long ago.
WATCH_FLEET_AGE = 10.0
#: A name no VM can have (`~` is outside Orchard's name rules): a DELETE of it tells
#: whether the account may write (404) or not (401 with the role), changing nothing.
_ACCESS_PROBE = "~megatui-access-check"
#: Keys of a VM that the controller sets: a re-create must not send them back.
_NOT_SPEC = frozenset(
    {
        "localName",
        "tartName",
        "observedGeneration",
        "conditions",
        "status",
        "status_message",
        "worker",
        "assignedCPU",
        "assignedMemory",
        "restarted_at",
        "restart_count",
        "uid",
        "image_fqn",
        "scheduled_at",
        "started_at",
        "generation",
        "createdAt",
        "version",
        "powerState",
    }
)
_PULLING = ("pulling VM image",)
_CLONING = ("cloning VM", "configuring VM")


def orchard_error(exc: OrchardError, vm: str | None = None) -> BackendError:
    """The client's one line, with the backend's kind. Refusals keep the
    controller's own message verbatim (the client put it in the line)."""
    status: int | None = None
    kind = BackendErrorKind.OTHER
    if isinstance(exc, OrchardNotFound):
        kind, status = BackendErrorKind.NOT_FOUND, exc.status
    elif isinstance(exc, OrchardAPIError):
        status = exc.status
        kind = {
            401: BackendErrorKind.UNAUTHORIZED,
            409: BackendErrorKind.CONFLICT,
            400: BackendErrorKind.REFUSED,
            412: BackendErrorKind.REFUSED,
            417: BackendErrorKind.REFUSED,
        }.get(exc.status, BackendErrorKind.OTHER)
    elif isinstance(exc, OrchardPortForwardError):
        status = exc.status
        kind = BackendErrorKind.UNREACHABLE
    elif isinstance(exc, OrchardBadResponse):
        kind = BackendErrorKind.BAD_RESPONSE
    elif isinstance(exc, OrchardUnreachable):
        kind = BackendErrorKind.UNREACHABLE
    else:  # TLS and the rest: the line says what
        kind = BackendErrorKind.UNREACHABLE
    return BackendError(kind, str(exc), vm=vm, status=status)


# ------------------------------------------------------------------ the mapping (pure)


@dataclass(frozen=True)
class Usage:
    """What a worker's VMs hold: stopped and failed VMs hold nothing."""

    vms: int = 0
    cpu: int = 0
    memory: int = 0
    resources: Mapping[str, int] | None = None


def holds_resources(vm: OrchardVM) -> bool:
    return bool(vm.worker) and vm.status != "failed" and vm.power_state == "running"


def usage_by_worker(vms: Sequence[OrchardVM]) -> dict[str, Usage]:
    sums: dict[str, dict[str, int]] = {}
    counts: dict[str, list[int]] = {}
    for vm in vms:
        if not holds_resources(vm):
            continue
        held = sums.setdefault(vm.worker, {})
        for key, amount in vm.resources.items():
            held[key] = held.get(key, 0) + amount
        c = counts.setdefault(vm.worker, [0, 0, 0])
        c[0] += 1
        c[1] += vm.assigned_cpu
        c[2] += vm.assigned_memory
    return {
        name: Usage(counts[name][0], counts[name][1], counts[name][2], sums[name]) for name in sums
    }


def worker_view(
    worker: OrchardWorker, usage: Usage | None, vms: Sequence[OrchardVM], now: float
) -> Worker:
    used = usage or Usage()
    online = worker.online(now)
    failure: str | None = None
    if not online:
        # The controller's own words, from a VM it failed for this worker's sake.
        failure = next(
            (
                v.first_message_line
                for v in vms
                if v.worker == worker.name and v.status == "failed" and v.status_message
            ),
            None,
        )
        if failure is None:
            seen = "never seen" if worker.last_seen is None else "not seen for over 3 minutes"
            failure = f"worker {worker.name} is offline ({seen})"
    return Worker(
        name=worker.name,
        online=online,
        last_seen=worker.last_seen,
        scheduling_paused=worker.scheduling_paused,
        vms_running=(used.resources or {}).get(TART_VMS, used.vms),
        vm_capacity=worker.tart_vm_capacity,
        cpu_used=used.cpu,
        cpu_total=worker.resources.get(LOGICAL_CORES, 0),
        memory_used_mib=used.memory,
        memory_total_mib=worker.resources.get(MEMORY_MIB, 0),
        failure=failure,
    )


def scheduling_reason(
    vm: OrchardVM, workers: Sequence[OrchardWorker], usage: Mapping[str, Usage], now: float
) -> str:
    """Why a pending VM has no worker yet, in the user's terms."""
    if not workers:
        return "no worker has joined the controller"
    online = [w for w in workers if w.online(now)]
    if not online:
        return "every worker is offline"
    open_ = [w for w in online if not w.scheduling_paused]
    if not open_:
        return "scheduling is paused on every online worker"
    need = dict(vm.resources) or {TART_VMS: 1}
    short: set[str] = set()
    for worker in open_:
        held = usage.get(worker.name, Usage()).resources or {}
        lacking = {
            key
            for key, amount in need.items()
            if held.get(key, 0) + amount > worker.resources.get(key, 0)
        }
        if not lacking:
            return "waiting for the scheduler"
        short |= lacking
    if short == {TART_VMS}:
        return "no worker has a free macOS VM slot (Apple allows 2 per Mac)"
    names = ", ".join(sorted(short))
    return f"no worker has enough free {names}"


def vm_view(
    vm: OrchardVM,
    workers: Mapping[str, OrchardWorker],
    usage: Mapping[str, Usage],
    now: float,
    backend: str = "orchard",
) -> BackendVM:
    """One Orchard VM in the backends' terms (see the module docstring)."""
    stage: PreBootStage | None = None
    message: str | None = None
    state = TartState.RUNNING
    if vm.status == "failed":
        state, stage = TartState.STOPPED, PreBootStage.FAILED
        message = vm.first_message_line or "failed (the controller gave no reason)"
    elif vm.power_state == "stopped":
        state = TartState.STOPPED
    elif vm.power_state == "suspended":
        state = TartState.SUSPENDED
    elif vm.status == "pending":
        text = vm.status_message
        if not vm.worker:
            stage = PreBootStage.SCHEDULING
            message = scheduling_reason(vm, list(workers.values()), usage, now)
        elif text.startswith(_PULLING):
            stage, message = PreBootStage.PULLING, text
        elif text.startswith(_CLONING):
            stage, message = PreBootStage.CLONING, text
        else:
            stage = PreBootStage.SCHEDULING
            message = f"scheduled on {vm.worker}, waiting for it to begin"
    elif vm.status != "running":
        # A status newer than the documented three: not booted as far as we know.
        stage = PreBootStage.SCHEDULING
        message = f"controller status '{vm.status}'"
    worker = workers.get(vm.worker) if vm.worker else None
    stale = bool(vm.worker) and (worker is None or not worker.online(now))
    return BackendVM(
        name=vm.name,
        state=state,
        stage=stage,
        stage_message=message,
        worker=vm.worker or None,
        uid=vm.uid or None,
        image=vm.image or None,
        restart_policy=vm.restart_policy,
        restart_count=vm.restart_count,
        backend=backend,
        stale=stale and vm.status != "failed",
    )


def recreate_body(vm: OrchardVM) -> dict[str, Any]:
    """The spec of a VM as a POST takes it: what the user asked for, nothing the
    controller set (uid, status, worker, names of the clone...)."""
    return {k: v for k, v in vm.raw.items() if k not in _NOT_SPEC}


def default_proxy_prefix() -> list[str]:
    """How the user's ssh runs megatui: the installed script, else this Python."""
    found = shutil.which("megatui")
    return [found] if found else [sys.executable, "-m", "megatui"]


# ------------------------------------------------------------------ the backend


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _PortForwardReach:
    """SSHReach through the controller: `host` is the VM's name."""

    def __init__(self, client: OrchardClient) -> None:
        self._client = client

    async def open_connection(self, host: str, port: int, *, timeout: float) -> Streams:
        async with asyncio.timeout(timeout):
            return await staggered_port_forward(self._client, host, port)

    def ssh_tunnel(self) -> Any:
        # Used once the port answered: the controller's first dial connects.
        return self._client.ssh_tunnel(wait=PROBE_WAIT)


async def staggered_port_forward(client: OrchardClient, vm: str, port: int) -> Streams:
    """A stream to `port` of `vm` from the first of up to PROBE_REQUESTS
    port-forwards, started PROBE_STAGGER apart, each waiting PROBE_WAIT s inside
    the controller.

    A further request starts only while an earlier one is still waiting: a
    controller that answers at once (no retry within `wait`) gets one request per
    call, as without staggering. Raises the last "not yet" error once every request
    gave up, and any other refusal at once. The losers are cancelled and, if they
    connected meanwhile, closed."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[Streams]] = set()
    order: list[asyncio.Task[Streams]] = []
    started = 0
    next_at = loop.time()
    last: BaseException | None = None
    try:
        while True:
            if started < PROBE_REQUESTS and (started == 0 or pending) and loop.time() >= next_at:
                opening = client.open_port_forward(vm, port, wait=PROBE_WAIT)
                task = asyncio.create_task(opening)
                pending.add(task)
                order.append(task)
                started += 1
                next_at = loop.time() + PROBE_STAGGER
            if not pending:
                assert last is not None
                raise last
            more = started < PROBE_REQUESTS
            done, _ = await asyncio.wait(
                pending,
                timeout=max(next_at - loop.time(), 0.0) if more else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            # Two may finish in one turn of the loop: the earlier request wins, so
            # that which stream is kept does not depend on set order.
            for task in sorted(done, key=order.index):
                pending.discard(task)
                exc = task.exception()
                if exc is None:
                    return task.result()
                if not (isinstance(exc, OrchardPortForwardError) and exc.status in _NOT_YET):
                    raise exc
                last = exc
    finally:
        await _discard(pending)


async def _discard(tasks: set[asyncio.Task[Streams]]) -> None:
    for task in tasks:
        task.cancel()
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, tuple):  # connected before the cancel reached it
            outcome[1].close()


class OrchardBackend:
    name = "orchard"
    can_watch = True

    def __init__(
        self,
        client: OrchardClient,
        *,
        clock: Clock | None = None,
        config_path: Path | None = None,
    ) -> None:
        """`config_path`: megatui's config file when it holds the token, for the
        user's ssh to read in `orchard-proxy` (its path, never the token, goes in
        the ProxyCommand)."""
        self.client = client
        self.clock: Clock = clock or SystemClock()
        self._config_path = config_path
        self._reach = _PortForwardReach(client)
        self._vms: list[OrchardVM] = []
        self._workers: list[OrchardWorker] = []
        self._fleet_at: float | None = None  # monotonic
        self._readonly: str | None = None
        self._access_checked = False

    @property
    def label(self) -> str:
        config = self.client.config
        return f"orchard {config.context}" if config.context else f"orchard {config.base}"

    # ------------------------------------------------------------ reading

    async def _fleet(self, max_age: float | None) -> None:
        """Fetch the VMs and workers, unless a fetch at most `max_age` s old is
        there to reuse. None: always fetch. (Not `max_age=0`: a clock that did not
        move since the last fetch, a test's or a coarse one, would reuse it forever.)"""
        at = self._fleet_at
        if max_age is not None and at is not None and self.clock.monotonic() - at <= max_age:
            return
        try:
            vms, workers = await asyncio.gather(self.client.list_vms(), self.client.list_workers())
        except OrchardError as exc:
            raise orchard_error(exc) from None
        self._vms, self._workers = vms, workers
        self._fleet_at = self.clock.monotonic()

    def _context(self) -> tuple[dict[str, OrchardWorker], dict[str, Usage], float]:
        return (
            {w.name: w for w in self._workers},
            usage_by_worker(self._vms),
            self.clock.now(),
        )

    async def list_vms(self) -> list[BackendVM]:
        """One `GET /v1/vms` (and one of the workers, for stages and staleness)."""
        await self._fleet(max_age=None)
        workers, usage, now = self._context()
        return [vm_view(vm, workers, usage, now, self.name) for vm in self._vms]

    async def workers(self) -> list[Worker] | None:
        await self._fleet(max_age=FLEET_REUSE_SECONDS)
        usage, now = usage_by_worker(self._vms), self.clock.now()
        return [worker_view(w, usage.get(w.name), self._vms, now) for w in self._workers]

    async def ip(self, name: str) -> str | None:
        """`GET /v1/vms/{name}/ip?wait=1`; None while the VM or its worker cannot
        tell yet (408, 417, 500, 503)."""
        try:
            obj = await self.client._call(
                "GET",
                self.client._url("vms", name, "ip"),
                f"IP of VM '{name}'",
                params={"wait": str(IP_WAIT)},
            )
        except OrchardAPIError as exc:
            if exc.status in (408, 417, 500, 503):
                return None
            raise self._error(exc, name) from None
        except OrchardError as exc:
            raise self._error(exc, name) from None
        ip = obj.get("ip") if isinstance(obj, dict) else None
        if not isinstance(ip, str):
            raise BackendError(
                BackendErrorKind.BAD_RESPONSE,
                f"{self.label}: IP of VM '{name}': answer has no 'ip' string",
                vm=name,
            )
        return ip or None

    async def details(self, name: str) -> dict[str, object]:
        """The VM object as the controller has it (without its password), plus
        the backend's reading of it."""
        vm = await self._get(name)
        await self._fleet(max_age=FLEET_REUSE_SECONDS)
        workers, usage, now = self._context()
        view = vm_view(vm, workers, usage, now, self.name)
        out: dict[str, object] = {k: v for k, v in vm.raw.items() if k != "password"}
        out["megatui"] = {
            "state": str(view.state),
            "stage": str(view.stage) if view.stage else None,
            "stage_message": view.stage_message,
            "stale": view.stale,
        }
        return out

    async def log_tail(self, name: str, lines: int = 50) -> list[str]:
        """The controller's events for the VM, then its current status line: Orchard
        keeps no console log of its own that an API reads."""
        try:
            obj = await self.client._call(
                "GET", self.client._url("vms", name, "events"), f"events of VM '{name}'"
            )
            events = parse_list(obj, "event list")
            vm = await self.client.get_vm(name)
        except OrchardError:
            return []
        out = []
        for event in events:
            if isinstance(event, dict):
                kind, payload = event.get("kind", ""), event.get("payload", "")
                out.append(f"{event.get('timestamp', '')} {kind}: {payload}".strip())
        if vm.status_message:
            out.extend(f"{vm.status}: {line}" for line in vm.status_message.splitlines())
        else:
            out.append(f"{vm.status}")
        return out[-lines:]

    async def readonly_reason(self) -> str | None:
        """Asked once: a DELETE of a name no VM can have answers 404 to an account
        that may write, and 401 with the missing role to one that may not."""
        if not self._access_checked:
            try:
                await self.client.delete_vm(_ACCESS_PROBE)
            except OrchardNotFound:
                pass
            except OrchardAPIError as exc:
                if exc.status != 401:
                    raise orchard_error(exc) from None
                if not exc.message:
                    raise orchard_error(exc) from None  # bad credentials, not a role
                self._readonly = self._role_reason(exc.message)
            except OrchardError as exc:
                raise orchard_error(exc) from None
            self._access_checked = True
        return self._readonly

    def _role_reason(self, message: str) -> str:
        account = self.client.config.service_account or "(no account)"
        return f"read-only: service account '{account}': {message}"

    async def watch(self, name: str) -> AsyncIterator[BackendVM | None]:
        """Each change of the VM until the controller ends the stream (watch again)."""
        # Stages and staleness are read against the workers: know them once.
        await self._fleet(max_age=WATCH_FLEET_AGE)
        try:
            async for event in self.client.watch_vm(name):
                if event.vm is None:
                    yield None
                    continue
                workers, usage, now = self._context()
                yield vm_view(event.vm, workers, usage, now, self.name)
        except OrchardError as exc:
            raise self._error(exc, name) from None

    # ------------------------------------------------------------ actions

    def _error(self, exc: OrchardError, vm: str | None) -> BackendError:
        err = orchard_error(exc, vm)
        if isinstance(exc, OrchardAPIError) and exc.status == 401 and exc.message:
            # A refusal for a missing role turns the session read-only on its own.
            self._readonly = self._role_reason(exc.message)
            self._access_checked = True
        return err

    async def _get(self, name: str) -> OrchardVM:
        try:
            return await self.client.get_vm(name)
        except OrchardError as exc:
            raise self._error(exc, name) from None

    async def start(self, name: str) -> str | None:
        vm = await self._get(name)
        if vm.status != "failed" and vm.power_state == "running":
            raise BackendError(
                BackendErrorKind.ALREADY_RUNNING, f"VM '{name}' is already running", vm=name
            )
        body = recreate_body(vm)
        try:
            await self.client.delete_vm(name)
        except OrchardNotFound:
            pass  # gone meanwhile: create it all the same
        except OrchardError as exc:
            raise self._error(exc, name) from None
        await self._post(name, body)
        self._fleet_at = None
        return RECREATED_NOTE

    async def _post(self, name: str, body: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECREATE_RETRY_SECONDS
        while True:
            try:
                await self.client._call(
                    "POST", self.client._url("vms"), f"create VM '{name}'", body=body
                )
                return
            except OrchardAPIError as exc:
                if exc.status == 409 and loop.time() < deadline:
                    await asyncio.sleep(0.25)  # the deleted VM is still on its way out
                    continue
                err = self._error(exc, name)
            except OrchardError as exc:
                err = self._error(exc, name)
            # Deleted but not re-created: the spec must not be lost with the error.
            raise BackendError(
                err.kind,
                f"{err} — VM '{name}' was deleted but not re-created; its image was "
                f"{body.get('image', '?')!s}",
                vm=name,
                status=err.status,
            )

    async def _power(self, name: str, state: str) -> None:
        try:
            if state == "stopped":
                await self.client.set_power_state(name, "stopped")
            else:
                await self.client.set_power_state(name, "suspended")
        except OrchardError as exc:
            raise self._error(exc, name) from None
        self._fleet_at = None

    async def stop(self, name: str) -> None:
        await self._power(name, "stopped")

    async def suspend(self, name: str) -> None:
        await self._power(name, "suspended")

    async def create(self, spec: NewVMSpec) -> None:
        new = NewVM(
            spec.name,
            spec.image,
            cpu=spec.cpu,
            memory=spec.memory_mib,
            disk_size=spec.disk_gb,
            restart_policy=spec.restart_policy,
            username=spec.username,
            password=spec.password,
        )
        try:
            await self.client.create_vm(new)
        except OrchardError as exc:
            raise self._error(exc, spec.name) from None
        self._fleet_at = None

    async def delete(self, name: str) -> None:
        try:
            await self.client.delete_vm(name)
        except OrchardError as exc:
            raise self._error(exc, name) from None
        self._fleet_at = None

    # ------------------------------------------------------------ SSH

    def ssh_route(self, name: str, ip: str | None, port: int) -> SSHRoute | None:
        return SSHRoute(name, port, self._reach)

    def proxy_argv(self, name: str, port: int) -> list[str]:
        """`megatui orchard-proxy VM PORT` with where the controller is, never the
        token (the proxy resolves it as megatui does: environment, contexts file)."""
        config = self.client.config
        where = (
            ["--orchard-context", config.context] if config.context else ["--orchard", config.url]
        )
        account = ["--service-account", config.service_account] if config.service_account else []
        prefix = default_proxy_prefix()
        if self._config_path is not None:
            prefix += ["--config", str(self._config_path)]
        return [*prefix, "orchard-proxy", *where, *account, name, str(port)]

    def ssh_command(self, name: str, address: str | None, port: int) -> SSHCommand:
        # ssh expands %-tokens in ProxyCommand: a literal % must be doubled.
        line = shlex.join(self.proxy_argv(name, port)).replace("%", "%%")
        return SSHCommand(("-o", f"ProxyCommand={line}"), name)

    async def close(self) -> None:
        await self.client.close()
