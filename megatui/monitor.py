"""The core loop shared by the TUI and the headless commands.

Each outside system runs in its own task at its own pace (polls never overlap,
because each task sleeps only after its poll is done). Results land in plain
fields; `_publish` folds them into one immutable `Snapshot`, derives the event
timeline and tells subscribers. Nothing here imports a UI toolkit.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from megatui import actions, report, vm_intents
from megatui.api import ActionError
from megatui.clock import Clock, SystemClock
from megatui.config import Settings, data_dir, state_dir
from megatui.drill import DrillDown
from megatui.model import (
    BOOT_PHASES,
    SOURCE_APPLICATIONS,
    SOURCE_DOCKER,
    SOURCE_HOST,
    SOURCE_KUBERNETES,
    SOURCE_SSH,
    SOURCE_TART,
    VM,
    DockerStatus,
    Event,
    KubeEvent,
    Node,
    ProbeResult,
    ProbeStage,
    Snapshot,
    SourceStatus,
    StatusKind,
    TartState,
    TartVM,
)
from megatui.phases import BootHistory, Observation, PhaseEngine
from megatui.sources.hostkeys import HostKeyStore, HostKeyStoreError, default_path
from megatui.sources.pod_why import with_why
from megatui.sources.ssh_probe import Credentials, SSHProber
from megatui.sources.tart import TartCLI, TartError, TartErrorKind
from megatui.timeline import diff_events
from megatui.transport import LocalTransport, Transport

if TYPE_CHECKING:  # kube.py pulls in the kubernetes client: import it only when used
    from megatui.remote import RemoteSetup
    from megatui.sources.kube import KubeSource, KubeState
    from megatui.sources.kube_logs import LogBuffer, LogLine

log = logging.getLogger(__name__)

ALL_SOURCES = frozenset({"tart", "ssh", "kube", "docker"})
MAX_EVENTS = 500
# How often the probe of a VM in error (bad credentials, changed host key) retries:
# rarely, since only a change on the VM's side can fix it.
ERROR_PROBE_INTERVAL = 10.0
# How often the host's kubeconfig is fetched again with --host.
KUBECONFIG_REFRESH = 30.0

#: The first line megatui writes to a VM's log before each `tart run` it starts.
RUN_MARKER = "--- megatui: tart run started "
# Append $2 as a line to the log $1 ("~/" is the home of whoever runs it: the Mac's
# with --host, where the path is not expanded by a shell).
_MARK_SCRIPT = (
    'f=$1; case $f in "~/"*) f="$HOME/${f#"~/"}";; esac; '
    'mkdir -p "$(dirname "$f")" && printf "%s\\n" "$2" >>"$f"'
)


def current_run(lines: list[str]) -> list[str]:
    """The lines of the latest run: from its marker on, or all if there is none."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(RUN_MARKER):
            return lines[i:]
    return lines


# What a failed `tart list` means for the tart source's status.
_TART_KINDS = {
    TartErrorKind.NOT_INSTALLED: StatusKind.NOT_INSTALLED,
    TartErrorKind.TIMEOUT: StatusKind.TIMEOUT,
    TartErrorKind.KEYCHAIN_LOCKED: StatusKind.LOCKED,
    TartErrorKind.PARSE: StatusKind.BAD_DATA,
}
# How long a VM may stay "starting" without tart reporting it running.
START_GRACE = 300.0
# Between health checks of a READY VM, how often its port is checked with a bare TCP
# connect: a listener that died must not leave the VM "ready" for a whole health
# interval (and forever, while the kept session lives). Detection takes at most this
# plus the SSH connect timeout (3 + 5 s by default, within the promised 10 s).
READY_CHECK_INTERVAL = 3.0
# With --host, the statuses of each enabled source that lives behind the connection.
BEHIND_HOST = {
    "tart": (SOURCE_TART,),
    "ssh": (SOURCE_SSH,),
    "kube": (SOURCE_KUBERNETES, SOURCE_APPLICATIONS),
    "docker": (SOURCE_DOCKER,),
}
# After the host comes back, how long a source behind it may take to report ok
# before its own (possibly outage-made) failure is shown instead of the status it had
# before the outage.
HOST_RECOVERY_GRACE = 20.0
# How long the host may take to answer when a VM probe through it failed.
HOST_CHECK_TIMEOUT = 3.0


