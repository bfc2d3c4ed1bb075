"""The tables of the control room: rows identified by the data's own keys.

`KeyedTable` is a line-API widget written for what the panels do, rather than
Textual's DataTable. DataTable caches its rendering by row index, cursor position
and focus state, so every cursor move re-assembles every visible line and every
focus change (and every restyle of a panel, which Textual 8.2.8 does on each focus
change because its style comparison never finds two rule sets equal) re-renders
every visible cell from scratch: 200-400 ms a key with 2,000 pods on screen
(docs/performance.md). Here one row is rendered once into a Strip, kept by its key
until its cells change, and only the lines that really change are refreshed: a
cursor move repaints two lines, a focus change one.

Every snapshot is applied as a diff (new rows, changed cells, rows that went away),
never as clear-and-refill, so the cursor stays on its row and an unchanged poll
repaints nothing. Column widths are fixed, so nothing is ever measured.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Self

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.dom import NoScreen
from textual.geometry import Region, Size
from textual.reactive import Reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from megatui.ui.render import cell_signature


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    #: Cells of this column are cut to this many terminal cells.
    width: int


@dataclass(frozen=True, slots=True)
class Row:
    key: str
    cells: tuple[Text, ...]


class RowCache:
    """Hands out the same Row object while a row's source data is equal, so a panel
    does not rebuild (and KeyedTable.sync does not compare) thousands of unchanged
    rows on every snapshot. Keys not asked for during one draw are forgotten."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[object, Row]] = {}
        self._next: dict[str, tuple[object, Row]] = {}

    def row(self, key: str, source: object, cells: Callable[[], tuple[Text, ...]]) -> Row:
        """The Row for `key`: the previous one if `source` equals its source, else
        a new one from `cells()`. `source` must hold everything the cells show."""
        hit = self._last.get(key)
        row = hit[1] if hit is not None and hit[0] == source else Row(key, cells())
        self._next[key] = (source, row)
        return row

    def done(self) -> None:
        """Call at the end of each draw."""
        self._last, self._next = self._next, {}


#: Blank cells on each side of a cell, as kubectl's columns are spaced.
CELL_PADDING = 1
HEADER = "keyed-table--header"
CURSOR = "keyed-table--cursor"
CURSOR_BLURRED = "keyed-table--cursor-blurred"


