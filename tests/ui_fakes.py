"""A fake monitor and a rich sample snapshot for the TUI tests, snapshots and screenshots.

`FakeMonitor` implements `megatui.api.MonitorAPI` without any source: tests push the
snapshots they want, read back the calls the app made, and make actions fail on demand.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot

from megatui.api import ActionError, MonitorAPI
from megatui.backends.base import NewVMSpec
from megatui.clock import FakeClock
from megatui.config import Settings
from megatui.model import (
    VM,
    Application,
    ArgoSummary,
    DockerStatus,
    Event,
    KindCluster,
    KindNodeContainer,
    KubeEvent,
    Node,
    Phase,
    PhaseSpan,
    Pod,
    Snapshot,
    SourceStatus,
    TartState,
    Worker,
)
from megatui.monitor import RUN_MARKER, current_run
from megatui.sources.kube_logs import LogBuffer, LogLine
from megatui.ui.app import MegatuiApp

#: The fake "now" of every UI test: FakeClock's default start.
NOW = 1_780_000_000.0
HOST = "admin@mac-studio.local"
CONTEXT = "kind-megalopolis"


class FakeMonitor:
    """MonitorAPI for tests. Every call the app makes is appended to `calls`."""

    def __init__(
        self,
        snapshot: Snapshot | None = None,
        events: Sequence[Event] = (),
        *,
        clock: FakeClock | None = None,
    ) -> None:
        self._snapshot = snapshot if snapshot is not None else Snapshot(0.0, "local")
        self._events = list(events)
        self._subscribers: list[Callable[[Snapshot], None]] = []
        self.clock = clock
        self.calls: list[tuple[str, ...]] = []
        #: method name ("start_vm", "stop_vm", "ssh_argv", "vm_details") -> error to raise
        self.errors: dict[str, Exception] = {}
        #: source name -> seconds until its next retry
        self.retry: dict[str, float] = {}
        self.details: dict[str, dict[str, object]] = {}
        self.logs: dict[str, list[str]] = {}
        self.started = False
        self.stopped = False
        self.kube_events: dict[str, list[KubeEvent]] = {}
        self.events_error: str | None = None
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.pod_logs: dict[tuple[str, str, bool], list[LogLine]] = {}
        #: What start_vm returns (Orchard: "recreated from its spec").
        self.start_note: str | None = None
        self.created: list[NewVMSpec] = []

    # --- MonitorAPI ---------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def events(self) -> Sequence[Event]:
        return tuple(self._events)

    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    def refresh(self) -> None:
        self.calls.append(("refresh",))

    def retry_in(self, source: str) -> float | None:
        return self.retry.get(source)

    async def start_vm(self, name: str) -> str | None:
        self.calls.append(("start_vm", name))
        self._maybe_fail("start_vm")
        return self.start_note

    async def create_vm(self, spec: NewVMSpec) -> str | None:
        self.calls.append(("create_vm", spec.name))
        self.created.append(spec)
        self._maybe_fail("create_vm")
        return None

    async def delete_vm(self, name: str) -> None:
        self.calls.append(("delete_vm", name))
        self._maybe_fail("delete_vm")

    async def stop_vm(self, name: str) -> None:
        self.calls.append(("stop_vm", name))
        self._maybe_fail("stop_vm")

    async def suspend_vm(self, name: str) -> None:
        self.calls.append(("suspend_vm", name))
        self._maybe_fail("suspend_vm")

    def ssh_argv(self, name: str) -> list[str]:
        self._maybe_fail("ssh_argv")
        vm = self._snapshot.vm(name)
        if vm is None or not vm.ip:
            raise ActionError(f"VM '{name}' has no IP address yet")
        return ["ssh", "-J", HOST, f"admin@{vm.ip}"]

    def log_path(self, name: str) -> str:
        return f"/Users/admin/Library/Logs/megatui/{name}.log"

    async def vm_details(self, name: str) -> dict[str, object]:
        self.calls.append(("vm_details", name))
        self._maybe_fail("vm_details")
        return self.details.get(
            name,
            {"OS": "darwin", "CPU": 4, "Memory": 8192, "Disk": 50, "Display": "1024x768"},
        )

    async def read_log_tail(self, name: str, lines: int = 50) -> list[str]:
        self.calls.append(("read_log_tail", name))
        return current_run(self.logs.get(name, []))[-lines:]

    # --- drill-down -----------------------------------------------------------------

    def pod_events(self, namespace: str, name: str, uid: str = "") -> list[KubeEvent]:
        self.calls.append(("pod_events", namespace, name))
        return list(self.kube_events.get(f"{namespace}/{name}", []))

    def events_problem(self) -> str | None:
        return self.events_error

    async def kube_object(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        self.calls.append(("kube_object", kind, namespace, name))
        self._maybe_fail("kube_object")
        found = self.objects.get((kind, name))
        if found is None:
            raise ActionError(f'{kind}s "{name}" not found (404)')
        return found

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
        self.calls.append(("follow_pod_logs", pod, container, "previous" if previous else ""))
        self._maybe_fail("follow_pod_logs")
        lines = self.pod_logs.get((pod, container, previous), [])
        for line in lines:
            buffer.add(line)
        if lines:
            on_lines(list(lines))
        if not previous:
            await asyncio.Event().wait()  # a follow lasts until the screen cancels it

    # --- test controls ------------------------------------------------------------

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def push(self, snapshot: Snapshot, events: Sequence[Event] | None = None) -> None:
        """Publish a snapshot (and optionally a new timeline) as the monitor would."""
        self._snapshot = snapshot
        if events is not None:
            self._events = list(events)
        for callback in list(self._subscribers):
            callback(snapshot)

    def _maybe_fail(self, method: str) -> None:
        error = self.errors.get(method)
        if error is not None:
            raise error


def _typecheck(monitor: FakeMonitor) -> MonitorAPI:
    # mypy proves here that FakeMonitor satisfies the protocol the app needs.
    return monitor


# --- sample data -------------------------------------------------------------------


def _history(now: float, *phases: tuple[Phase, float]) -> tuple[PhaseSpan, ...]:
    """Spans ending at `now`, in order, from (phase, seconds spent) pairs; the last is
    the current phase (open)."""
    total = sum(seconds for _, seconds in phases)
    start = now - total
    spans = []
    for index, (phase, seconds) in enumerate(phases):
        last = index == len(phases) - 1
        spans.append(PhaseSpan(phase, start, None if last else start + seconds))
        start += seconds
    return tuple(spans)


def sample_vms(now: float = NOW) -> tuple[VM, ...]:
    running = TartState.RUNNING
    return (
        VM(
            "dev-ready",
            running,
            Phase.READY,
            "192.168.64.10",
            1.0,
            now - 3720,
            history=_history(
                now,
                (Phase.STARTING, 24),
                (Phase.BOOTING, 81),
                (Phase.IP, 12),
                (Phase.SSH_PENDING, 43),
                (Phase.READY, 3720),
            ),
        ),
        VM(
            "db-ssh",
            running,
            Phase.SSH_PENDING,
            "192.168.64.12",
            0.82,
            now - 20,
            eta_seconds=41,
            history=_history(
                now,
                (Phase.STARTING, 30),
                (Phase.BOOTING, 88),
                (Phase.IP, 9),
                (Phase.SSH_PENDING, 20),
            ),
        ),
        VM(
            "web-ip",
            running,
            Phase.IP,
            None,
            0.55,
            now - 95,
            eta_seconds=None,
            hint="no DHCP lease after 95 s: stale lease? try `tart ip web-ip --resolver agent`",
            history=_history(now, (Phase.STARTING, 28), (Phase.BOOTING, 92), (Phase.IP, 95)),
        ),
        VM(
            "ci-booting",
            running,
            Phase.BOOTING,
            None,
            0.31,
            now - 45,
            eta_seconds=188,
            history=_history(now, (Phase.STARTING, 31), (Phase.BOOTING, 45)),
        ),
        VM(
            "ci-starting",
            running,
            Phase.STARTING,
            None,
            0.04,
            now - 6,
            eta_seconds=294,
            history=_history(now, (Phase.STARTING, 6)),
        ),
        VM("builder-stopped", TartState.STOPPED, Phase.STOPPED, None, 0.0, now - 86400),
        VM(
            "gpu-error",
            TartState.STOPPED,
            Phase.ERROR,
            None,
            0.12,
            now - 130,
            error="tart run exited with status 1: the VM is locked by another tart process",
            hint="another tart run holds the VM: tart stop gpu-error, then start it again",
            history=_history(now, (Phase.STARTING, 14), (Phase.ERROR, 130)),
        ),
    )


def sample_nodes(now: float = NOW) -> tuple[Node, ...]:
    return (
        Node(
            "megalopolis-control-plane",
            "Ready",
            "control-plane",
            "v1.31.0",
            now - 2 * 86400 - 3 * 3600,
            container_state="running",
            internal_ip="172.18.0.3",
            container_exit_code=0,
            container_restarts=1,
        ),
        Node(
            "megalopolis-worker",
            "NotReady",
            "<none>",
            "v1.31.0",
            now - 2 * 86400,
            container_state="running",
            internal_ip="172.18.0.2",
        ),
        Node(
            "megalopolis-worker2",
            "NotReady",
            "<none>",
            "v1.31.0",
            now - 2 * 86400,
            container_state="exited",
            internal_ip="172.18.0.4",
        ),
    )


def sample_pods(now: float = NOW) -> tuple[Pod, ...]:
    def pod(
        name: str,
        component: str,
        status: str = "Running",
        ready: str = "1/1",
        restarts: str = "0",
        age: float = 2 * 86400,
        node: str = "megalopolis-control-plane",
        why: str | None = None,
    ) -> Pod:
        return Pod(
            name,
            "argocd",
            ready,
            status,
            restarts,
            node,
            now - age,
            component=component,
            running_ready=status == "Running" and ready.split("/")[0] == ready.split("/")[1],
            why=why,
        )

    return (
        pod("argocd-application-controller-0", "argocd-application-controller"),
        pod(
            "argocd-applicationset-controller-5c8d9c6b7f-q2w8x", "argocd-applicationset-controller"
        ),
        pod(
            "argocd-dex-server-6f7c9b8d5-k9m2p",
            "argocd-dex-server",
            status="CrashLoopBackOff",
            ready="0/1",
            restarts="7 (2m14s ago)",
            node="megalopolis-worker",
            why="dex: Error, exit code 2: failed to initialize storage: permission denied",
        ),
        pod("argocd-notifications-controller-7b9f8c6d4-h3j5k", "argocd-notifications-controller"),
        pod("argocd-redis-6c8d7f9b5-x7z2c", "argocd-redis", age=5 * 3600 + 20 * 60),
        pod(
            "argocd-repo-server-84f6d9c7b8-p4r6t",
            "argocd-repo-server",
            restarts="1 (3h ago)",
            node="megalopolis-worker",
        ),
        pod("argocd-server-7d9b8c6f5-m2n4b", "argocd-server", age=7 * 60 + 5),
    )


def sample_applications() -> tuple[Application, ...]:
    return (
        Application(
            "guestbook",
            "argocd",
            "default",
            "Synced",
            "Healthy",
            "Succeeded",
            "successfully synced (all tasks run)",
            revision="4f2c1ab",
        ),
        Application(
            "platform-infra",
            "argocd",
            "platform",
            "OutOfSync",
            "Degraded",
            "Failed",
            'one or more objects failed to apply: Deployment.apps "api" is invalid',
            revision="9b0d3e7",
        ),
        Application(
            "monitoring",
            "argocd",
            "platform",
            "Synced",
            "Progressing",
            "Running",
            "waiting for healthy state of apps/Deployment/grafana",
        ),
    )


def sample_docker() -> DockerStatus:
    return DockerStatus(
        reachable=True,
        server_version="27.3.1",
        kind_network=True,
        clusters=(
            KindCluster(
                "megalopolis",
                (
                    KindNodeContainer(
                        "megalopolis-control-plane", "control-plane", "running", "megalopolis"
                    ),
                    KindNodeContainer("megalopolis-worker", "worker", "running", "megalopolis"),
                    KindNodeContainer(
                        "megalopolis-worker2", "worker", "exited", "megalopolis", 137, 1
                    ),
                ),
            ),
        ),
    )


DOCKER_ERROR = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock"


def sample_sources(now: float = NOW, *, stale: bool = False) -> dict[str, SourceStatus]:
    sources = {
        name: SourceStatus(name, True, updated_at=now - 1)
        for name in ("tart", "ssh", "kubernetes", "applications", "docker")
    }
    if stale:
        sources["docker"] = SourceStatus(
            "docker", False, error=DOCKER_ERROR, updated_at=now - 42, next_retry_at=now + 8
        )
    return sources


def sample_snapshot(now: float = NOW, *, stale: bool = False, readonly: bool = False) -> Snapshot:
    """VMs in every phase, a NotReady node and an exited node container, seven ArgoCD
    pods with one in CrashLoopBackOff, healthy and degraded apps; `stale` makes the
    docker source fail (42 s old, retry in 8 s)."""
    return Snapshot(
        generated_at=now,
        host=HOST,
        sources=sample_sources(now, stale=stale),
        vms=sample_vms(now),
        nodes=sample_nodes(now),
        pods=sample_pods(now),
        applications=sample_applications(),
        docker=sample_docker(),
        argocd=ArgoSummary(standard_install=True, ready=6, total=7),
        kube_context=CONTEXT,
        readonly=readonly,
    )


def sample_events(now: float = NOW) -> list[Event]:
    return [
        Event(now - 300, "vm", "dev-ready", "stopped → starting"),
        Event(now - 276, "vm", "dev-ready", "starting → booting"),
        Event(now - 195, "vm", "dev-ready", "booting → ip"),
        Event(now - 183, "pod", "argocd-dex-server-6f7c9b8d5-k9m2p", "Running → Error", "error"),
        Event(
            now - 150,
            "pod",
            "argocd-dex-server-6f7c9b8d5-k9m2p",
            "Error → CrashLoopBackOff",
            "error",
        ),
        Event(now - 140, "app", "platform-infra", "Synced/Healthy → OutOfSync/Degraded", "error"),
        Event(now - 130, "vm", "gpu-error", "starting → error: tart run exited", "error"),
        Event(now - 120, "node", "megalopolis-worker2", "Ready → NotReady", "warning"),
        Event(now - 95, "vm", "web-ip", "booting → ip"),
        Event(now - 42, "source", "docker", DOCKER_ERROR, "error"),
        Event(now - 20, "vm", "db-ssh", "ip → ssh-pending"),
        Event(now - 6, "vm", "ci-starting", "stopped → starting"),
    ]


def sample_monitor(
    now: float = NOW, *, stale: bool = False, readonly: bool = False, clock: FakeClock | None = None
) -> FakeMonitor:
    monitor = FakeMonitor(
        sample_snapshot(now, stale=stale, readonly=readonly), sample_events(now), clock=clock
    )
    if stale:
        monitor.retry["docker"] = 8.0
    # As megatui's log of a VM reads: a marker per run it started; a `tart run
    # --no-graphics` that works prints nothing, one that is stopped "Stopping VM..."
    # (docs/facts/tart.md §6). The previous run stays in the file but not on the screen.
    monitor.logs["dev-ready"] = [
        f"{RUN_MARKER}2026-05-28T17:40:12Z ---",
        "Stopping VM...",
        f"{RUN_MARKER}2026-05-28T19:22:00Z ---",
    ]
    # `tart get --format json` of a running VM (docs/facts/tart.md §4), in the random key order
    # tart prints it in.
    monitor.details["dev-ready"] = {
        "Size": "22.518",
        "Running": True,
        "CPU": 4,
        "State": "running",
        "Display": "1024x768",
        "Memory": 8192,
        "DiskFormat": "raw",
        "OS": "darwin",
        "Disk": 50,
    }
    return monitor


@contextmanager
def utc() -> Iterator[None]:
    """Event times print as HH:MM:SS in local time; pin the zone so tests and
    snapshots read the same on every machine."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


