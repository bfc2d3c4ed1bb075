"""The VM side of the monitor: one `VMBackend` polled, addresses resolved, VMs probed.

`VMTracker` lists the backend's VMs at a pace set by whether anything moves, asks
the backend for the address of each running VM past its pre-boot stages, runs one
SSH readiness probe task per VM with an address (through the backend's
`SSHRoute.reach`), follows a VM in transition with the backend's watch when it has
one, and turns all of it into `model.VM`s through the phase engine. It never asks
which backend it drives. The monitor owns it, publishes what it builds and shows
its failures as the `tart` source's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from megatui.api import ActionError
from megatui.backends.base import BackendError, BackendErrorKind, NewVMSpec, VMBackend
from megatui.files import write_atomic
from megatui.model import (
    SOURCE_SSH,
    VM,
    BackendVM,
    Event,
    Phase,
    PreBootStage,
    ProbeResult,
    ProbeStage,
    SourceStatus,
    StatusKind,
    TartState,
    Worker,
)
from megatui.phases import MOVING_PHASES, PRE_BOOT_PHASES, Observation
from megatui.sources.hostkeys import HostKeyStoreError
from megatui.sources.ssh_probe import Credentials, SSHProber, load_asyncssh

if TYPE_CHECKING:
    from megatui.backoff import Backoff
    from megatui.monitor import Monitor

log = logging.getLogger(__name__)

# How often the probe of a VM in error (bad credentials, changed host key) retries:
# rarely, since only a change on the VM's side can fix it.
ERROR_PROBE_INTERVAL = 10.0
# How long a VM may stay "starting" without the backend reporting it running.
START_GRACE = 300.0
# Between health checks of a READY VM, how often its port is checked with a bare TCP
# connect: a listener that died must not leave the VM "ready" for a whole health
# interval (and forever, while the kept session lives). Detection takes at most this
# plus the SSH connect timeout (3 + 5 s by default, within the promised 10 s).
READY_CHECK_INTERVAL = 3.0
# A controller's pace (issue #11): one list every 2 s while something moves, every
# 10 s when all is settled; a VM in transition is followed by its watch meanwhile.
CONTROLLER_MOVING_INTERVAL = 2.0
CONTROLLER_SETTLED_INTERVAL = 10.0
# How long a VM's watch waits before following it again after its stream ended.
WATCH_RETRY = 1.0
# At most this many address look-ups at once (200 VMs booting at once on a fleet).
IP_CONCURRENCY = 32

# What a failed list means for the VM source's status.
_KINDS = {
    BackendErrorKind.NOT_INSTALLED: StatusKind.NOT_INSTALLED,
    BackendErrorKind.TIMEOUT: StatusKind.TIMEOUT,
    BackendErrorKind.LOCKED: StatusKind.LOCKED,
    BackendErrorKind.BAD_RESPONSE: StatusKind.BAD_DATA,
    BackendErrorKind.UNREACHABLE: StatusKind.UNREACHABLE,
}
_IN_TRANSIT = frozenset({PreBootStage.SCHEDULING, PreBootStage.PULLING, PreBootStage.CLONING})


async def sleep_or_wake(wake: asyncio.Event, delay: float, *, keep: bool = False) -> None:
    """Sleep `delay` seconds or until `wake` is set (then cleared, unless `keep`)."""
    with contextlib.suppress(TimeoutError):
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
        # cancellation that races with the event being set, and the task would
        # then never stop.
        async with asyncio.timeout(delay):
            await wake.wait()
    if not keep:
        wake.clear()


class VMTracker:
    """The VMs of one backend, as the monitor publishes them."""

    def __init__(self, monitor: Monitor, backend: VMBackend, backoff: Backoff) -> None:
        self.monitor = monitor
        self.backend = backend
        self.settings = monitor.settings
        self.clock = monitor.clock
        self.backoff = backoff
        self.prober = SSHProber(
            _reach_of(backend),  # type: ignore[arg-type]  # an SSHReach, all it uses
            monitor.hostkeys,
            self.clock,
            connect_timeout=self.settings.ssh_connect_timeout,
            command_timeout=self.settings.ssh_connect_timeout,
        )
        self.vms: dict[str, BackendVM] = {}
        self.listed = False
        self.all_names: set[str] = set()  # before vm_filter: for "unknown VM" messages
        self.ips: dict[str, str] = {}
        self._ip_recheck: set[str] = set()  # addresses to ask the backend for again
        self.probes: dict[str, ProbeResult] = {}
        self.start_requested: dict[str, float] = {}
        self.stop_requested: set[str] = set()
        self.action_errors: dict[str, str] = {}
        self.workers: tuple[Worker, ...] = ()
        self.readonly_reason: str | None = None
        self._readonly_asked = False
        # Each VM's uid as last seen, kept across sessions: a recreated VM is known as
        # a new machine even when megatui was not running while it was recreated.
        self._uids_path: Path | None = None
        self._uids: dict[str, str] = {}
        self._uids_dirty = False
        if backend.can_watch:
            from megatui.config import data_dir

            self._uids_path = data_dir() / "vm_uids.json"
            self._uids = load_uids(self._uids_path)
        self.wake = asyncio.Event()
        self.probe_tasks: dict[str, asyncio.Task[None]] = {}
        self._resolving = False  # addresses are being looked up (see _resolve_ips)
        self._probe_ips: dict[str, str] = {}  # the address each probe task probes
        self.wake_probes: dict[str, asyncio.Event] = {}
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        #: Why the last list failed, None after a good one.
        self.failure: BackendErrorKind | None = None

    # --- polling ------------------------------------------------------------------------

    def settled(self) -> bool:
        if self.start_requested or self.stop_requested:
            return False
        return all(vm.phase not in MOVING_PHASES for vm in self.monitor.snapshot.vms)

    async def run(self) -> None:
        while True:
            delay = await self.poll()
            self.monitor._mark_first("tart")
            await sleep_or_wake(self.wake, delay)

    def _fail_list(self, exc: BackendError) -> float:
        self.failure = exc.kind
        delay = self.backoff.next_delay()
        kind = _KINDS.get(exc.kind, StatusKind.ERROR)
        self.monitor._fail(self.monitor.vm_source, str(exc), delay, kind)
        statuses = self.monitor._statuses
        if "ssh" in self.monitor.enabled and SOURCE_SSH not in statuses:
            # Say why nothing was probed, not "no answer" from a source never asked.
            statuses[SOURCE_SSH] = SourceStatus(
                SOURCE_SSH, ok=False, error=f"no VM probed: {self.backend.name} list failed"
            )
        self.monitor._mark_first("ssh")
        return delay

    async def poll(self) -> float:
        monitor = self.monitor
        try:
            vms = await self.backend.list_vms()
            workers = await self.backend.workers()
        except BackendError as exc:
            return self._fail_list(exc)
        self.failure = None
        self.backoff.reset()
        self.all_names = {vm.name for vm in vms}
        if monitor.vm_filter is not None:
            vms = [vm for vm in vms if vm.name in monitor.vm_filter]
        self._take(vms)
        self.workers = tuple(sorted(workers or (), key=lambda w: w.name))
        self.listed = True
        monitor._ok(monitor.vm_source)
        if "ssh" in monitor.enabled and "asyncssh" not in sys.modules and self._any_running():
            # Its import (in a thread) overlaps the address lookups: the probes need it.
            self._in_background(load_asyncssh())
        if self.backend.can_watch:
            # A fleet's VMs are on screen with the list, before one address lookup
            # per running VM (hundreds, each through the controller to a worker).
            monitor._publish_now()
        await self._ask_readonly()
        await self._resolve_ips()
        self._sync_probe_tasks()
        self._sync_watches()
        if self.probe_tasks:
            self._mark_probed()  # the probes started early may all have answered already
        if "ssh" in monitor.enabled and not self.probe_tasks:
            monitor._ok(SOURCE_SSH, note="no running VM with an address to probe")
        monitor._publish_now()
        if not self.probe_tasks:
            monitor._mark_first("ssh")
        return self._pace()

    def _any_running(self) -> bool:
        return any(vm.state is TartState.RUNNING for vm in self.vms.values())

    def _pace(self) -> float:
        settled = self.settled()
        if self.backend.can_watch:
            return CONTROLLER_SETTLED_INTERVAL if settled else CONTROLLER_MOVING_INTERVAL
        if settled:
            return self.settings.tart_poll_interval
        return self.settings.tart_boot_poll_interval

    def _take(self, vms: list[BackendVM]) -> None:
        """Adopt a new list: recreated machines are forgotten, gone VMs dropped."""
        for vm in vms:
            self._check_uid(vm)
        self._save_uids()
        self.vms = {vm.name: vm for vm in vms}
        self._forget_gone()

    def _check_uid(self, vm: BackendVM) -> None:
        """A VM recreated under the same name is a new machine: its host key and
        everything learned of the old one are forgotten, and the timeline says so."""
        if vm.uid is None:
            return
        # A restart (OnFailure) is a new clone on a worker too (`localName` ends in
        # the restart count); the first run keeps the bare uid, as saved before.
        machine = vm.uid if not vm.restart_count else f"{vm.uid}#{vm.restart_count}"
        old = self._uids.get(vm.name)
        if old == machine:
            return
        self._uids[vm.name] = machine
        self._uids_dirty = True
        if old is None:
            return
        restarted = old.split("#")[0] == vm.uid
        forgotten = False
        with contextlib.suppress(HostKeyStoreError):
            forgotten = self.monitor.hostkeys.forget(vm.name)
        self.ips.pop(vm.name, None)
        self.probes.pop(vm.name, None)
        self.monitor.engine.forget(vm.name)
        key = "; its host key was forgotten and is learned anew" if forgotten else ""
        self.monitor._add_event(
            Event(
                at=self.clock.now(),
                kind="vm",
                subject=vm.name,
                message=(
                    f"restarted by the controller (restart {vm.restart_count}): a new clone{key}"
                    if restarted
                    else f"recreated (new uid {vm.uid}): a new machine{key}"
                ),
            )
        )

    def _save_uids(self) -> None:
        if self._uids_path is None or not self._uids_dirty:
            return
        self._uids_dirty = False
        try:
            save_uids(self._uids_path, self._uids)
        except OSError as exc:
            log.warning("cannot save VM uids: %s", exc)

    def _forget_gone(self) -> None:
        for name in list(self.ips):
            vm = self.vms.get(name)
            if vm is None or vm.state is not TartState.RUNNING or vm.stage is not None:
                # A stopped VM's lease is stale (docs/facts/tart.md §5.5): not an address.
                self.ips.pop(name, None)
                self.probes.pop(name, None)
        for name in list(self.start_requested):
            vm = self.vms.get(name)
            running = vm is not None and vm.state is TartState.RUNNING
            waited = self.clock.monotonic() - self.start_requested[name]
            if running or waited > START_GRACE:
                del self.start_requested[name]
        for name in list(self.stop_requested):
            vm = self.vms.get(name)
            if vm is None or vm.state is not TartState.RUNNING:
                self.stop_requested.discard(name)
        for shown in self.monitor.snapshot.vms:
            if shown.name not in self.vms:
                # Its uid is kept: the same name back with another is a new machine.
                self.monitor.engine.forget(shown.name)

    async def _ask_readonly(self) -> None:
        if self._readonly_asked:
            return
        try:
            self.readonly_reason = await self.backend.readonly_reason()
        except BackendError as exc:
            log.debug("readonly check: %s", exc)
            return
        self._readonly_asked = True

    async def _resolve_ips(self) -> None:
        wanted = [
            name
            for name, vm in self.vms.items()
            if vm.state is TartState.RUNNING
            and vm.stage is None
            and (name not in self.ips or name in self._ip_recheck)
        ]
        self._ip_recheck.clear()
        if not wanted:
            return
        limit = asyncio.Semaphore(IP_CONCURRENCY)

        async def one(name: str) -> str | None:
            async with limit:
                ip = await self.backend.ip(name)
            if ip is not None:
                # Probe it now, while the other lookups run: with many running VMs the
                # lookups (a `tart ip` process each) and the logins overlap, which is
                # most of what `status` waits for (benchmarks/bench_scale.py).
                self.ips[name] = ip
                self._sync_probe_tasks()
            return ip

        self._resolving = True
        try:
            results = await asyncio.gather(*(one(n) for n in wanted), return_exceptions=True)
        finally:
            self._resolving = False
        for name, result in zip(wanted, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, str):
                self.ips[name] = result
            elif isinstance(result, BaseException):
                log.debug("ip of %s: %s", name, result)

    # --- watches (a controller's VMs in transition) ------------------------------------

    def _in_transit(self, name: str) -> bool:
        vm = self.vms.get(name)
        if vm is None:
            return False
        if name in self.start_requested or name in self.stop_requested:
            return True
        return vm.stage in _IN_TRANSIT

    def _sync_watches(self) -> None:
        if not self.backend.can_watch:
            return
        for name in list(self._watches):
            if not self._in_transit(name):
                self._watches.pop(name).cancel()
        for name in self.vms:
            if name not in self._watches and self._in_transit(name):
                self._watches[name] = asyncio.create_task(
                    self._watch_loop(name), name=f"watch:{name}"
                )

    async def _watch_loop(self, name: str) -> None:
        while self._in_transit(name):
            try:
                async for vm in self.backend.watch(name):
                    if vm is None:
                        self._gone(name)
                        return
                    await self._take_one(vm)
                    if not self._in_transit(name):
                        self._watches.pop(name, None)
                        return  # settled: no watch on it any more
            except BackendError as exc:
                # The list reports the controller's trouble; the watch waits for it.
                log.debug("watch of %s: %s", name, exc)
                await asyncio.sleep(CONTROLLER_MOVING_INTERVAL)
                continue
            await asyncio.sleep(WATCH_RETRY)

    async def _take_one(self, vm: BackendVM) -> None:
        """A watched VM changed. Its own news only: no list of every VM for it (the
        pace of lists is the controller budget's)."""
        before = self.vms.get(vm.name)
        if before is None:
            return  # filtered out, or not listed yet: the list is the authority
        self._check_uid(vm)
        self._save_uids()
        self.vms[vm.name] = vm
        self._forget_gone()
        if before.stage is not None and vm.stage is None:
            # Past its stages: its address now, not at the next list.
            await self._resolve_ips()
            self._sync_probe_tasks()
        self.monitor._schedule_publish()

    def _gone(self, name: str) -> None:
        self.vms.pop(name, None)
        self.all_names.discard(name)
        self._forget_gone()
        self._sync_probe_tasks()
        self.monitor._schedule_publish()

    # --- ssh probes ---------------------------------------------------------------------

    def _sync_probe_tasks(self) -> None:
        if "ssh" not in self.monitor.enabled:
            return
        for name in list(self.probe_tasks):
            if self.ips.get(name) != self._probe_ips.get(name):
                # Gone, or a new address (a reboot's new lease): start afresh.
                self._probe_ips.pop(name, None)
                self.probe_tasks.pop(name).cancel()
                self.wake_probes.pop(name, None)
                self._in_background(self.prober.drop(name))
        for name, ip in self.ips.items():
            if name not in self.probe_tasks:
                self._probe_ips[name] = ip
                self.wake_probes[name] = asyncio.Event()
                self.probe_tasks[name] = asyncio.create_task(
                    self._probe_loop(name, ip), name=f"probe:{name}"
                )

    def _in_background(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _probe_loop(self, name: str, ip: str) -> None:
        login = self.settings.vm(name)
        creds = Credentials(
            user=login.user,
            password=login.password,
            key_path=login.key,
            use_agent=self.settings.ssh_agent,
        )
        outage = self.monitor.outage
        while self.ips.get(name) == ip:
            route = self.backend.ssh_route(name, ip, login.port)
            if route is None:
                await sleep_or_wake(self.wake_probes[name], self.settings.ssh_probe_interval)
                continue
            vm = self.vms.get(name)
            if vm is not None and vm.stale and name in self.probes:
                # Its worker is offline: what it showed is the last known state, not
                # a probe through a controller that cannot reach it.
                await sleep_or_wake(self.wake_probes[name], ERROR_PROBE_INTERVAL)
                continue
            result = await self.prober.probe(name, route.host, route.port, creds, login.command)
            if await outage.blame_host(self.probes.get(name), result):
                # The tunnel is down, not the VM: keep the last known state.
                await sleep_or_wake(self.wake_probes[name], 1.0)
                continue
            self._record_probe(name, result)
            if result.stage is ProbeStage.READY:
                closed = await self._watch_ready(name, ip, route.host, route.port)
                if closed is not None and not outage.host_down():
                    self._record_probe(name, closed)
                    await sleep_or_wake(self.wake_probes[name], self._probe_delay(closed))
                continue
            await sleep_or_wake(self.wake_probes[name], self._probe_delay(result))

    def _record_probe(self, name: str, result: ProbeResult) -> None:
        previous = self.probes.get(name)
        self.probes[name] = result
        if result.stage is ProbeStage.CLOSED and previous and previous.stage is ProbeStage.READY:
            # A ready VM whose port closed may have rebooted with a new lease: ask the
            # backend again, but keep the address meanwhile (it is "ip", not "booting").
            self._ip_recheck.add(name)
            self.wake.set()
        if result.stage is not ProbeStage.ERROR:
            self.monitor._ok(SOURCE_SSH)
        if previous is None or previous.stage != result.stage or previous.error != result.error:
            self.monitor._publish_now()
        self._mark_probed()

    def _mark_probed(self) -> None:
        """The first round of probes is done once every VM with an address has an
        answer; not while addresses are still being looked up (more probes to come)."""
        if not self._resolving and all(n in self.probes for n in self.probe_tasks):
            self.monitor._mark_first("ssh")

    async def _watch_ready(self, name: str, ip: str, host: str, port: int) -> ProbeResult | None:
        """Between health checks of a READY VM, check its port with a bare TCP connect.

        Returns None when the next full probe is due: the health interval passed, a
        refresh asked for it, or the kept connection died. Returns CLOSED as soon as
        the port stops accepting: a VM whose sshd listener died keeps its old session
        alive, and the kept connection alone would call it ready forever. Through a
        controller's port-forward each check would be a new WebSocket per VM: there
        the kept connection and the health interval do the watching."""
        wake = self.wake_probes[name]
        due = self.clock.monotonic() + self.settings.ssh_health_interval
        port_checks = not self.backend.can_watch
        while self.ips.get(name) == ip:
            remaining = due - self.clock.monotonic()
            if remaining <= 0:
                return None
            step = min(READY_CHECK_INTERVAL, remaining) if port_checks else remaining
            await sleep_or_wake(wake, step, keep=True)
            if wake.is_set():
                wake.clear()  # a refresh: probe now, once
                return None
            if due <= self.clock.monotonic():
                return None
            if not self.prober.has_connection(name):
                return None
            if port_checks and not await self.prober.port_open(host, port):
                await self.prober.drop(name)
                return ProbeResult(stage=ProbeStage.CLOSED, checked_at=self.clock.now())
        return None

    def _probe_delay(self, result: ProbeResult) -> float:
        if result.stage is ProbeStage.READY:
            return self.settings.ssh_health_interval
        if result.stage in (ProbeStage.AUTH_FAILED, ProbeStage.HOST_KEY_CHANGED, ProbeStage.ERROR):
            return ERROR_PROBE_INTERVAL
        return self.settings.ssh_probe_interval

    # --- building VMs -------------------------------------------------------------------

    def _observation(self, vm: BackendVM) -> Observation:
        probe = self.probes.get(vm.name)
        running = vm.state is TartState.RUNNING and vm.stage is None
        return Observation(
            tart_state=vm.state,
            ip=self.ips.get(vm.name) if running else None,
            probe=probe.stage if probe and running else None,
            probe_error=probe.error if probe and running else None,
            start_requested=vm.name in self.start_requested,
            stop_requested=vm.name in self.stop_requested,
            error=self.action_errors.get(vm.name) if vm.state is not TartState.RUNNING else None,
            stage=vm.stage,
            stage_message=vm.stage_message,
            scheduled=self.backend.can_watch,
        )

    def build(self) -> tuple[VM, ...]:
        engine = self.monitor.engine
        failures = {w.name: w.failure for w in self.workers if not w.online}
        out = []
        for name in sorted(self.vms):
            backend_vm = self.vms[name]
            # A controller's VMs are recreated under new clones: learn per image.
            key = backend_vm.image if self.backend.can_watch and backend_vm.image else None
            vm = engine.observe(
                name, self._observation(backend_vm), port=self.settings.vm(name).port, key=key
            )
            out.append(_with_backend_facts(vm, backend_vm, failures))
        return tuple(out)

    # --- actions ------------------------------------------------------------------------

    def _known(self, name: str) -> BackendVM:
        vm = self.vms.get(name)
        if vm is None:
            raise ActionError(f"unknown VM '{name}'")
        return vm

    def _refused(self, exc: BackendError) -> ActionError:
        if exc.kind is BackendErrorKind.UNAUTHORIZED:
            self._readonly_asked = False  # the backend learned its role from the refusal
            self._in_background(self._ask_readonly_and_publish())
        return ActionError(str(exc))

    async def _ask_readonly_and_publish(self) -> None:
        await self._ask_readonly()
        self.monitor._schedule_publish()

    async def start(self, name: str) -> str | None:
        vm = self._known(name)
        if vm.state is TartState.RUNNING:
            raise ActionError(f"VM '{name}' is already running")
        self.action_errors.pop(name, None)
        self.start_requested[name] = self.clock.monotonic()
        self.monitor._schedule_publish()
        try:
            note = await self.backend.start(name)
        except BackendError as exc:
            self.start_requested.pop(name, None)
            self.action_errors[name] = str(exc)
            self.monitor._schedule_publish()
            raise self._refused(exc) from None
        finally:
            self.wake.set()
        if note:
            self.monitor._add_event(
                Event(at=self.clock.now(), kind="vm", subject=name, message=f"start: {note}")
            )
            self.monitor._schedule_publish()
        return note

    async def stop(self, name: str) -> None:
        vm = self._known(name)
        if vm.state is TartState.STOPPED and name not in self.start_requested:
            raise ActionError(f"VM '{name}' is not running")
        self.stop_requested.add(name)
        self.monitor._schedule_publish()
        try:
            await self.backend.stop(name)
        except BackendError as exc:
            self.stop_requested.discard(name)
            self.monitor._schedule_publish()
            raise self._refused(exc) from None
        finally:
            self.wake.set()

    async def suspend(self, name: str) -> None:
        vm = self._known(name)
        if vm.state is not TartState.RUNNING:
            raise ActionError(f"VM '{name}' is not running")
        try:
            await self.backend.suspend(name)
        except BackendError as exc:
            raise self._refused(exc) from None
        finally:
            self.wake.set()

    async def create(self, spec: NewVMSpec) -> None:
        try:
            await self.backend.create(spec)
        except BackendError as exc:
            raise self._refused(exc) from None
        finally:
            self.wake.set()

    async def delete(self, name: str) -> None:
        self._known(name)
        try:
            await self.backend.delete(name)
        except BackendError as exc:
            raise self._refused(exc) from None
        finally:
            self.wake.set()

    # --- life ---------------------------------------------------------------------------

    def tasks(self) -> list[asyncio.Task[None]]:
        return [*self.probe_tasks.values(), *self._watches.values(), *self._background]

    async def close(self) -> None:
        tasks = self.tasks()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.probe_tasks.clear()
        self._probe_ips.clear()
        self._watches.clear()
        await self.prober.close()


def _with_backend_facts(vm: VM, backend_vm: BackendVM, failures: dict[str, str | None]) -> VM:
    """The engine's VM with what the backend says of it: where it runs, restarts, and
    whether what is shown is only the last known state (its worker is offline)."""
    hint = vm.hint
    if hint is None and vm.phase in PRE_BOOT_PHASES:
        hint = backend_vm.stage_message  # why it waits: e.g. no free macOS VM slot
    if backend_vm.stale and vm.phase is not Phase.ERROR:
        worker = backend_vm.worker or "its worker"
        hint = failures.get(backend_vm.worker or "") or f"{worker} is offline: last known state"
    return replace(
        vm,
        backend=backend_vm.backend,
        worker=backend_vm.worker,
        restart_policy=backend_vm.restart_policy,
        restart_count=backend_vm.restart_count,
        stale=backend_vm.stale,
        hint=hint,
    )


def load_uids(path: Path) -> dict[str, str]:
    """{VM name: uid} as saved; empty when missing or not that shape (a cache)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def save_uids(path: Path, uids: dict[str, str]) -> None:
    """Atomically (a temp file renamed over), so a crash never leaves half a file."""
    write_atomic(path, json.dumps(dict(sorted(uids.items())), indent=1))


def _reach_of(backend: VMBackend) -> object:
    """How the backend's VMs are dialled: the same for all of them (the transport
    for tart, the controller's port-forward for Orchard)."""
    route = backend.ssh_route("megatui-reach", "127.0.0.1", 22)
    if route is None:  # pragma: no cover - every backend routes a VM with an address
        raise RuntimeError(f"{backend.name}: no SSH route")
    return route.reach
