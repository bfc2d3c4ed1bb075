"""SSH readiness of VMs: TCP -> login -> readiness command, with a kept connection.

This replaces the `nc -z ip 22; ssh admin@ip echo ready` loops people write
around `tart ip` (docs/facts/tart.md §10, §11.2). An IP appears long before sshd answers and
a booting Mac resets connections during the handshake, so every "not yet" is an
OPEN or CLOSED result, never an exception. Once a VM is READY the connection is
kept, and later probes run the command on it instead of a new handshake.

Host keys are checked against `HostKeyStore` (trust on first use, keyed by VM
name) before authentication starts, so no password ever reaches a server whose
key changed.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from megatui.clock import Clock
from megatui.model import ProbeResult, ProbeStage
from megatui.sources.hostkeys import HostKeyStore, HostKeyStoreError
from megatui.text import one_line
from megatui.transport import Transport

if TYPE_CHECKING:
    import asyncssh
else:

    class _Lazy:
        """asyncssh, imported when first used: with cryptography it costs ~0.15 s of
        CPU, which a command that probes no VM (`--version`, a host with no running
        VM) never pays (docs/architecture.md "Imports")."""

        def __getattr__(self, name: str) -> Any:
            return getattr(importlib.import_module("asyncssh"), name)

    asyncssh = _Lazy()


async def load_asyncssh() -> ModuleType:
    """Import asyncssh in a thread: on the event loop its import would freeze the TUI
    (and stall every other source's first answer) for as long."""
    module = sys.modules.get("asyncssh")
    if module is None:
        module = await asyncio.to_thread(importlib.import_module, "asyncssh")
    return module


# Keepalives let a kept connection notice a VM that vanished (stopped, suspended)
# without waiting for the next health check to hang.
_KEEPALIVE_INTERVAL = 15.0
_KEEPALIVE_COUNT_MAX = 3
# Closing is best effort and must not stall a probe behind a dead peer.
_CLOSE_TIMEOUT = 2.0


@dataclass(frozen=True)
class Credentials:
    """How to log in to a VM. Public Tart images use admin/admin (docs/facts/tart.md §9.1)."""

    user: str = "admin"
    # Kept out of repr so a logged or displayed Credentials never shows it.
    password: str | None = field(default=None, repr=False)
    key_path: str | None = None
    use_agent: bool = True


def key_text(key: asyncssh.SSHKey) -> str:
    """The `algorithm base64` form HostKeyStore keeps."""
    return f"{key.get_algorithm()} {base64.b64encode(key.public_data).decode('ascii')}"


class _ProbeClient:
    """Decides about the server's host key during the key exchange (mixed into
    asyncssh.SSHClient by `_client_class`, once asyncssh is imported).

    asyncssh calls `validate_host_public_key` only for keys not in the trusted
    list we pass, and does so before the user-auth service is even requested, so a
    refusal here means the server never sees a user name, a key or a password.
    """

    def __init__(self, trusted: asyncssh.SSHKey | None) -> None:
        super().__init__()
        self._trusted = trusted
        self.offered: asyncssh.SSHKey | None = None
        self.key_verified = False
        self.lost = False

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        if self.offered is not None and key != self.offered:
            # A re-key on a long-kept connection must not switch keys either.
            return False
        self.offered = key
        return self._trusted is None

    def begin_auth(self, username: str) -> None:
        # Auth begins only after the key exchange finished, i.e. after the server
        # proved it holds the private half of `offered`: now it is safe to trust.
        self.key_verified = True

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


@functools.cache
def _client_class() -> type[_ProbeClient]:
    """The probe's SSHClient: built once asyncssh is imported."""
    return type("ProbeClient", (_ProbeClient, asyncssh.SSHClient), {})


@dataclass
class _Kept:
    conn: asyncssh.SSHClientConnection
    client: _ProbeClient
    ip: str
    port: int
    user: str


class _Dead(Exception):
    """The kept connection is unusable; fall through to a fresh login."""


class SSHProber:
    """Probes VMs over SSH and keeps one connection per READY VM.

    Probes of one VM are serialised; different VMs probe concurrently. After
    close() probes still answer but no longer keep connections.
    """

    def __init__(
        self,
        transport: Transport,
        hostkeys: HostKeyStore,
        clock: Clock,
        *,
        connect_timeout: float = 5.0,
        command_timeout: float = 5.0,
    ) -> None:
        self._transport = transport
        self._hostkeys = hostkeys
        self._clock = clock
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._kept: dict[str, _Kept] = {}
        # One probe per VM at a time: two concurrent logins would each try to
        # keep their connection and one would leak.
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False
        self.handshakes = 0

    def has_connection(self, vm: str) -> bool:
        kept = self._kept.get(vm)
        return kept is not None and not kept.client.lost and not kept.conn.is_closed()

    async def port_open(self, ip: str, port: int) -> bool:
        """A bare TCP connect, no handshake: the cheap check between health checks."""
        return await self._tcp_open(ip, port)

    async def drop(self, vm: str) -> None:
        kept = self._kept.pop(vm, None)
        if kept is not None:
            await _close(kept.conn)

    async def close(self) -> None:
        self._closed = True
        kept, self._kept = list(self._kept.values()), {}
        for k in kept:
            await _close(k.conn)

    async def probe(
        self, vm: str, ip: str, port: int, creds: Credentials, command: str = "echo ready"
    ) -> ProbeResult:
        lock = self._locks.setdefault(vm, asyncio.Lock())
        async with lock:
            try:
                stage, error = await self._probe(vm, ip, port, creds, command)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The contract is "no exception escapes": anything unforeseen
                # becomes a one-line ERROR rather than killing the monitor's task.
                message = f"SSH probe of VM '{vm}' failed: {type(exc).__name__}: {exc}"
                stage, error = ProbeStage.ERROR, self._scrub(message, creds)
            return ProbeResult(stage=stage, checked_at=self._clock.now(), error=error)

    # --- stages

    async def _probe(
        self, vm: str, ip: str, port: int, creds: Credentials, command: str
    ) -> tuple[ProbeStage, str | None]:
        kept = self._kept.get(vm)
        if kept is not None:
            same_target = (kept.ip, kept.port, kept.user) == (ip, port, creds.user)
            if same_target and self.has_connection(vm):
                try:
                    return await self._health_check(vm, kept, command)
                except _Dead:
                    pass
            await self.drop(vm)

        if not await self._tcp_open(ip, port):
            return ProbeStage.CLOSED, None
        return await self._login_and_run(vm, ip, port, creds, command)

    async def _health_check(
        self, vm: str, kept: _Kept, command: str
    ) -> tuple[ProbeStage, str | None]:
        try:
            async with asyncio.timeout(self._command_timeout):
                result = await kept.conn.run(command, check=False, stdin=asyncssh.DEVNULL)
        except TimeoutError:
            # A live-looking connection that cannot run a trivial command (a
            # suspended VM keeps TCP up) is not worth keeping.
            await self.drop(vm)
            return ProbeStage.OPEN, self._timeout_error(command)
        except (asyncssh.Error, OSError) as exc:
            raise _Dead from exc
        except asyncio.CancelledError:
            # The interrupted command's session channel would stay open on the
            # kept connection; dropping the whole connection leaves nothing behind.
            await self.drop(vm)
            raise
        return self._command_outcome(command, result)

    async def _tcp_open(self, ip: str, port: int) -> bool:
        try:
            async with asyncio.timeout(self._connect_timeout):
                _reader, writer = await self._transport.open_connection(
                    ip, port, timeout=self._connect_timeout
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            # Refused, unreachable, timed out, or a tunnel that could not reach
            # it: all the same to a booting VM.
            return False
        writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await writer.wait_closed()
        return True

    async def _login_and_run(
        self, vm: str, ip: str, port: int, creds: Credentials, command: str
    ) -> tuple[ProbeStage, str | None]:
        await load_asyncssh()
        try:
            trusted_text = self._hostkeys.lookup(vm)
        except HostKeyStoreError as exc:
            return ProbeStage.ERROR, str(exc)
        try:
            trusted = asyncssh.import_public_key(trusted_text) if trusted_text else None
        except asyncssh.KeyImportError:
            return ProbeStage.ERROR, (
                f"host key store {self._hostkeys.path} holds an invalid key for VM '{vm}'; "
                f"run `megatui forget-key {vm}`"
            )

        try:
            client_keys = self._client_keys(creds)
        except (OSError, asyncssh.KeyImportError, asyncssh.KeyEncryptionError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            return ProbeStage.ERROR, self._scrub(
                f"cannot use SSH key {creds.key_path}: {reason}", creds
            )

        client = _client_class()(trusted)
        options: dict[str, Any] = {
            "username": creds.user,
            "password": creds.password,
            "known_hosts": ([trusted] if trusted else [], [], []),
            "server_host_key_algs": _host_key_algs(trusted),
            "client_factory": lambda: cast("asyncssh.SSHClient", client),
            # The user's ~/.ssh/config could add a ProxyJump, another user or
            # identity; a probe must do exactly what megatui's settings say.
            "config": None,
            "gss_auth": False,
            "gss_kex": False,
            "x509_trusted_certs": None,
            "keepalive_interval": _KEEPALIVE_INTERVAL,
            "keepalive_count_max": _KEEPALIVE_COUNT_MAX,
            **client_keys,
        }
        tunnel = self._transport.ssh_tunnel()
        if tunnel is not None:
            options["tunnel"] = tunnel

        self.handshakes += 1
        conn: asyncssh.SSHClientConnection | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                conn = await asyncssh.connect(ip, port, **options)
        except TimeoutError:
            return ProbeStage.OPEN, None
        except asyncssh.HostKeyNotVerifiable as exc:
            if trusted is not None and client.offered is not None:
                return ProbeStage.HOST_KEY_CHANGED, _changed_message(vm, client.offered, trusted)
            return ProbeStage.ERROR, one_line(f"host key of VM '{vm}' not accepted: {exc.reason}")
        except asyncssh.PermissionDenied:
            self._trust_if_new(vm, client, trusted)
            return ProbeStage.AUTH_FAILED, f"authentication failed for {creds.user}@{ip}"
        except (asyncssh.KeyExchangeFailed, asyncssh.ProtocolNotSupported) as exc:
            return ProbeStage.ERROR, self._scrub(f"SSH to {ip}:{port} failed: {exc.reason}", creds)
        except asyncssh.ChannelOpenError:
            # Only a tunnel opens channels here: the platform host could not
            # reach the VM's port, which is what CLOSED means.
            return ProbeStage.CLOSED, None
        except ConnectionRefusedError:
            return ProbeStage.CLOSED, None
        except (asyncssh.DisconnectError, OSError, asyncio.IncompleteReadError, EOFError):
            # Closed or reset mid-handshake: sshd of a booting Mac is not up yet.
            return ProbeStage.OPEN, None

        try:
            self._trust_if_new(vm, client, trusted)
            try:
                async with asyncio.timeout(self._command_timeout):
                    result = await conn.run(command, check=False, stdin=asyncssh.DEVNULL)
            except TimeoutError:
                return ProbeStage.OPEN, self._timeout_error(command)
            except (asyncssh.Error, OSError):
                return ProbeStage.OPEN, None
            stage, error = self._command_outcome(command, result)
            if stage is ProbeStage.READY and not self._closed:
                self._kept[vm] = _Kept(conn, client, ip, port, creds.user)
                conn = None
            return stage, error
        finally:
            if conn is not None:
                await _close(conn)

    # --- helpers

    def _client_keys(self, creds: Credentials) -> dict[str, Any]:
        agent = os.environ.get("SSH_AUTH_SOCK") if creds.use_agent else None
        if creds.key_path:
            keys = asyncssh.load_keypairs(os.path.expanduser(creds.key_path))
            if not keys:
                raise ValueError("no private key found")
            return {"client_keys": keys, "agent_path": agent or None}
        if creds.use_agent:
            # Asked for ambient credentials: what `ssh` would use (agent, ~/.ssh/id_*).
            return {"client_keys": (), "agent_path": agent or None}
        # Neither: password only. None (not []) so asyncssh loads no default keys.
        return {"client_keys": None, "agent_path": None}

    def _trust_if_new(self, vm: str, client: _ProbeClient, trusted: asyncssh.SSHKey | None) -> None:
        if trusted is None and client.key_verified and client.offered is not None:
            # A store we cannot write is no reason to call a reachable VM broken;
            # the key is offered again (and trusted) on the next login.
            with contextlib.suppress(HostKeyStoreError):
                self._hostkeys.trust(vm, key_text(client.offered))

    def _command_outcome(
        self, command: str, result: asyncssh.SSHCompletedProcess
    ) -> tuple[ProbeStage, str | None]:
        if result.exit_status == 0:
            return ProbeStage.READY, None
        if result.exit_status is None or result.exit_status < 0:
            how = f"was killed by {result.exit_signal[0]}" if result.exit_signal else "ended"
            return ProbeStage.OPEN, one_line(f"readiness command `{command}` {how}")
        return ProbeStage.OPEN, one_line(
            f"readiness command `{command}` exited {result.exit_status}"
        )

    def _timeout_error(self, command: str) -> str:
        return one_line(
            f"readiness command `{command}` did not finish within {self._command_timeout:g} s"
        )

    @staticmethod
    def _scrub(text: str, creds: Credentials) -> str:
        line = one_line(text)
        if creds.password:
            line = line.replace(creds.password, "***")
        return line


def _host_key_algs(trusted: asyncssh.SSHKey | None) -> Sequence[str]:
    """Plain public-key algorithms, the trusted key's own first.

    Preferring the trusted key's type makes a server with several host keys show
    the one we know. The other types stay allowed, so a rebuilt VM that only has
    a different type of key is reported as a changed key rather than as a
    key-exchange failure. Certificates are left out: we pin keys, not CAs.
    """
    from asyncssh.public_key import get_default_public_key_algs

    algs = [a.decode("ascii") for a in get_default_public_key_algs()]
    if trusted is None:
        return algs
    first = [a.decode("ascii") for a in trusted.sig_algorithms]
    return first + [a for a in algs if a not in first]


def _changed_message(vm: str, offered: asyncssh.SSHKey, trusted: asyncssh.SSHKey) -> str:
    return (
        f"host key of VM '{vm}' changed (now {offered.get_fingerprint('sha256')}, "
        f"trusted {trusted.get_fingerprint('sha256')}): refusing to log in; "
        f"if the VM was rebuilt, run `megatui forget-key {vm}`"
    )


async def _close(conn: asyncssh.SSHClientConnection) -> None:
    # abort() drops the socket at once; a polite close() could wait on a dead peer.
    conn.abort()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_CLOSE_TIMEOUT):
            await asyncio.shield(conn.wait_closed())
