"""`megatui serve`: one monitor, an HTTP API, live events, metrics and the browser TUI.

Routes (docs/api.md):
  GET  /api/v1/healthz, /api/v1/status, /api/v1/timeline, /api/v1/events (SSE),
       /api/v1/doctor, /api/v1/vms/{name}, /api/v1/vms/{name}/log, /api/v1/recovery
  GET  /api/v1/pods/{namespace}/{name}/events, /api/v1/pods/{namespace}/{name}/logs
       (ndjson stream), /api/v1/objects/{kind}/[{namespace}/]{name} (drill_routes.py)
  POST /api/v1/vms/{name}/start, /api/v1/vms/{name}/stop
  GET  /metrics
  GET  /, /ws, /static/...: the TUI in a browser; each tab runs `megatui attach`
       against this server over a private unix socket (N tabs = 1 monitor).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from megatui import __version__
from megatui.api import ActionError, MonitorAPI
from megatui.doctor import CheckResult
from megatui.serve import auth
from megatui.serve.drill_routes import DrillRoutes
from megatui.serve.metrics import DoctorRun, Metrics, RecoveryStats
from megatui.serve.recovery_runner import RecoveryRunner
from megatui.serve.sse import EventHub
from megatui.snapshot_json import encode, encode_event

log = logging.getLogger(__name__)

JSON_TYPE = "application/json"
DoctorRunner = Callable[[], Awaitable[tuple[list[CheckResult], dict[str, object]]]]


@dataclass(frozen=True)
class Options:
    allow_actions: bool = False
    readonly: bool = False
    tls: bool = False
    #: How many ordinary requests may be in flight at once; more get 503.
    max_requests: int = 64
    #: How many browser tabs (each a process) may be open at once.
    max_tabs: int = 16
    #: The command a browser tab runs, or None for no browser view.
    tab_command: tuple[str, ...] | None = None


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(
        status=status, text=json.dumps(data, ensure_ascii=False) + "\n", content_type=JSON_TYPE
    )


def error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status)


class ControlServer:
    """The aiohttp application around one monitor."""

    def __init__(
        self,
        monitor: MonitorAPI,
        options: Options,
        policy: auth.Policy,
        *,
        doctor: DoctorRunner | None = None,
        hub: EventHub | None = None,
        recovery: RecoveryRunner | None = None,
    ) -> None:
        self.monitor = monitor
        self.options = options
        self.policy = policy
        self.hub = hub or EventHub(monitor)
        self.metrics = Metrics(
            lambda: monitor.snapshot, lambda: (self.hub.viewers, self.hub.dropped)
        )
        self.recovery = recovery
        self.drill = DrillRoutes(monitor)
        if recovery is not None:
            self.metrics.recovery = lambda: RecoveryStats.of(recovery.engine)
        self._doctor = doctor
        self._doctor_task: asyncio.Task[dict[str, object]] | None = None
        self._in_flight = 0
        self._unsubscribe: Callable[[], None] | None = None
        self.tabs: Any = None  # browser.Tabs when the browser view is on

    def make_app(self) -> web.Application:
        app = web.Application(
            middlewares=[auth.middleware(self.policy), self._shed], client_max_size=64 * 1024
        )
        app.add_routes(
            [
                web.get("/api/v1/healthz", self.healthz),
                web.get("/api/v1/status", self.status),
                web.get("/api/v1/timeline", self.timeline),
                web.get("/api/v1/events", self.hub.stream),
                web.get("/api/v1/doctor", self.doctor),
                web.get("/api/v1/recovery", self.recovery_report),
                web.get("/api/v1/vms/{name}", self.vm_details),
                web.get("/api/v1/vms/{name}/log", self.vm_log),
                web.post("/api/v1/vms/{name}/{action}", self.vm_action),
                web.get("/metrics", self.metrics_page),
                *self.drill.routes(),
            ]
        )
        if self.options.tab_command is not None:
            from megatui.ui.browser_tabs import Tabs

            self.tabs = Tabs(self.options.tab_command, self.options.max_tabs)
            self.tabs.install(app)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_startup(self, _app: web.Application) -> None:
        self.hub.start()
        self.metrics.boot.observe(self.monitor.snapshot)
        self._unsubscribe = self.monitor.subscribe(self.metrics.boot.observe)
        if self.recovery is not None:
            self.recovery.start()

    async def _on_shutdown(self, _app: web.Application) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self.recovery is not None:
            await self.recovery.stop()
        self.hub.close()
        self.drill.close()
        if self.tabs is not None:
            await self.tabs.close()
        if self._doctor_task is not None:
            self._doctor_task.cancel()

    @web.middleware
    async def _shed(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """A flood is answered with 503, not queued: streams (events, pod logs, the
        browser terminal) have their own limits and do not count here."""
        if request.path in ("/api/v1/events", "/ws") or _is_log_stream(request.path):
            return await handler(request)
        if self._in_flight >= self.options.max_requests:
            return error(503, "busy: too many requests at once")
        self._in_flight += 1
        try:
            return await handler(request)
        finally:
            self._in_flight -= 1

    # --- handlers ------------------------------------------------------------------

    async def healthz(self, _request: web.Request) -> web.Response:
        snap = self.monitor.snapshot
        return json_response(
            {
                "ok": True,
                "version": __version__,
                "host": snap.host,
                "readonly": self.options.readonly,
                "actions": self.actions_allowed,
                "event_viewers": self.hub.viewers,
            }
        )

    @property
    def actions_allowed(self) -> bool:
        return self.options.allow_actions and not self.options.readonly

    async def status(self, _request: web.Request) -> web.Response:
        return json_response(encode(self.monitor.snapshot, self.monitor.retry_in))

    async def timeline(self, _request: web.Request) -> web.Response:
        return json_response({"events": [encode_event(e) for e in self.monitor.events]})

    async def metrics_page(self, _request: web.Request) -> web.Response:
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})

    def _known(self, name: str) -> bool:
        return self.monitor.snapshot.vm(name) is not None

    async def vm_action(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        action = request.match_info["action"]
        calls = {
            "start": self.monitor.start_vm,
            "stop": self.monitor.stop_vm,
            "suspend": self.monitor.suspend_vm,
        }
        call = calls.get(action)
        if call is None:
            return error(404, f"unknown action '{action}' (start, stop or suspend)")
        if self.options.readonly:
            return error(403, f"read-only: refusing to {action} VMs (the server runs --readonly)")
        if not self.options.allow_actions:
            return error(403, f"refusing to {action} VMs: the server runs without --allow-actions")
        if not self._known(name):
            return error(404, f"unknown VM '{name}'")
        try:
            note = await call(name)
        except ActionError as exc:
            return error(409, str(exc).splitlines()[0] if str(exc) else "action failed")
        # `note`: what the backend says starting meant (Orchard: "recreated from its
        # spec"), for an attached viewer to show as a local one does; null otherwise.
        return json_response({"ok": True, "vm": name, "action": action, "note": note}, 202)

    async def vm_details(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not self._known(name):
            return error(404, f"unknown VM '{name}'")
        try:
            details = await self.monitor.vm_details(name)
        except ActionError as exc:
            return error(502, str(exc))
        return json_response(details)

    async def vm_log(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if not self._known(name):
            return error(404, f"unknown VM '{name}'")
        text = request.query.get("lines", "50")
        if not text.isdigit() or not 0 < int(text) <= 5000:
            return error(400, "lines: expected a number from 1 to 5000")
        lines = await self.monitor.read_log_tail(name, int(text))
        return json_response({"vm": name, "lines": lines})

    async def recovery_report(self, _request: web.Request) -> web.Response:
        if self.recovery is None:
            return json_response({"readonly": self.options.readonly, "vms": {}})
        return json_response(self.recovery.report())

    async def doctor(self, _request: web.Request) -> web.Response:
        if self._doctor is None:
            return error(501, "doctor is not available on this server")
        # One run at a time: concurrent callers share the run in progress.
        if self._doctor_task is None or self._doctor_task.done():
            self._doctor_task = asyncio.create_task(self._run_doctor(self._doctor))
        return json_response(await asyncio.shield(self._doctor_task))

    async def _run_doctor(self, runner: DoctorRunner) -> dict[str, object]:
        results, document = await runner()
        self.metrics.doctor_run = DoctorRun(
            at=time.time(), checks=tuple((r.name, r.status.value) for r in results)
        )
        return document


def _is_log_stream(path: str) -> bool:
    return path.startswith("/api/v1/pods/") and path.endswith("/logs")


def tab_command(socket_path: Path) -> tuple[str, ...]:
    """What a browser tab runs: the attach client on the server's private socket."""
    return (sys.executable, "-m", "megatui", "attach", f"unix:{socket_path}")
