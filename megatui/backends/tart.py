"""Tart as a VM backend: on this Mac, or on a Mac host over one SSH connection.

This is exactly what the monitor did with `TartCLI` before backends existed (start
as a detached `tart run` with its log where the runner lives, `tart stop`, `tart
get`, the log's tail, `tart ip` with a configured address taking precedence, `ssh
-J host` with `--host`), so switching the monitor over changes no behaviour.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

from megatui.backends.base import (
    BackendError,
    BackendErrorKind,
    NewVMSpec,
    SSHCommand,
    SSHRoute,
)
from megatui.clock import Clock, SystemClock
from megatui.config import Settings, state_dir
from megatui.model import BackendVM, TartState, Worker
from megatui.sources.tart import (
    TartCLI,
    TartError,
    TartErrorKind,
    classify_failure,
)
from megatui.transport import CommandNotFound, CommandTimeout, Transport, TransportError

#: `tart clone` of an OCI image pulls it first: tens of GB on a slow line.
CLONE_TIMEOUT = 3600.0
#: How long reading the VM's log may take (as the monitor always allowed).
LOG_READ_TIMEOUT = 5.0

#: The first line megatui writes to a VM's log before each `tart run` it starts.
RUN_MARKER = "--- megatui: tart run started "
# Append $2 as a line to the log $1 ("~/" is the home of whoever runs it: the Mac's
# with --host, where the path is not expanded by a shell).
_MARK_SCRIPT = (
    'f=$1; case $f in "~/"*) f="$HOME/${f#"~/"}";; esac; '
    'mkdir -p "$(dirname "$f")" && printf "%s\\n" "$2" >>"$f"'
)


def current_run(lines: list[str]) -> list[str]:
    """The lines of the latest run: from its marker on, or all if there is none."""
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith(RUN_MARKER):
            return lines[i:]
    return lines


_KINDS = {
    TartErrorKind.VM_NOT_FOUND: BackendErrorKind.NOT_FOUND,
    TartErrorKind.NOT_RUNNING: BackendErrorKind.NOT_RUNNING,
    TartErrorKind.ALREADY_RUNNING: BackendErrorKind.ALREADY_RUNNING,
    TartErrorKind.IS_RUNNING: BackendErrorKind.REFUSED,
    TartErrorKind.VM_LIMIT: BackendErrorKind.VM_LIMIT,
    TartErrorKind.NOT_INSTALLED: BackendErrorKind.NOT_INSTALLED,
    TartErrorKind.TIMEOUT: BackendErrorKind.TIMEOUT,
    TartErrorKind.PARSE: BackendErrorKind.BAD_RESPONSE,
    TartErrorKind.KEYCHAIN_LOCKED: BackendErrorKind.LOCKED,
}


def backend_error(exc: TartError) -> BackendError:
    """The same line, with the backend's kind."""
    kind = _KINDS.get(exc.kind, BackendErrorKind.OTHER)
    return BackendError(kind, str(exc), vm=exc.vm)


