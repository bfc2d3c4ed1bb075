"""Regenerate screenshots/*.svg from the sample snapshot the UI tests use.

    python scripts/screenshots.py [--out screenshots]

Same data as tests/test_ui_snapshots.py (tests/ui_fakes.py), a frozen clock and UTC,
so the pictures only change when the UI does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from textual.command import CommandList, CommandPalette  # noqa: E402
from textual.pilot import Pilot  # noqa: E402
from textual.widgets import Input  # noqa: E402
from ui_fakes import NOW, make_app, sample_monitor, until, utc  # noqa: E402

from megatui.clock import FakeClock  # noqa: E402
from megatui.ui.screens import DetailScreen  # noqa: E402
from megatui.ui.table import KeyedTable  # noqa: E402

Step = Callable[[Pilot[None]], Awaitable[None]]


async def select(pilot: Pilot[None], vm: str) -> None:
    pilot.app.query_one("#vm-table", KeyedTable).select_key(vm)
    await pilot.pause()


async def main_view(pilot: Pilot[None]) -> None:
    await select(pilot, "web-ip")


async def detail(pilot: Pilot[None]) -> None:
    await select(pilot, "dev-ready")
    await pilot.press("d")
    await until(pilot, lambda: isinstance(pilot.app.screen, DetailScreen), "the detail")
    screen = pilot.app.screen
    assert isinstance(screen, DetailScreen)
    await until(pilot, lambda: screen.loaded, "tart get and the log")


async def palette(pilot: Pilot[None]) -> None:
    await pilot.press("ctrl+p")
    await until(pilot, lambda: isinstance(pilot.app.screen, CommandPalette), "the palette")
    pilot.app.screen.query_one(Input).cursor_blink = False
    await pilot.press(*"vm ci")
    commands = pilot.app.screen.query_one(CommandList)
    await until(pilot, lambda: commands.option_count >= 4, "hits")


SHOTS: list[tuple[str, tuple[int, int], bool, Step]] = [
    ("main-160x48", (160, 48), False, main_view),
    ("stale-160x48", (160, 48), True, main_view),
    ("main-80x24", (80, 24), False, main_view),
    ("detail", (120, 40), False, detail),
    ("palette", (120, 40), False, palette),
]


async def shoot(out: Path, name: str, size: tuple[int, int], stale: bool, step: Step) -> Path:
    clock = FakeClock(NOW)
    app = make_app(sample_monitor(NOW, stale=stale, clock=clock), clock=clock)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await step(pilot)
        await pilot.pause()
        return Path(app.save_screenshot(filename=f"{name}.svg", path=str(out)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with utc():
        for name, size, stale, step in SHOTS:
            path = asyncio.run(shoot(args.out, name, size, stale, step))
            print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
