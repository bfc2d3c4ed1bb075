"""Doctor with an Orchard backend (`megatui doctor --orchard`): the VM checks read the
monitor's view of the controller's VMs (listed by the controller, booted and logged in
to through its WebSocket port-forward) and this Mac's tart is not asked at all. Against
the lab's fake controller with three workers whose VMs are real SSH servers."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from backend_fixtures import orchard_backend
from monitor_helpers import FAST_SETTINGS
from orchard_fixtures import ADMIN, FAST, advance

from megatui import vm_tracker
from megatui.clock import FakeClock
from megatui.config import Settings
from megatui.doctor import CHECKS, CheckResult, Context, Progress, Status, plan, run_checks
from megatui.doctor.checks import orchard as orchard_checks
from megatui.headless import orchard_config
from megatui.lab.orchard import FakeOrchard, Timings
from megatui.monitor import Monitor
from megatui.sources.orchard import NewVM
from megatui.sources.orchard_config import OrchardConfig

IMAGE = "ghcr.io/cirruslabs/macos-tahoe-base:latest"
VM_CHECKS = ("tart.installed", "tart.vms", "tart.vms-boot", "tart.ssh-logins")


@pytest.fixture(autouse=True)
def _fast_pace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vm_tracker, "CONTROLLER_MOVING_INTERVAL", 0.2)
    monkeypatch.setattr(vm_tracker, "CONTROLLER_SETTLED_INTERVAL", 0.5)
    monkeypatch.setattr(vm_tracker, "WATCH_RETRY", 0.1)


@pytest.fixture(name="fleet")
async def fleet_fixture(tmp_path: Path) -> AsyncIterator[FakeOrchard]:
    lab = FakeOrchard(
        tmp_path / "orchard", clock=FakeClock(), timings=Timings(**vars(FAST)), poll_interval=0.05
    )
    await lab.start()
    for worker in ("mini-1", "mini-2", "mini-3"):
        lab.add_worker(worker)
    try:
        yield lab
    finally:
        await lab.stop()


@contextlib.asynccontextmanager
async def clock_running(lab: FakeOrchard) -> AsyncIterator[None]:
    async def drive() -> None:
        while True:
            advance(lab, 0.5)
            await asyncio.sleep(0.02)

    task = asyncio.create_task(drive())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _doctor(lab: FakeOrchard, settings: Settings) -> dict[str, CheckResult]:
    """What `doctor.run` does, with the monitor on the fake controller's clock."""
    checks = [c for c in CHECKS if c.name in VM_CHECKS or c.name.startswith("orchard.")]
    checks = [c for c in checks if c.name != "orchard.controller-pod"]
    monitor = Monitor(
        settings, sources={"tart", "ssh"}, backend=orchard_backend(lab), clock=lab.clock
    )
    config = OrchardConfig(lab.url, ADMIN[0], ADMIN[1], lab.certificate_pem)
    ctx = Context(settings, monitor, Progress(io.StringIO(), len(checks)), orchard=config)
    await monitor.start()
    try:
        async with clock_running(lab):
            ctx.first_round = asyncio.create_task(monitor.wait_first_round(20))
            results = await run_checks(ctx, plan(settings, checks, fleet=True))
    finally:
        await orchard_checks.close(ctx)
        await monitor.stop()
    return {r.name: r for r in results}


def _settings(**overrides: object) -> Settings:
    base = Settings(ssh_user="admin", ssh_password="admin", ssh_agent=False, **FAST_SETTINGS)
    return replace(base, doctor_timeout=30.0, **overrides)


async def _create(lab: FakeOrchard, *names: str) -> None:
    backend = orchard_backend(lab)
    try:
        for name in names:
            await backend.client.create_vm(NewVM(name, IMAGE, username="admin", password="admin"))
    finally:
        await backend.close()


async def test_vm_checks_go_through_the_controller_and_skip_local_tart(
    fleet: FakeOrchard,
) -> None:
    await _create(fleet, "runner", "builder")

    results = await _doctor(fleet, _settings(doctor_vms=("runner", "builder")))

    installed = results["tart.installed"]
    assert installed.status is Status.SKIPPED
    assert installed.reason.startswith("VMs come from the Orchard controller (orchard ")
    assert "tart runs on its workers" in installed.reason
    assert results["tart.vms"].status is Status.PASS, results["tart.vms"]
    assert results["tart.vms"].reason == "all 2 configured VMs exist"
    assert results["tart.vms-boot"].reason == "2 running VMs reached SSH", results
    assert results["tart.ssh-logins"].reason == "2 VMs accept logins; host keys known"
    assert {results[n].status for n in results if n.startswith("orchard.")} == {Status.PASS}


async def test_a_missing_vm_says_how_to_create_it_on_the_controller(fleet: FakeOrchard) -> None:
    await _create(fleet, "runner")

    results = await _doctor(fleet, _settings(doctor_vms=("runner", "ghost")))

    missing = results["tart.vms"]
    assert missing.status is Status.FAIL
    assert missing.reason == "configured VMs missing: ghost"
    assert "megatui create" in missing.hint and "tart clone" not in missing.hint


async def test_without_the_controllers_credentials_the_vm_checks_are_skipped(
    fleet: FakeOrchard,
) -> None:
    checks = plan(_settings(), CHECKS, fleet=True)
    needs = {c.name: c.needs for c in checks}
    assert needs["tart.vms-boot"] == ("orchard.credentials",)
    assert needs["tart.ssh-logins"] == ("orchard.credentials",)
    # Without a controller nothing changes: the VM checks need a local tart.
    assert {c.name: c.needs for c in plan(_settings(), CHECKS)}["tart.vms"] == ("tart.installed",)


def test_doctor_resolves_the_controller_the_settings_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ORCHARD_HOME", str(tmp_path))
    for name in ("ORCHARD_URL", "ORCHARD_SERVICE_ACCOUNT_NAME", "ORCHARD_SERVICE_ACCOUNT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = replace(
        Settings(),
        orchard_url="http://127.0.0.1:6120",
        orchard_service_account="ci",
        orchard_token="ci-token",
    )
    config = orchard_config(settings)
    assert config is not None
    assert (config.base, config.service_account, config.token) == (
        "http://127.0.0.1:6120",
        "ci",
        "ci-token",
    )
    assert orchard_config(Settings()) is None
