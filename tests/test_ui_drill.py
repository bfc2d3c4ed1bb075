"""The drill-down screens with Pilot: pod detail, logs, Application and node detail,
and what they do with a deleted pod, forbidden logs or events, hostile log bytes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from drill_fakes import DEX, drill_monitor
from textual.pilot import Pilot
from ui_fakes import NOW, make_app, sample_monitor, screen_text, until, utc

from megatui.api import ActionError
from megatui.clock import FakeClock
from megatui.config import Settings
from megatui.ui.app import MegatuiApp
from megatui.ui.kube_detail import AppDetailScreen, NodeDetailScreen
from megatui.ui.logs import LogsScreen
from megatui.ui.pod_detail import PodDetailScreen
from megatui.ui.table import KeyedTable

SnapCompare = Callable[..., bool]
RunBefore = Callable[[Pilot[None]], Awaitable[None]]


@pytest.fixture(autouse=True)
def _utc() -> Iterator[None]:
    with utc():
        yield


def drill_app() -> MegatuiApp:
    clock = FakeClock(NOW)
    monitor = drill_monitor(sample_monitor(NOW, clock=clock))
    return make_app(monitor, Settings(), clock=clock)


async def focus_row(pilot: Pilot[None], table_id: str, key: str) -> None:
    await pilot.pause()
    table = pilot.app.query_one(f"#{table_id}", KeyedTable)
    table.focus()
    assert table.select_key(key), key
    await pilot.pause()


def open_pod(key: str = "d") -> RunBefore:
    async def run_before(pilot: Pilot[None]) -> None:
        await focus_row(pilot, "pod-table", f"argocd/{DEX}")
        await pilot.press(key)
        await until(pilot, lambda: isinstance(pilot.app.screen, PodDetailScreen), "pod detail")
        screen = pilot.app.screen
        assert isinstance(screen, PodDetailScreen)
        await until(pilot, lambda: screen.loaded, "the pod object")
        await pilot.pause()

    return run_before


def open_logs() -> RunBefore:
    async def run_before(pilot: Pilot[None]) -> None:
        await open_pod()(pilot)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(pilot.app.screen, LogsScreen), "the logs")
        screen = pilot.app.screen
        assert isinstance(screen, LogsScreen)
        await until(pilot, lambda: len(screen.buffer.lines) == 42, "the log lines")
        await pilot.pause()

    return run_before


def open_app(then: str = "") -> RunBefore:
    async def run_before(pilot: Pilot[None]) -> None:
        await focus_row(pilot, "app-table", "argocd/platform-infra")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(pilot.app.screen, AppDetailScreen), "app detail")
        screen = pilot.app.screen
        assert isinstance(screen, AppDetailScreen)
        await until(pilot, lambda: screen.loaded, "the Application")
        await pilot.pause()

    return run_before


def open_node() -> RunBefore:
    async def run_before(pilot: Pilot[None]) -> None:
        await focus_row(pilot, "node-table", "megalopolis-control-plane")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(pilot.app.screen, NodeDetailScreen), "node")
        screen = pilot.app.screen
        assert isinstance(screen, NodeDetailScreen)
        await until(pilot, lambda: screen.loaded, "the node")
        await pilot.pause()

    return run_before


# --------------------------------------------------------------------------- pilot


async def test_pod_row_shows_why_and_d_opens_a_describe_grade_detail() -> None:
    app = drill_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert "dex: Error, exit code 2: failed to initialize" in screen_text(app)
        await open_pod()(pilot)
        text = screen_text(app)
    for expected in (
        "megalopolis-worker",  # node
        "BestEffort",  # QoS
        "ReplicaSet/argocd-dex-server-6f7c9b8d5",  # owner
        "CrashLoopBackOff",
        "exit code 2",
        "kube-api-access",  # volumes
        "14s (x31 over 120m)",  # the BackOff folded, with its count
        "BackOff",
        "spec.containers{dex}: Back-off restarting failed container dex",
    ):
        assert expected in text, expected
    # Newest first.
    events = text[text.index("Events (newest first)") :]
    assert events.index("BackOff") < events.index("Started container") < events.index("assigned")


async def test_enter_on_a_pod_opens_its_detail_and_vm_keys_stay_out() -> None:
    app = drill_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await open_pod("enter")(pilot)
        for key in ("s", "x", "d", "c"):  # the main screen's VM keys
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, PodDetailScreen), key
    verbs = {c[0] for c in app.monitor.calls}  # type: ignore[attr-defined]
    assert not verbs & {"ssh_argv", "start_vm", "stop_vm", "vm_details"}


async def test_a_pod_deleted_while_its_detail_is_open_says_so() -> None:
    app = drill_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await open_pod()(pilot)
        monitor = app.monitor
        snap = monitor.snapshot
        gone = replace(snap, pods=tuple(p for p in snap.pods if p.name != DEX))
        monitor.push(gone)  # type: ignore[attr-defined]
        await until(pilot, lambda: "deleted" in screen_text(app), "the deleted line")
        assert "exit code 2" in screen_text(app)  # the last known state stays


async def test_forbidden_events_are_one_line_and_the_rest_works() -> None:
    app = drill_app()
    monitor = app.monitor
    monitor.kube_events.clear()  # type: ignore[attr-defined]
    monitor.events_error = (  # type: ignore[attr-defined]
        'forbidden (403): events is forbidden: User "dev" cannot list resource "events" '
        'in API group "" in the namespace "argocd"'
    )
    async with app.run_test(size=(160, 48)) as pilot:
        await open_pod()(pilot)
        text = screen_text(app)
    assert (
        'events unavailable: forbidden (403): events is forbidden: User "dev" cannot list' in text
    )
    assert "exit code 2" in text


async def test_logs_search_wrap_timestamps_save_and_close_cancels_the_follow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEGATUI_STATE_DIR", str(tmp_path / "state"))
    app = drill_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await open_logs()(pilot)
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        text = screen.view.text
        # Hostile bytes arrive inert: no ESC reaches the terminal.
        assert "\x1b" not in text and "\u241b[31mred" in text and "\ufffd" in text
        await pilot.press("slash", *"dex line 3", "enter")
        await until(pilot, lambda: bool(screen.matches), "matches")
        assert len(screen.matches) == 11  # 3, 30..39
        row = screen.view.current
        assert row is not None and "dex line 3" in screen.view.lines[row]
        await pilot.press("n")
        assert screen.view.current is not None and screen.view.current > row
        await pilot.press("N")
        assert screen.view.current == row
        await pilot.press("w")
        assert screen.view.wrap
        await pilot.press("t")
        assert screen.view.lines[0].startswith("2026-05-28T20:20:00.000000000Z")
        assert screen.view.current == row  # the match stays the current one
        await pilot.press("s")
        await until(pilot, lambda: screen.saved_to is not None, "the saved file")
        assert screen.saved_to is not None
        saved = screen.saved_to.read_text().splitlines()
        assert len(saved) == 42 and "saved to " in screen_text(app)
        assert screen.saved_to.parent == tmp_path / "state" / "pod-logs"
        follow = [w for w in app.workers if w.group == "logs-follow"]
        assert follow and follow[0].is_running
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, PodDetailScreen), "back to the pod")
        await until(pilot, lambda: not follow[0].is_running, "the follow cancelled")


async def test_logs_refusal_is_one_line() -> None:
    app = drill_app()
    app.monitor.errors["follow_pod_logs"] = ActionError(  # type: ignore[attr-defined]
        f'pods "{DEX}" is forbidden: User "dev" cannot get resource "pods/log" '
        'in API group "" in the namespace "argocd"'
    )
    async with app.run_test(size=(160, 48)) as pilot:
        await focus_row(pilot, "pod-table", f"argocd/{DEX}")
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen), "the logs")
        screen = app.screen
        assert isinstance(screen, LogsScreen)
        await until(pilot, lambda: screen.error is not None, "the refusal")
        assert 'cannot get resource "pods/log"' in screen_text(app)
    # Opened from the pods table, the screen read the pod's containers first and
    # asked for the first regular one, as kubectl does.
    calls = app.monitor.calls  # type: ignore[attr-defined]
    assert ("kube_object", "pod", "argocd", DEX) in calls
    assert ("follow_pod_logs", DEX, "dex", "") in calls


async def test_app_detail_orders_bad_resources_first_and_enter_opens_a_pod() -> None:
    app = drill_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await open_app()(pilot)
        screen = app.screen
        assert isinstance(screen, AppDetailScreen)
        table = screen.query_one("#app-resources", KeyedTable)
        assert [k.split("/")[0] for k in table.keys] == ["Deployment", "Pod", "Service"]
        text = screen_text(app)
        for expected in ("SyncError", "Failed", "retried 5 times", "exceeded its progress"):
            assert expected in text, expected
        table.select_key(f"Pod/argocd/{DEX}")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PodDetailScreen), "the pod")


async def test_node_detail_shows_conditions_capacity_versions_and_container() -> None:
    app = drill_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await open_node()(pilot)
        text = screen_text(app)
    lines = text.splitlines()
    for row in (("State", "running"), ("Exit code", "0"), ("Restarts", "1")):
        assert any(row[0] in line and row[1] in line.split(row[0], 1)[1] for line in lines), row
    for expected in (
        "MemoryPressure",
        "KubeletHasSufficientMemory",
        "ephemeral-storage",
        "containerd://1.7.1",
        "megalopolis-control-plane",
        "<none>",  # taints: kind removes the control-plane taint on one node
    ):
        assert expected in text, expected


def select_dex(pilot: Pilot[None]) -> Awaitable[None]:
    return focus_row(pilot, "pod-table", f"argocd/{DEX}")


async def test_narrow_screen_shows_the_selected_pods_why_under_the_table() -> None:
    app = drill_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3")
        await select_dex(pilot)
        table = app.query_one("#pod-table", KeyedTable)
        line = app.query_one("#pod-line")
        assert "note" not in [c.key for c in table.columns]
        assert line.display
        assert "failed to initialize storage" in line.render().plain
        # The line follows the cursor: a healthy pod says only its status.
        table.select_key(next(k for k in table.keys if "redis" in k))
        await until(pilot, lambda: "Running" in line.render().plain, "the redis line")
        assert "storage" not in line.render().plain
        # Wide again: the NOTE column is back and the line is gone.
        await pilot.resize_terminal(160, 48)
        await until(pilot, lambda: not line.display, "the line hidden")
        assert "note" in [c.key for c in table.columns]


async def test_wide_screen_keeps_the_note_column_and_no_line() -> None:
    app = drill_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await select_dex(pilot)
        assert "note" in [c.key for c in app.query_one("#pod-table", KeyedTable).columns]
        assert not app.query_one("#pod-line").display


# --------------------------------------------------------------------------- snapshots


def test_pods_why_line_snapshot_80x24(snap_compare: SnapCompare) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.press("3")
        await select_dex(pilot)

    assert snap_compare(drill_app(), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["160x48", "80x24"])
def test_pod_detail_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert snap_compare(drill_app(), terminal_size=size, run_before=open_pod())


@pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["160x48", "80x24"])
def test_logs_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await open_logs()(pilot)
        await pilot.press("slash", *"fatal", "enter")
        await pilot.pause()

    assert snap_compare(drill_app(), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["160x48", "80x24"])
def test_app_detail_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert snap_compare(drill_app(), terminal_size=size, run_before=open_app())


@pytest.mark.parametrize("size", [(160, 48), (80, 24)], ids=["160x48", "80x24"])
def test_node_detail_snapshot(snap_compare: SnapCompare, size: tuple[int, int]) -> None:
    assert snap_compare(drill_app(), terminal_size=size, run_before=open_node())
