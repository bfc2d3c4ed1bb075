"""The one-line errors of a connection to the Mac host, and the `--host` spec."""

from __future__ import annotations

import re
from dataclasses import dataclass

from megatui.transport import CommandNotFound, TransportError


class RemoteError(TransportError):
    """A failure of the connection to the Mac host itself. `str()` is one line.

    `reason` is the short form a status line has room for, `fix` what the user can
    do about it (both default to the whole line)."""

    def __init__(self, message: str, *, reason: str | None = None, fix: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason or message
        self.fix = fix


class HostSpecError(RemoteError):
    """`--host` is not `[user@]mac[:port]`."""


class HostKeyUnknown(RemoteError):
    """The host's key is not in known_hosts: never trusted silently."""


class HostKeyChanged(RemoteError):
    """known_hosts holds a different key for the host: possibly an attacker."""


class HostUnreachable(RemoteError):
    """No TCP connection or no SSH answer."""


class LoginRefused(RemoteError):
    """The host rejected every key we offered."""


class ConnectionLost(RemoteError):
    """The connection is down and being rebuilt; calls fail fast until then."""


class RemoteCommandNotFound(CommandNotFound):
    def __init__(self, program: str, label: str) -> None:
        super().__init__(program)
        # Over SSH the login PATH is short (no Homebrew on a non-interactive
        # macOS shell), so say where we looked.
        self.args = (
            f"{program}: not found on {label} "
            "(looked in the login PATH, /opt/homebrew/bin and /usr/local/bin)",
        )


# --------------------------------------------------------------------------- host spec


@dataclass(frozen=True, slots=True)
class HostSpec:
    user: str | None
    host: str
    port: int | None

    @property
    def target(self) -> str:
        """The host as the user typed it, for messages and `ssh` hints."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port is not None else self.host


_SPEC = re.compile(
    r"^(?:(?P<user>[^@\s]+)@)?(?:\[(?P<v6>[^\]\s]+)\]|(?P<host>[^:@\s\[\]]+))(?::(?P<port>\d+))?$"
)


def parse_host_spec(spec: str) -> HostSpec:
    match = _SPEC.match(spec.strip())
    host = match and (match.group("v6") or match.group("host"))
    if not match or not host or host.startswith("-"):
        raise HostSpecError(f"invalid host '{spec}': expected [USER@]MAC[:PORT]")
    port = int(match.group("port")) if match.group("port") else None
    if port is not None and not 1 <= port <= 65535:
        raise HostSpecError(f"invalid host '{spec}': port {port} is not between 1 and 65535")
    return HostSpec(user=match.group("user"), host=host, port=port)
