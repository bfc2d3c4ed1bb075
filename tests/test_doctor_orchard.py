"""The doctor's Orchard checks (issue #11 item 6) against the fake controller
(megatui/lab/orchard, checked against Orchard's OpenAPI description by
`orchard_lab`), and the controller Pod stuck on its docker.sock mount against the
lab's Kubernetes API."""

from __future__ import annotations

import copy
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from docker_fixtures import free_loopback_port
from orchard_fixtures import ADMIN, advance, orchard_lab_fixture  # noqa: F401

from megatui.config import Settings
from megatui.doctor import CHECKS, CheckResult, Context, Progress, Status, run_checks
from megatui.doctor.checks import orchard as orchard_checks
from megatui.doctor.checks.orchard_pod import check_controller_pod, stuck_on_docker_sock
from megatui.lab import drill_scenario
from megatui.lab.cluster import LabCluster, start_lab_cluster
from megatui.lab.kube_api import EVENTS, PODS
from megatui.lab.orchard import FakeOrchard
from megatui.lab.orchard.api import CONTROLLER_VERSION
from megatui.model import KubeEvent
from megatui.monitor import Monitor
from megatui.sources.orchard import NewVM
from megatui.sources.orchard_config import OrchardConfig

IMAGE = "ghcr.io/cirruslabs/macos-sequoia-base:latest"
API_CHECKS = [c for c in CHECKS if c.name.startswith("orchard.") and "pod" not in c.name]


def _context(lab: FakeOrchard | None, account: tuple[str, str] = ADMIN) -> Context:
    settings = Settings()
    clock = lab.clock if lab is not None else None
    config = (
        OrchardConfig(lab.url, account[0], account[1], lab.certificate_pem)
        if lab is not None
        else None
    )
    return Context(
        settings,
        Monitor(settings, clock=clock),
        Progress(io.StringIO(), len(API_CHECKS)),
        orchard=config,
    )


async def _doctor(ctx: Context) -> dict[str, CheckResult]:
    try:
        results = await run_checks(ctx, API_CHECKS)
    finally:
        await orchard_checks.close(ctx)
    return {r.name: r for r in results}


async def _create(lab: FakeOrchard, *names: str) -> None:
    client = _context(lab).orchard
    assert client is not None
    from megatui.sources.orchard import OrchardClient

    async with OrchardClient(client) as api:
        for name in names:
            await api.create_vm(NewVM(name, IMAGE, username="admin", password="admin"))


def _statuses(results: dict[str, CheckResult]) -> dict[str, str]:
    return {name: str(r.status) for name, r in results.items()}


async def test_without_a_controller_every_orchard_check_is_skipped() -> None:
    results = await _doctor(_context(None))
    assert results["orchard.controller"].reason == "no Orchard controller configured"
    assert {r.status for r in results.values()} == {Status.SKIPPED}
    assert results["orchard.workers"].reason == "needs orchard.credentials"


async def test_a_healthy_fleet_passes(orchard_lab: FakeOrchard) -> None:
    orchard_lab.add_worker("mini-1")
    orchard_lab.add_worker("mini-2")
    await _create(orchard_lab, "runner")
    advance(orchard_lab, 20)

    results = await _doctor(_context(orchard_lab))

    assert set(_statuses(results).values()) == {"pass"}, results
    assert f"Orchard {CONTROLLER_VERSION}" in results["orchard.controller"].reason
    assert results["orchard.credentials"].reason == (
        "service account 'bootstrap-admin' has compute:read and compute:write"
    )
    assert results["orchard.workers"].reason == "2 workers online"
    assert results["orchard.vms-failed"].reason == "no failed VMs (1 VM)"
    assert results["orchard.vms-pending"].reason == "no VM waiting for a worker"


async def test_an_unreachable_controller_fails_and_skips_the_rest() -> None:
    config = OrchardConfig(f"http://127.0.0.1:{free_loopback_port()}", *ADMIN)
    settings = Settings()
    ctx = Context(settings, Monitor(settings), Progress(io.StringIO(), 5), orchard=config)

    results = await _doctor(ctx)

    controller = results["orchard.controller"]
    assert controller.status is Status.FAIL
    assert "\n" not in controller.reason and controller.hint
    assert {r.status for n, r in results.items() if n != "orchard.controller"} == {Status.SKIPPED}


