"""The four panels of the main screen and the header line.

A panel draws a `View` (a snapshot plus the time and the retry countdowns) and
nothing else: it never talks to the monitor, so a pilot test can feed it any state.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.color import Color
from textual.containers import Vertical
from textual.content import Content
from textual.dom import DOMNode
from textual.widgets import Static

from megatui.model import (
    # (host_outage.py imports the same SOURCE_* names: a list of names, not a rule.)
    SOURCE_APPLICATIONS,
    SOURCE_DOCKER,
    SOURCE_HOST,
    SOURCE_KUBERNETES,
    SOURCE_SSH,
    SOURCE_TART,
    VM,
    Application,
    Event,
    Phase,
    Pod,
    Snapshot,
    SourceStatus,
    Worker,
)
from megatui.ui import render, workers_panel
from megatui.ui.render import literal
from megatui.ui.row_keeper import N, RowKeeper, age_changes_at, namespaced_key
from megatui.ui.table import Column, KeyedTable, Row, RowCache


@dataclass(frozen=True, slots=True)
class View:
    """Everything a panel may show. `now` moves on the clock tick; the rest only
    changes when the monitor publishes."""

    snapshot: Snapshot
    events: Sequence[Event]
    now: float
    retry_in: Callable[[str], float | None]
    readonly: bool = False


def same_text(a: Text, b: Text) -> bool:
    return render.cell_signature(a) == render.cell_signature(b)


class TextLine(Static):
    """A Static that only repaints when what it shows really changed."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes, markup=False)
        self._text = Text("")
        self.writes = 0

    @property
    def text(self) -> Text:
        return self._text

    def show(self, text: Text) -> None:
        if same_text(text, self._text):
            return
        self._text = text
        self.writes += 1
        # A line of fixed size (the header, the VM line) cannot move anything else, so
        # it needs no layout pass: a full reflow of the screen on every clock tick and
        # every cursor move is most of what those cost (benchmarks/bench_ui.py).
        height, width = self.styles.height, self.styles.width
        fixed = height is not None and height.is_cells and not (width and width.is_auto)
        self.update(text, layout=not fixed)


class HeaderBar(TextLine):
    """host · context · READ-ONLY · age of the data."""

    #: Below this width the labels go, so the age of the data still fits in 80 columns.
    COMPACT_WIDTH = 110
    #: How much of a read-only reason the header gives (the help screen has it all).
    REASON_WIDTH = 60

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._last: View | None = None

    def on_resize(self) -> None:
        if self._last is not None:
            self.show_view(self._last)

    def show_view(self, view: View) -> None:
        self._last = view
        compact = 0 < self.size.width < self.COMPACT_WIDTH
        snap = view.snapshot
        text = Text.assemble((" megatui ", "bold reverse"), end="")
        if view.readonly:
            # First, so no width can cut it off: it says why s and x do nothing.
            text.append(" ")
            text.append(" READ-ONLY ", f"bold reverse {render.WARN}")
            reason = snap.readonly_reason
            if reason and not compact:
                # Not asked for (an account without compute:write): say why. Not on a
                # narrow screen, where the host and the age must fit (the app says it
                # once as a notification, and the help screen has it).
                limit = self.REASON_WIDTH
                short = reason if len(reason) <= limit else reason[: limit - 1] + "…"
                text.append(f" {short}", render.WARN)
        host = snap.sources.get(SOURCE_HOST)
        host_error = host.error if host is not None and not host.ok else None
        text.append("  " if compact else "  host ", render.MUTED)
        if host_error:
            # In the host's place, so no width cuts it off first: the one cause of
            # everything behind the host, said once (the line names the host).
            text.append(f"⚠ {host_error}", f"bold {render.BAD}")
        else:
            text.append(snap.host or "?", "bold")
        text.append("  " if compact else "  ctx ", render.MUTED)
        text.append(snap.kube_context or "—", "bold" if snap.kube_context else render.MUTED)
        text.append("  ")
        self._append_age(text, view, compact)
        failing = sorted(
            name
            for name, s in snap.sources.items()
            if not s.ok and name != SOURCE_HOST and not (host_error and s.error == host_error)
        )
        if failing:
            text.append("  ")
            text.append(f"⚠ failing: {', '.join(failing)}", f"bold {render.BAD}")
        self.show(text)

    @staticmethod
    def _append_age(text: Text, view: View, compact: bool) -> None:
        snap = view.snapshot
        if snap.generated_at <= 0:
            text.append("waiting for data…", render.MUTED)
            return
        at, label = snap.generated_at, "updated"
        sources = [s for name, s in snap.sources.items() if name != SOURCE_HOST]
        if sources and not any(s.ok for s in sources):
            # Every source fails: the snapshot is new, its data is not. Say how old
            # the oldest data on the screen is, or that there is none.
            stamps = [s.updated_at for s in sources if s.updated_at is not None]
            if not stamps:
                text.append("no data", f"bold {render.BAD}")
                return
            at, label = min(stamps), "last data"
        age = max(0, int(view.now - at))
        ago = Text(f"{age} s ago", render.WARN if age >= 30 else render.MUTED)
        if compact:
            text.append_text(ago)
        else:
            text.append(f"{label} {render.clock_time(at)} (", render.MUTED)
            text.append_text(ago)
            text.append(")", render.MUTED)