def make_app(
    monitor: FakeMonitor | None = None,
    settings: Settings | None = None,
    *,
    clock: FakeClock | None = None,
    theme_store: Path | None = None,
) -> MegatuiApp:
    """A MegatuiApp wired to fakes, with animations off (snapshots must not catch a
    half-finished scroll)."""
    clock = clock or FakeClock(NOW)
    app = MegatuiApp(
        monitor or sample_monitor(clock.now(), clock=clock),
        settings or Settings(),
        clock=clock,
        theme_store=theme_store,
    )
    app.animation_level = "none"
    return app


# --- pilot helpers -------------------------------------------------------------------


async def until(pilot: Pilot[None], predicate: Callable[[], bool], what: str) -> None:
    """Let the app process messages until `predicate` holds. Bounded, so a broken
    app fails the test instead of hanging it."""
    for _ in range(200):
        if predicate():
            return
        await pilot.pause()
    raise AssertionError(f"timed out waiting for {what}")


def screen_text(app: App[None]) -> str:
    """What the terminal shows, as plain text lines."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


class Notes:
    """Records every app.notify() (tests run without toasts)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def messages(self, severity: str | None = None) -> list[str]:
        return [m for m, s in self.seen if severity is None or s == severity]


def record_notifications(app: App[None], monkeypatch: pytest.MonkeyPatch) -> Notes:
    notes = Notes()
    original = app.notify

    def notify(message: str, **kwargs: Any) -> None:
        notes.seen.append((str(message), str(kwargs.get("severity", "information"))))
        original(message, **kwargs)

    monkeypatch.setattr(app, "notify", notify)
    return notes


