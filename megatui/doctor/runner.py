"""The dependency-ordered check runner: independent checks run concurrently; a check
whose prerequisite did not pass is skipped with the reason."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from megatui.config import Settings
from megatui.doctor.outcome import CheckResult, Outcome, Status, failed, skipped
from megatui.doctor.progress import Progress
from megatui.model import Snapshot
from megatui.monitor import Monitor
from megatui.sources.orchard_config import OrchardConfig


@dataclass
class Context:
    settings: Settings
    monitor: Monitor
    progress: Progress
    #: The monitor's first round (every source answered once), while it runs.
    first_round: asyncio.Task[bool] | None = None
    snapshot: Snapshot | None = None
    #: Why the --host connection failed, if it did.
    connect_error: str | None = None
    #: The Orchard controller to check (`run(orchard=...)`); None: the orchard.* checks
    #: that talk to a controller are skipped.
    orchard: OrchardConfig | None = None
    extra: dict[str, object] = field(default_factory=dict)

    async def first_snapshot(self) -> Snapshot:
        """The snapshot once every source has answered once (or its time ran out): one
        view of the platform, the same for every check that reads it."""
        if self.snapshot is None:
            if self.first_round is not None:
                await asyncio.shield(self.first_round)
            if self.snapshot is None:
                self.snapshot = self.monitor.snapshot
        return self.snapshot


CheckFn = Callable[[Context], Awaitable[Outcome]]


@dataclass(frozen=True)
class Check:
    name: str
    run: CheckFn
    needs: tuple[str, ...] = ()
    #: Goes through the --host connection: with --host, it needs remote.connection.
    via_host: bool = False


async def run_checks(ctx: Context, checks: Sequence[Check]) -> list[CheckResult]:
    results: dict[str, CheckResult] = {}
    done: dict[str, asyncio.Event] = {c.name: asyncio.Event() for c in checks}

    async def run_one(check: Check) -> None:
        for need in check.needs:
            await done[need].wait()
        blockers = [n for n in check.needs if results[n].status not in (Status.PASS, Status.WARN)]
        started = time.monotonic()
        if blockers:
            outcome = skipped(f"needs {', '.join(blockers)}")
        else:
            try:
                outcome = await check.run(ctx)
            except Exception as exc:  # a check's own bug must not hide the others
                outcome = failed(f"check crashed: {type(exc).__name__}: {exc}")
        result = CheckResult(
            check.name, outcome.status, outcome.reason, outcome.hint, time.monotonic() - started
        )
        results[check.name] = result
        ctx.progress.finished(result)
        done[check.name].set()

    await asyncio.gather(*(run_one(c) for c in checks))
    return [results[c.name] for c in checks]
