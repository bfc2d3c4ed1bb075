"""Checks of the machine doctor runs on: OS, Python, terminal, SSH agent."""

from __future__ import annotations

import asyncio
import os
import platform
import shutil
import sys
from pathlib import Path

from megatui.doctor.outcome import Outcome, ok, plural, skipped, warn
from megatui.doctor.runner import Context


async def check_os(ctx: Context) -> Outcome:
    system = platform.system()
    name = f"macOS {platform.mac_ver()[0]}" if system == "Darwin" else system
    return ok(f"{name} {platform.machine()}")


async def check_python(ctx: Context) -> Outcome:
    version = platform.python_version()
    return ok(f"Python {version} ({sys.executable})")


async def check_terminal(ctx: Context) -> Outcome:
    if not sys.stdout.isatty():
        return ok("not a terminal (fine for scripts and CI)")
    size = shutil.get_terminal_size()
    colorterm = os.environ.get("COLORTERM", "")
    term = os.environ.get("TERM", "")
    colours = (
        "truecolor"
        if colorterm in ("truecolor", "24bit")
        else ("256 colours" if "256" in term else "basic colours")
    )
    reason = f"{size.columns}x{size.lines}, {term or 'TERM unset'}, {colours}"
    if term in ("", "dumb"):
        return warn(reason + ": no colours or cursor control", "run the TUI in a real terminal")
    if size.columns < 80 or size.lines < 24:
        return warn(reason + ": smaller than 80x24", "enlarge the window for the TUI")
    if os.environ.get("NO_COLOR"):
        return warn(reason + ", NO_COLOR set", "unset NO_COLOR for status colours")
    return ok(reason)


async def check_ssh_agent(ctx: Context) -> Outcome:
    if not ctx.settings.ssh_agent and not ctx.settings.host:
        # VM logins are told not to use it, and there is no --host connection.
        return skipped("not used ([ssh] agent = false)")
    sock = os.environ.get("SSH_AUTH_SOCK")
    if not sock:
        return warn(
            "no SSH agent (SSH_AUTH_SOCK unset)",
            "key logins need --vm-key or [ssh] key; password logins still work",
        )
    if not Path(sock).exists():
        return warn(f"SSH_AUTH_SOCK points at a missing socket: {sock}", "restart your ssh-agent")
    try:
        import asyncssh

        async with asyncio.timeout(5):
            agent = await asyncssh.connect_agent(sock)
        if agent is None:
            return warn("cannot talk to the SSH agent", "restart your ssh-agent")
        try:
            async with asyncio.timeout(5):
                keys = await agent.get_keys()
        finally:
            agent.close()
    except Exception as exc:  # any agent failure is just a warning
        return warn(f"cannot talk to the SSH agent: {exc}", "restart your ssh-agent")
    if not keys:
        return warn("the SSH agent holds no keys", "ssh-add your key")
    return ok(f"SSH agent with {plural(len(keys), 'key')}")
