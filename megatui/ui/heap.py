"""Keep the drill-down screens' opens free of long garbage-collector pauses.

* Textual 8.2's `StylesCache.get_inner_outer` is an `lru_cache(1024)` on a method:
  its keys hold up to 1,024 `StylesCache` objects, each with the last lines its
  widget drew. A closed screen's widgets are freed but their caches are not, so
  every open and close of a detail screen left its strips (thousands of objects)
  on the heap, and each full collection took longer. The cache only saves
  building two `Style` objects per background pair: emptying it when a screen
  goes is free.
* The rest of the heap (Textual, Rich, the app, its main screen) lives as long as
  the app; a full (generation 2) collection walked all of it, 100k+ objects, and
  one of them came with every other open of a detail screen. Before the first
  detail screen is built, one collection then `gc.freeze()` moves what is alive
  into the permanent generation: later full collections walk only what was made
  after.
"""

from __future__ import annotations

import gc

from textual._styles_cache import StylesCache

_frozen = False


def forget_closed_widgets() -> None:
    """Drop the references Textual's style cache holds to widgets' line caches."""
    StylesCache.get_inner_outer.cache_clear()


def freeze_long_lived() -> None:
    """Once per process, before the first detail screen exists: collect, then freeze
    what survives (the app as it runs), so that it is never walked again."""
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()
