"""Checks of the --host connection and the host's login keychain."""

from __future__ import annotations

from megatui.doctor.outcome import Outcome, failed, ok, skipped
from megatui.doctor.runner import Context


async def check_remote_connection(ctx: Context) -> Outcome:
    if not ctx.monitor.transport.is_remote:
        return skipped("not using --host")
    if ctx.connect_error is not None:
        return failed(
            ctx.connect_error,
            f"`ssh {ctx.settings.host}` must log in without a password: Remote Login on, "
            "the host key in ~/.ssh/known_hosts, your key in the agent or ~/.ssh",
        )
    return ok(f"connected to {ctx.monitor.transport.label}")


async def check_keychain(ctx: Context) -> Outcome:
    if not ctx.monitor.transport.is_remote:
        return skipped("not using --host")
    from megatui.keychain import KEYCHAIN_HINT, keychain_locked

    locked = await keychain_locked(ctx.monitor.transport)
    if locked is None:
        return skipped("no macOS login keychain on the host (no `security`, or no keychain)")
    if locked:
        return failed("the login keychain of the host is locked", KEYCHAIN_HINT)
    return ok("the login keychain of the host is unlocked")