def panel_of(node: DOMNode | None) -> Panel | None:
    """The panel that holds `node` (a table, or the panel itself), if any."""
    while node is not None:
        if isinstance(node, Panel):
            return node
        node = node.parent
    return None


class Panel(Vertical):
    """A bordered panel: a stale-source line and its tables. Its `/` filter is typed
    into the panel's bottom border."""

    NUMBER = 0
    TITLE = ""
    #: The monitor's sources this panel's data comes from (SourceStatus names).
    SOURCES: tuple[str, ...] = ()
    FILTER_HINT = "filter by name"

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id, classes="panel")
        self.border_title = f"{self.NUMBER} {self.TITLE}"
        self.filter_text = ""
        self._view: View | None = None
        self._active = False
        self._editing = False
        #: What the bottom border shows of the filter, as plain text.
        self.filter_line = ""
        self._tables: list[KeyedTable] = []

    def compose(self) -> ComposeResult:
        yield TextLine(classes="stale-line")
        for widget in self.compose_body():
            if isinstance(widget, KeyedTable):
                self._tables.append(widget)  # known once: every snapshot walks them
            yield widget

    def compose_body(self) -> ComposeResult:
        raise NotImplementedError

    def on_mount(self) -> None:
        self.query_one(".stale-line", TextLine).display = False
        # The accent border is an inline colour: a new theme must set it again.
        self.app.theme_changed_signal.subscribe(self, lambda _: self.show_focus(self._active))

    # --- focus ----------------------------------------------------------------------

    def show_focus(self, active: bool) -> None:
        """Give the panel that holds the focus an accent border (MainScreen calls this
        as the focus moves). Set inline on the panel alone: a `:focus-within` rule
        restyles every widget in the panel on every focus change (Textual 8.2.8 never
        finds two rule sets equal, so each one repaints in full), which was most of
        what a Tab cost with 2,000 pods on screen."""
        self._active = active
        if not active:
            self._set_editing(False)  # the filter stays; typing it is over
        title = f"{self.NUMBER} {self.TITLE}"
        if active:
            self.styles.border = ("round", Color.parse(self.app.theme_variables["accent"]))
            # Markup of our own constants, never of outside text; `border-title-color`
            # would repaint every child of the panel as well.
            self.border_title = f"[$accent]{title}[/]"
        else:
            self.styles.border = None
            self.border_title = title

    @property
    def tables(self) -> list[KeyedTable]:
        return list(self._tables)

    def focus_first(self) -> None:
        tables = self.tables
        if tables:
            tables[0].focus()

    # --- data ---------------------------------------------------------------------

    def apply(self, view: View) -> None:
        self._view = view
        self._show_sources(view)
        self.draw(view)
        self._show_empty()

    def tick(self, now: float) -> None:
        if self._view is None:
            return
        self._view = replace(self._view, now=now)
        self._show_sources(self._view)
        self.draw_tick(self._view)

    def draw(self, view: View) -> None:
        raise NotImplementedError

    def draw_tick(self, view: View) -> None:
        """What may change with the time alone; most panels have nothing."""

    def empty_text(self, table: KeyedTable) -> str:
        """What an empty table of this panel says."""
        return f"nothing matches “{self.filter_text}”" if self.filter_text else ""

    def _show_empty(self) -> None:
        for table in self.tables:
            table.empty_text = self.empty_text(table)

    def matches(self, search: str) -> bool:
        return not self.filter_text or self.filter_text.casefold() in search.casefold()

    def source_names(self, snap: Snapshot) -> tuple[str, ...]:
        """The sources whose failure this panel's stale line names."""
        return self.SOURCES

    def _show_sources(self, view: View) -> None:
        failing: dict[str | None, list[SourceStatus]] = {}
        for name in self.source_names(view.snapshot):
            status = view.snapshot.sources.get(name)
            if status is not None and not status.ok:
                failing.setdefault(status.error, []).append(status)
        lines = []
        for same in failing.values():
            # One cause, one line: sources failing alike (all behind a host that is
            # down) share it, named together.
            status = replace(same[0], name=", ".join(s.name for s in same))
            lines.append(render.stale_line(status, view.now, view.retry_in(same[0].name)))
        line = self.query_one(".stale-line", TextLine)
        line.show(Text("\n", end="").join(lines))
        line.display = bool(lines)
        # Keep the last data, dimmed: wrong-but-recent beats an empty panel.
        self.set_class(bool(lines), "-stale")

    # --- filter -------------------------------------------------------------------
    #
    # `/` turns the panel's tables into the filter's input, and the bottom border shows
    # what is typed: no input box appears, so typing never lays the screen out again
    # (each layout repaints all of it: docs/performance.md). Enter keeps the filter,
    # escape drops it; the arrows still move through what matches.

    @property
    def editing_filter(self) -> bool:
        return self._editing

    def open_filter(self) -> None:
        focused = self.screen.focused
        tables = self.tables
        if not tables:
            return
        self._set_editing(True)
        if focused not in tables:
            tables[0].focus()

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._show_empty()
        self._show_filter()
        if self._view is not None:
            self.draw(self._view)

    def _set_editing(self, editing: bool) -> None:
        if editing == self._editing:
            return
        self._editing = editing
        for table in self.tables:
            table.consumes_text = editing
        self._show_filter()

    def _show_filter(self) -> None:
        # Content, never a str: the border would parse what the user typed as markup.
        if self._editing:
            hint = f" {self.FILTER_HINT}" if not self.filter_text else ""
            line = Content.assemble(
                "/",
                self.filter_text,
                (" ", "reverse"),
                (f"{hint} · enter keeps · esc clears", "dim"),
            )
        elif self.filter_text:
            line = Content.assemble("filter: ", self.filter_text)
        else:
            line = Content("")
        self.filter_line = line.plain
        self.border_subtitle = line

    def on_key(self, event: events.Key) -> None:
        # The focused table passed the key on (its check_consume_key kept the app's
        # bindings for printable keys away while the filter is edited).
        if self._editing:
            if event.key == "enter":
                self._set_editing(False)
            elif event.key == "escape":
                self._set_editing(False)
                self.set_filter("")
            elif event.key == "backspace":
                self.set_filter(self.filter_text[:-1])
            elif event.key == "ctrl+u":
                self.set_filter("")
            elif event.is_printable and event.character:
                self.set_filter(self.filter_text + event.character)
            else:
                return  # arrows, Tab: their usual work
        elif event.key == "escape" and self.filter_text:
            self.set_filter("")
        else:
            return
        event.stop()
        event.prevent_default()

    def on_paste(self, event: events.Paste) -> None:
        if self._editing:
            event.stop()
            lines = event.text.splitlines()
            if lines:
                self.set_filter(self.filter_text + lines[0])


