"""Let a closed screen's widgets go.

Textual 8.2's `StylesCache.get_inner_outer` is an `lru_cache(1024)` on a method:
its keys hold up to 1,024 `StylesCache` objects, each with the last lines its
widget drew. A closed screen's widgets are freed but their caches are not, so
every open and close of a detail screen left its strips (tens of thousands of
objects) on the heap until 1,024 caches had been seen, and the full GC pauses
grew with it: the pod detail's slow opens. The cache only saves building two
`Style` objects per background pair; emptying it when a screen goes is free.
"""

from __future__ import annotations

from textual._styles_cache import StylesCache


def forget_closed_widgets() -> None:
    """Drop the references Textual's style cache holds to widgets' line caches."""
    StylesCache.get_inner_outer.cache_clear()
