"""Palette commands for each VM: start, stop, SSH and wait.

Kept next to Textual's own system commands (theme, keys, screenshot, quit): the app
sets `COMMANDS = App.COMMANDS | {MegatuiCommands}`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Matcher, Provider
from textual.content import Content


@dataclass(frozen=True, slots=True)
class PaletteCommand:
    title: str
    help: str
    run: Callable[[], None]


@runtime_checkable
class CommandSource(Protocol):
    def palette_commands(self) -> list[PaletteCommand]: ...


def highlight(matcher: Matcher, title: str) -> Content:
    """Matcher.highlight() parses its candidate as markup; VM names are not markup."""
    content = Content(title)
    _, offsets = matcher.fuzzy_search.match(matcher.query, title)
    for offset in offsets:
        if not title[offset].isspace():
            content = content.stylize(matcher.match_style, offset, offset + 1)
    return content


class MegatuiCommands(Provider):
    def _commands(self) -> list[PaletteCommand]:
        app = self.app
        return app.palette_commands() if isinstance(app, CommandSource) else []

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(Content(command.title), command.run, command.title, command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                display = highlight(matcher, command.title)
                yield Hit(score, display, command.run, command.title, command.help)
