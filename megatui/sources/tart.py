"""The Tart source: drives the `tart` CLI through a Transport and parses its answers.

Ground truth for every string matched here is docs/facts/tart.md (Tart 2.35.0 and older
releases). Parsing follows its §3.6 advice: JSON only, keys looked up by name,
optional columns optional, `Source` told apart case-insensitively.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Literal

from megatui.keychain import KEYCHAIN_HINT, keychain_marker
from megatui.model import TartState, TartVM
from megatui.text import one_line
from megatui.transport import (
    CommandNotFound,
    CommandResult,
    CommandTimeout,
    Transport,
    TransportError,
)

#: How often `start` looks at the VM while `tart run` comes up.
START_POLL_SECONDS = 0.25

_MAX_MESSAGE = 240


class TartErrorKind(StrEnum):
    VM_NOT_FOUND = "vm-not-found"
    NOT_RUNNING = "not-running"
    ALREADY_RUNNING = "already-running"
    IS_RUNNING = "is-running"
    VM_LIMIT = "vm-limit"
    NOT_INSTALLED = "not-installed"
    TIMEOUT = "timeout"
    KEYCHAIN_LOCKED = "keychain-locked"
    USAGE = "usage"
    PARSE = "parse"
    OTHER = "other"


class TartError(Exception):
    """A failed tart call. `str()` is one line fit to show a user."""

    def __init__(self, kind: TartErrorKind, message: str, vm: str | None = None) -> None:
        super().__init__(one_line(message, _MAX_MESSAGE))
        self.kind = kind
        self.vm = vm

    @property
    def message(self) -> str:
        return str(self)


# --------------------------------------------------------------------------- parsers


def _excerpt(text: str, limit: int = 40) -> str:
    return repr(one_line(text, limit))


def _parse_error(what: str, reason: str, text: str) -> TartError:
    return TartError(
        TartErrorKind.PARSE, f"could not parse {what}: {reason} (got {_excerpt(text)})"
    )


def _int_or_none(value: object) -> int | None:
    # bool is an int subclass; a JSON true is not a size.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == value:
        return int(value)
    return None


_STATES = {s.value: s for s in TartState}


def _load_json(text: str, what: str, expected: Literal["array", "object"]) -> Any:
    """`text` as a JSON array or object, else the TartError that names `what`."""
    try:
        data = json.loads(text)
    except ValueError:
        raise _parse_error(what, "not JSON", text) from None
    if not isinstance(data, list if expected == "array" else dict):
        raise _parse_error(what, f"expected a JSON {expected}", text)
    return data


def parse_list_json(text: str) -> list[TartVM]:
    """Local VMs from `tart list --format json`, in tart's order.

    OCI cache entries (Source "oci" before 2.11.0, "OCI" after) are left out: they are
    images, not VMs, and each appears twice. Every field but Name is optional, across
    the column history of docs/facts/tart.md §3.5."""
    data: list[Any] = _load_json(text, "tart list output", "array")
    vms: list[TartVM] = []
    for entry in data:
        if not isinstance(entry, dict):
            raise _parse_error("tart list output", "an entry is not an object", text)
        source = entry.get("Source")
        if isinstance(source, str) and source.lower() == "oci":
            continue
        name = entry.get("Name")
        if not isinstance(name, str) or not name:
            raise _parse_error("tart list output", "an entry has no Name", text)
        running = entry.get("Running")
        raw_state = entry.get("State")
        state: TartState
        if isinstance(raw_state, str) and raw_state in _STATES:
            state = _STATES[raw_state]
        elif raw_state is not None and not isinstance(running, bool):
            raise _parse_error("tart list output", f"unknown State for VM {name!r}", text)
        elif running is True:
            # Before 1.8.0 there was no State; a newer, unknown State falls back too.
            state = TartState.RUNNING
        else:
            state = TartState.STOPPED
        accessed = entry.get("Accessed")
        vms.append(
            TartVM(
                name=name,
                state=state,
                disk_gb=_int_or_none(entry.get("Disk")),
                size_gb=_int_or_none(entry.get("Size")),
                accessed=accessed if isinstance(accessed, str) else None,
            )
        )
    return vms


def parse_ip(stdout: str) -> str | None:
    """The IPv4 address `tart ip` printed; None when it printed nothing."""
    text = stdout.strip()
    if not text:
        return None
    first = text.splitlines()[0].strip()
    try:
        return str(ipaddress.IPv4Address(first))
    except ValueError:
        raise _parse_error("tart ip output", "not an IPv4 address", text) from None


def parse_get_json(text: str) -> dict[str, object]:
    """`tart get --format json` as a dict. Note `Size` is a string there (tart #1241)."""
    data: dict[Any, Any] = _load_json(text, "tart get output", "object")
    return {str(k): v for k, v in data.items()}


# --------------------------------------------------------------------------- failures

_DOUBLED_NOT_RUNNING = re.compile(r'VM "VM "(?P<vm>.*)" is not running" is not running')
_DOES_NOT_EXIST = re.compile(r'the specified VM "(?P<vm>.*)" does not exist')
_NOT_RUNNING = re.compile(r'VM "(?P<vm>.*)" is not running')
_ALREADY_RUNNING = re.compile(r'VM "(?P<vm>.*)" is already running')
_IS_RUNNING = re.compile(r'VM "(?P<vm>.*)" is running')
_LIMIT = re.compile(r"The number of VMs exceeds the system limit\s*(?P<hint>.*)")
_RENAME_MISSING = re.compile(r"failed to rename a non-existent local VM: (?P<vm>.*)")
_NOT_INSTALLED = re.compile(
    r"(command not found|No such file or directory|not found)", re.IGNORECASE
)


def _subcommand(argv: Sequence[str]) -> str:
    for arg in argv[1:]:
        if not arg.startswith("-"):
            return arg
    return argv[1] if len(argv) > 1 else ""


def _label(argv: Sequence[str]) -> str:
    sub = _subcommand(argv)
    return f"tart {sub}" if sub else "tart"


def _not_installed(path: str) -> TartError:
    return TartError(
        TartErrorKind.NOT_INSTALLED,
        f'tart not installed (looked for "{path}"; set --tart, MEGATUI_TART or tart.path)',
    )


def _strip_error(line: str) -> str:
    return line[len("Error: ") :] if line.startswith("Error: ") else line


def classify_failure(result: CommandResult, vm: str | None) -> TartError:
    """Turn a failed tart call into a TartError (docs/facts/tart.md §1, §5, §6, §7).

    Messages are matched with and without ArgumentParser's "Error: " prefix: a
    RuntimeError thrown from validate() gains it (and exit 1 instead of 2)."""
    text = result.stderr.strip() or result.stdout.strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    program = result.argv[0] if result.argv else "tart"
    label = _label(result.argv)

    def found(pattern: re.Pattern[str]) -> re.Match[str] | None:
        for ln in lines:
            m = pattern.search(ln)
            if m:
                return m
        return None

    def named(m: re.Match[str]) -> str:
        return m.group("vm") if m.groupdict().get("vm") is not None else (vm or "?")

    if keychain_marker(text) is not None:
        culprit = next((_strip_error(ln) for ln in lines if keychain_marker(ln)), text)
        return TartError(
            TartErrorKind.KEYCHAIN_LOCKED, f"{label} failed: {culprit} ({KEYCHAIN_HINT})", vm
        )
    if result.exit_code == 64 or any(ln.startswith("Usage: tart") for ln in lines):
        first = next((_strip_error(ln) for ln in lines if ln.startswith("Error: ")), None)
        detail = first or (lines[0] if lines else f"exit code {result.exit_code}")
        return TartError(TartErrorKind.USAGE, f"{label} rejected its arguments: {detail}", vm)
    if m := found(_DOUBLED_NOT_RUNNING):
        return TartError(TartErrorKind.NOT_RUNNING, f'VM "{m["vm"]}" is not running', m["vm"])
    if m := found(_DOES_NOT_EXIST):
        return TartError(TartErrorKind.VM_NOT_FOUND, f'VM "{m["vm"]}" does not exist', m["vm"])
    if m := found(_RENAME_MISSING):
        return TartError(TartErrorKind.VM_NOT_FOUND, f'VM "{m["vm"]}" does not exist', m["vm"])
    if m := found(_ALREADY_RUNNING):
        return TartError(
            TartErrorKind.ALREADY_RUNNING, f'VM "{m["vm"]}" is already running', m["vm"]
        )
    if m := found(_NOT_RUNNING):
        return TartError(TartErrorKind.NOT_RUNNING, f'VM "{m["vm"]}" is not running', m["vm"])
    if m := found(_IS_RUNNING):
        return TartError(
            TartErrorKind.IS_RUNNING, f'VM "{m["vm"]}" is running; stop it first', m["vm"]
        )
    if m := found(_LIMIT):
        hint = m["hint"].strip().removeprefix("(").removesuffix(")").strip()
        detail = hint or "another VM must stop first"
        return TartError(
            TartErrorKind.VM_LIMIT,
            f"Apple allows at most 2 running macOS VMs per host: {detail}",
            vm,
        )
    # A shell that cannot find tart (127), e.g. over SSH or under nohup.
    if result.exit_code == 127 or (
        lines and lines[0].startswith("nohup:") and _NOT_INSTALLED.search(lines[0])
    ):
        return _not_installed(program)
    if lines:
        # tart prints one message; with several lines, prefer an "Error:" one.
        chosen = next((ln for ln in lines if ln.startswith("Error: ")), lines[-1])
        return TartError(TartErrorKind.OTHER, f"{label}: {_strip_error(chosen)}", vm)
    return TartError(TartErrorKind.OTHER, f"{label} failed with exit code {result.exit_code}", vm)


# --------------------------------------------------------------------------- the CLI


class TartCLI:
    """Async calls to one `tart` executable on the platform host."""

    def __init__(self, transport: Transport, path: str = "tart", timeout: float = 10.0) -> None:
        self.transport = transport
        self.path = path
        self.timeout = timeout

    async def _run(self, *args: str, timeout: float | None = None) -> CommandResult:
        limit = self.timeout if timeout is None else timeout
        argv = [self.path, *args]
        try:
            return await self.transport.run(argv, timeout=limit)
        except CommandTimeout:
            raise TartError(
                TartErrorKind.TIMEOUT, f"{_label(argv)} did not answer within {limit:g} s"
            ) from None
        except CommandNotFound:
            raise _not_installed(self.path) from None
        except TransportError as exc:
            raise TartError(TartErrorKind.OTHER, f"{_label(argv)}: {exc}") from None

    async def _checked(self, *args: str, vm: str | None = None) -> CommandResult:
        result = await self._run(*args)
        if result.exit_code != 0:
            raise classify_failure(result, vm)
        return result

    async def list_vms(self) -> list[TartVM]:
        result = await self._checked("list", "--format", "json")
        return parse_list_json(result.stdout)

    async def ip(self, name: str) -> str | None:
        """The VM's address, or None while tart has none. A stopped VM can still
        have one (a stale DHCP lease, docs/facts/tart.md §5.5): check its state too."""
        result = await self._run("ip", name)
        if result.exit_code == 1 and "no IP address found" in result.stderr:
            return None
        if result.exit_code != 0:
            raise classify_failure(result, name)
        return parse_ip(result.stdout)

    async def get(self, name: str) -> dict[str, object]:
        result = await self._checked("get", name, "--format", "json", vm=name)
        return parse_get_json(result.stdout)

    async def version(self) -> str:
        result = await self._checked("--version")
        text = result.stdout.strip()
        if not text:
            raise TartError(TartErrorKind.PARSE, "tart --version printed nothing")
        return text.splitlines()[0].strip()

    async def stop(self, name: str, timeout: int = 30) -> None:
        """`tart stop`: SIGINT, then SIGKILL after `timeout` seconds (docs/facts/tart.md §7.1)."""
        result = await self._run(
            "stop", name, "--timeout", str(timeout), timeout=self.timeout + timeout
        )
        if result.exit_code != 0:
            raise classify_failure(result, name)

    async def start(self, name: str, log_path: str) -> None:
        """Start `tart run --no-graphics NAME` detached, so the VM outlives megatui.

        Returns once `tart list` shows the VM running, or when `timeout` has passed
        with the runner still alive (the monitor keeps watching). If the runner dies
        first, its log tells why and that becomes the TartError."""
        vms = await self.list_vms()
        current = next((v for v in vms if v.name == name), None)
        if current is None:
            raise TartError(TartErrorKind.VM_NOT_FOUND, f'VM "{name}" does not exist', name)
        if current.state == TartState.RUNNING:
            raise TartError(TartErrorKind.ALREADY_RUNNING, f'VM "{name}" is already running', name)
        # The log is appended to across runs: only what this run adds explains it.
        offset = len(await self._read_log(log_path))
        argv = [self.path, "run", "--no-graphics", name]
        try:
            pid = await self.transport.spawn_detached(argv, log_path=log_path)
        except CommandTimeout:
            raise TartError(
                TartErrorKind.TIMEOUT, f"starting tart run {name} did not finish in time", name
            ) from None
        except CommandNotFound:
            raise _not_installed(self.path) from None
        except TransportError as exc:
            raise TartError(TartErrorKind.OTHER, f"could not start tart run: {exc}", name) from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            if any(v.name == name and v.state == TartState.RUNNING for v in await self.list_vms()):
                return
            if not await self._alive(pid):
                tail = (await self._read_log(log_path))[offset:].decode("utf-8", "replace")
                if not tail.strip():
                    raise TartError(
                        TartErrorKind.OTHER,
                        f"tart run {name} exited before the VM started (nothing in {log_path})",
                        name,
                    )
                if tail.strip().splitlines()[-1].strip() == "Stopping VM...":
                    # SIGINT (a `tart stop`, or Ctrl-C) ended it while it came up.
                    raise TartError(
                        TartErrorKind.OTHER, f'VM "{name}" was stopped while starting', name
                    )
                failure = CommandResult(tuple(argv), 1, "", tail[-4000:])
                raise classify_failure(failure, name)
            if loop.time() >= deadline:
                return
            await asyncio.sleep(START_POLL_SECONDS)

    async def _read_log(self, log_path: str) -> bytes:
        try:
            return await self.transport.read_file(log_path, timeout=self.timeout)
        except Exception:
            # Missing or unreadable (the error type depends on the transport): the
            # log only refines the message, so go on without it.
            return b""

    async def _alive(self, pid: int) -> bool:
        """Whether the runner still lives. `ps` rather than `kill -0`: a dead detached
        process stays a zombie where init does not reap (containers), and `kill -0`
        succeeds on zombies."""
        try:
            try:
                result = await self.transport.run(
                    ["ps", "-o", "stat=", "-p", str(pid)], timeout=self.timeout
                )
            except CommandNotFound:
                result = await self.transport.run(["kill", "-0", str(pid)], timeout=self.timeout)
                return result.exit_code == 0
        except TransportError:
            return True  # cannot tell: let the deadline decide
        stat = result.stdout.strip()
        return result.exit_code == 0 and bool(stat) and not stat.startswith("Z")
