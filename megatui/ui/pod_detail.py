"""Pod detail (`Enter`/`d` on a pod): a `kubectl describe`-grade screen whose events
follow the namespace's events watch, newest first.

The Pod object is fetched once when the screen opens and again when the pod's row
changes in a snapshot; a pod that disappears keeps its last data under a
"deleted" line. `l` opens its logs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from megatui.api import MonitorAPI
from megatui.model import Pod, Snapshot
from megatui.ui import describe, render
from megatui.ui.footer import StableFooter
from megatui.ui.object_screen import ObjectScreen
from megatui.ui.panels import TextLine
from megatui.ui.render import literal


class PodDetailScreen(ObjectScreen):
    KIND = "pod"
    DEFAULT_CSS = """
    /* opaque: it covers the whole screen, so the one below is neither drawn nor dimmed */
    PodDetailScreen { align: center middle; background: $background; }
    #pod-detail {
        width: 100%; height: 1fr; border: round $accent; background: $surface; padding: 0 1;
    }
    #pod-detail .section { margin-top: 1; text-style: bold; color: $accent; }
    #pod-detail-head { height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "logs", "logs"),
        Binding("r", "reload", "reload"),
    ]

    def __init__(
        self, monitor: MonitorAPI, namespace: str, name: str, snapshot: Snapshot, now: float
    ) -> None:
        super().__init__(monitor, namespace, name)
        self.pod_name = name
        self._now = now
        self._row = self._find(snapshot)
        self.gone = False

    def _find(self, snapshot: Snapshot) -> Pod | None:
        return next(
            (p for p in snapshot.pods if p.name == self.pod_name and p.namespace == self.namespace),
            None,
        )

    # Laid out like the Application and node screens (ui/kube_detail.py), each with
    # its own sections: alike in shape only.
    def compose(self) -> ComposeResult:
        with Vertical(id="pod-detail") as box:
            box.border_title = Text(f"Pod {self.namespace}/{self.pod_name}")
            yield TextLine(id="pod-detail-head")
            with VerticalScroll(id="pod-detail-scroll"):
                yield Static(id="pod-summary")
                yield Static("Containers", classes="section")
                yield Static(id="pod-containers")
                yield Static("Conditions", classes="section")
                yield Static(id="pod-conditions")
                yield Static("Volumes", classes="section")
                yield Static(id="pod-volumes")
                yield Static("Events (newest first)", classes="section")
                yield Static(id="pod-events")
        yield StableFooter()

    def show_snapshot(self, snapshot: Snapshot, now: float) -> None:
        self._now = now
        row = self._find(snapshot)
        if row is None and self._row is not None:
            self.gone = True
        elif row is not None and row != self._row and self.loaded:
            self.load()  # its status moved: fetch the object again
        self._row = row
        self.draw()

    def _head(self) -> Text:
        if self.gone:
            return literal("deleted: the pod is gone; this is its last known state", render.BAD)
        if self.error:
            return literal(self.error, render.BAD)
        row = self._row
        if row is None:
            return literal("loading…", render.MUTED)
        parts: list[Any] = [("status ", render.MUTED), render.pod_status_cell(row)]
        parts += [
            ("  ready ", render.MUTED),
            row.ready,
            ("  restarts ", render.MUTED),
            row.restarts,
        ]
        if row.why:
            parts += [("  why ", render.MUTED), (row.why, render.WARN)]
        return Text.assemble(*parts, no_wrap=True, end="")

    def draw(self) -> None:
        if not self.drawable:
            return
        self.query_one("#pod-detail-head", TextLine).show(self._head())
        obj = self.obj
        if obj is not None:
            self.query_one("#pod-summary", Static).update(describe.pod_summary(obj))
            self.query_one("#pod-containers", Static).update(describe.containers(obj, self._now))
            self.query_one("#pod-conditions", Static).update(describe.conditions(obj, self._now))
            self.query_one("#pod-volumes", Static).update(describe.volumes(obj))
        uid = str((obj or {}).get("metadata", {}).get("uid") or "")
        problem = self.monitor.events_problem()
        events = self.monitor.pod_events(self.namespace, self.pod_name, uid)
        shown: Any = describe.events_table(events, self._now)
        if problem and not events:
            shown = literal(f"events unavailable: {problem}", render.BAD)
        self.query_one("#pod-events", Static).update(shown)

    def action_logs(self) -> None:
        from megatui.ui.logs import LogsScreen

        names = describe.container_names(self.obj) if self.obj else []
        self.app.push_screen(LogsScreen(self.monitor, self.namespace, self.pod_name, names))