class TartBackend:
    """VMBackend over one `TartCLI` and the `Transport` it runs on.

    `jump_host` is the `--host` destination for the user's own ssh (`-J`);
    `address_override(name)` a configured address for a VM (`[vms.NAME] host`),
    which wins over `tart ip` as it always did."""

    name = "tart"
    can_watch = False

    def __init__(
        self,
        tart: TartCLI,
        *,
        jump_host: str | None = None,
        address_override: Callable[[str], str | None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.tart = tart
        self.clock: Clock = clock or SystemClock()
        self.transport: Transport = tart.transport
        self.jump_host = jump_host
        self._override = address_override or (lambda _name: None)

    @classmethod
    def from_settings(
        cls, settings: Settings, transport: Transport, clock: Clock | None = None
    ) -> TartBackend:
        """Wired as the monitor wires tart: its path and timeout, `--host` as the
        jump host when the transport is remote, `[vms.NAME] host` as the address."""
        tart = TartCLI(transport, settings.tart_path, settings.tart_timeout)
        return cls(
            tart,
            jump_host=settings.host if transport.is_remote else None,
            address_override=lambda name: settings.vm(name).host,
            clock=clock,
        )

    @property
    def label(self) -> str:
        return self.transport.label

    # ------------------------------------------------------------ reading

    async def list_vms(self) -> list[BackendVM]:
        try:
            vms = await self.tart.list_vms()
        except TartError as exc:
            raise backend_error(exc) from None
        return [BackendVM.from_tart(vm, self.name) for vm in vms]

    async def ip(self, name: str) -> str | None:
        override = self._override(name)
        if override:
            return override
        try:
            return await self.tart.ip(name)
        except TartError as exc:
            raise backend_error(exc) from None

    async def details(self, name: str) -> dict[str, object]:
        try:
            return await self.tart.get(name)
        except TartError as exc:
            raise backend_error(exc) from None

    def log_path(self, name: str) -> str:
        if self.transport.is_remote:
            # On the Mac host: the log must be where the detached tart run lives.
            return f"~/.megatui/logs/{name}.log"
        return str(state_dir() / "logs" / f"{name}.log")

    async def log_tail(self, name: str, lines: int = 50) -> list[str]:
        try:
            data = await self.transport.read_file(self.log_path(name), timeout=LOG_READ_TIMEOUT)
        except Exception:
            # Missing, unreadable, or the host is away: the error type depends on the
            # transport, and no log is just no log.
            return []
        # The latest run only: from the marker `start` wrote before it.
        return current_run(data.decode("utf-8", "replace").splitlines())[-lines:]

    async def workers(self) -> list[Worker] | None:
        return None

    async def readonly_reason(self) -> str | None:
        return None

    async def watch(self, name: str) -> AsyncIterator[BackendVM | None]:
        """Tart cannot stream changes: poll `list_vms`."""
        return
        yield  # an async generator that ends at once

    # ------------------------------------------------------------ actions

    async def start(self, name: str) -> str | None:
        await self._mark_log(name)
        try:
            await self.tart.start(name, self.log_path(name))
        except TartError as exc:
            raise backend_error(exc) from None
        return None

    async def _mark_log(self, name: str) -> None:
        """Start this run's part of the appended-to log with a marker line, so the
        detail screen shows this run's lines, not the previous run's."""
        from megatui.report import iso

        line = f"{RUN_MARKER}{iso(self.clock.now())} ---"
        with contextlib.suppress(Exception):  # the marker is a nicety, the start is not
            await self.transport.run(
                ["/bin/sh", "-c", _MARK_SCRIPT, "sh", self.log_path(name), line], timeout=5.0
            )

    async def stop(self, name: str) -> None:
        try:
            await self.tart.stop(name)
        except TartError as exc:
            raise backend_error(exc) from None

    async def suspend(self, name: str) -> None:
        # `tart suspend` powers off a VM that was not started with --suspendable
        # (docs/facts/tart.md §7.2), megatui's `tart run` does not pass it, and
        # nothing tells how another program started one: a running VM is refused
        # here rather than lost. A VM that is not running gets tart's own refusal.
        listed = {vm.name: vm for vm in await self.list_vms()}
        vm = listed.get(name)
        if vm is not None and vm.state is TartState.RUNNING:
            raise BackendError(
                BackendErrorKind.UNSUPPORTED,
                f"not suspending VM '{name}': tart powers off a VM not started with "
                "--suspendable; stop it instead",
                vm=name,
            )
        await self._tart("suspend", name, vm=name)

    async def create(self, spec: NewVMSpec) -> None:
        if spec.restart_policy not in (None, "Never"):
            raise BackendError(
                BackendErrorKind.UNSUPPORTED,
                f"tart has no restart policy: '{spec.restart_policy}' needs an Orchard controller",
                vm=spec.name,
            )
        await self._tart("clone", spec.image, spec.name, vm=spec.name, timeout=CLONE_TIMEOUT)
        settings: list[str] = []
        if spec.cpu is not None:
            settings += ["--cpu", str(spec.cpu)]
        if spec.memory_mib is not None:
            settings += ["--memory", str(spec.memory_mib)]
        if spec.disk_gb is not None:
            settings += ["--disk-size", str(spec.disk_gb)]
        if settings:
            await self._tart("set", spec.name, *settings, vm=spec.name)

    async def delete(self, name: str) -> None:
        await self._tart("delete", name, vm=name)

    async def _tart(self, *args: str, vm: str, timeout: float | None = None) -> None:
        """A tart subcommand TartCLI has no method for, with its failure classified
        the same way."""
        argv = [self.tart.path, *args]
        limit = self.tart.timeout if timeout is None else timeout
        try:
            result = await self.transport.run(argv, timeout=limit)
        except CommandTimeout:
            raise BackendError(
                BackendErrorKind.TIMEOUT, f"tart {args[0]} did not answer within {limit:g} s", vm=vm
            ) from None
        except CommandNotFound:
            raise BackendError(
                BackendErrorKind.NOT_INSTALLED,
                f'tart not installed (looked for "{self.tart.path}"; set --tart, MEGATUI_TART '
                "or tart.path)",
            ) from None
        except TransportError as exc:
            raise BackendError(BackendErrorKind.OTHER, f"tart {args[0]}: {exc}", vm=vm) from None
        if result.exit_code != 0:
            raise backend_error(classify_failure(result, vm))

    # ------------------------------------------------------------ SSH

    def ssh_route(self, name: str, ip: str | None, port: int) -> SSHRoute | None:
        address = self._override(name) or ip
        if not address:
            return None
        # A Transport is an SSHReach: local connects directly, --host through the host.
        return SSHRoute(address, port, self.transport)

    def ssh_command(self, name: str, address: str | None, port: int) -> SSHCommand:
        target = self._override(name) or address
        if not target:
            raise BackendError(
                BackendErrorKind.NOT_RUNNING, f"VM '{name}' has no IP address yet", vm=name
            )
        # Tart's VMs are reachable from the Mac host only (docs/facts/tart.md §9.3).
        options = ("-J", self.jump_host) if self.jump_host else ()
        return SSHCommand(options, target)

    async def close(self) -> None:
        """Nothing of its own: the transport belongs to whoever made it."""
