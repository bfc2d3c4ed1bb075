"""The recovery policy engine (megatui/recovery.py) with a fake clock: no I/O."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest

from megatui.clock import FakeClock
from megatui.config import RecoveryPolicy
from megatui.model import VM, Phase, TartState
from megatui.recovery import (
    BACKOFF_CAP,
    USER_STOPPED,
    WINDOW,
    Action,
    ActionKind,
    Intent,
    Plan,
    RecoveryEngine,
    Result,
)

HEALTH = 30.0
ON_EXIT = RecoveryPolicy(restart="on-exit", max_restarts=3, backoff=10.0)
UNHEALTHY = RecoveryPolicy(restart="unhealthy", unhealthy_after=3, max_restarts=3, backoff=10.0)


def vm(name: str, phase: Phase, *, error: str | None = None) -> VM:
    running = phase not in (Phase.STOPPED, Phase.SUSPENDED, Phase.STARTING)
    state = TartState.RUNNING if running else TartState.STOPPED
    return VM(name, state, phase, None, 0.0, 0.0, error=error)


class Harness:
    def __init__(self, policy: RecoveryPolicy | None = ON_EXIT, *, readonly: bool = False) -> None:
        self.clock = FakeClock()
        self.engine = RecoveryEngine(self.clock, random.Random(7))
        self.policies: dict[str, RecoveryPolicy] = {"alpha": policy} if policy else {}
        self.intents: dict[str, Intent] = {}
        self.readonly = readonly

    def see(self, *vms: VM, busy: tuple[str, ...] = ()) -> Plan:
        return self.engine.evaluate(
            vms,
            self.policies,
            self.intents,
            readonly=self.readonly,
            health_interval=HEALTH,
            busy=busy,
        )

    def intent(self, action: str, name: str = "alpha") -> None:
        self.intents[name] = Intent(action, self.clock.now())
        self.clock.advance(0.1)

    def act(
        self,
        plan: Plan,
        result: Result = Result.OK,
        policies: Mapping[str, RecoveryPolicy] | None = None,
    ) -> Action:
        """Carry out the plan's one action the way the runner does."""
        assert len(plan.actions) == 1, plan
        action = plan.actions[0]
        self.engine.begin(action, (policies or self.policies)[action.vm])
        self.clock.advance(5)
        self.engine.finish(action, result, "ready" if result is Result.OK else "boom")
        return action

    def crash(self) -> Plan:
        """A ready VM, then stopped without anyone asking."""
        self.see(vm("alpha", Phase.READY))
        self.clock.advance(1)
        return self.see(vm("alpha", Phase.STOPPED))


def test_on_exit_starts_a_vm_that_exited_unexpectedly() -> None:
    h = Harness()
    plan = h.crash()
    assert plan.actions == (Action("alpha", ActionKind.START, "exited unexpectedly", 1),)
    h.act(plan)
    assert h.engine.history("alpha")[-1].result is Result.OK
    assert h.engine.restarts_last_hour("alpha") == 1
    assert h.engine.counts == {("alpha", "start", "ok"): 1}


def test_a_vm_stopped_at_first_sight_is_left_alone() -> None:
    h = Harness()
    assert h.see(vm("alpha", Phase.STOPPED)).actions == ()
    h.clock.advance(100)
    assert h.see(vm("alpha", Phase.STOPPED)).actions == ()


def test_a_user_stop_is_never_fought() -> None:
    h = Harness()
    h.see(vm("alpha", Phase.READY))
    h.intent("stop")
    assert h.see(vm("alpha", Phase.STOPPING)).actions == ()
    plan = h.see(vm("alpha", Phase.STOPPED))
    assert plan.actions == ()
    assert [n.message for n in plan.notices] == [f"recovery: {USER_STOPPED}"]
    assert h.engine.state("alpha") == "user-stopped"
    for _ in range(5):
        h.clock.advance(WINDOW)
        later = h.see(vm("alpha", Phase.STOPPED))
        assert later.actions == () and later.notices == ()  # said once


def test_a_stop_recorded_while_the_vm_is_already_stopping_or_just_after_it_stopped() -> None:
    # Another process's stop: the intent may land before or after this process sees it stop.
    h = Harness()
    h.see(vm("alpha", Phase.READY))
    h.intent("stop")
    assert h.see(vm("alpha", Phase.STOPPED)).actions == ()


