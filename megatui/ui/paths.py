"""Where the TCSS lives, in a checkout and in an installed wheel.

The stylesheets are kept in the repository's top-level `styles/` folder, which the
wheel force-includes as `megatui/styles` (pyproject.toml). Textual resolves a
relative `CSS_PATH` against the module that defines the App, which matches neither
layout, so the app is handed an absolute path found here.
"""

from __future__ import annotations

from pathlib import Path

import megatui

STYLESHEET = "app.tcss"


def style_candidates(package_dir: Path) -> list[Path]:
    """The folders that may hold the styles, best first: the installed copy inside the
    package, then the checkout's `styles/` beside the package."""
    return [package_dir / "styles", package_dir.parent / "styles"]


def find_styles_dir(package_dir: Path | None = None) -> Path:
    """The folder holding `app.tcss`. Raises FileNotFoundError naming every place tried,
    so a broken install says what is missing instead of starting unstyled."""
    base = Path(megatui.__file__).resolve().parent if package_dir is None else package_dir
    candidates = style_candidates(base)
    for folder in candidates:
        if (folder / STYLESHEET).is_file():
            return folder
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"megatui stylesheet {STYLESHEET} not found (looked in {tried})")


def stylesheet() -> Path:
    return find_styles_dir() / STYLESHEET
