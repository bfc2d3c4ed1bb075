"""The main screen, changed so that moving the focus repaints only what looks
different (docs/performance.md: a Tab was a full frame with 2,000 pods). It leans on
a Textual private part, checked by tests/test_textual_private_api.py."""

from __future__ import annotations

from textual.reactive import Reactive
from textual.screen import Screen
from textual.widget import Widget

from megatui.ui.panels import Panel, panel_of


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