def test_a_user_start_after_a_user_stop_rearms_it() -> None:
    h = Harness()
    h.see(vm("alpha", Phase.READY))
    h.intent("stop")
    h.see(vm("alpha", Phase.STOPPED))
    h.intent("start")
    h.see(vm("alpha", Phase.STARTING))
    assert h.see(vm("alpha", Phase.BOOTING)).actions == ()
    plan = h.crash()
    assert [a.kind for a in plan.actions] == [ActionKind.START]


def test_a_vm_started_another_way_after_a_user_stop_is_rearmed() -> None:
    h = Harness()
    h.see(vm("alpha", Phase.READY))
    h.intent("stop")
    h.see(vm("alpha", Phase.STOPPED))
    # `tart run` by hand: no intent, but the stop was carried out and the VM runs again.
    h.see(vm("alpha", Phase.BOOTING))
    assert [a.kind for a in h.crash().actions] == [ActionKind.START]


def test_a_stop_intent_that_arrives_while_a_start_is_pending_cancels_it() -> None:
    h = Harness()
    h.readonly = True  # keeps the start pending without acting
    h.crash()
    h.readonly = False
    h.intent("stop")
    assert h.see(vm("alpha", Phase.STOPPED)).actions == ()


def test_someone_else_starting_the_vm_cancels_the_pending_start() -> None:
    h = Harness(RecoveryPolicy(restart="on-exit", max_restarts=0))
    h.crash()  # limited: pending but not acting
    h.see(vm("alpha", Phase.BOOTING))
    h.policies["alpha"] = ON_EXIT
    assert h.see(vm("alpha", Phase.READY)).actions == ()


def test_unhealthy_after_n_failed_checks_in_a_row() -> None:
    h = Harness(UNHEALTHY)
    h.see(vm("alpha", Phase.READY))
    h.clock.advance(100)
    plan = h.see(vm("alpha", Phase.ERROR, error="SSH readiness probe failed"))
    assert plan.actions == ()  # one failed check
    assert plan.wake_at == h.clock.now() + 2 * HEALTH
    h.clock.advance(HEALTH)
    assert h.see(vm("alpha", Phase.ERROR)).actions == ()  # two
    h.clock.advance(HEALTH - 0.5)
    assert h.see(vm("alpha", Phase.SSH_PENDING)).actions == ()
    h.clock.advance(0.5)
    plan = h.see(vm("alpha", Phase.SSH_PENDING))  # three
    assert [(a.kind, a.attempt) for a in plan.actions] == [(ActionKind.RESTART, 1)]
    assert plan.actions[0].reason.startswith("unhealthy: 3 failed health checks in a row")


def test_a_check_that_passes_again_resets_the_count() -> None:
    h = Harness(UNHEALTHY)
    h.see(vm("alpha", Phase.READY))
    h.see(vm("alpha", Phase.ERROR))
    h.clock.advance(HEALTH * 1.5)
    h.see(vm("alpha", Phase.READY))
    h.see(vm("alpha", Phase.ERROR))
    h.clock.advance(HEALTH * 1.5)
    assert h.see(vm("alpha", Phase.ERROR)).actions == ()


def test_unhealthy_after_one_acts_at_the_first_failed_check() -> None:
    h = Harness(RecoveryPolicy(restart="unhealthy", unhealthy_after=1))
    h.see(vm("alpha", Phase.READY))
    assert [a.kind for a in h.see(vm("alpha", Phase.ERROR)).actions] == [ActionKind.RESTART]


def test_on_exit_does_not_restart_an_unhealthy_vm_and_unhealthy_also_restarts_on_exit() -> None:
    h = Harness(ON_EXIT)
    h.see(vm("alpha", Phase.READY))
    h.clock.advance(10 * HEALTH)
    assert h.see(vm("alpha", Phase.ERROR)).actions == ()
    h.clock.advance(10 * HEALTH)
    assert h.see(vm("alpha", Phase.ERROR)).actions == ()
    u = Harness(UNHEALTHY)
    assert [a.kind for a in u.crash().actions] == [ActionKind.START]


def test_a_vm_that_never_was_ready_is_not_unhealthy() -> None:
    h = Harness(UNHEALTHY)
    h.see(vm("alpha", Phase.SSH_PENDING))
    h.clock.advance(100 * HEALTH)
    assert h.see(vm("alpha", Phase.SSH_PENDING)).actions == ()


