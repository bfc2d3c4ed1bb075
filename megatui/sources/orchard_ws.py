"""A controller WebSocket port-forward as an asyncio transport (docs/facts/orchard.md §5.3).

The controller carries raw TCP bytes in binary messages (text ones for clients
without a User-Agent, which this client never is; text is still accepted) and
pings every 30 s, which aiohttp answers on its own. On top of the transport sit
both an asyncio stream pair and asyncssh's `tunnel=` protocol, so one code path
serves `open_port_forward()` and SSH through the controller.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp

#: Flow control: the writer is paused above HIGH queued bytes, resumed below LOW.
_HIGH_WATER = 1 << 20
_LOW_WATER = 1 << 18


class WebSocketTransport(asyncio.Transport):
    """Bytes written go out as binary messages, in order; messages received go to
    the protocol's data_received. Closing either side closes both."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        protocol: asyncio.Protocol,
        peer: tuple[str, int],
    ) -> None:
        super().__init__()
        self._ws = ws
        self._protocol = protocol
        self._peer = peer
        self._outbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queued = 0
        self._closing = False
        self._reading = asyncio.Event()
        self._reading.set()
        self._lost = False
        self._paused = False
        self._closer: asyncio.Future[bool] | None = None
        protocol.connection_made(self)
        self._tasks = (
            asyncio.create_task(self._receive()),
            asyncio.create_task(self._send()),
        )

    # ------------------------------------------------------------ asyncio.Transport

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        # No peername: asyncssh would take a VM name there for an IP address when
        # matching known_hosts. The (VM, port) pair has a key of its own.
        return {"orchard_vm": self._peer}.get(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or not data:
            return
        chunk = bytes(data)
        self._queued += len(chunk)
        self._outbox.put_nowait(chunk)
        if not self._paused and self._queued > _HIGH_WATER:
            self._paused = True
            self._protocol.pause_writing()

    def write_eof(self) -> None:
        self.close()  # a WebSocket has no half-close

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return self._queued

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def is_reading(self) -> bool:
        return self._reading.is_set()

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._outbox.put_nowait(None)  # flush what is queued, then close

    def abort(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        self._closer = asyncio.ensure_future(self._ws.close())
        self._connection_lost(None)

    # ------------------------------------------------------------ pumps

    async def _receive(self) -> None:
        error: Exception | None = None
        try:
            async for msg in self._ws:
                await self._reading.wait()
                if msg.type == aiohttp.WSMsgType.BINARY:
                    self._protocol.data_received(msg.data)
                elif msg.type == aiohttp.WSMsgType.TEXT:
                    self._protocol.data_received(msg.data.encode("utf-8"))
                elif msg.type == aiohttp.WSMsgType.ERROR:
                    error = ConnectionResetError(f"port-forward failed: {msg.data}")
                    break
        except (aiohttp.ClientError, OSError) as exc:
            error = ConnectionResetError(f"port-forward failed: {exc}")
        if error is None and not self._lost:
            with contextlib.suppress(Exception):
                self._protocol.eof_received()
        self._closing = True
        self._outbox.put_nowait(None)
        self._connection_lost(error)

    async def _send(self) -> None:
        try:
            while (chunk := await self._outbox.get()) is not None:
                self._queued -= len(chunk)
                await self._ws.send_bytes(chunk)
                if self._paused and self._queued < _LOW_WATER:
                    self._paused = False
                    self._protocol.resume_writing()
        except (aiohttp.ClientError, OSError, RuntimeError):
            pass  # the receiving side reports the loss
        finally:
            with contextlib.suppress(Exception):
                await self._ws.close()

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        asyncio.get_running_loop().call_soon(self._protocol.connection_lost, exc)

    async def wait_closed(self) -> None:
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task


def open_streams(
    ws: aiohttp.ClientWebSocketResponse, peer: tuple[str, int]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**16, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = WebSocketTransport(ws, protocol, peer)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer
