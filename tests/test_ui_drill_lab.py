"""The drill-down screens end to end: the real Monitor on the lab's API server."""

from __future__ import annotations

import gc
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from ui_fakes import screen_text, until

from megatui.config import Settings, load_settings
from megatui.lab.cluster import LabCluster, start_lab_cluster
from megatui.monitor import Monitor
from megatui.ui.app import MegatuiApp
from megatui.ui.kube_detail import AppDetailScreen
from megatui.ui.logs import LogsScreen
from megatui.ui.pod_detail import PodDetailScreen
from megatui.ui.table import KeyedTable

REPO = "argocd-repo-server-6c46b7867b-2x59w"


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[LabCluster]:
    cluster = await start_lab_cluster(tls=False, animate=False, workdir=tmp_path / "kube")
    try:
        yield cluster
    finally:
        await cluster.stop()


def settings_for(lab: LabCluster, tmp_path: Path) -> Settings:
    config = tmp_path / "megatui.toml"
    config.write_text(f'[kube]\nkubeconfig = "{lab.kubeconfig_path}"\n')
    return load_settings(config, environ={})


async def test_crash_loop_from_row_to_detail_to_logs(lab: LabCluster, tmp_path: Path) -> None:
    settings = settings_for(lab, tmp_path)
    monitor = Monitor(settings, sources={"kube"})
    app = MegatuiApp(monitor, settings)
    app.animation_level = "none"
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.query_one("#pod-table", KeyedTable)
        await until(pilot, lambda: f"argocd/{REPO}" in table.keys, "the pods")
        await until(
            pilot, lambda: "argocd-repo-server: Error, exit code 1" in screen_text(app), "WHY"
        )
        assert "BackOff (x2): Back-off restarting failed container" in screen_text(app)
        table.focus()
        table.select_key(f"argocd/{REPO}")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, PodDetailScreen), "the detail")
        detail = app.screen
        assert isinstance(detail, PodDetailScreen)
        await until(pilot, lambda: detail.obj is not None, "the pod object")
        await pilot.pause()
        text = screen_text(app)
        assert "Readiness probe failed: HTTP probe failed with statuscode: 503" in text
        assert "ReplicaSet/argocd-repo-server-6c46b7867b" in text
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LogsScreen), "the logs")
        logs = app.screen
        assert isinstance(logs, LogsScreen)
        await until(pilot, lambda: "level=fatal" in logs.view.text, "the crash's log")
        assert logs.container == "argocd-repo-server"
        await pilot.press("p")  # the previous run: in CrashLoopBackOff, the same run
        await until(pilot, lambda: logs.state == "previous run", "previous")
        await until(pilot, lambda: "level=fatal" in logs.view.text, "the previous log")
        await pilot.press("c")  # the init container
        await until(pilot, lambda: logs.container == "copyutil", "the init container")
        await until(pilot, lambda: logs.error is not None, "the API's refusal")
        assert logs.error == (f'previous terminated container "copyutil" in pod "{REPO}" not found')
        await pilot.press("escape", "escape")
        await until(pilot, lambda: not isinstance(app.screen, PodDetailScreen), "closed")


async def test_application_detail_to_its_pod(lab: LabCluster, tmp_path: Path) -> None:
    settings = settings_for(lab, tmp_path)
    monitor = Monitor(settings, sources={"kube"})
    app = MegatuiApp(monitor, settings)
    app.animation_level = "none"
    async with app.run_test(size=(160, 48)) as pilot:
        apps = app.query_one("#app-table", KeyedTable)
        await until(pilot, lambda: "argocd/helm-guestbook" in apps.keys, "the apps")
        apps.focus()
        apps.select_key("argocd/helm-guestbook")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, AppDetailScreen), "app detail")
        screen = app.screen
        assert isinstance(screen, AppDetailScreen)
        await until(pilot, lambda: screen.obj is not None, "the Application")
        await pilot.pause()
        resources = screen.query_one("#app-resources", KeyedTable)
        assert resources.keys[0].startswith("Deployment/")  # Degraded and OutOfSync first
        assert "SyncError" in screen_text(app)
        resources.select_key(f"Pod/argocd/{REPO}")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PodDetailScreen), "the pod")


async def test_closed_detail_and_logs_screens_are_freed(lab: LabCluster, tmp_path: Path) -> None:
    """Opening and closing a pod's detail and its logs leaves nothing of them alive.

    Two leaks made the heap (and so the full GC pauses) grow with every open: the
    API client's pooled connection kept the context of the screen worker that
    opened it (the Worker, so the screen), and Textual's style cache (an
    `lru_cache` on a method) kept every closed widget's drawn lines.
    """
    settings = settings_for(lab, tmp_path)
    monitor = Monitor(settings, sources={"kube"})
    app = MegatuiApp(monitor, settings)
    app.animation_level = "none"
    screens: list[weakref.ref[object]] = []
    caches: list[weakref.ref[object]] = []

    def remember(screen: object) -> None:
        assert isinstance(screen, PodDetailScreen | LogsScreen)
        screens.append(weakref.ref(screen))
        caches.extend(weakref.ref(w._styles_cache) for w in screen.walk_children(with_self=True))

    async with app.run_test(size=(160, 48)) as pilot:
        table = app.query_one("#pod-table", KeyedTable)
        await until(pilot, lambda: f"argocd/{REPO}" in table.keys, "the pods")
        for _ in range(3):
            table.focus()
            table.select_key(f"argocd/{REPO}")
            await pilot.press("d")
            await until(
                pilot,
                lambda: isinstance(app.screen, PodDetailScreen) and app.screen.obj is not None,
                "the detail with its pod",
            )
            await pilot.pause()
            remember(app.screen)
            await pilot.press("l")
            await until(
                pilot,
                lambda: (
                    isinstance(app.screen, LogsScreen) and "level=fatal" in app.screen.view.text
                ),
                "the logs",
            )
            await pilot.pause()
            remember(app.screen)
            await pilot.press("escape", "escape")
            await until(
                pilot,
                lambda: not isinstance(app.screen, PodDetailScreen | LogsScreen),
                "both closed",
            )
        await pilot.pause()
        gc.collect()
        alive = [type(s).__name__ for s in (ref() for ref in screens) if s is not None]
        assert alive == []
        kept = sum(ref() is not None for ref in caches)
        assert kept == 0, f"{kept} of {len(caches)} closed widgets' line caches kept"
