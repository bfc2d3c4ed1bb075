"""Live updates: keyed table diffs, the once-a-second tick, stale sources, outside text."""

from __future__ import annotations

from dataclasses import replace

import pytest
from ui_fakes import (
    DOCKER_ERROR,
    NOW,
    FakeMonitor,
    make_app,
    sample_events,
    sample_monitor,
    sample_snapshot,
    screen_text,
    until,
)
from ui_fixtures import app_fixture, clock_fixture, monitor_fixture, utc_fixture  # noqa: F401

from megatui.clock import FakeClock
from megatui.model import VM, Event, Phase, Pod, SourceStatus, TartState
from megatui.ui.app import MegatuiApp, SnapshotArrived
from megatui.ui.panels import ClusterPanel, TextLine, VMPanel
from megatui.ui.table import KeyedTable


def tables(app: MegatuiApp) -> dict[str, KeyedTable]:
    return {str(t.id): t for t in app.query(KeyedTable)}


def writes(app: MegatuiApp) -> dict[str, int]:
    return {name: t.cell_writes for name, t in tables(app).items()}


def no_clear(*args: object, **kwargs: object) -> None:
    raise AssertionError("a table was cleared and refilled")


# --- diffing ---------------------------------------------------------------------------


async def test_update_keeps_cursor_rows_and_untouched_cells(
    app: MegatuiApp, monitor: FakeMonitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        table = tables(app)["vm-table"]
        for t in tables(app).values():
            monkeypatch.setattr(t, "clear", no_clear)
        table.select_key("web-ip")
        await pilot.pause()
        assert table.cursor_row == 2
        db_cells = table.get_row("db-ssh")
        before = table.cell_writes

        snap = monitor.snapshot
        web = snap.vm("web-ip")
        assert web is not None
        vms = [vm for vm in snap.vms if vm.name != "dev-ready"]  # a row above the cursor goes
        vms[vms.index(web)] = replace(
            web, phase=Phase.SSH_PENDING, ip="192.168.64.15", progress=0.8, hint=None
        )
        vms.append(VM("new-vm", TartState.STOPPED, Phase.STOPPED, None, 0.0, NOW))
        monitor.push(replace(snap, vms=tuple(vms)))
        await pilot.pause()

        assert table.keys == [vm.name for vm in vms]
        assert table.cursor_key == "web-ip"  # the cursor followed its row
        assert table.cursor_row == 1
        assert all(a is b for a, b in zip(table.get_row("db-ssh"), db_cells, strict=True))
        # web-ip: phase, progress, ip and note changed; new-vm: a row of six cells.
        assert table.cell_writes - before == 4 + 6


async def test_unchanged_snapshot_writes_nothing(app: MegatuiApp, monitor: FakeMonitor) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        before = writes(app)
        lines = {str(line.id): line.writes for line in app.query(TextLine)}
        monitor.push(replace(monitor.snapshot))  # equal content, a new object
        await pilot.pause()
        assert writes(app) == before
        assert {str(line.id): line.writes for line in app.query(TextLine)} == lines


async def test_reordered_snapshot_moves_rows_without_rewriting(
    app: MegatuiApp, monitor: FakeMonitor
) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        table = tables(app)["vm-table"]
        table.select_key("gpu-error")
        before = table.cell_writes
        snap = monitor.snapshot
        monitor.push(replace(snap, vms=tuple(reversed(snap.vms))))
        await pilot.pause()
        assert table.keys == [vm.name for vm in reversed(snap.vms)]
        assert table.cursor_key == "gpu-error"
        assert table.cell_writes == before


async def test_snapshots_are_coalesced(app: MegatuiApp, monitor: FakeMonitor) -> None:
    async with app.run_test() as pilot:
        applied: list[float] = []
        original = app.apply_snapshot

        def spy(snapshot: object) -> None:
            applied.append(snapshot.generated_at)  # type: ignore[attr-defined]
            original(snapshot)  # type: ignore[arg-type]

        app.apply_snapshot = spy  # type: ignore[method-assign]
        for offset in (1, 2, 3):
            monitor.push(sample_snapshot(NOW + offset))
        await pilot.pause()
        assert applied == [NOW + 3]
        assert SnapshotArrived(monitor.snapshot).can_replace(SnapshotArrived(monitor.snapshot))


async def test_events_newest_first_and_appended_by_key(
    app: MegatuiApp, monitor: FakeMonitor
) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        table = tables(app)["event-table"]
        assert table.row_count == len(sample_events())
        first = table.keys
        events = [*sample_events(), Event(NOW + 1, "vm", "db-ssh", "ssh-pending → ready")]
        monitor.push(replace(monitor.snapshot, generated_at=NOW + 1), events)
        await pilot.pause()
        assert table.keys[1:] == first
        assert table.get_row(table.keys[0])[3].plain == "ssh-pending → ready"
        assert table.get_row(table.keys[0])[0].plain == "20:26:41"
        # The cursor was on the newest line, so it stays on the newest line...
        assert table.cursor_row == 0 and table.scroll_y == 0
        # ...but once the user moved to an older line, it stays on that line.
        table.cursor_row = 3
        picked = table.cursor_key
        events.append(Event(NOW + 2, "vm", "db-ssh", "ready → stopping"))
        monitor.push(replace(monitor.snapshot, generated_at=NOW + 2), events)
        await pilot.pause()
        assert table.cursor_key == picked and table.cursor_row == 4


# --- the clock tick ---------------------------------------------------------------------


async def test_tick_repaints_nothing_when_nothing_moves(
    app: MegatuiApp, monitor: FakeMonitor, clock: FakeClock
) -> None:
    calm = tuple(vm for vm in monitor.snapshot.vms if vm.phase in (Phase.READY, Phase.STOPPED))
    monitor.push(replace(monitor.snapshot, vms=calm))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        before = writes(app)
        vm_line = app.query_one("#vm-line", TextLine).writes
        clock.advance(5)
        app.tick()
        await pilot.pause()
        assert writes(app) == before
        assert app.query_one("#vm-line", TextLine).writes == vm_line
        assert "5 s ago" in app.header.text.plain  # only the age moved


async def test_tick_updates_only_the_running_phase_times(app: MegatuiApp, clock: FakeClock) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        before = writes(app)
        clock.advance(3)
        app.tick()
        await pilot.pause()
        after = writes(app)
        booting = 4  # ci-starting, ci-booting, web-ip, db-ssh
        assert after["vm-table"] - before["vm-table"] == booting
        assert {k: v for k, v in after.items() if k != "vm-table"} == {
            k: v for k, v in before.items() if k != "vm-table"
        }
        progress = tables(app)["vm-table"].get_row("ci-booting")[2].plain
        assert "48s" in progress  # 45 s in phase at the snapshot, plus 3


# --- stale sources -------------------------------------------------------------------


async def test_failing_source_keeps_data_dimmed_with_counters(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor = sample_monitor(NOW, stale=True, clock=clock)
    app = make_app(monitor, clock=clock)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        cluster = app.query_one(ClusterPanel)
        assert cluster.has_class("-stale")
        assert not app.query_one(VMPanel).has_class("-stale")
        line = cluster.query_one(".stale-line", TextLine)
        assert line.display
        assert line.text.plain == f"⚠ docker: {DOCKER_ERROR} · stale 42 s · retrying in 8 s"
        assert tables(app)["node-table"].row_count == 3  # the last data is still there
        assert "failing: docker" in app.header.text.plain

        clock.advance(5)
        monitor.retry["docker"] = 3.0
        app.tick()
        assert line.text.plain.endswith("stale 47 s · retrying in 3 s")

        recovered = dict(monitor.snapshot.sources)
        recovered["docker"] = SourceStatus("docker", True, updated_at=NOW + 5)
        monitor.push(replace(monitor.snapshot, sources=recovered))
        await until(pilot, lambda: not cluster.has_class("-stale"), "recovery")
        assert not line.display


async def test_app_survives_every_source_failing(app: MegatuiApp, monitor: FakeMonitor) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        down = {
            name: SourceStatus(name, False, error=f"{name} is down", updated_at=None)
            for name in ("tart", "ssh", "kubernetes", "applications", "docker")
        }
        monitor.push(replace(monitor.snapshot, sources=down))
        await pilot.pause()
        assert app.is_running
        text = screen_text(app)
        assert "⚠ tart: tart is down · no data yet" in text
        assert "⚠ kubernetes: kubernetes is down · no data yet" in text
        assert "⚠ applications: applications is down · no data yet" in text
        header = app.header.text.plain
        assert "no data" in header and "s ago" not in header, header


async def test_header_shows_the_age_of_the_oldest_data_when_every_source_fails(
    app: MegatuiApp, monitor: FakeMonitor, clock: FakeClock
) -> None:
    now = monitor.snapshot.generated_at
    async with app.run_test(size=(160, 48)) as pilot:
        down = {
            name: SourceStatus(name, False, error="down", updated_at=now - age)
            for name, age in (("tart", 40), ("docker", 90), ("kubernetes", 12))
        }
        # A fresh snapshot (generated now) whose data is old: not "updated (0 s ago)".
        monitor.push(replace(monitor.snapshot, sources=down, generated_at=now))
        await pilot.pause()
        header = app.header.text.plain
        assert "(90 s ago)" in header and "last data" in header, header
        assert "updated" not in header
        # One source back: the snapshot's own age again.
        down["tart"] = SourceStatus("tart", True, updated_at=now)
        monitor.push(replace(monitor.snapshot, sources=down, generated_at=now))
        await pilot.pause()
        assert "updated" in app.header.text.plain and "(0 s ago)" in app.header.text.plain


# --- outside text is never markup -----------------------------------------------------


BOLD = "[b]x[/b]"
CLICK = "[@click=app.quit]q[/]"


async def test_names_with_markup_render_literally(app: MegatuiApp, monitor: FakeMonitor) -> None:
    snap = monitor.snapshot
    vms = (
        VM(CLICK, TartState.RUNNING, Phase.READY, "10.0.0.9", 1.0, NOW),
        VM(BOLD, TartState.STOPPED, Phase.ERROR, None, 0.0, NOW, error="[red]boom[/red]"),
    )
    pods = (replace(snap.pods[0], name=BOLD),)
    monitor.push(replace(snap, vms=vms, pods=pods))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert CLICK in text and BOLD in text and "[red]boom[/red]" in text
        table = tables(app)["vm-table"]
        assert table.get_row(CLICK)[0].plain == CLICK
        assert not table.get_row(CLICK)[0].spans  # no link, no style from the name
        # Clicking the name must not run the action it spells.
        await pilot.click("#vm-table", offset=(4, 1))
        await pilot.pause()
        assert app.is_running
        titles = [c.title for c in app.palette_commands()]
        assert f"SSH to VM {CLICK}" in titles
        from textual.command import Matcher

        from megatui.ui.commands import highlight

        shown = highlight(Matcher("ssh"), f"SSH to VM {CLICK}")
        assert shown.plain == f"SSH to VM {CLICK}"


async def test_markup_in_a_pod_status_or_message_is_literal(
    app: MegatuiApp, monitor: FakeMonitor
) -> None:
    snap = monitor.snapshot
    pods: tuple[Pod, ...] = (replace(snap.pods[0], status="[i]Run[/i]"),)
    apps = (replace(snap.applications[0], message="[@click=app.quit]sync[/]"),)
    monitor.push(replace(snap, pods=pods, applications=apps))
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "[i]Run[/i]" in text
        assert "[@click=app.quit]sync[/]" in text


async def test_duplicate_names_do_not_break_the_table(
    app: MegatuiApp, monitor: FakeMonitor
) -> None:
    snap = monitor.snapshot
    twice = (snap.vms[0], replace(snap.vms[0], phase=Phase.ERROR), *snap.vms[1:])
    monitor.push(replace(snap, vms=twice))
    async with app.run_test() as pilot:
        await pilot.pause()
        assert tables(app)["vm-table"].keys == [vm.name for vm in snap.vms]
        assert app.is_running


async def test_notifications_show_names_literally(app: MegatuiApp, monitor: FakeMonitor) -> None:
    vm = VM(CLICK, TartState.RUNNING, Phase.READY, "10.0.0.9", 1.0, NOW)
    monitor.push(replace(monitor.snapshot, vms=(vm,)))
    async with app.run_test(size=(120, 40), notifications=True) as pilot:
        await pilot.press("s")  # a ready VM: "... is already ready"
        await until(pilot, lambda: "already ready" in screen_text(app), "the toast")
        assert f"{CLICK} is already ready" in screen_text(app)
        assert app.is_running


async def test_a_missing_applications_crd_is_said_calmly(
    app: MegatuiApp, monitor: FakeMonitor
) -> None:
    async with app.run_test(size=(160, 48)) as pilot:
        sources = dict(monitor.snapshot.sources)
        sources["applications"] = SourceStatus(
            "applications", True, updated_at=NOW, note="ArgoCD Applications CRD not installed"
        )
        monitor.push(replace(monitor.snapshot, sources=sources, applications=()))
        apps = tables(app)["app-table"]
        await until(pilot, lambda: apps.row_count == 0, "the Applications gone")
        assert apps.empty_text == "ArgoCD Applications CRD not installed"
        assert "ArgoCD Applications CRD not installed" in screen_text(app)
        assert "failing" not in app.header.text.plain  # nothing is broken
