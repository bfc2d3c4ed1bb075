"""RowKeeper and age_changes_at: rows rebuilt only for changed items or due AGE text."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from rich.text import Text

from megatui.sources.kube_status import age
from megatui.ui.row_keeper import RowKeeper, age_changes_at, namespaced_key


@pytest.mark.parametrize(
    "seconds",
    [
        *(1, 5, 119, 120, 599, 600, 601, 3599, 10799, 10800, 28799, 28800),
        *(172799, 691199, 691200, 2 * 365 * 86400 - 1, 8 * 365 * 86400 - 1),
        *(8 * 365 * 86400, 20 * 365 * 86400 + 5),
    ],
)
@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.999])
def test_age_text_never_changes_before_the_deadline_and_does_at_it(
    seconds: int, fraction: float
) -> None:
    created, now = 1_000_000.0, 1_000_000.0 + seconds + fraction
    deadline = age_changes_at(created, now)
    assert deadline > now
    shown = age(created, now)
    # Every whole second up to the deadline shows the same text ...
    step = max(1.0, (deadline - now) / 500)
    t = now
    while t < deadline - 1e-6:
        assert age(created, t) == shown, (seconds, t - created)
        t += step
    assert age(created, deadline - 1e-3) == shown
    # ... and the deadline is when it changes (not late).
    assert age(created, deadline + 1e-6) != shown


def test_age_of_a_clock_skew_is_looked_at_every_time() -> None:
    assert age_changes_at(100.0, 99.5) == 99.5
    assert age_changes_at(100.0, 100.5) == 100.5


@dataclass(frozen=True)
class Item:
    namespace: str
    name: str
    value: int
    created: float | None = None


def cells(item: Item, now: float) -> tuple[tuple[Text, ...], float]:
    until = math.inf if item.created is None else age_changes_at(item.created, now)
    return (Text(str(item.value)), Text(age(item.created, now))), until


def test_unchanged_items_build_nothing_and_a_changed_one_only_itself() -> None:
    keeper: RowKeeper[Item] = RowKeeper(namespaced_key, cells)
    items = tuple(Item("ns", f"p{i:03d}", i, created=0.0) for i in range(300))
    assert keeper.refresh(items, 7200.5) is None  # first time: a full list
    assert keeper.built == 300
    assert keeper.refresh(items, 7201.0) == []  # same tuple, no AGE due: nothing
    changed_item = Item("ns", "p007", 1000, created=0.0)
    again = (*items[:7], changed_item, *items[8:])
    changed = keeper.refresh(again, 7202.0)
    assert changed is not None and [row.key for row in changed] == ["ns/p007"]
    assert keeper.built == 301
    assert [row.key for row in keeper.rows] == [namespaced_key(i) for i in again]


def test_equal_but_new_objects_build_nothing() -> None:
    keeper: RowKeeper[Item] = RowKeeper(namespaced_key, cells)
    keeper.refresh(tuple(Item("ns", f"a{i}", i) for i in range(10)), 0.0)
    assert keeper.refresh(tuple(Item("ns", f"a{i}", i) for i in range(10)), 5.0) == []
    assert keeper.built == 10


def test_rows_whose_age_text_is_due_are_rebuilt_alone() -> None:
    keeper: RowKeeper[Item] = RowKeeper(namespaced_key, cells)
    # Ages 100 s (by the second) and 2 h (by the minute).
    items = (Item("ns", "young", 1, created=900.0), Item("ns", "old", 2, created=1000.0 - 7200))
    keeper.refresh(items, 1000.0)
    changed = keeper.refresh(items, 1001.0)
    assert changed is not None and [row.key for row in changed] == ["ns/young"]
    assert changed[0].cells[1].plain == "101s"


def test_rows_that_came_went_or_moved_ask_for_a_full_sync() -> None:
    keeper: RowKeeper[Item] = RowKeeper(namespaced_key, cells)
    a, b, c = (Item("ns", n, 0) for n in "abc")
    keeper.refresh((a, b), 0.0)
    assert keeper.refresh((a, b, c), 0.0) is None
    assert keeper.refresh((a, c), 0.0) is None
    built = keeper.built
    assert keeper.refresh((c, a), 0.0) is None  # moved: kept rows are reused
    assert keeper.built == built
    assert [row.key for row in keeper.rows] == ["ns/c", "ns/a"]
    assert keeper.refresh((c, a), 0.0, layout="narrow") is None  # a new layout: all anew
    assert keeper.built == built + 2
