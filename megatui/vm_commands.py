"""`megatui start|stop|create|delete`: one VM action from a script, for every backend.

Exit codes as `wait`: 0 done, 1 the action failed (the backend's or controller's
refusal, verbatim, in one line), 2 bad usage or an unknown VM (or tart not
installed). `start --wait` is `wait --start`: one monitor starts the VM and waits
for its SSH login.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

from megatui import headless
from megatui.api import ActionError
from megatui.backends.base import NewVMSpec
from megatui.config import Settings
from megatui.headless import HeadlessError, build_monitor
from megatui.monitor import Monitor

#: How long the first list of VMs may take before an action gives up.
LIST_TIMEOUT = 30.0


async def run(
    command: str,
    settings: Settings,
    args: argparse.Namespace,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if command == "start" and args.wait:
        return await headless.wait(settings, [args.vm], args.timeout, False, err, start=True)
    if command == "delete" and not args.yes and not _confirmed(args.vm, err):
        print(f"megatui: not deleting VM '{args.vm}' (say --yes to delete)", file=err)
        return 2
    monitor = build_monitor(settings, sources={"tart"}, vms=[args.vm])
    try:
        await headless._connect(monitor)
        await monitor.start()
        if command != "create":
            await _known(monitor, args.vm)
        line = await _act(monitor, command, args)
    except HeadlessError as exc:
        print(f"megatui: {exc}", file=err)
        return exc.code
    finally:
        await monitor.stop()
    print(line, file=out)
    return 0


async def _known(monitor: Monitor, name: str) -> None:
    """After the first list: the VM exists, or exit 2 (1 while the backend fails)."""
    await monitor.wait_first_round(LIST_TIMEOUT)
    known = monitor.known_vm_names()
    if known is None:
        status = monitor.snapshot.vm_status()
        reason = status.error if status is not None and status.error else "no answer"
        raise HeadlessError(
            f"cannot list the VMs of {monitor.backend.label}: {reason}",
            2 if monitor.tart_hopeless() else 1,
        )
    if name not in known:
        raise HeadlessError(headless._unknown_message([name], monitor), 2)


async def _act(monitor: Monitor, command: str, args: argparse.Namespace) -> str:
    name = args.vm
    try:
        if command == "start":
            vm = monitor.snapshot.vm(name)
            if vm is not None and vm.state == "running" and vm.error is None:
                return f"VM '{name}' is already running"
            note = await monitor.start_vm(name)
            return f"VM '{name}' {note}" if note else f"VM '{name}' started"
        if command == "stop":
            vm = monitor.snapshot.vm(name)
            if vm is not None and vm.state == "stopped":
                return f"VM '{name}' is not running"
            await monitor.stop_vm(name)
            return f"VM '{name}' stopping"
        if command == "suspend":
            await monitor.suspend_vm(name)
            return f"VM '{name}' suspending"
        if command == "create":
            spec = NewVMSpec(
                name,
                args.image,
                cpu=args.cpu,
                memory_mib=args.memory,
                restart_policy=args.restart_policy,
            )
            await monitor.create_vm(spec)
            return f"VM '{name}' created from {args.image}"
        await monitor.delete_vm(name)
        return f"VM '{name}' deleted"
    except ActionError as exc:
        raise HeadlessError(str(exc), 1) from None


def _confirmed(name: str, err: TextIO) -> bool:
    """Ask on a terminal, default no; never without one (a script says --yes)."""
    if not sys.stdin.isatty():
        return False
    err.write(f"Delete VM '{name}' and its disk? [y/N] ")
    err.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, KeyboardInterrupt):
        return False
    return answer.strip().lower() in ("y", "yes")
