"""TCP and unix-socket forwards over the host connection that survive reconnects.

Each forward is a local listener (a loopback port, or a unix socket in the
transport's private directory); every connection it accepts opens a channel over
the connection that is current at that moment, so a forward made before a drop
keeps working after the reconnect, and while the host is down a connection through
it fails at once with the host's line (`forward_error`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import asyncssh

from megatui.text import one_line

Opener = Callable[[asyncssh.SSHClientConnection], Awaitable[tuple[Any, Any]]]


class ForwardHost(Protocol):
    """What the forwards need of the transport."""

    @property
    def label(self) -> str: ...

    @property
    def closed(self) -> bool: ...

    def current_connection(self) -> asyncssh.SSHClientConnection | None:
        """The live connection; None while down."""
        ...

    def lost_message(self) -> str: ...

    async def expand(self, path: str, *, timeout: float = 10.0) -> str: ...

    def private_dir(self) -> Path: ...


@dataclass
class _Forward:
    """A local listener whose every accepted connection opens a channel over the
    transport's CURRENT connection, so it keeps working across reconnects."""

    description: str
    local: str
    server: asyncio.AbstractServer | None = None
    #: Connection tasks and the streams that end them when closed.
    pipes: dict[asyncio.Task[Any], list[Any]] = field(default_factory=dict)
    last_error: str | None = None
    connections: int = 0


