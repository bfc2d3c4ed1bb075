"""Prometheus metrics of the served monitor, at /metrics.

Gauges are computed from the newest snapshot at scrape time, so a VM, pod owner or
Application that is gone has no series any more: cardinality follows what exists,
never what once existed. Pods are labelled by their owner (the name without the
ReplicaSet/pod hash), never by pod name, so a rollout does not mint new series.
The two histograms (time per boot phase, time to ready) are fed by watching the
snapshots, with per-VM memory dropped when the VM goes.
"""

from __future__ import annotations

import functools
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from megatui import __version__
from megatui.model import BOOT_PHASES, SOURCE_HOST, Phase, Pod, Snapshot
from megatui.recovery import RecoveryEngine

SYNC_VALUES = ("Synced", "OutOfSync", "Unknown")
HEALTH_VALUES = ("Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown")
DOCTOR_STATUSES = ("pass", "warn", "fail", "skipped")
PHASE_BUCKETS = (1, 2.5, 5, 10, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200)
READY_BUCKETS = (5, 10, 20, 30, 45, 60, 90, 120, 180, 240, 300, 450, 600, 900, 1800)

# Deployment pods: NAME-<pod-template-hash>-<5 chars>; DaemonSet/Job pods: NAME-<5>;
# StatefulSet pods: NAME-<ordinal>.
_DEPLOYMENT_POD = re.compile(r"^(?P<owner>.+)-[a-z0-9]{6,10}-[a-z0-9]{5}$")
_SHORT_SUFFIX = re.compile(r"^(?P<owner>.+)-(?:[a-z0-9]{5}|\d+)$")


def pod_owner(pod: Pod) -> str:
    """A stable name for the workload a pod belongs to."""
    return _owner_of(pod.name)


@functools.lru_cache(maxsize=16384)  # the same pods are seen at every scrape
def _owner_of(name: str) -> str:
    for pattern in (_DEPLOYMENT_POD, _SHORT_SUFFIX):
        match = pattern.match(name)
        if match:
            return match["owner"]
    return name


def restarts(pod: Pod) -> int:
    """kubectl's RESTARTS column ("3 (5m ago)") as a number."""
    head = pod.restarts.split(" ", 1)[0]
    return int(head) if head.isdigit() else 0


@dataclass(frozen=True, slots=True)
class DoctorRun:
    at: float
    checks: tuple[tuple[str, str], ...]  # (check name, status)


