"""Which checks a run makes: every one, and with --host what goes through the host
connection also needs it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from megatui.config import Settings
from megatui.doctor.checks import CHECKS
from megatui.doctor.runner import Check

#: With an Orchard controller the VM checks ask it, not this Mac's tart.
_FLEET_VM_CHECKS = ("tart.vms", "tart.vms-boot", "tart.ssh-logins")


def plan(
    settings: Settings, checks: Sequence[Check] = CHECKS, *, fleet: bool = False
) -> list[Check]:
    """The checks for this run: with --host, what goes through the host connection
    needs it (and is skipped, with that reason, when it failed). With `fleet` (the
    VMs come from an Orchard controller), the VM checks need the controller's
    credentials instead of a local tart, which is not asked at all."""
    if fleet:
        checks = [_for_fleet(c) for c in checks]
    if not settings.host:
        return list(checks)
    return [replace(c, needs=(*c.needs, "remote.connection")) if c.via_host else c for c in checks]


def _for_fleet(check: Check) -> Check:
    if check.name == "tart.installed":
        return replace(check, via_host=False)
    if check.name in _FLEET_VM_CHECKS:
        return replace(check, needs=("orchard.credentials",))
    return check