async def test_a_wrong_token_fails_the_credentials_and_never_shows_it(
    orchard_lab: FakeOrchard,
) -> None:
    orchard_lab.add_worker("mini-1")
    results = await _doctor(_context(orchard_lab, ("bootstrap-admin", "not-the-token")))

    creds = results["orchard.credentials"]
    assert creds.status is Status.FAIL, results
    assert creds.reason == (
        "service account 'bootstrap-admin' refused: unknown name or wrong token"
    )
    assert "not-the-token" not in creds.reason + creds.hint
    # It answered: reachable, only its version needs valid credentials.
    assert results["orchard.controller"].status is Status.PASS
    assert "version unknown" in results["orchard.controller"].reason
    assert results["orchard.workers"].status is Status.SKIPPED


async def test_an_account_without_compute_write_warns_read_only(
    orchard_lab: FakeOrchard,
) -> None:
    orchard_lab.add_worker("mini-1")
    orchard_lab.add_account("viewer", "viewer-token", ("compute:read",))

    results = await _doctor(_context(orchard_lab, ("viewer", "viewer-token")))

    creds = results["orchard.credentials"]
    assert creds.status is Status.WARN
    assert "compute:write" in creds.reason and "read-only" in creds.reason, creds
    # A warning is enough for what reads the fleet.
    assert results["orchard.workers"].status is Status.PASS


async def test_an_account_without_compute_read_fails_with_the_controllers_words(
    orchard_lab: FakeOrchard,
) -> None:
    orchard_lab.add_account("nobody", "nobody-token", ())

    results = await _doctor(_context(orchard_lab, ("nobody", "nobody-token")))

    creds = results["orchard.credentials"]
    assert creds.status is Status.FAIL
    assert "roles must be present: compute:read" in creds.reason, creds
    assert results["orchard.vms-failed"].status is Status.SKIPPED


async def test_no_worker_and_an_offline_worker(orchard_lab: FakeOrchard) -> None:
    results = await _doctor(_context(orchard_lab))
    assert results["orchard.workers"].reason == "no worker has joined the controller"

    orchard_lab.add_worker("mini-1")
    orchard_lab.add_worker("mini-2")
    orchard_lab.worker_silent("mini-2")
    advance(orchard_lab, 200, step=10)  # past the 3-minute offline rule

    results = await _doctor(_context(orchard_lab))
    workers = results["orchard.workers"]
    assert workers.status is Status.FAIL
    assert workers.reason.startswith("1 of 2 workers offline: "), workers
    assert "mini-2" in workers.reason and "mini-1" not in workers.reason


async def test_a_paused_worker_warns(orchard_lab: FakeOrchard) -> None:
    orchard_lab.add_worker("mini-1", scheduling_paused=True)
    orchard_lab.add_worker("mini-2")
    results = await _doctor(_context(orchard_lab))
    assert results["orchard.workers"].status is Status.WARN
    assert "scheduling paused on mini-1" in results["orchard.workers"].reason


async def test_a_failed_vm_fails_with_the_controllers_message(orchard_lab: FakeOrchard) -> None:
    orchard_lab.add_worker("mini-1")
    await _create(orchard_lab, "runner", "builder")
    advance(orchard_lab, 20)
    orchard_lab.fail_vm("builder", "tart run exited with code 1")

    results = await _doctor(_context(orchard_lab))

    failed = results["orchard.vms-failed"]
    assert failed.status is Status.FAIL
    assert failed.reason == (
        "1 of 2 VMs failed: builder on mini-1: VM failed: tart run exited with code 1"
    )
    assert failed.hint


async def test_pending_vms_no_worker_can_take_fail_queued_ones_pass(
    orchard_lab: FakeOrchard,
) -> None:
    orchard_lab.add_worker("mini-1", tart_vms=2)
    await _create(orchard_lab, "one", "two")
    # Not yet scheduled, and the worker has room: only queued.
    results = await _doctor(_context(orchard_lab))
    assert results["orchard.vms-pending"].status is Status.PASS
    assert results["orchard.vms-pending"].reason == "2 pending VMs waiting for the scheduler"

    advance(orchard_lab, 20)
    await _create(orchard_lab, "three")  # Apple's limit: 2 macOS VMs per Mac
    advance(orchard_lab, 5)

    results = await _doctor(_context(orchard_lab))
    pending = results["orchard.vms-pending"]
    assert pending.status is Status.FAIL
    assert pending.reason == (
        "1 pending VM no worker can take: "
        "three: no worker has a free macOS VM slot (Apple allows 2 per Mac)"
    )


