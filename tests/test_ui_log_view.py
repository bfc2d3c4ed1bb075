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
