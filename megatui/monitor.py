"""The core loop shared by the TUI and the headless commands.

Each outside system runs in its own task at its own pace (polls never overlap,
because each task sleeps only after its poll is done). Results land in plain
fields; `_publish` folds them into one immutable `Snapshot`, derives the event
timeline and tells subscribers. Nothing here imports a UI toolkit.

The VMs come from one `VMBackend` (tart on this Mac or over `--host`, or an
Orchard controller), driven by `vm_tracker.VMTracker`; the monitor never asks
which. How an outage of the `--host` connection is shown lives in `host_outage`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from megatui import actions, vm_intents
from megatui.api import ActionError
from megatui.backends.base import BackendError, BackendErrorKind, NewVMSpec, VMBackend
from megatui.backends.tart import RUN_MARKER, TartBackend, current_run
from megatui.backoff import Backoff
from megatui.clock import Clock, SystemClock
from megatui.config import Settings, data_dir, state_dir
from megatui.drill import DrillDown
from megatui.host_outage import BEHIND_HOST, HOST_CHECK_TIMEOUT, HOST_RECOVERY_GRACE, HostOutage
from megatui.model import (
    SOURCE_HOST,
    VM,
    DockerStatus,
    Event,
    KindNodeContainer,
    KubeEvent,
    Node,
    Pod,
    Snapshot,
    SourceStatus,
    StatusKind,
    vm_source,
)
from megatui.phases import BootHistory, PhaseEngine
from megatui.sources.hostkeys import HostKeyStore, HostKeyStoreError, default_path
from megatui.sources.pod_why import next_why_due, with_why
from megatui.sources.ssh_probe import SSHProber
from megatui.sources.tart import TartCLI
from megatui.subscribers import Subscribers
from megatui.timeline import diff_events
from megatui.transport import LocalTransport, Transport
from megatui.vm_tracker import (
    ERROR_PROBE_INTERVAL,
    READY_CHECK_INTERVAL,
    START_GRACE,
    VMTracker,
    sleep_or_wake,
)

if TYPE_CHECKING:  # kube.py pulls in the kubernetes client: import it only when used
    from megatui.remote import RemoteSetup
    from megatui.sources.kube import KubeSource, KubeState
    from megatui.sources.kube_logs import LogBuffer, LogLine

log = logging.getLogger(__name__)

__all__ = [
    "ALL_SOURCES",
    "BEHIND_HOST",
    "ERROR_PROBE_INTERVAL",
    "HOST_CHECK_TIMEOUT",
    "HOST_RECOVERY_GRACE",
    "READY_CHECK_INTERVAL",
    "RUN_MARKER",
    "START_GRACE",
    "Monitor",
    "current_run",
]

ALL_SOURCES = frozenset({"tart", "ssh", "kube", "docker"})
MAX_EVENTS = 500
# How often the host's kubeconfig is fetched again with --host.
KUBECONFIG_REFRESH = 30.0


class Monitor:
    """Runs the sources and publishes snapshots. Implements `api.MonitorAPI`.

    `backend` is where the VMs live; without one, tart through `transport` (this
    Mac, or the Mac of `--host`)."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: Transport | None = None,
        clock: Clock | None = None,
        sources: Iterable[str] = ALL_SOURCES,
        vm_filter: Sequence[str] | None = None,
        backend: VMBackend | None = None,
    ) -> None:
        self.settings = settings
        self.transport: Transport = transport or LocalTransport()
        self.clock: Clock = clock or SystemClock()
        self.enabled = frozenset(sources)
        self.vm_filter = tuple(vm_filter) if vm_filter else None
        # The tart of this Mac or the host (doctor asks its version), whether or not
        # it is the VM backend.
        self.tart = TartCLI(self.transport, settings.tart_path, settings.tart_timeout)
        if backend is None:
            backend = TartBackend(
                self.tart,
                jump_host=settings.host if self.transport.is_remote else None,
                address_override=lambda name: settings.vm(name).host,
                clock=self.clock,
            )
        self.backend: VMBackend = backend
        #: The VMs' source's name (status key, metrics label): the backend's.
        self.vm_source = vm_source(backend.name)
        self.hostkeys = HostKeyStore(default_path())
        self._history_path = data_dir() / "boot_history.json"
        self.engine = PhaseEngine(self.clock, BootHistory.load(self._history_path))

        # Raw source results, folded into snapshots by _publish.
        self._statuses: dict[str, SourceStatus] = {}
        self._kube_state: KubeState | None = None
        self._docker: DockerStatus | None = None
        self._retry_at: dict[str, float] = {}  # monotonic

        self._snapshot = Snapshot(
            generated_at=self.clock.now(),
            host=self._label(),
            readonly=settings.readonly,
            kube_context=settings.kube_context,
            vm_source=self.vm_source,
        )
        self._events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self._subscribers: Subscribers[Snapshot] = Subscribers("snapshot subscriber")
        self._tasks: list[asyncio.Task[None]] = []
        self._wake_docker = asyncio.Event()
        self._docker_refreshed = False  # `r` was pressed: forget the docker backoff
        self._kube_source: KubeSource | None = None
        self._publish_scheduled = False
        self._why_timer: asyncio.TimerHandle | None = None
        self._why_due: float | None = None  # the clock time the timer is set for
        self._timeline_news = False
        self._first_round: dict[str, asyncio.Event] = {}
        self._started = False
        self._wake_host = asyncio.Event()
        self._remote_setup: RemoteSetup | None = None
        self._tart_backoff = Backoff(base=settings.tart_boot_poll_interval)
        self.outage = HostOutage(
            self.transport,
            self.clock,
            self.enabled,
            self._statuses,
            self._schedule_publish,
            self._host_recovered,
            # A controller's VMs are not behind the host: only kube and docker are.
            behind=None if backend.name == "tart" else _behind_host_without_vms(),
        )
        self.vms = VMTracker(self, backend, self._tart_backoff)
        #: Settings the kube and docker sources use: with --host, pointing at the
        #: local ends of the forwards to the host's API server and Docker socket.
        self.source_settings = settings
        self.drill = DrillDown(settings, self.clock, self._drill_changed, self._add_event)

    def _label(self) -> str:
        if self.backend.name == "tart":
            return self.transport.label
        # The cluster and Docker are this Mac's (or --host's); the VMs the fleet's.
        return f"{self.transport.label} · {self.backend.label}"

    @property
    def prober(self) -> SSHProber:
        return self.vms.prober

    @property
    def tart_failure(self) -> BackendErrorKind | None:
        """Why the last list of VMs failed, None after a good one."""
        return self.vms.failure

    @property
    def readonly(self) -> bool:
        """Asked to be, or the account may not change anything."""
        return self.settings.readonly or self.vms.readonly_reason is not None

    # --- MonitorAPI ------------------------------------------------------------------
    # (Its signatures stand again in api.py and serve/client.py: a Protocol's methods
    # are spelt out in each implementation.)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def events(self) -> Sequence[Event]:
        return tuple(self._events)

    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        return self._subscribers.subscribe(callback)

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        for name in self.enabled:
            self._first_round[name] = asyncio.Event()
        if self.transport.is_remote:
            # Sources start once the one connection to the host is up (and the host's
            # kubeconfig and Docker socket are forwarded), so nothing fails in a storm.
            self._tasks.append(asyncio.create_task(self._host_task(), name="host"))
        else:
            self._start_sources()

    def _start_sources(self) -> None:
        if "tart" in self.enabled:
            self._tasks.append(asyncio.create_task(self.vms.run(), name="tart"))
        if "docker" in self.enabled:
            self._tasks.append(asyncio.create_task(self._docker_loop(), name="docker"))
        if "kube" in self.enabled:
            self._tasks.append(asyncio.create_task(self._kube_task(), name="kube"))
            self._tasks.append(asyncio.create_task(self._drill_task(), name="kube-events"))
        if "ssh" in self.enabled and "tart" not in self.enabled:
            self._mark_first("ssh")

    # --- the remote host -------------------------------------------------------------

    async def _host_task(self) -> None:
        from megatui.remote import RemoteError, RemoteTransport, prepare_remote

        transport = self.transport
        assert isinstance(transport, RemoteTransport)
        transport.add_listener(self.outage.on_host_change)
        if not transport.connected:
            self._statuses[SOURCE_HOST] = SourceStatus(
                SOURCE_HOST, ok=False, error=f"connecting to {transport.label}"
            )
            self._schedule_publish()
            with contextlib.suppress(RemoteError):
                await transport.connect(keep_trying=True)
            while not transport.connected:
                await self._sleep(self._wake_host, 1.0)
        self.outage.on_host_change(transport)
        if self.enabled & {"kube", "docker"}:
            setup = await prepare_remote(transport, self.settings)
            self._remote_setup = setup
            self.source_settings = setup.settings
        self._start_sources()
        await self._keep_kubeconfig_fresh()

    def _host_recovered(self) -> None:
        self.refresh()
        self._wake_host.set()

    async def _keep_kubeconfig_fresh(self) -> None:
        """Kind may recreate its cluster (new port, new certificates) while we run."""
        from megatui.remote import RemoteTransport, refresh_kubeconfig

        transport = self.transport
        setup = self._remote_setup
        if setup is None or "kube" not in self.enabled:
            return
        assert isinstance(transport, RemoteTransport)
        while True:
            await self._sleep(self._wake_host, KUBECONFIG_REFRESH)
            if transport.connected:
                with contextlib.suppress(Exception):
                    await refresh_kubeconfig(transport, setup)

    def _remote_problem(self, source: str) -> str | None:
        setup = self._remote_setup
        return setup.problems.get(source) if setup is not None else None

    async def stop(self) -> None:
        tasks = [*self._tasks, *self.outage.tasks()]
        self.outage.close()
        if self._why_timer is not None:
            self._why_timer.cancel()
            self._why_timer = None
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.vms.close()
        await self.backend.close()
        self._save_history()
        self._started = False
        # The monitor is the transport's last user: with --host this ends the one
        # connection and removes the private directory (kubeconfig, sockets).
        await self.transport.close()

    def refresh(self) -> None:
        # A refresh is the user saying "try now": a failing tart starts over at its
        # shortest delay instead of the backoff it had reached.
        self._tart_backoff.reset()
        retry_now = getattr(self.transport, "retry_now", None)
        if retry_now is not None:
            retry_now()  # a reconnecting host: try at once, with the backoff reset
        self.vms.wake.set()
        self._docker_refreshed = True
        self._wake_docker.set()
        if self._kube_source is not None:
            self._kube_source.refresh()
        for event in self.vms.wake_probes.values():
            event.set()

    def retry_in(self, source: str) -> float | None:
        if source == SOURCE_HOST or source in self.outage.masked:
            # Behind a down host, the host's countdown is the only one.
            host = self._snapshot.sources.get(SOURCE_HOST)
            if host is None or host.next_retry_at is None:
                return None
            return max(0.0, host.next_retry_at - self.clock.now())
        at = self._retry_at.get(source)
        if at is None:
            return None
        return max(0.0, at - self.clock.monotonic())

    # --- actions -----------------------------------------------------------------------

    def _check_allowed(self, action: str) -> None:
        reason = self.vms.readonly_reason
        if reason is not None and not self.settings.readonly and action in actions.MUTATING:
            raise ActionError(reason)
        actions.check_allowed(action, self.settings.readonly)

    async def start_vm(self, name: str) -> str | None:
        """As MonitorAPI.start_vm (api.py)."""
        self._check_allowed("start")
        self._record_intent(name, "start")
        return await self.vms.start(name)

    async def stop_vm(self, name: str) -> None:
        self._check_allowed("stop")
        self._record_intent(name, "stop")  # recovery must not fight it
        await self.vms.stop(name)

    async def suspend_vm(self, name: str) -> None:
        self._check_allowed("suspend")
        # For recovery a suspend is a stop the user asked for: never restart it.
        self._record_intent(name, "stop")
        await self.vms.suspend(name)

    async def create_vm(self, spec: NewVMSpec) -> None:
        self._check_allowed("create")
        await self.vms.create(spec)

    async def delete_vm(self, name: str) -> None:
        self._check_allowed("delete")
        await self.vms.delete(name)

    def _record_intent(self, name: str, action: str) -> None:
        """What the user asked for, in a file every megatui process reads, so that
        recovery (megatui serve) never fights a stop made from another terminal."""
        if self._snapshot.vm(name) is not None:
            vm_intents.record(name, action, self.clock.now())

    def ssh_argv(self, name: str) -> list[str]:
        vm = self._snapshot.vm(name)
        if vm is None:
            raise ActionError(f"unknown VM '{name}'")
        login = self.settings.vm(name)
        try:
            command = self.backend.ssh_command(name, vm.ip, login.port)
        except BackendError as exc:
            raise ActionError(str(exc)) from None
        try:
            trusted = self.hostkeys.all()
        except HostKeyStoreError as exc:
            raise ActionError(str(exc)) from None
        known_hosts = state_dir() / "known_hosts"
        # Every trusted VM, not only this one: a command copied earlier for another VM
        # names the same file and must keep working.
        try:
            actions.write_known_hosts(known_hosts, trusted)
        except OSError as exc:
            raise ActionError(f"cannot write {known_hosts}: {exc.strerror or exc}") from None
        return actions.ssh_argv(
            vm,
            login,
            options=command.options,
            destination=command.destination,
            known_hosts=known_hosts,
            key_known=trusted.get(name) is not None,
        )

    def log_path(self, name: str) -> str:
        path = getattr(self.backend, "log_path", None)
        if callable(path):
            return str(path(name))
        return f"{self.backend.label}: events of VM '{name}'"

    async def vm_details(self, name: str) -> dict[str, object]:
        try:
            return await self.backend.details(name)
        except BackendError as exc:
            raise ActionError(str(exc)) from None

    async def read_log_tail(self, name: str, lines: int = 50) -> list[str]:
        """The last `lines` lines of the VM's latest run (from its start marker on)."""
        try:
            return await self.backend.log_tail(name, lines)
        except BackendError:
            return []

    # --- for headless consumers --------------------------------------------------------

    def pod_events(self, namespace: str, name: str, uid: str = "") -> list[KubeEvent]:
        return self.drill.pod_events(namespace, name, uid)

    def events_problem(self) -> str | None:
        return self.drill.problem()

    async def kube_object(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        return await self.drill.get_object(kind, namespace, name)

    async def follow_pod_logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        buffer: LogBuffer,
        on_lines: Callable[[list[LogLine]], None],
        *,
        previous: bool = False,
    ) -> None:
        await self.drill.follow_logs(namespace, pod, container, buffer, on_lines, previous=previous)

    async def wait_first_round(self, timeout: float) -> bool:
        """Wait until every enabled source has answered (or failed) once."""
        waiters = [event.wait() for event in self._first_round.values()]
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*waiters)
        except TimeoutError:
            return False
        return True

    def tart_hopeless(self) -> bool:
        """The VM backend fails in a way that does not pass by itself: tart is not
        installed."""
        return self.vms.failure is BackendErrorKind.NOT_INSTALLED

    def first_round_done(self) -> bool:
        """Every enabled source has answered (or failed) once."""
        return all(event.is_set() for event in self._first_round.values())

    def known_vm_names(self) -> set[str] | None:
        """The VMs the backend listed, or None before the first successful list."""
        return set(self.vms.all_names) if self.vms.listed else None

    # --- docker ------------------------------------------------------------------------------

    async def _docker_loop(self) -> None:
        # Imported in a thread: the docker SDK takes a few hundred ms to import, and
        # on the event loop that would freeze the TUI right after its first paint.
        await asyncio.to_thread(importlib.import_module, "megatui.sources.docker")
        from megatui.sources.docker import DockerSource

        settings = self.source_settings
        source = DockerSource(settings.docker_host, timeout=settings.docker_timeout)
        backoff = Backoff(base=self.settings.docker_poll_interval)
        try:
            while True:
                status = await source.poll()
                self._docker = status
                if status.reachable:
                    backoff.reset()
                    self._ok("docker")
                    delay = self.settings.docker_poll_interval
                else:
                    delay = backoff.next_delay()
                    error = self._remote_problem("docker") or status.error
                    self._fail(
                        "docker",
                        error or "Docker daemon unreachable",
                        delay,
                        StatusKind.UNREACHABLE,
                    )
                self._publish_now()
                self._mark_first("docker")
                await self._sleep(self._wake_docker, delay)
                if self._docker_refreshed:
                    self._docker_refreshed = False
                    backoff.reset()
        finally:
            await source.close()

    # --- kubernetes ----------------------------------------------------------------------------

    async def _kube_task(self) -> None:
        # In a thread for the same reason as the docker SDK; the kubernetes client is
        # the slowest import megatui has.
        await asyncio.to_thread(importlib.import_module, "megatui.sources.kube")
        from megatui.sources.kube import KubeSource

        def on_change(state: KubeState) -> None:
            self._kube_state = state
            now = self.clock.now()
            for name, status in state.statuses.items():
                problem = self._remote_problem("kube")
                if not status.ok:
                    self.outage.hold_for_host(name, self._statuses.get(name))
                if problem and not status.ok:
                    # The local end of a forward failed because the host side did:
                    # say what went wrong on the host, not which temp file is missing.
                    status = replace(status, error=problem)
                self._statuses[name] = status
                if status.ok:
                    self._retry_at.pop(name, None)
                elif status.next_retry_at is not None:
                    self._retry_at[name] = self.clock.monotonic() + max(
                        0.0, status.next_retry_at - now
                    )
            if state.answered and self.drill.answered:
                # Not before: the first list to arrive (say nodes) is not the whole state,
                # and a pod's WHY may need its events.
                self._mark_first("kube")
            self._schedule_publish()

        source = KubeSource(self.source_settings, self.clock, on_change)
        self._kube_source = source
        try:
            await source.run()
        finally:
            self._kube_source = None

    async def _drill_task(self) -> None:
        await asyncio.to_thread(importlib.import_module, "megatui.sources.kube")
        await self.drill.run(self.source_settings)

    def _drill_changed(self) -> None:
        # The events watch reports before its first list is in (no status yet): that
        # is not an answer, and the first round (a pod's WHY) waits for one.
        kube_answered = self._kube_state is not None and self._kube_state.answered
        if kube_answered and self.drill.answered:
            self._mark_first("kube")
        self._schedule_publish()

    def add_event(self, event: Event) -> None:
        """A timeline line from outside the sources (recovery), published at once."""
        self._add_event(event)
        self._schedule_publish()

    def _add_event(self, event: Event) -> None:
        """A timeline line; one with a key replaces the earlier line of that key."""
        if event.key:
            for old in [e for e in self._events if e.key == event.key]:
                self._events.remove(old)
        self._events.append(event)
        self._timeline_news = True  # subscribers must hear of it even if nothing else moved

    # --- folding ---------------------------------------------------------------------------------

    def _ok(self, name: str, note: str | None = None) -> None:
        self._statuses[name] = SourceStatus(name, ok=True, updated_at=self.clock.now(), note=note)
        self._retry_at.pop(name, None)

    def _fail(
        self, name: str, error: str, retry_in: float, kind: StatusKind = StatusKind.ERROR
    ) -> None:
        prev = self._statuses.get(name)
        self.outage.hold_for_host(name, prev)
        self._statuses[name] = SourceStatus(
            name,
            ok=False,
            error=error,
            updated_at=prev.updated_at if prev else None,
            next_retry_at=self.clock.now() + retry_in,
            kind=kind,
        )
        self._retry_at[name] = self.clock.monotonic() + retry_in
        self._schedule_publish()

    def _mark_first(self, name: str) -> None:
        event = self._first_round.get(name)
        if event is not None:
            event.set()

    async def _sleep(self, wake: asyncio.Event, delay: float, *, keep: bool = False) -> None:
        await sleep_or_wake(wake, delay, keep=keep)

    def _build_vms(self) -> tuple[VM, ...]:
        vms = self.vms.build()
        if self.engine.dirty:
            self._save_history()
        return vms

    def _build_nodes(self) -> tuple[Node, ...]:
        state = self._kube_state
        nodes = state.nodes if state is not None else ()
        docker = self._docker
        if docker is None or not docker.reachable:
            return nodes
        containers = {n.name: n for c in docker.clusters for n in c.nodes}
        merged = [
            _with_container(n, containers.pop(n.name)) if n.name in containers else n for n in nodes
        ]
        # A Kind node container the API server does not list (e.g. exited before it
        # registered, or the API server itself is down) still deserves a row.
        if state is not None and state.nodes:
            for name, container in sorted(containers.items()):
                merged.append(
                    Node(
                        name=name,
                        status="NotRegistered",
                        roles=container.role,
                        version="",
                        created=None,
                        container_state=container.state,
                        container_exit_code=container.exit_code,
                        container_restarts=container.restart_count,
                    )
                )
        return tuple(merged)

    def _schedule_publish(self) -> None:
        if self._publish_scheduled:
            return
        self._publish_scheduled = True
        try:
            asyncio.get_running_loop().call_soon(self._publish_now)
        except RuntimeError:
            self._publish_scheduled = False
            self._publish_now()

    def _publish_now(self) -> None:
        self._publish_scheduled = False
        state = self._kube_state
        sources, masked = self.outage.shown_sources()
        snap = Snapshot(
            generated_at=self.clock.now(),
            host=self._label(),
            sources=sources,
            vms=self._build_vms(),
            nodes=self._build_nodes(),
            pods=with_why(state.pods, self.drill.latest_warning, self.clock.now())
            if state is not None
            else (),
            applications=state.applications if state is not None else (),
            docker=self._docker,
            argocd=state.argocd if state is not None else None,
            kube_context=(state.context if state is not None else None)
            or self.settings.kube_context,
            readonly=self.readonly,
            workers=self.vms.workers,
            readonly_reason=self.vms.readonly_reason,
            vm_source=self.vm_source,
        )
        self._arm_why_timer(snap.pods, snap.generated_at)
        old = self._snapshot
        news, self._timeline_news = self._timeline_news, False
        if _same(old, snap) and not news:
            return
        self._events.extend(self.outage.source_events(diff_events(old, snap), masked))
        self.outage.masked = masked
        self._snapshot = snap
        self._subscribers.publish(snap)

    def _arm_why_timer(self, pods: tuple[Pod, ...], now: float) -> None:
        """One timer, for the earliest pod whose not-Ready grace (STUCK_AFTER) runs out:
        its WHY then appears on time instead of at the next published change."""
        due = next_why_due(pods, now)
        timer = self._why_timer
        if timer is not None and not timer.cancelled() and due == self._why_due:
            return
        if timer is not None:
            timer.cancel()
        self._why_timer, self._why_due = None, due
        if due is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        # Just past the moment: at exactly `due` the pod is still within its grace.
        self._why_timer = loop.call_later(max(0.0, due - now) + 0.05, self._why_timer_fired)

    def _why_timer_fired(self) -> None:
        self._why_timer = None
        self._why_due = None
        self._schedule_publish()

    def _save_history(self) -> None:
        try:
            self.engine.history.save(self._history_path)
            self.engine.mark_saved()
        except OSError as exc:
            log.warning("cannot save boot history: %s", exc)


def _behind_host_without_vms() -> dict[str, tuple[str, ...]]:
    return {k: v for k, v in BEHIND_HOST.items() if k not in ("tart", "ssh")}


def _same(a: Snapshot, b: Snapshot) -> bool:
    """Equal but for the time of generation: nothing worth telling anyone."""
    return replace(a, generated_at=0.0) == replace(b, generated_at=0.0)


def _with_container(node: Node, container: KindNodeContainer) -> Node:
    return replace(
        node,
        container_state=container.state,
        container_exit_code=container.exit_code,
        container_restarts=container.restart_count,
    )
