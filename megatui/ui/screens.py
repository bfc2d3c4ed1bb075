"""Dialogs and the VM detail screen.

Screens that show live data implement `LiveScreen`; the app hands them every new
snapshot and every clock tick, so none of them subscribes to the monitor itself.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, RichLog, Static

from megatui import readiness
from megatui.api import ActionError, MonitorAPI
from megatui.model import BOOT_PHASES, VM, Phase, Snapshot
from megatui.readiness import Verdict
from megatui.report import duration
from megatui.ui import recovery_line, render, workers_panel
from megatui.ui.footer import StableFooter
from megatui.ui.panels import TextLine
from megatui.ui.render import literal


class LiveScreen:
    """Mixin: a screen that follows the snapshots while it is open."""

    def show_snapshot(self, snapshot: Snapshot, now: float) -> None:
        raise NotImplementedError

    def tick(self, now: float) -> None:
        """The clock moved; nothing else did."""


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question about a VM. Cancel has the focus, so a stray enter changes
    nothing; escape and Cancel answer False, the confirm button True."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, dialog_id: str, title: Text, body: str, confirm: str) -> None:
        super().__init__(classes="dialog-screen")
        self.dialog_id = dialog_id
        self.title_text = title
        self.body = body
        self.confirm_label = confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id=self.dialog_id):
            yield Static(self.title_text, classes="dialog-title")
            yield Static(Text(self.body, end=""), classes="dialog-body")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel", variant="primary")
                yield Button(self.confirm_label, id="confirm", variant="error")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def _confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def _cancel_button(self) -> None:
        self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)


class ConfirmStopScreen(ConfirmScreen):
    """Stop a VM?"""

    def __init__(self, vm_name: str) -> None:
        super().__init__(
            "confirm-stop",
            Text.assemble("Stop VM ", (vm_name, "bold"), "?", end=""),
            # "30 s" near the start: Rich wraps at any space, a no-break one too, and
            # "30" and "s" must not end up on two lines.
            "tart stop gives the guest 30 s to shut down, then forces it off. "
            "Unsaved work inside the VM is lost.",
            "Stop VM",
        )
        self.vm_name = vm_name


class SSHCommandScreen(ModalScreen[None]):
    """Where the terminal cannot be handed over (a browser, a test), show the command."""

    BINDINGS = [Binding("escape", "close", "Close")]

    def __init__(self, vm_name: str, argv: Sequence[str]) -> None:
        super().__init__(classes="dialog-screen")
        self.vm_name = vm_name
        self.command = shlex.join(argv)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="ssh-command"):
            yield Static(
                Text.assemble("SSH to ", (self.vm_name, "bold"), end=""), classes="dialog-title"
            )
            yield Static(
                Text(
                    "This terminal cannot be suspended for an interactive session "
                    "(browser or headless). Run this in a terminal:",
                    end="",
                ),
                classes="dialog-body",
            )
            yield Static(Text(self.command, style="bold", end=""), id="ssh-command-line")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Copy", id="copy", variant="primary")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#copy", Button).focus()

    @on(Button.Pressed, "#copy")
    def _copy(self) -> None:
        self.app.copy_to_clipboard(self.command)
        self.app.notify("SSH command copied to the clipboard", markup=False)
        self.dismiss(None)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)


class WaitScreen(LiveScreen, ModalScreen[bool]):
    """Wait for a VM to become ready, then (usually) connect. Dismisses True when ready.

    It only ever reads the snapshots it is handed: waiting costs no extra polling."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self, vm_name: str, snapshot: Snapshot, now: float, *, connect: bool, waiting: bool
    ) -> None:
        super().__init__(classes="dialog-screen")
        # Keeps what it is handed, as host_outage.HostOutage does: shape only.
        self.vm_name = vm_name
        self.connect = connect
        self.waiting = waiting
        self._snapshot = snapshot
        self._now = now
        self._done = False

    def compose(self) -> ComposeResult:
        if self.connect:
            title = Text.assemble(
                (self.vm_name, "bold"), " is not ready yet. Wait, then connect?", end=""
            )
        else:
            title = Text.assemble("Waiting for ", (self.vm_name, "bold"), " to be ready", end="")
        with Vertical(classes="dialog", id="wait-dialog"):
            yield Static(title, classes="dialog-title")
            yield TextLine(id="wait-status")
            with Horizontal(classes="dialog-buttons"):
                yield Button(
                    "Wait and connect" if self.connect else "Wait", id="wait", variant="primary"
                )
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self._refresh_state()
        if self.waiting:
            self.query_one("#wait", Button).display = False
            self.query_one("#cancel", Button).focus()
        else:
            self.query_one("#wait", Button).focus()

    def show_snapshot(self, snapshot: Snapshot, now: float) -> None:
        self._snapshot = snapshot
        self._now = now
        if self.is_mounted:  # pushed but not composed yet: on_mount draws it
            self._refresh_state()

    def tick(self, now: float) -> None:
        self._now = now
        if self.is_mounted:
            self._refresh_state()

    def _finish(self, ready: bool) -> None:
        # Snapshots and ticks keep coming until the screen is gone: answer once.
        if not self._done:
            self._done = True
            self.dismiss(ready)

    def _refresh_state(self) -> None:
        if self._done:
            return
        vm = self._snapshot.vm(self.vm_name)
        status = self.query_one("#wait-status", TextLine)
        if vm is None:
            status.show(literal("The VM is no longer in tart list.", render.BAD))
            return
        decision = readiness.decide(self.vm_name, vm, self._snapshot.vm_status())
        if decision.verdict is Verdict.READY and self.waiting:
            self._finish(True)
            return
        prefix = "waiting · " if self.waiting else ""
        status.show(
            Text.assemble(
                (prefix, render.MUTED),
                render.phase_cell(vm),
                "  ",
                render.progress_cell(vm, self._now),
            )
        )
        if self.waiting and decision.verdict is Verdict.GIVE_UP:
            # It will not get ready by itself (the rule `megatui wait` uses): say why.
            self.waiting = False
            reason = decision.reason or f"the VM is {vm.phase}"
            self.app.notify(f"{self.vm_name}: {reason}", severity="error", markup=False)
            self._finish(False)

    @on(Button.Pressed, "#wait")
    def _start_waiting(self) -> None:
        self.waiting = True
        self.query_one("#wait", Button).display = False
        self.query_one("#cancel", Button).focus()
        self._refresh_state()

    @on(Button.Pressed, "#cancel")
    def _cancel_button(self) -> None:
        self._finish(False)

    def action_cancel(self) -> None:
        self._finish(False)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("question_mark", "close", "Close", key_display="?"),
        Binding("q", "close", "Close"),
    ]

    def __init__(self, rows: Sequence[tuple[str, str]]) -> None:
        super().__init__(classes="dialog-screen")
        self.rows = list(rows)

    def compose(self) -> ComposeResult:
        table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 2, 0, 0))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for keys, what in self.rows:
            table.add_row(Text(keys, end=""), Text(what, end=""))
        # Scrolls (↑ ↓ pgup pgdn) where the terminal is shorter than the list: 80x24.
        with VerticalScroll(classes="dialog", id="help"):
            yield Static("Keys", classes="dialog-title")
            yield Static(table, id="help-keys")
            yield Static(
                Text("escape closes this help · keys are set in [keys] of the config", end=""),
                classes="dialog-body",
            )

    def on_mount(self) -> None:
        self.query_one("#help", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)


