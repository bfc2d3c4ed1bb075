"""`megatui orchard-proxy VM PORT`: ssh's ProxyCommand to a VM behind an Orchard
controller. Bytes from stdin go to the VM's port through the controller's
WebSocket port-forward, and bytes from there go to stdout, so the user's own
`ssh` reaches the VM from any laptop, with no route to the Mac it runs on.

The token never appears on the command line (`ps` shows it to everyone): it is
resolved as megatui resolves it everywhere (`orchard_config.resolve`: the Orchard
CLI's contexts file, then ORCHARD_SERVICE_ACCOUNT_TOKEN). Every ending is clean:
stdin's EOF (ssh is done), the VM closing, SIGTERM, SIGHUP; a failure is one line
on stderr and exit 1, never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

if TYPE_CHECKING:  # aiohttp is imported only when the proxy runs, not by `megatui --help`
    from megatui.sources.orchard import OrchardClient

#: How long the controller may wait for the VM to run and its port to answer.
DEFAULT_WAIT = 30
_CHUNK = 1 << 16
#: After stdin's EOF, how long queued bytes may take to leave.
_FLUSH_TIMEOUT = 5.0
_PROG = "megatui orchard-proxy"


@dataclass(frozen=True)
class ProxyArgs:
    vm: str
    port: int
    url: str | None = None
    context: str | None = None
    service_account: str | None = None
    wait: int = DEFAULT_WAIT
    #: megatui's config file (`megatui --config FILE orchard-proxy ...`): its
    #: [orchard] token and account, for a token kept there rather than in the
    #: Orchard CLI's contexts file or environment.
    config: str | None = None


class ProxyFailed(Exception):
    """One line for stderr."""


def _say(text: str) -> None:
    print(f"{_PROG}: {' '.join(text.split())}", file=sys.stderr, flush=True)


async def _stdio(
    stdin: BinaryIO, stdout: BinaryIO
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_CHUNK, loop=loop)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader, loop=loop), stdin)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, stdout)
    writer = asyncio.StreamWriter(transport, protocol, None, loop)
    return reader, writer


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Until reader's EOF; then the writer is told (EOF or close)."""
    while data := await reader.read(_CHUNK):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof():
        writer.write_eof()
    else:
        writer.close()


async def bridge(client: OrchardClient, args: ProxyArgs, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Pump both ways until one side ends; raise ProxyFailed with one line."""
    from megatui.sources.orchard import OrchardError

    try:
        vm_reader, vm_writer = await client.open_port_forward(args.vm, args.port, wait=args.wait)
    except OrchardError as exc:
        raise ProxyFailed(str(exc)) from None
    in_reader, out_writer = await _stdio(stdin, stdout)
    up = asyncio.create_task(_copy(in_reader, vm_writer), name="stdin→vm")
    down = asyncio.create_task(_copy(vm_reader, out_writer), name="vm→stdout")
    try:
        done, _ = await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        if up in done and up.exception() is None:
            # ssh closed our stdin: what it sent still goes out, then we are done.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_FLUSH_TIMEOUT):
                    await vm_writer.wait_closed()
        for task in done:
            err = task.exception()
            if err is None or isinstance(err, BrokenPipeError):
                continue  # a side ended, or ssh went away (our stdout closed)
            detail = str(err) if isinstance(err, OSError) else f"{type(err).__name__}: {err}"
            raise ProxyFailed(f"{args.vm}:{args.port}: {detail}")
    finally:
        for task in (up, down):
            task.cancel()
        for task in (up, down):
            with contextlib.suppress(BaseException):
                await task
        vm_writer.close()
        with contextlib.suppress(BaseException):
            out_writer.close()


async def _main(args: ProxyArgs, stdin: BinaryIO, stdout: BinaryIO) -> int:
    from megatui.config import ConfigError, load_settings
    from megatui.sources.orchard import OrchardClient
    from megatui.sources.orchard_config import OrchardConfigError, resolve

    token = account = None
    try:
        if args.config:
            settings = load_settings(args.config, environ={})
            token, account = settings.orchard_token, settings.orchard_service_account
        config = resolve(
            url=args.url,
            context=args.context,
            service_account=args.service_account or account,
            token=token,
        )
    except (OrchardConfigError, ConfigError) as exc:
        _say(str(exc))
        return 1
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    assert current is not None
    got: list[int] = []

    def on_signal(signum: int) -> None:
        got.append(signum)
        current.cancel()

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    client = OrchardClient(config)
    try:
        await bridge(client, args, stdin, stdout)
        return 0
    except ProxyFailed as exc:
        _say(str(exc))
        return 1
    except asyncio.CancelledError:
        if got:
            return 128 + got[0]
        raise
    finally:
        with contextlib.suppress(BaseException):
            await client.close()
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run(args: ProxyArgs, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> int:
    """The subcommand's exit code."""
    if not 1 <= args.port <= 65535:
        _say(f"port {args.port} is not 1..65535")
        return 2
    try:
        return asyncio.run(_main(args, stdin or sys.stdin.buffer, stdout or sys.stdout.buffer))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the promise is one line, whatever went wrong
        _say(f"{type(exc).__name__}: {exc}")
        return 1


def add_arguments(parser: Any) -> None:
    """The subcommand's arguments (registered by megatui.cli).

    Kept here beside the code that reads them, not in cli.py; the two sets of argparse
    calls are alike in shape only."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--orchard", metavar="URL", help="the controller's URL")
    where.add_argument(
        "--orchard-context", metavar="NAME", help="a context of the Orchard CLI's contexts file"
    )
    parser.add_argument("--service-account", metavar="NAME", help="the service account's name")
    parser.add_argument(
        "--wait",
        type=int,
        default=DEFAULT_WAIT,
        metavar="S",
        help=f"how long the controller may wait for the VM (default {DEFAULT_WAIT})",
    )
    parser.add_argument("vm", metavar="VM")
    parser.add_argument("port", type=int, metavar="PORT")


def args_from(namespace: Any) -> ProxyArgs:
    return ProxyArgs(
        vm=namespace.vm,
        port=namespace.port,
        url=namespace.orchard,
        context=namespace.orchard_context,
        service_account=namespace.service_account,
        wait=max(0, namespace.wait),
        config=getattr(namespace, "config", None),
    )
