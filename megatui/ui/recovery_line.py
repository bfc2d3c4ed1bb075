"""The recovery line of the VM detail screen: the VM's [recovery] policy and, when
recovery runs where the data comes from (an attached viewer of `megatui serve`), how
often it restarted the VM in the last hour."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.containers import Vertical
from textual.screen import Screen

from megatui.recovery import RecoveryStatus, describe
from megatui.ui import render
from megatui.ui.panels import TextLine


async def status_of(screen: Screen[Any], monitor: object, name: str) -> RecoveryStatus | None:
    fetch = getattr(monitor, "recovery_status", None)
    if fetch is not None:  # a viewer attached to a server: the server's recovery
        try:
            status: RecoveryStatus | None = await fetch(name)
        except Exception:  # a nicety: never fail the screen over it
            return None
        return status
    settings = getattr(screen.app, "settings", None)
    policy = settings.recovery_policy(name) if settings is not None else None
    return RecoveryStatus(policy) if policy is not None else None


async def show(screen: Screen[Any], monitor: object, name: str, after: str) -> None:
    """Mount the line below the widget `after` (selector) when the VM has a policy."""
    status = await status_of(screen, monitor, name)
    if status is None or not screen.is_mounted:
        return
    line = TextLine(id="detail-recovery")
    box = screen.query_one("#detail", Vertical)
    await box.mount(line, after=after)
    line.show(Text.assemble(("recovery ", render.MUTED), describe(status), end=""))
