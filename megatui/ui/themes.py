"""The chosen theme, remembered in a one-line file between runs."""

from __future__ import annotations

from pathlib import Path

#: Short names accepted in the config. `ansi` is for plain terminals over SSH: the
#: terminal's own 16 colours, no truecolor (Textual's ansi-dark theme).
THEME_ALIASES = {"ansi": "ansi-dark", "ansi-light": "ansi-light"}


def canonical(name: str) -> str:
    name = name.strip()
    return THEME_ALIASES.get(name, name)


def load_theme(path: Path | None) -> str | None:
    """The saved theme name, or None when there is none or it cannot be read
    (a missing or unreadable state file must never stop the app)."""
    if path is None:
        return None
    try:
        name = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return canonical(name) if name else None


def save_theme(path: Path, name: str) -> None:
    """Write atomically, so a crash mid-write cannot leave half a name. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(name + "\n", encoding="utf-8")
    tmp.replace(path)