class BootTimer:
    """Observes how long each VM spends in each boot phase and in the whole boot."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.phase_seconds = Histogram(
            "megatui_vm_phase_duration_seconds",
            "Time VMs spent in each boot phase, observed when the phase ends.",
            ["phase"],
            buckets=PHASE_BUCKETS,
            registry=registry,
        )
        self.ready_seconds = Histogram(
            "megatui_vm_time_to_ready_seconds",
            "Time from a VM's start to an SSH login, observed when it becomes ready.",
            buckets=READY_BUCKETS,
            registry=registry,
        )
        self._last: dict[str, tuple[Phase, float]] = {}
        self._boot_started: dict[str, float] = {}

    def observe(self, snap: Snapshot) -> None:
        seen = set()
        for vm in snap.vms:
            seen.add(vm.name)
            before = self._last.get(vm.name)
            self._last[vm.name] = (vm.phase, vm.phase_since)
            if before is None or before[0] is vm.phase:
                continue
            old_phase, old_since = before
            if old_phase in BOOT_PHASES:
                self.phase_seconds.labels(str(old_phase)).observe(
                    max(0.0, vm.phase_since - old_since)
                )
            if vm.phase is Phase.STARTING:
                self._boot_started[vm.name] = vm.phase_since
            elif vm.phase is Phase.READY:
                started = self._boot_started.pop(vm.name, None)
                if started is not None:
                    self.ready_seconds.observe(max(0.0, vm.phase_since - started))
            elif vm.phase not in BOOT_PHASES:
                self._boot_started.pop(vm.name, None)
        for name in set(self._last) - seen:
            del self._last[name]
            self._boot_started.pop(name, None)


class SnapshotCollector(Collector):
    """Gauges from the newest snapshot, made at scrape time."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        doctor: Callable[[], DoctorRun | None],
        viewers: Callable[[], tuple[int, int]],
    ) -> None:
        self._snapshot = snapshot
        self._doctor = doctor
        self._viewers = viewers

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        now = time.time()
        info = GaugeMetricFamily("megatui_build_info", "megatui's version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield from _vm_metrics(snap)
        yield from _source_metrics(snap, now)
        yield from _pod_metrics(snap)
        yield from _app_metrics(snap)
        yield from _doctor_metrics(self._doctor())
        viewers, dropped = self._viewers()
        gauge = GaugeMetricFamily("megatui_serve_event_viewers", "Open /api/v1/events streams.")
        gauge.add_metric([], viewers)
        yield gauge
        counter = GaugeMetricFamily(
            "megatui_serve_dropped_viewers",
            "Event viewers dropped since start for not reading their stream.",
        )
        counter.add_metric([], dropped)
        yield counter


def _vm_metrics(snap: Snapshot) -> Iterable[Metric]:
    phase = GaugeMetricFamily(
        "megatui_vm_phase",
        "1 for the phase each VM is in, 0 for the others.",
        labels=["vm", "phase"],
    )
    ready = GaugeMetricFamily(
        "megatui_vm_ready", "1 when the VM accepts SSH logins.", labels=["vm"]
    )
    progress = GaugeMetricFamily(
        "megatui_vm_boot_progress_ratio", "How far the VM is through its boot.", labels=["vm"]
    )
    for vm in snap.vms:
        for p in Phase:
            phase.add_metric([vm.name, str(p)], 1 if vm.phase is p else 0)
        ready.add_metric([vm.name], 1 if vm.phase is Phase.READY else 0)
        progress.add_metric([vm.name], vm.progress)
    return (phase, ready, progress)


def _source_metrics(snap: Snapshot, now: float) -> Iterable[Metric]:
    up = GaugeMetricFamily("megatui_source_up", "1 while a source answers.", labels=["source"])
    last = GaugeMetricFamily(
        "megatui_source_last_success_timestamp_seconds",
        "When a source last answered (Unix time).",
        labels=["source"],
    )
    age = GaugeMetricFamily(
        "megatui_source_seconds_since_last_success",
        "Seconds since a source last answered.",
        labels=["source"],
    )
    for name, status in sorted(snap.sources.items()):
        up.add_metric([name], 1 if status.ok else 0)
        if status.updated_at is not None:
            last.add_metric([name], status.updated_at)
            age.add_metric([name], max(0.0, now - status.updated_at))
    host = GaugeMetricFamily(
        "megatui_host_connection_up",
        "1 while the connection to the Mac host is up (always 1 for a local host).",
        labels=["host"],
    )
    connection = snap.sources.get(SOURCE_HOST)
    host.add_metric([snap.host], 1 if connection is None or connection.ok else 0)
    return (up, last, age, host)


def _pod_metrics(snap: Snapshot) -> Iterable[Metric]:
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    restart_sums: dict[tuple[str, str], int] = defaultdict(int)
    for pod in snap.pods:
        owner = pod_owner(pod)
        counts[(pod.namespace, owner, "ready" if pod.running_ready else "not_ready")] += 1
        counts.setdefault((pod.namespace, owner, "not_ready" if pod.running_ready else "ready"), 0)
        restart_sums[(pod.namespace, owner)] += restarts(pod)
    pods = GaugeMetricFamily(
        "megatui_pods",
        "Pods by owner (workload) and readiness.",
        labels=["namespace", "owner", "state"],
    )
    for key, count in sorted(counts.items()):
        pods.add_metric(list(key), count)
    # Not a counter (_total): the sum falls when a pod with restarts is replaced.
    restarts_gauge = GaugeMetricFamily(
        "megatui_pod_container_restarts",
        "Container restarts of the current pods of each owner.",
        labels=["namespace", "owner"],
    )
    for (namespace, owner), total in sorted(restart_sums.items()):
        restarts_gauge.add_metric([namespace, owner], total)
    return (pods, restarts_gauge)


# Each family is declared where it is filled, its name and help being the scrapers'
# contract; the declarations here and in _recovery_metrics are alike in shape only.
def _app_metrics(snap: Snapshot) -> Iterable[Metric]:
    sync = GaugeMetricFamily(
        "megatui_application_sync_status",
        "1 for each ArgoCD Application's sync status, 0 for the others.",
        labels=["namespace", "application", "sync"],
    )
    health = GaugeMetricFamily(
        "megatui_application_health_status",
        "1 for each ArgoCD Application's health, 0 for the others.",
        labels=["namespace", "application", "health"],
    )
    for app in snap.applications:
        for value in _values(SYNC_VALUES, app.sync):
            sync.add_metric([app.namespace, app.name, value], 1 if value == app.sync else 0)
        for value in _values(HEALTH_VALUES, app.health):
            health.add_metric([app.namespace, app.name, value], 1 if value == app.health else 0)
    return (sync, health)


def _values(known: tuple[str, ...], current: str) -> tuple[str, ...]:
    # An unexpected value gets its own series, but only while it is current.
    return known if current in known or not current else (*known, current)


def _doctor_metrics(run: DoctorRun | None) -> Iterable[Metric]:
    check = GaugeMetricFamily(
        "megatui_doctor_check",
        "1 for each doctor check's result at its last run, 0 for the other results.",
        labels=["check", "status"],
    )
    last = GaugeMetricFamily(
        "megatui_doctor_last_run_timestamp_seconds", "When doctor last ran (Unix time)."
    )
    if run is not None:
        last.add_metric([], run.at)
        for name, status in run.checks:
            for value in DOCTOR_STATUSES:
                check.add_metric([name, value], 1 if value == status else 0)
    return (check, last)


@dataclass(frozen=True, slots=True)
class RecoveryStats:
    """What recovery has done: (vm, action, result) -> count, and attempts per VM in
    the last hour."""

    actions: dict[tuple[str, str, str], int]
    restarts_last_hour: dict[str, int]

    @classmethod
    def of(cls, engine: RecoveryEngine) -> RecoveryStats:
        return cls(
            dict(engine.counts), {n: engine.restarts_last_hour(n) for n in sorted(engine.known())}
        )


class _RecoveryCollector(Collector):
    def __init__(self, source: Callable[[], Callable[[], RecoveryStats] | None]) -> None:
        self._source = source

    def collect(self) -> Iterator[Metric]:
        stats = self._source()
        yield from _recovery_metrics(stats() if stats is not None else None)


# (Family declarations alike in shape with _app_metrics': see there.)
def _recovery_metrics(stats: RecoveryStats | None) -> Iterable[Metric]:
    actions = CounterMetricFamily(
        "megatui_recovery_actions",
        "Recovery actions by VM, action (start, restart) and result (ok, failed, limited).",
        labels=["vm", "action", "result"],
    )
    restarts = GaugeMetricFamily(
        "megatui_recovery_restarts_last_hour",
        "Recovery attempts per VM in the last hour (max_restarts counts these).",
        labels=["vm"],
    )
    if stats is not None:
        for key, count in sorted(stats.actions.items()):
            actions.add_metric(list(key), count)
        for name, count in stats.restarts_last_hour.items():
            restarts.add_metric([name], count)
    return (actions, restarts)


class Metrics:
    """The registry of one server: the snapshot gauges plus the boot histograms."""

    def __init__(
        self,
        snapshot: Callable[[], Snapshot],
        viewers: Callable[[], tuple[int, int]],
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.boot = BootTimer(self.registry)
        self.doctor_run: DoctorRun | None = None
        #: Set by a server that runs recovery.
        self.recovery: Callable[[], RecoveryStats] | None = None
        self.registry.register(SnapshotCollector(snapshot, lambda: self.doctor_run, viewers))
        self.registry.register(_RecoveryCollector(lambda: self.recovery))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
