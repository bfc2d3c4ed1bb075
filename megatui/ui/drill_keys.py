"""Which detail `Enter`/`d`/`l` open, by the focused table: a pod, an Application
or a node (issue #12). The app asks here first and falls back to its VM keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

from megatui.ui.heap import freeze_long_lived
from megatui.ui.table import KeyedTable

if TYPE_CHECKING:
    from megatui.ui.app import MegatuiApp


def _focused(app: MegatuiApp) -> tuple[str, str] | None:
    """(table id, row key) of the focused Kubernetes table's cursor row."""
    table = app.focused
    if not isinstance(table, KeyedTable) or table.id not in (
        "pod-table",
        "app-table",
        "node-table",
    ):
        return None
    key = table.cursor_key
    return (str(table.id), key) if key else None


def open_detail(app: MegatuiApp) -> bool:
    """Open the detail of the focused pod, Application or node; False if the focus
    is elsewhere (the VM keys apply)."""
    found = _focused(app)
    if found is None:
        return False
    table, key = found
    freeze_long_lived()
    from megatui.ui.object_screen import ObjectScreen, open_detail

    snap = app.snapshot
    screen: ObjectScreen
    if table == "pod-table":
        from megatui.ui.pod_detail import PodDetailScreen

        namespace, name = key.split("/", 1)
        screen = PodDetailScreen(app.monitor, namespace, name, snap, app.clock.now())
    elif table == "app-table":
        from megatui.ui.kube_detail import AppDetailScreen

        namespace, name = key.split("/", 1)
        screen = AppDetailScreen(app.monitor, namespace, name, snap)
    else:
        from megatui.ui.kube_detail import NodeDetailScreen

        screen = NodeDetailScreen(app.monitor, "", key, snap)
    open_detail(app, screen)
    return True


def open_logs(app: MegatuiApp) -> bool:
    found = _focused(app)
    if found is None or found[0] != "pod-table":
        app.notify("l shows the logs of the selected pod (ArgoCD panel)", timeout=3)
        return False
    from megatui.ui.logs import LogsScreen

    freeze_long_lived()
    namespace, name = found[1].split("/", 1)
    app.push_screen(LogsScreen(app.monitor, namespace, name, []))
    return True
