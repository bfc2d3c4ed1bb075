"""`write_atomic`: the one way megatui writes its own files (known_hosts, host keys,
boot history, VM uids, VM intents, recovery history)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that a reader (or a crash, or a power cut) sees the
    old file or the new one, never half of one: a private (0600) temp file with a
    unique name beside it, flushed to disk, then renamed over it. Two processes
    writing at once each rename their own whole file. Raises OSError."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