def test_a_user_stop_of_an_unhealthy_vm_is_not_a_failed_check() -> None:
    h = Harness(RecoveryPolicy(restart="unhealthy", unhealthy_after=1))
    h.see(vm("alpha", Phase.READY))
    h.intent("stop")
    assert h.see(vm("alpha", Phase.STOPPING)).actions == ()
    assert h.see(vm("alpha", Phase.ERROR)).actions == ()


def test_backoff_between_attempts_that_did_not_bring_the_vm_to_ready() -> None:
    h = Harness(RecoveryPolicy(restart="on-exit", max_restarts=10, backoff=10.0))
    h.act(h.crash(), Result.FAILED)  # attempt 1 at t0, now t0+5
    plan = h.see(vm("alpha", Phase.STOPPED))  # still down: a new exit, but backoff
    assert plan.actions == ()
    assert plan.wake_at is not None
    first_wait = plan.wake_at - (h.clock.now() - 5)
    assert 8.0 <= first_wait <= 12.0  # 10 s ±20 %
    assert h.engine.state("alpha") == "waiting"
    h.clock.set(plan.wake_at)
    plan = h.see(vm("alpha", Phase.STOPPED))
    assert [a.attempt for a in plan.actions] == [2]
    begun = h.clock.now()
    h.act(plan, Result.FAILED)
    plan = h.see(vm("alpha", Phase.STOPPED))
    assert plan.wake_at is not None
    assert 16.0 <= plan.wake_at - begun <= 24.0  # doubled


def test_backoff_is_capped() -> None:
    h = Harness(RecoveryPolicy(restart="on-exit", max_restarts=1000, backoff=100.0))
    plan = h.crash()
    for _ in range(12):
        begun = h.clock.now()
        h.act(plan, Result.FAILED)
        wait = h.see(vm("alpha", Phase.STOPPED))
        assert wait.wake_at is not None
        assert wait.wake_at - begun <= BACKOFF_CAP * 1.2 + 1e-6
        h.clock.set(wait.wake_at)
        plan = h.see(vm("alpha", Phase.STOPPED))
    assert plan.actions[0].attempt == 13


def test_ready_again_resets_the_backoff() -> None:
    h = Harness(RecoveryPolicy(restart="on-exit", max_restarts=10, backoff=10.0))
    h.act(h.crash(), Result.OK)
    h.clock.advance(20)  # past the first backoff
    plan = h.crash()
    assert [a.attempt for a in plan.actions] == [1]


def test_max_restarts_per_rolling_hour() -> None:
    h = Harness(RecoveryPolicy(restart="on-exit", max_restarts=2, backoff=1.0))
    plan = h.crash()
    first = h.clock.now()  # the first attempt begins
    h.act(plan)
    h.clock.advance(600)
    h.act(h.crash())
    h.clock.advance(600)
    plan = h.crash()
    assert plan.actions == ()
    assert [n.severity for n in plan.notices] == ["warning"]
    assert "2 attempts in the last hour (max_restarts)" in plan.notices[0].message
    assert plan.wake_at == first + WINDOW
    assert h.engine.history("alpha")[-1].result is Result.LIMITED
    assert h.engine.counts[("alpha", "start", "limited")] == 1
    # Said and counted once, however often it is evaluated.
    h.clock.advance(60)
    again = h.see(vm("alpha", Phase.STOPPED))
    assert again.notices == () and h.engine.counts[("alpha", "start", "limited")] == 1
    # The oldest attempt leaves the window: the VM is started.
    h.clock.set(first + WINDOW + 0.1)
    assert h.engine.restarts_last_hour("alpha") == 1
    assert [a.kind for a in h.see(vm("alpha", Phase.STOPPED)).actions] == [ActionKind.START]


def test_max_restarts_zero_never_acts() -> None:
    h = Harness(RecoveryPolicy(restart="on-exit", max_restarts=0))
    assert h.crash().actions == ()


