"""Tart as a VM backend: the same behaviour the monitor had with TartCLI (log
paths, `-J` with --host, a configured address winning over `tart ip`), the
subcommands TartCLI has no method for, and failures as one-line BackendErrors."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from lab_fixtures import TartLabFactory, fast_vm, tart_lab_fixture  # noqa: F401

from megatui.backends.base import BackendError, BackendErrorKind, NewVMSpec, SSHCommand
from megatui.backends.tart import TartBackend
from megatui.config import Settings, VMOverride, state_dir
from megatui.model import BackendVM, TartState, TartVM
from megatui.sources.tart import TartCLI
from megatui.transport import CommandResult, LocalTransport


class _RemoteStub:
    """A `--host` transport that answers from a script and records argv."""

    label = "me@mac"
    is_remote = True

    def __init__(self, answers: Mapping[str, CommandResult] | None = None) -> None:
        self.answers = dict(answers or {})
        self.calls: list[tuple[str, ...]] = []
        self.read: list[str] = []

    async def run(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        self.calls.append(tuple(argv))
        return self.answers.get(argv[1], CommandResult(tuple(argv), 0, "", ""))

    async def read_file(self, path: str, *, timeout: float) -> bytes:
        self.read.append(path)
        return b"one\ntwo\nthree\n"

    async def spawn_detached(self, argv: Sequence[str], *, log_path: str) -> int:
        raise AssertionError("not used")

    async def open_connection(self, host: str, port: int, *, timeout: float) -> Any:
        raise AssertionError("not used")

    def ssh_tunnel(self) -> None:
        return None

    async def close(self) -> None:
        return None


def _settings(**kw: Any) -> Settings:
    return Settings(**kw)


async def test_remote_wiring_matches_the_monitor() -> None:
    stub = _RemoteStub()
    settings = _settings(
        host="me@mac", tart_path="/opt/tart", vms={"pinned": VMOverride(host="10.0.0.7")}
    )
    backend = TartBackend.from_settings(settings, stub)  # type: ignore[arg-type]
    assert backend.label == "me@mac"
    assert backend.log_path("a") == "~/.megatui/logs/a.log"
    assert await backend.log_tail("a", 2) == ["two", "three"]
    assert stub.read == ["~/.megatui/logs/a.log"]
    assert backend.ssh_command("a", "192.168.64.3", 22) == SSHCommand(
        ("-J", "me@mac"), "192.168.64.3"
    )
    # A configured address wins over tart's, for the probe and the user's ssh alike.
    assert await backend.ip("pinned") == "10.0.0.7" and stub.calls == []
    assert backend.ssh_command("pinned", None, 22).destination == "10.0.0.7"
    route = backend.ssh_route("pinned", "192.168.64.9", 2222)
    assert route is not None and (route.host, route.port, route.reach) == ("10.0.0.7", 2222, stub)
    assert backend.ssh_route("a", None, 22) is None


async def test_local_wiring_matches_the_monitor() -> None:
    backend = TartBackend.from_settings(_settings(host="me@mac"), LocalTransport())
    assert backend.label == "local" and backend.jump_host is None
    assert backend.log_path("a") == str(state_dir() / "logs" / "a.log")
    assert backend.ssh_command("a", "192.168.64.3", 22) == SSHCommand((), "192.168.64.3")
    assert await backend.log_tail("never-started") == []


async def test_create_and_delete_argv_and_refusals() -> None:
    stub = _RemoteStub()
    backend = TartBackend(TartCLI(stub, "tart"))  # type: ignore[arg-type]
    await backend.create(NewVMSpec("n", "ghcr.io/x/y:1", cpu=4, memory_mib=8192, disk_gb=80))
    assert stub.calls == [
        ("tart", "clone", "ghcr.io/x/y:1", "n"),
        ("tart", "set", "n", "--cpu", "4", "--memory", "8192", "--disk-size", "80"),
    ]
    with pytest.raises(BackendError) as caught:
        await backend.create(NewVMSpec("n", "img", restart_policy="OnFailure"))
    assert caught.value.kind is BackendErrorKind.UNSUPPORTED
    stub.answers["delete"] = CommandResult(
        ("tart", "delete", "x"), 2, "", 'Error: the specified VM "x" does not exist\n'
    )
    with pytest.raises(BackendError) as caught:
        await backend.delete("x")
    assert (caught.value.kind, str(caught.value)) == (
        BackendErrorKind.NOT_FOUND,
        'VM "x" does not exist',
    )


def test_backend_vm_from_and_to_tart() -> None:
    vm = TartVM("a", TartState.SUSPENDED, disk_gb=50, size_gb=20)
    back = BackendVM.from_tart(vm)
    assert (back.name, back.state, back.backend, back.stage, back.worker) == (
        "a",
        TartState.SUSPENDED,
        "tart",
        None,
        None,
    )
    assert back.as_tart() == vm


async def test_suspend_and_delete_on_the_lab(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([fast_vm("a", initial="running"), fast_vm("b")])
    backend = TartBackend(TartCLI(LocalTransport(), str(lab.tart_path), 5.0))
    with pytest.raises(BackendError) as caught:
        await backend.suspend("b")
    assert caught.value.kind is BackendErrorKind.NOT_RUNNING, caught.value
    await backend.delete("b")
    assert [v.name for v in await backend.list_vms()] == ["a"]
    with pytest.raises(BackendError) as caught:
        await backend.create(NewVMSpec("c", "ghcr.io/cirruslabs/macos-tahoe-base:latest"))
    assert "\n" not in str(caught.value) and caught.value.kind is not None
    # `tart suspend` would power "a" off (it was not run --suspendable): refused, kept.
    with pytest.raises(BackendError) as caught:
        await backend.suspend("a")
    assert caught.value.kind is BackendErrorKind.UNSUPPORTED
    assert "stop it instead" in str(caught.value)
    assert (await backend.list_vms())[0].state is TartState.RUNNING
    await backend.stop("a")
    async with asyncio.timeout(10):
        while True:  # tart itself is polled: nothing to wait on but its answer
            if (await backend.list_vms())[0].state is TartState.STOPPED:
                break
            await asyncio.sleep(0.05)
