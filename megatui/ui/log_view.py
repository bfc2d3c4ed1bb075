"""LogView: a line-API viewer for up to 10,000 log lines that keep arriving.

Textual's TextArea recomputes its wrapped height over every line on each frame, so
a log growing by 2,000 lines a second made a keypress wait hundreds of ms. Here a
frame renders only the visible rows, an append costs the new lines, and wrapping is
a row index rebuilt only when the width or the wrap mode changes.

Lines are plain text already made inert (sources/kube_logs.py) and are drawn as
literal `Text`, never parsed as markup. Matches of the search are underlined, the
current match reversed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from megatui.sources.kube_logs import MAX_LINES

_MATCH = Style(underline=True, bold=True)
_CURRENT = Style(reverse=True, bold=True)


class LogView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    LogView { background: $boost; scrollbar-size: 1 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "scroll_up", "up", show=False),
        Binding("down,j", "scroll_down", "down", show=False),
        Binding("left", "scroll_left", "left", show=False),
        Binding("right", "scroll_right", "right", show=False),
        Binding("pageup", "page_up", "page up", show=False),
        Binding("pagedown", "page_down", "page down", show=False),
        Binding("home", "scroll_home", "top", show=False),
        Binding("end", "scroll_end", "bottom", show=False),
    ]

    def __init__(self, *, id: str | None = None, limit: int = MAX_LINES) -> None:
        super().__init__(id=id)
        self.lines: deque[str] = deque(maxlen=limit)
        self.wrap = False
        self.needle = ""
        self.current: int | None = None  # index in `lines` of the current match
        self._widest = 0
        self._rows: list[tuple[int, int, int]] = []  # wrapped: (line, start, end)
        self._rows_width = 0

    # --- content -------------------------------------------------------------------

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def set_lines(self, lines: Iterable[str]) -> None:
        self.lines.clear()
        self._widest = 0
        self.append(list(lines))

    def append(self, lines: list[str]) -> None:
        if not lines:
            return
        follow = self.scroll_y >= self.max_scroll_y  # at the bottom: stay there
        dropped = max(0, len(self.lines) + len(lines) - (self.lines.maxlen or 0))
        self.lines.extend(lines)
        self._widest = max(self._widest, *(len(line) for line in lines))
        if self.current is not None:
            self.current = self.current - dropped if self.current >= dropped else None
        if self.wrap:
            if dropped:
                self._rows = []  # rebuilt below, from what is left
            self._wrap_rows()
        self._resize()
        if follow:
            # After the refresh: the new virtual size must be laid out before the
            # scroll can reach its new bottom.
            self.call_after_refresh(self.scroll_end, animate=False, x_axis=False)

    def set_wrap(self, wrap: bool) -> None:
        self.wrap = wrap
        self._rows = []
        self._rows_width = 0
        if wrap:
            self._wrap_rows()
        self._resize()
        if self.current is not None:
            self.show_line(self.current)

    def highlight(self, needle: str, current: int | None) -> None:
        self.needle = needle
        self.current = current
        self.refresh()
        if current is not None:
            self.show_line(current)

    def show_line(self, index: int) -> None:
        """Scroll so that line `index` is in the middle of the view."""
        row = index
        if self.wrap:
            row = next((i for i, r in enumerate(self._rows) if r[0] == index), 0)
        self.call_after_refresh(
            self.scroll_to, y=max(0, row - self.size.height // 2), animate=False
        )

    # --- layout --------------------------------------------------------------------

    def _width(self) -> int:
        return max(1, self.scrollable_content_region.width or self.size.width or 80)

    def _wrap_rows(self) -> None:
        width = self._width()
        if width != self._rows_width:
            self._rows = []
            self._rows_width = width
        done = self._rows[-1][0] + 1 if self._rows else 0
        for index in range(done, len(self.lines)):
            length = len(self.lines[index])
            self._rows.extend(
                (index, start, min(length, start + width)) for start in range(0, length, width)
            )
            if length == 0:
                self._rows.append((index, 0, 0))

    def _resize(self) -> None:
        if self.wrap:
            self.virtual_size = Size(self._width(), len(self._rows))
        else:
            self.virtual_size = Size(self._widest, len(self.lines))
        self.refresh()

    def on_resize(self) -> None:
        if self.wrap:
            self._wrap_rows()
            self._resize()

    # --- drawing -------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        row = int(self.scroll_y) + y
        if self.wrap:
            if row >= len(self._rows):
                return Strip.blank(width)
            index, start, end = self._rows[row]
            x = 0
        else:
            if row >= len(self.lines):
                return Strip.blank(width)
            index, start, end = row, 0, len(self.lines[row])
            x = int(self.scroll_x)
        line = self.lines[index]
        text = Text(line[start:end], no_wrap=True, end="")
        if self.needle:
            style = _CURRENT if index == self.current else _MATCH
            low, needle = line.lower(), self.needle.lower()
            at = low.find(needle)
            while at >= 0:
                a, b = max(at, start), min(at + len(needle), end)
                if a < b:
                    text.stylize(style, a - start, b - start)
                at = low.find(needle, at + 1)
        segments = list(text.render(self.app.console))
        strip = Strip(segments).crop(x, x + width) if x else Strip(segments)
        return strip.extend_cell_length(width).crop(0, width).apply_style(self.rich_style)
