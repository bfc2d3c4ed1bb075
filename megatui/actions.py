"""What the keys do, as argv, and who may do it.

Built here once so the TUI, the palette and the headless commands agree on every
flag. Nothing here runs anything.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from megatui.api import ActionError
from megatui.config import VMSettings
from megatui.model import VM

#: Actions that change the platform; refused in read-only mode.
MUTATING = frozenset({"start", "stop", "create", "delete"})


def check_allowed(action: str, readonly: bool) -> None:
    if readonly and action in MUTATING:
        raise ActionError(f"read-only mode: {action} is disabled")


def start_argv(tart_path: str, name: str) -> list[str]:
    # --no-graphics: megatui starts VMs for headless use; the window would pop up
    # on the Mac's screen (or fail without a GUI session) otherwise.
    return [tart_path, "run", "--no-graphics", name]


def stop_argv(tart_path: str, name: str, timeout: int = 30) -> list[str]:
    return [tart_path, "stop", "--timeout", str(timeout), name]


def host_key_alias(vm_name: str) -> str:
    """The name our known_hosts file uses for a VM: Tart reuses IP addresses, so the
    key belongs to the VM's name, exactly as the readiness probe trusts it.

    Characters known_hosts or ssh's option parser treat specially (space, comma,
    `*`, `?`, `!`, `[`, `#`, non-ASCII...) are written as `_XX` hex bytes, and `_`
    itself too, so every VM name has its own alias and each line parses."""
    safe = "".join(
        ch if ch.isascii() and (ch.isalnum() or ch in ".-") else _hex(ch) for ch in vm_name
    )
    return f"megatui-vm.{safe}"


def _hex(ch: str) -> str:
    return "".join(f"_{b:02x}" for b in ch.encode("utf-8", "surrogateescape"))


def write_known_hosts(path: Path, keys: Mapping[str, str]) -> None:
    """Write a known_hosts file from {vm name: OpenSSH public key}."""
    lines = [f"{host_key_alias(name)} {key.strip()}\n" for name, key in sorted(keys.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique temp name: the TUI and a second megatui may write at the same time,
    # and a shared ".tmp" would let one rename the other's half-written file.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write("".join(lines))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def ssh_argv(
    vm: VM,
    login: VMSettings,
    *,
    jump_host: str | None = None,
    known_hosts: Path | None = None,
    key_known: bool = False,
    ssh: str = "ssh",
) -> list[str]:
    """An interactive `ssh` to the VM, the same host key rules as the probe."""
    address = login.host or vm.ip
    if not address:
        raise ActionError(f"VM '{vm.name}' has no IP address yet")
    argv = [ssh]
    if jump_host:
        # Tart's VMs are reachable from the Mac host only (tart.md §9.3).
        argv += ["-J", jump_host]
    if login.port != 22:
        argv += ["-p", str(login.port)]
    if login.key:
        argv += ["-i", login.key]
    if known_hosts is not None:
        argv += [
            "-o",
            f"HostKeyAlias={host_key_alias(vm.name)}",
            "-o",
            f"UserKnownHostsFile={known_hosts}",
            "-o",
            f"StrictHostKeyChecking={'yes' if key_known else 'ask'}",
        ]
    argv.append(f"{login.user}@{address}")
    return argv
