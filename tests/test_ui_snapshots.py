"""SVG snapshots of the control room (pytest-textual-snapshot).

Deterministic by construction: a FakeClock and a FakeMonitor (no polling, no real
time anywhere on screen), UTC for the HH:MM:SS columns, animations off, no cursor
blink, no toasts, and an explicit terminal size. Regenerate with
`pytest tests/test_ui_snapshots.py --snapshot-update` and look at the report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest
from textual.command import CommandList, CommandPalette
from textual.pilot import Pilot
from textual.widgets import Input
from ui_fakes import NOW, make_app, sample_monitor, until, utc

from megatui.clock import FakeClock
from megatui.config import Settings
from megatui.ui.app import MegatuiApp
from megatui.ui.screens import ConfirmStopScreen, DetailScreen, HelpScreen
from megatui.ui.table import KeyedTable

SnapCompare = Callable[..., bool]
RunBefore = Callable[[Pilot[None]], Awaitable[None]]


@pytest.fixture(autouse=True)
def _utc() -> Iterator[None]:
    with utc():
        yield


def app_for(*, stale: bool = False, readonly: bool = False) -> MegatuiApp:
    clock = FakeClock(NOW)
    monitor = sample_monitor(NOW, stale=stale, clock=clock)
    return make_app(monitor, Settings(readonly=readonly), clock=clock)


def select(vm: str, *then: str) -> RunBefore:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.pause()
        pilot.app.query_one("#vm-table", KeyedTable).select_key(vm)
        for key in then:
            await pilot.press(key)
        await pilot.pause()

    return run_before


def test_main_160x48(snap_compare: SnapCompare) -> None:
    assert snap_compare(app_for(), terminal_size=(160, 48), run_before=select("dev-ready"))


def test_stale_source_and_error_160x48(snap_compare: SnapCompare) -> None:
    assert snap_compare(
        app_for(stale=True), terminal_size=(160, 48), run_before=select("gpu-error")
    )


def test_main_80x24(snap_compare: SnapCompare) -> None:
    assert snap_compare(app_for(), terminal_size=(80, 24), run_before=select("web-ip"))


def test_readonly_80x24(snap_compare: SnapCompare) -> None:
    assert snap_compare(app_for(readonly=True), terminal_size=(80, 24))


def test_detail_screen(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await select("dev-ready", "d")(pilot)
        await until(pilot, lambda: isinstance(pilot.app.screen, DetailScreen), "the detail")
        screen = pilot.app.screen
        assert isinstance(screen, DetailScreen)
        await until(pilot, lambda: screen.loaded, "tart get and the log")

    assert snap_compare(app_for(), terminal_size=(120, 40), run_before=run_before)


def test_stop_confirmation(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await select("db-ssh", "x")(pilot)
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmStopScreen), "dialog")

    assert snap_compare(app_for(), terminal_size=(120, 40), run_before=run_before)


def test_help_screen(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), "help")

    assert snap_compare(app_for(), terminal_size=(120, 40), run_before=run_before)


def test_detail_screen_80x24(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await select("dev-ready", "d")(pilot)
        await until(pilot, lambda: isinstance(pilot.app.screen, DetailScreen), "the detail")
        screen = pilot.app.screen
        assert isinstance(screen, DetailScreen)
        await until(pilot, lambda: screen.loaded, "tart get and the log")

    assert snap_compare(app_for(), terminal_size=(80, 24), run_before=run_before)


def test_stop_confirmation_80x24(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await select("db-ssh", "x")(pilot)
        await until(pilot, lambda: isinstance(pilot.app.screen, ConfirmStopScreen), "dialog")

    assert snap_compare(app_for(), terminal_size=(80, 24), run_before=run_before)


def test_help_screen_80x24_scrolled_to_the_end(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(pilot.app.screen, HelpScreen), "help")
        await pilot.press("end")
        await pilot.pause()

    assert snap_compare(app_for(), terminal_size=(80, 24), run_before=run_before)


def test_palette(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(pilot.app.screen, CommandPalette), "palette")
        pilot.app.screen.query_one(Input).cursor_blink = False
        await pilot.press(*"vm ci")
        commands = pilot.app.screen.query_one(CommandList)
        await until(pilot, lambda: commands.option_count >= 4, "hits")

    assert snap_compare(app_for(), terminal_size=(120, 40), run_before=run_before)


def test_filter_being_typed_80x24(snap_compare: SnapCompare) -> None:
    # The filter is typed into the panel's bottom border; the table shows what matches.
    assert snap_compare(
        app_for(), terminal_size=(80, 24), run_before=select("dev-ready", "slash", "c", "i")
    )
