"""The main screen and its footer, each changed so that moving the focus repaints only
what looks different (docs/performance.md: a Tab was a full frame with 2,000 pods).
Both lean on Textual private parts, checked by tests/test_textual_private_api.py."""

from __future__ import annotations

from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer

from megatui.ui.panels import Panel, panel_of
from megatui.ui.table import KeyedTable


class StableFooter(Footer):
    """Textual's Footer rebuilds all its keys whenever the focus moves. The main screen
    shows the app's own keys, which stay the same from table to table, so rebuild only
    when what it shows changes: that rebuild was half the cost of a tab."""

    #: What the footer was built from: (its keys, palette shown, palette key).
    _shown: tuple[tuple[tuple[object, ...], ...], object, object] | None = None

    def bindings_changed(self, screen: Screen[object]) -> None:
        will_recompose = screen.app.app_focus and self.is_attached and screen is self.screen
        keys = tuple(
            (self.app.get_key_display(binding), binding.action, binding.description, on, tip)
            for _node, binding, on, tip in screen.active_bindings.values()
            if binding.show
        )
        palette = screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
        shown = (
            keys,
            self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE,
            palette and (self.app.get_key_display(palette.binding), palette.enabled),
        )
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


class MainScreen(Screen[None]):
    """The main screen. Textual's `Screen.focused` repaints the whole screen whenever
    the focus moves, although every style that depends on focus is refreshed on its
    own (Screen._update_focus_styles): with 2,000 pods that is a full frame for
    every Tab. Here moving the focus repaints only what looks different."""

    focused: Reactive[Widget | None] = Reactive(None, repaint=False)

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self._lit: Panel | None = None

    def watch_focused(self, focused: Widget | None) -> None:
        # Here, in the call that moves the focus, so that the panel borders change in
        # the same frame as the tables' cursors (a DescendantFocus handler would run
        # in the panel's own task, a frame later).
        if focused is not None and not self.can_view_entire(focused):
            # On a short screen the panels scroll. Scroll now, as Screen.set_focus
            # would after the next frame (a scroll lays out and repaints the whole
            # screen: that was a second full frame; its own call then changes nothing).
            self.scroll_to_center(focused, animate=False, origin_visible=True, immediate=True)
        panel = panel_of(focused)
        if panel is self._lit:
            return
        if self._lit is not None:
            self._lit.show_focus(False)
        if panel is not None:
            panel.show_focus(True)
        self._lit = panel
