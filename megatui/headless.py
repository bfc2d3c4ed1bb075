"""`status` and `wait`: the monitor without a screen, for scripts and CI."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TextIO

from megatui import readiness, report
from megatui.api import ActionError
from megatui.backends.base import VMBackend
from megatui.config import ConfigError, Settings
from megatui.model import (
    SOURCE_HOST,
    SOURCE_STATUSES,
    VM,
    Phase,
    Snapshot,
    SourceStatus,
    StatusKind,
)
from megatui.monitor import ALL_SOURCES, Monitor
from megatui.readiness import Verdict
from megatui.transport import Transport, TransportError

if TYPE_CHECKING:
    from megatui.sources.orchard_config import OrchardConfig

#: How long one call to an Orchard controller may take.
ORCHARD_TIMEOUT = 15.0


class HeadlessError(Exception):
    """A one-line failure of a headless command, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def build_transport(settings: Settings) -> Transport:
    if settings.host:
        from megatui.remote import HostSpecError, RemoteTransport

        try:
            return RemoteTransport(settings.host, settings.remote())
        except HostSpecError as exc:
            raise ConfigError(str(exc)) from None
    from megatui.transport import LocalTransport

    return LocalTransport()


def orchard_config(settings: Settings) -> OrchardConfig | None:
    """The Orchard controller configured (flags, [orchard], the Orchard CLI's
    environment and contexts file), or None without --orchard/--orchard-context."""
    if not settings.orchard:
        return None
    from megatui.sources.orchard_config import OrchardConfigError, resolve

    try:
        return resolve(
            url=settings.orchard_url or None,
            context=settings.orchard_context,
            service_account=settings.orchard_service_account,
            token=settings.orchard_token,
        )
    except OrchardConfigError as exc:
        raise ConfigError(str(exc)) from None


def build_backend(settings: Settings) -> VMBackend | None:
    """The Orchard controller configured (`orchard_config`), or None for tart
    through the transport."""
    config = orchard_config(settings)
    if config is None:
        return None
    from megatui.backends.orchard import OrchardBackend
    from megatui.sources.orchard import OrchardClient, OrchardError

    try:
        client = OrchardClient(config, timeout=ORCHARD_TIMEOUT)
    except OrchardError as exc:
        raise ConfigError(str(exc)) from None
    # The token is in megatui's config: the user's ssh finds it there.
    holds_token = settings.orchard_token and settings.config_path is not None
    return OrchardBackend(client, config_path=settings.config_path if holds_token else None)


def build_monitor(
    settings: Settings, *, sources: Iterable[str] | None = None, vms: Sequence[str] | None = None
) -> Monitor:
    return Monitor(
        settings,
        transport=build_transport(settings),
        sources=sources if sources is not None else ALL_SOURCES,
        vm_filter=vms,
        backend=build_backend(settings),
    )


async def _connect(monitor: Monitor) -> None:
    """With --host, connect before anything else: a script wants one clear line and
    exit 1 for an unreachable host or a refused host key, not a wait."""
    connect = getattr(monitor.transport, "connect", None)
    if connect is not None:
        try:
            await connect()
        except TransportError as exc:
            raise HeadlessError(str(exc), 1) from None


def _with_silent_sources(snap: Snapshot, enabled: Iterable[str], timeout: float) -> Snapshot:
    """Name the sources that gave no answer at all, rather than leave them out."""
    sources = dict(snap.sources)
    for source in enabled:
        keys = (snap.vm_source,) if source == "tart" else SOURCE_STATUSES.get(source, (source,))
        for key in keys:
            if key not in sources:
                sources[key] = SourceStatus(
                    key,
                    ok=False,
                    error=f"no answer within {timeout:g} s",
                    kind=StatusKind.NO_ANSWER,
                )
    return replace(snap, sources=sources)


async def status(settings: Settings, as_json: bool, timeout: float) -> int:
    monitor = build_monitor(settings)
    try:
        await _connect(monitor)
        await monitor.start()
        await monitor.wait_first_round(timeout)
        snap = _with_silent_sources(monitor.snapshot, monitor.enabled, timeout)
    except HeadlessError as exc:
        print(f"megatui: {exc}", file=sys.stderr)
        return exc.code
    finally:
        await monitor.stop()
        await monitor.transport.close()
    if as_json:
        print(report.dumps(report.snapshot_json(snap)))
    else:
        print(report.snapshot_text(snap))
    return 0 if _any_answered(snap) else 1


def _any_answered(snap: Snapshot) -> bool:
    """Whether any source (the host connection is none) gave data: status exits 1 if not."""
    return any(s.ok for name, s in snap.sources.items() if name != SOURCE_HOST)


def _progress_line(
    wanted: Sequence[str], snap: Snapshot, elapsed: float, tart_error: str | None
) -> tuple[str, str]:
    """The progress line, and its key: what changed enough for a non-TTY to print it
    again (phases, errors; not percentages or the clock)."""
    parts, key = [], []
    for name in wanted:
        vm = snap.vm(name)
        if vm is None:
            parts.append(f"{name} not listed yet")
            key.append(f"{name}:-")
            continue
        part = f"{vm.name} {vm.phase} {round(vm.progress * 100)}%"
        if vm.eta_seconds is not None and vm.phase is not Phase.READY:
            part += f" eta {report.duration(vm.eta_seconds)}"
        if vm.error:
            part += f" ({vm.error})"
        parts.append(part)
        key.append(f"{vm.name}:{vm.phase}:{vm.error}")
    line = f"[{report.duration(elapsed):>6}] " + " · ".join(parts)
    if tart_error:
        line += f" · {tart_error}"
    return line, " ".join(key) + f"|{tart_error}"