#: Phases whose progress cell does not depend on the time (render.progress_cell).
SETTLED_PHASES = frozenset((Phase.STOPPED, Phase.SUSPENDED, Phase.READY, Phase.ERROR))


class VMPanel(Panel):
    """The VMs and, for a controller's fleet (Orchard), its workers: a second table
    in the same panel, reached with Tab, so the panel keys stay 1 to 4."""

    NUMBER = 1
    TITLE = "VMs"
    SOURCES = (SOURCE_TART, SOURCE_SSH)
    FILTER_HINT = "filter VMs by name"
    FLEET_FILTER_HINT = "filter VMs and workers by name"

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self._rows: RowKeeper[VM] = RowKeeper(lambda vm: vm.name, self._vm_cells)
        #: The fleet's workers by name (None for one Mac), for the cells being built.
        self._workers: dict[str, Worker] | None = None
        self._synced_filter: str | None = None

    def source_names(self, snap: Snapshot) -> tuple[str, ...]:
        return (snap.vm_source, SOURCE_SSH)

    def compose_body(self) -> ComposeResult:
        yield KeyedTable(workers_panel.VM_COLUMNS, id="vm-table")
        yield TextLine(id="vm-line")
        yield TextLine(id="worker-line")
        yield KeyedTable(workers_panel.WORKER_COLUMNS, id="worker-table")

    def on_mount(self) -> None:
        # (Panel.on_mount runs as well: Textual calls every class's handler.) The line
        # under the table follows the cursor in the frame that moves the cursor.
        self.watch(self.table, "cursor_row", self._show_selected, init=False)
        self.worker_table.display = False
        self.query_one("#worker-line", TextLine).display = False

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#vm-table", KeyedTable)

    @property
    def worker_table(self) -> KeyedTable:
        return self.query_one("#worker-table", KeyedTable)

    @property
    def selected(self) -> str | None:
        return self.table.cursor_key

    def _show_workers(self, shown: bool) -> None:
        """Only a fleet has workers; a tart session never lays out the hidden two."""
        table = self.worker_table
        if table.display == shown:
            return
        table.display = shown
        self.query_one("#worker-line", TextLine).display = shown
        self.TITLE = "VMs · Workers" if shown else type(self).TITLE
        self.FILTER_HINT = self.FLEET_FILTER_HINT if shown else type(self).FILTER_HINT
        self.show_focus(self._active)

    def _vm_cells(self, vm: VM, now: float) -> tuple[tuple[Text, ...], float]:
        cells = workers_panel.vm_cells(vm, now, self._workers)
        # A moving VM's progress shows the time it has spent in its phase.
        return cells, math.inf if vm.phase in SETTLED_PHASES else now

    def draw(self, view: View) -> None:
        snap = view.snapshot
        fleet = workers_panel.is_fleet(snap)
        self._workers = {worker.name: worker for worker in snap.workers} if fleet else None
        self.table.set_columns(workers_panel.vm_columns(fleet))
        # Rows are rebuilt only for VMs that changed or move (200 VMs: bench_scale.py).
        changed = self._rows.refresh(snap.vms, view.now, (fleet, snap.workers))
        # A filter finds VMs by their worker too, which can change: it syncs in full.
        if changed is not None and not self.filter_text and self._synced_filter == "":
            self.table.update(changed)
        else:
            self._synced_filter = self.filter_text
            self.table.sync(
                [
                    row
                    for row, vm in zip(self._rows.rows, self._rows.items, strict=True)
                    # A fleet's filter also finds the VMs of a worker by the worker's name.
                    if self.matches(vm.name) or (fleet and vm.worker and self.matches(vm.worker))
                ]
            )
        self._show_selected()
        self._draw_workers(view)

    def _draw_workers(self, view: View) -> None:
        workers = view.snapshot.workers
        self._show_workers(bool(workers))
        if not workers:
            self.worker_table.sync(())  # a diff: no work once it is empty
            return
        self.query_one("#worker-line", TextLine).show(workers_panel.workers_line(workers))
        shown = [w.name for w in workers if self.matches(w.name)]
        self.worker_table.sync(workers_panel.worker_rows(view.snapshot, shown))

    def draw_tick(self, view: View) -> None:
        # Only moving VMs show a running time; redrawing all of them is cheap because
        # the table diff writes nothing for the ones whose text did not change.
        if any(render.is_booting(vm) or vm.phase is Phase.STOPPING for vm in view.snapshot.vms):
            self.draw(view)

    def _show_selected(self) -> None:
        line = self.query_one("#vm-line", TextLine)
        view = self._view
        if view is None:
            return
        name = self.selected
        vm = view.snapshot.vm(name) if name is not None else None
        host = view.snapshot.sources.get(SOURCE_HOST)
        listing, lister = view.snapshot.vm_status(), view.snapshot.vm_source
        if vm is not None:
            workers = {worker.name: worker for worker in view.snapshot.workers}
            line.show(render.vm_line(vm, view.now, workers_panel.stale_reason(vm, workers)))
        elif not view.snapshot.vms and host is not None and not host.ok:
            # No VMs because the host is out of reach (d shows the reason and the fix).
            line.show(literal("no VMs until the host answers · d: why, and the fix", render.BAD))
        elif not view.snapshot.vms and listing is None:
            line.show(literal(f"waiting for {lister}…", render.MUTED))
        elif not view.snapshot.vms and listing is not None and not listing.ok:
            # The list failed: its error says it all; "the list is empty" would be a guess.
            line.show(literal(listing.error or f"{lister} failed", render.BAD))
        elif not view.snapshot.vms:
            line.show(literal(f"no VMs: {lister} list is empty", render.MUTED))
        else:
            line.show(literal("no VM matches the filter", render.MUTED))


