"""Pod logs (`l` on a pod or in its detail): the last 500 lines, then follow.

Keys: `c` next container, `p` previous run (the one that crashed) or back, `/`
search (highlighted as a selection), `n`/`N` next/previous match, `w` wrap, `t`
timestamps, `s` save the buffer to a file (the path is shown). The follow stream
is a worker of this screen: closing the screen cancels it. The buffer keeps the
last 10,000 lines, and the status line says so. Text arrives inert (control
bytes replaced by visible glyphs in sources/kube_logs.py), and
LogView (ui/log_view.py) draws it as literal text: nothing in a log is interpreted.
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
from textual.timer import Timer
from textual.widgets import Footer, Input

from megatui.api import ActionError, MonitorAPI
from megatui.config import state_dir
from megatui.sources.kube_logs import MAX_LINES, LogBuffer, LogLine, search
from megatui.ui import render
from megatui.ui.heap import forget_closed_widgets
from megatui.ui.log_view import LogView
from megatui.ui.panels import TextLine
from megatui.ui.render import literal

_KEYS_WHILE_TYPING = frozenset({"close"})


class LogsScreen(ModalScreen[None]):
    FLUSH = 0.1  # seconds between two appends to the text
    DEFAULT_CSS = """
    /* opaque: it covers the whole screen, so the one below is neither drawn nor dimmed */
    LogsScreen { align: center middle; background: $background; }
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
        self._pending: list[LogLine] = []
        self._flush_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="logs") as box:
            box.border_title = Text(f"Logs {self.namespace}/{self.pod}")
            yield TextLine(id="logs-status")
            yield LogView(id="logs-text")
            yield Input(placeholder="search, enter to find", id="logs-search")
        yield Footer()

    @property
    def view(self) -> LogView:
        return self.query_one("#logs-text", LogView)

    def on_mount(self) -> None:
        self._status()
        self.stream()

    def on_unmount(self) -> None:
        forget_closed_widgets()

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
        self._pending = []
        self.error = None
        self.state = "previous run" if self.previous else "following"
        self.view.set_lines([])
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
        self._flush()
        self._status()

    def _format(self, line: LogLine) -> str:
        return f"{line.stamp} {line.text}" if self.timestamps and line.stamp else line.text

    def _arrived(self, lines: list[LogLine]) -> None:
        """Lines are shown in batches at most every FLUSH seconds: a pod writing
        thousands of lines a second costs a few edits of the text, not thousands."""
        self._pending.extend(lines)
        if self._flush_timer is None and self.is_mounted:
            self._flush_timer = self.set_timer(self.FLUSH, self._flush)

    def _flush(self) -> None:
        self._flush_timer = None
        lines, self._pending = self._pending[-MAX_LINES:], []
        if not lines or not self.is_mounted:
            return
        self.view.append([self._format(line) for line in lines])
        self._status()

    def _rebuild(self) -> None:
        self.view.set_lines(self._format(line) for line in self.buffer.lines)
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
            self.view.focus()
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
        self.view.set_wrap(not self.view.wrap)

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
        self.view.focus()
        self._find(keep=False)

    def _find(self, *, keep: bool) -> None:
        """All matches; the current one is kept (`keep`) or is the first at or below
        the top of the view."""
        self.matches = search(list(self.view.lines), self.needle) if self.needle else []
        current = self.view.current if keep else None
        if not self.matches:
            self.match_at = -1
        elif current is not None and current in self.matches:
            self.match_at = self.matches.index(current)
        else:
            top = 0 if self.view.wrap else int(self.view.scroll_y)
            self.match_at = next((i for i, row in enumerate(self.matches) if row >= top), 0)
        self._select()
        self._status()

    def action_match(self, step: int) -> None:
        # Lines fall off the front as new ones arrive: find again, then step from the
        # line that is the current match now.
        current = self.view.current
        self.matches = search(list(self.view.lines), self.needle) if self.needle else []
        if not self.matches:
            self.notify("nothing to find: / searches", severity="warning", timeout=2)
            self._status()
            return
        if current is None:
            self.match_at = 0 if step > 0 else len(self.matches) - 1
        elif step > 0:
            self.match_at = next((i for i, r in enumerate(self.matches) if r > current), 0)
        else:
            before = [i for i, r in enumerate(self.matches) if r < current]
            self.match_at = before[-1] if before else len(self.matches) - 1
        self._select()
        self._status()

    def _select(self) -> None:
        row = self.matches[self.match_at] if self.matches and self.match_at >= 0 else None
        self.view.highlight(self.needle, row)

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