def test_read_only_never_acts() -> None:
    for policy in (ON_EXIT, UNHEALTHY):
        h = Harness(policy, readonly=True)
        plan = h.crash()
        assert plan.actions == ()
        assert [n.message for n in plan.notices] == [
            "recovery: exited unexpectedly: not recovering, megatui is read-only"
        ]
        h.clock.advance(WINDOW)
        assert h.see(vm("alpha", Phase.STOPPED)).actions == ()
    h = Harness(RecoveryPolicy(restart="unhealthy", unhealthy_after=1), readonly=True)
    h.see(vm("alpha", Phase.READY))
    assert h.see(vm("alpha", Phase.ERROR)).actions == ()


@pytest.mark.parametrize("policy", [None, RecoveryPolicy(restart="never")])
def test_unmanaged_vms_are_left_alone(policy: RecoveryPolicy | None) -> None:
    h = Harness(policy)
    assert h.crash().actions == ()
    assert h.engine.state("alpha") == "unmanaged"


def test_a_vm_removed_from_config_stops_being_managed() -> None:
    h = Harness()
    h.see(vm("alpha", Phase.READY))
    del h.policies["alpha"]
    h.see(vm("alpha", Phase.READY))
    h.policies["alpha"] = ON_EXIT  # back, but it forgot it saw the VM running
    assert h.see(vm("alpha", Phase.STOPPED)).actions == ()
    assert h.engine.state("alpha") == "watching"


def test_a_vm_gone_from_tart_is_forgotten() -> None:
    h = Harness()
    h.see(vm("alpha", Phase.READY))
    h.see()  # deleted
    assert h.engine.state("alpha") == "unmanaged"
    assert h.see(vm("alpha", Phase.STOPPED)).actions == ()


def test_a_busy_vm_is_not_evaluated_and_a_failed_start_is_retried() -> None:
    h = Harness()
    plan = h.crash()
    action = plan.actions[0]
    h.engine.begin(action, ON_EXIT)
    assert h.see(vm("alpha", Phase.STOPPED), busy=("alpha",)).actions == ()
    h.engine.finish(action, Result.FAILED, "start: tart says no")
    h.clock.advance(BACKOFF_CAP * 2)
    assert [a.attempt for a in h.see(vm("alpha", Phase.STOPPED)).actions] == [2]


def test_a_user_stop_during_a_recovery_start_holds() -> None:
    h = Harness()
    action = h.crash().actions[0]
    h.engine.begin(action, ON_EXIT)
    h.intent("stop")  # the user stops the VM recovery is starting
    h.engine.finish(action, Result.FAILED, "the VM is being stopped")
    h.clock.advance(BACKOFF_CAP * 2)
    assert h.see(vm("alpha", Phase.STOPPED)).actions == ()


def test_vms_are_independent() -> None:
    h = Harness()
    h.policies["beta"] = UNHEALTHY
    h.see(vm("alpha", Phase.READY), vm("beta", Phase.READY))
    h.intent("stop", "beta")
    plan = h.see(vm("alpha", Phase.STOPPED), vm("beta", Phase.STOPPED))
    assert [(a.vm, a.kind) for a in plan.actions] == [("alpha", ActionKind.START)]


def test_an_unhealthy_restart_that_did_not_bring_the_vm_back_is_tried_again() -> None:
    h = Harness(
        RecoveryPolicy(restart="unhealthy", unhealthy_after=2, max_restarts=5, backoff=10.0)
    )
    h.see(vm("alpha", Phase.READY))
    h.see(vm("alpha", Phase.ERROR))
    h.clock.advance(HEALTH)
    begun = h.clock.now()
    h.act(h.see(vm("alpha", Phase.ERROR)), Result.FAILED)  # running, never ready again
    plan = h.see(vm("alpha", Phase.SSH_PENDING))
    assert plan.actions == ()
    h.clock.set(begun + HEALTH + 5)  # two failed checks since, and past the backoff
    plan = h.see(vm("alpha", Phase.SSH_PENDING))
    assert [(a.kind, a.attempt) for a in plan.actions] == [(ActionKind.RESTART, 2)]


def test_the_user_stopped_state_ends_when_the_vm_runs_again() -> None:
    h = Harness()
    h.see(vm("alpha", Phase.READY))
    h.intent("stop")
    h.see(vm("alpha", Phase.STOPPED))
    assert h.engine.state("alpha") == "user-stopped"
    h.intent("start")
    h.see(vm("alpha", Phase.BOOTING))
    assert h.engine.state("alpha") == "watching"
