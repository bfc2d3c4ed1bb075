"""Events folding and the WHY rules on the real objects in tests/fixtures/k8s."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from megatui.model import Pod
from megatui.sources.kube_events import EventsState, parse_event
from megatui.sources.kube_status import parse_time, pod_row
from megatui.sources.pod_why import STUCK_AFTER, decide_why, one_line, pod_clue, with_why
from megatui.ui.describe import age_text

FIXTURES = Path(__file__).parent / "fixtures" / "k8s"


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def row(obj: dict[str, Any], now: float) -> Pod:
    base = pod_row(obj, now)
    clue = pod_clue(obj, base.status, base.running_ready)
    import dataclasses

    return dataclasses.replace(base, clue=clue)


def test_kubelet_event_folds_count_and_times() -> None:
    obj = load("event_unhealthy_startup_probe_kind")
    ev = parse_event(obj)
    assert (ev.type, ev.reason, ev.count) == ("Warning", "Unhealthy", 6)
    assert ev.message == "Startup probe failed: HTTP probe failed with statuscode: 503"
    assert ev.field_path == "spec.containers{user-container}"
    assert ev.first == parse_time(obj["firstTimestamp"])
    assert ev.last == parse_time(obj["lastTimestamp"])
    assert ev.source == "kubelet"
    assert age_text(ev, ev.last + 60).startswith("60s (x6 over ")


def test_scheduler_event_has_only_event_time() -> None:
    obj = load("event_scheduled_binding_eventsapi")
    ev = parse_event(obj)
    assert obj["firstTimestamp"] is None and obj["lastTimestamp"] is None
    assert ev.first is not None and ev.first == ev.last
    assert ev.count == 1 and ev.source == "default-scheduler"
    assert age_text(ev, ev.first + 180) == "3m"


def test_events_v1_shape_reads_like_core() -> None:
    ev = parse_event(load("eventsv1_scheduled_from_corev1"))
    src = load("eventsv1_scheduled_from_corev1")
    assert ev.object_name == src["regarding"]["name"]
    assert ev.message == src["note"]
    assert ev.count == src["deprecatedCount"]
    assert ev.first == parse_time(src["deprecatedFirstTimestamp"])


def test_legacy_event_without_reporting_component() -> None:
    ev = parse_event(load("event_pulled_legacy_gke"))
    assert ev.source == "kubelet" and ev.type == "Normal" and ev.count == 1


def test_series_wins_over_count() -> None:
    obj = load("event_scheduled_binding_eventsapi")
    obj["series"] = {"count": 4, "lastObservedTime": "2020-04-24T13:48:26.000000Z"}
    ev = parse_event(obj)
    assert ev.count == 4 and ev.last == parse_time("2020-04-24T13:48:26Z")


def test_event_without_involved_object_is_kept_but_attached_to_nothing() -> None:
    obj = load("event_unhealthy_liveness_probe_kind")
    del obj["involvedObject"]
    obj["count"] = "lots"  # untrusted shape
    ev = parse_event(obj)
    assert ev.object_name == "" and ev.count == 1
    state = EventsState.build([ev], None)
    assert state.warnings() == [ev]
    assert state.for_pod(ev.namespace, "") == []


def test_same_identity_is_one_event_newest_first_per_pod() -> None:
    startup = parse_event(load("event_unhealthy_startup_probe_kind"))
    liveness = parse_event(load("event_unhealthy_liveness_probe_kind"))
    again = parse_event({**load("event_unhealthy_liveness_probe_kind"), "count": 2})
    rows = {e.key: e for e in (startup, liveness, again)}  # the source keys rows so
    state = EventsState.build(rows.values(), None)
    found = state.for_pod(startup.namespace, startup.object_name, startup.object_uid)
    assert len(found) == 2
    assert found[0].last is not None and found[1].last is not None
    assert found[0].last >= found[1].last
    assert {e.count for e in found} == {6, 2}
    # An earlier pod of the same name (other uid) is left out, as describe does.
    assert state.for_pod(startup.namespace, startup.object_name, "another-uid") == []


def test_crash_loop_why_is_the_last_termination() -> None:
    obj = load("pod_crashloopbackoff")
    now = parse_time("2018-12-02T09:21:00Z") or 0.0
    pod = row(obj, now)
    assert pod.status == "CrashLoopBackOff" and pod.clue is not None
    assert pod.clue.failing and pod.clue.crashed
    # Failure states need no 30 s: the line is there at once, and beats any event.
    why = decide_why(pod.clue, ("BackOff", "Back-off restarting failed container", 9), now)
    assert why == "main: Error, exit code 1"


def _creating(now: float) -> dict[str, Any]:
    obj = copy.deepcopy(load("pod_crashloopbackoff"))
    cs = obj["status"]["containerStatuses"][0]
    cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
    cs["lastState"] = {}
    cs["restartCount"] = 0
    for cond in obj["status"]["conditions"]:
        cond["lastTransitionTime"] = "2018-12-02T09:19:36Z"
    return obj


def test_container_creating_why_waits_30_s_then_names_the_warning() -> None:
    start = parse_time("2018-12-02T09:19:36Z") or 0.0
    obj = _creating(start)
    mount = (
        "FailedMount",
        'MountVolume.SetUp failed for volume "docker-sock" : hostPath type check failed: '
        "/var/run/docker.sock is not a socket file",
        1398,
    )
    early = row(obj, start + 5)
    assert early.status == "ContainerCreating"
    assert decide_why(early.clue, mount, start + STUCK_AFTER - 1) is None
    why = decide_why(early.clue, mount, start + STUCK_AFTER + 1)
    assert why is not None and why.startswith(
        'FailedMount (x1398): MountVolume.SetUp failed for volume "docker-sock"'
    )
    assert len(why) <= 160
    # Without events, the Ready condition's message is what the object says.
    assert decide_why(early.clue, None, start + 60) == "containers with unready status: [main]"


def test_running_ready_pod_has_no_clue() -> None:
    obj = load("pod_kind_sidecar_running")
    pod = row(obj, 2e9)
    assert pod.running_ready and pod.clue is None
    assert decide_why(pod.clue, ("BackOff", "x", 1), 2e9) is None


def test_with_why_keeps_unchanged_pods_the_same_objects() -> None:
    obj = load("pod_crashloopbackoff")
    now = parse_time("2018-12-02T09:21:00Z") or 0.0
    pod = row(obj, now)
    fine = pod_row(obj, now)
    import dataclasses

    fine = dataclasses.replace(fine, name="fine", clue=None)
    pods = (fine, pod)
    first = with_why(pods, lambda _p: None, now)
    assert first[0] is fine and first[1].why == "main: Error, exit code 1"
    assert with_why(first, lambda _p: None, now) is first


def test_one_line_folds_controls_and_cuts() -> None:
    assert one_line("a\n\tb\x1b[31mc") == "a b [31mc"
    long = one_line("x" * 500)
    assert len(long) == 160 and long.endswith("…")


def test_next_why_due_is_the_earliest_grace_still_running() -> None:
    from megatui.model import PodClue
    from megatui.sources.pod_why import next_why_due

    def pod(name: str, since: float, failing: bool = False) -> Pod:
        clue = PodClue(name, since, failing, False, None)
        return Pod(name, "ns", "0/1", "Running", "0", "n", since, clue=clue)

    now = 1000.0
    pods = (
        pod("late", now - 5),
        pod("soon", now - 20),
        pod("past", now - STUCK_AFTER - 1),  # already has its WHY
        pod("crash", now - 25, failing=True),  # a failure has no grace
        Pod("fine", "ns", "1/1", "Running", "0", "n", now),
    )
    assert next_why_due(pods, now) == now - 20 + STUCK_AFTER
    assert next_why_due(pods[2:], now) is None
