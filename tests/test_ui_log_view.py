"""LogView: bounded, follows the bottom, wraps by width, highlights the match."""

from __future__ import annotations

from textual.app import App, ComposeResult

from megatui.ui.log_view import LogView


class ViewApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LogView(id="v", limit=100)


def shown(app: ViewApp) -> list[str]:
    return [strip.text.rstrip() for strip in app.screen._compositor.render_strips()]


async def test_bounded_follows_and_shifts_the_current_match() -> None:
    app = ViewApp()
    async with app.run_test(size=(40, 10)) as pilot:
        view = app.query_one(LogView)
        view.append([f"line {i}" for i in range(90)])
        view.highlight("line 85", 85)
        view.append([f"line {i}" for i in range(90, 120)])
        await pilot.pause()
        assert len(view.lines) == 100 and view.lines[0] == "line 20"
        assert view.current == 65 and view.lines[65] == "line 85"  # moved with its line
        assert view.scroll_y == view.max_scroll_y  # following the bottom
        assert shown(app)[-1] == "line 119"


async def test_wrap_rows_by_width_and_back() -> None:
    app = ViewApp()
    async with app.run_test(size=(20, 10)) as pilot:
        view = app.query_one(LogView)
        view.append(["x" * 45, "short"])
        view.set_wrap(True)
        await pilot.pause()
        assert view.virtual_size.height == 4  # 45 chars in rows of 19 or 20, then "short"
        assert any(row.startswith("short") for row in shown(app))
        view.set_wrap(False)
        await pilot.pause()
        assert view.virtual_size.height == 2 and view.virtual_size.width == 45


async def test_control_glyphs_and_markup_are_literal() -> None:
    app = ViewApp()
    async with app.run_test(size=(40, 5)) as pilot:
        view = app.query_one(LogView)
        view.append(["[bold]not markup[/bold] \u241b[31m"])
        await pilot.pause()
        assert shown(app)[0].startswith("[bold]not markup[/bold] \u241b[31m")


async def test_wrapped_rows_follow_appends_and_drops_as_a_full_cut_would() -> None:
    app = ViewApp()
    async with app.run_test(size=(20, 10)) as pilot:
        view = app.query_one(LogView)
        view.append([f"{i}:" + "x" * (i % 50) for i in range(60)])
        view.set_wrap(True)
        for batch in range(6):  # 60 + 150 lines through a buffer of 100
            view.append([f"{batch}-{i}:" + "y" * (i * 7 % 45) for i in range(25)])
        await pilot.pause()
        await pilot.pause()  # the scrollbar took a column: cut again for that width
        assert view._rows_width == view.scrollable_content_region.width == 19
        for batch in range(2):
            view.append([f"{batch}+{i}:" + "z" * (i * 11 % 45) for i in range(25)])
        incremental = list(view._rows)
        view._wrap_rows()  # what a cut from scratch gives
        assert incremental == view._rows
        assert view.virtual_size.height == len(view._rows)
        assert view._rows[0][0] == view._base == 160  # 260 lines went through 100
        await pilot.press("end")
        await pilot.pause()
        assert shown(app)[-1].startswith("z")  # the last row of the last line
        view.set_wrap(False)
        view.set_wrap(True)  # no re-cut: the rows are kept for the width
        assert view._rows == incremental
