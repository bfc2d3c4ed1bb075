"""How a detail screen opens (megatui/ui/object_screen.py): with its object drawn in
its first frame when the API answers within FIRST_DRAW_WAIT, else at once with what
the snapshot knows, the same fetch carried on into it; a second key cancels an open
still waiting, and nothing is left fetching."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from drill_fakes import DEX
from test_ui_drill import drill_app, focus_row
from ui_fakes import screen_text, until

from megatui.ui import object_screen
from megatui.ui.app import MegatuiApp
from megatui.ui.kube_detail import AppDetailScreen, NodeDetailScreen
from megatui.ui.pod_detail import PodDetailScreen


def _record_first_draws(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """(screen class, whether its object was in) at each screen's first drawable draw."""
    first: list[tuple[str, bool]] = []
    seen: set[int] = set()
    for cls in (PodDetailScreen, AppDetailScreen, NodeDetailScreen):
        original = cls.draw

        def draw(self: Any, _original: Any = original) -> None:
            if self.drawable and id(self) not in seen:
                seen.add(id(self))
                first.append((type(self).__name__, self.obj is not None))
            _original(self)

        monkeypatch.setattr(cls, "draw", draw)
    return first


@pytest.mark.parametrize(
    ("table", "key", "screen"),
    [
        ("pod-table", f"argocd/{DEX}", PodDetailScreen),
        ("app-table", "argocd/platform-infra", AppDetailScreen),
        ("node-table", "megalopolis-control-plane", NodeDetailScreen),
    ],
)
async def test_a_quick_answer_is_in_the_first_frame(
    monkeypatch: pytest.MonkeyPatch, table: str, key: str, screen: type[Any]
) -> None:
    first = _record_first_draws(monkeypatch)
    app = drill_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await focus_row(pilot, table, key)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, screen), screen.__name__)
        await pilot.pause()
    assert first == [(screen.__name__, True)]
    kinds = [c[1] for c in app.monitor.calls if c[0] == "kube_object"]  # type: ignore[attr-defined]
    assert len(kinds) == 1, "one fetch, not one before and one after the screen opened"


class _SlowObjects:
    """kube_object answers only when the test says so; counts cancellations."""

    def __init__(self, monitor: Any) -> None:
        self.release = asyncio.Event()
        self.started = 0
        self.cancelled = 0
        self._inner = monitor.kube_object

    async def __call__(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        self.started += 1
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        result: dict[str, Any] = await self._inner(kind, namespace, name)
        return result


def _slow_app(monkeypatch: pytest.MonkeyPatch, wait: float) -> tuple[MegatuiApp, _SlowObjects]:
    """The drill app, opening detail screens after `wait` at the latest, its API
    answering only when the test releases it."""
    monkeypatch.setattr(object_screen, "FIRST_DRAW_WAIT", wait)
    app = drill_app()
    slow = _SlowObjects(app.monitor)
    app.monitor.kube_object = slow  # type: ignore[method-assign]
    return app, slow


async def test_a_slow_answer_opens_the_screen_loading_and_fills_it_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, slow = _slow_app(monkeypatch, 0.05)
    async with app.run_test(size=(160, 48)) as pilot:
        await focus_row(pilot, "pod-table", f"argocd/{DEX}")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, PodDetailScreen), "the screen")
        screen = app.screen
        assert isinstance(screen, PodDetailScreen)
        await pilot.pause()
        # Open before the answer: the row's status is shown, the describe part not yet.
        assert not screen.loaded
        assert "CrashLoopBackOff" in screen_text(app)
        assert "BestEffort" not in screen_text(app)
        slow.release.set()
        await until(pilot, lambda: screen.loaded, "the pod")
        await pilot.pause()
        assert "BestEffort" in screen_text(app)
    assert slow.started == 1, "the fetch begun before the screen opened is carried on"
    assert slow.cancelled == 0


async def test_a_second_key_cancels_an_open_still_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, slow = _slow_app(monkeypatch, 5.0)
    async with app.run_test(size=(160, 48)) as pilot:
        await focus_row(pilot, "pod-table", f"argocd/{DEX}")
        await pilot.press("d")
        await until(pilot, lambda: slow.started == 1, "the first fetch")
        await pilot.press("d")
        await until(pilot, lambda: slow.cancelled == 1, "the first fetch cancelled")
        slow.release.set()
        await until(pilot, lambda: isinstance(app.screen, PodDetailScreen), "the screen")
        screen = app.screen
        assert isinstance(screen, PodDetailScreen)
        await until(pilot, lambda: screen.loaded, "the pod")
        assert len(app.screen_stack) == 2, "one screen opened, not two"
    assert slow.started == 2


async def test_closing_while_the_fetch_goes_on_cancels_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app, slow = _slow_app(monkeypatch, 0.05)
    async with app.run_test(size=(160, 48)) as pilot:
        await focus_row(pilot, "pod-table", f"argocd/{DEX}")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, PodDetailScreen), "the screen")
        await pilot.pause()
        await pilot.press("escape")
        await until(pilot, lambda: slow.cancelled == 1, "the fetch cancelled")
        assert not isinstance(app.screen, PodDetailScreen)
    assert slow.started == 1
