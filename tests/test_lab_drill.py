"""The lab's Events, pod logs and Application detail, checked against the spec
(tests/fixtures/k8s and kubernetes-drilldown.md §1-§6) with kubectl and raw HTTP."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from conftest import require_binary
from test_kubectl_fake import _argv, run_kubectl

from megatui.lab.cluster import LabCluster, start_lab_cluster
from megatui.lab.drill_scenario import DOCKER_SOCK_MOUNT, ORCHARD_POD
from megatui.lab.kube_api import APPLICATIONS, EVENTS, PODS, FakeKubeAPI
from megatui.lab.kube_events import EventRecorder, to_events_v1
from megatui.lab.kube_logs import nano_stamp

FIXTURES = Path(__file__).parent / "fixtures" / "k8s"
REPO_POD = "argocd-repo-server-6c46b7867b-2x59w"
SERVER_POD = "argocd-server-7b67dbdff8-2xzs9"


@pytest.fixture
def kubectl() -> str:
    return require_binary("kubectl", "/usr/bin/kubectl")


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[LabCluster]:
    cluster = await start_lab_cluster(tls=True, workdir=tmp_path / "lab", animate=False)
    try:
        yield cluster
    finally:
        await cluster.stop()


@pytest.fixture
async def plain() -> AsyncIterator[tuple[FakeKubeAPI, str]]:
    """The settled lab over plain HTTP, for raw requests."""
    from megatui.lab.cluster import populate_settled
    from megatui.lab.drill_scenario import seed

    api = FakeKubeAPI()
    populate_settled(api.store, now=1_800_000_000.0)
    url = await api.start()
    seed(api, 1_800_000_000.0)
    try:
        yield api, url
    finally:
        await api.stop()


def fixed_table(text: str) -> list[dict[str, str]]:
    """kubectl's table cut at the header's column starts (cells may be empty)."""
    lines = [line for line in text.splitlines() if line.strip()]
    starts = [m.start() for m in re.finditer(r"(?:^|(?<=\s\s))(\S+(?: \S+)*)", lines[0])]
    names = [lines[0][a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {n: line[a:b].strip() for n, a, b in zip(names, starts, [*starts[1:], None], strict=True)}
        for line in lines[1:]
    ]


async def _kubectl_fails(kubectl: str, lab: LabCluster, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *_argv(kubectl, lab, *args),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"HOME": str(lab.workdir), "PATH": "/usr/bin:/bin"},
    )
    async with asyncio.timeout(30):
        _out, err = await proc.communicate()
    assert proc.returncode != 0
    return err.decode().strip()


async def test_kubectl_get_events_shows_the_historic_failed_mount(
    kubectl: str, lab: LabCluster
) -> None:
    out = await run_kubectl(kubectl, lab, "get", "events", "-n", "orchard", "-o", "wide")
    rows = fixed_table(out)
    mount = next(r for r in rows if r["REASON"] == "FailedMount")
    assert mount["TYPE"] == "Warning"
    assert mount["OBJECT"] == f"pod/{ORCHARD_POD}"
    assert mount["MESSAGE"] == DOCKER_SOCK_MOUNT
    assert mount["COUNT"] == "1398"
    assert mount["SOURCE"] == "kubelet, kind-worker"
    scheduled = next(r for r in rows if r["REASON"] == "Scheduled")
    # A scheduler event: no first/last timestamps, its time is eventTime.
    assert scheduled["FIRST SEEN"] == "2d1h"


async def test_kubectl_describe_pod_lists_its_events(kubectl: str, lab: LabCluster) -> None:
    out = await run_kubectl(kubectl, lab, "describe", "pod", "-n", "orchard", ORCHARD_POD)
    assert re.search(r"Warning\s+FailedMount\s+\S+ \(x1398 over 2d\)\s+kubelet", out), out
    assert "docker-sock" in out and "HostPathType:  Socket" in out
    assert re.search(r"State:\s+Waiting\s+Reason:\s+ContainerCreating", out)


async def test_kubectl_logs_tail_previous_and_timestamps(kubectl: str, lab: LabCluster) -> None:
    out = await run_kubectl(
        kubectl, lab, "logs", "-n", "argocd", REPO_POD, "-c", "argocd-repo-server", "--tail=1"
    )
    assert out.count("\n") == 1 and "level=fatal" in out
    prev = await run_kubectl(
        kubectl, lab, "logs", "-n", "argocd", REPO_POD, "-c", "argocd-repo-server",
        "--previous", "--timestamps",
    )  # fmt: skip
    lines = prev.splitlines()
    assert len(lines) == 4
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ", line) for line in lines)


async def test_kubectl_logs_refusals_are_the_kubelets(kubectl: str, lab: LabCluster) -> None:
    err = await _kubectl_fails(kubectl, lab, "logs", "-n", "argocd", SERVER_POD, "--previous")
    assert err == (
        "Error from server (BadRequest): previous terminated container "
        f'"argocd-server" in pod "{SERVER_POD}" not found'
    )
    err = await _kubectl_fails(kubectl, lab, "logs", "-n", "orchard", ORCHARD_POD)
    assert err == (
        'Error from server (BadRequest): container "orchard-controller" in pod '
        f'"{ORCHARD_POD}" is waiting to start: ContainerCreating'
    )


async def _get(url: str, **params: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def test_log_errors_are_status_bodies(plain: tuple[FakeKubeAPI, str]) -> None:
    api, url = plain
    base = f"{url}/api/v1/namespaces/argocd/pods"
    status, ctype, body = await _get(f"{base}/{REPO_POD}/log")
    assert status == 200 and ctype.startswith("text/plain")  # one regular container
    status, _, body = await _get(f"{base}/{REPO_POD}/log", container="nope")
    assert status == 400
    assert json.loads(body)["message"] == f"container nope is not valid for pod {REPO_POD}"
    status, _, body = await _get(f"{base}/gone/log")
    assert status == 404 and json.loads(body)["message"] == 'pods "gone" not found'
    api.forbid("pods/log")
    status, _, body = await _get(f"{base}/{REPO_POD}/log")
    assert status == 403
    assert 'cannot get resource "pods/log"' in json.loads(body)["message"]


async def test_log_since_time_and_limit_bytes(plain: tuple[FakeKubeAPI, str]) -> None:
    _api, url = plain
    path = f"{url}/api/v1/namespaces/argocd/pods/{SERVER_POD}/log"
    _, _, every = await _get(path, timestamps="true")
    stamps = [line.split(b" ", 1)[0].decode() for line in every.splitlines()]
    assert len(stamps) == 5
    cut = stamps[2][:19] + "Z"
    _, _, since = await _get(path, sinceTime=cut, timestamps="true")
    assert [line.split(b" ", 1)[0].decode() for line in since.splitlines()] == stamps[2:]
    _, _, limited = await _get(path, limitBytes="10")
    assert len(limited) == 10


async def test_follow_is_chunked_and_ends_when_the_container_stops(
    plain: tuple[FakeKubeAPI, str],
) -> None:
    api, url = plain
    pod = api.store.get(PODS, SERVER_POD, "argocd")
    assert pod is not None
    path = f"{url}/api/v1/namespaces/argocd/pods/{SERVER_POD}/log"
    async with (
        aiohttp.ClientSession() as session,
        session.get(path, params={"follow": "true", "tailLines": "1"}) as resp,
    ):
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        first = await asyncio.wait_for(resp.content.readline(), 5)
        assert b"NumGC=7" in first
        api.ext.logs.write("argocd", SERVER_POD, "argocd-server", "fresh line")
        assert await asyncio.wait_for(resp.content.readline(), 5) == b"fresh line\n"
        stopped = json.loads(json.dumps(pod))
        stopped["status"]["containerStatuses"][0]["state"] = {
            "terminated": {"exitCode": 0, "reason": "Completed", "containerID": "containerd://x"}
        }
        api.store.set(PODS, stopped)
        api.ext.logs.write("argocd", SERVER_POD, "argocd-server", "last words")
        assert await asyncio.wait_for(resp.content.readline(), 5) == b"last words\n"
        assert await asyncio.wait_for(resp.content.read(), 5) == b""


async def test_crash_loop_previous_and_current_are_the_same_run(
    plain: tuple[FakeKubeAPI, str],
) -> None:
    _, url = plain
    path = f"{url}/api/v1/namespaces/argocd/pods/{REPO_POD}/log"
    _, _, current = await _get(path)
    _, _, previous = await _get(path, previous="true")
    assert current == previous and current.endswith(b'permission denied"\n')


async def test_events_v1_view_and_its_field_labels(plain: tuple[FakeKubeAPI, str]) -> None:
    _, url = plain
    base = f"{url}/apis/events.k8s.io/v1/namespaces/orchard/events"
    status, _, body = await _get(base, fieldSelector=f"regarding.name={ORCHARD_POD},type=Warning")
    assert status == 200
    items = json.loads(body)["items"]
    assert [i["reason"] for i in items] == ["FailedMount"]
    assert items[0]["note"] == DOCKER_SOCK_MOUNT
    assert items[0]["eventTime"] is None and items[0]["deprecatedCount"] == 1398
    status, _, body = await _get(base, fieldSelector="involvedObject.name=x")
    assert status == 400
    assert json.loads(body)["message"] == "field label not supported: involvedObject.name"


def test_events_v1_conversion_matches_the_real_object() -> None:
    """The core/v1 → events.k8s.io view of a kubelet event has the shape of the real
    events.k8s.io object in eventsv1_scheduled_from_corev1.json."""
    real = json.loads((FIXTURES / "eventsv1_scheduled_from_corev1.json").read_text())
    core = json.loads((FIXTURES / "event_unhealthy_startup_probe_kind.json").read_text())
    view = to_events_v1(core)
    assert view["eventTime"] is None and real["eventTime"] is None
    shared = {"deprecatedCount", "deprecatedFirstTimestamp", "deprecatedLastTimestamp",
              "deprecatedSource", "note", "regarding", "reason", "type"}  # fmt: skip
    assert shared <= set(view) and shared <= set(real)
    assert view["note"] == core["message"] and view["deprecatedCount"] == 6


async def test_core_events_list_and_watch_by_involved_object(
    plain: tuple[FakeKubeAPI, str],
) -> None:
    api, url = plain
    base = f"{url}/api/v1/namespaces/argocd/events"
    pod = api.store.get(PODS, REPO_POD, "argocd")
    assert pod is not None
    # Term order is random in client-go: the server parses, it does not compare strings.
    sel = f"involvedObject.uid={pod['metadata']['uid']},involvedObject.name={REPO_POD}"
    _status, _, body = await _get(base, fieldSelector=sel)
    listed = json.loads(body)
    reasons = sorted(i["reason"] for i in listed["items"])
    assert reasons == ["BackOff", "Started", "Unhealthy"]
    backoff = next(i for i in listed["items"] if i["reason"] == "BackOff")
    assert backoff["count"] == 2  # the second run PATCHed the same event
    rv = listed["metadata"]["resourceVersion"]
    async with (
        aiohttp.ClientSession() as session,
        session.get(base, params={"watch": "1", "resourceVersion": rv, "fieldSelector": sel}) as r,
    ):
        EventRecorder(api.store)  # a fresh recorder writes a new object
        api.store.set(EVENTS, {**backoff, "count": 3})
        line = json.loads(await asyncio.wait_for(r.content.readline(), 5))
        assert line["type"] == "MODIFIED" and line["object"]["count"] == 3


def test_nano_stamp_is_fixed_width() -> None:
    assert nano_stamp(1_714_557_601.12) == "2024-05-01T10:00:01.120000000Z"


async def test_degraded_application_has_detail(plain: tuple[FakeKubeAPI, str]) -> None:
    api, _ = plain
    app = api.store.get(APPLICATIONS, "helm-guestbook", "argocd")
    assert app is not None
    status = app["status"]
    assert status["conditions"][0]["type"] == "SyncError"
    assert status["operationState"]["phase"] == "Failed"
    kinds = [(r["kind"], r["status"]) for r in status["resources"]]
    assert ("Deployment", "OutOfSync") in kinds and ("Pod", "Synced") in kinds
    assert status["operationState"]["syncResult"]["resources"][1]["status"] == "SyncFailed"
