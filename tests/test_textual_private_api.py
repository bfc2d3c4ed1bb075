"""megatui leans on a few private parts of Textual (pinned: textual==8.2.8 in
pyproject.toml) for speed: each is listed here, checked to still exist with the
shape we override or read, and checked to be actually used at run time, so an
upgrade of Textual that moves one fails here with a message naming it, instead of
silently bringing back the full repaints they avoid (docs/performance.md).

- `KeyedTable._on_focus` / `_on_blur` (Widget's handlers repaint the whole table),
- `KeyedTable._size_updated` (ScrollView redoes its scrollbars on every layout),
- `StableFooter` reads `Footer._bindings_ready` and overrides `bindings_changed`,
- `MainScreen.focused` redeclares `Screen.focused` without its repaint,
- `PromptEscapeDriver` (ui/driver.py) replaces `LinuxDriver.run_input_thread` and reads
  the input parser's `_timeout_time`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pkgutil
from collections.abc import Callable
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.reactive import Reactive
from textual.screen import Screen
from textual.scroll_view import ScrollView
from textual.widget import Widget
from textual.widgets import Button, Footer
from ui_fixtures import app_fixture, clock_fixture, monitor_fixture, utc_fixture  # noqa: F401

import megatui.ui
from megatui.ui.app import MegatuiApp
from megatui.ui.footer import StableFooter
from megatui.ui.main_screen import MainScreen
from megatui.ui.table import Column, KeyedTable

#: Our overrides of Textual's private methods: (our class, name, Textual's class,
#: the parameters Textual's method has, which ours must accept and pass on).
PRIVATE_OVERRIDES: list[tuple[type[Any], str, type[Any], list[str]]] = [
    (KeyedTable, "_on_focus", Widget, ["self", "event"]),
    (KeyedTable, "_on_blur", Widget, ["self", "event"]),
    (
        KeyedTable,
        "_size_updated",
        ScrollView,
        ["self", "size", "virtual_size", "container_size", "layout"],
    ),
]


def _textual_private_functions(cls: type[Any]) -> set[str]:
    """Private functions `cls` defines that a Textual base class defines too."""
    found = set()
    for name, value in vars(cls).items():
        if not (name.startswith("_") and not name.startswith("__") and inspect.isfunction(value)):
            continue
        for base in cls.__mro__[1:]:
            if base.__module__.startswith("textual") and inspect.isfunction(vars(base).get(name)):
                found.add(f"{cls.__qualname__}.{name}")
                break
    return found


def test_the_pinned_textual_is_the_one_these_checks_were_written_for() -> None:
    version = importlib.metadata.version("textual")
    assert version == "8.2.8", (
        f"Textual is {version}, these private-API checks were written against 8.2.8: "
        "run this file, and re-read each override it lists against the new Textual"
    )


def test_every_override_of_a_private_textual_method_is_listed_here() -> None:
    found: set[str] = set()
    for info in pkgutil.walk_packages(megatui.ui.__path__, prefix="megatui.ui."):
        module = importlib.import_module(info.name)
        for value in vars(module).values():
            if inspect.isclass(value) and value.__module__ == module.__name__:
                found |= _textual_private_functions(value)
    listed = {f"{cls.__qualname__}.{name}" for cls, name, _base, _params in PRIVATE_OVERRIDES}
    assert found == listed, (
        "overrides of Textual's private methods changed: a new one needs an entry in "
        f"PRIVATE_OVERRIDES and a test that it is called (new: {sorted(found - listed)}, "
        f"gone: {sorted(listed - found)})"
    )


@pytest.mark.parametrize(
    ("ours", "name", "base", "params"),
    PRIVATE_OVERRIDES,
    ids=[f"{c.__name__}.{n}" for c, n, _b, _p in PRIVATE_OVERRIDES],
)
def test_textual_still_has_each_overridden_method_with_the_same_parameters(
    ours: type[Any], name: str, base: type[Any], params: list[str]
) -> None:
    theirs = vars(base).get(name)
    assert inspect.isfunction(theirs), (
        f"Textual's {base.__name__}.{name} is gone: {ours.__name__}.{name} "
        "(megatui/ui) overrides nothing now; find what replaced it"
    )
    got = list(inspect.signature(theirs).parameters)
    assert got == params, (
        f"Textual's {base.__name__}.{name} now takes {got}, not {params}: "
        f"update {ours.__name__}.{name} (megatui/ui) to match"
    )
    assert list(inspect.signature(vars(ours)[name]).parameters) == params


def test_footer_still_has_the_private_state_and_hook_stable_footer_uses() -> None:
    ready = vars(Footer).get("_bindings_ready")
    assert isinstance(ready, Reactive), (
        "Textual's Footer._bindings_ready is gone or no longer a reactive: "
        "StableFooter.bindings_changed (megatui/ui/footer.py) reads it"
    )
    theirs = inspect.signature(Footer.bindings_changed).parameters
    assert list(theirs) == ["self", "screen"], (
        f"Footer.bindings_changed now takes {list(theirs)}: update StableFooter"
    )


def test_screen_focused_is_still_the_reactive_main_screen_redeclares() -> None:
    theirs = vars(Screen).get("focused")
    assert isinstance(theirs, Reactive), (
        "Textual's Screen.focused is no longer a reactive: MainScreen.focused "
        "(megatui/ui/main_screen.py) redeclares it without the repaint, and must follow"
    )
    ours = vars(MainScreen)["focused"]
    assert isinstance(ours, Reactive) and ours._repaint is False


class _Spy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, cls: type[Any], name: str) -> None:
        self.calls = 0
        original: Callable[..., Any] = vars(cls)[name]

        def spy(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(cls, name, spy)


class _TableApp(App[None]):
    CSS = "KeyedTable { height: 6; }"

    def compose(self) -> ComposeResult:
        yield KeyedTable((Column("name", "NAME", 10),), id="t")
        yield Button("elsewhere", id="b")


async def test_the_table_overrides_are_called(monkeypatch: pytest.MonkeyPatch) -> None:
    spies = {name: _Spy(monkeypatch, KeyedTable, name) for _c, name, _b, _p in PRIVATE_OVERRIDES}
    widget_focus = _Spy(monkeypatch, Widget, "_on_focus")
    app = _TableApp()
    async with app.run_test(size=(40, 12)) as pilot:
        table = app.query_one(KeyedTable)
        table.focus()
        await pilot.pause()
        assert table.has_focus
        app.query_one(Button).focus()
        await pilot.pause()
        assert not table.has_focus
        await pilot.resize_terminal(50, 14)
        await pilot.pause()
    for name, spy in spies.items():
        assert spy.calls, (
            f"Textual no longer calls KeyedTable.{name}: the override in "
            "megatui/ui/table.py is dead, and the repaint it saved is back"
        )
    # Ours replaced Widget's for the table: Widget's ran only for the button.
    assert widget_focus.calls == 1


async def test_the_footer_and_focus_overrides_are_called(
    app: MegatuiApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    changed = _Spy(monkeypatch, StableFooter, "bindings_changed")
    watched = _Spy(monkeypatch, MainScreen, "watch_focused")
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        footer = app.screen.query_one(StableFooter)
        assert footer._bindings_ready is True, "Footer._bindings_ready never became True"
        before = (changed.calls, watched.calls)
        await pilot.press("tab")
        await pilot.pause()
        assert watched.calls > before[1], "MainScreen.watch_focused is not called on Tab"
        assert changed.calls > before[0], "StableFooter.bindings_changed is not called on Tab"


def test_the_driver_still_replaces_textuals_input_thread_and_reads_its_parser() -> None:
    from textual._parser import Parser
    from textual.drivers.linux_driver import LinuxDriver

    from megatui.ui.driver import PromptEscapeDriver

    theirs = vars(LinuxDriver).get("run_input_thread")
    assert inspect.isfunction(theirs), (
        "Textual's LinuxDriver.run_input_thread is gone: PromptEscapeDriver "
        "(megatui/ui/driver.py) overrides nothing now"
    )
    assert list(inspect.signature(theirs).parameters) == ["self"]
    assert "run_input_thread" in vars(PromptEscapeDriver)
    source = inspect.getsource(Parser.__init__) + inspect.getsource(Parser.tick)
    assert "_timeout_time" in source, (
        "Textual's Parser no longer keeps _timeout_time: select_timeout "
        "(megatui/ui/driver.py) reads it to wake at the escape deadline"
    )