@dataclass
class _Backoff:
    """Exponential backoff with jitter for a failing source."""

    base: float
    cap: float = 60.0
    failures: int = 0

    def next_delay(self) -> float:
        self.failures += 1
        delay: float = min(self.cap, self.base * 2.0 ** (self.failures - 1))
        jitter: float = random.uniform(0.8, 1.2)
        return delay * jitter

    def reset(self) -> None:
        self.failures = 0


class Monitor:
    """Runs the sources and publishes snapshots. Implements `api.MonitorAPI`."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: Transport | None = None,
        clock: Clock | None = None,
        sources: Iterable[str] = ALL_SOURCES,
        vm_filter: Sequence[str] | None = None,
    ) -> None:
        self.settings = settings
        self.transport: Transport = transport or LocalTransport()
        self.clock: Clock = clock or SystemClock()
        self.enabled = frozenset(sources)
        self.vm_filter = tuple(vm_filter) if vm_filter else None
        self.tart = TartCLI(self.transport, settings.tart_path, settings.tart_timeout)
        self.hostkeys = HostKeyStore(default_path())
        self.prober = SSHProber(
            self.transport,
            self.hostkeys,
            self.clock,
            connect_timeout=settings.ssh_connect_timeout,
            command_timeout=settings.ssh_connect_timeout,
        )
        self._history_path = data_dir() / "boot_history.json"
        self.engine = PhaseEngine(self.clock, BootHistory.load(self._history_path))

        # Raw source results, folded into snapshots by _publish.
        self._tart_vms: dict[str, TartVM] = {}
        self._tart_listed = False
        self._all_names: set[str] = set()  # before vm_filter: for "unknown VM" messages
        self._ips: dict[str, str] = {}
        self._ip_recheck: set[str] = set()  # addresses to ask tart for again
        self._probes: dict[str, ProbeResult] = {}
        self._start_requested: dict[str, float] = {}
        self._stop_requested: set[str] = set()
        self._action_errors: dict[str, str] = {}
        self._statuses: dict[str, SourceStatus] = {}
        self._kube_nodes: tuple[Node, ...] = ()
        self._kube_state: KubeState | None = None
        self._docker: DockerStatus | None = None
        self._retry_at: dict[str, float] = {}  # monotonic

        self._snapshot = Snapshot(
            generated_at=self.clock.now(),
            host=self.transport.label,
            readonly=settings.readonly,
            kube_context=settings.kube_context,
        )
        self._events: deque[Event] = deque(maxlen=MAX_EVENTS)
        self._subscribers: list[Callable[[Snapshot], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._probe_tasks: dict[str, asyncio.Task[None]] = {}
        self._probe_ips: dict[str, str] = {}  # the address each probe task probes
        self._wake_tart = asyncio.Event()
        self._wake_docker = asyncio.Event()
        self._docker_refreshed = False  # `r` was pressed: forget the docker backoff
        self._kube_source: KubeSource | None = None
        self._wake_probes: dict[str, asyncio.Event] = {}
        self._publish_scheduled = False
        self._timeline_news = False
        self._first_round: dict[str, asyncio.Event] = {}
        self._started = False
        self._background: set[asyncio.Task[None]] = set()
        self._wake_host = asyncio.Event()
        self._remote_setup: RemoteSetup | None = None
        self._tart_backoff = _Backoff(base=settings.tart_boot_poll_interval)
        #: Why the last `tart list` failed, None after a good one.
        self.tart_failure: TartErrorKind | None = None
        # Host outages (see _shown_sources): the statuses before the host went down,
        # and after it came back, those that must report again before they are shown.
        self._pre_outage: dict[str, SourceStatus] = {}
        self._recovered_from: dict[str, SourceStatus] = {}
        self._recovered_at: float | None = None
        self._recovery_timer: asyncio.TimerHandle | None = None
        self._answered_since_recovery: set[str] = set()  # reported ok since the host came back
        self._masked: frozenset[str] = frozenset()
        # Sources behind the host that just failed while the host seemed fine, with
        # what they showed before: held back until the host has answered a check.
        self._held: dict[str, SourceStatus | None] = {}
        self._host_check: asyncio.Task[None] | None = None
        #: Settings the kube and docker sources use: with --host, pointing at the
        #: local ends of the forwards to the host's API server and Docker socket.
        self.source_settings = settings
        self.drill = DrillDown(settings, self.clock, self._drill_changed, self._add_event)

    # --- MonitorAPI ------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def events(self) -> Sequence[Event]:
        return tuple(self._events)

    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

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
            self._tasks.append(asyncio.create_task(self._tart_loop(), name="tart"))
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
        transport.add_listener(self._on_host_change)
        if not transport.connected:
            self._statuses[SOURCE_HOST] = SourceStatus(
                SOURCE_HOST, ok=False, error=f"connecting to {transport.label}"
            )
            self._schedule_publish()
            with contextlib.suppress(RemoteError):
                await transport.connect(keep_trying=True)
            while not transport.connected:
                await self._sleep(self._wake_host, 1.0)
        self._on_host_change(transport)
        if self.enabled & {"kube", "docker"}:
            setup = await prepare_remote(transport, self.settings)
            self._remote_setup = setup
            self.source_settings = setup.settings
        self._start_sources()
        await self._keep_kubeconfig_fresh()

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

    def _on_host_change(self, transport: object) -> None:
        from megatui.remote import RemoteTransport

        assert isinstance(transport, RemoteTransport)
        was = self._statuses.get(SOURCE_HOST)
        problem = transport.problem()
        if problem is None and not transport.in_doubt:
            self._ok(SOURCE_HOST)
            if was is not None and not was.ok:
                # Back after a drop: poll everything at once, not at the next tick.
                self._recovered_from = dict(self._statuses)
                self._recovered_at = self.clock.monotonic()
                self._answered_since_recovery = set()
                # Whoever has not reported by then shows its own status after all.
                self._recovery_timer = asyncio.get_running_loop().call_later(
                    HOST_RECOVERY_GRACE + 0.1, self._schedule_publish
                )
                self.refresh()
                self._wake_host.set()
            self._schedule_publish()
            return
        if was is not None and was.ok:
            self._pre_outage = dict(self._statuses)
        if problem is None:
            problem = f"{transport.label} is not answering (checking the connection)"
        retry = transport.reconnect_in()
        self._statuses[SOURCE_HOST] = SourceStatus(
            SOURCE_HOST,
            ok=False,
            error=problem,
            updated_at=was.updated_at if was else None,
            next_retry_at=self.clock.now() + retry if retry is not None else None,
            detail=transport.problem_detail(),
        )
        self._schedule_publish()

    def _shown_sources(self) -> tuple[dict[str, SourceStatus], frozenset[str]]:
        """The statuses to publish, and which of them stand in for the host's.

        While the host is down or in doubt, every source behind it says the host's
        line (one cause, one line, one countdown), keeping the age of its data: what
        failed through a dead connection says nothing about the source. Once the host
        is back, a source shows what it had before the outage until it reports ok, or
        HOST_RECOVERY_GRACE has passed (then its failure is its own)."""
        statuses = dict(self._statuses)
        host = statuses.get(SOURCE_HOST)
        if not self.transport.is_remote or host is None:
            return statuses, frozenset()
        behind = [name for source in self.enabled for name in BEHIND_HOST.get(source, ())]
        masked = set()
        if not host.ok:
            for name in behind:
                own = statuses.get(name)
                statuses[name] = SourceStatus(
                    name,
                    ok=False,
                    error=host.error,
                    updated_at=own.updated_at if own else None,
                    next_retry_at=host.next_retry_at,
                    detail=host.detail,
                )
                masked.add(name)
        else:
            for name, before in self._held.items():
                if before is not None:
                    statuses[name] = before
                else:
                    statuses.pop(name, None)
                masked.add(name)
        recovering = self._recovered_at is not None and (
            self.clock.monotonic() - self._recovered_at < HOST_RECOVERY_GRACE
        )
        if host.ok and recovering:
            for name in behind:
                own = self._statuses.get(name)
                if name in self._answered_since_recovery or (
                    own is not None and own.ok and own is not self._recovered_from.get(name)
                ):
                    # It answered since the host came back: from now on it speaks for
                    # itself. Until then a failure is likely the outage's last echo (a
                    # request through the dead connection), shown only if it lasts.
                    self._answered_since_recovery.add(name)
                    continue
                before = self._pre_outage.get(name)
                if before is not None:
                    statuses[name] = before
                else:
                    statuses.pop(name, None)
                masked.add(name)
        return statuses, frozenset(masked)

    def _hold_for_host(self, name: str, before: SourceStatus | None) -> None:
        """A source behind the host started failing while the host looked fine: a
        frozen host fails its sources before keepalives can tell. Ask the host
        before the failure is shown: if it does not answer, the host is in doubt and
        the failure is the host's; if it does, the failure is the source's own."""
        if not self.transport.is_remote or self._host_down():
            return
        if not any(name in BEHIND_HOST.get(source, ()) for source in self.enabled):
            return
        if before is not None and not before.ok:
            return  # already failing: shown as it is
        self._held.setdefault(name, before)
        if self._host_check is None or self._host_check.done():
            self._host_check = asyncio.create_task(self._check_host(), name="host check")

    async def _check_host(self) -> None:
        confirm = getattr(self.transport, "confirm_alive", None)
        try:
            if confirm is not None:
                await confirm(HOST_CHECK_TIMEOUT)
        finally:
            self._held.clear()
            self._schedule_publish()

    def _source_events(self, events: list[Event], masked: frozenset[str]) -> list[Event]:
        """Drop the source events the host's outage made: the host has its own."""
        hidden = self._masked | masked

        def shown(event: Event) -> bool:
            if event.kind != "source" or event.subject not in hidden:
                return True
            # Unmasked and failing for a reason of its own: that is news.
            return event.subject not in masked and event.severity == "error"

        return [event for event in events if shown(event)]

    async def _blame_host(self, name: str, result: ProbeResult) -> bool:
        """Whether a probe's result says more about the host connection than the VM:
        the host is down, or a VM's state got worse and the host does not answer."""
        if not self.transport.is_remote:
            return False
        if not getattr(self.transport, "connected", True):
            return True
        previous = self._probes.get(name)
        in_doubt = bool(getattr(self.transport, "in_doubt", False))
        changed = previous is not None and previous.stage != result.stage
        if not in_doubt and (not changed or result.stage is ProbeStage.READY):
            return False
        confirm = getattr(self.transport, "confirm_alive", None)
        if confirm is None:
            return False
        return not await confirm(HOST_CHECK_TIMEOUT)

    def _remote_problem(self, source: str) -> str | None:
        setup = self._remote_setup
        return setup.problems.get(source) if setup is not None else None

    def _host_down(self) -> bool:
        if not self.transport.is_remote:
            return False
        connected = bool(getattr(self.transport, "connected", True))
        return not connected or bool(getattr(self.transport, "in_doubt", False))

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._probe_tasks.values()]
        if self._host_check is not None:
            tasks.append(self._host_check)
        if self._recovery_timer is not None:
            self._recovery_timer.cancel()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        self._probe_tasks.clear()
        self._probe_ips.clear()
        await self.prober.close()
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
        self._wake_tart.set()
        self._docker_refreshed = True
        self._wake_docker.set()
        if self._kube_source is not None:
            self._kube_source.refresh()
        for event in self._wake_probes.values():
            event.set()

    def retry_in(self, source: str) -> float | None:
        if source == SOURCE_HOST or source in self._masked:
            # Behind a down host, the host's countdown is the only one.
            host = self._snapshot.sources.get(SOURCE_HOST)
            if host is None or host.next_retry_at is None:
                return None
            return max(0.0, host.next_retry_at - self.clock.now())
        at = self._retry_at.get(source)
        if at is None:
            return None
        return max(0.0, at - self.clock.monotonic())

    async def start_vm(self, name: str) -> None:
        actions.check_allowed("start", self.settings.readonly)
        vm = self._tart_vms.get(name)
        if vm is None:
            raise ActionError(f"unknown VM '{name}'")
        if vm.state is TartState.RUNNING:
            raise ActionError(f"VM '{name}' is already running")
        vm_intents.record(name, "start", self.clock.now())  # for recovery, in any process
        self._action_errors.pop(name, None)
        self._start_requested[name] = self.clock.monotonic()
        self._schedule_publish()
        await self._mark_log(name)
        try:
            await self.tart.start(name, self.log_path(name))
        except TartError as exc:
            self._start_requested.pop(name, None)
            self._action_errors[name] = str(exc)
            self._schedule_publish()
            raise ActionError(str(exc)) from None
        finally:
            self._wake_tart.set()

    async def stop_vm(self, name: str) -> None:
        actions.check_allowed("stop", self.settings.readonly)
        vm = self._tart_vms.get(name)
        if vm is None:
            raise ActionError(f"unknown VM '{name}'")
        if vm.state is TartState.STOPPED and name not in self._start_requested:
            raise ActionError(f"VM '{name}' is not running")
        vm_intents.record(name, "stop", self.clock.now())  # recovery must not fight it
        self._stop_requested.add(name)
        self._schedule_publish()
        try:
            await self.tart.stop(name)
        except TartError as exc:
            self._stop_requested.discard(name)
            self._schedule_publish()
            raise ActionError(str(exc)) from None
        finally:
            self._wake_tart.set()

    def ssh_argv(self, name: str) -> list[str]:
        vm = self._snapshot.vm(name)
        if vm is None:
            raise ActionError(f"unknown VM '{name}'")
        try:
            trusted = self.hostkeys.all()
        except HostKeyStoreError as exc:
            raise ActionError(str(exc)) from None
        known = trusted.get(name)
        known_hosts = state_dir() / "known_hosts"
        # Every trusted VM, not only this one: a command copied earlier for another VM
        # names the same file and must keep working.
        try:
            actions.write_known_hosts(known_hosts, trusted)
        except OSError as exc:
            raise ActionError(f"cannot write {known_hosts}: {exc.strerror or exc}") from None
        return actions.ssh_argv(
            vm,
            self.settings.vm(name),
            jump_host=self.settings.host if self.transport.is_remote else None,
            known_hosts=known_hosts,
            key_known=known is not None,
        )

    def log_path(self, name: str) -> str:
        if self.transport.is_remote:
            # On the Mac host: the log must be where the detached tart run lives.
            return f"~/.megatui/logs/{name}.log"
        return str(state_dir() / "logs" / f"{name}.log")

    async def vm_details(self, name: str) -> dict[str, object]:
        try:
            return await self.tart.get(name)
        except TartError as exc:
            raise ActionError(str(exc)) from None

    async def _mark_log(self, name: str) -> None:
        """Start this run's part of the appended-to log with a marker line, so the
        detail screen shows this run's lines, not the previous run's."""
        line = f"{RUN_MARKER}{report.iso(self.clock.now())} ---"
        with contextlib.suppress(Exception):  # the marker is a nicety, the start is not
            await self.transport.run(
                ["/bin/sh", "-c", _MARK_SCRIPT, "sh", self.log_path(name), line], timeout=5.0
            )

    async def read_log_tail(self, name: str, lines: int = 50) -> list[str]:
        """The last `lines` lines of the VM's latest run (from its start marker on)."""
        try:
            data = await self.transport.read_file(self.log_path(name), timeout=5.0)
        except (OSError, Exception):
            return []
        return current_run(data.decode("utf-8", "replace").splitlines())[-lines:]

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
        """tart fails in a way that does not pass by itself: it is not installed."""
        return self.tart_failure is TartErrorKind.NOT_INSTALLED

    def first_round_done(self) -> bool:
        """Every enabled source has answered (or failed) once."""
        return all(event.is_set() for event in self._first_round.values())

    def known_vm_names(self) -> set[str] | None:
        """The VMs tart listed, or None before the first successful list."""
        return set(self._all_names) if self._tart_listed else None

    # --- tart ----------------------------------------------------------------------------

    def _settled(self) -> bool:
        if self._start_requested or self._stop_requested:
            return False
        return all(vm.phase not in BOOT_PHASES for vm in self._snapshot.vms)

    async def _tart_loop(self) -> None:
        backoff = self._tart_backoff
        while True:
            delay = await self._tart_poll(backoff)
            self._mark_first("tart")
            await self._sleep(self._wake_tart, delay)

    async def _tart_poll(self, backoff: _Backoff) -> float:
        try:
            vms = await self.tart.list_vms()
        except TartError as exc:
            self.tart_failure = exc.kind
            delay = backoff.next_delay()
            self._fail("tart", str(exc), delay, _TART_KINDS.get(exc.kind, StatusKind.ERROR))
            if "ssh" in self.enabled and "ssh" not in self._statuses:
                # Say why nothing was probed, not "no answer" from a source never asked.
                self._statuses["ssh"] = SourceStatus(
                    "ssh", ok=False, error="no VM probed: tart list failed"
                )
            self._mark_first("ssh")
            return delay
        self.tart_failure = None
        backoff.reset()
        self._all_names = {vm.name for vm in vms}
        if self.vm_filter is not None:
            vms = [vm for vm in vms if vm.name in self.vm_filter]
        self._tart_vms = {vm.name: vm for vm in vms}
        self._tart_listed = True
        self._forget_gone()
        await self._resolve_ips()
        self._ok("tart")
        self._sync_probe_tasks()
        if "ssh" in self.enabled and not self._probe_tasks:
            self._ok("ssh", note="no running VM with an address to probe")
        self._publish_now()
        if not self._probe_tasks:
            self._mark_first("ssh")
        if self._settled():
            return self.settings.tart_poll_interval
        return self.settings.tart_boot_poll_interval

    def _forget_gone(self) -> None:
        for name in list(self._ips):
            vm = self._tart_vms.get(name)
            if vm is None or vm.state is not TartState.RUNNING:
                # A stopped VM's lease is stale (tart.md §5.5): not an address.
                self._ips.pop(name, None)
                self._probes.pop(name, None)
        for name in list(self._start_requested):
            vm = self._tart_vms.get(name)
            running = vm is not None and vm.state is TartState.RUNNING
            waited = self.clock.monotonic() - self._start_requested[name]
            if running or waited > START_GRACE:
                del self._start_requested[name]
        for name in list(self._stop_requested):
            vm = self._tart_vms.get(name)
            if vm is None or vm.state is not TartState.RUNNING:
                self._stop_requested.discard(name)
        for shown in self._snapshot.vms:
            if shown.name not in self._tart_vms:
                self.engine.forget(shown.name)

    async def _resolve_ips(self) -> None:
        wanted = [
            name
            for name, vm in self._tart_vms.items()
            if vm.state is TartState.RUNNING and (name not in self._ips or name in self._ip_recheck)
        ]
        self._ip_recheck.clear()
        overrides = {n: self.settings.vm(n).host for n in wanted if self.settings.vm(n).host}
        for name, host in overrides.items():
            assert host is not None
            self._ips[name] = host
        lookups = [n for n in wanted if n not in overrides]
        if not lookups:
            return
        results = await asyncio.gather(
            *(self.tart.ip(name) for name in lookups), return_exceptions=True
        )
        for name, result in zip(lookups, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, str):
                self._ips[name] = result
            elif isinstance(result, TartError):
                log.debug("tart ip %s: %s", name, result)

    # --- ssh probes ------------------------------------------------------------------------

    def _sync_probe_tasks(self) -> None:
        if "ssh" not in self.enabled:
            return
        for name in list(self._probe_tasks):
            if self._ips.get(name) != self._probe_ips.get(name):
                # Gone, or a new address (a reboot's new lease): start afresh.
                self._probe_ips.pop(name, None)
                self._probe_tasks.pop(name).cancel()
                self._wake_probes.pop(name, None)
                drop = asyncio.create_task(self.prober.drop(name))
                self._background.add(drop)
                drop.add_done_callback(self._background.discard)
        for name, ip in self._ips.items():
            if name not in self._probe_tasks:
                self._probe_ips[name] = ip
                self._wake_probes[name] = asyncio.Event()
                self._probe_tasks[name] = asyncio.create_task(
                    self._probe_loop(name, ip), name=f"probe:{name}"
                )

    async def _probe_loop(self, name: str, ip: str) -> None:
        login = self.settings.vm(name)
        creds = Credentials(
            user=login.user,
            password=login.password,
            key_path=login.key,
            use_agent=self.settings.ssh_agent,
        )
        while self._ips.get(name) == ip:
            result = await self.prober.probe(name, ip, login.port, creds, login.command)
            if await self._blame_host(name, result):
                # The tunnel is down, not the VM: keep the last known state.
                await self._sleep(self._wake_probes[name], 1.0)
                continue
            self._record_probe(name, result)
            if result.stage is ProbeStage.READY:
                closed = await self._watch_ready(name, ip, login.port)
                if closed is not None and not self._host_down():
                    self._record_probe(name, closed)
                    await self._sleep(self._wake_probes[name], self._probe_delay(closed))
                continue
            await self._sleep(self._wake_probes[name], self._probe_delay(result))

    def _record_probe(self, name: str, result: ProbeResult) -> None:
        previous = self._probes.get(name)
        self._probes[name] = result
        if result.stage is ProbeStage.CLOSED and previous and previous.stage is ProbeStage.READY:
            # A ready VM whose port closed may have rebooted with a new lease: ask tart
            # again, but keep the address meanwhile (it is "ip", not "booting").
            self._ip_recheck.add(name)
            self._wake_tart.set()
        if result.stage is not ProbeStage.ERROR:
            self._ok("ssh")
        if previous is None or previous.stage != result.stage or previous.error != result.error:
            self._publish_now()
        self._mark_first_probe()

    async def _watch_ready(self, name: str, ip: str, port: int) -> ProbeResult | None:
        """Between health checks of a READY VM, check its port with a bare TCP connect.

        Returns None when the next full probe is due: the health interval passed, a
        refresh asked for it, or the kept connection died. Returns CLOSED as soon as
        the port stops accepting: a VM whose sshd listener died keeps its old session
        alive, and the kept connection alone would call it ready forever."""
        wake = self._wake_probes[name]
        due = self.clock.monotonic() + self.settings.ssh_health_interval
        while self._ips.get(name) == ip:
            remaining = due - self.clock.monotonic()
            if remaining <= 0:
                return None
            await self._sleep(wake, min(READY_CHECK_INTERVAL, remaining), keep=True)
            if wake.is_set():
                wake.clear()  # a refresh: probe now, once
                return None
            if due <= self.clock.monotonic():
                return None
            if not self.prober.has_connection(name):
                return None
            if not await self.prober.port_open(ip, port):
                await self.prober.drop(name)
                return ProbeResult(stage=ProbeStage.CLOSED, checked_at=self.clock.now())
        return None

    def _probe_delay(self, result: ProbeResult) -> float:
        if result.stage is ProbeStage.READY:
            return self.settings.ssh_health_interval
        if result.stage in (ProbeStage.AUTH_FAILED, ProbeStage.HOST_KEY_CHANGED, ProbeStage.ERROR):
            return ERROR_PROBE_INTERVAL
        return self.settings.ssh_probe_interval

    def _mark_first_probe(self) -> None:
        if all(name in self._probes for name in self._probe_tasks):
            self._mark_first("ssh")

    # --- docker ------------------------------------------------------------------------------

    async def _docker_loop(self) -> None:
        # Imported in a thread: the docker SDK takes a few hundred ms to import, and
        # on the event loop that would freeze the TUI right after its first paint.
        await asyncio.to_thread(importlib.import_module, "megatui.sources.docker")
        from megatui.sources.docker import DockerSource

        settings = self.source_settings
        source = DockerSource(settings.docker_host, timeout=settings.docker_timeout)
        backoff = _Backoff(base=self.settings.docker_poll_interval)
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
                    self._hold_for_host(name, self._statuses.get(name))
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
        if self._kube_state is not None and self._kube_state.answered:
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
        self._hold_for_host(name, prev)
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
        with contextlib.suppress(TimeoutError):
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a
            # cancellation that races with the event being set, and the task would
            # then never stop.
            async with asyncio.timeout(delay):
                await wake.wait()
        if not keep:
            wake.clear()

    def _observation(self, vm: TartVM) -> Observation:
        probe = self._probes.get(vm.name)
        running = vm.state is TartState.RUNNING
        return Observation(
            tart_state=vm.state,
            ip=self._ips.get(vm.name) if running else None,
            probe=probe.stage if probe and running else None,
            probe_error=probe.error if probe and running else None,
            start_requested=vm.name in self._start_requested,
            stop_requested=vm.name in self._stop_requested,
            error=self._action_errors.get(vm.name) if not running else None,
        )

    def _build_vms(self) -> tuple[VM, ...]:
        vms = []
        for name in sorted(self._tart_vms):
            vm = self._tart_vms[name]
            vms.append(
                self.engine.observe(name, self._observation(vm), port=self.settings.vm(name).port)
            )
        if self.engine.dirty:
            self._save_history()
        return tuple(vms)

    def _build_nodes(self) -> tuple[Node, ...]:
        state = self._kube_state
        nodes = state.nodes if state is not None else ()
        docker = self._docker
        if docker is None or not docker.reachable:
            return nodes
        containers = {n.name: n for c in docker.clusters for n in c.nodes}
        merged = [
            replace(n, container_state=containers.pop(n.name).state) if n.name in containers else n
            for n in nodes
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
        sources, masked = self._shown_sources()
        snap = Snapshot(
            generated_at=self.clock.now(),
            host=self.transport.label,
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
            readonly=self.settings.readonly,
        )
        old = self._snapshot
        news, self._timeline_news = self._timeline_news, False
        if _same(old, snap) and not news:
            return
        self._events.extend(self._source_events(diff_events(old, snap), masked))
        self._masked = masked
        self._snapshot = snap
        for callback in list(self._subscribers):
            try:
                callback(snap)
            except Exception:  # a consumer's bug must not stop the monitor
                log.exception("snapshot subscriber failed")

    def _save_history(self) -> None:
        try:
            self.engine.history.save(self._history_path)
            self.engine.mark_saved()
        except OSError as exc:
            log.warning("cannot save boot history: %s", exc)


def _same(a: Snapshot, b: Snapshot) -> bool:
    """Equal but for the time of generation: nothing worth telling anyone."""
    return replace(a, generated_at=0.0) == replace(b, generated_at=0.0)
