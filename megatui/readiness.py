"""The one rule for "wait until a VM is ready", shared by `wait`, doctor and the TUI.

Each of them used to decide on its own when to stop waiting (the TUI gave up on a
stopped VM, `wait` ran to its timeout, doctor treated anything but READY/ERROR as
still going). `decide` is now the only place that says: ready, keep waiting (and
what is in the way), or give up (and why, with what to do about it).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from megatui.model import VM, Phase, SourceStatus, TartState


# (Alike in shape only with model.TartState and TartVM: another enum, another record.)
class Verdict(StrEnum):
    READY = "ready"
    WAITING = "waiting"
    GIVE_UP = "give-up"


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    #: WAITING: what holds it up right now (a failing tart), if anything.
    #: GIVE_UP: why waiting longer cannot help, and what to do. One line.
    reason: str | None = None


def start_hint(name: str) -> str:
    """How to start a VM, in every place that waits for one."""
    return (
        f"start it with the `s` key in megatui, `megatui wait --start {name}` "
        f"or `tart run --no-graphics {name}`"
    )


def restarting(vm: VM) -> bool:
    """A VM its controller failed and will start again (Orchard's restart policy
    `OnFailure`): worth waiting for. Under `Never` a failed VM stays failed."""
    return (
        vm.phase is Phase.ERROR
        and vm.state is not TartState.RUNNING
        and vm.restart_policy == "OnFailure"
    )


def decide(
    name: str,
    vm: VM | None,
    tart: SourceStatus | None = None,
    *,
    tart_fatal: bool = False,
) -> Decision:
    """Where waiting for VM `name` stands, given its last published state.

    `vm` is None while tart has not listed it (yet, or any more); `tart` is the tart
    source's status; `tart_fatal` says its failure cannot pass by itself (tart is not
    installed), so waiting would only run into the timeout.
    """
    tart_error = tart.error if tart is not None and not tart.ok else None
    if tart_error and tart_fatal:
        return Decision(Verdict.GIVE_UP, tart_error)
    if vm is None:
        # Before tart ever answered, or while it fails: keep waiting, say why.
        return Decision(Verdict.WAITING, tart_error)
    if vm.phase is Phase.READY:
        # A login just worked: that is what ready means, whatever tart says now.
        return Decision(Verdict.READY)
    if restarting(vm):
        # The controller restarts it: it comes back as pending, restart_count + 1.
        why = vm.error or "failed"
        return Decision(
            Verdict.WAITING, f"{why}; the controller restarts it (restart policy OnFailure)"
        )
    if vm.phase is Phase.ERROR:
        # Rejected logins, a changed host key, a start that failed: only the user
        # can fix these.
        return Decision(Verdict.GIVE_UP, vm.error or "the VM is in error")
    if vm.phase in (Phase.STOPPED, Phase.SUSPENDED):
        reason = f"the VM is {vm.phase}: {start_hint(name)}"
        return Decision(Verdict.GIVE_UP, f"{vm.error}; {reason}" if vm.error else reason)
    if vm.phase is Phase.STOPPING:
        return Decision(Verdict.GIVE_UP, "the VM is being stopped")
    return Decision(Verdict.WAITING, tart_error)
