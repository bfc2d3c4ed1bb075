"""The event timeline: what changed between two snapshots, as readable lines.

Computed once in the monitor, so the TUI's timeline and any headless consumer
see the same events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

from megatui.model import Event, Phase, Snapshot, SourceStatus


def diff_events(old: Snapshot, new: Snapshot) -> list[Event]:
    at = new.generated_at
    events: list[Event] = []
    events.extend(_source_events(old.sources, new.sources, at))
    events.extend(_vm_events(old, new, at))
    events.extend(_keyed_changes("node", old.nodes, new.nodes, at, lambda n: n.status, _node_sev))
    events.extend(_keyed_changes("pod", old.pods, new.pods, at, lambda p: p.status, _pod_sev))
    events.extend(
        _keyed_changes(
            "app",
            old.applications,
            new.applications,
            at,
            lambda a: f"{a.sync}/{a.health}",
            _app_sev,
        )
    )
    return events


def _source_events(
    old: dict[str, SourceStatus], new: dict[str, SourceStatus], at: float
) -> Iterator[Event]:
    for name, status in new.items():
        before = old.get(name)
        if not status.ok and (before is None or before.ok or before.error != status.error):
            yield Event(at, "source", name, status.error or "failing", "error")
        elif status.ok and before is not None and not before.ok:
            yield Event(at, "source", name, "recovered", "info")


def _vm_events(old: Snapshot, new: Snapshot, at: float) -> Iterator[Event]:
    before = {vm.name: vm for vm in old.vms}
    for vm in new.vms:
        prev = before.pop(vm.name, None)
        if prev is None:
            if old.vm_status() is not None:
                yield Event(at, "vm", vm.name, f"appeared ({vm.phase})")
            continue
        if prev.phase != vm.phase:
            severity = "error" if vm.phase is Phase.ERROR else "info"
            detail = f": {vm.error}" if vm.phase is Phase.ERROR and vm.error else ""
            yield Event(at, "vm", vm.name, f"{prev.phase} → {vm.phase}{detail}", severity)
        elif vm.hint and vm.hint != prev.hint:
            yield Event(at, "vm", vm.name, vm.hint, "warning")
    for name in before:
        yield Event(at, "vm", name, "gone from tart list", "warning")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=_Named)


def _keyed_changes(
    kind: str,
    old: Sequence[T],
    new: Sequence[T],
    at: float,
    value: Callable[[T], str],
    severity: Callable[[str], str],
) -> Iterator[Event]:
    if old is new:
        # The same tuple: that source did not change (the common case on a VM-only
        # update); diffing 5,000 pods for nothing would be the hot path.
        return
    before = {item.name: value(item) for item in old}
    if not before:
        # The first list is not news: only changes after it are events.
        return
    for item in new:
        current = value(item)
        prev = before.pop(item.name, None)
        if prev is None:
            yield Event(at, kind, item.name, f"added ({current})", severity(current))
        elif prev != current:
            yield Event(at, kind, item.name, f"{prev} → {current}", severity(current))
    for name in before:
        yield Event(at, kind, name, "deleted")


def _node_sev(status: str) -> str:
    return "info" if status.startswith("Ready") else "warning"


_BAD_POD = ("CrashLoopBackOff", "Error", "ImagePullBackOff", "ErrImagePull", "OOMKilled")


def _pod_sev(status: str) -> str:
    if any(bad in status for bad in _BAD_POD):
        return "error"
    return "info"


def _app_sev(value: str) -> str:
    sync, _, health = value.partition("/")
    if health in ("Degraded", "Missing"):
        return "error"
    if sync != "Synced" or health not in ("Healthy", "Unknown"):
        return "warning"
    return "info"
