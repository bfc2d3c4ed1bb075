"""Pod logs (`l` on a pod or in its detail): the last 500 lines, then follow.

Keys: `c` next container, `p` previous run (the one that crashed) or back, `/`
search (highlighted as a selection), `n`/`N` next/previous match, `w` wrap, `t`
timestamps, `s` save the buffer to a file (the path is shown). The follow stream
is a worker of this screen: closing the screen cancels it. The buffer keeps the
last 10,000 lines, and the status line says so. Text arrives inert (control
bytes replaced by visible glyphs in sources/kube_logs.py), and a read-only
TextArea shows it literally: nothing in a log is interpreted.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, TextArea
from textual.widgets.text_area import Selection

from megatui.api import ActionError, MonitorAPI
from megatui.config import state_dir
from megatui.sources.kube_logs import MAX_LINES, LogBuffer, LogLine, search
from megatui.ui import render
from megatui.ui.panels import TextLine
from megatui.ui.render import literal

_KEYS_WHILE_TYPING = frozenset({"close"})


class LogsScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    LogsScreen { align: center middle; }
    #logs { width: 100%; height: 1fr; border: round $accent; background: $surface; }
    #logs-status { height: 1; padding: 0 1; }
    #logs-text { height: 1fr; border: none; }
    #logs-search { display: none; height: 3; }
    #logs-search.open { display: block; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "close", priority=True),
        Binding("c", "next_container", "container", priority=True),
        Binding("p", "previous", "previous", priority=True),
        Binding("slash", "search", "search", key_display="/", priority=True),
        Binding("n", "match(1)", "next", priority=True),
        Binding("N", "match(-1)", "prev", show=False, priority=True),
        Binding("w", "wrap", "wrap", priority=True),
        Binding("t", "timestamps", "timestamps", priority=True),
        Binding("s", "save", "save", priority=True),
    ]

    def __init__(
        self, monitor: MonitorAPI, namespace: str, pod: str, containers: list[str]
    ) -> None:
        super().__init__()
        self.monitor = monitor
        self.namespace = namespace
        self.pod = pod
        # Empty: the pod's containers are read from the API before the first stream.
        self.containers = containers
        self.container = containers[0] if containers else ""
        self.previous = False
        self.timestamps = False
        self.buffer = LogBuffer()
        self.error: str | None = None
        self.state = "loading"
        self.needle = ""
        self.matches: list[int] = []
        self.match_at = -1
        self.saved_to: Path | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="logs") as box:
            box.border_title = Text(f"Logs {self.namespace}/{self.pod}")
            yield TextLine(id="logs-status")
            yield TextArea(
                "", id="logs-text", read_only=True, soft_wrap=False, show_line_numbers=False
            )
            yield Input(placeholder="search, enter to find", id="logs-search")
        yield Footer()

    @property
    def text_area(self) -> TextArea:
        return self.query_one("#logs-text", TextArea)

    def on_mount(self) -> None:
        self._status()
        self.stream()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While the search box has the focus, letters are typed, not keys.
        found = self.query("#logs-search")
        if found and found.first(Input).has_focus:
            return action in _KEYS_WHILE_TYPING
        return True

    # --- the stream ----------------------------------------------------------------

    async def _resolve_containers(self) -> None:
        """kubectl's default: the regular containers first, then the init ones."""
        from megatui.ui.describe import container_names

        pod = await self.monitor.kube_object("pod", self.namespace, self.pod)
        self.containers = container_names(pod)
        if not self.containers:
            raise ActionError(f"pod {self.pod} has no containers")
        self.container = self.containers[0]

    @work(group="logs-follow", exclusive=True, exit_on_error=False)
    async def stream(self) -> None:
        self.buffer = LogBuffer()
        self.error = None
        self.state = "previous run" if self.previous else "following"
        self.text_area.load_text("")
        self._status()
        try:
            if not self.containers:
                await self._resolve_containers()
            await self.monitor.follow_pod_logs(
                self.namespace,
                self.pod,
                self.container,
                self.buffer,
                self._arrived,
                previous=self.previous,
            )
            self.state = "previous run" if self.previous else "ended (the container stopped)"
        except ActionError as exc:
            self.error = str(exc)
        except Exception as exc:  # a core bug or I/O failure: one line, keep the screen
            self.error = f"cannot read the log: {exc}"
        self._status()

    def _format(self, line: LogLine) -> str:
        return f"{line.stamp} {line.text}" if self.timestamps and line.stamp else line.text

    def _arrived(self, lines: list[LogLine]) -> None:
        if not self.is_mounted:
            return
        area = self.text_area
        doc = area.document
        text = "\n".join(self._format(line) for line in lines)
        at_end = doc.line_count <= 1 and not doc.text
        area.insert(text if at_end else "\n" + text, doc.end)
        excess = area.document.line_count - MAX_LINES
        if excess > 1000:  # trim in steps, not on every line
            area.delete((0, 0), (excess, 0))
        self._status()

    def _rebuild(self) -> None:
        self.text_area.load_text("\n".join(self._format(line) for line in self.buffer.lines))
        self._find(keep=True)

    # --- status --------------------------------------------------------------------

    def _status(self) -> None:
        if not self.is_mounted:
            return
        parts: list[str | tuple[str, str]] = [("container ", render.MUTED), self.container or "…"]
        if len(self.containers) > 1:
            parts.append((f" (one of {len(self.containers)}, c: next)", render.MUTED))
        if self.error:
            parts += ["  ", (self.error, render.BAD)]
        else:
            held = len(self.buffer.lines)
            parts += [("  " + self.state, render.BUSY), ("  ", ""), f"{held:,} lines"]
            if self.buffer.dropped:
                parts.append((f" (keeps the last {MAX_LINES:,})", render.WARN))
        if self.matches:
            parts.append((f"  match {self.match_at + 1}/{len(self.matches)}", render.OK))
        elif self.needle:
            parts.append((f"  no match for {self.needle!r}", render.WARN))
        if self.saved_to is not None:
            parts.append((f"  saved to {self.saved_to}", render.OK))
        self.query_one("#logs-status", TextLine).show(Text.assemble(*parts, no_wrap=True, end=""))

    # --- keys ----------------------------------------------------------------------

    def action_close(self) -> None:
        search_box = self.query_one("#logs-search", Input)
        if search_box.has_class("open"):
            search_box.remove_class("open")
            self.text_area.focus()
            return
        self.dismiss(None)

    def action_next_container(self) -> None:
        if len(self.containers) > 1:
            i = self.containers.index(self.container)
            self.containers = self.containers[i + 1 :] + self.containers[: i + 1]
            self.container = self.containers[0]
            self.stream()

    def action_previous(self) -> None:
        self.previous = not self.previous
        self.stream()

    def action_wrap(self) -> None:
        self.text_area.soft_wrap = not self.text_area.soft_wrap

    def action_timestamps(self) -> None:
        self.timestamps = not self.timestamps
        self._rebuild()

    def action_search(self) -> None:
        box = self.query_one("#logs-search", Input)
        box.add_class("open")
        box.focus()

    @on(Input.Submitted, "#logs-search")
    def _searched(self, event: Input.Submitted) -> None:
        self.needle = event.value
        event.input.remove_class("open")
        self.text_area.focus()
        self._find(keep=False)

    def _find(self, *, keep: bool) -> None:
        if not self.needle:
            self.matches = []
            self._status()
            return
        lines = self.text_area.document.lines
        self.matches = search(lines, self.needle)
        if not self.matches:
            self.match_at = -1
        elif not keep or self.match_at >= len(self.matches):
            row = self.text_area.cursor_location[0]
            self.match_at = next((i for i, r in enumerate(self.matches) if r >= row), 0)
        self._select()
        self._status()

    def action_match(self, step: int) -> None:
        if not self.matches:
            self.notify("nothing to find: / searches", severity="warning", timeout=2)
            return
        self.match_at = (self.match_at + step) % len(self.matches)
        self._select()
        self._status()

    def _select(self) -> None:
        if not self.matches or self.match_at < 0:
            return
        row = self.matches[self.match_at]
        line = self.text_area.document.get_line(row)
        col = line.lower().find(self.needle.lower())
        area = self.text_area
        area.selection = Selection((row, col), (row, col + len(self.needle)))
        area.scroll_cursor_visible(center=True, animate=False)

    def action_save(self) -> None:
        folder = state_dir() / "pod-logs"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run = "-previous" if self.previous else ""
        path = folder / f"{self.namespace}_{self.pod}_{self.container}{run}-{stamp}.log"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with path.open("w", encoding="utf-8") as out:
                for line in self.buffer.lines:
                    out.write(f"{line.stamp} {line.text}\n" if line.stamp else line.text + "\n")
        except OSError as exc:
            self.notify(f"cannot save the log: {exc}", severity="error", markup=False)
            return
        self.saved_to = path
        self.notify(f"saved {len(self.buffer.lines):,} lines to {path}", markup=False)
        self._status()

    def show_error(self, message: str) -> None:
        self.query_one("#logs-status", TextLine).show(literal(message, render.BAD))
