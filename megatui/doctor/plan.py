"""Which checks a run makes: every one, and with --host what goes through the host
connection also needs it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from megatui.config import Settings
from megatui.doctor.checks import CHECKS
from megatui.doctor.runner import Check


def plan(settings: Settings, checks: Sequence[Check] = CHECKS) -> list[Check]:
    """The checks for this run: with --host, what goes through the host connection
    needs it (and is skipped, with that reason, when it failed)."""
    if not settings.host:
        return list(checks)
    return [replace(c, needs=(*c.needs, "remote.connection")) if c.via_host else c for c in checks]