# --- a fleet (Orchard) -------------------------------------------------------------

#: The controller's words for the VMs of a worker it lost (docs/orchard.md, Objects).
LOST_WORKER = "VM is assigned to a worker that lost connection with the controller"
NO_SLOT = "no worker has a free slot: 2 macOS VMs per Mac (org.cirruslabs.tart-vms)"


def sample_workers(now: float = NOW) -> tuple[Worker, ...]:
    """One full (2/2), one paused, one offline for 4 minutes."""
    return (
        Worker("mini-1", True, now - 5, False, 2, 2, 8, 8, 16384, 24576),
        Worker("mini-2", True, now - 8, True, 1, 2, 4, 8, 8192, 16384),
        Worker("mini-3", False, now - 240, False, 1, 2, 4, 8, 8192, 16384, failure=LOST_WORKER),
    )


def sample_fleet_vms(now: float = NOW) -> tuple[VM, ...]:
    """A VM in every phase, spread over the workers of `sample_workers`."""
    running, stopped = TartState.RUNNING, TartState.STOPPED

    def vm(name: str, phase: Phase, progress: float, since: float, **kw: Any) -> VM:
        state = kw.pop("state", running)
        return VM(
            name, state, phase, kw.pop("ip", None), progress, now - since, backend="orchard", **kw
        )

    return (
        vm("build-ready", Phase.READY, 1.0, 3720, ip="10.0.0.11", worker="mini-1"),
        vm(
            "build-ssh",
            Phase.SSH_PENDING,
            0.8,
            20,
            ip="10.0.0.12",
            worker="mini-1",
            eta_seconds=41,
            restart_policy="OnFailure",
            restart_count=2,
            history=_history(
                now,
                (Phase.SCHEDULING, 3),
                (Phase.PULLING, 62),
                (Phase.CLONING, 18),
                (Phase.STARTING, 2),
                (Phase.BOOTING, 85),
                (Phase.IP, 10),
                (Phase.SSH_PENDING, 20),
            ),
        ),
        vm("test-ip", Phase.IP, 0.55, 30, worker="mini-2", eta_seconds=60),
        vm("test-boot", Phase.BOOTING, 0.3, 45, worker="mini-2", eta_seconds=188),
        vm("test-start", Phase.STARTING, 0.05, 6, worker="mini-2", eta_seconds=290),
        vm("pull-image", Phase.PULLING, 0.1, 70, worker="mini-2", eta_seconds=400),
        vm("clone-vm", Phase.CLONING, 0.2, 12, worker="mini-2", eta_seconds=330),
        vm("queued", Phase.SCHEDULING, 0.0, 95, hint=NO_SLOT),
        vm("old-ready", Phase.READY, 1.0, 900, ip="10.0.0.31", worker="mini-3", stale=True),
        vm("halt", Phase.STOPPING, 0.0, 4, worker="mini-1"),
        vm("parked", Phase.STOPPED, 0.0, 86400, state=stopped, worker="mini-2"),
        vm(
            "broken",
            Phase.ERROR,
            0.2,
            130,
            state=stopped,
            worker="mini-1",
            error="VM failed: failed to clone: no space left on device",
            restart_policy="OnFailure",
            restart_count=5,
        ),
    )


