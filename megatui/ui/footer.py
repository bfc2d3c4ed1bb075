"""The footer of every screen: Textual's, rebuilt only when what it shows changes
(docs/performance.md). It leans on a Textual private part, `Footer._bindings_ready`,
checked by tests/test_textual_private_api.py."""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer

from megatui.ui.table import KeyedTable


class StableFooter(Footer):
    """Textual's Footer rebuilds all its keys whenever the focus moves or the bindings
    are checked again. Rebuild only when what it shows changes: on the main screen,
    whose keys stay the same from table to table, that rebuild was half the cost of a
    tab; a detail screen's footer was built three times as it opened."""

    #: What the footer was built from: (its keys, palette shown, palette key).
    _shown: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        # Textual's footer is empty in its screen's first frame and gets its keys a
        # frame later (a second layout of the whole screen); its screen's bindings
        # are known by now, so build them at once.
        self._bindings_ready = True
        self._shown = self._showing(self.screen)
        yield from super().compose()

    def _showing(self, screen: Screen[object]) -> tuple[Any, ...]:
        keys = tuple(
            (self.app.get_key_display(binding), binding.action, binding.description, on, tip)
            for _node, binding, on, tip in screen.active_bindings.values()
            if binding.show
        )
        palette = screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
        return (
            keys,
            self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE,
            palette and (self.app.get_key_display(palette.binding), palette.enabled),
        )

    def bindings_changed(self, screen: Screen[object]) -> None:
        will_recompose = screen.app.app_focus and self.is_attached and screen is self.screen
        shown = self._showing(screen)
        keys = shown[0]
        if will_recompose and self._bindings_ready and shown == self._shown:
            return
        focused = screen.focused
        typing = isinstance(focused, KeyedTable) and focused.consumes_text
        if typing and self._shown is not None and set(keys) <= set(self._shown[0]):
            # A filter being typed takes the letter keys for a moment; the panel's
            # border says so. Rebuilding the footer for that mounts every key again
            # and lays the whole screen out twice (~150 ms with 2,000 pods).
            return
        if will_recompose:
            self._shown = shown
        super().bindings_changed(screen)
