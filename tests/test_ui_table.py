"""KeyedTable on its own: keys, cursor, rendering, and what a change repaints."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rich.text import Text
from textual.app import App, ComposeResult
from textual.strip import Strip
from textual.widgets import Button

from megatui.ui.table import Column, KeyedTable, Row

COLUMNS = (Column("name", "NAME", 10), Column("state", "STATE", 8))


def rows(count: int, state: str = "up") -> list[Row]:
    return [Row(f"r{i:03d}", (Text(f"r{i:03d}"), Text(state))) for i in range(count)]


class TableApp(App[None]):
    CSS = "KeyedTable { height: 6; }"

    def __init__(self, initial: list[Row], *, follow_head: bool = False) -> None:
        super().__init__()
        self.initial = initial
        self.follow_head = follow_head

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, id="t", follow_head=self.follow_head)
        yield Button("elsewhere", id="b")

    def on_mount(self) -> None:
        self.table.sync(self.initial)
        self.table.focus()

    @property
    def table(self) -> KeyedTable:
        return self.query_one(KeyedTable)


class LineSpy:
    """Which lines the table renders (render_line calls, by y)."""

    def __init__(self, table: KeyedTable, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lines: list[int] = []
        original = table.render_line

        def spy(y: int) -> Strip:
            self.lines.append(y)
            return original(y)

        monkeypatch.setattr(table, "render_line", spy)

    def take(self) -> list[int]:
        lines, self.lines = sorted(set(self.lines)), []
        return lines


def plain(strip: Strip) -> str:
    return "".join(segment.text for segment in strip)


def screen_lines(table: KeyedTable) -> Iterator[str]:
    for y in range(table.size.height):
        yield plain(table.render_line(y)).rstrip()


async def test_keys_move_the_cursor_and_the_view_follows() -> None:
    app = TableApp(rows(20))
    async with app.run_test(size=(40, 10)) as pilot:
        table = app.table
        await pilot.press("down", "j", "j")
        assert table.cursor_row == 3 and table.cursor_key == "r003"
        await pilot.press("k")
        assert table.cursor_row == 2
        await pilot.press("end")
        assert table.cursor_key == "r019"
        # Five data rows fit below the header: the last row is on screen.
        assert round(table.scroll_y) == 20 - 5
        assert list(screen_lines(table))[-1].split() == ["r019", "up"]
        await pilot.press("home")
        assert table.cursor_row == 0 and round(table.scroll_y) == 0
        await pilot.press("pagedown")
        assert table.cursor_row == 5
        await pilot.press("pageup", "up")
        assert table.cursor_row == 0  # clamped at the top


async def test_header_stays_while_rows_scroll() -> None:
    app = TableApp(rows(20))
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.press("pagedown", "pagedown", "pagedown")
        lines = list(screen_lines(app.table))
        assert lines[0].split() == ["NAME", "STATE"]
        assert lines[1].split()[0] != "r000"


async def test_a_cursor_move_repaints_two_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    app = TableApp(rows(20))
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        spy = LineSpy(app.table, monkeypatch)
        await pilot.press("down")
        await pilot.pause()
        assert spy.take() == [1, 2]  # the line the cursor left, and its new one


async def test_a_focus_change_repaints_the_cursor_line_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = TableApp(rows(20))
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        table = app.table
        focused = table._cursor_style()
        spy = LineSpy(table, monkeypatch)
        app.query_one("#b", Button).focus()
        await pilot.pause()
        assert spy.take() == [1]
        assert table._cursor_style() != focused  # and it does look different
        table.focus()
        await pilot.pause()
        assert spy.take() == [1]


async def test_a_changed_cell_repaints_its_line_only(monkeypatch: pytest.MonkeyPatch) -> None:
    app = TableApp(rows(20))
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        table = app.table
        spy = LineSpy(table, monkeypatch)
        changed = rows(20)
        changed[3] = Row("r003", (Text("r003"), Text("down")))
        assert table.sync(changed)
        await pilot.pause()
        assert spy.take() == [4]  # row 3, below the header
        assert table.cell_writes == 2 * 20 + 1
        assert not table.sync(changed)  # the same again changes nothing


async def test_update_changes_known_rows_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    app = TableApp(rows(20))
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        table = app.table
        table.cursor_row = 2
        await pilot.pause()
        spy = LineSpy(table, monkeypatch)
        down = Row("r003", (Text("r003"), Text("down")))
        same = Row("r001", (Text("r001"), Text("up")))
        unknown = Row("zzz", (Text("zzz"), Text("down")))
        assert table.update([down, same, unknown])
        await pilot.pause()
        assert spy.take() == [4]  # row 3 alone; an equal row writes nothing
        assert table.cell_writes == 2 * 20 + 1
        assert table.get_row("r003")[1].plain == "down"
        assert table.keys == [f"r{i:03d}" for i in range(20)]  # nothing added
        assert table.cursor_key == "r002"
        assert not table.update([down])  # the very same row again


async def test_a_restyle_that_changes_nothing_keeps_rendered_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app = TableApp(rows(20))
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        table = app.table
        rendered: list[int] = []
        original = table._render_cells
        monkeypatch.setattr(table, "_render_cells", lambda *a: rendered.append(1) or original(*a))
        app.update_styles(table)
        table.refresh()
        await pilot.pause()
        assert rendered == []  # every line, the cursor's too, comes from the cache
        app.theme = "textual-light"
        await pilot.pause()
        assert len(rendered) > 5  # new colours: every visible row again


async def test_the_cursor_follows_its_row_and_stays_put_when_it_goes() -> None:
    app = TableApp(rows(10))
    async with app.run_test(size=(40, 10)) as pilot:
        table = app.table
        table.select_key("r005")
        table.sync(list(reversed(rows(10))))
        assert table.cursor_key == "r005" and table.cursor_row == 4
        table.sync([row for row in rows(10) if row.key != "r005"])
        await pilot.pause()
        assert table.cursor_row == 4 and table.cursor_key == "r004"
        table.sync(rows(2))
        assert table.cursor_row == 1  # clamped to what is left
        table.clear()
        assert table.row_count == 0 and table.cursor_key is None
        assert plain(table.render_line(0)).split() == ["NAME", "STATE"]


async def test_rows_arriving_one_by_one_leave_an_untouched_cursor_on_the_first() -> None:
    # The Applications arrive one watch event at a time, the last name first.
    app = TableApp([])
    async with app.run_test(size=(40, 10)):
        table = app.table
        arrived: list[Row] = []
        for row in reversed(rows(4)):
            arrived = sorted([*arrived, row], key=lambda r: r.key)
            table.sync(arrived)
        assert table.cursor_row == 0 and table.cursor_key == "r000"
        table.select_key("r000")  # chosen, even where it already was: it follows its row
        table.sync([Row("a", (Text("a"), Text(""))), *arrived])
        assert table.cursor_key == "r000" and table.cursor_row == 1


async def test_follow_head_keeps_the_newest_row_selected() -> None:
    app = TableApp(rows(3), follow_head=True)
    async with app.run_test(size=(40, 10)):
        table = app.table
        newer = [Row("new", (Text("new"), Text("up"))), *rows(3)]
        table.sync(newer)
        assert table.cursor_key == "new"
        table.select_key("r001")
        table.sync([Row("newer", (Text("newer"), Text("up"))), *newer])
        assert table.cursor_key == "r001"  # moved off the head: it follows its row


async def test_duplicate_keys_keep_the_first_row() -> None:
    app = TableApp([])
    async with app.run_test(size=(40, 10)):
        table = app.table
        table.sync([Row("a", (Text("first"), Text(""))), Row("a", (Text("second"), Text("")))])
        assert table.keys == ["a"] and table.get_row("a")[0].plain == "first"


async def test_long_multiline_and_markup_cells_render_as_one_literal_line() -> None:
    long = Text("x" * 30, overflow="ellipsis")
    odd = Text("first line\nsecond line")
    markup = Text("[b]not bold[/b]")
    app = TableApp([Row("a", (long, Text("ok"))), Row("b", (odd, markup))])
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        lines = list(screen_lines(app.table))
        assert lines[1].startswith(" xxxxxxxxx… ")
        assert lines[2].startswith(" first line ")
        assert lines[2].endswith(" [b]not b")  # cut to the column, never parsed
        assert len(plain(app.table.render_line(1))) == app.table.size.width


async def test_click_selects_the_row() -> None:
    app = TableApp(rows(10))
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.click("#t", offset=(2, 3))  # below the header: rows 0, 1, 2
        assert app.table.cursor_key == "r002"
        await pilot.click("#t", offset=(2, 0))  # the header: nothing
        assert app.table.cursor_key == "r002"


async def test_wide_tables_scroll_sideways() -> None:
    wide = tuple(Column(f"c{i}", f"COL{i}", 12) for i in range(6))
    app = TableApp([])
    async with app.run_test(size=(40, 10)) as pilot:
        table = app.table
        table._columns = wide  # before any row: the widths are read at render time
        table._width = sum(c.width + 2 for c in wide)
        table.sync([Row("a", tuple(Text(f"v{i}") for i in range(6)))])
        await pilot.press("right")
        assert table.scroll_x > 0
        assert "COL0" not in plain(table.render_line(0))
        await pilot.press("left")
        assert table.scroll_x == 0


async def test_printable_keys_are_text_only_while_a_filter_is_typed() -> None:
    app = TableApp(rows(3))
    async with app.run_test(size=(40, 10)):
        table = app.table
        assert not table.check_consume_key("s", "s")
        table.consumes_text = True
        assert table.check_consume_key("s", "s")
        assert not table.check_consume_key("down", None)


async def test_an_empty_table_can_say_why() -> None:
    app = TableApp([])
    async with app.run_test(size=(40, 10)) as pilot:
        table = app.table
        table.empty_text = "nothing matches “[b]x”"
        await pilot.pause()
        assert plain(table.render_line(1)).strip() == "nothing matches “[b]x”"
        table.sync(rows(1))
        assert plain(table.render_line(1)).split() == ["r000", "up"]
