"""Application detail and node detail screens (issue #12 items 4 and 5).

Application: sync and revision, health, conditions, the last operation, and the
resource tree from `status.resources`, unhealthy and out-of-sync first; `Enter`
on a Pod of the watched namespace opens its pod detail. Node: conditions with
their messages, capacity and allocatable, versions, taints, and the Kind
container behind it as Docker reports it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from megatui.api import MonitorAPI
from megatui.model import Snapshot
from megatui.sources.pod_why import one_line
from megatui.ui import describe, render
from megatui.ui.footer import StableFooter
from megatui.ui.object_screen import ObjectScreen, open_detail
from megatui.ui.panels import TextLine
from megatui.ui.render import literal
from megatui.ui.table import Column, KeyedTable, Row

JSON = dict[str, Any]

_CSS = """
    /* opaque: it covers the whole screen, so the one below is neither drawn nor dimmed */
    %s { align: center middle; background: $background; }
    .kube-detail {
        width: 100%%; height: 1fr; border: round $accent; background: $surface; padding: 0 1;
    }
    .kube-detail .section { margin-top: 1; text-style: bold; color: $accent; }
    .kube-detail TextLine { height: auto; }
    .kube-detail VerticalScroll { height: auto; max-height: 60%%; }
    .kube-detail KeyedTable { height: 1fr; }
    .kube-detail #node-scroll { height: 1fr; max-height: 100%%; }
"""


class _SnapshotScreen(ObjectScreen):
    """An Application's or a node's detail: the object, with the snapshot's view of it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "reload", "reload")]

    def __init__(self, monitor: MonitorAPI, namespace: str, name: str, snapshot: Snapshot) -> None:
        super().__init__(monitor, namespace, name)
        self.snapshot = snapshot

    def show_snapshot(self, snapshot: Snapshot, now: float) -> None:
        self.snapshot = snapshot

    def head(self) -> Text:
        if self.error:
            return literal(self.error, render.BAD)
        return literal("loading…" if self.obj is None else "", render.MUTED)


class AppDetailScreen(_SnapshotScreen):
    KIND = "application"
    DEFAULT_CSS = _CSS % "AppDetailScreen"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "open pod"),
    ]
    COLUMNS = (
        Column("kind", "KIND", 14),
        Column("name", "NAMESPACE/NAME", 44),
        Column("sync", "SYNC", 10),
        Column("health", "HEALTH", 12),
        Column("message", "MESSAGE", 70),
    )

    # Laid out like the pod screen (ui/pod_detail.py), with its own sections.
    def compose(self) -> ComposeResult:
        with Vertical(classes="kube-detail") as box:
            box.border_title = Text(f"Application {self.namespace}/{self.obj_name}")
            yield TextLine(id="app-head")
            with VerticalScroll():
                yield Static(id="app-summary")
                yield Static("Conditions", classes="section")
                yield Static(id="app-conditions")
                yield Static("Last operation", classes="section")
                yield Static(id="app-operation")
                yield Static("Resources (unhealthy and out of sync first)", classes="section")
            yield KeyedTable(self.COLUMNS, id="app-resources")
        yield StableFooter()

    def draw(self) -> None:
        if not self.drawable:
            return
        self.query_one("#app-head", TextLine).show(self.head())
        app = self.obj
        if app is None:
            return
        now = self.snapshot.generated_at
        self.query_one("#app-summary", Static).update(describe.app_summary(app, now))
        self.query_one("#app-conditions", Static).update(describe.app_conditions(app, now))
        self.query_one("#app-operation", Static).update(describe.last_operation(app, now))
        rows = []
        for r in describe.resource_rows(app):
            key = f"{r['kind']}/{r['namespace']}/{r['name']}"
            health = r["health"]
            rows.append(
                Row(
                    key,
                    (
                        literal(r["kind"], "bold" if r["kind"] == "Pod" else ""),
                        literal(f"{r['namespace']}/{r['name']}"),
                        literal(r["sync"], render.SYNC_STYLE.get(r["sync"], "")),
                        literal(health or "-", render.HEALTH_STYLE.get(health, render.MUTED)),
                        literal(one_line(r["message"]), render.MUTED),
                    ),
                )
            )
        table = self.query_one("#app-resources", KeyedTable)
        table.sync(rows)
        table.focus()

    def action_open(self) -> None:
        key = self.query_one("#app-resources", KeyedTable).cursor_key
        if key is None:
            return
        kind, namespace, name = key.split("/", 2)
        if kind != "Pod":
            self.notify(f"{kind} has no detail here; Enter opens Pods", timeout=3)
            return
        if not any(p.namespace == namespace for p in self.snapshot.pods):
            self.notify(f"namespace {namespace} is not watched", severity="warning", timeout=3)
            return
        from megatui.ui.pod_detail import PodDetailScreen

        screen = PodDetailScreen(
            self.monitor, namespace, name, self.snapshot, self.snapshot.generated_at
        )
        open_detail(self.app, screen)


class NodeDetailScreen(_SnapshotScreen):
    KIND = "node"
    DEFAULT_CSS = _CSS % "NodeDetailScreen"

    def compose(self) -> ComposeResult:
        with Vertical(classes="kube-detail") as box:
            box.border_title = Text(f"Node {self.obj_name}")
            yield TextLine(id="node-head")
            with VerticalScroll(id="node-scroll"):
                yield Static(id="node-body")
        yield StableFooter()

    def show_snapshot(self, snapshot: Snapshot, now: float) -> None:
        super().show_snapshot(snapshot, now)
        self.draw()

    def draw(self) -> None:
        if not self.drawable:
            return
        self.query_one("#node-head", TextLine).show(self.head())
        if self.obj is None:
            return
        from rich.console import Group

        kind = next((n for n in self.snapshot.nodes if n.name == self.obj_name), None)
        parts: list[Any] = []
        for title, body in describe.node_text(self.obj, kind, self.snapshot.generated_at):
            if isinstance(body, Text):
                body = body.copy()
                body.end = "\n"  # cells end without a newline; in a Group each needs one
            parts += [Text(""), Text(title, style="bold"), body]
        self.query_one("#node-body", Static).update(Group(*parts[1:]))