class ClusterPanel(Panel):
    NUMBER = 2
    TITLE = "Cluster"
    SOURCES = (SOURCE_DOCKER, SOURCE_KUBERNETES)
    FILTER_HINT = "filter nodes by name"
    # Each table declares its columns as data (here, ArgoPanel's, workers_panel's):
    # alike in shape only, as are the panels' short draw methods that fill them.
    COLUMNS = (
        Column("name", "NAME", 28),
        Column("status", "STATUS", 28),
        Column("roles", "ROLES", 14),
        Column("version", "VERSION", 9),
        Column("age", "AGE", 6),
    )

    def compose_body(self) -> ComposeResult:
        yield TextLine(id="docker-line")
        yield KeyedTable(self.COLUMNS, id="node-table")

    def draw(self, view: View) -> None:
        self.query_one("#docker-line", TextLine).show(render.docker_lines(view.snapshot.docker))
        now = view.snapshot.generated_at
        rows = [
            Row(
                node.name,
                (
                    literal(node.name, "bold"),
                    render.node_status_cell(node),
                    literal(node.roles or "<none>", render.MUTED if not node.roles else ""),
                    literal(node.version),
                    # Ages are kubectl's, taken at the snapshot: they move when data
                    # arrives, not on the clock tick.
                    render.age_cell(node.created, now),
                ),
            )
            for node in view.snapshot.nodes
            if self.matches(node.name)
        ]
        self.query_one("#node-table", KeyedTable).sync(rows)


