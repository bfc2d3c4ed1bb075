"""The controller's HTTP routes (docs/facts/orchard.md §1.2, §2, §4, §5), as aiohttp handlers.

Answers copy gin's: JSON bodies are compact Go JSON with
`application/json; charset=utf-8`, a missing object is a bare 404 with an empty
body, an unknown route is gin's plain-text `404 page not found`, and auth follows
`authenticateMiddleware`/`authorizeBase`: bad credentials and no credentials give
an empty 401, a missing role a 401 naming the roles.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from megatui.lab.orchard import gojson
from megatui.lab.orchard.guests import GuestRefused
from megatui.lab.orchard.record import Exchange
from megatui.lab.orchard.store import ApiError, ServiceAccount

if TYPE_CHECKING:
    from megatui.lab.orchard.controller import FakeOrchard

CONTROLLER_VERSION = "0.55.0"
CONTROLLER_COMMIT = "b30bb5bedf23791bf7237138c79a1f458fb94a9b"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(status: int, body: object) -> web.Response:
    return web.Response(
        status=status, text=gojson.dumps(body), content_type="application/json", charset="utf-8"
    )


def error_response(exc: ApiError) -> web.Response:
    if exc.message is None:
        return web.Response(status=exc.status)
    return json_response(exc.status, {"message": exc.message})


class OrchardAPI:
    def __init__(self, lab: FakeOrchard) -> None:
        self.lab = lab
        self.store = lab.store

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/v1/", self.health)
        r.add_get("/v1/controller/info", self.info)
        r.add_get("/v1/workers", self.list_workers)
        r.add_get("/v1/workers/{name}", self.get_worker)
        r.add_delete("/v1/workers/{name}", self.delete_worker)
        r.add_get("/v1/service-accounts", self.list_accounts)
        r.add_get("/v1/vms", self.list_vms)
        r.add_post("/v1/vms", self.create_vm)
        r.add_get("/v1/vms/{name}", self.get_vm)
        r.add_put("/v1/vms/{name}", self.update_vm)
        r.add_delete("/v1/vms/{name}", self.delete_vm)
        r.add_get("/v1/vms/{name}/events", self.events)
        r.add_get("/v1/vms/{name}/ip", self.ip)
        r.add_get("/v1/vms/{name}/port-forward", self.port_forward)
        r.add_route("*", "/{tail:.*}", self.not_found)

    # ------------------------------------------------------------ middleware

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.read() if request.can_read_body else b""
        if self.lab.faults.html_status is not None:
            response: web.StreamResponse = web.Response(
                status=self.lab.faults.html_status,
                text="<html><head><title>Sign in</title></head><body>proxy login</body></html>",
                content_type="text/html",
            )
        else:
            try:
                self._authenticate(request)  # bad credentials: 401 on every route
                response = await handler(request)
            except ApiError as exc:
                response = error_response(exc)
        answer = response.body if isinstance(response, web.Response) else None
        self.lab.exchanges.append(
            Exchange(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
                status=response.status,
                content_type=response.content_type,
                response=answer if isinstance(answer, bytes) else None,
                injected=self.lab.faults.html_status is not None,
            )
        )
        return response

    def _authenticate(self, request: web.Request) -> ServiceAccount | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, token = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        account = self.store.accounts.get(user)
        if account is None or account.token != token:
            raise ApiError(401)
        return account

    def _authorize(self, request: web.Request, *roles: str, any_of: bool = False) -> None:
        if self.lab.auth_disabled:
            return
        account = self._authenticate(request)
        if account is None:
            raise ApiError(401)
        held = set(account.roles)
        ok = bool(held & set(roles)) if any_of else held.issuperset(roles)
        if not ok:
            hint = "any" if any_of else "all"
            raise ApiError(
                401, f"{hint} of the following roles must be present: {', '.join(roles)}"
            )

    # ------------------------------------------------------------ plain routes

    async def not_found(self, request: web.Request) -> web.Response:
        return web.Response(status=404, text="404 page not found", content_type="text/plain")

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def info(self, request: web.Request) -> web.Response:
        if self._authenticate(request) is None and not self.lab.auth_disabled:
            raise ApiError(401)
        body = {
            "version": CONTROLLER_VERSION,
            "commit": CONTROLLER_COMMIT,
            "capabilities": ["rpc-v1", "vm-state-endpoint", "rpc-v2"],
        }
        return json_response(200, body)

    async def list_workers(self, request: web.Request) -> web.Response:
        self._authorize(request, "compute:read")
        return json_response(200, [w.to_json() for w in self.store.workers.values()])

    async def get_worker(self, request: web.Request) -> web.Response:
        self._authorize(request, "compute:read")
        worker = self.store.workers.get(request.match_info["name"])
        if worker is None:
            raise ApiError(404)
        return json_response(200, worker.to_json())

    async def delete_worker(self, request: web.Request) -> web.Response:
        self._authorize(request, "compute:write")
        self.store.delete_worker(request.match_info["name"])
        return web.Response(status=200)

    async def list_accounts(self, request: web.Request) -> web.Response:
        self._authorize(request, "admin:read")
        return json_response(200, [a.to_json() for a in self.store.accounts.values()])

    async def list_vms(self, request: web.Request) -> web.Response:
        self._authorize(request, "compute:read")
        worker: str | None = None
        path, _, value = request.query.get("filter", "").partition("=")
        if "filter" in request.query:
            # Only `worker=<name>` matches anything; other paths match nothing.
            worker = value if path == "worker" else "\x00"
        return json_response(200, self.store.list_vms(worker))

    async def _body(self, request: web.Request) -> object:
        try:
            return json.loads(await request.read())
        except ValueError:
            raise ApiError(400, "invalid JSON was provided") from None

    async def create_vm(self, request: web.Request) -> web.Response:
        self._authorize(request, "compute:write")
        return json_response(200, self.store.create_vm(await self._body(request)))

    async def update_vm(self, request: web.Request) -> web.Response:
        self._authorize(request, "compute:write")
        body = await self._body(request)
        return json_response(200, self.store.update_vm(request.match_info["name"], body))

    async def delete_vm(self, request: web.Request) -> web.Response:
        self._authorize(request, "compute:write")
        self.store.delete_vm(request.match_info["name"])
        return web.Response(status=200)

    async def events(self, request: web.Request) -> web.Response:
        self._authorize(request, "compute:read")
        self.store.get_vm(request.match_info["name"])
        return json_response(200, [])

    # ------------------------------------------------------------ watch (§4)

    async def get_vm(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request, "compute:read")
        name = request.match_info["name"]
        if request.query.get("watch") != "true":  # exactly "true" (§4)
            return json_response(200, self.store.get_vm(name).to_json())
        queue = self.store.watch(name)
        response = web.StreamResponse(status=200)
        response.content_type = "application/x-ndjson"
        try:
            while True:
                event = await queue.get()
                line = gojson.dumps(event).encode() + b"\n"
                if not response.prepared:
                    # Go sends the headers with the first event, not before.
                    await response.prepare(request)
                if name in self.lab.faults.cut_watches:
                    self.lab.faults.cut_watches.discard(name)
                    await response.write(line[: len(line) // 2])
                    break
                await response.write(line)
        finally:
            self.store.unwatch(name, queue)
        if not response.prepared:
            await response.prepare(request)
        return response

    # ------------------------------------------------------------ ip and port-forward (§5)

    def _wait_param(self, request: web.Request, default: int) -> int:
        try:
            wait = int(request.query.get("wait", str(default)))
        except ValueError:
            raise ApiError(400) from None
        if not 0 <= wait <= 65535:
            raise ApiError(400)
        return wait

    async def _wait_running(self, name: str, deadline: float) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        while True:
            vm = self.store.get_vm(name).fields
            if vm.get("status") == "failed":
                raise ApiError(417, "VM is in a terminal state 'failed'")
            if vm.get("status") == "running":
                return vm
            if loop.time() >= deadline:
                raise ApiError(408, f"VM is not running on '{vm.get('worker', '')}' worker")
            await asyncio.sleep(self.lab.poll_interval)

    def _worker_reachable(self, vm: dict[str, Any]) -> None:
        worker = self.store.workers.get(str(vm.get("worker") or ""))
        if worker is None or not worker.alive:
            raise ApiError(503)  # the worker cannot even be notified

    async def ip(self, request: web.Request) -> web.Response:
        self._authorize(request, "compute:write", "compute:connect", any_of=True)
        wait = self._wait_param(request, 0)
        deadline = asyncio.get_running_loop().time() + wait
        vm = await self._wait_running(request.match_info["name"], deadline)
        self._worker_reachable(vm)
        return json_response(200, {"ip": self.lab.vm_ip(str(vm["name"]))})

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request, "compute:write", "compute:connect", any_of=True)
        try:
            port = int(request.query.get("port", ""))
        except ValueError:
            raise ApiError(400) from None
        if not 1 <= port <= 65535:
            raise ApiError(400)
        wait = self._wait_param(request, 10)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        vm = await self._wait_running(request.match_info["name"], deadline)
        self._worker_reachable(vm)
        sock = await self._dial(str(vm["name"]), port, deadline)
        ws = web.WebSocketResponse(autoping=True)
        try:
            await ws.prepare(request)
            # A client without a User-Agent is a legacy x/net/websocket one: text frames.
            text = not request.headers.get("User-Agent")
            await self._pump(ws, sock, text)
        finally:
            sock.close()
        return ws

    async def _dial(self, name: str, port: int, deadline: float) -> Any:
        """Ask the worker to dial the guest; retried each second until `wait` ends (§5)."""
        loop = asyncio.get_running_loop()
        while True:
            lab_vm = self.store.get_vm(name)
            up = lab_vm.guest_up_at
            if up is not None and self.store.clock.monotonic() >= up:
                try:
                    return await self.lab.guests.dial(str(lab_vm.fields["localName"]), port)
                except GuestRefused:
                    pass
            if loop.time() >= deadline:
                raise ApiError(500)
            await asyncio.sleep(self.lab.poll_interval)

    async def _pump(self, ws: web.WebSocketResponse, sock: Any, text: bool) -> None:
        reader, writer = await asyncio.open_connection(sock=sock)
        opcode = WSMsgType.TEXT if text else WSMsgType.BINARY

        async def guest_to_ws() -> None:
            while data := await reader.read(65536):
                await ws.send_frame(data, opcode)
            await ws.close()

        async def pings() -> None:
            while True:
                await asyncio.sleep(self.lab.ping_interval)
                await ws.ping()
                self.lab.pings_sent += 1

        tasks = [asyncio.create_task(guest_to_ws()), asyncio.create_task(pings())]
        self.lab.open_forwards += 1
        try:
            async for msg in ws:
                if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                    data = msg.data if isinstance(msg.data, bytes) else msg.data.encode()
                    writer.write(data)
                    await writer.drain()
        finally:
            self.lab.open_forwards -= 1
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            writer.close()
