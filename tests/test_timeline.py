from __future__ import annotations

from dataclasses import replace

from megatui.model import VM, Application, Phase, Pod, Snapshot, SourceStatus, TartState
from megatui.timeline import diff_events


def snap(at: float, **kw: object) -> Snapshot:
    return Snapshot(generated_at=at, host="local", **kw)  # type: ignore[arg-type]


def vm(phase: Phase, error: str | None = None) -> VM:
    return VM("runner", TartState.RUNNING, phase, "10.0.0.2", 0.5, 0.0, error=error)


def test_phase_change_is_an_event() -> None:
    old = snap(1, vms=(vm(Phase.IP),), sources={"tart": SourceStatus("tart", True)})
    new = snap(2, vms=(vm(Phase.SSH_PENDING),), sources={"tart": SourceStatus("tart", True)})
    events = diff_events(old, new)
    assert [(e.kind, e.subject, e.message) for e in events] == [
        ("vm", "runner", "ip → ssh-pending")
    ]


def test_error_phase_carries_the_error() -> None:
    old = snap(1, vms=(vm(Phase.SSH_PENDING),))
    new = snap(2, vms=(vm(Phase.ERROR, "authentication failed for admin@10.0.0.2"),))
    (event,) = diff_events(old, new)
    assert event.severity == "error"
    assert "authentication failed" in event.message


def test_source_failure_and_recovery() -> None:
    ok = {"kubernetes": SourceStatus("kubernetes", True)}
    bad = {"kubernetes": SourceStatus("kubernetes", False, error="connection refused")}
    (failed,) = diff_events(snap(1, sources=ok), snap(2, sources=bad))
    assert (failed.kind, failed.message, failed.severity) == (
        "source",
        "connection refused",
        "error",
    )
    assert diff_events(snap(2, sources=bad), snap(3, sources=bad)) == []
    (recovered,) = diff_events(snap(3, sources=bad), snap(4, sources=ok))
    assert recovered.message == "recovered"


def test_first_list_is_not_news_but_changes_are() -> None:
    pod = Pod("repo-server", "argocd", "0/1", "Running", "0", "w", 0.0)
    assert diff_events(snap(1), snap(2, pods=(pod,))) == []
    crashed = replace(pod, status="CrashLoopBackOff")
    (event,) = diff_events(snap(2, pods=(pod,)), snap(3, pods=(crashed,)))
    assert event.message == "Running → CrashLoopBackOff"
    assert event.severity == "error"


def test_application_sync_and_health_changes() -> None:
    app = Application("guestbook", "argocd", "default", "Synced", "Healthy", "", "")
    drifted = replace(app, sync="OutOfSync", health="Degraded")
    (event,) = diff_events(snap(1, applications=(app,)), snap(2, applications=(drifted,)))
    assert event.message == "Synced/Healthy → OutOfSync/Degraded"
    assert event.severity == "error"
