"""How text reaches a user: one line per error, paths under the home directory as `~`."""

from __future__ import annotations

import os


def one_line(text: object, limit: int | None = None) -> str:
    """`text` with every run of whitespace (newlines too) folded to one space; cut to
    `limit` characters, the last one an ellipsis, when given and exceeded."""
    line = " ".join(str(text).split())
    if limit is not None and len(line) > limit:
        return line[: limit - 1] + "…"
    return line


def tilde(path: str) -> str:
    """`path` with this user's home directory shown as `~`, for messages."""
    home = os.path.expanduser("~")
    if path == home or path.startswith(home + os.sep):
        return "~" + path[len(home) :]
    return path
