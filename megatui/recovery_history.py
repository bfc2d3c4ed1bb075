"""Recovery's memory across restarts of `megatui serve`: per VM, the times of its
recent attempts (what `max_restarts` per hour counts) and its last records (what was
done, how it ended and why).

Kept in a small JSON file under the state directory, 0600, written atomically (a temp
file renamed over it) after every attempt begins and ends, bounded (the newest
MAX_VMS VMs, each with its attempts of the last hour up to MAX_ATTEMPTS and its last
`recovery.HISTORY` records). Loaded once when the server starts. Untrusted: a file
of the wrong shape, too large or unreadable is one line in the log and read as
empty; a state directory we cannot write is one line too. Neither stops recovery.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from megatui.config import state_dir
from megatui.files import write_atomic
from megatui.recovery import HISTORY, WINDOW, ActionKind, Record, Result

log = logging.getLogger(__name__)

FILE_NAME = "recovery-history.json"
VERSION = 1
MAX_VMS = 256
MAX_ATTEMPTS = 100  # per VM and hour: far above any sensible max_restarts
MAX_DETAIL = 300
MAX_BYTES = 4 * 1024 * 1024  # a larger file is not ours: read as empty


class _Corrupt(ValueError):
    pass


#: Per VM: its attempt times and its records, oldest first.
Memory = dict[str, tuple[tuple[float, ...], tuple[Record, ...]]]


def default_path() -> Path:
    return state_dir() / FILE_NAME


def load(path: Path | None, now: float) -> Memory:
    """The memory in the file, attempts older than the window dropped; {} when there
    is no file, and {} with one warning line when it cannot be read or is damaged."""
    path = path or default_path()
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("recovery history %s unreadable (%s): starting without it", path, exc)
        return {}
    try:
        if len(raw) > MAX_BYTES:
            raise _Corrupt(f"larger than {MAX_BYTES} bytes")
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _Corrupt("not JSON") from None
        return _decode(doc, now)
    except _Corrupt as exc:
        log.warning("recovery history %s is damaged (%s): starting without it", path, exc)
        return {}


def save(
    path: Path | None,
    memory: Mapping[str, tuple[Sequence[float], Sequence[Record]]],
    now: float,
) -> None:
    """Write `memory` (attempt times and records per VM) atomically, 0600. Never
    raises: a state directory we cannot write must not stop recovery."""
    path = path or default_path()
    vms: dict[str, Any] = {}
    for name, (attempts, records) in list(memory.items())[-MAX_VMS:]:
        recent = [at for at in attempts if at > now - WINDOW][-MAX_ATTEMPTS:]
        kept = list(records)[-HISTORY:]
        if recent or kept:
            vms[name] = {"attempts": recent, "records": [_record_json(r) for r in kept]}
    # Encoded per VM, so that the oldest VMs can give way when long details would
    # make a file too large to be read back.
    head = f'{{"version": {VERSION}, "vms": {{'
    parts = [f"{json.dumps(name)}: {json.dumps(entry)}" for name, entry in vms.items()]
    size = len(head) + 2 + sum(len(part) + 2 for part in parts)
    while parts and size > MAX_BYTES:
        size -= len(parts.pop(0)) + 2
    body = head + ", ".join(parts) + "}}"
    try:
        write_atomic(path, body)  # 0600
    except OSError as exc:
        log.warning("cannot save the recovery history in %s: %s", path, exc)


def _record_json(record: Record) -> dict[str, Any]:
    return {
        "at": record.at,
        "action": str(record.action),
        "result": str(record.result),
        "detail": record.detail[:MAX_DETAIL],
    }


def _time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Corrupt("a time that is not a number")
    return float(value)


def _decode(doc: object, now: float) -> Memory:
    if not isinstance(doc, dict) or doc.get("version") != VERSION:
        raise _Corrupt(f"not a version {VERSION} history")
    vms = doc.get("vms")
    if not isinstance(vms, dict):
        raise _Corrupt("no VMs table")
    memory: Memory = {}
    for name, entry in list(vms.items())[-MAX_VMS:]:
        if not isinstance(entry, dict):
            raise _Corrupt(f"VM {name!r} is not an object")
        attempts, records = entry.get("attempts"), entry.get("records")
        if not isinstance(attempts, list) or not isinstance(records, list):
            raise _Corrupt(f"VM {name!r} has no attempts or records list")
        times = sorted(_time(at) for at in attempts)
        recent = tuple(at for at in times if at > now - WINDOW)[-MAX_ATTEMPTS:]
        memory[name] = (recent, tuple(_record(r, name) for r in records[-HISTORY:]))
    return memory


def _record(value: object, name: str) -> Record:
    if not isinstance(value, dict):
        raise _Corrupt(f"a record of VM {name!r} is not an object")
    detail = value.get("detail")
    try:
        action, result = ActionKind(str(value.get("action"))), Result(str(value.get("result")))
    except ValueError:
        raise _Corrupt(f"a record of VM {name!r} has an unknown action or result") from None
    if not isinstance(detail, str):
        raise _Corrupt(f"a record of VM {name!r} has no detail")
    return Record(_time(value.get("at")), action, result, detail[:MAX_DETAIL])
