"""An in-process `megatui serve` (ControlServer) around a FakeMonitor, for API tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from ui_fakes import FakeMonitor, sample_events, sample_snapshot

from megatui.serve import auth
from megatui.serve.server import ControlServer, DoctorRunner, Options
from megatui.serve.sse import EventHub

TOKEN = "t0ken-for-tests-0123456789abcdef"


def require_binary(name: str, path: str | None = None) -> str:
    """The binary's path; skip without it, but fail under CI (it must be installed)."""
    found = path if path and os.path.exists(path) else shutil.which(name)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required under CI=true (.ci/run installs it)")
        pytest.skip(f"{name} is not installed")
    return found


@dataclass
class Served:
    server: ControlServer
    monitor: Any  # a FakeMonitor, or a real Monitor
    url: str
    socket_path: Path | None

    def session(self, **headers: str) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            self.url, headers=headers, timeout=aiohttp.ClientTimeout(total=20)
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def serve(
    *,
    token: str | None = None,
    allow_actions: bool = False,
    readonly: bool = False,
    monitor: Any = None,
    doctor: DoctorRunner | None = None,
    hub: Callable[[FakeMonitor], EventHub] | None = None,
    max_requests: int = 64,
    tab_command: tuple[str, ...] | None = None,
    socket_path: Path | None = None,
) -> AsyncIterator[Served]:
    """A server on 127.0.0.1; `token` makes it behave as on a non-loopback bind."""
    fake = monitor or FakeMonitor(sample_snapshot(), sample_events())
    policy = auth.Policy(token=token, loopback=token is None)
    options = Options(
        allow_actions=allow_actions,
        readonly=readonly,
        max_requests=max_requests,
        tab_command=tab_command,
    )
    server = ControlServer(
        fake, options, policy, doctor=doctor, hub=hub(fake) if hub is not None else None
    )
    runner = web.AppRunner(server.make_app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    if socket_path is not None:
        await web.UnixSite(runner, str(socket_path)).start()
    try:
        yield Served(server, fake, f"http://127.0.0.1:{port}", socket_path)
    finally:
        await runner.cleanup()


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    """Wait (polling the loop) until condition() holds; fail after `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            # Server-side counters have no event to wait on: poll them with a deadline.
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"timed out after {timeout:g} s waiting for {what or condition}")


async def read_sse(reply: aiohttp.ClientResponse, count: int) -> list[tuple[str, str, str]]:
    from megatui.serve.client import sse_messages

    out: list[tuple[str, str, str]] = []
    async with asyncio.timeout(10):
        async for message in sse_messages(reply.content):
            out.append(message)
            if len(out) >= count:
                break
    return out