class Forwards:
    """The transport's forwards, by what they reach; `close()` ends them all."""

    def __init__(self, host: ForwardHost, *, connect_timeout: float) -> None:
        self._host = host
        self._connect_timeout = connect_timeout
        self._forwards: dict[str, _Forward] = {}

    async def tcp(self, remote_host: str, remote_port: int) -> int:
        """A 127.0.0.1 port here that reaches remote_host:remote_port as the host sees it.

        Any local user can connect to a loopback port. Used only for the Kubernetes API
        (a kubeconfig's server must be a URL): the API server authenticates every
        request with the client certificate or token, which live in the kubeconfig
        copy readable by this user alone, so the port gives nobody else anything. A
        service without its own authentication (a `tcp://` Docker daemon) goes through
        `tcp_private` instead."""
        key = f"tcp:{remote_host}:{remote_port}"
        existing = self._forwards.get(key)
        if existing is not None:
            return int(existing.local)
        forward = _Forward(description=f"{remote_host}:{remote_port}", local="")
        opener = self._tcp_opener(forward, remote_host, remote_port)
        forward.server = await asyncio.start_server(
            lambda r, w: self._accept(forward, opener, r, w), "127.0.0.1", 0
        )
        forward.local = str(forward.server.sockets[0].getsockname()[1])
        self._forwards[key] = forward
        return int(forward.local)

    async def tcp_private(self, remote_host: str, remote_port: int) -> str:
        """A unix socket here, usable by this user only (it is in `private_dir`), that
        reaches remote_host:remote_port as the host sees it."""
        key = f"tcp-private:{remote_host}:{remote_port}"
        existing = self._forwards.get(key)
        if existing is not None:
            return existing.local
        local = self._socket_path()
        forward = _Forward(description=f"{remote_host}:{remote_port}", local=local)
        opener = self._tcp_opener(forward, remote_host, remote_port)
        await self._listen(key, forward, opener)
        return local

    def _tcp_opener(self, forward: _Forward, remote_host: str, remote_port: int) -> Opener:
        async def opener(conn: asyncssh.SSHClientConnection) -> tuple[Any, Any]:
            try:
                return await conn.open_connection(remote_host, remote_port)
            except asyncssh.ChannelOpenError as exc:
                raise ConnectionRefusedError(
                    errno.ECONNREFUSED,
                    f"{forward.description} on {self._host.label}: {one_line(exc.reason)}",
                ) from None

        return opener

    async def unix(self, remote_path: str | Sequence[str]) -> str:
        """A unix socket path here (in a private directory) that reaches a socket on
        the host. Given several paths, each new connection uses the first that
        accepts (Docker Desktop moves its socket), starting with the last that did."""
        order = [remote_path] if isinstance(remote_path, str) else list(remote_path)
        if not order:
            raise ValueError("no remote socket path")
        key = "unix:" + "\0".join(order)
        existing = self._forwards.get(key)
        if existing is not None:
            return existing.local
        local = self._socket_path()
        forward = _Forward(description=order[0], local=local)

        async def opener(conn: asyncssh.SSHClientConnection) -> tuple[Any, Any]:
            errors = []
            for path in list(order):
                try:
                    pair = await conn.open_unix_connection(await self._host.expand(path))
                except asyncssh.ChannelOpenError as exc:
                    errors.append(f"{path}: {one_line(exc.reason)}")
                    continue
                if order[0] != path:  # sticky: try the one that answered first next time
                    order.remove(path)
                    order.insert(0, path)
                forward.description = path
                return pair
            raise ConnectionRefusedError(
                errno.ECONNREFUSED,
                f"no socket answers on {self._host.label}: " + "; ".join(errors),
            )

        await self._listen(key, forward, opener)
        return local

    def _socket_path(self) -> str:
        return str(self._host.private_dir() / f"fwd{len(self._forwards)}.sock")

    async def _listen(self, key: str, forward: _Forward, opener: Opener) -> None:
        forward.server = await asyncio.start_unix_server(
            lambda r, w: self._accept(forward, opener, r, w), path=forward.local
        )
        os.chmod(forward.local, 0o600)
        self._forwards[key] = forward

    def error(self, local: str | int) -> str | None:
        """Why the last connection through the forward at `local` failed, if it did."""
        for forward in self._forwards.values():
            if forward.local == str(local):
                return forward.last_error
        return None

    async def close(self) -> None:
        for forward in self._forwards.values():
            await _close_forward(forward)
        self._forwards.clear()

    async def _accept(
        self,
        forward: _Forward,
        opener: Opener,
        local_reader: asyncio.StreamReader,
        local_writer: asyncio.StreamWriter,
    ) -> None:
        # Registered so that close() can end this by closing its streams: cancelling
        # a start_server callback task makes asyncio log the cancellation as an error.
        task = asyncio.current_task()
        streams: list[Any] = [local_writer]
        if task is not None:
            forward.pipes[task] = streams
        try:
            await self._open_and_splice(forward, opener, local_reader, local_writer, streams)
        except asyncio.CancelledError:
            # Only the loop's own shutdown cancels this (close() ends it by closing its
            # streams). Not re-raised: Python 3.11's start_server callback reports a
            # cancelled handler as an error, a traceback on the user's terminal.
            pass
        finally:
            for stream in streams:
                stream.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                async with asyncio.timeout(2.0):
                    await local_writer.wait_closed()
            if task is not None:
                forward.pipes.pop(task, None)

    async def _open_and_splice(
        self,
        forward: _Forward,
        opener: Opener,
        local_reader: asyncio.StreamReader,
        local_writer: asyncio.StreamWriter,
        streams: list[Any],
    ) -> None:
        conn = self._host.current_connection()
        if conn is None or self._host.closed:
            forward.last_error = self._host.lost_message()
            return
        try:
            async with asyncio.timeout(self._connect_timeout):
                remote_reader, remote_writer = await opener(conn)
        except (asyncssh.Error, OSError, TimeoutError) as exc:
            if self._host.current_connection() is not conn:
                forward.last_error = self._host.lost_message()
            elif isinstance(exc, OSError) and exc.strerror:
                forward.last_error = exc.strerror
            else:
                forward.last_error = (
                    f"{forward.description} on {self._host.label}: "
                    f"{one_line(str(exc)) or type(exc).__name__}"
                )
            return
        streams.append(remote_writer)
        if self._host.closed:
            return
        forward.last_error = None
        forward.connections += 1
        await _splice(local_reader, local_writer, remote_reader, remote_writer)


async def _close_forward(forward: _Forward) -> None:
    if forward.server is not None:
        forward.server.close()
    for streams in list(forward.pipes.values()):
        for stream in streams:
            stream.close()
    tasks = list(forward.pipes)
    if tasks:
        _done, stuck = await asyncio.wait(tasks, timeout=3.0)
        for task in stuck:
            task.cancel()
    if forward.server is not None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2.0):
                await forward.server.wait_closed()


async def _pump(reader: Any, writer: Any) -> None:
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()


async def _splice(
    local_reader: asyncio.StreamReader,
    local_writer: asyncio.StreamWriter,
    remote_reader: Any,
    remote_writer: Any,
) -> None:
    """Copy both ways until both sides are done or either side fails."""
    up = asyncio.ensure_future(_pump(local_reader, remote_writer))
    down = asyncio.ensure_future(_pump(remote_reader, local_writer))
    try:
        pending: set[asyncio.Future[None]] = {up, down}
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(not t.cancelled() and t.exception() is not None for t in done):
                break
    finally:
        for t in (up, down):
            t.cancel()
        for t in (up, down):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
