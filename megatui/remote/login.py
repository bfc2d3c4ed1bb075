"""Logging in to the Mac host: the SSH options, the host key check, and one line for
every way connecting fails (with the reason a status line has room for and the fix).

The host key is never trusted silently: a key that known_hosts does not have is
refused, and the error says whether it is new (how to accept it) or changed (how
to check it).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import asyncssh
from asyncssh.public_key import get_default_certificate_algs, get_default_public_key_algs

from megatui.remote.errors import (
    HostKeyChanged,
    HostKeyUnknown,
    HostSpec,
    HostUnreachable,
    LoginRefused,
    RemoteError,
)
from megatui.text import one_line, tilde


class HostClient(asyncssh.SSHClient):
    """Tells the transport when its connection dies, and notes the offered host key."""

    def __init__(self, on_lost: Callable[[Exception | None], None]) -> None:
        super().__init__()
        self._on_lost = on_lost
        self.offered: asyncssh.SSHKey | None = None
        self.offered_at: tuple[str, str, int] | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        # Called only for a key that known_hosts does not trust: refuse, and keep
        # it so the error can say whether it is new or changed.
        self.offered = key
        self.offered_at = (host, addr, port)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._on_lost(exc)


async def client_options(
    spec: HostSpec,
    *,
    known_hosts: str | None,
    config_paths: Sequence[str] | None,
    connect_timeout: float,
    keepalive_interval: float,
    keepalive_count_max: int,
) -> asyncssh.SSHClientConnectionOptions:
    kwargs: dict[str, Any] = {
        "host": spec.host,
        "config": config_paths if config_paths is not None else (),
        "connect_timeout": connect_timeout,
        "keepalive_interval": keepalive_interval,
        "keepalive_count_max": keepalive_count_max,
        "agent_forwarding": False,
        # megatui runs without a prompt: no password or keyboard-interactive.
        "password_auth": False,
        "kbdint_auth": False,
    }
    if spec.port is not None:
        kwargs["port"] = spec.port
    if spec.user is not None:
        kwargs["username"] = spec.user
    if known_hosts is not None:
        kwargs["known_hosts"] = os.path.expanduser(known_hosts)
    options: asyncssh.SSHClientConnectionOptions = (
        await asyncssh.SSHClientConnectionOptions.construct(None, **kwargs)
    )
    if options.known_hosts is None:
        # `UserKnownHostsFile none` in ~/.ssh/config turns checking off in
        # asyncssh; the Mac host runs VMs, so never connect unverified.
        kwargs["known_hosts"] = _default_known_hosts()
        options = await asyncssh.SSHClientConnectionOptions.construct(None, **kwargs)
    return options


def _default_known_hosts() -> str | bytes:
    path = Path("~/.ssh/known_hosts").expanduser()
    return str(path) if path.is_file() else b""


def _known_hosts_name(options: asyncssh.SSHClientConnectionOptions) -> str:
    known: Any = options.known_hosts
    if isinstance(known, str):
        return tilde(known)
    if isinstance(known, list | tuple) and known and isinstance(known[0], str):
        return tilde(known[0])
    return "~/.ssh/known_hosts"


def host_key_algs(options: asyncssh.SSHClientConnectionOptions) -> dict[str, Any]:
    """As OpenSSH does: the key types known_hosts has for the host first, the
    others still allowed. asyncssh alone offers only the known types, so a host
    that now has only another type of key fails the key exchange with no word
    about the key, instead of being reported as a changed key."""
    if options.config.get("HostKeyAlgorithms"):
        return {}  # the user chose; asyncssh applies it
    known: Any = options.known_hosts or _default_known_hosts()
    port = options.port if options.port != 22 else None
    try:
        name = options.host_key_alias or options.host
        keys = asyncssh.match_known_hosts(known, name, "", port)[0]
    except Exception:  # unreadable known_hosts: asyncssh reports it when connecting
        return {}
    first = [alg.decode("ascii") for key in keys for alg in key.sig_algorithms]
    if not first:
        return {}
    rest = [
        alg.decode("ascii")
        for alg in (*get_default_certificate_algs(), *get_default_public_key_algs())
    ]
    return {"server_host_key_algs": list(dict.fromkeys(first + rest))}


def ssh_hint(spec: HostSpec) -> str:
    """The `ssh` command that must work without a prompt."""
    port = f"-p {spec.port} " if spec.port is not None else ""
    user = f"{spec.user}@" if spec.user else ""
    return f"ssh {port}{user}{spec.host}"


def _keyscan_port(spec: HostSpec) -> str:
    return f"-p {spec.port} " if spec.port is not None else ""


def _known_hosts_host(spec: HostSpec) -> str:
    if spec.port is not None and spec.port != 22:
        return f"'[{spec.host}]:{spec.port}'"
    return spec.host


def connect_error(
    exc: BaseException,
    spec: HostSpec,
    options: asyncssh.SSHClientConnectionOptions,
    client: HostClient,
    connect_timeout: float,
) -> RemoteError:
    """The one-line error for a failed `asyncssh.connect` (asyncssh.Error, OSError
    (TimeoutError among them) or ValueError)."""
    ssh_cmd = ssh_hint(spec)
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return _host_key_error(spec, options, client)
    if isinstance(exc, asyncssh.PermissionDenied):
        return LoginRefused(
            f"{options.username}@{spec.target} refused our login: no key from the "
            f"SSH agent or ~/.ssh was accepted (`{ssh_cmd}` must work without a password)",
            reason="login refused: no key from the SSH agent or ~/.ssh was accepted",
            fix=f"`{ssh_cmd}` must work without a password: add your public key to "
            "~/.ssh/authorized_keys on the Mac (`ssh-copy-id`), or load it into the agent",
        )
    if isinstance(exc, TimeoutError):
        return HostUnreachable(
            f"cannot reach {spec.target}: no answer within {connect_timeout:g} s",
            reason=f"no answer within {connect_timeout:g} s",
            fix=f"check the address {spec.host}, and that the Mac is awake and on "
            "the network (a firewall may drop the connection)",
        )
    if isinstance(exc, socket.gaierror):
        return HostUnreachable(
            f"cannot reach {spec.target}: unknown host",
            reason=f"unknown host {spec.host}",
            fix="check the name in --host (or `host` in the config), or use the Mac's address",
        )
    if isinstance(exc, ConnectionRefusedError):
        return HostUnreachable(
            f"cannot reach {spec.target}: connection refused (is Remote Login enabled on the Mac?)",
            reason="connection refused",
            fix="turn on Remote Login on the Mac (System Settings > General > Sharing) "
            "and check the address and port",
        )
    if isinstance(exc, asyncssh.KeyExchangeFailed) and "host key" in exc.reason.lower():
        # asyncssh offers only the key types known_hosts has for the host; a
        # host that no longer has one of them is a changed key, OpenSSH says.
        return HostKeyChanged(
            f"HOST KEY OF {spec.target} CHANGED: it offers none of the key types "
            f"{_known_hosts_name(options)} has for it; refusing to connect",
            reason="HOST KEY CHANGED (it offers none of the key types we trust)",
            fix=f"if the Mac was reinstalled, run `ssh-keygen -R "
            f"{_known_hosts_host(spec)}` and `{ssh_cmd}` to verify the new key",
        )
    if isinstance(exc, asyncssh.DisconnectError):  # KeyExchangeFailed among them
        return RemoteError(f"SSH to {spec.target} failed: {one_line(exc.reason)}")
    if isinstance(exc, OSError):
        reason = one_line(exc.strerror or str(exc))
        return HostUnreachable(
            f"cannot reach {spec.target}: {reason}",
            reason=reason,
            fix=f"check the address {spec.host} and that the Mac is on the network",
        )
    return RemoteError(f"SSH to {spec.target} failed: {one_line(str(exc))}")


def _host_key_error(
    spec: HostSpec, options: asyncssh.SSHClientConnectionOptions, client: HostClient
) -> RemoteError:
    where = _known_hosts_name(options)
    target = spec.target
    offered = client.offered
    if offered is None or client.offered_at is None:
        # Refused by a revocation or CA rule rather than by our callback.
        return HostKeyChanged(
            f"host key of {target} is revoked or not signed by a trusted CA in {where}: "
            "refusing to connect",
            reason=f"host key revoked or not signed by a trusted CA in {where}",
            fix=f"check {where} with whoever manages the Mac",
        )
    host, addr, port = client.offered_at
    trusted: list[asyncssh.SSHKey] = []
    # Empty means asyncssh's default, ~/.ssh/known_hosts, resolved at connect time.
    known: Any = options.known_hosts or _default_known_hosts()
    with contextlib.suppress(Exception):
        lookup_port = port if port != 22 else None
        name = options.host_key_alias or host
        trusted = list(asyncssh.match_known_hosts(known, name, addr, lookup_port)[0])
    fingerprint = offered.get_fingerprint()
    fix = (
        f"if the Mac was reinstalled, run `ssh-keygen -R {_known_hosts_host(spec)}` "
        f"and `{ssh_hint(spec)}` to verify the new key"
    )
    if trusted:
        return HostKeyChanged(
            f"HOST KEY OF {target} CHANGED: it now offers {offered.get_algorithm()} "
            f"{fingerprint}, which does not match {where}; refusing to connect ({fix})",
            reason=f"HOST KEY CHANGED (now {offered.get_algorithm()} {fingerprint})",
            fix=fix,
        )
    keyscan = f"ssh-keyscan {_keyscan_port(spec)}{spec.host} >> {where}"
    return HostKeyUnknown(
        f"host key of {target} is not in {where}: connect once with `{ssh_hint(spec)}` "
        f"to verify and accept it ({offered.get_algorithm()} {fingerprint})",
        reason=f"host key not trusted yet (not in {where})",
        fix=f"check that the Mac's key is {offered.get_algorithm()} {fingerprint}, then "
        f"connect once with `{ssh_hint(spec)}` and accept it (or `{keyscan}`)",
    )
