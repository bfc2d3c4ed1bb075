"""Carries out the recovery policy (megatui/recovery.py) for `megatui serve`.

Evaluates the engine on every snapshot and when a time rule comes due, and executes
its actions through the monitor: stop (when restarting an unhealthy VM), start, then
wait with the one readiness rule (readiness.decide). One action per VM at a time;
every action and its outcome goes to the timeline, the metrics and /api/v1/recovery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol

from megatui import recovery_history, report, vm_intents
from megatui.api import ActionError, MonitorAPI
from megatui.clock import Clock, SystemClock
from megatui.config import RecoveryPolicy, Settings
from megatui.model import Event, Phase, Snapshot, TartState
from megatui.readiness import Verdict, decide
from megatui.recovery import Action, ActionKind, RecoveryEngine, Result

log = logging.getLogger(__name__)

STOP_TIMEOUT = 60.0
IDLE_RECHECK = 60.0  # evaluate at least this often (a config-free safety net)


class RecoveryTarget(MonitorAPI, Protocol):
    def add_event(self, event: Event) -> None: ...


class RecoveryRunner:
    def __init__(
        self,
        monitor: RecoveryTarget,
        settings: Settings,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.monitor = monitor
        self.settings = settings
        self.clock = clock or SystemClock()
        self.engine = RecoveryEngine(self.clock)
        self._intents = vm_intents.Reader()
        # max_restarts per hour counts the attempts of earlier runs too.
        self.engine.restore(recovery_history.load(None, self.clock.now()))
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()  # a new snapshot, for actions waiting on one
        self._unsubscribe: Callable[[], None] | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._actions: dict[str, asyncio.Task[None]] = {}

    # --- lifecycle -------------------------------------------------------------------

    @property
    def readonly(self) -> bool:
        return self.settings.readonly or self.monitor.snapshot.readonly

    def start(self) -> None:
        if self._loop_task is not None:
            return
        self._unsubscribe = self.monitor.subscribe(self._on_snapshot)
        self._loop_task = asyncio.create_task(self._loop(), name="recovery")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = [t for t in (self._loop_task, *self._actions.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loop_task = None
        self._actions.clear()

    def _on_snapshot(self, _snap: Snapshot) -> None:
        self._wake.set()
        self._changed.set()

    # --- the loop --------------------------------------------------------------------

    def policies(self, snap: Snapshot) -> dict[str, RecoveryPolicy]:
        return {
            vm.name: policy
            for vm in snap.vms
            if (policy := self.settings.recovery_policy(vm.name)) is not None
        }

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            wake_at = self.evaluate()
            delay = IDLE_RECHECK
            if wake_at is not None:
                delay = min(delay, max(0.05, wake_at - self.clock.now()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def evaluate(self) -> float | None:
        """Run the engine once, start its actions; when to evaluate again."""
        snap = self.monitor.snapshot
        policies = self.policies(snap)
        intents = self._intents.load() if policies else {}
        plan = self.engine.evaluate(
            snap.vms,
            policies,
            intents,
            readonly=self.readonly,
            health_interval=self.settings.ssh_health_interval,
            busy=self._actions.keys(),
        )
        for notice in plan.notices:
            self._event(notice.vm, notice.message, notice.severity)
        for action in plan.actions:
            policy = policies[action.vm]
            self.engine.begin(action, policy)
            self._save_history()
            self._actions[action.vm] = asyncio.create_task(
                self._execute(action, policy), name=f"recovery {action.vm}"
            )
        return plan.wake_at

    def _save_history(self) -> None:
        recovery_history.save(None, self.engine.memory(), self.clock.now())

    def _event(self, vm: str, message: str, severity: str = "info") -> None:
        self.monitor.add_event(Event(self.clock.now(), "vm", vm, message, severity))

    # --- one action ------------------------------------------------------------------

    async def _execute(self, action: Action, policy: RecoveryPolicy) -> None:
        count = self.engine.restarts_last_hour(action.vm)
        verb = "restarting" if action.kind is ActionKind.RESTART else "starting"
        self._event(
            action.vm,
            f"recovery: {action.reason}: {verb} it "
            f"(attempt {action.attempt}, {count} in the last hour)",
            "warning",
        )
        started = self.clock.monotonic()
        try:
            result, detail = await self._carry_out(action, policy)
        except asyncio.CancelledError:
            self.engine.finish(action, Result.FAILED, "cancelled: megatui serve stopped")
            self._save_history()
            raise
        except Exception as exc:  # a bug here must not end recovery for every VM
            log.exception("recovery of %s failed", action.vm)
            result, detail = Result.FAILED, f"internal error: {exc}"
        finally:
            self._actions.pop(action.vm, None)
            self._wake.set()
        self.engine.finish(action, result, detail)
        self._save_history()
        took = self.clock.monotonic() - started
        if result is Result.OK:
            self._event(action.vm, f"recovery: {action.kind}: ready again after {took:.0f} s")
        else:
            self._event(action.vm, f"recovery: {action.kind} failed: {detail}", "error")

    async def _carry_out(self, action: Action, policy: RecoveryPolicy) -> tuple[Result, str]:
        name = action.vm
        with vm_intents.acting():
            if action.kind is ActionKind.RESTART:
                try:
                    await self.monitor.stop_vm(name)
                except ActionError as exc:
                    return Result.FAILED, f"stop: {exc}"
                if not await self._until(lambda s: _stopped(s, name), STOP_TIMEOUT):
                    return Result.FAILED, f"did not stop within {STOP_TIMEOUT:.0f} s"
            try:
                await self.monitor.start_vm(name)
            except ActionError as exc:
                return Result.FAILED, f"start: {exc}"
        verdict: list[Any] = []

        def settled(snap: Snapshot) -> bool:
            decision = decide(name, snap.vm(name), snap.vm_status())
            if decision.verdict is Verdict.WAITING:
                return False
            verdict.append(decision)
            return True

        if not await self._until(settled, policy.ready_timeout):
            return Result.FAILED, f"not ready within {policy.ready_timeout:.0f} s"
        decision = verdict[-1]
        if decision.verdict is Verdict.READY:
            return Result.OK, "ready"
        return Result.FAILED, decision.reason or "gave up"

    async def _until(self, condition: Callable[[Snapshot], bool], timeout: float) -> bool:
        """Wait for a snapshot that satisfies `condition`; False after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                while not condition(self.monitor.snapshot):
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    # --- what the API shows ----------------------------------------------------------

    def report(self) -> dict[str, object]:
        snap = self.monitor.snapshot
        policies = self.policies(snap)
        names = sorted(set(policies) | self.engine.known())
        vms: dict[str, object] = {}
        for name in names:
            policy = policies.get(name)
            vms[name] = {
                "policy": _policy_json(policy),
                "state": "acting" if name in self._actions else self.engine.state(name),
                "restarts_last_hour": self.engine.restarts_last_hour(name),
                "next_attempt_at": report.iso(self.engine.next_attempt_at(name)),
                "history": [
                    {
                        "at": report.iso(r.at),
                        "action": str(r.action),
                        "result": str(r.result),
                        "detail": r.detail,
                    }
                    for r in self.engine.history(name)
                ],
            }
        return {"readonly": self.readonly, "vms": vms}


def _stopped(snap: Snapshot, name: str) -> bool:
    vm = snap.vm(name)
    return vm is None or (vm.state is not TartState.RUNNING and vm.phase is not Phase.STOPPING)


# Keys spelt out as in report.py's *_json (a wire contract, not asdict): alike in shape.
def _policy_json(policy: RecoveryPolicy | None) -> dict[str, object] | None:
    if policy is None:
        return None
    return {
        "restart": policy.restart,
        "unhealthy_after": policy.unhealthy_after,
        "max_restarts": policy.max_restarts,
        "backoff_seconds": policy.backoff,
        "ready_timeout_seconds": policy.ready_timeout,
    }
