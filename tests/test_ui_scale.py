"""Thousands of rows: a snapshot costs the rows that changed (ui/row_keeper.py), and
AGE texts still move when they are due."""

from __future__ import annotations

from dataclasses import replace

from textual.pilot import Pilot
from ui_fakes import FakeMonitor, make_app, sample_snapshot, until

from megatui.clock import FakeClock
from megatui.model import Application, Pod
from megatui.sources.kube_status import age
from megatui.ui.panels import ArgoPanel
from megatui.ui.table import KeyedTable

NOW = 1_750_000_000.0


def pods(count: int, created: float) -> tuple[Pod, ...]:
    return tuple(
        Pod(
            f"load-{i:05d}",
            "argocd",
            "1/1",
            "Running",
            "0",
            "kind-worker",
            created - 7 * i,
            running_ready=True,
        )
        for i in range(count)
    )


def due(pods: tuple[Pod, ...], before: float, after: float) -> int:
    """How many of the pods' AGE texts differ between the two times."""
    return sum(age(p.created, before) != age(p.created, after) for p in pods)


def apps(count: int) -> tuple[Application, ...]:
    return tuple(
        Application(f"app-{i:05d}", "argocd", "default", "Synced", "Healthy", "Succeeded", "")
        for i in range(count)
    )


async def drawn(pilot: Pilot[None], app_table: KeyedTable, want: int) -> None:
    await until(pilot, lambda: app_table.row_count == want, "the rows drawn")


async def test_a_few_changed_pods_rebuild_only_their_rows() -> None:
    clock = FakeClock(NOW)
    many = pods(2000, NOW - 3 * 3600)
    base = replace(sample_snapshot(NOW), pods=many, applications=apps(3000), generated_at=NOW)
    monitor = FakeMonitor(base, clock=clock)
    app = make_app(monitor, clock=clock)
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(ArgoPanel)
        pod_table = app.query_one("#pod-table", KeyedTable)
        app_table = app.query_one("#app-table", KeyedTable)
        await drawn(pilot, app_table, 3000)
        pods_built, apps_built = panel._pod_rows.built, panel._app_rows.built
        writes = pod_table.cell_writes + app_table.cell_writes

        # The same objects a second later: only the rows whose AGE text moved (ages
        # are by the minute here, 7 s apart: about one in nine), no Application.
        monitor.push(replace(base, generated_at=NOW + 1))
        await until(pilot, lambda: panel._pod_rows.built > pods_built, "the AGE texts that are due")
        aged = due(many, NOW, NOW + 1)
        assert 0 < aged < 100
        assert (panel._pod_rows.built, panel._app_rows.built) == (pods_built + aged, apps_built)
        pods_built = panel._pod_rows.built
        writes = pod_table.cell_writes + app_table.cell_writes

        # Five pods and one Application changed: those rows, those cells.
        changed = list(many)
        for i in (3, 500, 1000, 1500, 1999):
            changed[i] = replace(many[i], status="CrashLoopBackOff", ready="0/1")
        one_app = list(base.applications)
        one_app[2500] = replace(one_app[2500], health="Degraded")
        monitor.push(
            replace(base, pods=tuple(changed), applications=tuple(one_app), generated_at=NOW + 1)
        )
        await until(
            pilot,
            lambda: app_table.get_row("argocd/app-02500")[2].plain == "Degraded",
            "the change shown",
        )
        assert panel._pod_rows.built == pods_built + 5
        assert panel._app_rows.built == apps_built + 1
        # READY and STATUS of five pods, HEALTH of one Application.
        assert pod_table.cell_writes + app_table.cell_writes == writes + 5 * 2 + 1
        assert pod_table.get_row("argocd/load-01000")[2].plain.startswith("CrashLoopBackOff")


async def test_age_texts_move_when_due_and_only_those_rows_are_rebuilt() -> None:
    clock = FakeClock(NOW)
    young = Pod("young", "argocd", "1/1", "Running", "0", "kind-worker", NOW - 100)
    old = pods(50, NOW - 3 * 3600)
    base = replace(sample_snapshot(NOW), pods=(young, *old), generated_at=NOW)
    monitor = FakeMonitor(base, clock=clock)
    app = make_app(monitor, clock=clock)
    async with app.run_test(size=(160, 48)) as pilot:
        panel = app.query_one(ArgoPanel)
        table = app.query_one("#pod-table", KeyedTable)
        await until(pilot, lambda: table.row_count == 51, "the pods drawn")
        assert table.get_row("argocd/young")[4].plain == "100s"
        built = panel._pod_rows.built
        monitor.push(replace(base, generated_at=NOW + 1))
        await until(pilot, lambda: table.get_row("argocd/young")[4].plain == "101s", "AGE")
        assert panel._pod_rows.built == built + due(base.pods, NOW, NOW + 1)
        assert due(base.pods, NOW, NOW + 1) < 10  # the young one and a few old ones
        # A minute on, the old pods' "180m"-style texts are due as well.
        monitor.push(replace(base, generated_at=NOW + 61))
        await until(pilot, lambda: table.get_row("argocd/young")[4].plain == "2m41s", "AGE")
        assert table.get_row("argocd/load-00000")[4].plain == "3h1m"
