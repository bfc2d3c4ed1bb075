"""The TUI in a browser: textual-serve's page and terminal socket, on our server.

textual-serve's own server runs one process per browser tab with the app's full
command line on its splash, and leaves those processes behind when it stops
(docs/facts/browser-and-metrics.md). Here each tab runs `megatui attach` against this server,
the page shows only a title, tabs are counted and bounded, and every tab process is
stopped (quit, then killed) when its socket closes or the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shlex
from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
import textual_serve
from aiohttp import WSMsgType, web
from textual_serve.app_service import AppService
from textual_serve.download_manager import DownloadManager

log = logging.getLogger(__name__)

TITLE = "megatui"
QUIT_GRACE = 3.0


def _to_int(text: str, default: int, low: int = 1, high: int = 1000) -> int:
    return max(low, min(high, int(text))) if text.isdigit() else default


class Tabs:
    """The browser routes (/, /ws, /static) and the tab processes behind them."""

    def __init__(self, command: tuple[str, ...], max_tabs: int) -> None:
        # exec: the shell textual-serve starts is replaced by the app, so a signal
        # to the process reaches the app itself.
        self.command = "exec " + shlex.join(command)
        self.max_tabs = max_tabs
        self.services: set[AppService] = set()
        self.downloads = DownloadManager()
        base = Path(textual_serve.__file__).parent
        self.templates = base / "templates"
        self.statics = base / "static"

    def install(self, app: web.Application) -> None:
        aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(self.templates))
        app.add_routes(
            [
                web.get("/", self.index),
                web.get("/ws", self.websocket),
                web.static("/static", self.statics, name="static"),
            ]
        )

    async def index(self, request: web.Request) -> web.Response:
        # URLs relative to the address the browser used, not to the bind address.
        scheme = "wss" if request.secure else "ws"
        context: dict[str, Any] = {
            "font_size": _to_int(request.query.get("fontsize", "16"), 16, 6, 64),
            "app_websocket_url": f"{scheme}://{request.host}/ws",
            "config": {"static": {"url": "/static/"}},
            "application": {"name": TITLE},
            "ping_url": "",
        }
        response = aiohttp_jinja2.render_template("app_index.html", request, context)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        return response

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        if len(self.services) >= self.max_tabs:
            raise web.HTTPServiceUnavailable(text="too many browser tabs open\n")
        websocket = web.WebSocketResponse(heartbeat=15, max_msg_size=1024 * 1024)
        await websocket.prepare(request)
        width = _to_int(request.query.get("width", "80"), 80)
        height = _to_int(request.query.get("height", "24"), 24)

        async def close() -> None:
            await websocket.close()

        service = AppService(
            self.command,
            write_bytes=websocket.send_bytes,
            write_str=websocket.send_str,
            close=close,
            download_manager=self.downloads,
        )
        self.services.add(service)
        try:
            await service.start(width, height)
            await self._pump(websocket, service)
        except Exception as exc:  # one tab's failure must not touch the others
            log.warning("browser tab failed: %s", exc)
        finally:
            self.services.discard(service)
            await self._stop(service)
            await websocket.close()
        return websocket

    async def _pump(self, websocket: web.WebSocketResponse, service: AppService) -> None:
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = message.json()
            except ValueError:
                continue
            if not isinstance(envelope, list) or not envelope:
                continue
            kind = envelope[0]
            data = envelope[1] if len(envelope) > 1 else None
            if kind == "stdin" and isinstance(data, str):
                await service.send_bytes(data.encode("utf-8"))
            elif kind == "resize" and isinstance(data, dict):
                width, height = data.get("width"), data.get("height")
                if isinstance(width, int) and isinstance(height, int):
                    await service.set_terminal_size(max(1, width), max(1, height))
            elif kind == "ping":
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await service.blur()
            elif kind == "focus":
                await service.focus()

    async def _stop(self, service: AppService) -> None:
        """Ask the tab's app to quit; kill it if it has not within QUIT_GRACE."""
        process = service._process  # textual-serve keeps no public handle to it
        try:
            async with asyncio.timeout(QUIT_GRACE):
                await service.stop()
        except (TimeoutError, Exception):
            pass
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(QUIT_GRACE):
                    await process.wait()

    async def close(self) -> None:
        await asyncio.gather(*(self._stop(s) for s in list(self.services)))
        self.services.clear()
