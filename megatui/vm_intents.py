"""The last start or stop the user asked for each VM, shared by every megatui process.

Recovery (`megatui serve`) must never start a VM the user stopped, even when the stop
came from another process (the TUI, `megatui stop`, another server's API). Every
Monitor.start_vm/stop_vm records the intent here, in a small JSON file under the state
directory: written atomically (a temp file renamed over it) under an flock so two
processes do not lose each other's lines, bounded to the newest MAX_VMS VMs.
Recovery's own starts and stops are not the user's: they run inside `acting()`.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from megatui.config import state_dir
from megatui.files import write_atomic
from megatui.recovery import Intent

log = logging.getLogger(__name__)

FILE_NAME = "vm-intents.json"
MAX_VMS = 256
MAX_BYTES = 256 * 1024  # a larger file is not ours: ignored

_recovery_acting: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "megatui_recovery_acting", default=False
)


def default_path() -> Path:
    return state_dir() / FILE_NAME


@contextlib.contextmanager
def acting() -> Iterator[None]:
    """Starts and stops made inside are recovery's, not the user's: not recorded."""
    token = _recovery_acting.set(True)
    try:
        yield
    finally:
        _recovery_acting.reset(token)


def record(name: str, action: str, at: float, path: Path | None = None) -> None:
    """Remember that the user asked to `action` ("start" or "stop") VM `name`.
    Never raises: a state directory we cannot write must not block the action."""
    if _recovery_acting.get():
        return
    path = path or default_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path):
            intents = _read(path)
            intents.pop(name, None)  # re-inserted last: the newest are kept
            intents[name] = Intent(action, at)
            _write(path, dict(list(intents.items())[-MAX_VMS:]))
    except OSError as exc:
        log.warning("cannot record the %s of VM %s in %s: %s", action, name, path, exc)


def load(path: Path | None = None) -> dict[str, Intent]:
    """The recorded intents ({} when there are none or the file is unreadable)."""
    try:
        return _read(path or default_path())
    except OSError:
        return {}


class Reader:
    """Reads the file again only when it changed (a write renames a new file over it,
    so its inode changes): the server evaluates recovery on every snapshot."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._key: tuple[int, int, int] | None = None
        self._intents: dict[str, Intent] = {}

    def load(self) -> dict[str, Intent]:
        path = self.path or default_path()
        try:
            st = path.stat()
        except OSError:
            self._key, self._intents = None, {}
            return {}
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if key != self._key:
            self._key, self._intents = key, load(path)
        return self._intents


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # drops the lock


def _read(path: Path) -> dict[str, Intent]:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return {}
    if len(raw) > MAX_BYTES:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    out: dict[str, Intent] = {}
    if not isinstance(data, dict):
        return out
    for name, entry in data.items():
        # Untrusted: keep only well-formed entries.
        if not isinstance(entry, dict):
            continue
        action, at = entry.get("action"), entry.get("at")
        if action in ("start", "stop") and isinstance(at, int | float) and at == at:
            out[str(name)] = Intent(str(action), float(at))
    return out


def _write(path: Path, intents: dict[str, Intent]) -> None:
    write_atomic(
        path, json.dumps({n: {"action": i.action, "at": i.at} for n, i in intents.items()})
    )