_ESCAPES = re.compile(
    r"\x1b\[[0-9;?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: titles, hyperlinks, clipboard
    r"|[\x00-\x08\x0b-\x1f\x7f]"  # other control characters
)


def clean_log_line(line: str) -> str:
    """A VM log line without terminal escapes: they would drive the real terminal."""
    return _ESCAPES.sub("", line.rstrip("\n")).replace("\t", "    ")


def _barred(phase: Phase) -> bool:
    """The phases on the way to ready (a controller's pre-boot stages too)."""
    return phase in BOOT_PHASES or phase in render.PRE_BOOT_PHASES


def history_table(vm: VM, now: float) -> Table:
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    table.add_column("PHASE", no_wrap=True)
    table.add_column("STARTED", no_wrap=True)
    table.add_column("DURATION", justify="right", no_wrap=True)
    table.add_column("", no_wrap=True)
    spans = vm.history
    if not spans:
        table.add_row(Text("no phase history yet", style=render.MUTED), "", "", "")
        return table
    # Bars compare the boot phases with each other; time spent ready or stopped is
    # uptime or downtime, would dwarf them, and gets no bar.
    boot = [span.duration(now) for span in spans if _barred(span.phase)]
    longest = max(boot, default=0.0) or 1.0
    for span in spans:
        seconds = span.duration(now)
        current = span.ended is None
        style = render.PHASE_STYLE.get(span.phase, "")
        width = max(1, round(24 * seconds / longest)) if _barred(span.phase) else 0
        table.add_row(
            Text(str(span.phase), style=style),
            Text(render.clock_time(span.started), style=render.MUTED),
            Text(duration(seconds) + (" …" if current else "  ")),
            Text("▇" * width, style=style or "white"),
        )
    return table


