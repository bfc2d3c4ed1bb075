"""The [keys] section: the app's remappable actions, their default keys, what may bind
them, and how a key written in the config is spelt the way Textual binds it."""

from __future__ import annotations

import unicodedata
from typing import Any

#: action id (a [keys] name) -> its default key, in Textual's spelling. The TUI's
#: bindings are built from this table.
DEFAULT_KEYS: dict[str, str] = {
    "start": "s",
    "stop": "x",
    "suspend": "z",
    "ssh": "enter",
    "copy": "c",
    "detail": "d",
    "logs": "l",
    "create": "n",
    "delete": "D",
    "filter": "slash",
    "refresh": "r",
    "help": "question_mark",
    "quit": "q",
}

#: Keys the TUI uses for itself; a [keys] value may not take them.
RESERVED_KEYS: dict[str, str] = {
    "1": "focus panel 1",
    "2": "focus panel 2",
    "3": "focus panel 3",
    "4": "focus panel 4",
    "tab": "next table",
    "shift+tab": "previous table",
    "escape": "close a dialog",
    "ctrl+p": "the command palette",
    "ctrl+c": "copy",
}

_MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")
_NAMED_KEYS = frozenset(
    {
        "escape",
        "enter",
        "tab",
        "space",
        "backspace",
        "delete",
        "insert",
        "home",
        "end",
        "pageup",
        "pagedown",
        "up",
        "down",
        "left",
        "right",
        *(f"f{n}" for n in range(1, 25)),
    }
)
# Textual's short names for some characters (textual.keys.KEY_NAME_REPLACEMENTS).
_KEY_NAME_REPLACEMENTS = {
    "solidus": "slash",
    "reverse_solidus": "backslash",
    "commercial_at": "at",
    "hyphen_minus": "minus",
    "plus_sign": "plus",
    "low_line": "underscore",
}
_REPLACED = {v: k for k, v in _KEY_NAME_REPLACEMENTS.items()}


def _char_key(char: str) -> str:
    """A single character as Textual names its key ("?" is "question_mark")."""
    if char.isalnum():
        return char
    name = unicodedata.name(char, char).lower().replace("-", "_").replace(" ", "_")
    return _KEY_NAME_REPLACEMENTS.get(name, name)


def _is_char_name(name: str) -> bool:
    """Whether `name` is Textual's name for one printable character."""
    try:
        char = unicodedata.lookup(_REPLACED.get(name, name).replace("_", " "))
    except KeyError:
        return False
    return char.isprintable() and not char.isspace()


def normalize_key(key: str) -> str:
    """One key of a [keys] value in Textual's spelling, or ValueError if it cannot bind."""
    if key == "+" or key.endswith("++"):  # "+" and "ctrl++" name the plus key
        head, base = key[:-2], "+"
    else:
        head, _, base = key.rpartition("+")
    mods = head.split("+") if head or "+" in key[:-1] else []
    if not base or any(m not in _MODIFIERS for m in mods) or len(set(mods)) != len(mods):
        raise ValueError(f"{key!r} is not a key")
    if len(base) == 1:
        if not base.isprintable() or base.isspace():
            raise ValueError(f"{key!r} is not a key")
        base = _char_key(base)
    elif base not in _NAMED_KEYS and not _is_char_name(base):
        raise ValueError(f"{key!r} is not a key Textual can bind")
    return "+".join([*mods, base])


def key_list(v: Any) -> str:
    """A [keys] value (keys separated by commas) in Textual's spelling, or ValueError."""
    if not isinstance(v, str):
        raise ValueError("expected a string")
    if not v.strip():
        raise ValueError('expected a key such as "g" or "ctrl+g"')
    keys = [k.strip() for k in v.split(",")]
    if any(not k for k in keys):
        raise ValueError("expected keys separated by commas")
    return ",".join(normalize_key(k) for k in keys)
