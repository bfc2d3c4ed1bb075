"""Where commands run and connections go: this machine, or a Mac host over SSH.

Every source talks to the outside world through a `Transport`, so the same code
polls a local tart or one on a remote Mac. `LocalTransport` is the local case;
`megatui.remote` provides the single-connection SSH case with the same interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class CommandResult:
    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str


class TransportError(Exception):
    """The command or connection could not be made at all (not a non-zero exit)."""


class CommandTimeout(TransportError):
    def __init__(self, argv: Sequence[str], timeout: float) -> None:
        super().__init__(f"{argv[0] if argv else 'command'} did not finish within {timeout:g} s")
        self.argv = tuple(argv)
        self.timeout = timeout


class CommandNotFound(TransportError):
    def __init__(self, program: str) -> None:
        super().__init__(f"{program}: not found")
        self.program = program


class Transport(Protocol):
    """The operations sources need from wherever the platform lives.

    LocalTransport below and RemoteTransport (remote/connection.py) spell out each
    signature again, as a Protocol's implementations must (the duplicates scan lists
    `run` on purpose); the docstrings here are the reference."""

    @property
    def label(self) -> str:
        """ "local", or "user@mac" for a remote host."""
        ...

    @property
    def is_remote(self) -> bool: ...

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run argv to completion. On timeout or cancellation the process is killed
        and reaped before this returns or raises."""
        ...

    async def spawn_detached(self, argv: Sequence[str], *, log_path: str) -> int:
        """Start argv in its own session, output appended to log_path, so that it
        outlives megatui and the connection. Returns its pid."""
        ...

    async def open_connection(
        self, host: str, port: int, *, timeout: float
    ) -> tuple[asyncio.StreamReader | Any, asyncio.StreamWriter | Any]:
        """A TCP connection to host:port as seen from the platform's host."""
        ...

    def ssh_tunnel(self) -> Any | None:
        """An asyncssh connection to pass as `tunnel=` so that SSH logins to VMs
        originate on the platform host, or None when local."""
        ...

    async def read_file(self, path: str, *, timeout: float) -> bytes:
        """Read a file on the platform host (e.g. its kubeconfig)."""
        ...

    async def close(self) -> None: ...


async def _reap(proc: asyncio.subprocess.Process) -> None:
    """Kill the whole process group and wait for it, so nothing is left behind."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    # Shielded: a second cancellation must not leave a zombie behind.
    with contextlib.suppress(Exception):
        await asyncio.shield(proc.wait())


class LocalTransport:
    """Runs commands as child processes of megatui and connects directly."""

    label = "local"
    is_remote = False

    # Transport.run's signature, as each implementation (and RemoteTransport) spells it.
    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        full_env = None
        if env:
            full_env = {**os.environ, **env}
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                # Its own process group, so a timeout kills grandchildren too.
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise CommandNotFound(argv[0]) from exc
        except PermissionError as exc:
            raise TransportError(f"{argv[0]}: permission denied") from exc
        try:
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a
            # cancellation that races with completion (the caller would never stop).
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate()
        except TimeoutError:
            await _reap(proc)
            raise CommandTimeout(argv, timeout) from None
        except BaseException:
            await _reap(proc)
            raise
        assert proc.returncode is not None
        return CommandResult(
            argv=tuple(argv),
            exit_code=proc.returncode,
            stdout=out.decode("utf-8", "replace"),
            stderr=err.decode("utf-8", "replace"),
        )

    async def spawn_detached(self, argv: Sequence[str], *, log_path: str) -> int:
        return await asyncio.to_thread(spawn_reaped, argv, os.path.expanduser(log_path))

    async def open_connection(
        self, host: str, port: int, *, timeout: float
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with asyncio.timeout(timeout):
            return await asyncio.open_connection(host, port)

    def ssh_tunnel(self) -> None:
        return None

    async def read_file(self, path: str, *, timeout: float) -> bytes:
        async with asyncio.timeout(timeout):
            return await asyncio.to_thread(Path(path).expanduser().read_bytes)

    async def close(self) -> None:
        return None


# `sh` backgrounds the program under nohup and exits at once, so the program is
# re-parented to init: it never becomes megatui's zombie, it ignores the SIGHUP of
# a closing terminal or SSH session (tart run dies of SIGHUP, docs/facts/tart.md §6.4), and the
# same POSIX shell line works on Linux and on the Mac host. Arguments travel as
# positional parameters, never through the shell's parser.
_DETACH_SCRIPT = (
    'log=$1; shift; mkdir -p "$(dirname "$log")" && nohup "$@" >>"$log" 2>&1 </dev/null & echo $!'
)


#: Detached children still running, kept so that their Popen is not collected early.
_DETACHED: set[subprocess.Popen[bytes]] = set()


def spawn_reaped(argv: Sequence[str], log_path: str) -> int:
    """Start argv as our own child in its own session (no controlling terminal, so a
    closing terminal's SIGHUP never reaches it), output appended to log_path, and
    reap it from a thread when it exits. Going through `sh ... &` instead hands the
    program to init, and where init does not reap (a container's PID 1) every VM
    stopped left a `[tart] <defunct>` behind. It outlives megatui all the same: once
    megatui exits, init adopts it."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    except FileNotFoundError:
        raise CommandNotFound(argv[0]) from None
    except OSError as exc:
        raise TransportError(f"could not start {argv[0]}: {exc.strerror or exc}") from None
    _DETACHED.add(proc)

    def reap() -> None:
        proc.wait()
        _DETACHED.discard(proc)

    threading.Thread(target=reap, name=f"reap-{proc.pid}", daemon=True).start()
    return proc.pid


async def spawn_detached_via_sh(
    transport: Transport, argv: Sequence[str], *, log_path: str, timeout: float = 10.0
) -> int:
    result = await transport.run(
        ["/bin/sh", "-c", _DETACH_SCRIPT, "sh", log_path, *argv], timeout=timeout
    )
    pid = result.stdout.strip()
    if result.exit_code != 0 or not pid.isdigit():
        detail = result.stderr.strip().splitlines()[-1:] or ["no pid"]
        raise TransportError(f"could not start {argv[0]}: {detail[0]}")
    return int(pid)