#: `tart get`'s fields in its declaration order (docs/facts/tart.md §4). Its JSON comes in a
#: random key order on every call; the screen must not reshuffle on each open.
TART_GET_ORDER = ("State", "OS", "CPU", "Memory", "Disk", "DiskFormat", "Size", "Display")
#: JSON only and deprecated: the same as State.
_TART_GET_HIDDEN = frozenset({"Running"})
_TART_GET_UNITS = {"Memory": " MB", "Disk": " GB", "Size": " GB"}


def details_table(info: dict[str, object], width: int = 0) -> Table:
    """`tart get` as key/value pairs in a fixed order: one pair a row, or, when
    `width` allows, several pairs a row (the detail screen at 80x24 has few rows)."""
    known = [k for k in TART_GET_ORDER if k in info]
    rest = sorted(k for k in info if k not in TART_GET_ORDER and k not in _TART_GET_HIDDEN)
    pairs = [
        (
            Text(str(key), style="bold", end=""),
            Text(_detail_value(key, info[key]), end=""),
        )
        for key in [*known, *rest]
    ]
    cell = max((len(k) + len(v) + 2 for k, v in pairs), default=1) + 3
    per_row = max(1, min(4, width // cell)) if width else 1
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 3, 0, 0))
    for _ in range(per_row):
        table.add_column(style="bold", no_wrap=True, justify="left")
        table.add_column(no_wrap=True)
    for i in range(0, len(pairs), per_row):
        row: list[Text] = []
        for key, value in pairs[i : i + per_row]:
            row += [key, value]
        table.add_row(*row)
    return table


def _detail_value(key: str, value: object) -> str:
    if value is None:
        return "—"
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(value, str):
        numeric = value.replace(".", "", 1).isdigit()
    return f"{value}{_TART_GET_UNITS.get(key, '') if numeric else ''}"


#: What the detail screen shows of a controller's (Orchard's) VM object, in this
#: order; the rest (conditions, names of the clone, resources) is noise here.
CONTROLLER_FIELDS = (
    "status",
    "status_message",
    "powerState",
    "worker",
    "image",
    "cpu",
    "memory",
    "restart_policy",
    "restart_count",
    "uid",
)


def controller_fields(info: dict[str, object]) -> dict[str, object]:
    return {key: info[key] for key in CONTROLLER_FIELDS if key in info}


def fleet_line(vm: VM, info: dict[str, object]) -> Text:
    """`worker mini-2 · restart OnFailure, 2 restarts · uid … · image …`: where a
    controller runs the VM, what it does when it fails, and which machine it is (a
    new uid is a new clone with a new host key)."""
    text = Text(end="")  # wraps: the uid and the image are long, and both matter
    text.append("worker ", render.MUTED)
    text.append(vm.worker or "—", "bold" if vm.worker else render.MUTED)
    text.append("  restart ", render.MUTED)
    text.append(vm.restart_policy or "Never")
    restarts = f", {vm.restart_count} restart{'s' if vm.restart_count != 1 else ''}"
    text.append(restarts, render.WARN if vm.restart_count else render.MUTED)
    for key in ("uid", "image"):
        value = info.get(key)
        if isinstance(value, str) and value:
            text.append(f"  {key} ", render.MUTED)
            text.append(value)
    return text


