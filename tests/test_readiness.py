"""The one stop rule for waiting on a VM: `wait`, doctor and the TUI all use it."""

from __future__ import annotations

import pytest

from megatui.model import VM, Phase, SourceStatus, TartState
from megatui.readiness import Decision, Verdict, decide

TART_OK = SourceStatus("tart", ok=True, updated_at=1.0)
TART_HUNG = SourceStatus("tart", ok=False, error="tart list did not answer within 10 s")


def vm(phase: Phase, error: str | None = None) -> VM:
    state = {Phase.STOPPED: TartState.STOPPED, Phase.SUSPENDED: TartState.SUSPENDED}.get(
        phase, TartState.RUNNING
    )
    return VM("macos-dev", state, phase, "192.168.64.3", 0.5, 0.0, error=error)


def test_ready_is_ready_even_while_tart_fails() -> None:
    assert decide("macos-dev", vm(Phase.READY), TART_OK) == Decision(Verdict.READY)
    assert decide("macos-dev", vm(Phase.READY), TART_HUNG) == Decision(Verdict.READY)


@pytest.mark.parametrize("phase", [Phase.STARTING, Phase.BOOTING, Phase.IP, Phase.SSH_PENDING])
def test_boot_phases_keep_waiting_and_name_a_failing_tart(phase: Phase) -> None:
    assert decide("macos-dev", vm(phase), TART_OK) == Decision(Verdict.WAITING)
    assert decide("macos-dev", vm(phase), TART_HUNG) == Decision(
        Verdict.WAITING, "tart list did not answer within 10 s"
    )


@pytest.mark.parametrize("phase", [Phase.STOPPED, Phase.SUSPENDED])
def test_a_stopped_or_suspended_vm_ends_the_wait_with_how_to_start_it(phase: Phase) -> None:
    decision = decide("macos-dev", vm(phase), TART_OK)
    assert decision == Decision(
        Verdict.GIVE_UP,
        f"the VM is {phase}: start it with the `s` key in megatui, "
        "`megatui wait --start macos-dev` or `tart run --no-graphics macos-dev`",
    )


def test_a_failed_start_says_why_before_how() -> None:
    decision = decide("macos-dev", vm(Phase.STOPPED, error="tart run failed: boom"), TART_OK)
    assert decision.verdict is Verdict.GIVE_UP
    assert decision.reason is not None
    assert decision.reason.startswith("tart run failed: boom; the VM is stopped: start it")


def test_error_and_stopping_give_up() -> None:
    rejected = decide("macos-dev", vm(Phase.ERROR, "SSH login rejected"), TART_OK)
    assert rejected == Decision(Verdict.GIVE_UP, "SSH login rejected")
    assert decide("macos-dev", vm(Phase.STOPPING)) == Decision(
        Verdict.GIVE_UP, "the VM is being stopped"
    )


def test_unlisted_vm_waits_for_tart_unless_tart_cannot_recover() -> None:
    assert decide("macos-dev", None) == Decision(Verdict.WAITING)
    assert decide("macos-dev", None, TART_HUNG) == Decision(
        Verdict.WAITING, "tart list did not answer within 10 s"
    )
    missing = SourceStatus("tart", ok=False, error="tart not installed")
    assert decide("macos-dev", None, missing, tart_fatal=True) == Decision(
        Verdict.GIVE_UP, "tart not installed"
    )


def _failed(policy: str | None) -> VM:
    return VM(
        "ci-7",
        TartState.STOPPED,
        Phase.ERROR,
        None,
        0.0,
        0.0,
        error="tart run exited with 1",
        backend="orchard",
        restart_policy=policy,
    )


def test_a_failed_vm_the_controller_restarts_is_waited_for() -> None:
    # OnFailure: Orchard puts it back to pending with restart_count + 1.
    assert decide("ci-7", _failed("OnFailure")) == Decision(
        Verdict.WAITING,
        "tart run exited with 1; the controller restarts it (restart policy OnFailure)",
    )


@pytest.mark.parametrize("policy", ["Never", None])
def test_a_failed_vm_that_stays_failed_ends_the_wait(policy: str | None) -> None:
    assert decide("ci-7", _failed(policy)) == Decision(Verdict.GIVE_UP, "tart run exited with 1")


def test_a_rejected_login_on_an_onfailure_vm_still_ends_the_wait() -> None:
    # Running and refusing our login: no restart will fix that.
    rejected = VM(
        "ci-7",
        TartState.RUNNING,
        Phase.ERROR,
        "10.0.0.2",
        0.9,
        0.0,
        error="SSH login rejected",
        restart_policy="OnFailure",
    )
    assert decide("ci-7", rejected) == Decision(Verdict.GIVE_UP, "SSH login rejected")
