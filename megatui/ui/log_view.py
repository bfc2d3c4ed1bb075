"""LogView: a line-API viewer for up to 10,000 log lines that keep arriving.

Textual's TextArea recomputes its wrapped height over every line on each frame, so
a log growing by 2,000 lines a second made a keypress wait hundreds of ms. Here a
frame renders only the visible rows and an append costs the new lines:

* the wrapped rows of every line are kept for the current width, wrapping or not,
  and extended per append; lines that fall off the front drop their rows. `w`
  switches the row table, it re-measures nothing (a full re-measure, ~30 ms for
  10,000 lines, ran on every batch of lines while wrapped, and on every `w`);
* a drawn row is kept (by line, span, scroll and highlight) until the line falls
  off, so a frame where only the scrollbar or one row changed redraws nothing else.

Lines are plain text already made inert (sources/kube_logs.py) and are drawn as
literal `Text`, never parsed as markup. Matches of the search are underlined, the
current match reversed.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Iterable
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from megatui.sources.kube_logs import MAX_LINES

_MATCH = Style(underline=True, bold=True)
_CURRENT = Style(reverse=True, bold=True)


class LogView(ScrollView, can_focus=True):
    DEFAULT_CSS = """
    LogView { background: $boost; scrollbar-size: 1 1; }
    """
    # Alike in shape with KeyedTable's (ui/table.py): the same keys, bound to a
    # scrolling view's actions here and to a cursor's there.
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
    _STRIPS = 2_000  # drawn rows kept; a screen shows a few dozen

    def __init__(self, *, id: str | None = None, limit: int = MAX_LINES) -> None:
        super().__init__(id=id)
        self.lines: deque[str] = deque(maxlen=limit)
        self.wrap = False
        self.needle = ""
        self.current: int | None = None  # index in `lines` of the current match
        self._widest = 0
        self._base = 0  # how many lines fell off the front: lines[0]'s absolute number
        self._rows: list[tuple[int, int, int]] = []  # (absolute line, start, end)
        self._rows_width = 0  # the width `_rows` were cut for; 0: not cut
        self._strips: dict[tuple[object, ...], Strip] = {}
        self._style = Style()

    # --- content -------------------------------------------------------------------

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def set_lines(self, lines: Iterable[str]) -> None:
        self.lines.clear()
        self._widest = 0
        self._base = 0
        self._rows = []
        self._rows_width = 0
        self._strips.clear()
        self.append(list(lines))

    def append(self, lines: list[str]) -> None:
        if not lines:
            return
        follow = self.scroll_y >= self.max_scroll_y  # at the bottom: stay there
        dropped = max(0, len(self.lines) + len(lines) - (self.lines.maxlen or 0))
        first = self._base + len(self.lines)  # absolute number of lines[0] of the new
        self.lines.extend(lines)
        self._widest = max(self._widest, *(len(line) for line in lines))
        if self.current is not None:
            self.current = self.current - dropped if self.current >= dropped else None
        if dropped:
            self._base += dropped
            self._drop_rows()
        if self._rows_width:
            self._cut(first, self._rows_width)
        if self.wrap and self._rows_width != self._width():
            self._wrap_rows()
        self._resize()
        if follow:
            # After the refresh: the new virtual size must be laid out before the
            # scroll can reach its new bottom.
            self.call_after_refresh(self.scroll_end, animate=False, x_axis=False)

    def set_wrap(self, wrap: bool) -> None:
        self.wrap = wrap
        if wrap and self._rows_width != self._width():
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
            row = bisect_left(self._rows, self._base + index, key=_line_of)
        self.call_after_refresh(
            self.scroll_to, y=max(0, row - self.size.height // 2), animate=False
        )

    # --- layout --------------------------------------------------------------------

    def _width(self) -> int:
        return max(1, self.scrollable_content_region.width or self.size.width or 80)

    def _wrap_rows(self) -> None:
        """Cut every line into rows of the current width (a resize, the first `w`)."""
        self._rows = []
        self._rows_width = self._width()
        self._cut(self._base, self._rows_width)

    def _cut(self, first: int, width: int) -> None:
        """Append the rows of lines from absolute number `first` on."""
        rows = self._rows
        lines = self.lines
        for number in range(max(first, self._base), self._base + len(lines)):
            length = len(lines[number - self._base])
            if length <= width:
                rows.append((number, 0, length))
                continue
            for start in range(0, length, width):
                rows.append((number, start, min(length, start + width)))

    def _drop_rows(self) -> None:
        """Forget the rows of lines that fell off."""
        del self._rows[: bisect_left(self._rows, self._base, key=_line_of)]

    def _resize(self) -> None:
        if self.wrap:
            self.virtual_size = Size(self._width(), len(self._rows))
        else:
            self.virtual_size = Size(self._widest, len(self.lines))
        self.refresh()

    def on_resize(self) -> None:
        if self._rows_width != self._width():
            self._rows_width = 0  # cut again when wrapping needs it
            self._rewrap()

    # --- drawing -------------------------------------------------------------------

    def _rewrap(self) -> None:
        if self.wrap and self._rows_width != self._width():
            self._wrap_rows()
            self._resize()

    def render_lines(self, crop: Region) -> list[Strip]:
        if self.wrap and self._rows_width != self._width():
            # A scrollbar came or went: the width changed without a resize.
            self.call_after_refresh(self._rewrap)
        self._style = self.rich_style  # once a frame, not once a row
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        row = int(self.scroll_y) + y
        if self.wrap:
            if row >= len(self._rows):
                return Strip.blank(width)
            number, start, end = self._rows[row]
            index = number - self._base
            x = 0
        else:
            if row >= len(self.lines):
                return Strip.blank(width)
            index, start, end = row, 0, len(self.lines[row])
            number = self._base + index
            x = int(self.scroll_x)
        key = (number, start, end, x, width, self.needle, index == self.current, self._style)
        strip = self._strips.get(key)
        if strip is None:
            if len(self._strips) >= self._STRIPS:
                self._strips.clear()
            strip = self._strips[key] = self._draw(self.lines[index], start, end, x, width, index)
        return strip

    def _draw(self, line: str, start: int, end: int, x: int, width: int, index: int) -> Strip:
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
        return strip.extend_cell_length(width).crop(0, width).apply_style(self._style)


def _line_of(row: tuple[int, int, int]) -> int:
    return row[0]
