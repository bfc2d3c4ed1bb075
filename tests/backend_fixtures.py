"""One harness per VM backend, so the same conformance tests run against each:
local tart (the lab's fake tart and real SSH servers) and Orchard (the lab's fake
controller, its VMs real SSH servers behind the port-forward).

    from backend_fixtures import BackendCase, backend_case_fixture  # noqa: F401

    async def test_x(backend_case: BackendCase) -> None:
        backend = backend_case.backend
        await backend_case.settle(lambda vms: ...)   # moves time along for Orchard
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from lab_fixtures import FAST as TART_FAST
from orchard_fixtures import ADMIN, FAST, advance, validate_exchange

from megatui.backends.base import VMBackend
from megatui.backends.orchard import OrchardBackend
from megatui.backends.tart import TartBackend
from megatui.clock import FakeClock
from megatui.lab.orchard import FakeOrchard, Timings
from megatui.lab.tartlab import LabVMSpec, create_tart_lab
from megatui.model import BackendVM
from megatui.sources.orchard import NewVM, OrchardClient
from megatui.sources.orchard_config import OrchardConfig
from megatui.sources.ssh_probe import Credentials
from megatui.sources.tart import TartCLI
from megatui.transport import LocalTransport

IMAGE = "ghcr.io/cirruslabs/macos-tahoe-base:latest"
DEADLINE = 15.0


@dataclass
class BackendCase:
    kind: str
    backend: VMBackend
    #: A VM that runs and accepts logins, and one that is stopped.
    running: str
    stopped: str
    creds: Credentials
    ports: dict[str, int] = field(default_factory=dict)
    orchard: FakeOrchard | None = None

    def port(self, name: str) -> int:
        return self.ports.get(name, 22)

    async def settle(
        self, done: Callable[[list[BackendVM]], bool], timeout: float = DEADLINE
    ) -> list[BackendVM]:
        """List until `done`; for Orchard the fake clock moves a second each time."""
        deadline = time.monotonic() + timeout
        while True:
            vms = await self.backend.list_vms()
            if done(vms):
                return vms
            if time.monotonic() > deadline:
                pytest.fail(f"{self.kind}: no matching VM list within {timeout:g} s: {vms}")
            if self.orchard is not None:
                advance(self.orchard, 1.0)
                await asyncio.sleep(0)
            else:
                await asyncio.sleep(0.05)


def state_of(vms: list[BackendVM], name: str) -> BackendVM | None:
    return next((v for v in vms if v.name == name), None)


async def orchard_fleet(root: Path) -> FakeOrchard:
    lab = FakeOrchard(root, clock=FakeClock(), timings=Timings(**vars(FAST)), poll_interval=0.05)
    await lab.start()
    return lab


def orchard_backend(lab: FakeOrchard, account: tuple[str, str] = ADMIN) -> OrchardBackend:
    config = OrchardConfig(lab.url, account[0], account[1], lab.certificate_pem)
    return OrchardBackend(OrchardClient(config, timeout=5.0), clock=lab.clock)


async def _orchard_case(tmp_path: Path) -> AsyncIterator[BackendCase]:
    lab = await orchard_fleet(tmp_path / "orchard")
    backend = orchard_backend(lab)
    try:
        lab.add_worker("mini-1")
        client = backend.client
        for name in ("vm-run", "vm-stop"):
            await client.create_vm(NewVM(name, IMAGE, username="admin", password="admin"))
        advance(lab, 12)
        await client.set_power_state("vm-stop", "stopped")
        advance(lab, 3)
        yield BackendCase(
            "orchard",
            backend,
            "vm-run",
            "vm-stop",
            Credentials("admin", "admin", use_agent=False),
            orchard=lab,
        )
    finally:
        await backend.close()
        await lab.stop()
    for ex in lab.exchanges:
        validate_exchange(ex)


@pytest.fixture(name="backend_case", params=["tart", "orchard"])
async def backend_case_fixture(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[BackendCase]:
    if request.param == "orchard":
        async for case in _orchard_case(tmp_path):
            yield case
        return
    lab = create_tart_lab(
        tmp_path / "tart",
        [
            LabVMSpec("vm-run", initial="running", **TART_FAST),  # type: ignore[arg-type]
            LabVMSpec("vm-stop", **TART_FAST),  # type: ignore[arg-type]
        ],
        ip_retry_interval=0.1,
    )
    try:
        lab.start_running()
        backend = TartBackend(TartCLI(LocalTransport(), str(lab.tart_path), 5.0))
        yield BackendCase(
            "tart",
            backend,
            "vm-run",
            "vm-stop",
            Credentials("admin", "admin", use_agent=False),
            ports={name: lab.address(name)[1] for name in ("vm-run", "vm-stop")},
        )
        await backend.close()
    finally:
        lab.stop_all()
