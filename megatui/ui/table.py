"""A DataTable updated by row key: the only way the panels change their tables.

Every snapshot is applied as a diff (add the new rows, update the cells that changed,
remove the rows that went away) inside one batch, never as `clear()` plus refill,
which would reset the cursor and scroll position and repaint everything on every poll.
Column widths are fixed, so no update has to measure a whole column.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from megatui.ui.render import cell_signature


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
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


#: Above this many rows to remove at once, refill the table instead (see sync).
REBUILD_AFTER = 16


class KeyedTable(DataTable[Text], inherit_bindings=False):
    """A row-cursor DataTable whose rows are identified by the data's own keys."""

    # DataTable's own bindings minus `enter`: enter is the app's "ssh" key and must
    # reach the app from any table (DataTable would swallow it as select_cursor).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("k", "cursor_up", "Cursor up", show=False),
        Binding("j", "cursor_down", "Cursor down", show=False),
        Binding("right", "cursor_right", "Cursor right", show=False),
        Binding("left", "cursor_left", "Cursor left", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("ctrl+home", "scroll_top", "Top", show=False),
        Binding("ctrl+end", "scroll_bottom", "Bottom", show=False),
        Binding("home", "scroll_home", "Home", show=False),
        Binding("end", "scroll_end", "End", show=False),
    ]

    def __init__(
        self,
        columns: Sequence[Column],
        *,
        id: str | None = None,
        classes: str | None = None,
        follow_head: bool = False,
    ) -> None:
        super().__init__(
            id=id,
            classes=classes,
            cursor_type="row",
            zebra_stripes=False,
            cursor_foreground_priority="renderable",
        )
        self._columns = tuple(columns)
        #: A cursor on the first row stays on the first row (for newest-first lists,
        #: which would otherwise scroll the news out of sight to keep the cursor's row).
        self.follow_head = follow_head
        self._shown: dict[str, tuple[Text, ...]] = {}
        #: The Row objects of the last sync, by key.
        self._given: dict[str, Row] = {}
        #: Cells written since the table was created: lets tests and benchmarks check
        #: that an unchanged snapshot or a clock tick costs nothing.
        self.cell_writes = 0

    def on_mount(self) -> None:
        for column in self._columns:
            self.add_column(column.label, key=column.key, width=column.width)

    @property
    def keys(self) -> list[str]:
        """Row keys in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    @property
    def cursor_key(self) -> str | None:
        if self.row_count == 0:
            return None
        row_key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        return None if row_key.value is None else str(row_key.value)

    def select_key(self, key: str) -> bool:
        if key not in self._shown:
            return False
        self.move_cursor(row=self.get_row_index(key), animate=False)
        return True

    def sync(self, rows: Sequence[Row]) -> bool:
        """Make the table show `rows`, in that order, touching only what differs.

        Returns whether anything changed. The cursor stays on the row it was on
        (by key), wherever that row moves."""
        wanted: dict[str, Row] = {}
        for row in rows:
            # Keys are names the outside world chose; a duplicate must not take the
            # whole control room down, so the first one wins.
            wanted.setdefault(row.key, row)
        rows = list(wanted.values())
        cursor_key = self.cursor_key
        cursor_row = self.cursor_row
        if self.follow_head and cursor_row == 0:
            cursor_key = None
        changed = False
        gone = [k for k in self._shown if k not in wanted]
        # DataTable.remove_row renumbers every row: removing many rows one by one is
        # quadratic (seconds for a filter that hides most of 2,000 pods); refilling
        # costs one add per row.
        rebuilt = len(gone) > REBUILD_AFTER
        with self.app.batch_update():
            if rebuilt:
                self.clear()
                self._shown.clear()
                changed = True
            for key in [] if rebuilt else gone:
                self.remove_row(key)
                del self._shown[key]
                changed = True
            for row in rows:
                old = self._shown.get(row.key)
                if old is not None and self._given.get(row.key) is row:
                    continue  # the very Row of the last sync (see RowCache): unchanged
                if old is None:
                    self.add_row(*row.cells, key=row.key)
                    self.cell_writes += len(row.cells)
                    changed = True
                    self._shown[row.key] = row.cells
                    continue
                kept: list[Text] = []
                for column, before, after in zip(self._columns, old, row.cells, strict=True):
                    if cell_signature(before) == cell_signature(after):
                        # Keep the object the table holds: _apply_order relies on it.
                        kept.append(before)
                    else:
                        self.update_cell(row.key, column.key, after)
                        self.cell_writes += 1
                        changed = True
                        kept.append(after)
                self._shown[row.key] = tuple(kept)
            if self._apply_order([row.key for row in rows]):
                changed = True
            if changed and cursor_key is not None and cursor_key in self._shown:
                index = self.get_row_index(cursor_key)
                if index != self.cursor_row:
                    self.move_cursor(row=index, animate=False)
            elif changed and cursor_key is None and self.row_count:
                self.move_cursor(row=0, animate=False)
            elif rebuilt and self.row_count:
                # The cursor's row went away: stay where it was, as remove_row does.
                self.move_cursor(row=min(cursor_row, self.row_count - 1), animate=False)
        self._given = wanted
        return changed

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        # Every column has a fixed width and every row is one line high, so DataTable's
        # measuring of each new row's cells (to size auto-width columns) is wasted:
        # ~0.3 ms a row, most of the cost of showing 2,000 pods. The virtual size is
        # still recomputed. (A private hook of Textual 8.2.8's DataTable.)
        super()._update_dimensions(())

    def _apply_order(self, order: list[str]) -> bool:
        if self.keys == order:
            return False
        # sort() hands its key function only the cell values, not the row key; each
        # row's first cell is its own Text object, so its identity names the row.
        rank = {id(self._shown[key][0]): index for index, key in enumerate(order)}
        self.sort(key=lambda cells: rank[id(cells[0])])
        return True
