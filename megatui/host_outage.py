"""How an outage of the `--host` connection is shown: one cause, one line, one countdown.

While the host is down or in doubt, every source behind it says the host's line,
keeping the age of its data: what failed through a dead connection says nothing
about the source. Once the host is back, a source shows what it had before the
outage until it reports ok, or HOST_RECOVERY_GRACE has passed (then its failure is
its own). A source that starts failing while the host looked fine is held back
until the host has answered a check. The monitor owns one `HostOutage`; without
`--host` every method is a no-op.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from megatui.clock import Clock
from megatui.model import (
    # (ui/panels.py imports the same SOURCE_* names: a list of names, not a rule.)
    SOURCE_APPLICATIONS,
    SOURCE_DOCKER,
    SOURCE_HOST,
    SOURCE_KUBERNETES,
    SOURCE_SSH,
    SOURCE_TART,
    Event,
    ProbeResult,
    ProbeStage,
    SourceStatus,
)

# With --host, the statuses of each enabled source that lives behind the connection.
BEHIND_HOST = {
    "tart": (SOURCE_TART,),
    "ssh": (SOURCE_SSH,),
    "kube": (SOURCE_KUBERNETES, SOURCE_APPLICATIONS),
    "docker": (SOURCE_DOCKER,),
}
# After the host comes back, how long a source behind it may take to report ok
# before its own (possibly outage-made) failure is shown instead of the status it had
# before the outage.
HOST_RECOVERY_GRACE = 20.0
# How long the host may take to answer when a VM probe through it failed.
HOST_CHECK_TIMEOUT = 3.0


class HostOutage:
    """The host's outages as the statuses show them.

    `statuses` is the monitor's own dict of source statuses (read and, for the
    host's line, written); `publish` schedules a snapshot; `recovered` is called
    once each time the host comes back (poll everything now)."""

    def __init__(
        self,
        transport: Any,
        clock: Clock,
        enabled: frozenset[str],
        statuses: dict[str, SourceStatus],
        publish: Callable[[], None],
        recovered: Callable[[], None],
        behind: dict[str, tuple[str, ...]] | None = None,
    ) -> None:
        # Keeps what it is handed, as lab/demo.DemoLab and ui/screens do: shape only.
        self.transport = transport
        self.clock = clock
        self.enabled = enabled
        self.statuses = statuses
        self.publish = publish
        self.recovered = recovered
        # Which statuses live behind the connection: with a controller, the VMs
        # (tart, ssh) do not.
        self.behind = BEHIND_HOST if behind is None else behind
        # The statuses before the host went down, and after it came back, those
        # that must report again before they are shown.
        self._pre_outage: dict[str, SourceStatus] = {}
        self._recovered_from: dict[str, SourceStatus] = {}
        self._recovered_at: float | None = None
        self._recovery_timer: asyncio.TimerHandle | None = None
        self._answered_since_recovery: set[str] = set()  # reported ok since the host came back
        #: The statuses that stood in for the host's at the last publish.
        self.masked: frozenset[str] = frozenset()
        # Sources behind the host that just failed while the host seemed fine, with
        # what they showed before: held back until the host has answered a check.
        self._held: dict[str, SourceStatus | None] = {}
        self._host_check: asyncio.Task[None] | None = None

    @property
    def remote(self) -> bool:
        return bool(getattr(self.transport, "is_remote", False))

    def host_down(self) -> bool:
        if not self.remote:
            return False
        connected = bool(getattr(self.transport, "connected", True))
        return not connected or bool(getattr(self.transport, "in_doubt", False))

    def on_host_change(self, transport: Any) -> None:
        was = self.statuses.get(SOURCE_HOST)
        problem = transport.problem()
        if problem is None and not transport.in_doubt:
            self.statuses[SOURCE_HOST] = SourceStatus(
                SOURCE_HOST, ok=True, updated_at=self.clock.now()
            )
            if was is not None and not was.ok:
                # Back after a drop: poll everything at once, not at the next tick.
                self._recovered_from = dict(self.statuses)
                self._recovered_at = self.clock.monotonic()
                self._answered_since_recovery = set()
                # Whoever has not reported by then shows its own status after all.
                self._recovery_timer = asyncio.get_running_loop().call_later(
                    HOST_RECOVERY_GRACE + 0.1, self.publish
                )
                self.recovered()
            self.publish()
            return
        if was is not None and was.ok:
            self._pre_outage = dict(self.statuses)
        if problem is None:
            problem = f"{transport.label} is not answering (checking the connection)"
        retry = transport.reconnect_in()
        self.statuses[SOURCE_HOST] = SourceStatus(
            SOURCE_HOST,
            ok=False,
            error=problem,
            updated_at=was.updated_at if was else None,
            next_retry_at=self.clock.now() + retry if retry is not None else None,
            detail=transport.problem_detail(),
        )
        self.publish()

    def _behind(self) -> list[str]:
        return [name for source in self.enabled for name in self.behind.get(source, ())]

    def shown_sources(self) -> tuple[dict[str, SourceStatus], frozenset[str]]:
        """The statuses to publish, and which of them stand in for the host's."""
        statuses = dict(self.statuses)
        host = statuses.get(SOURCE_HOST)
        if not self.remote or host is None:
            return statuses, frozenset()
        behind = self._behind()
        masked = set()
        if not host.ok:
            for name in behind:
                own = statuses.get(name)
                statuses[name] = SourceStatus(
                    name,
                    ok=False,
                    error=host.error,
                    updated_at=own.updated_at if own else None,
                    next_retry_at=host.next_retry_at,
                    detail=host.detail,
                )
                masked.add(name)
        else:
            for name, before in self._held.items():
                if before is not None:
                    statuses[name] = before
                else:
                    statuses.pop(name, None)
                masked.add(name)
        recovering = self._recovered_at is not None and (
            self.clock.monotonic() - self._recovered_at < HOST_RECOVERY_GRACE
        )
        if host.ok and recovering:
            for name in behind:
                own = self.statuses.get(name)
                if name in self._answered_since_recovery or (
                    own is not None and own.ok and own is not self._recovered_from.get(name)
                ):
                    # It answered since the host came back: from now on it speaks for
                    # itself. Until then a failure is likely the outage's last echo (a
                    # request through the dead connection), shown only if it lasts.
                    self._answered_since_recovery.add(name)
                    continue
                before = self._pre_outage.get(name)
                if before is not None:
                    statuses[name] = before
                else:
                    statuses.pop(name, None)
                masked.add(name)
        return statuses, frozenset(masked)

    def hold_for_host(self, name: str, before: SourceStatus | None) -> None:
        """A source behind the host started failing while the host looked fine: a
        frozen host fails its sources before keepalives can tell. Ask the host
        before the failure is shown: if it does not answer, the host is in doubt and
        the failure is the host's; if it does, the failure is the source's own."""
        if not self.remote or self.host_down():
            return
        if name not in self._behind():
            return
        if before is not None and not before.ok:
            return  # already failing: shown as it is
        self._held.setdefault(name, before)
        if self._host_check is None or self._host_check.done():
            self._host_check = asyncio.create_task(self._check_host(), name="host check")

    async def _check_host(self) -> None:
        confirm = getattr(self.transport, "confirm_alive", None)
        try:
            if confirm is not None:
                await confirm(HOST_CHECK_TIMEOUT)
        finally:
            self._held.clear()
            self.publish()

    def source_events(self, events: list[Event], masked: frozenset[str]) -> list[Event]:
        """Drop the source events the host's outage made: the host has its own."""
        hidden = self.masked | masked

        def shown(event: Event) -> bool:
            if event.kind != "source" or event.subject not in hidden:
                return True
            # Unmasked and failing for a reason of its own: that is news.
            return event.subject not in masked and event.severity == "error"

        return [event for event in events if shown(event)]

    async def blame_host(self, previous: ProbeResult | None, result: ProbeResult) -> bool:
        """Whether a probe's result says more about the host connection than the VM:
        the host is down, or a VM's state got worse and the host does not answer."""
        if not self.remote or "ssh" not in self.behind:
            return False
        if not getattr(self.transport, "connected", True):
            return True
        in_doubt = bool(getattr(self.transport, "in_doubt", False))
        changed = previous is not None and previous.stage != result.stage
        if not in_doubt and (not changed or result.stage is ProbeStage.READY):
            return False
        confirm = getattr(self.transport, "confirm_alive", None)
        if confirm is None:
            return False
        return not await confirm(HOST_CHECK_TIMEOUT)

    def tasks(self) -> list[asyncio.Task[None]]:
        return [self._host_check] if self._host_check is not None else []

    def close(self) -> None:
        if self._recovery_timer is not None:
            self._recovery_timer.cancel()
