"""Checks of the Orchard controller (issue #11 item 6), when one is configured:
reachable and its version, the service account's roles, workers online, failed VMs,
and pending VMs no worker can take.

One client and one read of the fleet (workers and VMs) serve every check of a run;
`close` ends the client. The rules are the backend's own (backends/orchard.py):
the offline rule and its failure text (`worker_view`), why a VM is not scheduled
(`scheduling_reason`), and read-only for want of compute:write (`readonly_reason`),
so doctor cannot disagree with the Workers and VMs panels.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from megatui.backends.base import BackendError
from megatui.backends.orchard import (
    OrchardBackend,
    scheduling_reason,
    usage_by_worker,
    worker_view,
)
from megatui.doctor.outcome import Outcome, failed, ok, plural, skipped, warn
from megatui.doctor.runner import CheckFn, Context
from megatui.sources.orchard import (
    OrchardAPIError,
    OrchardClient,
    OrchardError,
    OrchardVM,
    OrchardWorker,
)

NOT_CONFIGURED = "no Orchard controller configured"
#: What `scheduling_reason` says when a worker could take the VM: it is only queued.
_QUEUED = "waiting for the scheduler"
_CLIENT = "orchard_client"
_FLEET = "orchard_fleet"
_LOCK = "orchard_lock"


@dataclass(frozen=True)
class Fleet:
    workers: list[OrchardWorker]
    vms: list[OrchardVM]
    #: When it was read, by the monitor's clock: the 3-minute offline rule.
    at: float


def _client(ctx: Context) -> OrchardClient:
    client = ctx.extra.get(_CLIENT)
    if isinstance(client, OrchardClient):
        return client
    assert ctx.orchard is not None
    new = OrchardClient(ctx.orchard)
    ctx.extra[_CLIENT] = new
    return new


async def close(ctx: Context) -> None:
    """End the run's controller client, if a check opened one."""
    client = ctx.extra.pop(_CLIENT, None)
    if isinstance(client, OrchardClient):
        await client.close()


async def _fleet(ctx: Context) -> Fleet:
    """Workers and VMs, read once per run (OrchardError when the controller refuses)."""
    lock = ctx.extra.setdefault(_LOCK, asyncio.Lock())
    assert isinstance(lock, asyncio.Lock)
    async with lock:
        cached = ctx.extra.get(_FLEET)
        if isinstance(cached, Fleet):
            return cached
        client = _client(ctx)
        workers, vms = await asyncio.gather(client.list_workers(), client.list_vms())
        fleet = Fleet(workers, vms, ctx.monitor.clock.now())
        ctx.extra[_FLEET] = fleet
        return fleet


def _on_fleet(check: Callable[[Fleet], Awaitable[Outcome]]) -> CheckFn:
    """A check of the run's one read of workers and VMs: skipped without a controller,
    the controller's one line when it refuses the read."""

    @functools.wraps(check)
    async def run(ctx: Context) -> Outcome:
        if ctx.orchard is None:
            return skipped(NOT_CONFIGURED)
        try:
            fleet = await _fleet(ctx)
        except OrchardError as exc:
            return failed(str(exc))
        return await check(fleet)

    return run


def _account(ctx: Context) -> str:
    assert ctx.orchard is not None
    return ctx.orchard.service_account or "(none)"


async def check_controller(ctx: Context) -> Outcome:
    if ctx.orchard is None:
        return skipped(NOT_CONFIGURED)
    client = _client(ctx)
    try:
        await client.check()
    except OrchardAPIError as exc:
        if exc.status != 401:  # refused credentials: it answered; orchard.credentials says
            return failed(str(exc), "is the URL that of an Orchard controller?")
    except OrchardError as exc:
        return failed(
            str(exc),
            "check the controller's URL (--orchard, [orchard] url, ORCHARD_URL or the "
            "Orchard context) and that `orchard controller run` is up",
        )
    try:
        info = await client.controller_info()
    except OrchardError as exc:  # the version needs valid credentials
        return ok(f"{ctx.orchard.base} answered; its version unknown ({exc})")
    commit = f" ({info.commit[:7]})" if info.commit else ""
    return ok(f"{ctx.orchard.base} answered: Orchard {info.version or '(no version)'}{commit}")


