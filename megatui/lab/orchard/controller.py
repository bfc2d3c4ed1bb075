"""The fake Orchard controller: an aiohttp server over `OrchardStore`, with lab
workers whose VMs are real SSH servers behind the port-forward, and a Python
control API for tests to break things (a worker vanishing or going silent, an
HTML answer, a watch cut mid-line, a TLS certificate the client did not pin).

    lab = FakeOrchard(root, clock=FakeClock(), timings=Timings(clone=2, boot=5))
    await lab.start()                      # http://127.0.0.1:PORT, or tls=True
    lab.add_worker("mac-mini-1")
    lab.clock.advance(10); lab.step()      # with a FakeClock; a SystemClock runs alone
    ...
    await lab.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from megatui.clock import Clock, SystemClock
from megatui.lab.orchard import tls
from megatui.lab.orchard.api import OrchardAPI
from megatui.lab.orchard.guests import LabGuests
from megatui.lab.orchard.record import Exchange
from megatui.lab.orchard.store import (
    ROLES,
    LabWorker,
    OrchardStore,
    ServiceAccount,
    Timings,
)

BOOTSTRAP_ADMIN = "bootstrap-admin"


@dataclass
class Faults:
    #: Answer every request with an HTML page and this status (a captive proxy).
    html_status: int | None = None
    #: VM names whose next watch event is cut in the middle, then the stream ends.
    cut_watches: set[str] = field(default_factory=set)


class FakeOrchard:
    # (Its keyword knobs look like lab/cluster.start_lab_cluster's: shape only.)
    def __init__(
        self,
        root: Path,
        *,
        clock: Clock | None = None,
        timings: Timings | None = None,
        admin_token: str = "lab-admin-token",
        auth_disabled: bool = False,
        ping_interval: float = 30.0,
        poll_interval: float = 1.0,
        tick: float = 0.05,
    ) -> None:
        self.clock: Clock = clock or SystemClock()
        self.store = OrchardStore(self.clock, timings)
        self.guests = LabGuests(root)
        self.faults = Faults()
        self.auth_disabled = auth_disabled  # `orchard dev`
        self.ping_interval = ping_interval
        self.poll_interval = poll_interval
        self.tick = tick
        self.exchanges: list[Exchange] = []
        self.pings_sent = 0
        self.open_forwards = 0
        self.certificate_pem: bytes | None = None
        self.url = ""
        self.admin = self.store.add_account(BOOTSTRAP_ADMIN, admin_token, ROLES)
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._ips: dict[str, str] = {}
        self._guests_made: set[str] = set()

    # ------------------------------------------------------------ life

    async def start(self, *, host: str = "127.0.0.1", port: int = 0, use_tls: bool = False) -> str:
        api = OrchardAPI(self)
        app = web.Application(middlewares=[api.middleware])
        api.routes(app)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        ssl_context = None
        if use_tls:
            self.certificate_pem, key_pem = tls.self_signed()
            ssl_context = tls.server_context(self.certificate_pem, key_pem)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        site = web.SockSite(self._runner, sock, ssl_context=ssl_context)
        await site.start()
        bound = sock.getsockname()[1]
        self.url = f"{'https' if use_tls else 'http'}://{host}:{bound}"
        self._ticker = asyncio.create_task(self._tick_loop())
        return self.url

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(BaseException):
                await self._ticker
            self._ticker = None
        await self.guests.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _tick_loop(self) -> None:
        while True:
            self.step()
            await asyncio.sleep(self.tick)

    def step(self) -> None:
        """Move the whole fleet to where the clock says it is."""
        self.store.step()
        for vm in self.store.vms.values():
            local = vm.fields.get("localName")
            if vm.guest_up_at is not None and local not in self._guests_made:
                self._guests_made.add(str(local))
                f = vm.fields
                self.guests.ensure(
                    str(f["localName"]),
                    str(f.get("username") or "admin"),
                    str(f.get("password") or "admin"),
                )

    # ------------------------------------------------------------ fleet

    def add_worker(
        self,
        name: str,
        *,
        cores: int = 8,
        memory_mib: int = 16384,
        tart_vms: int = 2,
        utc_offset_minutes: int = 0,
        scheduling_paused: bool = False,
    ) -> LabWorker:
        worker = LabWorker(
            name,
            cores=cores,
            memory_mib=memory_mib,
            tart_vms=tart_vms,
            utc_offset_minutes=utc_offset_minutes,
            scheduling_paused=scheduling_paused,
        )
        return self.store.add_worker(worker)

    def add_account(self, name: str, token: str, roles: tuple[str, ...]) -> ServiceAccount:
        return self.store.add_account(name, token, roles)

    def vm_ip(self, name: str) -> str:
        if name not in self._ips:
            self._ips[name] = str(ipaddress.IPv4Address("192.168.64.2") + len(self._ips))
        return self._ips[name]

    def host_key_path(self, vm_name: str) -> Path:
        """The private host key of the VM's current clone (tests compare fingerprints)."""
        return self.guests.host_key_path(str(self.store.get_vm(vm_name).fields["localName"]))

    async def wait_for_watch(self, vm_name: str, timeout: float = 10.0) -> None:
        """Until a watch on the VM is open (tests: so no event is missed)."""
        async with asyncio.timeout(timeout):
            while not self.store.watchers(vm_name):
                self.store.watch_opened.clear()
                await self.store.watch_opened.wait()

    # ------------------------------------------------------------ faults

    def worker_vanish(self, name: str) -> None:
        """The worker is deleted from the controller: its VMs fail on the next step."""
        self.store.delete_worker(name)

    def worker_silent(self, name: str, silent: bool = True) -> None:
        """The worker stops (or resumes) talking to the controller: `last_seen` freezes
        and after the offline timeout its VMs fail."""
        self.store.workers[name].alive = not silent

    def fail_vm(self, name: str, message: str) -> None:
        """`tart run` exits: status failed with "VM failed: <message>"."""
        self.store.fail(self.store.get_vm(name), f"VM failed: {message}")

    def answer_html(self, status: int | None = 200) -> None:
        """Every answer becomes an HTML page with this status; None turns it off."""
        self.faults.html_status = status

    def cut_watch(self, vm_name: str) -> None:
        self.faults.cut_watches.add(vm_name)
