"""Orchard as a VM backend: the mapping of every controller status onto states and
pre-boot stages, workers, recreate-on-start, the controller's refusals verbatim,
and the read-only reason of an account without compute:write."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from backend_fixtures import IMAGE, orchard_backend, orchard_fleet
from orchard_fixtures import advance, validate_exchange

from megatui.backends.base import BackendError, BackendErrorKind, NewVMSpec
from megatui.backends.orchard import (
    RECREATED_NOTE,
    OrchardBackend,
    recreate_body,
    usage_by_worker,
    vm_view,
    worker_view,
)
from megatui.lab.orchard import FakeOrchard
from megatui.lab.orchard.store import MSG_OFFLINE
from megatui.model import PreBootStage, TartState
from megatui.sources.orchard import NewVM
from megatui.sources.orchard_model import TART_VMS, OrchardWorker, parse_vm, parse_worker

NOW = 1_800_000_000.0


@pytest.fixture(name="fleet")
async def fleet_fixture(tmp_path: Path) -> AsyncIterator[FakeOrchard]:
    lab = await orchard_fleet(tmp_path / "orchard")
    try:
        yield lab
    finally:
        await lab.stop()
    for ex in lab.exchanges:
        validate_exchange(ex)


@pytest.fixture(name="backend")
async def backend_fixture(fleet: FakeOrchard) -> AsyncIterator[OrchardBackend]:
    backend = orchard_backend(fleet)
    try:
        yield backend
    finally:
        await backend.close()


def _vm(**fields: Any) -> dict[str, Any]:
    base = {
        "image": IMAGE,
        "status": "pending",
        "powerState": "running",
        "uid": "u-1",
        "restart_policy": "Never",
        "resources": {TART_VMS: 1},
        "name": "a",
    }
    return {**base, **fields}


def _worker(name: str, *, slots: int = 2, paused: bool = False) -> OrchardWorker:
    return parse_worker(
        {
            "name": name,
            "last_seen": "2027-01-15T08:00:00Z",
            "scheduling_paused": paused,
            "resources": {
                TART_VMS: slots,
                "org.cirruslabs.logical-cores": 8,
                "org.cirruslabs.memory-mib": 16384,
            },
        }
    )


def _view(workers: list[OrchardWorker], *vms: dict[str, Any], now: float | None = None) -> Any:
    parsed = [parse_vm(v) for v in vms]
    at = workers[0].last_seen if workers and now is None else (now or NOW)
    assert at is not None
    return vm_view(parsed[0], {w.name: w for w in workers}, usage_by_worker(parsed), at)


# ------------------------------------------------------------------ every status


def test_pending_unscheduled_is_scheduling_with_the_reason() -> None:
    assert _view([], _vm()).stage_message == "no worker has joined the controller"
    w = _worker("mini-1")
    seen = w.last_seen
    assert seen is not None
    view = _view([w], _vm(), now=seen + 181)
    assert (view.state, view.stage) == (TartState.RUNNING, PreBootStage.SCHEDULING)
    assert view.stage_message == "every worker is offline"
    assert _view([_worker("m", paused=True)], _vm()).stage_message == (
        "scheduling is paused on every online worker"
    )
    full = [
        _vm(),
        *(
            _vm(name=f"b{i}", status="running", worker="mini-1", uid=f"u{i}", assignedCPU=4)
            for i in range(2)
        ),
    ]
    view = _view([w], *full)
    assert view.stage is PreBootStage.SCHEDULING
    assert view.stage_message == "no worker has a free macOS VM slot (Apple allows 2 per Mac)"
    # A stopped VM holds no slot: the scheduler only has to come round.
    full[2]["powerState"] = "stopped"
    assert _view([w], *full).stage_message == "waiting for the scheduler"


@pytest.mark.parametrize(
    ("fields", "state", "stage", "message"),
    [
        (
            {"worker": "mini-1", "status_message": "pulling VM image..."},
            TartState.RUNNING,
            PreBootStage.PULLING,
            "pulling VM image...",
        ),
        (
            {"worker": "mini-1", "status_message": "cloning VM..."},
            TartState.RUNNING,
            PreBootStage.CLONING,
            "cloning VM...",
        ),
        (
            {"worker": "mini-1", "status_message": "configuring VM..."},
            TartState.RUNNING,
            PreBootStage.CLONING,
            "configuring VM...",
        ),
        (
            {"worker": "mini-1"},
            TartState.RUNNING,
            PreBootStage.SCHEDULING,
            "scheduled on mini-1, waiting for it to begin",
        ),
        (
            {"worker": "mini-1", "status": "running", "status_message": "VM started"},
            TartState.RUNNING,
            None,
            None,
        ),
        (
            {
                "worker": "mini-1",
                "status": "failed",
                "status_message": "VM failed: tart run exited\nexit status 1",
            },
            TartState.STOPPED,
            PreBootStage.FAILED,
            "VM failed: tart run exited",
        ),
        (
            {"worker": "mini-1", "status": "running", "powerState": "stopped"},
            TartState.STOPPED,
            None,
            None,
        ),
        (
            {
                "worker": "mini-1",
                "status": "running",
                "powerState": "suspended",
                "status_message": "Suspending VM",
            },
            TartState.SUSPENDED,
            None,
            None,
        ),
        (
            {"worker": "mini-1", "status": "hibernating"},
            TartState.RUNNING,
            PreBootStage.SCHEDULING,
            "controller status 'hibernating'",
        ),
    ],
)
def test_every_status_maps_to_a_state_and_stage(
    fields: dict[str, Any], state: TartState, stage: PreBootStage | None, message: str | None
) -> None:
    view = _view([_worker("mini-1")], _vm(**fields))
    assert (view.state, view.stage, view.stage_message) == (state, stage, message)
    assert (view.worker, view.uid, view.backend) == ("mini-1", "u-1", "orchard")
    assert not view.stale


def test_offline_worker_marks_its_vms_stale_with_the_controllers_words() -> None:
    w = _worker("mini-1")
    assert w.last_seen is not None
    later = w.last_seen + 200
    running = _vm(status="running", worker="mini-1", assignedCPU=4, assignedMemory=8192)
    assert _view([w], running, now=later).stale
    failed = parse_vm(_vm(name="f", status="failed", worker="mini-1", status_message=MSG_OFFLINE))
    view = worker_view(w, None, [failed], later)
    assert not view.online and view.failure == MSG_OFFLINE
    assert worker_view(w, None, [], later).failure == (
        "worker mini-1 is offline (not seen for over 3 minutes)"
    )


def test_recreate_body_is_the_spec_only() -> None:
    vm = parse_vm(
        _vm(
            status="running",
            worker="mini-1",
            localName="orchard-a-u-1-0",
            generation=3,
            cpu=6,
            labels={"team": "ci"},
        )
    )
    body = recreate_body(vm)
    assert body["cpu"] == 6 and body["labels"] == {"team": "ci"} and body["name"] == "a"
    assert not {"uid", "status", "worker", "localName", "generation", "powerState"} & set(body)


# ------------------------------------------------------------------ against the fake controller


async def test_workers_capacity_cpu_memory(fleet: FakeOrchard, backend: OrchardBackend) -> None:
    fleet.add_worker("mini-1", cores=10, memory_mib=32768)
    fleet.add_worker("mini-2", scheduling_paused=True)
    await backend.create(NewVMSpec("a", IMAGE, cpu=4, memory_mib=8192))
    await backend.create(NewVMSpec("b", IMAGE, cpu=2, memory_mib=4096))
    await backend.create(NewVMSpec("c", IMAGE))
    advance(fleet, 12)
    vms = {v.name: v for v in await backend.list_vms()}
    assert vms["a"].worker == vms["b"].worker == "mini-1"
    assert (vms["c"].stage, vms["c"].stage_message) == (
        PreBootStage.SCHEDULING,
        "no worker has a free macOS VM slot (Apple allows 2 per Mac)",
    )
    workers = {w.name: w for w in (await backend.workers() or [])}
    one = workers["mini-1"]
    assert (one.online, one.vms_running, one.vm_capacity) == (True, 2, 2)
    assert (one.cpu_used, one.cpu_total, one.memory_used_mib, one.memory_total_mib) == (
        6,
        10,
        12288,
        32768,
    )
    assert workers["mini-2"].scheduling_paused and workers["mini-2"].vms_running == 0
    # The worker goes silent: after the 3-minute rule its VMs fail, it is offline.
    fleet.worker_silent("mini-1")
    advance(fleet, 200, step=5)
    backend._fleet_at = None
    one = next(w for w in (await backend.workers() or []) if w.name == "mini-1")
    assert not one.online and one.failure == MSG_OFFLINE


async def test_every_list_asks_the_controller_even_if_the_clock_stood_still(
    fleet: FakeOrchard, backend: OrchardBackend
) -> None:
    """A list must never answer from the fetch before it: with a clock that did not
    move in between (the lab's, or a coarse one) `age <= 0` held and every later list
    returned the same old VMs (test_monitor_orchard's failed VM that never showed)."""
    fleet.add_worker("mini-1")
    await backend.create(NewVMSpec("a", IMAGE, restart_policy="Never"))
    advance(fleet, 60)
    before = {v.name: v for v in await backend.list_vms()}
    assert before["a"].stage is None, "running"
    fleet.fail_vm("a", "tart run exited with 1")  # the clock does not move
    after = {v.name: v for v in await backend.list_vms()}
    assert after["a"].stage is PreBootStage.FAILED


async def test_pulling_and_cloning_seen_through_the_backend(
    fleet: FakeOrchard, backend: OrchardBackend
) -> None:
    fleet.add_worker("mini-1")
    await backend.client.create_vm(NewVM("p", IMAGE, image_pull_policy="Always"))
    seen: list[PreBootStage | None] = []
    for _ in range(40):
        (vm,) = await backend.list_vms()
        if not seen or seen[-1] != vm.stage:
            seen.append(vm.stage)
        if vm.stage is None:
            break
        advance(fleet, 0.5)
    assert seen == [
        PreBootStage.SCHEDULING,
        PreBootStage.PULLING,
        PreBootStage.CLONING,
        None,
    ]


async def test_start_recreates_a_stopped_vm_with_a_new_uid(
    fleet: FakeOrchard, backend: OrchardBackend
) -> None:
    fleet.add_worker("mini-1")
    await backend.create(NewVMSpec("a", IMAGE, cpu=3, restart_policy="OnFailure"))
    advance(fleet, 12)
    (before,) = await backend.list_vms()
    await backend.stop("a")
    (stopped,) = await backend.list_vms()
    assert stopped.state is TartState.STOPPED and stopped.uid == before.uid
    assert await backend.start("a") == RECREATED_NOTE
    (after,) = await backend.list_vms()
    assert after.uid != before.uid and after.uid
    assert (after.state, after.stage) == (TartState.RUNNING, PreBootStage.SCHEDULING)
    assert after.restart_policy == "OnFailure"
    assert (await backend.details("a"))["cpu"] == 3
    # A failed VM is recreated the same way.
    fleet.add_worker("mini-2")
    advance(fleet, 12)
    fleet.fail_vm("a", "tart run exited")
    fleet.store.vms["a"].fields["restart_policy"] = "Never"
    (failed,) = await backend.list_vms()
    assert (failed.stage, failed.stage_message) == (
        PreBootStage.FAILED,
        "VM failed: tart run exited",
    )
    assert await backend.start("a") == RECREATED_NOTE


async def test_suspend_and_watch(fleet: FakeOrchard, backend: OrchardBackend) -> None:
    fleet.add_worker("mini-1")
    await backend.client.create_vm(NewVM("s", IMAGE))
    events: list[Any] = []

    async def follow() -> None:
        async for view in backend.watch("s"):
            events.append(view)
            if view is None or view.stage is None:
                return

    task = asyncio.create_task(follow())
    await fleet.wait_for_watch("s")
    advance(fleet, 12)
    async with asyncio.timeout(10):
        await task
    assert events[0].stage is PreBootStage.SCHEDULING and events[-1].stage is None
    with pytest.raises(BackendError) as caught:
        await backend.suspend("s")  # not created suspendable
    assert caught.value.kind is BackendErrorKind.REFUSED and caught.value.status == 412
    assert "suspendable" in str(caught.value)


async def test_refusals_reach_the_user_verbatim(
    fleet: FakeOrchard, backend: OrchardBackend
) -> None:
    fleet.add_worker("mini-1")
    await backend.create(NewVMSpec("a", IMAGE))
    with pytest.raises(BackendError) as caught:
        await backend.create(NewVMSpec("a", IMAGE))
    assert (caught.value.kind, caught.value.status) == (BackendErrorKind.CONFLICT, 409)
    assert "VM with this name already exists" in str(caught.value)
    with pytest.raises(BackendError) as caught:
        await backend.create(NewVMSpec("a b", IMAGE))
    assert (caught.value.kind, caught.value.status) == (BackendErrorKind.REFUSED, 412)
    assert "VM name name contains restricted characters, please only use [A-Za-z0-9:-_.]" in str(
        caught.value
    )
    advance(fleet, 12)
    fleet.fail_vm("a", "boom")
    with pytest.raises(BackendError) as caught:
        await backend.stop("a")
    assert "cannot update VM in a terminal state" in str(caught.value)
    assert caught.value.status == 412 and "\n" not in str(caught.value)


async def test_account_without_write_is_read_only(fleet: FakeOrchard) -> None:
    fleet.add_worker("mini-1")
    fleet.add_account("viewer", "viewer-token-123", ("compute:read", "compute:connect"))
    admin = orchard_backend(fleet)
    viewer = orchard_backend(fleet, ("viewer", "viewer-token-123"))
    try:
        assert await admin.readonly_reason() is None
        reason = await viewer.readonly_reason()
        assert reason == (
            "read-only: service account 'viewer': "
            "all of the following roles must be present: compute:write"
        )
        with pytest.raises(BackendError) as caught:
            await viewer.create(NewVMSpec("a", IMAGE))
        assert (caught.value.kind, caught.value.status) == (BackendErrorKind.UNAUTHORIZED, 401)
        assert "all of the following roles must be present: compute:write" in str(caught.value)
        assert "viewer-token-123" not in str(caught.value) and "\n" not in str(caught.value)
        assert await viewer.list_vms() == []  # reading still works
        # Learned from a refusal too, without asking first.
        fresh = orchard_backend(fleet, ("viewer", "viewer-token-123"))
        try:
            with pytest.raises(BackendError):
                await fresh.delete("a")
            assert await fresh.readonly_reason() == reason
        finally:
            await fresh.close()
        bad = orchard_backend(fleet, ("viewer", "wrong"))
        try:
            with pytest.raises(BackendError) as caught:
                await bad.readonly_reason()
            assert caught.value.kind is BackendErrorKind.UNAUTHORIZED
        finally:
            await bad.close()
    finally:
        await admin.close()
        await viewer.close()


async def test_unreachable_controller_is_one_line(tmp_path: Path) -> None:
    from megatui.sources.orchard import OrchardClient
    from megatui.sources.orchard_config import OrchardConfig

    backend = OrchardBackend(OrchardClient(OrchardConfig("http://127.0.0.1:9"), timeout=2.0))
    try:
        with pytest.raises(BackendError) as caught:
            await backend.list_vms()
        assert caught.value.kind is BackendErrorKind.UNREACHABLE
        assert "\n" not in str(caught.value)
    finally:
        await backend.close()


async def test_html_answer_is_bad_response(fleet: FakeOrchard, backend: OrchardBackend) -> None:
    fleet.answer_html(200)
    with pytest.raises(BackendError) as caught:
        await backend.list_vms()
    assert caught.value.kind is BackendErrorKind.BAD_RESPONSE
    fleet.answer_html(None)


def test_label_names_the_context(monkeypatch: pytest.MonkeyPatch) -> None:
    from megatui.sources.orchard import OrchardClient
    from megatui.sources.orchard_config import OrchardConfig

    monkeypatch.setattr("megatui.backends.orchard.shutil.which", lambda _name: "megatui")
    config = OrchardConfig("https://orchard.example:6120", "ci", "t0k", context="prod")
    backend = OrchardBackend(OrchardClient(config))
    assert backend.label == "orchard prod"
    command = backend.ssh_command("vm-1", None, 22)
    assert command.options == (
        "-o",
        "ProxyCommand=megatui orchard-proxy --orchard-context prod --service-account ci vm-1 22",
    )
    assert "t0k" not in " ".join(command.options)
