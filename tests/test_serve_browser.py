"""The browser control room in a real headless Chromium, driven over the DevTools
protocol (a WebSocket, with aiohttp): the page is refused without the token, loads
with it, shows the VM table, and a key moves the cursor. Each tab is a `megatui
attach` process against the server, stopped when the server stops."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from serve_fixtures import TOKEN, require_binary, serve, until

ANSI = re.compile(rb"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[@-_]")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,900",
    "--remote-debugging-port=0",
)


class DevTools:
    """A minimal DevTools protocol client for one page."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data and data["id"] in self._pending:
                self._pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)
                self.changed.set()

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        await self.ws.send_json({"id": ident, "method": method, "params": params})
        async with asyncio.timeout(30):
            reply = await future
        assert "error" not in reply, reply
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def wait_event(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60
    ) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                self.changed.clear()
                await self.changed.wait()

    def screen_text(self) -> bytes:
        """What the app sent to the page's terminal socket so far, escapes removed."""
        out = []
        for event in self.events:
            if event["method"] == "Network.webSocketFrameReceived":
                response = event["params"]["response"]
                payload = response["payloadData"]
                out.append(
                    base64.b64decode(payload) if response["opcode"] == 2 else payload.encode()
                )
        return ANSI.sub(b"", b"".join(out))

    async def key(self, key: str) -> None:
        code = f"Key{key.upper()}"
        vk = ord(key.upper())
        for kind in ("keyDown", "keyUp"):
            params: dict[str, Any] = {"type": kind, "key": key, "code": code}
            params["windowsVirtualKeyCode"] = vk
            if kind == "keyDown":
                params["text"] = key
            await self.call("Input.dispatchKeyEvent", **params)

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()


@asynccontextmanager
async def chromium(tmp_path: Path) -> AsyncIterator[DevTools]:
    binary = require_binary("chromium", "/usr/bin/chromium")
    profile = tmp_path / "profile"
    proc = await asyncio.create_subprocess_exec(
        binary,
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,  # its helpers share its process group: stop them all
    )
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    tools: DevTools | None = None
    try:
        port_file = profile / "DevToolsActivePort"
        await until(port_file.exists, 60, "Chromium's DevTools port")
        await until(lambda: bool(port_file.read_text().strip()), 10, "the port number")
        port = port_file.read_text().split()[0]
        async with session.get(f"http://127.0.0.1:{port}/json/list") as reply:
            pages = [t for t in await reply.json() if t["type"] == "page"]
        ws = await session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        tools = DevTools(ws)
        await tools.call("Network.enable")
        await tools.call("Page.enable")
        yield tools
    finally:
        if tools is not None:
            await tools.close()
        await session.close()
        with_group = proc.pid
        try:
            os.killpg(with_group, signal.SIGTERM)
            async with asyncio.timeout(15):
                await proc.wait()
        except (TimeoutError, ProcessLookupError):
            with_group_alive = proc.returncode is None
            if with_group_alive:
                os.killpg(with_group, signal.SIGKILL)
                await proc.wait()


def document_status(tools: DevTools, after: int) -> Callable[[dict[str, Any]], bool]:
    def done(event: dict[str, Any]) -> bool:
        return (
            tools.events.index(event) >= after
            and event["method"] == "Network.responseReceived"
            and event["params"]["type"] == "Document"
        )

    return done


async def test_browser_tab_is_an_attach_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_binary("chromium", "/usr/bin/chromium")
    monkeypatch.setenv("MEGATUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("MEGATUI_DATA_DIR", str(tmp_path / "data"))
    sock = tmp_path / "api.sock"
    command = (sys.executable, "-m", "megatui", "attach", f"unix:{sock}")
    pids: list[int] = []
    async with (
        serve(token=TOKEN, tab_command=command, socket_path=sock) as s,
        chromium(tmp_path) as tools,
    ):
        # Without the token: refused, and the page shows nothing of the app.
        mark = len(tools.events)
        await tools.call("Page.navigate", url=s.url + "/")
        refused = await tools.wait_event(document_status(tools, mark))
        assert refused["params"]["response"]["status"] == 401
        assert s.server.tabs.services == set()

        mark = len(tools.events)
        await tools.call("Page.navigate", url=f"{s.url}/?token={TOKEN}")
        loaded = await tools.wait_event(document_status(tools, mark))
        assert loaded["params"]["response"]["status"] == 200
        assert "?token" not in loaded["params"]["response"]["url"]
        await until(lambda: len(s.server.tabs.services) == 1, 60, "the tab's attach process")
        pids = [svc._process.pid for svc in s.server.tabs.services if svc._process]
        # The VM table, drawn by the attach process from the server's snapshot.
        await until(lambda: b"dev-ready" in tools.screen_text(), 60, "the VM table")
        assert b"db-ssh" in tools.screen_text()

        await tools.call(
            "Runtime.evaluate", expression="document.querySelector('textarea').focus()"
        )
        first = await open_details(tools, s.monitor)
        await tools.key("q")  # close the details
        await tools.key("j")  # cursor down
        second = await open_details(tools, s.monitor)
        assert first != second, "the key did not move the cursor"
        names = [vm.name for vm in s.monitor.snapshot.vms]
        assert names.index(second) == names.index(first) + 1
    # The server stopped: its tab processes are gone, not orphaned.
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def open_details(tools: DevTools, monitor: Any) -> str:
    """Press d (VM details) and return the VM the app asked the server about."""
    before = len(monitor.calls)
    await tools.key("d")
    await until(
        lambda: any(c[0] == "vm_details" for c in monitor.calls[before:]), 30, "a details call"
    )
    return str(next(c[1] for c in monitor.calls[before:] if c[0] == "vm_details"))
