"""The Textual control room. The only package of megatui that imports Textual."""

from __future__ import annotations

from megatui.ui.app import MegatuiApp

__all__ = ["MegatuiApp"]