class ArgoPanel(Panel):
    NUMBER = 3
    TITLE = "ArgoCD"
    SOURCES = (SOURCE_KUBERNETES, SOURCE_APPLICATIONS)
    FILTER_HINT = "filter pods and applications by name"
    POD_COLUMNS = (
        Column("name", "NAME", 50),
        Column("ready", "READY", 5),
        Column("status", "STATUS", 18),
        Column("restarts", "RESTARTS", 14),
        Column("age", "AGE", 6),
        # Why a stuck pod is stuck (sources/pod_why.py): before NODE, so it shows at 160.
        Column("note", "NOTE", 70),
        Column("node", "NODE", 26),
    )
    APP_COLUMNS = (
        Column("name", "APPLICATION", 28),
        Column("sync", "SYNC", 10),
        Column("health", "HEALTH", 12),
        Column("operation", "OPERATION", 11),
        Column("message", "MESSAGE", 70),
    )

    NARROW_POD_COLUMNS = tuple(c for c in POD_COLUMNS if c.key != "note")
    #: Below this panel width the NOTE column would start off screen (it begins at
    #: column 103): it is dropped, and the selected pod's WHY goes under the table.
    NARROW_BELOW = 128

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self._pod_rows: RowKeeper[Pod] = RowKeeper(namespaced_key, self._pod_cells)
        self._app_rows: RowKeeper[Application] = RowKeeper(namespaced_key, self._app_cells)
        #: The filter each table was last synced with: a new one syncs it in full.
        self._synced: dict[str, str | None] = {"pod-table": None, "app-table": None}
        self._narrow = False

    def compose_body(self) -> ComposeResult:
        yield TextLine(id="argocd-line")
        yield KeyedTable(self.POD_COLUMNS, id="pod-table")
        yield TextLine(id="pod-line")
        yield KeyedTable(self.APP_COLUMNS, id="app-table")

    def on_mount(self) -> None:
        self.query_one("#pod-line", TextLine).display = False
        pods = self.query_one("#pod-table", KeyedTable)
        self.watch(pods, "cursor_row", self._show_selected_pod, init=False)

    def on_resize(self, event: events.Resize) -> None:
        narrow = 0 < event.size.width < self.NARROW_BELOW
        if narrow == self._narrow:
            return
        self._narrow = narrow
        self.query_one("#pod-line", TextLine).display = narrow
        if self._view is not None:
            self.draw(self._view)

    def _show_selected_pod(self) -> None:
        if not self._narrow or self._view is None:
            return
        key = self.query_one("#pod-table", KeyedTable).cursor_key
        namespace, _, name = (key or "").partition("/")
        pod = next(
            (p for p in self._view.snapshot.pods if p.name == name and p.namespace == namespace),
            None,
        )
        self.query_one("#pod-line", TextLine).show(render.pod_why_line(pod))

    def empty_text(self, table: KeyedTable) -> str:
        status = self._view.snapshot.sources.get(SOURCE_APPLICATIONS) if self._view else None
        if table.id == "app-table" and not self.filter_text and status and status.note:
            return status.note  # the Applications CRD is not installed: say so, calmly
        return super().empty_text(table)

    def _pod_cells(self, pod: Pod, now: float) -> tuple[tuple[Text, ...], float]:
        note = () if self._narrow else (literal(pod.why or "", render.WARN),)
        cells = (
            literal(pod.name, "bold"),
            literal(pod.ready),
            render.pod_status_cell(pod),
            render.restarts_cell(pod),
            render.age_cell(pod.created, now),
            *note,
            literal(pod.node or "<none>"),
        )
        return cells, math.inf if pod.created is None else age_changes_at(pod.created, now)

    @staticmethod
    def _app_cells(app: Application, now: float) -> tuple[tuple[Text, ...], float]:
        cells = (
            literal(app.name, "bold"),
            render.sync_cell(app),
            render.health_cell(app),
            render.operation_cell(app),
            literal(app.message, render.MUTED),
        )
        return cells, math.inf

    def draw(self, view: View) -> None:
        snap = view.snapshot
        self.query_one("#argocd-line", TextLine).show(
            render.argocd_line(snap.argocd, len(snap.pods))
        )
        narrow = self._narrow
        # Ages are kubectl's, taken at the snapshot: they move when data arrives.
        changed = self._pod_rows.refresh(snap.pods, snap.generated_at, narrow)
        table = self.query_one("#pod-table", KeyedTable)
        table.set_columns(self.NARROW_POD_COLUMNS if narrow else self.POD_COLUMNS)
        self._show_rows(table, self._pod_rows, changed)
        self._show_selected_pod()
        changed = self._app_rows.refresh(snap.applications, snap.generated_at)
        self._show_rows(self.query_one("#app-table", KeyedTable), self._app_rows, changed)

    def _show_rows(
        self, table: KeyedTable, keeper: RowKeeper[N], changed: list[Row] | None
    ) -> None:
        """Thousands of rows: the table takes only the changed ones while every row
        stayed in place under the same filter, else the whole (filtered) list."""
        name = table.id or ""
        if changed is not None and self._synced.get(name) == self.filter_text:
            table.update(changed)
            return
        self._synced[name] = self.filter_text
        rows = keeper.rows
        if self.filter_text:
            # The keeper keeps the filtered-out rows too: clearing the filter builds nothing.
            rows = [
                row for row, item in zip(rows, keeper.items, strict=True) if self.matches(item.name)
            ]
        table.sync(rows)


