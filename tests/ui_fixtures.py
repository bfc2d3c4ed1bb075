"""Pytest fixtures shared by the pilot tests: a frozen UTC clock, the sample monitor
and the app on it.

Import them with `from ui_fixtures import app_fixture, clock_fixture, monitor_fixture,
utc_fixture  # noqa: F401`; they are registered under the names `app`, `clock`,
`monitor` and `_utc`, so test parameters do not shadow the imports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ui_fakes import NOW, FakeMonitor, make_app, sample_monitor, utc

from megatui.clock import FakeClock
from megatui.ui.app import MegatuiApp


@pytest.fixture(name="_utc", autouse=True)
def utc_fixture() -> Iterator[None]:
    with utc():
        yield


@pytest.fixture(name="clock")
def clock_fixture() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture(name="monitor")
def monitor_fixture(clock: FakeClock) -> FakeMonitor:
    return sample_monitor(NOW, clock=clock)


@pytest.fixture(name="app")
def app_fixture(monitor: FakeMonitor, clock: FakeClock) -> MegatuiApp:
    return make_app(monitor, clock=clock)
