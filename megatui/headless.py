"""`status` and `wait`: the monitor without a screen, for scripts and CI."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TextIO

from megatui import report
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
from megatui.transport import Transport, TransportError


class HeadlessError(Exception):
    """A one-line failure of a headless command, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def build_transport(settings: Settings) -> Transport:
    if settings.host:
        from megatui.remote import HostSpecError, RemoteTransport

        try:
            return RemoteTransport(settings.host)
        except HostSpecError as exc:
            raise ConfigError(str(exc)) from None
    from megatui.transport import LocalTransport

    return LocalTransport()


def build_monitor(
    settings: Settings, *, sources: Iterable[str] | None = None, vms: Sequence[str] | None = None
) -> Monitor:
    return Monitor(
        settings,
        transport=build_transport(settings),
        sources=sources if sources is not None else ALL_SOURCES,
        vm_filter=vms,
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
        for key in SOURCE_STATUSES.get(source, (source,)):
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


def _progress_line(vms: Sequence[VM], now: float, elapsed: float) -> str:
    parts = []
    for vm in vms:
        part = f"{vm.name} {vm.phase} {round(vm.progress * 100)}%"
        if vm.eta_seconds is not None and vm.phase is not Phase.READY:
            part += f" eta {report.duration(vm.eta_seconds)}"
        if vm.error:
            part += f" ({vm.error})"
        parts.append(part)
    return f"[{report.duration(elapsed):>6}] " + " · ".join(parts)


async def wait(
    settings: Settings,
    names: Sequence[str],
    timeout: float,
    as_json: bool,
    err: TextIO | None = None,
) -> int:
    """Exit 0 when every VM is ready; 1 on timeout or a definite error; 2 unknown VM."""
    out_err = err or sys.stderr
    wanted = list(dict.fromkeys(names))
    monitor = build_monitor(settings, sources={"tart", "ssh"}, vms=wanted)
    changed = asyncio.Event()
    monitor.subscribe(lambda _snap: changed.set())
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timeout
    tty = out_err.isatty()
    last_line = ""
    try:
        await _connect(monitor)
        await monitor.start()
        while True:
            snap = monitor.snapshot
            tart = snap.sources.get("tart")
            known = monitor.known_vm_names()
            if known is None and tart is not None and not tart.ok and _tart_hopeless(monitor):
                raise HeadlessError(tart.error or "tart failed", 2)
            if known is not None:
                unknown = [n for n in wanted if n not in known]
                if unknown:
                    raise HeadlessError(_unknown_message(unknown, monitor), 2)
                vms = [vm for n in wanted if (vm := snap.vm(n)) is not None]
                line = _progress_line(vms, snap.generated_at, loop.time() - started)
                if tty:
                    out_err.write("\r\033[K" + line)
                elif _phases(line) != _phases(last_line):
                    out_err.write(line + "\n")
                out_err.flush()
                last_line = line
                if vms and all(vm.phase is Phase.READY for vm in vms):
                    if tty:
                        out_err.write("\n")
                    _print_ready(snap, vms, as_json)
                    return 0
                broken = [vm for vm in vms if vm.phase is Phase.ERROR and vm.error]
                if broken:
                    if tty:
                        out_err.write("\n")
                    raise HeadlessError("; ".join(f"{vm.name}: {vm.error}" for vm in broken), 1)
            remaining = deadline - loop.time()
            if remaining <= 0:
                if tty:
                    out_err.write("\n")
                raise HeadlessError(_timeout_message(monitor.snapshot, wanted, timeout), 1)
            changed.clear()
            # Wake on a new snapshot, or once a second to refresh the elapsed time.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 1.0)):
                    await changed.wait()
    except HeadlessError as exc:
        print(f"megatui: {exc}", file=out_err)
        return exc.code
    finally:
        await monitor.stop()
        await monitor.transport.close()


def _phases(line: str) -> str:
    # Non-TTY output prints a line only when a phase changes, not every tick.
    return " ".join(w for w in line.split() if w in {p.value for p in Phase})


def _tart_hopeless(monitor: Monitor) -> bool:
    status = monitor.snapshot.sources.get("tart")
    return bool(status and status.kind is StatusKind.NOT_INSTALLED)


def _unknown_message(unknown: Sequence[str], monitor: Monitor) -> str:
    known = sorted(monitor.known_vm_names() or ())
    names = ", ".join(f"'{n}'" for n in unknown)
    have = ", ".join(known) if known else "none"
    return f"unknown VM {names} (tart lists: {have})"


def _timeout_message(snap: Snapshot, wanted: Sequence[str], timeout: float) -> str:
    parts = []
    for name in wanted:
        vm = snap.vm(name)
        if vm is None:
            parts.append(f"{name} unknown")
            continue
        if vm.phase is Phase.READY:
            continue
        stuck = report.duration(snap.generated_at - vm.phase_since)
        note = f" ({vm.error or vm.hint})" if (vm.error or vm.hint) else ""
        parts.append(f"{name} stuck in {vm.phase} for {stuck}{note}")
    return f"timed out after {timeout:g} s: " + "; ".join(parts)


def _print_ready(snap: Snapshot, vms: Sequence[VM], as_json: bool) -> None:
    if as_json:
        print(report.dumps(report.snapshot_json(snap, vms)))
        return
    for vm in vms:
        print(f"{vm.name} ready at {vm.ip}")
