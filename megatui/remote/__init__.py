"""Everything megatui does on a Mac host, over ONE SSH connection (`--host`).

Why one in-process asyncssh connection rather than `ssh` subprocesses or
`ssh -L` tunnels: lazydocker's `ssh://` mode (its most re-filed bug, docs/facts/peers.md
§4.3) runs `ssh` in the background and waits for a forwarded socket to appear, so
a host key prompt, a password prompt, a wrong socket path on Docker Desktop or a
server that refuses streamlocal forwarding all end as "ssh tunneled socket never
became available: context deadline exceeded", and a tunnel that dies is never
rebuilt. Here the connection is ours: host key and login failures are one clear
line, each forward names the socket it could not reach, and a dropped connection
is rebuilt in the background while every caller fails fast in the meantime.

Commands, VM probes (direct-tcpip: the VMs at 192.168.64.x are reachable from the
Mac only, docs/facts/tart.md §9.3), the Kind API server (bound to the Mac's 127.0.0.1,
docs/facts/kubernetes.md §9.1) and the Docker socket all share that connection; in steady
state `connections_opened` stays at 1.

The modules, one job each: `errors` (the one-line errors, the `--host` spec),
`login` (SSH options, host key check, why connecting failed), `command` (one
command's exec channel), `connection` (`RemoteTransport`: the connection, commands,
reconnects), `forwards` (TCP and unix forwards that survive reconnects),
`host_setup` (the host's kubeconfig and Docker socket as local ends). The keychain
check is `megatui.keychain`, shared with the tart source.
"""

from megatui.remote.command import remote_command_line
from megatui.remote.connection import RemoteTransport
from megatui.remote.errors import (
    ConnectionLost,
    HostKeyChanged,
    HostKeyUnknown,
    HostSpecError,
    HostUnreachable,
    LoginRefused,
    RemoteError,
    parse_host_spec,
)
from megatui.remote.host_setup import (
    RemoteSetup,
    prepare_remote,
    refresh_kubeconfig,
)

__all__ = [
    "ConnectionLost",
    "HostKeyChanged",
    "HostKeyUnknown",
    "HostSpecError",
    "HostUnreachable",
    "LoginRefused",
    "RemoteError",
    "RemoteSetup",
    "RemoteTransport",
    "parse_host_spec",
    "prepare_remote",
    "refresh_kubeconfig",
    "remote_command_line",
]
