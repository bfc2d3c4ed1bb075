"""The lab VMs behind the fake workers: real SSH servers, reached only through the
controller's port-forward, as an Orchard VM on a Mac is.

Each tart VM on a worker (one `localName`: a new clone after a restart or a
re-create) gets its own lab spec and host key under the lab root, and
`megatui.lab.vmserver`'s SSH server serves it, so logins, the guest shell and host
keys behave exactly as for the local Tart lab. A port-forward is one socketpair:
the SSH server gets one end, the WebSocket pump the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from pathlib import Path

from megatui.lab.fake_tart import LabPaths, write_atomic
from megatui.lab.tartlab import _host_key_text
from megatui.lab.vmserver import _VM, SSHHandler, _ssh_handler


class GuestRefused(Exception):
    """Nothing listens on that port of the guest (yet)."""


class LabGuests:
    def __init__(self, root: Path) -> None:
        self.paths = LabPaths(root)
        self._handlers: dict[str, SSHHandler] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def ensure(self, local_name: str, user: str, password: str) -> None:
        """Create the guest's disk: its spec and a fresh host key (a new clone)."""
        if self.paths.spec(local_name).exists():
            return
        write_atomic(self.paths.host_key(local_name), _host_key_text(), mode=0o600)
        spec = {"user": user, "password": password, "os": "darwin"}
        write_atomic(self.paths.spec(local_name), json.dumps(spec))

    def host_key_path(self, local_name: str) -> Path:
        return self.paths.host_key(local_name)

    async def dial(self, local_name: str, port: int) -> socket.socket:
        """A connected socket to the guest's port; only sshd on 22 listens."""
        if port != 22 or not self.paths.spec(local_name).exists():
            raise GuestRefused(f"dial tcp {local_name}:{port}: connect: connection refused")
        handler = self._handlers.get(local_name)
        if handler is None:
            vm = _VM(
                self.paths,
                local_name,
                self.paths.lab_vm_dir(local_name),
                started_at=time.time(),
                resumed=True,
            )
            # Importing asyncssh is slow the first time: keep it off the event loop.
            handler = await asyncio.get_running_loop().run_in_executor(None, _ssh_handler, vm)
            self._handlers[local_name] = handler
        inner, outer = socket.socketpair()
        inner.setblocking(False)
        task = asyncio.ensure_future(handler(inner))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return outer

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
