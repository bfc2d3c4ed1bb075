"""Fixtures for tests that need the simulated Tart host.

Use in a test module with `from lab_fixtures import tart_lab_fixture  # noqa: F401`,
then:

    def test_x(tart_lab: TartLabFactory) -> None:
        lab = tart_lab([LabVMSpec("alpha", initial="running", ip_after=0.3)])

Every lab made through the factory is stopped (every `tart run` killed and reaped)
when the test ends, whatever the outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

import pytest

from megatui.lab.tartlab import DEFAULT_OCI_IMAGES, LabVMSpec, TartLab, create_tart_lab

#: Short boot timelines for tests: IP, port and login each 0.3 s apart.
FAST = {"ip_after": 0.3, "port_after": 0.6, "login_after": 0.9}


class TartLabFactory(Protocol):
    def __call__(
        self,
        vms: Sequence[LabVMSpec],
        *,
        start: bool = True,
        oci_images: Iterable[str] = DEFAULT_OCI_IMAGES,
        ip_retry_interval: float = 0.1,
    ) -> TartLab: ...


def fast_vm(name: str, **overrides: object) -> LabVMSpec:
    """A LabVMSpec with the FAST timeline unless told otherwise."""
    values: dict[str, object] = {**FAST, **overrides}
    return LabVMSpec(name, **values)  # type: ignore[arg-type]


def wait_for(
    condition: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02, what: str = ""
) -> None:
    """Poll until condition() is true; fail the test after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or condition}")
        time.sleep(interval)


# Registered under the name "tart_lab" but defined as tart_lab_fixture, so that test
# modules can import it without their `tart_lab` parameters shadowing the import.
@pytest.fixture(name="tart_lab")
def tart_lab_fixture(tmp_path: Path) -> Iterator[TartLabFactory]:
    labs: list[TartLab] = []

    def make(
        vms: Sequence[LabVMSpec],
        *,
        start: bool = True,
        oci_images: Iterable[str] = DEFAULT_OCI_IMAGES,
        ip_retry_interval: float = 0.1,
    ) -> TartLab:
        root = tmp_path / f"lab{len(labs)}"
        lab = create_tart_lab(root, vms, oci_images=oci_images, ip_retry_interval=ip_retry_interval)
        labs.append(lab)
        if start:
            lab.start_running()
        return lab

    yield make
    for lab in labs:
        lab.stop_all()
