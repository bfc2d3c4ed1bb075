"""The monitor's drill-down half against the lab: pods carry WHY, Warning events join
the timeline once per identity with their count, detail GETs and logs in one line."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
from cluster_fixtures import kube_monitor, kube_monitor_fixture, lab_cluster_fixture  # noqa: F401
from monitor_helpers import wait_snapshot

from megatui import report
from megatui.api import ActionError
from megatui.lab.cluster import LabCluster
from megatui.lab.kube_api import EVENTS, PODS
from megatui.monitor import Monitor
from megatui.sources.kube_logs import LogBuffer
from megatui.sources.pod_why import STUCK_AFTER

REPO_POD = "argocd-repo-server-6c46b7867b-2x59w"


async def test_first_round_has_why_and_status_json_says_it(monitor: Monitor) -> None:
    assert await monitor.wait_first_round(15)
    snap = monitor.snapshot
    repo = next(p for p in snap.pods if p.name == REPO_POD)
    assert repo.why == "argocd-repo-server: Error, exit code 1"
    data = report.snapshot_json(snap)
    whys = {p["name"]: p["why"] for p in data["pods"]}
    assert whys[REPO_POD] == repo.why
    assert all(why is None for name, why in whys.items() if name != REPO_POD)


async def test_warning_events_join_the_timeline_once_with_their_count(
    monitor: Monitor, lab: LabCluster
) -> None:
    assert await monitor.wait_first_round(15)
    lines = [e for e in monitor.events if e.kind == "k8s"]
    backoff = [e for e in lines if "BackOff" in e.message]
    assert len(backoff) == 1 and backoff[0].message.startswith("BackOff (x2): Back-off")
    assert backoff[0].subject == f"pod/{REPO_POD}" and backoff[0].severity == "warning"
    stored = next(e for e in lab.store.objects(EVENTS, "argocd") if e["reason"] == "BackOff")
    lab.store.set(EVENTS, {**stored, "count": 3})
    await wait_snapshot(monitor, lambda _s: any("(x3)" in e.message for e in monitor.events))
    backoff = [e for e in monitor.events if e.kind == "k8s" and "BackOff" in e.message]
    assert len(backoff) == 1 and "(x3)" in backoff[0].message


def _not_ready_since(pod: dict[str, Any], since: float) -> dict[str, Any]:
    """The pod, Running with its container up but not Ready since `since`."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
    status = copy.deepcopy(pod["status"])
    for cond in status["conditions"]:
        if cond["type"] in ("Ready", "ContainersReady"):
            cond.update(
                status="False",
                reason="ContainersNotReady",
                message="containers with unready status: [redis]",
                lastTransitionTime=stamp,
            )
    for container in status["containerStatuses"]:
        container["ready"] = False
    return {**pod, "status": status}


async def test_a_not_ready_pods_why_appears_when_its_grace_ends_without_other_news(
    monitor: Monitor, lab: LabCluster
) -> None:
    assert await monitor.wait_first_round(15)
    redis = next(p for p in lab.store.objects(PODS, "argocd") if "redis" in p["metadata"]["name"])
    name = redis["metadata"]["name"]
    # The API's times have whole seconds: the grace ends 1 to 2 s after this.
    lab.store.set(PODS, _not_ready_since(redis, time.time() - STUCK_AFTER + 2))
    snap = await wait_snapshot(
        monitor, lambda s: any(p.name == name and p.status == "Running" and not p.running_ready
                               for p in s.pods)
    )  # fmt: skip
    assert next(p for p in snap.pods if p.name == name).why is None
    # Nothing changes in the cluster from here on: only the monitor's timer can publish it.
    snap = await wait_snapshot(
        monitor, lambda s: any(p.name == name and p.why for p in s.pods), timeout=10
    )
    assert next(p for p in snap.pods if p.name == name).why == (
        "containers with unready status: [redis]"
    )


async def test_pod_events_objects_and_logs_through_the_monitor(
    monitor: Monitor, lab: LabCluster
) -> None:
    assert await monitor.wait_first_round(15)
    pod = await monitor.kube_object("pod", "argocd", REPO_POD)
    uid = pod["metadata"]["uid"]
    reasons = [e.reason for e in monitor.pod_events("argocd", REPO_POD, uid)]
    assert sorted(reasons) == ["BackOff", "Started", "Unhealthy"]
    buf = LogBuffer()
    await monitor.follow_pod_logs("argocd", REPO_POD, "argocd-repo-server", buf, lambda _l: None)
    assert "level=fatal" in buf.lines[-1].text
    # A pod deleted while its detail is open: the next GET says so in one line.
    lab.store.delete(PODS, REPO_POD, "argocd")
    with pytest.raises(ActionError) as err:
        await monitor.kube_object("pod", "argocd", REPO_POD)
    assert str(err.value) == f'pods "{REPO_POD}" not found (404)'
    with pytest.raises(ActionError) as err:
        await monitor.follow_pod_logs(
            "argocd", "argocd-server-7b67dbdff8-2xzs9", "argocd-server", LogBuffer(),
            lambda _l: None, previous=True,
        )  # fmt: skip
    assert str(err.value).startswith('previous terminated container "argocd-server"')


async def test_forbidden_events_leave_the_rest_working(lab: LabCluster, tmp_path: Path) -> None:
    lab.api.forbid("events")
    async with kube_monitor(lab, tmp_path) as mon:
        await wait_snapshot(mon, lambda s: len(s.pods) == 7 and mon.events_problem() is not None)
        problem = mon.events_problem()
        assert problem is not None and 'cannot list resource "events"' in problem
        repo = next(p for p in mon.snapshot.pods if p.name == REPO_POD)
        assert repo.why == "argocd-repo-server: Error, exit code 1"  # the pod's own clue