class EventsPanel(Panel):
    NUMBER = 4
    TITLE = "Events"
    FILTER_HINT = "filter events by subject or message"
    COLUMNS = (
        Column("time", "TIME", 8),
        Column("kind", "KIND", 6),
        Column("subject", "SUBJECT", 30),
        Column("message", "MESSAGE", 90),
    )

    def __init__(self, *, id: str) -> None:
        super().__init__(id=id)
        self._rows = RowCache()
        #: The events and filter of the last draw: the same again draws nothing.
        self._drawn: tuple[Sequence[Event], str] = ((), "")

    def compose_body(self) -> ComposeResult:
        yield KeyedTable(self.COLUMNS, id="event-table", follow_head=True)

    def draw(self, view: View) -> None:
        events, filter_text = self._drawn
        if filter_text == self.filter_text and _same_objects(events, view.events):
            return  # most snapshots bring no event: 500 of them are not walked again
        self._drawn = (tuple(view.events), self.filter_text)
        seen: Counter[tuple[float, str, str, str]] = Counter()
        rows = []
        for event in view.events:
            ident = (event.at, event.kind, event.subject, event.message)
            seen[ident] += 1
            # Events carry no id; the same line twice in a second is still two rows.
            key = f"{event.at!r}|{event.kind}|{event.subject}|{event.message}|{seen[ident]}"
            row = self._rows.row(key, event, functools.partial(render.event_cells, event))
            if self.matches(f"{event.kind} {event.subject} {event.message}"):
                rows.append(row)
        self._rows.done()
        rows.reverse()  # newest first: the top of a short panel is what matters
        self.query_one("#event-table", KeyedTable).sync(rows)


def _same_objects(a: Sequence[object], b: Sequence[object]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