def sample_fleet_snapshot(now: float = NOW, *, readonly_reason: str | None = None) -> Snapshot:
    base = sample_snapshot(now)
    sources = dict(base.sources)
    # The VMs' source is the controller's (model.vm_source).
    sources["orchard"] = replace(sources.pop("tart"), name="orchard")
    return replace(
        base,
        sources=sources,
        vm_source="orchard",
        vms=sample_fleet_vms(now),
        workers=sample_workers(now),
        readonly_reason=readonly_reason,
    )


def fleet_monitor(
    now: float = NOW, *, readonly_reason: str | None = None, clock: FakeClock | None = None
) -> FakeMonitor:
    monitor = FakeMonitor(
        sample_fleet_snapshot(now, readonly_reason=readonly_reason), sample_events(now), clock=clock
    )
    # The controller's VM object as the Orchard backend's details() returns it (a part).
    monitor.details["build-ssh"] = {
        "image": "ghcr.io/cirruslabs/macos-sequoia-base:latest",
        "cpu": 4,
        "memory": 8192,
        "status": "running",
        "status_message": "VM started",
        "powerState": "running",
        "worker": "mini-1",
        "restart_policy": "OnFailure",
        "restart_count": 2,
        "uid": "5f0c7c1e-2b7a-4d0e-9a51-3c7d2f9e8b10",
        "conditions": [{"type": "scheduled", "state": "true"}],
        "localName": "orchard-build-ssh-5f0c7c1e-2b7a-4d0e-9a51-3c7d2f9e8b10-2",
    }
    return monitor
