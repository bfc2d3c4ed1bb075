"""Table rows kept across snapshots, for tables of thousands of rows (pods, Applications).

A snapshot in which 5 of 2,000 pods changed used to cost a walk over every pod that
re-derived its AGE text and looked its cached row up by key (29 ms p50, most of an
apply: docs/performance.md). Here a row is rebuilt only when its object changed (the
Kubernetes source hands over the very same object for a pod that did not change:
sources/kube_rows.py) or when the text of its AGE is due to change, which each row
knows in advance (`age_changes_at`): an unchanged pod costs an identity check, and a
snapshot whose rows all stayed and kept their order is handed to the table as the few
rows that changed (`KeyedTable.update`), not as the whole list.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar

from rich.text import Text

from megatui.ui.table import Row

T = TypeVar("T")


class Named(Protocol):
    """A namespaced object (a Pod, an Application)."""

    @property
    def name(self) -> str: ...

    @property
    def namespace(self) -> str: ...


N = TypeVar("N", bound=Named)


def namespaced_key(item: Named) -> str:
    return f"{item.namespace}/{item.name}"


#: (below this many whole seconds of age, the AGE text's step in seconds): the units of
#: kubectl's `HumanDuration` (sources/kube_status.py), "119s" and "5m30s" by the second,
#: "179m" and "7h59m" by the minute, "47h" and "7d23h" by the hour, then by the day.
_AGE_STEPS = (
    (10 * 60, 1),
    (8 * 3600, 60),
    (8 * 86400, 3600),
    (8 * 365 * 86400, 86400),
)
_YEAR = 365 * 86400


def age_changes_at(created: float, now: float) -> float:
    """When the AGE text of something created at `created` can next change, after `now`.

    Never later than the real change (a row whose deadline passed is rebuilt, and an
    unchanged text is then written nowhere), so it may be early, never late."""
    whole = int(now - created)
    if whole < 1:
        return now  # clock skew, or just born: no promise, look again next time
    step = next((s for limit, s in _AGE_STEPS if whole < limit), _YEAR)
    return created + (whole // step + 1) * step


#: Builds a row's cells at `now` and says until when they stay true (math.inf: until
#: the object changes).
Cells = Callable[[T, float], tuple[tuple[Text, ...], float]]


class RowKeeper(Generic[T]):
    """The rows of one table, one per item, in the items' order, kept between draws.

    `refresh` returns the rows that changed when every key stayed in its place (the
    table takes those alone), or None when rows came, went or moved (the table then
    syncs the whole list of `rows`)."""

    def __init__(self, key: Callable[[T], str], cells: Cells[T]) -> None:
        self._key = key
        self._cells = cells
        self._items: Sequence[T] = ()
        self._keys: list[str] = []
        self._rows: list[Row] = []
        self._until: list[float] = []
        self._next = math.inf  # the earliest deadline of all rows
        self._layout: object = None
        #: Rows built (or rebuilt) since the keeper was made: for tests and benchmarks.
        self.built = 0

    @property
    def rows(self) -> list[Row]:
        return self._rows

    @property
    def items(self) -> Sequence[T]:
        """The items of the last refresh, in the order of `rows`."""
        return self._items

    def refresh(self, items: Sequence[T], now: float, layout: object = None) -> list[Row] | None:
        """Bring the rows up to `items` at `now`. `layout` is whatever else the cells
        depend on (the narrow column set): when it changes every row is rebuilt."""
        reset = layout != self._layout
        if reset:
            self._layout = layout
            self._items, self._keys, self._rows, self._until = (), [], [], []
        elif items is self._items and now < self._next:
            return []  # the same tuple, and no AGE text is due: nothing at all to do
        old_items, old_keys, old_rows, old_until = self._items, self._keys, self._rows, self._until
        old_count = len(old_items)
        by_key: dict[str, int] | None = None
        keys: list[str] = []
        rows: list[Row] = []
        until: list[float] = []
        changed: list[Row] = []
        moved = reset or len(items) != old_count
        for i, item in enumerate(items):
            if i < old_count and old_items[i] is item:
                # The same object in the same place (the usual case): the same key.
                key, at = old_keys[i], i
            else:
                key = self._key(item)
                if i >= old_count or old_keys[i] != key:
                    moved = True
                    if by_key is None:
                        by_key = {k: j for j, k in enumerate(old_keys)}
                    at = by_key.get(key, -1)
                else:
                    at = i
                if at >= 0 and not (old_items[at] is item or old_items[at] == item):
                    at = -1  # the object changed
            if at >= 0 and now < old_until[at]:
                row, deadline = old_rows[at], old_until[at]
            else:
                cells, deadline = self._cells(item, now)
                row = Row(key, cells)
                self.built += 1
                changed.append(row)
            keys.append(key)
            rows.append(row)
            until.append(deadline)
        self._items, self._keys, self._rows, self._until = items, keys, rows, until
        self._next = min(until, default=math.inf)
        return None if moved else changed