class KeyedTable(ScrollView, can_focus=True):
    """A table with a row cursor, a fixed header line and fixed column widths, whose
    rows are identified by keys and updated by `sync`."""

    DEFAULT_CSS = """
    KeyedTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        & > .keyed-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .keyed-table--cursor {
            background: $block-cursor-background;
            color: $block-cursor-foreground;
            text-style: $block-cursor-text-style;
        }
        & > .keyed-table--cursor-blurred {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """
    # The cursor's look with and without focus is two component classes, not a
    # `:focus` rule: see watch_has_focus.
    COMPONENT_CLASSES: ClassVar[set[str]] = {HEADER, CURSOR, CURSOR_BLURRED}

    # No `enter`: it is the app's "ssh" key and must reach the app from any table.
    # LogView (ui/log_view.py) binds the same keys to scrolling: alike in shape only.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Cursor up", show=False),
        Binding("down,j", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first_row", "First row", show=False),
        Binding("end,ctrl+end", "last_row", "Last row", show=False),
        Binding("left", "scroll_columns(-1)", "Scroll left", show=False),
        Binding("right", "scroll_columns(1)", "Scroll right", show=False),
    ]

    #: Index of the cursor's row. Lines are refreshed by hand (two per move), so the
    #: reactive itself repaints nothing.
    cursor_row: Reactive[int] = Reactive(0, repaint=False, init=False)

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        id: str | None = None,
        classes: str | None = None,
        follow_head: bool = False,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self._columns = tuple(columns)
        #: A cursor on the first row stays on the first row (for newest-first lists,
        #: which would otherwise scroll the news out of sight to keep the cursor's row).
        self.follow_head = follow_head
        #: Whether anyone put the cursor on a row. Until then it stays on the first
        #: row while rows arrive: a list filled one watch event at a time (the
        #: Applications) would else carry it to the row that came first, often the last.
        self.cursor_placed = False
        self._order: list[str] = []
        self._index: dict[str, int] = {}
        self._cells: dict[str, tuple[Text, ...]] = {}
        #: The Row objects of the last sync, by key (see RowCache).
        self._given: dict[str, Row] = {}
        #: Rendered rows without the cursor, by key, valid for `_base_styles`.
        self._strips: dict[str, Strip] = {}
        self._header: Strip | None = None
        #: The cursor's line: (key, its cells, the cursor style, the strip).
        self._cursor_strip: tuple[str, tuple[Text, ...], Style, Strip] | None = None
        self._base_styles: tuple[Style, Style] | None = None
        #: Cells written since the table was created: lets tests and benchmarks check
        #: that an unchanged snapshot or a clock tick costs nothing.
        self.cell_writes = 0
        self._width = sum(c.width + 2 * CELL_PADDING for c in self._columns)
        self._sizes: tuple[Size, Size, Size] | None = None
        self._empty_text = ""
        self.virtual_size = Size(self._width, 1)

    # --- reading -------------------------------------------------------------------

    @property
    def row_count(self) -> int:
        return len(self._order)

    @property
    def keys(self) -> list[str]:
        """Row keys in display order."""
        return list(self._order)

    @property
    def cursor_key(self) -> str | None:
        if not self._order:
            return None
        return self._order[min(self.cursor_row, len(self._order) - 1)]

    @property
    def empty_text(self) -> str:
        """What the first line says when the table has no rows ("" for nothing)."""
        return self._empty_text

    @empty_text.setter
    def empty_text(self, text: str) -> None:
        if text != self._empty_text:
            self._empty_text = text
            if not self._order and self.is_mounted:
                self.refresh(Region(0, 1, self.size.width, 1))

    def get_row(self, key: str) -> tuple[Text, ...]:
        return self._cells[key]

    def get_row_index(self, key: str) -> int:
        return self._index[key]

    # --- keys ----------------------------------------------------------------------

    #: While its panel's filter is edited, printable keys are text for the filter,
    #: not bindings (as an Input's are): see Panel.on_key.
    consumes_text = False

    def check_consume_key(self, key: str, character: str | None) -> bool:
        return self.consumes_text and character is not None and character.isprintable()

    # --- cursor --------------------------------------------------------------------

    def validate_cursor_row(self, row: int) -> int:
        return max(0, min(row, len(self._order) - 1))

    def watch_cursor_row(self, old: int, new: int) -> None:
        # Only a move (a key, a click, select_key) comes here: sync sets it quietly.
        self.cursor_placed = True
        self._refresh_row(old)
        self._refresh_row(new)
        self._scroll_to_cursor()

    def focus(self, scroll_visible: bool = True) -> Self:
        # Widget.focus repaints the whole table, and moves the focus only later: `3`
        # then `/` typed quickly would open the filter of the panel the focus left.
        def set_focus(widget: Widget) -> None:
            with contextlib.suppress(NoScreen):
                widget.screen.set_focus(self, scroll_visible=scroll_visible)

        if self.is_mounted:
            set_focus(self)
        else:
            self.app.call_later(set_focus, self)
        return self

    def _on_focus(self, event: events.Focus) -> None:
        # Widget's own handler repaints the whole table; only the cursor changes.
        event.prevent_default()
        self.has_focus = True
        if self.parent is not None:
            self.parent.post_message(events.DescendantFocus(self))

    def _on_blur(self, event: events.Blur) -> None:
        event.prevent_default()
        self.has_focus = False
        if self.parent is not None:
            self.parent.post_message(events.DescendantBlur(self))

    def watch_has_focus(self, has_focus: bool) -> None:
        # Textual restyles a widget and its scrollbars whenever it gains or loses
        # the focus, and every restyle repaints them in full. Nothing in this
        # table's CSS depends on focus; only the cursor's line looks different.
        self._refresh_row(self.cursor_row)

    def _cursor_style(self) -> Style:
        return self.get_component_rich_style(CURSOR if self.has_focus else CURSOR_BLURRED)

    def select_key(self, key: str) -> bool:
        index = self._index.get(key)
        if index is None:
            return False
        self.cursor_placed = True  # also when it is on that row already
        self.cursor_row = index
        return True

    @property
    def _page(self) -> int:
        """Data rows that fit on screen below the header."""
        return max(1, self.scrollable_content_region.height - 1)

    def _scroll_to_cursor(self) -> None:
        if not self.is_mounted or self.scrollable_content_region.height <= 1:
            return
        top, cursor = round(self.scroll_y), self.cursor_row
        if cursor < top:
            self.scroll_to(y=cursor, animate=False, immediate=True)
        elif cursor >= top + self._page:
            self.scroll_to(y=cursor - self._page + 1, animate=False, immediate=True)

    def on_resize(self) -> None:
        self._scroll_to_cursor()

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        # ScrollView redoes (and repaints) its scrollbars on every layout of the screen,
        # even when the table did not change: the virtual size the compositor passes in
        # is never the table's own. On a short screen, where every focus change scrolls
        # the panels, that was a second frame after each one.
        sizes = (size, self.virtual_size, container_size)
        if sizes == self._sizes:
            return False
        self._sizes = sizes
        return super()._size_updated(size, virtual_size, container_size, layout)

    def action_cursor_up(self) -> None:
        self.cursor_row -= 1

    def action_cursor_down(self) -> None:
        self.cursor_row += 1

    def action_page_up(self) -> None:
        self.cursor_row -= self._page

    def action_page_down(self) -> None:
        self.cursor_row += self._page

    def action_first_row(self) -> None:
        self.cursor_row = 0

    def action_last_row(self) -> None:
        self.cursor_row = len(self._order) - 1

    def action_scroll_columns(self, direction: int) -> None:
        self.scroll_to(x=self.scroll_x + 8 * direction, animate=False, immediate=True)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return  # the header, or a scrollbar
        index = round(self.scroll_y) + offset.y - 1
        if index < len(self._order):
            self.cursor_row = index

    # --- writing -------------------------------------------------------------------

    @property
    def columns(self) -> tuple[Column, ...]:
        return self._columns

    def set_columns(self, columns: Sequence[Column]) -> None:
        """Show other columns (a fleet's VMs gain WORKER and RESTARTS). Every row
        is rendered anew by the next `sync`, which the caller makes at once: no
        frame may come between the two, as the old cells no longer fit."""
        columns = tuple(columns)
        if columns == self._columns:
            return
        self._columns = columns
        self._width = sum(c.width + 2 * CELL_PADDING for c in columns)
        self._cells.clear()
        self._given.clear()
        self._strips.clear()
        self._header = None
        self._cursor_strip = None
        self.virtual_size = Size(self._width, len(self._order) + 1)
        self.refresh()

    def clear(self) -> None:
        """Remove every row."""
        self.sync(())

    def sync(self, rows: Sequence[Row]) -> bool:
        """Make the table show `rows`, in that order, touching only what differs.

        Returns whether anything changed. The cursor stays on the row it was on (by
        key), wherever that row moves; if that row went away it stays where it was."""
        wanted: dict[str, Row] = {}
        for row in rows:
            # Keys are names the outside world chose; a duplicate must not take the
            # whole control room down, so the first one wins.
            wanted.setdefault(row.key, row)
        cursor_key = self.cursor_key
        if (self.follow_head or not self.cursor_placed) and self.cursor_row == 0:
            cursor_key = None
        cells: dict[str, tuple[Text, ...]] = {}
        dirty: list[str] = []
        for key, row in wanted.items():
            old = self._cells.get(key)
            if old is not None and self._given.get(key) is row:
                cells[key] = old  # the very Row of the last sync: unchanged
                continue
            if old is None:
                cells[key] = row.cells
                self.cell_writes += len(row.cells)
                dirty.append(key)
                continue
            cells[key] = self._diff_cells(key, old, row, dirty)
        gone = [key for key in self._cells if key not in cells]
        order = list(wanted)
        moved = order != self._order
        self._given = wanted
        self._cells = cells
        for key in gone:
            self._strips.pop(key, None)
        for key in dirty:
            self._strips.pop(key, None)
        if not (moved or dirty):
            return False
        if moved:
            self._order = order
            self._index = {key: index for index, key in enumerate(order)}
            self._resize(len(order))
            self.refresh()
        else:
            for key in dirty:
                self._refresh_row(self._index[key])
        self._place_cursor(cursor_key)
        return True

    def update(self, rows: Sequence[Row]) -> bool:
        """Change the cells of rows the table already shows, in place: for a snapshot
        that kept every row and its order (ui/row_keeper.py), so a few changed rows of
        thousands cost those rows, not a walk over all. Keys it does not show are
        ignored (`sync` adds rows). Returns whether anything changed."""
        dirty: list[str] = []
        for row in rows:
            old = self._cells.get(row.key)
            if old is None or self._given.get(row.key) is row:
                continue
            self._given[row.key] = row
            self._cells[row.key] = self._diff_cells(row.key, old, row, dirty)
        for key in dirty:
            self._strips.pop(key, None)
            self._refresh_row(self._index[key])
        return bool(dirty)

    def _diff_cells(
        self, key: str, old: tuple[Text, ...], row: Row, dirty: list[str]
    ) -> tuple[Text, ...]:
        """The row's new cells, keeping the old Text of every cell that looks the
        same (so its rendering stays valid); `key` goes to `dirty` if any changed."""
        kept = tuple(
            before if cell_signature(before) == cell_signature(after) else after
            for before, after in zip(old, row.cells, strict=True)
        )
        writes = sum(a is not b for a, b in zip(kept, old, strict=True))
        if writes:
            self.cell_writes += writes
            dirty.append(key)
        return kept

    def _resize(self, rows: int) -> None:
        size = Size(self._width, rows + 1)
        old = self.virtual_size
        if size == old:
            return
        visible = self.scrollable_content_region.height
        height = self.styles.height
        sized_by_rows = height is None or height.is_auto
        if self.is_mounted and (
            not sized_by_rows or (old.height > visible and size.height >= visible)
        ):
            # The table's box keeps its size (a fixed height, or taller than its cap
            # before and after): only the scrollbar changes. Setting virtual_size would
            # lay the whole screen out and repaint all of it on every key typed in a
            # filter. (_scroll_update is what a layout would call: Textual 8.2.8.)
            self.set_reactive(KeyedTable.virtual_size, size)
            self._scroll_update(size)
        else:
            self.virtual_size = size

    def _place_cursor(self, key: str | None) -> None:
        if key is not None and key in self._index:
            target = self._index[key]
        elif key is None:
            target = 0
        else:
            target = self.cursor_row  # its row went away: stay put, as a list does
        # Not through the reactive: its watcher would repaint lines that the caller
        # already repainted, and the validator must clamp even an equal value.
        before, after = self.cursor_row, self.validate_cursor_row(target)
        if after != before:
            self.set_reactive(KeyedTable.cursor_row, after)
            self._refresh_row(before)
            self._refresh_row(after)
        self._scroll_to_cursor()

    def _refresh_row(self, index: int) -> None:
        if 0 <= index < len(self._order) and self.is_mounted:
            line = index + 1 - round(self.scroll_y)
            if 1 <= line < self.size.height:
                self.refresh(Region(0, line, self.size.width, 1))

    # --- drawing -------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        # Rendered rows stay valid until the widget's own colours change (a theme, a
        # stale panel); a restyle that changes nothing keeps them.
        base = (self.rich_style, self.get_component_rich_style(HEADER))
        if base != self._base_styles:
            self._base_styles = base
            self._strips.clear()
            self._header = None
            self._cursor_strip = None
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        scroll_x, scroll_y = round(self.scroll_x), round(self.scroll_y)
        style = self.rich_style
        if y == 0:
            strip = self._header_strip()
        else:
            index = scroll_y + y - 1
            if index >= len(self._order):
                if index == 0 and self._empty_text:
                    return self._empty_line(width, style)
                return Strip.blank(width, style)
            key = self._order[index]
            if index == self.cursor_row:
                # The cursor bar spans the whole width, past the last column.
                style = self._cursor_style()
                strip = self._cursor_line(key)
            else:
                strip = self._line(key)
        return strip.crop_extend(scroll_x, scroll_x + width, style)

    def _empty_line(self, width: int, style: Style) -> Strip:
        text = Text(" " * CELL_PADDING + self._empty_text)
        line = Segment.apply_style(text.render(self.app.console), style + Style(dim=True))
        return Strip(line).crop_extend(0, width, style)

    def _header_strip(self) -> Strip:
        if self._header is None:
            labels = tuple(Text(column.label, end="") for column in self._columns)
            self._header = self._render_cells(labels, self.get_component_rich_style(HEADER))
        return self._header

    def _line(self, key: str) -> Strip:
        strip = self._strips.get(key)
        if strip is None:
            strip = self._strips[key] = self._render_cells(self._cells[key], self.rich_style)
        return strip

    def _cursor_line(self, key: str) -> Strip:
        cursor = self._cursor_style()
        cells = self._cells[key]
        cached = self._cursor_strip
        if cached is not None and cached[0] == key and cached[1] is cells and cached[2] == cursor:
            return cached[3]
        # The focused cursor is one solid bar, as in k9s: a red CrashLoopBackOff on
        # its blue would be unreadable. The quiet cursor of a table without focus
        # keeps the cells' colours and only lends them its background.
        post = (
            Style(color=cursor.color, bgcolor=cursor.bgcolor)
            if self.has_focus
            else Style(bgcolor=cursor.bgcolor)
        )
        strip = self._render_cells(cells, cursor, post)
        self._cursor_strip = (key, cells, cursor, strip)
        return strip

    def _render_cells(self, cells: Sequence[Text], base: Style, post: Style | None = None) -> Strip:
        console = self.app.console
        pad = Segment(" " * CELL_PADDING, base)
        segments: list[Segment] = []
        for column, cell in zip(self._columns, cells, strict=False):
            if "\n" in cell.plain:
                cell = cell.split("\n")[0]  # one line a row; the detail screen has the rest
            if cell.cell_len > column.width:
                cell = cell.copy()
                cell.truncate(column.width, overflow=cell.overflow or "fold")
            # Text.render leaves a Text's own style to its caller when it has no spans.
            own = console.get_style(cell.style, default=Style.null()) if cell.style else None
            line = Segment.apply_style(cell.render(console), base + own if own else base, post)
            segments.append(pad)
            segments.extend(Segment.adjust_line_length(list(line), column.width, base))
            segments.append(pad)
        return Strip(segments)
