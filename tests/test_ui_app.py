"""Pilot tests of the control room: every key, screen and dialog, against FakeMonitor."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from textual import events
from textual.color import Color
from textual.command import CommandList, CommandPalette
from textual.widgets import Button, Footer
from ui_fakes import (
    HOST,
    NOW,
    FakeMonitor,
    make_app,
    record_notifications,
    sample_monitor,
    sample_snapshot,
    screen_text,
    until,
)
from ui_fixtures import app_fixture, clock_fixture, monitor_fixture, utc_fixture  # noqa: F401

from megatui.api import ActionError
from megatui.clock import FakeClock
from megatui.config import Settings
from megatui.model import Phase, SourceStatus
from megatui.ui.app import MegatuiApp
from megatui.ui.panels import ArgoPanel, EventsPanel, VMPanel
from megatui.ui.screens import (
    ConfirmStopScreen,
    DetailScreen,
    HelpScreen,
    SSHCommandScreen,
    WaitScreen,
)
from megatui.ui.table import KeyedTable

READY_SSH = f"ssh -J {HOST} admin@192.168.64.10"


def vm_table(app: MegatuiApp) -> KeyedTable:
    return app.query_one("#vm-table", KeyedTable)


def focused_id(app: MegatuiApp) -> str | None:
    return None if app.focused is None else app.focused.id


def command_shown(app: MegatuiApp) -> str:
    screen = app.screen
    assert isinstance(screen, SSHCommandScreen)
    return screen.command


def set_vm_phase(monitor: FakeMonitor, name: str, phase: Phase, ip: str | None = None) -> None:
    snap = monitor.snapshot
    vms = tuple(
        replace(vm, phase=phase, ip=ip or vm.ip, hint=None) if vm.name == name else vm
        for vm in snap.vms
    )
    monitor.push(replace(snap, vms=vms))


# --- lifecycle -----------------------------------------------------------------------


async def test_mount_shows_snapshot_and_starts_monitor(
    app: MegatuiApp, monitor: FakeMonitor
) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        # The monitor starts once the first frame is painted (call_after_refresh).
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert monitor.started
        assert monitor.subscriber_count == 1
        assert vm_table(app).keys == [vm.name for vm in monitor.snapshot.vms]
        assert app.focused is vm_table(app)
        text = screen_text(app)
        assert HOST in text and "kind-megalopolis" in text
        assert "6/7 components ready" in text
        await pilot.press("q")
    assert monitor.stopped
    assert monitor.subscriber_count == 0


async def test_q_quits(app: MegatuiApp) -> None:
    async with app.run_test() as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running


async def test_waiting_for_first_snapshot(clock: FakeClock) -> None:
    monitor = FakeMonitor(clock=clock)
    app = make_app(monitor, clock=clock)
    async with app.run_test(size=(160, 48)) as pilot:
        assert "waiting for data" in screen_text(app)
        assert "waiting for tart" in screen_text(app)
        monitor.push(sample_snapshot())
        await until(pilot, lambda: vm_table(app).row_count == 7, "the first snapshot")


# --- s: start --------------------------------------------------------------------------


async def test_s_starts_selected_vm(
    app: MegatuiApp, monitor: FakeMonitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app.run_test() as pilot:
        notes = record_notifications(app, monkeypatch)
        vm_table(app).select_key("builder-stopped")
        await pilot.press("s")
        await app.workers.wait_for_complete()
        assert ("start_vm", "builder-stopped") in monitor.calls
        assert "start requested for builder-stopped" in notes.messages()


async def test_z_suspends_the_selected_vm_and_not_a_stopped_one(
    app: MegatuiApp, monitor: FakeMonitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app.run_test() as pilot:
        notes = record_notifications(app, monkeypatch)
        vm_table(app).select_key("db-ssh")
        await pilot.press("z")
        await app.workers.wait_for_complete()
        assert ("suspend_vm", "db-ssh") in monitor.calls
        vm_table(app).select_key("builder-stopped")
        await pilot.press("z")
        await app.workers.wait_for_complete()
        assert ("suspend_vm", "builder-stopped") not in monitor.calls
        assert "builder-stopped is already stopped" in notes.messages("warning")


async def test_start_error_is_notified_and_app_keeps_running(
    app: MegatuiApp, monitor: FakeMonitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor.errors["start_vm"] = ActionError("tart: VM is locked")
    async with app.run_test() as pilot:
        notes = record_notifications(app, monkeypatch)
        vm_table(app).select_key("gpu-error")
        await pilot.press("s")
        await app.workers.wait_for_complete()
        assert notes.messages("error") == ["tart: VM is locked"]
        assert app.is_running


async def test_start_and_stop_say_when_there_is_nothing_to_do(
    app: MegatuiApp, monitor: FakeMonitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app.run_test() as pilot:
        notes = record_notifications(app, monkeypatch)
        vm_table(app).select_key("db-ssh")
        await pilot.press("s")
        vm_table(app).select_key("builder-stopped")
        await pilot.press("x")
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert notes.messages("warning") == [
            "db-ssh is already ssh-pending",
            "builder-stopped is already stopped",
        ]
        assert not monitor.calls
        assert not isinstance(app.screen, ConfirmStopScreen)


async def test_with_stale_tart_data_tart_decides(clock: FakeClock) -> None:
    monitor = sample_monitor(NOW, clock=clock)
    sources = dict(monitor.snapshot.sources)
    sources["tart"] = SourceStatus("tart", False, error="tart list timed out", updated_at=NOW)
    monitor.push(replace(monitor.snapshot, sources=sources))
    app = make_app(monitor, clock=clock)
    async with app.run_test() as pilot:
        vm_table(app).select_key("dev-ready")
        await pilot.press("s")
        await app.workers.wait_for_complete()
        assert monitor.calls == [("start_vm", "dev-ready")]


# --- x: stop ---------------------------------------------------------------------------


async def test_x_asks_and_cancel_is_the_default(app: MegatuiApp, monitor: FakeMonitor) -> None:
    async with app.run_test() as pilot:
        vm_table(app).select_key("db-ssh")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmStopScreen), "the dialog")
        assert isinstance(app.focused, Button) and app.focused.id == "cancel"
        assert "db-ssh" in screen_text(app)
        await pilot.press("enter")  # a stray enter presses the focused Cancel
        await until(pilot, lambda: not isinstance(app.screen, ConfirmStopScreen), "dismissal")
        await app.workers.wait_for_complete()
        assert ("stop_vm", "db-ssh") not in monitor.calls


async def test_x_escape_cancels(app: MegatuiApp, monitor: FakeMonitor) -> None:
    async with app.run_test() as pilot:
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmStopScreen), "the dialog")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ConfirmStopScreen), "dismissal")
        assert not [c for c in monitor.calls if c[0] == "stop_vm"]


async def test_x_confirmed_stops(app: MegatuiApp, monitor: FakeMonitor) -> None:
    async with app.run_test() as pilot:
        vm_table(app).select_key("db-ssh")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmStopScreen), "the dialog")
        await pilot.press("tab", "enter")  # move to "Stop VM", press it
        await until(pilot, lambda: ("stop_vm", "db-ssh") in monitor.calls, "stop_vm")


async def test_stop_error_is_notified(
    app: MegatuiApp, monitor: FakeMonitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor.errors["stop_vm"] = ActionError("tart stop timed out")
    async with app.run_test() as pilot:
        notes = record_notifications(app, monkeypatch)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmStopScreen), "the dialog")
        await pilot.click("#confirm")
        await until(pilot, lambda: bool(notes.messages("error")), "the error")
        assert notes.messages("error") == ["tart stop timed out"]


# --- read-only -------------------------------------------------------------------------


def footer_line(app: MegatuiApp) -> str:
    return screen_text(app).splitlines()[-1]


def footer_actions(app: MegatuiApp) -> set[str]:
    return {
        active.binding.action
        for active in app.screen.active_bindings.values()
        if active.binding.show and app.check_action(active.binding.action, ())
    }


async def test_readonly_hides_and_refuses_start_and_stop(
    monitor: FakeMonitor, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(monitor, Settings(readonly=True), clock=clock)
    async with app.run_test(size=(160, 48)) as pilot:
        notes = record_notifications(app, monkeypatch)
        await pilot.pause()
        assert "READ-ONLY" in screen_text(app)
        shown = footer_actions(app)
        assert "start_vm" not in shown and "stop_vm" not in shown
        assert "ssh" in shown
        await until(pilot, lambda: "ssh" in footer_line(app), "the footer")
        footer = footer_line(app)
        assert "start" not in footer and "stop" not in footer and "ssh" in footer
        vm_table(app).select_key("builder-stopped")
        await pilot.press("s", "x")
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert not isinstance(app.screen, ConfirmStopScreen)
        assert not [c for c in monitor.calls if c[0] in ("start_vm", "stop_vm")]
        # The palette and any other caller are refused too, not just the keys.
        app.action_start_vm("builder-stopped")
        app.action_stop_vm("dev-ready")
        await app.workers.wait_for_complete()
        assert not [c for c in monitor.calls if c[0] in ("start_vm", "stop_vm")]
        assert notes.messages("warning") == [
            "read-only mode: start is disabled",
            "read-only mode: stop is disabled",
        ]
        titles = [c.title for c in app.palette_commands()]
        assert not [t for t in titles if t.startswith(("Start", "Stop"))]


async def test_readonly_from_the_snapshot(app: MegatuiApp, monitor: FakeMonitor) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        assert "start_vm" in footer_actions(app)
        monitor.push(replace(monitor.snapshot, readonly=True))
        await until(pilot, lambda: "READ-ONLY" in screen_text(app), "the badge")
        assert "start_vm" not in footer_actions(app)
        await pilot.press("s")
        await app.workers.wait_for_complete()
        assert not monitor.calls


# --- enter: ssh ------------------------------------------------------------------------


async def test_enter_without_a_real_terminal_shows_the_command(app: MegatuiApp) -> None:
    # run_test's headless driver cannot suspend: the SuspendNotSupported path.
    async with app.run_test(size=(120, 40)) as pilot:
        vm_table(app).select_key("dev-ready")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, SSHCommandScreen), "the command")
        assert command_shown(app) == READY_SSH
        assert READY_SSH in screen_text(app)
        await pilot.click("#copy")
        assert app.clipboard == READY_SSH
        await until(pilot, lambda: not isinstance(app.screen, SSHCommandScreen), "dismissal")


@contextlib.contextmanager
def fake_suspend(entered: list[str]) -> Iterator[None]:
    entered.append("suspend")
    yield
    entered.append("resume")


async def test_enter_runs_ssh_inside_suspend(
    app: MegatuiApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered: list[str] = []
    calls: list[list[str]] = []

    def call(argv: list[str]) -> int:
        entered.append("ssh")
        calls.append(argv)
        return 0

    async with app.run_test() as pilot:
        notes = record_notifications(app, monkeypatch)
        monkeypatch.setattr(app, "suspend", lambda: fake_suspend(entered))
        monkeypatch.setattr(subprocess, "call", call)
        vm_table(app).select_key("dev-ready")
        await pilot.press("enter")
        await pilot.pause()
        assert entered == ["suspend", "ssh", "resume"]
        assert calls == [["ssh", "-J", HOST, "admin@192.168.64.10"]]
        assert not notes.seen


async def test_ssh_failure_inside_suspend_is_caught_and_resumes(
    app: MegatuiApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    # textual#6692: an exception escaping suspend() leaves the terminal dead.
    entered: list[str] = []

    def call(argv: list[str]) -> int:
        raise FileNotFoundError(2, "No such file or directory", "ssh")

    async with app.run_test() as pilot:
        notes = record_notifications(app, monkeypatch)
        monkeypatch.setattr(app, "suspend", lambda: fake_suspend(entered))
        monkeypatch.setattr(subprocess, "call", call)
        vm_table(app).select_key("dev-ready")
        await pilot.press("enter")
        await pilot.pause()
        assert entered == ["suspend", "resume"]
        assert notes.messages("error") == [
            "cannot run ssh: [Errno 2] No such file or directory: 'ssh'"
        ]
        assert app.is_running


async def test_ssh_nonzero_exit_is_reported(
    app: MegatuiApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app.run_test() as pilot:
        notes = record_notifications(app, monkeypatch)
        monkeypatch.setattr(app, "suspend", lambda: fake_suspend([]))
        monkeypatch.setattr(subprocess, "call", lambda argv: 255)
        await pilot.press("enter")
        await pilot.pause()
        assert notes.messages("warning") == ["ssh to dev-ready exited with status 255"]


async def test_enter_on_booting_vm_offers_to_wait_then_connects(
    app: MegatuiApp, monitor: FakeMonitor
) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        vm_table(app).select_key("db-ssh")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, WaitScreen), "the offer")
        wait = app.screen
        assert isinstance(wait, WaitScreen) and not wait.waiting
        assert isinstance(app.focused, Button) and app.focused.id == "wait"
        await pilot.press("enter")
        assert wait.waiting
        set_vm_phase(monitor, "db-ssh", Phase.IP)  # still not ready: keeps waiting
        await pilot.pause()
        assert app.screen is wait
        set_vm_phase(monitor, "db-ssh", Phase.READY)
        await until(pilot, lambda: isinstance(app.screen, SSHCommandScreen), "the connection")
        assert command_shown(app) == f"ssh -J {HOST} admin@192.168.64.12"


async def test_wait_can_be_cancelled(app: MegatuiApp, monitor: FakeMonitor) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        vm_table(app).select_key("ci-booting")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, WaitScreen), "the offer")
        await pilot.press("enter")  # wait
        await pilot.press("escape")  # ... and give up
        await until(pilot, lambda: not isinstance(app.screen, WaitScreen), "dismissal")
        set_vm_phase(monitor, "ci-booting", Phase.READY, ip="192.168.64.20")
        await pilot.pause()
        assert not isinstance(app.screen, SSHCommandScreen)


async def test_wait_gives_up_when_the_vm_fails(
    app: MegatuiApp, monitor: FakeMonitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        notes = record_notifications(app, monkeypatch)
        vm_table(app).select_key("ci-booting")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, WaitScreen), "the offer")
        await pilot.press("enter")
        set_vm_phase(monitor, "ci-booting", Phase.ERROR)
        await until(pilot, lambda: not isinstance(app.screen, WaitScreen), "giving up")
        assert notes.messages("error") == ["ci-booting: the VM is in error"]


async def test_enter_on_stopped_vm_explains(
    app: MegatuiApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app.run_test() as pilot:
        notes = record_notifications(app, monkeypatch)
        vm_table(app).select_key("builder-stopped")
        await pilot.press("enter")
        await pilot.pause()
        assert notes.messages("warning") == ["cannot ssh: builder-stopped is stopped"]
        assert not isinstance(app.screen, WaitScreen)


# --- c: copy ---------------------------------------------------------------------------


async def test_c_copies_the_ssh_command(app: MegatuiApp, monkeypatch: pytest.MonkeyPatch) -> None:
    async with app.run_test() as pilot:
        notes = record_notifications(app, monkeypatch)
        await pilot.press("c")
        assert app.clipboard == READY_SSH
        assert notes.messages() == [f"copied: {READY_SSH}"]


async def test_c_without_address_is_an_error(
    app: MegatuiApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app.run_test() as pilot:
        notes = record_notifications(app, monkeypatch)
        vm_table(app).select_key("ci-starting")
        await pilot.press("c")
        assert app.clipboard == ""
        assert notes.messages("error") == ["VM 'ci-starting' has no IP address yet"]


# --- d: detail -------------------------------------------------------------------------


async def test_d_opens_the_detail_screen(app: MegatuiApp, monitor: FakeMonitor) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        await until(pilot, lambda: detail.loaded, "tart get and the log")
        text = screen_text(app)
        assert "VM dev-ready" in text
        for phase in ("starting", "booting", "ip", "ssh-pending", "ready"):
            assert phase in text
        assert "1m21s" in text  # the booting span of the sample history
        assert "Memory" in text and "8192 MB" in text
        assert "dev-ready.log" in text
        # Only this run's part of the log: its marker, not the previous run's stop.
        assert detail.log_lines == ["--- megatui: tart run started 2026-05-28T19:22:00Z ---"]
        assert "Stopping VM" not in text
        assert ("vm_details", "dev-ready") in monitor.calls
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, DetailScreen), "closing")


async def test_detail_shows_errors_and_follows_snapshots(
    app: MegatuiApp, monitor: FakeMonitor
) -> None:
    monitor.errors["vm_details"] = ActionError("tart get: VM does not exist")
    async with app.run_test(size=(120, 40)) as pilot:
        vm_table(app).select_key("web-ip")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        await until(pilot, lambda: detail.loaded, "loading")
        text = screen_text(app)
        assert "tart get: VM does not exist" in text
        assert "no DHCP lease after 95 s" in text
        assert "(the log is empty)" in text
        set_vm_phase(monitor, "web-ip", Phase.SSH_PENDING, ip="192.168.64.30")
        await until(pilot, lambda: "192.168.64.30" in screen_text(app), "the new snapshot")


def test_log_lines_lose_terminal_escapes() -> None:
    from megatui.ui.screens import clean_log_line

    assert clean_log_line("\x1b[31mred\x1b[0m\tx\n") == "red    x"
    assert clean_log_line("\x1b]52;c;ZXZpbA==\x07ok") == "ok"
    assert clean_log_line("a\x07b\rc") == "abc"


# --- /: filter -------------------------------------------------------------------------


async def test_slash_filters_the_focused_panel(app: MegatuiApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        table = vm_table(app)
        panel = app.query_one(VMPanel)
        await pilot.press("slash")
        assert panel.editing_filter and focused_id(app) == "vm-table"
        assert panel.filter_line == "/  filter VMs by name · enter keeps · esc clears"
        # While the filter is typed, letters are text, not the app's keys (s starts, x
        # stops, q quits).
        await pilot.press("c", "i", "x", "s", "backspace", "backspace")
        assert table.keys == ["ci-booting", "ci-starting"]
        assert panel.filter_line == "/ci  · enter keeps · esc clears"
        assert app.is_running and not isinstance(app.screen, ConfirmStopScreen)
        await pilot.press("down")  # the arrows still move through what matches
        assert table.cursor_key == "ci-starting"
        await pilot.press("enter")
        assert not panel.editing_filter
        assert table.keys == ["ci-booting", "ci-starting"]  # the filter stays
        assert panel.filter_line == "filter: ci"
        await pilot.press("escape")
        assert len(table.keys) == 7
        assert panel.filter_line == ""


async def test_filter_escape_while_typing_drops_it(app: MegatuiApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(VMPanel)
        await pilot.press("slash", "d", "b", "escape")
        assert not panel.editing_filter and panel.filter_text == ""
        assert len(vm_table(app).keys) == 7


async def test_filter_text_is_never_markup(app: MegatuiApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(VMPanel)
        await pilot.press("slash", *"[b]", "enter")
        assert panel.filter_text == "[b]"
        assert panel.filter_line == "filter: [b]"  # shown as typed, never as markup
        assert vm_table(app).keys == []


async def test_filter_typing_ends_when_the_focus_leaves_the_panel(app: MegatuiApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(VMPanel)
        await pilot.press("slash", "c", "i", "tab")
        assert not panel.editing_filter and panel.filter_text == "ci"
        await pilot.press("s")  # a key again: starts nothing in the cluster panel
        assert focused_id(app) == "node-table"


async def test_filter_applies_to_argocd_when_focused(app: MegatuiApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("3", "slash")
        argo = app.query_one(ArgoPanel)
        assert argo.editing_filter and focused_id(app) == "pod-table"
        await pilot.press(*"dex")
        assert argo.query_one("#pod-table", KeyedTable).keys == [
            "argocd/argocd-dex-server-6f7c9b8d5-k9m2p"
        ]
        apps = argo.query_one("#app-table", KeyedTable)
        assert apps.keys == [] and apps.empty_text == "nothing matches “dex”"
        assert len(vm_table(app).keys) == 7  # other panels keep all rows


async def test_filter_takes_a_paste(app: MegatuiApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("slash")
        app.query_one(VMPanel).post_message(events.Paste("gpu\nsecond line"))
        await pilot.pause()
        assert vm_table(app).keys == ["gpu-error"]


# --- r, ?, q and navigation -----------------------------------------------------------


async def test_r_refreshes(app: MegatuiApp, monitor: FakeMonitor) -> None:
    async with app.run_test() as pilot:
        await pilot.press("r")
        assert monitor.calls == [("refresh",)]


async def test_question_mark_lists_the_keys(app: MegatuiApp) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        text = screen_text(app)
        for line in ("start the selected VM", "stop the selected VM", "poll every source now"):
            assert line in text
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "closing")


@pytest.mark.parametrize("width", [60, 80, 100, 160])
async def test_stop_dialog_keeps_30_s_on_one_line(app: MegatuiApp, width: int) -> None:
    async with app.run_test(size=(width, 30)) as pilot:
        vm_table(app).select_key("db-ssh")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmStopScreen), "the dialog")
        text = screen_text(app)
        assert " 30 s " in text, text


async def test_keys_typed_right_after_slash_all_reach_the_filter(app: MegatuiApp) -> None:
    from textual import events

    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        # As a terminal delivers them to a busy app: all queued before any is handled.
        for char in "/web":
            key = "slash" if char == "/" else char
            app.post_message(events.Key(key, char))
        await until(pilot, lambda: vm_table(app).row_count == 1, "the filter to apply")
        assert vm_table(app).cursor_key == "web-ip"
        # "/" typed into the open filter is text, not a second "open".
        app.post_message(events.Key("slash", "/"))
        await until(pilot, lambda: app.query_one(VMPanel).filter_text == "web/", "the slash")


async def test_the_footer_keeps_q_quit_across_resizes(app: MegatuiApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        for width, height in ((80, 24), (160, 48), (80, 24)):
            await pilot.resize_terminal(width, height)
            await until(pilot, lambda w=width: app.screen.size.width == w, "the resize")
            await pilot.pause()
            footer = screen_text(app).splitlines()[-1]
            assert "q quit" in footer and "^p palette" in footer, (width, footer)


async def test_help_scrolls_at_80x24(app: MegatuiApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        last = "escape closes this help"
        assert last not in screen_text(app)  # 24 rows are too few for every key
        await pilot.press("pagedown", "pagedown", "pagedown")
        await until(pilot, lambda: last in screen_text(app), "the end of the help")
        await pilot.press("home")
        await until(pilot, lambda: "start the selected VM" in screen_text(app), "its top")


async def test_detail_at_80x24_shows_all_of_tart_get_in_a_stable_order(
    app: MegatuiApp, monitor: FakeMonitor
) -> None:
    orders = []
    async with app.run_test(size=(80, 24)) as pilot:
        for reverse in (False, True):
            info = monitor.details["dev-ready"]
            # tart prints its JSON keys in a random order on every call.
            monitor.details["dev-ready"] = dict(sorted(info.items(), reverse=reverse))
            vm_table(app).select_key("dev-ready")
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
            detail = app.screen
            assert isinstance(detail, DetailScreen)
            await until(pilot, lambda d=detail: d.loaded, "tart get and the log")
            text = screen_text(app)
            for field in ("State", "OS", "CPU", "Memory", "Disk", "DiskFormat", "Size", "Display"):
                assert field in text, field
            assert "log · " in text and "tart run started" in text
            lines = [line for line in text.splitlines() if "running" in line or "GB" in line]
            orders.append(lines)
            await pilot.press("escape")
            await until(pilot, lambda: not isinstance(app.screen, DetailScreen), "closing")
    assert orders[0] == orders[1] and orders[0]


async def test_tab_and_numbers_move_between_panels(app: MegatuiApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        assert app.focused is vm_table(app)
        await pilot.press("2")
        assert app.focused is app.query_one("#node-table")
        await pilot.press("3")
        assert app.focused is app.query_one("#pod-table")
        await pilot.press("tab")
        assert app.focused is app.query_one("#app-table")
        await pilot.press("4")
        assert app.focused is app.query_one(EventsPanel).query_one(KeyedTable)
        await pilot.press("1")
        assert app.focused is vm_table(app)
        await pilot.press("tab")
        assert app.focused is app.query_one("#node-table")


async def test_keys_are_remappable(monitor: FakeMonitor, clock: FakeClock) -> None:
    app = make_app(monitor, Settings(keys={"start": "g", "quit": "ctrl+q"}), clock=clock)
    async with app.run_test() as pilot:
        vm_table(app).select_key("builder-stopped")
        await pilot.press("s")
        await app.workers.wait_for_complete()
        assert not monitor.calls
        await pilot.press("g")
        await app.workers.wait_for_complete()
        assert monitor.calls == [("start_vm", "builder-stopped")]
        assert ("g", "start the selected VM (tart run --no-graphics)") in app.key_help()
        await pilot.press("q")  # q is no longer quit
        await pilot.pause()
        assert app.is_running


# --- ctrl+p: palette -------------------------------------------------------------------


async def test_palette_runs_per_vm_commands(app: MegatuiApp, monitor: FakeMonitor) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"start vm builder")
        commands = app.screen.query_one(CommandList)
        await until(pilot, lambda: commands.option_count > 0, "hits")
        await pilot.press("enter")
        await until(pilot, lambda: ("start_vm", "builder-stopped") in monitor.calls, "start_vm")


async def test_palette_keeps_system_commands(app: MegatuiApp) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+p")
        await until(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        await pilot.press(*"theme")
        commands = app.screen.query_one(CommandList)
        await until(pilot, lambda: commands.option_count > 0, "hits")
        prompts = [
            str(commands.get_option_at_index(i).prompt) for i in range(commands.option_count)
        ]
        assert any("Theme" in p for p in prompts)


async def test_palette_commands_follow_the_phase(app: MegatuiApp) -> None:
    async with app.run_test():
        titles = {c.title for c in app.palette_commands()}
        assert {
            "Start VM builder-stopped",
            "Start VM gpu-error",
            "Stop VM dev-ready",
            "SSH to VM dev-ready",
            "SSH to VM db-ssh",
            "Wait for VM db-ssh",
            "Wait for VM ci-starting",
        } <= titles
        assert "Start VM dev-ready" not in titles
        assert "Stop VM builder-stopped" not in titles
        assert "Wait for VM dev-ready" not in titles


async def test_palette_wait_tells_when_ready(
    app: MegatuiApp, monitor: FakeMonitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        notes = record_notifications(app, monkeypatch)
        (wait,) = [c for c in app.palette_commands() if c.title == "Wait for VM ci-starting"]
        app.call_later(wait.run)
        await until(pilot, lambda: isinstance(app.screen, WaitScreen), "waiting")
        set_vm_phase(monitor, "ci-starting", Phase.READY, ip="192.168.64.40")
        await until(pilot, lambda: not isinstance(app.screen, WaitScreen), "ready")
        assert notes.messages() == ["ci-starting is ready"]
        assert not isinstance(app.screen, SSHCommandScreen)  # wait only tells


async def test_palette_ssh_goes_through_the_same_path(app: MegatuiApp) -> None:
    async with app.run_test(size=(120, 40)) as pilot:
        (ssh,) = [c for c in app.palette_commands() if c.title == "SSH to VM dev-ready"]
        vm_table(app).select_key("gpu-error")  # the palette names its VM itself
        app.call_later(ssh.run)
        await until(pilot, lambda: isinstance(app.screen, SSHCommandScreen), "the command")
        assert command_shown(app) == READY_SSH


# --- layout ----------------------------------------------------------------------------


async def test_80x24_shows_vm_panel_and_footer(app: MegatuiApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        vms = app.query_one(VMPanel)
        footer = app.query_one(Footer)
        assert footer.region.y == 23 and footer.region.height == 1
        assert vms.region.y == 1 and vms.region.bottom <= 23
        await until(pilot, lambda: "quit" in footer_line(app), "the footer")
        text = screen_text(app)
        assert "dev-ready" in text and "gpu-error" in text
        last = footer_line(app)
        for word in ("start", "stop", "ssh", "copy", "info", "filter", "refresh", "help", "quit"):
            assert word in last


async def test_160x48_shows_every_panel_at_once(app: MegatuiApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        for panel in app.panels:
            assert panel.region.height > 2
            assert panel.region.bottom <= 47
        assert "argocd-server-7d9b8c6f5-m2n4b" in screen_text(app)
        assert "platform-infra" in screen_text(app)


# --- themes ----------------------------------------------------------------------------


async def test_theme_is_saved_and_restored(
    monitor: FakeMonitor, clock: FakeClock, tmp_path: Path
) -> None:
    store = tmp_path / "state" / "theme"
    app = make_app(monitor, clock=clock, theme_store=store)
    async with app.run_test() as pilot:
        await pilot.pause()
        assert not store.exists()  # nothing chosen yet, nothing written
        app.theme = "dracula"
        await until(pilot, lambda: store.exists(), "the theme file")
    assert store.read_text().strip() == "dracula"
    again = make_app(FakeMonitor(clock=clock), clock=clock, theme_store=store)
    async with again.run_test():
        assert again.theme == "dracula"


async def test_configured_theme_wins_and_ansi_is_the_plain_terminal_theme(
    monitor: FakeMonitor, clock: FakeClock, tmp_path: Path
) -> None:
    store = tmp_path / "theme"
    store.write_text("dracula\n")
    app = make_app(monitor, Settings(theme="ansi"), clock=clock, theme_store=store)
    async with app.run_test():
        assert app.theme == "ansi-dark"
        assert app.current_theme.ansi


async def test_unknown_theme_warns_and_keeps_default(
    monitor: FakeMonitor, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(monitor, Settings(theme="no-such-theme"), clock=clock)
    seen: list[str] = []
    original = app.notify

    def notify(message: str, **kwargs: object) -> None:
        seen.append(message)
        original(message, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(app, "notify", notify)
    async with app.run_test():
        assert app.theme == "textual-dark"
        assert seen == ["unknown theme 'no-such-theme'; using textual-dark"]


async def test_focus_on_a_short_screen_scrolls_the_panel_into_view(app: MegatuiApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        body = app.query_one("#body")
        await pilot.press("4")
        events_table = app.query_one("#event-table", KeyedTable)
        assert app.focused is events_table
        assert body.scroll_y > 0
        await pilot.pause()
        assert app.screen.can_view_entire(events_table)
        await pilot.press("1")
        await pilot.pause()
        assert body.scroll_y == 0


async def test_a_number_key_moves_the_focus_at_once(app: MegatuiApp) -> None:
    # Not on a later callback (Widget.focus): a `/` handled right after `3` must open
    # the filter of panel 3, not of the panel the focus is leaving.
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        app.action_focus_panel(3)
        assert focused_id(app) == "pod-table"
        app.action_filter()
        assert app.query_one(ArgoPanel).editing_filter
        assert not app.query_one(VMPanel).editing_filter


async def test_the_focused_panel_border_follows_the_focus_and_the_theme(app: MegatuiApp) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        vms, argo = app.query_one(VMPanel), app.query_one(ArgoPanel)

        def accent() -> Color:
            return Color.parse(app.theme_variables["accent"])

        assert vms.styles.border_top[1] == accent()
        assert argo.styles.border_top[1] != accent()
        await pilot.press("3")
        assert argo.styles.border_top[1] == accent()
        assert vms.styles.border_top[1] != accent()
        before = accent()
        app.theme = "dracula"
        await pilot.pause()
        assert accent() != before and argo.styles.border_top[1] == accent()
