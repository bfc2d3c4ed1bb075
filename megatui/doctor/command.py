"""`megatui doctor` itself: usage checks, the monitor's lifetime, the report."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from megatui import report
from megatui.config import Settings
from megatui.doctor.checks import CHECKS
from megatui.doctor.checks import orchard as orchard_checks
from megatui.doctor.outcome import Status
from megatui.doctor.output import render_text, to_json, to_junit
from megatui.doctor.plan import plan
from megatui.doctor.progress import Progress
from megatui.doctor.runner import Context, run_checks
from megatui.headless import build_monitor, orchard_config
from megatui.sources.orchard_config import OrchardConfig
from megatui.transport import TransportError


def first_round_timeout(settings: Settings) -> float:
    """Long enough for every source to answer once, by the sources' own timeouts (tart
    lists, then asks each VM's address, then the probes log in)."""
    tart_and_ssh = 2 * settings.tart_timeout + settings.ssh_connect_timeout
    bound = max(tart_and_ssh, settings.kube_request_timeout, settings.docker_timeout) + 5.0
    # With --host the monitor first fetches the kubeconfig and finds the Docker socket.
    return bound + 20.0 if settings.host else bound


def _junit_problem(path: str) -> str | None:
    """Why the JUnit file cannot be written, found before minutes of checks."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        return f"--junit {path}: is a directory"
    if not parent.is_dir():
        return f"--junit {path}: directory {parent} does not exist"
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        return f"--junit {path}: not writable"
    return None


async def run(
    settings: Settings,
    as_json: bool,
    junit: str | None,
    out: TextIO | None = None,
    orchard: OrchardConfig | None = None,
) -> int:
    """Run every check; the report goes to stdout, progress to `out` (stderr).
    `orchard`: the controller the orchard.* checks talk to; by default the one the
    settings name (`headless.orchard_config`); without one they are skipped. With an
    Orchard backend the VM checks read the monitor's view of the controller's VMs
    (booted and logged in to through its port-forward) and tart.installed is skipped."""
    problem = _usage_problem(settings, junit)
    if problem:
        print(f"megatui: {problem}", file=sys.stderr)
        return 2
    started_wall = time.time()
    started = time.monotonic()
    if orchard is None:
        orchard = orchard_config(settings)
    monitor = build_monitor(settings)
    checks = plan(settings, CHECKS, fleet=monitor.backend.name != "tart")
    ctx = Context(settings, monitor, Progress(out or sys.stderr, len(checks)), orchard=orchard)
    try:
        connect = getattr(monitor.transport, "connect", None)
        if connect is not None:
            try:
                await connect()
            except (TransportError, OSError) as exc:
                ctx.connect_error = str(exc) or type(exc).__name__
        if ctx.connect_error is None:
            await monitor.start()
            ctx.first_round = asyncio.create_task(
                monitor.wait_first_round(first_round_timeout(settings))
            )
        results = await run_checks(ctx, checks)
    finally:
        if ctx.first_round is not None and not ctx.first_round.done():
            ctx.first_round.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ctx.first_round
        ctx.progress.clear()
        await orchard_checks.close(ctx)
        await monitor.stop()
        await monitor.transport.close()
    duration = time.monotonic() - started
    if junit:
        try:
            Path(junit).write_text(to_junit(results, duration, started_wall), encoding="utf-8")
        except OSError as exc:
            print(f"megatui: cannot write {junit}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    if as_json:
        print(report.dumps(to_json(results, started_wall, duration, monitor.transport.label)))
    else:
        print(render_text(results, duration))
    return 1 if any(r.status is Status.FAIL for r in results) else 0


def _usage_problem(settings: Settings, junit: str | None) -> str | None:
    """A bad flag, found before minutes of checks (exit 2)."""
    if not settings.doctor_timeout > 0:
        return f"--timeout: expected a positive number (got {settings.doctor_timeout:g})"
    if junit:
        return _junit_problem(junit)
    return None
