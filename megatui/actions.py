"""What the keys do, as argv, and who may do it.

Built here once so the TUI, the palette and the headless commands agree on every
flag. Nothing here runs anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from megatui.api import ActionError
from megatui.config import VMSettings
from megatui.files import write_atomic
from megatui.model import VM

#: Actions that change the platform; refused in read-only mode. The one list: the
#: TUI's key actions are these verbs with a `_vm` suffix (`is_mutating`).
MUTATING = frozenset({"start", "stop", "suspend", "create", "delete"})


def is_mutating(action: str) -> bool:
    """Whether a verb ("start") or the TUI's action for it ("start_vm") changes the
    platform."""
    return action.removesuffix("_vm") in MUTATING


def check_allowed(action: str, readonly: bool) -> None:
    if readonly and is_mutating(action):
        raise ActionError(f"read-only mode: {action} is disabled")


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
    # The TUI and a second megatui may write it at the same time.
    write_atomic(path, "".join(lines))


def ssh_argv(
    vm: VM,
    login: VMSettings,
    *,
    jump_host: str | None = None,
    known_hosts: Path | None = None,
    key_known: bool = False,
    ssh: str = "ssh",
    options: Sequence[str] = (),
    destination: str | None = None,
) -> list[str]:
    """An interactive `ssh` to the VM, the same host key rules as the probe.

    `options` and `destination` are the backend's (`VMBackend.ssh_command`): `-J
    host` for tart over `--host`, a ProxyCommand through an Orchard controller and
    the VM's name; without them, the VM's address (and `-J jump_host`)."""
    address = destination or login.host or vm.ip
    if not address:
        raise ActionError(f"VM '{vm.name}' has no IP address yet")
    argv = [ssh, *options]
    if jump_host:
        # Tart's VMs are reachable from the Mac host only (docs/facts/tart.md §9.3).
        argv += ["-J", jump_host]
    if login.port != 22:
        argv += ["-p", str(login.port)]
    if login.key:
        # Only that key: an agent holding many keys would otherwise offer them first
        # and use up the server's MaxAuthTries before the right one is tried.
        argv += ["-i", login.key, "-o", "IdentitiesOnly=yes"]
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
