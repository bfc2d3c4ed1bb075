"""Checks of tart and the VMs: installed, configured VMs exist, running VMs boot and
accept logins (waiting for them until --timeout)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from megatui import readiness, report
from megatui.doctor.outcome import Outcome, failed, ok, plural, skipped, warn
from megatui.doctor.runner import Context
from megatui.keychain import KEYCHAIN_HINT
from megatui.model import VM, Phase, Snapshot, TartState
from megatui.sources.hostkeys import HostKeyStoreError
from megatui.sources.tart import TartError, TartErrorKind


def _fleet(ctx: Context) -> bool:
    """The VMs come from a controller (Orchard), not from a tart this Mac runs."""
    return ctx.monitor.backend.name != "tart"


async def check_tart(ctx: Context) -> Outcome:
    if _fleet(ctx):
        return skipped(
            f"VMs come from the Orchard controller ({ctx.monitor.backend.label}); "
            "tart runs on its workers, not here"
        )
    try:
        version = await ctx.monitor.tart.version()
    except TartError as exc:
        return failed(str(exc), _TART_HINTS.get(exc.kind, _TART_OTHER_HINT))
    return ok(f"tart {version}")


# Installed but hung or locked is not fixed by installing it again.
_TART_OTHER_HINT = "run `tart --version` on the Mac to see what it says"
_TART_HINTS = {
    TartErrorKind.NOT_INSTALLED: "brew install cirruslabs/cli/tart, or set --tart / tart.path",
    TartErrorKind.TIMEOUT: (
        "tart is installed but hung: look for a stuck tart process (`pgrep -l tart`) "
        "and end it, or reboot the Mac"
    ),
    TartErrorKind.KEYCHAIN_LOCKED: KEYCHAIN_HINT,
}


def _configured_vms(ctx: Context) -> list[str]:
    return list(ctx.settings.doctor_vms) or sorted(ctx.settings.vms)


def _tart_unlisted(ctx: Context) -> Outcome | None:
    """The outcome of VM checks when `tart list` never answered."""
    if ctx.monitor.known_vm_names() is not None:
        return None
    status = ctx.monitor.snapshot.vm_status()
    error = status.error if status and status.error else "no answer"
    return skipped(f"{ctx.monitor.backend.name} list failed: {error}")


def _in_scope(ctx: Context, vm: VM) -> bool:
    """Running VMs doctor waits for (and failed ones their controller restarts): all,
    or those named in [doctor] vms."""
    wanted = ctx.settings.doctor_vms
    going = vm.state is TartState.RUNNING or readiness.restarting(vm)
    return going and (not wanted or vm.name in wanted)


async def check_vms_exist(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    wanted = _configured_vms(ctx)
    known = ctx.monitor.known_vm_names()
    lister = ctx.monitor.backend.name
    if known is None:
        status = snap.vm_status()
        return failed(
            f"{lister} list failed: {status.error if status and status.error else 'no answer'}"
        )
    if not wanted:
        return ok(f"{lister} lists {plural(len(known), 'VM')}; none configured in [doctor] vms")
    missing = [n for n in wanted if n not in known]
    if missing:
        hint = (
            "`megatui create NAME --image IMAGE` creates a VM; `megatui status` shows what exists"
            if _fleet(ctx)
            else "tart clone IMAGE NAME creates a VM; tart list shows what exists"
        )
        return failed(f"configured VMs missing: {', '.join(missing)}", hint)
    return ok(f"all {plural(len(wanted), 'configured VM')} exist")


async def _wait_running_vms(ctx: Context) -> Snapshot:
    """Wait until every running VM is ready or in error, or the timeout: once, shared."""
    cached = ctx.extra.get("vms_settled")
    if isinstance(cached, Snapshot):
        return cached
    lock = ctx.extra.setdefault("vms_lock", asyncio.Lock())
    assert isinstance(lock, asyncio.Lock)
    async with lock:
        cached = ctx.extra.get("vms_settled")
        if isinstance(cached, Snapshot):
            return cached
        deadline = time.monotonic() + ctx.settings.doctor_timeout
        changed = asyncio.Event()
        unsubscribe = ctx.monitor.subscribe(lambda _s: changed.set())
        try:
            while True:
                snap = ctx.monitor.snapshot
                running = [vm for vm in snap.vms if _in_scope(ctx, vm)]
                # The same stop rule as `megatui wait` and the TUI's wait dialog.
                tart = snap.vm_status()
                hopeless = ctx.monitor.tart_hopeless()
                waiting = [
                    vm
                    for vm in running
                    if readiness.decide(vm.name, vm, tart, tart_fatal=hopeless).verdict
                    is readiness.Verdict.WAITING
                ]
                if waiting:
                    ctx.progress.note(
                        "waiting for VMs: "
                        + ", ".join(
                            f"{vm.name} {vm.phase} {round(vm.progress * 100)}%" for vm in waiting
                        ),
                        key=" ".join(f"{vm.name}:{vm.phase}" for vm in waiting),
                    )
                remaining = deadline - time.monotonic()
                if not waiting or remaining <= 0:
                    ctx.extra["vms_settled"] = snap
                    return snap
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, 1.0)):
                        await changed.wait()
        finally:
            unsubscribe()


async def check_vms_boot(ctx: Context) -> Outcome:
    await ctx.first_snapshot()
    if (unlisted := _tart_unlisted(ctx)) is not None:
        return unlisted
    snap = await _wait_running_vms(ctx)
    running = [vm for vm in snap.vms if _in_scope(ctx, vm)]
    if not running:
        return ok("no running VMs to wait for")
    # A VM that answers SSH but refuses our login booted fine: the login check says so.
    stuck = [vm for vm in running if vm.phase not in (Phase.READY, Phase.ERROR)]
    if stuck:
        listed = "; ".join(
            f"{vm.name} stuck in {vm.phase}" + (f" ({vm.hint})" if vm.hint else "") for vm in stuck
        )
        return failed(
            f"not ready within {report.duration(ctx.settings.doctor_timeout)}: {listed}",
            "megatui shows the phase timeline of each VM (key d); "
            "raise --timeout or [doctor] timeout for slow boots",
        )
    return ok(f"{plural(len(running), 'running VM')} reached SSH")


async def check_ssh_logins(ctx: Context) -> Outcome:
    await ctx.first_snapshot()
    if (unlisted := _tart_unlisted(ctx)) is not None:
        return unlisted
    snap = await _wait_running_vms(ctx)
    running = [vm for vm in snap.vms if _in_scope(ctx, vm)]
    broken = [vm for vm in running if vm.phase is Phase.ERROR]
    if broken:
        listed = "; ".join(f"{vm.name}: {vm.error}" for vm in broken)
        return failed(
            listed,
            "set [ssh] user/password/key or [vms.NAME]; after a VM rebuild, "
            "`megatui forget-key NAME`",
        )
    ready = [vm for vm in running if vm.phase is Phase.READY]
    if not ready:
        if running:
            return skipped("no running VM became ready to log in to")
        return ok("no running VMs to log in to")
    try:
        unknown_keys = [vm.name for vm in ready if ctx.monitor.hostkeys.lookup(vm.name) is None]
    except HostKeyStoreError as exc:
        return failed(str(exc), "remove or repair the file; keys are trusted again on next login")
    if unknown_keys:
        return warn(f"host keys not stored for: {', '.join(unknown_keys)}")
    return ok(f"{plural(len(ready), 'VM')} accept logins; host keys known")