async def wait(
    settings: Settings,
    names: Sequence[str],
    timeout: float,
    as_json: bool,
    err: TextIO | None = None,
    *,
    start: bool = False,
) -> int:
    """Exit 0 when every VM is ready; 1 on timeout or a definite error (a stopped VM
    without --start, a rejected login); 2 unknown VM or tart not installed.

    When to stop is `readiness.decide`'s call, the same rule doctor and the TUI use."""
    out_err = err or sys.stderr
    wanted = list(dict.fromkeys(names))
    monitor = build_monitor(settings, sources={"tart", "ssh"}, vms=wanted)
    changed = asyncio.Event()
    monitor.subscribe(lambda _snap: changed.set())
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout
    progress = _Progress(out_err)
    try:
        await _connect(monitor)
        await monitor.start()
        to_start = set(wanted) if start else set()
        listed: set[str] = set()
        while True:
            snap = monitor.snapshot
            tart = snap.vm_status()
            tart_error = tart.error if tart is not None and not tart.ok else None
            if tart_error and monitor.tart_hopeless():
                raise HeadlessError(tart_error, 2)
            known = monitor.known_vm_names()
            if known is not None:
                # Only the first list decides what is unknown: later, a VM missing
                # from a list is on its way (Orchard re-creates a stopped VM on start).
                unknown = [n for n in wanted if n not in known and n not in listed]
                if unknown:
                    raise HeadlessError(_unknown_message(unknown, monitor), 2)
                listed.update(wanted)
                if to_start and await _start_stopped(monitor, snap, to_start, out_err):
                    continue  # decide on the snapshot that shows them starting
            # Before every source answered once, a VM that is already ready would
            # show as "ip 40%" until its first probe: say nothing yet instead.
            if monitor.first_round_done() or tart_error:
                line, key = _progress_line(wanted, snap, loop.time() - started, tart_error)
                progress.show(line, key)
                decisions = {
                    n: readiness.decide(n, snap.vm(n), tart, tart_fatal=monitor.tart_hopeless())
                    for n in wanted
                }
                if all(d.verdict is Verdict.READY for d in decisions.values()):
                    progress.end()
                    vms = [vm for n in wanted if (vm := snap.vm(n)) is not None]
                    _print_ready(snap, vms, as_json)
                    return 0
                given_up = [(n, d) for n, d in decisions.items() if d.verdict is Verdict.GIVE_UP]
                if given_up:
                    progress.end()
                    raise HeadlessError("; ".join(f"{n}: {d.reason}" for n, d in given_up), 1)
            remaining = deadline - loop.time()
            if remaining <= 0:
                progress.end()
                message = _timeout_message(monitor.snapshot, wanted, timeout, tart_error)
                raise HeadlessError(message, 1)
            changed.clear()
            # Wake on a new snapshot, or once a second to refresh the elapsed time.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 1.0)):
                    await changed.wait()
    except HeadlessError as exc:
        progress.end()
        print(f"megatui: {exc}", file=out_err)
        return exc.code
    finally:
        await monitor.stop()
        await monitor.transport.close()


class _Progress:
    """One line rewritten in place on a TTY; a new line per change otherwise."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self._key: str | None = None
        self._open = False

    def show(self, line: str, key: str) -> None:
        if self._tty:
            self._out.write("\r\033[K" + line)
            self._open = True
        elif key != self._key:
            self._out.write(line + "\n")
        self._key = key
        self._out.flush()

    def end(self) -> None:
        if self._open:
            self._out.write("\n")
            self._out.flush()
            self._open = False


async def _start_stopped(monitor: Monitor, snap: Snapshot, to_start: set[str], err: TextIO) -> bool:
    """`wait --start`: start the wanted VMs that are stopped or suspended, once each.
    True when one was started."""
    started = False
    for name in sorted(to_start):
        vm = snap.vm(name)
        if vm is None:
            continue
        to_start.discard(name)
        if vm.phase in (Phase.STOPPED, Phase.SUSPENDED) or (
            vm.phase is Phase.ERROR and vm.state != "running"
        ):
            try:
                note = await monitor.start_vm(name)
            except ActionError as exc:
                raise HeadlessError(f"{name}: cannot start: {exc}", 1) from None
            if note:
                print(f"megatui: {name}: {note}", file=err)
            started = True
    return started


def _unknown_message(unknown: Sequence[str], monitor: Monitor) -> str:
    known = sorted(monitor.known_vm_names() or ())
    names = ", ".join(f"'{n}'" for n in unknown)
    have = ", ".join(known) if known else "none"
    return f"unknown VM {names} ({monitor.backend.name} lists: {have})"


def _timeout_message(
    snap: Snapshot, wanted: Sequence[str], timeout: float, tart_error: str | None = None
) -> str:
    parts = []
    for name in wanted:
        vm = snap.vm(name)
        if vm is None:
            parts.append(f"{name} not listed by tart")
            continue
        if vm.phase is Phase.READY:
            continue
        stuck = report.duration(snap.generated_at - vm.phase_since)
        note = f" ({vm.error or vm.hint})" if (vm.error or vm.hint) else ""
        parts.append(f"{name} stuck in {vm.phase} for {stuck}{note}")
    if tart_error:
        parts.append(tart_error)
    return f"timed out after {timeout:g} s: " + "; ".join(parts)


def _print_ready(snap: Snapshot, vms: Sequence[VM], as_json: bool) -> None:
    if as_json:
        print(report.dumps(report.snapshot_json(snap, vms)))
        return
    for vm in vms:
        print(f"{vm.name} ready at {vm.ip}")