async def check_credentials(ctx: Context) -> Outcome:
    if ctx.orchard is None:
        return skipped(NOT_CONFIGURED)
    account = _account(ctx)
    hint = (
        "an admin runs `orchard create service-account NAME --roles compute:read "
        "--roles compute:write`; give its name and token ([orchard] service_account/"
        "token, ORCHARD_SERVICE_ACCOUNT_NAME/_TOKEN or `orchard context create`)"
    )
    try:
        await _fleet(ctx)  # compute:read
    except OrchardAPIError as exc:
        if exc.status == 401 and not exc.message:
            return failed(f"service account '{account}' refused: unknown name or wrong token", hint)
        return failed(f"service account '{account}': {exc}", hint)
    except OrchardError as exc:
        return failed(str(exc))
    try:
        readonly = await OrchardBackend(_client(ctx)).readonly_reason()
    except BackendError as exc:
        return failed(str(exc))
    if readonly is not None:
        return warn(f"{readonly}: megatui can watch but not start, stop, create or delete", hint)
    return ok(f"service account '{account}' has compute:read and compute:write")


@_on_fleet
async def check_workers(fleet: Fleet) -> Outcome:
    if not fleet.workers:
        return failed(
            "no worker has joined the controller",
            "run `orchard worker run` on each Mac, with a bootstrap token",
        )
    usage = usage_by_worker(fleet.vms)
    views = [worker_view(w, usage.get(w.name), fleet.vms, fleet.at) for w in fleet.workers]
    offline = [v for v in views if not v.online]
    if offline:
        listed = "; ".join(v.failure or f"worker {v.name} is offline" for v in offline)
        return failed(
            f"{len(offline)} of {plural(len(views), 'worker')} offline: {listed}",
            "on that Mac: is `orchard worker run` running, and can it reach the controller?",
        )
    paused = [v.name for v in views if v.scheduling_paused]
    if paused:
        return warn(
            f"{plural(len(views), 'worker')} online; scheduling paused on {', '.join(paused)}",
            "`orchard resume worker NAME` lets the scheduler use it again",
        )
    return ok(f"{plural(len(views), 'worker')} online")


@_on_fleet
async def check_failed_vms(fleet: Fleet) -> Outcome:
    bad = [vm for vm in fleet.vms if vm.status == "failed"]
    if bad:
        listed = "; ".join(
            f"{vm.name}"
            + (f" on {vm.worker}" if vm.worker else "")
            + f": {vm.first_message_line or 'failed (the controller gave no reason)'}"
            for vm in bad
        )
        return failed(
            f"{len(bad)} of {plural(len(fleet.vms), 'VM')} failed: {listed}",
            "a failed VM stays failed: delete it and create it again "
            "(restart policy OnFailure restarts it on its own)",
        )
    return ok(f"no failed VMs ({plural(len(fleet.vms), 'VM')})")


@_on_fleet
async def check_pending_vms(fleet: Fleet) -> Outcome:
    usage = usage_by_worker(fleet.vms)
    unscheduled = [vm for vm in fleet.vms if vm.status == "pending" and not vm.worker]
    stuck = [
        (vm, reason)
        for vm in unscheduled
        if (reason := scheduling_reason(vm, fleet.workers, usage, fleet.at)) != _QUEUED
    ]
    if stuck:
        listed = "; ".join(f"{vm.name}: {reason}" for vm, reason in stuck)
        return failed(
            f"{plural(len(stuck), 'pending VM')} no worker can take: {listed}",
            "free a slot (stop or delete a VM), add a worker, or resume a paused one",
        )
    if unscheduled:
        return ok(f"{plural(len(unscheduled), 'pending VM')} waiting for the scheduler")
    return ok("no VM waiting for a worker")