class DetailScreen(LiveScreen, ModalScreen[None]):
    """One VM: its phase timeline, `tart get` and the tail of its log."""

    BINDINGS = [
        Binding("escape", "close", "close"),
        Binding("q", "close", "close", show=False),
        Binding("r", "reload", "reload log", id="refresh"),
    ]
    LOG_LINES = 50

    def __init__(self, vm_name: str, monitor: MonitorAPI, snapshot: Snapshot, now: float) -> None:
        super().__init__(classes="detail-screen")
        self.vm_name = vm_name
        self.monitor = monitor
        self._snapshot = snapshot
        self._now = now
        self.loaded = False
        self._info: dict[str, object] | None = None
        self.log_lines: list[str] = []
        vm = snapshot.vm(vm_name)
        #: A VM of the local (or --host) tart: no worker, uid or restart policy.
        self._tart = vm is None or vm.backend == "tart"

    def compose(self) -> ComposeResult:
        with Vertical(id="detail") as box:
            box.border_title = Text(f"VM {self.vm_name}")
            yield TextLine(id="detail-summary")
            yield TextLine(id="detail-fleet")
            yield TextLine(id="detail-note")
            with VerticalScroll(id="detail-scroll"):
                yield Static("Phase timeline", classes="section")
                yield Static(id="detail-history")
                yield Static("tart get" if self._tart else "controller", classes="section")
                yield Static(Text("loading…", style=render.MUTED), id="detail-info")
                yield Static(Text(self._log_title(), end=""), classes="section", id="log-title")
            # Wrapped, not cut: a tart error line is often longer than 80 columns.
            yield RichLog(id="detail-log", highlight=False, markup=False, wrap=True, max_lines=1000)
        # Its own footer: the main screen's keys do not apply here.
        yield StableFooter()

    def _log_title(self) -> str:
        try:
            return f"log · {self.monitor.log_path(self.vm_name)}"
        except Exception:  # the path is a nicety: never fail the screen over it
            return "log"

    def on_mount(self) -> None:
        self._draw()
        self.load()
        self.load_recovery()

    @work(group="detail-recovery", exclusive=True, exit_on_error=False)
    async def load_recovery(self) -> None:
        await recovery_line.show(self, self.monitor, self.vm_name, after="#detail-note")

    def show_snapshot(self, snapshot: Snapshot, now: float) -> None:
        self._snapshot = snapshot
        self._now = now
        if self.is_mounted:  # pushed but not composed yet: on_mount draws it
            self._draw()

    def tick(self, now: float) -> None:
        vm = self._snapshot.vm(self.vm_name)
        if vm is not None and vm.phase not in (Phase.READY, Phase.STOPPED, Phase.SUSPENDED):
            self._now = now
            if self.is_mounted:
                self._draw()

    def _draw(self) -> None:
        vm = self._snapshot.vm(self.vm_name)
        summary = self.query_one("#detail-summary", TextLine)
        note = self.query_one("#detail-note", TextLine)
        if vm is None:
            summary.show(literal("not in tart list any more", render.BAD))
            note.display = False
            return
        summary.show(
            Text.assemble(
                ("state ", render.MUTED),
                str(vm.state),
                ("  phase ", render.MUTED),
                render.phase_cell(vm),
                ("  ip ", render.MUTED),
                render.ip_cell(vm),
                "  ",
                render.progress_cell(vm, self._now),
                no_wrap=True,
                end="",
            )
        )
        workers = {worker.name: worker for worker in self._snapshot.workers}
        note.show(render.note_cell(vm, workers_panel.stale_reason(vm, workers)))
        note.display = bool(vm.error or vm.hint or vm.stale)
        fleet = self.query_one("#detail-fleet", TextLine)
        fleet.display = not self._tart
        if not self._tart:
            fleet.show(fleet_line(vm, self._info or {}))
        self.query_one("#detail-history", Static).update(history_table(vm, self._now))

    @work(group="detail-load", exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        info_widget = self.query_one("#detail-info", Static)
        try:
            info = await self.monitor.vm_details(self.vm_name)
        except ActionError as exc:
            info_widget.update(literal(str(exc), render.BAD))
        except Exception as exc:  # an I/O failure of the core: show it, keep the screen
            info_widget.update(literal(f"tart get failed: {exc}", render.BAD))
        else:
            self._info = info
            self._show_info()
        try:
            lines = await self.monitor.read_log_tail(self.vm_name, self.LOG_LINES)
        except Exception as exc:  # as above: the log is optional, the screen is not
            lines = [f"cannot read the log: {exc}"]
        self.log_lines = [clean_log_line(line) for line in lines] or ["(the log is empty)"]
        self._show_log()
        self.loaded = True

    def on_resize(self) -> None:
        # Both are laid out for a width: the pairs a row of tart get, the log's wrap.
        if self.loaded:
            self._show_info()
            self._show_log()

    def _show_info(self) -> None:
        if self._info is not None:
            widget = self.query_one("#detail-info", Static)
            width = widget.content_size.width or self.size.width - 4
            info = self._info if self._tart else controller_fields(self._info)
            widget.update(details_table(info, width))
            if not self._tart:
                self._draw()  # the uid and the image come with the controller's object

    def _show_log(self) -> None:
        log = self.query_one("#detail-log", RichLog)
        log.clear()
        for line in self.log_lines:
            log.write(Text(line, end=""))

    def action_reload(self) -> None:
        self.load()

    def action_close(self) -> None:
        self.dismiss(None)
