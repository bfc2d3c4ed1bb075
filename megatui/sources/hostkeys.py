"""Trust-on-first-use SSH host keys for VMs, keyed by VM name.

Tart hands out addresses from one DHCP pool and reuses them (docs/facts/tart.md §9.3,
§11.1), so an IP says nothing about which machine answers; the VM name does.
The first key a VM presents is trusted; a different key later is refused until
the user runs `megatui forget-key NAME`.

The store is a small JSON document. Every change is a read-modify-write under an
exclusive lock on a sidecar lock file, written to a temporary file and renamed
into place, so a crash or a second megatui process (the TUI next to
`megatui wait`) never leaves a torn file or drops another VM's entry.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from megatui.config import data_dir
from megatui.files import write_atomic

_FORMAT_VERSION = 1
DEFAULT_FILENAME = "vm_host_keys.json"


class HostKeyStoreError(Exception):
    """The store cannot be read or written. `str()` is one line for the user."""


def normalize_key(text: str) -> str:
    """`algorithm base64` of an OpenSSH public key line, without its comment.

    Raises ValueError when `text` is not an OpenSSH public key.
    """
    parts = text.strip().split()
    if len(parts) < 2:
        raise ValueError("not an OpenSSH public key")
    algorithm, blob = parts[0], parts[1]
    try:
        raw = base64.b64decode(blob, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not an OpenSSH public key") from None
    # The blob starts with its own algorithm name; a mismatch means a mangled line.
    if len(raw) < 4:
        raise ValueError("not an OpenSSH public key")
    name_len = int.from_bytes(raw[:4], "big")
    if raw[4 : 4 + name_len] != algorithm.encode("ascii", "replace"):
        raise ValueError("not an OpenSSH public key")
    return f"{algorithm} {blob}"


def default_path() -> Path:
    """Where megatui keeps trusted VM host keys: its data directory."""
    return data_dir() / DEFAULT_FILENAME


class HostKeyStore:
    """VM name -> trusted OpenSSH public key, persisted at `path`."""

    def __init__(self, path: Path) -> None:
        self._path = Path(path)

    @property
    def path(self) -> Path:
        return self._path

    def lookup(self, vm: str) -> str | None:
        return self._read().get(vm)

    def trust(self, vm: str, key: str) -> None:
        """Record `key` as the host key of `vm`, replacing any earlier one."""
        normalized = normalize_key(key)
        with self._locked():
            keys = self._read()
            if keys.get(vm) == normalized:
                return
            keys[vm] = normalized
            self._write(keys)

    def forget(self, vm: str) -> bool:
        """Drop the trusted key of `vm`. True when there was one."""
        with self._locked():
            keys = self._read()
            if vm not in keys:
                return False
            del keys[vm]
            self._write(keys)
            return True

    def all(self) -> dict[str, str]:
        return self._read()

    # --- storage

    def _read(self) -> dict[str, str]:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise HostKeyStoreError(
                f"cannot read host key store {self._path}: {exc.strerror}"
            ) from None
        # A damaged store must not read as empty: that would silently re-trust
        # whatever key every VM presents next.
        try:
            data: Any = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HostKeyStoreError(
                f"host key store {self._path} is damaged (not JSON); fix or delete it"
            ) from None
        keys = data.get("keys") if isinstance(data, dict) else None
        if not isinstance(keys, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in keys.items()
        ):
            raise HostKeyStoreError(
                f"host key store {self._path} is damaged (unexpected layout); fix or delete it"
            )
        return dict(keys)

    def _write(self, keys: dict[str, str]) -> None:
        document = {"version": _FORMAT_VERSION, "keys": dict(sorted(keys.items()))}
        directory = self._path.parent
        try:
            write_atomic(self._path, json.dumps(document, indent=2) + "\n")
        except OSError as exc:
            raise HostKeyStoreError(
                f"cannot write host key store {self._path}: {exc.strerror}"
            ) from None
        with contextlib.suppress(OSError):
            dir_fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock_path = self._path.with_name(self._path.name + ".lock")
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise HostKeyStoreError(
                f"cannot write host key store {self._path}: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)
