"""The TUI of a fleet (Orchard): workers, the fleet columns, stale VMs, the read-only
reason, create and delete. A tart session must look exactly as before: the main
screen snapshots of test_ui_snapshots.py are unchanged, and these tests check that
the fleet's widgets stay hidden and its columns absent there."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace

import pytest
from textual.pilot import Pilot
from textual.widgets import Button, Input
from ui_fakes import (
    LOST_WORKER,
    NOW,
    FakeMonitor,
    fleet_monitor,
    make_app,
    record_notifications,
    sample_fleet_snapshot,
    sample_monitor,
    sample_snapshot,
    screen_text,
    until,
    utc,
)

from megatui.api import ActionError
from megatui.clock import FakeClock
from megatui.config import Settings
from megatui.ui.app import MegatuiApp
from megatui.ui.panels import VMPanel
from megatui.ui.screens import DetailScreen
from megatui.ui.table import KeyedTable
from megatui.ui.vm_dialogs import ConfirmDeleteScreen, CreateVMScreen, parse_spec

SnapCompare = Callable[..., bool]
RunBefore = Callable[[Pilot[None]], Awaitable[None]]
NO_WRITE = "the service account lacks the compute:write role"


@pytest.fixture(autouse=True)
def _utc() -> Iterator[None]:
    with utc():
        yield


def fleet_app(readonly_reason: str | None = None) -> tuple[MegatuiApp, FakeMonitor]:
    clock = FakeClock(NOW)
    monitor = fleet_monitor(NOW, readonly_reason=readonly_reason, clock=clock)
    return make_app(monitor, Settings(), clock=clock), monitor


def select(vm: str, *then: str) -> RunBefore:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.pause()
        pilot.app.query_one("#vm-table", KeyedTable).select_key(vm)
        for key in then:
            await pilot.press(key)
        await pilot.pause()

    return run_before


def labels(table: KeyedTable) -> list[str]:
    return [column.label for column in table.columns]


# --- snapshots -----------------------------------------------------------------------


def test_fleet_160x48(snap_compare: SnapCompare) -> None:
    app, _ = fleet_app()
    assert snap_compare(app, terminal_size=(160, 48), run_before=select("old-ready"))


def test_fleet_80x24(snap_compare: SnapCompare) -> None:
    app, _ = fleet_app()
    assert snap_compare(app, terminal_size=(80, 24), run_before=select("queued"))


async def no_toasts(pilot: Pilot[None]) -> None:
    await pilot.pause()
    pilot.app.clear_notifications()  # the read-only reason, told once at the start
    await pilot.pause()


def test_fleet_readonly_reason_80x24(snap_compare: SnapCompare) -> None:
    # No room for the reason at 80 columns: the badge, the host and the age.
    app, _ = fleet_app(NO_WRITE)
    assert snap_compare(app, terminal_size=(80, 24), run_before=no_toasts)


def test_fleet_readonly_reason_160x48(snap_compare: SnapCompare) -> None:
    app, _ = fleet_app(NO_WRITE)
    assert snap_compare(app, terminal_size=(160, 48), run_before=no_toasts)


def test_create_dialog_with_a_bad_name_80x24(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.pause()
        await pilot.press("n")
        await until(pilot, lambda: isinstance(pilot.app.screen, CreateVMScreen), "the dialog")
        await pilot.press(*"ci/vm 1")
        await pilot.pause()

    app, _ = fleet_app()
    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_delete_confirmation_80x24(snap_compare: SnapCompare) -> None:
    app, _ = fleet_app()
    assert snap_compare(app, terminal_size=(80, 24), run_before=select("build-ready", "D"))


def test_fleet_detail_screen(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await select("build-ssh", "d")(pilot)
        await until(pilot, lambda: isinstance(pilot.app.screen, DetailScreen), "the detail")
        screen = pilot.app.screen
        assert isinstance(screen, DetailScreen)
        await until(pilot, lambda: screen.loaded, "the controller's object")

    app, _ = fleet_app()
    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


# --- what a fleet shows --------------------------------------------------------------


async def test_fleet_columns_and_workers_only_for_a_fleet() -> None:
    clock = FakeClock(NOW)
    monitor = sample_monitor(NOW, clock=clock)
    app = make_app(monitor, clock=clock)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        panel = app.query_one(VMPanel)
        assert labels(panel.table) == ["NAME", "PHASE", "PROGRESS", "IP", "STATE", "NOTE"]
        assert not panel.worker_table.display
        assert "Workers" not in screen_text(app)
        assert "1 VMs[" in str(panel.border_title)  # focused: in the accent colour

        monitor.push(sample_fleet_snapshot(NOW))
        await until(pilot, lambda: panel.worker_table.display, "the workers")
        assert "WORKER" in labels(panel.table) and "RESTARTS" in labels(panel.table)
        assert panel.worker_table.keys == ["mini-1", "mini-2", "mini-3"]
        assert "VMs · Workers" in str(panel.border_title)

        # Back to a session without workers: exactly the tart table again.
        monitor.push(sample_snapshot(NOW))
        await until(pilot, lambda: not panel.worker_table.display, "the workers to go")
        assert labels(panel.table) == ["NAME", "PHASE", "PROGRESS", "IP", "STATE", "NOTE"]
        assert panel.table.get_row("dev-ready")[3].plain == "192.168.64.10"


async def test_worker_cells() -> None:
    app, _ = fleet_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.query_one(VMPanel).worker_table
        full, paused, offline = (
            [cell.plain for cell in table.get_row(name)] for name in ("mini-1", "mini-2", "mini-3")
        )
        assert full[1:4] == ["● online", "2/2", "██████ 8/8"]
        assert full[4] == "████░░ 16/24 GiB"
        assert paused[1] == "● online, paused"
        assert paused[5] == "scheduling paused: takes no new VMs"
        assert offline[1] == "✗ offline"
        assert offline[5] == LOST_WORKER
        assert "red" in str(table.get_row("mini-3")[1].style)
        line = app.query_one("#worker-line").render()
        assert "Workers 2/3 online · 1 paused · VM slots 3/4" in str(line)


async def test_stale_vm_dimmed_with_the_reason_and_pre_boot_phases_move() -> None:
    app, _ = fleet_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        table = app.query_one(VMPanel).table
        stale = table.get_row("old-ready")
        assert all("dim" in str(cell.style) or cell.spans for cell in stale[:-1])
        assert stale[-1].plain == LOST_WORKER
        assert table.get_row("build-ssh")[4].plain == "2"
        for name in ("queued", "pull-image", "clone-vm"):
            progress = table.get_row(name)[2].plain
            assert ("░" in progress and "eta" in progress) or name == "queued", progress
        # The clock moves the time spent in a pre-boot phase, as in a boot phase.
        before = table.get_row("pull-image")[2].plain
        app.clock.advance(61)  # type: ignore[attr-defined]
        app.tick()
        await pilot.pause()
        assert table.get_row("pull-image")[2].plain != before
        table.select_key("old-ready")
        await pilot.pause()
        assert "(stale)" in screen_text(app) and LOST_WORKER in screen_text(app)


async def test_unchanged_fleet_snapshot_writes_nothing() -> None:
    """Keypress latency: a republished fleet costs no cell writes in either table."""
    app, monitor = fleet_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        panel = app.query_one(VMPanel)
        writes = panel.table.cell_writes, panel.worker_table.cell_writes
        monitor.push(sample_fleet_snapshot(NOW))
        await pilot.pause()
        assert (panel.table.cell_writes, panel.worker_table.cell_writes) == writes
        # One worker changes: only its cells are written.
        workers = sample_fleet_snapshot(NOW).workers
        changed = (replace(workers[0], vms_running=1), *workers[1:])
        monitor.push(replace(sample_fleet_snapshot(NOW), workers=changed))
        await pilot.pause()
        assert panel.worker_table.cell_writes == writes[1] + 1
        assert panel.table.cell_writes == writes[0]


async def test_tab_reaches_the_workers_and_filter_finds_vms_by_worker() -> None:
    app, _ = fleet_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        panel = app.query_one(VMPanel)
        assert app.focused is panel.table
        await pilot.press("tab")
        assert app.focused is panel.worker_table
        await pilot.press("2", "1")
        assert app.focused is panel.table
        await pilot.press("slash", *"mini-3", "enter")
        await pilot.pause()
        assert panel.table.keys == ["old-ready"]
        assert panel.worker_table.keys == ["mini-3"]


async def test_readonly_reason_in_header_and_create_delete_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, monitor = fleet_app(NO_WRITE)
    async with app.run_test(size=(160, 48)) as pilot:
        notes = record_notifications(app, monkeypatch)
        await pilot.pause()
        header = str(app.header.text)
        assert "READ-ONLY" in header and NO_WRITE in header
        for key in ("n", "D", "s", "x"):
            await pilot.press(key)
            await pilot.pause()
        assert not isinstance(app.screen, CreateVMScreen | ConfirmDeleteScreen)
        assert [c for c in monitor.calls if c[0] != "refresh"] == []
        # Hidden keys do nothing, as start and stop; the reason was told once.
        monitor.push(sample_fleet_snapshot(NOW, readonly_reason=NO_WRITE))
        await pilot.pause()
        assert notes.messages() == []
        help_rows = dict(app.key_help())
        assert (
            f"read-only ({NO_WRITE}): start, stop, create and delete are disabled"
            in (help_rows[""])
        )
        assert not any("create a VM" in what for what in help_rows.values())


# --- create and delete ------------------------------------------------------------


def test_parse_spec() -> None:
    spec = parse_spec(" ci-1 ", " img:latest ", "4", "8192", "OnFailure")
    assert not isinstance(spec, str)
    assert (spec.name, spec.image, spec.cpu, spec.memory_mib, spec.restart_policy) == (
        "ci-1",
        "img:latest",
        4,
        8192,
        "OnFailure",
    )
    defaults = parse_spec("ci-1", "img", "", "", "Never")
    assert not isinstance(defaults, str) and defaults.cpu is None and defaults.memory_mib is None
    assert parse_spec("ci-1", "", "", "", "Never") == "the image is empty"
    assert "CPU must be a whole number" in str(parse_spec("ci-1", "img", "0", "", "Never"))
    assert "memory (MiB)" in str(parse_spec("ci-1", "img", "", "-1", "Never"))


async def test_create_dialog_sends_the_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    app, monitor = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        notes = record_notifications(app, monkeypatch)
        await pilot.pause()
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, CreateVMScreen), "the dialog")
        screen = app.screen
        await pilot.press(*"bad name", "enter")
        await pilot.pause()
        assert app.screen is screen and monitor.created == []  # refused before sending
        assert "not ' '" in screen_text(app)
        screen.query_one("#vm-name", Input).value = "ci-7"
        screen.query_one("#vm-image", Input).value = "ghcr.io/cirruslabs/macos:latest"
        screen.query_one("#vm-cpu", Input).value = "4"
        screen.query_one("#vm-memory", Input).value = "8192"
        screen.query_one("#vm-restart").value = "OnFailure"  # type: ignore[attr-defined]
        await pilot.pause()
        screen.query_one("#create", Button).press()
        await until(pilot, lambda: bool(monitor.created), "create_vm")
        spec = monitor.created[0]
        assert (spec.name, spec.image, spec.cpu, spec.memory_mib, spec.restart_policy) == (
            "ci-7",
            "ghcr.io/cirruslabs/macos:latest",
            4,
            8192,
            "OnFailure",
        )
        await until(pilot, lambda: bool(notes.messages()), "the note")
        assert notes.messages() == ["create requested for ci-7"]


async def test_create_refusal_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    app, monitor = fleet_app()
    monitor.errors["create_vm"] = ActionError("VM with this name already exists")
    async with app.run_test(size=(120, 40)) as pilot:
        notes = record_notifications(app, monkeypatch)
        await pilot.pause()
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, CreateVMScreen), "the dialog")
        await pilot.press(*"build-ready", "tab", *"img", "enter")
        await until(pilot, lambda: bool(notes.messages("error")), "the refusal")
        assert notes.messages("error") == ["VM with this name already exists"]


async def test_create_escape_sends_nothing() -> None:
    app, monitor = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, CreateVMScreen), "the dialog")
        await pilot.press(*"ci-1", "escape")
        await until(pilot, lambda: not isinstance(app.screen, CreateVMScreen), "closed")
        assert monitor.created == []


async def test_delete_defaults_to_cancel_then_deletes() -> None:
    app, monitor = fleet_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.query_one(VMPanel).table.select_key("parked")
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDeleteScreen), "the dialog")
        assert "Delete VM parked on mini-2?" in screen_text(app)
        await pilot.press("enter")  # Cancel has the focus
        await until(pilot, lambda: not isinstance(app.screen, ConfirmDeleteScreen), "closed")
        assert ("delete_vm", "parked") not in monitor.calls
        await pilot.press("D")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDeleteScreen), "the dialog")
        app.screen.query_one("#confirm", Button).press()
        await until(pilot, lambda: ("delete_vm", "parked") in monitor.calls, "delete_vm")


async def test_start_note_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    app, monitor = fleet_app()
    monitor.start_note = "parked was re-created from its spec: a new machine (new uid)"
    async with app.run_test(size=(120, 40)) as pilot:
        notes = record_notifications(app, monkeypatch)
        await pilot.pause()
        app.query_one(VMPanel).table.select_key("parked")
        await pilot.press("s")
        await until(pilot, lambda: bool(notes.messages()), "the note")
        assert notes.messages() == [monitor.start_note]


async def test_detail_of_an_orchard_vm() -> None:
    app, _ = fleet_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        app.query_one(VMPanel).table.select_key("build-ssh")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        screen = app.screen
        assert isinstance(screen, DetailScreen)
        await until(pilot, lambda: screen.loaded, "loaded")
        await pilot.pause()
        text = screen_text(app)
        for fact in (
            "worker mini-1",
            "restart OnFailure, 2 restarts",
            "uid 5f0c7c1e-2b7a-4d0e-9a51-3c7d2f9e8b10",
            "image ghcr.io/cirruslabs/macos-sequoia-base:latest",
            "controller",
        ):
            assert fact in text, fact
        assert "localName" not in text and "tart get" not in text


async def test_readonly_reason_told_once(monkeypatch: pytest.MonkeyPatch) -> None:
    app, monitor = fleet_app()
    async with app.run_test(size=(80, 24)) as pilot:
        notes = record_notifications(app, monkeypatch)
        await pilot.pause()
        assert not app.readonly
        for _ in range(2):
            monitor.push(sample_fleet_snapshot(NOW, readonly_reason=NO_WRITE))
            await pilot.pause()
        assert app.readonly
        assert notes.messages("warning") == [f"read-only: {NO_WRITE}"]
        assert "READ-ONLY" in str(app.header.text)


async def test_a_failing_controller_is_named_orchard_not_tart() -> None:
    """The VMs' source is the controller's (model.vm_source): its failure and an empty
    fleet say "orchard"."""
    app, monitor = fleet_app()
    refused = "orchard lab: list VMs: 401 unauthorized"
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        snap = sample_fleet_snapshot(NOW)
        sources = dict(snap.sources)
        sources["orchard"] = replace(sources["orchard"], ok=False, error=refused)
        monitor.push(replace(snap, sources=sources))
        await until(pilot, lambda: refused in screen_text(app), "the controller's failure")
        text = screen_text(app)
        assert "orchard" in text.split(refused)[0].splitlines()[-1]
        assert not re.search(r"\btart\b", text), "the fleet's screen names no tart"
        monitor.push(replace(snap, vms=(), workers=()))
        await until(pilot, lambda: "no VMs: orchard list is empty" in screen_text(app), "empty")