# --- the controller Pod in the Kind cluster --------------------------------------------

NOW = 1_780_000_000.0


def _mount_event(
    message: str = drill_scenario.DOCKER_SOCK_MOUNT, reason: str = "FailedMount"
) -> KubeEvent:
    return KubeEvent(
        namespace="orchard",
        name="ev-1",
        type="Warning",
        reason=reason,
        message=message,
        object_kind="Pod",
        object_name=drill_scenario.ORCHARD_POD,
        object_uid="",
        field_path="",
        count=1398,
        first=NOW - 86400,
        last=NOW - 75,
        source="kubelet",
    )


def test_the_stuck_controller_pod_is_named_with_its_event() -> None:
    pod = drill_scenario.orchard_controller(NOW)
    found = stuck_on_docker_sock([pod], [_mount_event()])
    assert [(s.namespace, s.pod, s.deployment, s.volume) for s in found] == [
        ("orchard", drill_scenario.ORCHARD_POD, "orchard-controller", "docker-sock")
    ]
    assert found[0].describe().endswith(f"FailedMount (x1398): {drill_scenario.DOCKER_SOCK_MOUNT}")


def test_what_is_not_the_docker_sock_failure_is_not_reported() -> None:
    pod = drill_scenario.orchard_controller(NOW)
    # Another volume's FailedMount, or another reason, is someone else's problem.
    other = _mount_event('MountVolume.SetUp failed for volume "config" : configmap not found')
    assert stuck_on_docker_sock([pod], [other, _mount_event(reason="FailedScheduling")]) == []
    # The same Pod running (the volume mounted after all) is not stuck.
    running = copy.deepcopy(pod)
    running["status"]["phase"] = "Running"
    running["status"]["containerStatuses"][0]["state"] = {
        "running": {"startedAt": "2026-01-01T00:00:00Z"}
    }
    running["status"]["containerStatuses"][0]["ready"] = True
    assert stuck_on_docker_sock([running], [_mount_event()]) == []
    # Without the docker.sock volume the event cannot be about it.
    plain = copy.deepcopy(pod)
    plain["spec"]["volumes"] = plain["spec"]["volumes"][1:]
    assert stuck_on_docker_sock([plain], [_mount_event()]) == []


@pytest.fixture(name="cluster")
async def cluster_fixture(tmp_path: Path) -> AsyncIterator[LabCluster]:
    cluster = await start_lab_cluster(workdir=tmp_path / "kube", animate=False)
    try:
        yield cluster
    finally:
        await cluster.stop()


def _kube_context(cluster: LabCluster) -> Context:
    settings = Settings(kubeconfig=str(cluster.kubeconfig_path), kube_request_timeout=30)
    return Context(settings, Monitor(settings), Progress(io.StringIO(), 1))


async def test_the_lab_cluster_controller_pod_through_the_api(cluster: LabCluster) -> None:
    # The settled lab holds the drill scenario: the controller Pod as it sat for two days.
    outcome = await check_controller_pod(_kube_context(cluster))

    assert outcome.status is Status.FAIL
    assert outcome.reason.startswith(
        f"Pod orchard/{drill_scenario.ORCHARD_POD} stuck in ContainerCreating: FailedMount (x1398"
    ), outcome
    assert "docker.sock is not a socket file" in outcome.reason
    assert "does not need Docker" in outcome.hint and "remove" in outcome.hint
    assert "kubectl -n orchard edit deployment orchard-controller" in outcome.hint

    # Fixed (the Pod replaced by one without the volume, here: gone): nothing to say.
    for resource in (PODS, EVENTS):
        for obj in cluster.store.objects(resource, "orchard"):
            cluster.delete_object(resource, obj["metadata"]["name"], "orchard")
    outcome = await check_controller_pod(_kube_context(cluster))
    assert (outcome.status, outcome.reason) == (Status.SKIPPED, "no Pod in namespace 'orchard'")
