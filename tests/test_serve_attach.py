"""`megatui attach`'s RemoteMonitor against an in-process server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from serve_fixtures import TOKEN, serve, until

from megatui.api import ActionError
from megatui.model import Phase, Snapshot
from megatui.serve.client import AttachError, RemoteMonitor, Target, probe


async def wait_snap(monitor: RemoteMonitor, ok: Callable[[Snapshot], bool]) -> Snapshot:
    changed = asyncio.Event()
    unsubscribe = monitor.subscribe(lambda _s: changed.set())
    try:
        async with asyncio.timeout(10):
            while not ok(monitor.snapshot):
                changed.clear()
                await changed.wait()
    finally:
        unsubscribe()
    return monitor.snapshot


async def test_attached_viewer_follows_the_servers_monitor() -> None:
    async with serve(token=TOKEN) as s:
        target = Target.parse(s.url, TOKEN)
        health = await probe(target)
        assert health["actions"] is False
        remote = RemoteMonitor(target, actions=False)
        await remote.start()
        try:
            snap = await wait_snap(remote, lambda x: bool(x.vms))
            assert [v.name for v in snap.vms] == [v.name for v in s.monitor.snapshot.vms]
            assert snap.readonly, "viewers are read-only without --allow-actions"
            assert [e.message for e in remote.events] == [e.message for e in s.monitor.events]
            assert remote.retry_in("docker") is None
            # A change on the server reaches the viewer.
            base = s.monitor.snapshot
            vms = tuple(
                replace(vm, phase=Phase.STOPPING) if vm.name == "dev-ready" else vm
                for vm in base.vms
            )
            s.monitor.push(replace(base, vms=vms, generated_at=base.generated_at + 5))
            snap = await wait_snap(remote, lambda x: x.vm("dev-ready").phase is Phase.STOPPING)  # type: ignore[union-attr]
            with pytest.raises(ActionError, match="read-only"):
                await remote.start_vm("dev-ready")
            assert ("start_vm", "dev-ready") not in s.monitor.calls
            details = await remote.vm_details("dev-ready")
            assert details["OS"] == "darwin"
            s.monitor.logs["dev-ready"] = ["a", "b", "c"]
            assert await remote.read_log_tail("dev-ready", 2) == ["b", "c"]
            with pytest.raises(ActionError, match="unknown VM 'ghost'"):
                await remote.vm_details("ghost")
            with pytest.raises(ActionError):
                remote.ssh_argv("dev-ready")
        finally:
            await remote.stop()


async def test_actions_go_through_the_server_when_allowed(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    async with serve(allow_actions=True, socket_path=sock) as s:
        remote = RemoteMonitor(Target.parse(f"unix:{sock}"), actions=True)
        await remote.start()
        try:
            await wait_snap(remote, lambda x: bool(x.vms))
            assert not remote.snapshot.readonly
            await remote.stop_vm("dev-ready")
            assert s.monitor.calls[-1] == ("stop_vm", "dev-ready")
            # The backend's note reaches the attached viewer as it reaches a local one.
            assert await remote.start_vm("dev-ready") is None
            s.monitor.start_note = "stopped VM recreated from its spec"
            assert await remote.start_vm("dev-ready") == "stopped VM recreated from its spec"
            s.monitor.errors["start_vm"] = ActionError("VM 'dev-ready' is already running")
            with pytest.raises(ActionError, match="already running"):
                await remote.start_vm("dev-ready")
        finally:
            await remote.stop()


async def test_a_lost_server_shows_as_a_failing_source_then_recovers() -> None:
    async with serve() as s:
        target = Target.parse(s.url)
        remote = RemoteMonitor(target)
        await remote.start()
        try:
            await wait_snap(remote, lambda x: bool(x.vms))
            # Cut the stream: every viewer is dropped as if the server went away.
            s.server.hub.close()
            down = await wait_snap(
                remote, lambda x: "server" in x.sources and not x.sources["server"].ok
            )
            assert down.vms, "the last known state stays on screen"
            s.server.hub.start()
            await until(lambda: remote.connected.is_set(), what="the viewer to reconnect")
            await wait_snap(remote, lambda x: "server" not in x.sources)
        finally:
            await remote.stop()


async def test_probe_explains_what_is_wrong() -> None:
    async with serve(token=TOKEN) as s:
        with pytest.raises(AttachError, match="refused the token") as caught:
            await probe(Target.parse(s.url, "wrong-token-wrong-token"))
        assert caught.value.code == 2
        url = s.url
    with pytest.raises(AttachError, match="cannot reach"):
        await probe(Target.parse(url))
    with pytest.raises(AttachError, match="not a server URL"):
        Target.parse("ftp://example.com")


def test_the_token_in_the_url_is_used_and_kept_out_of_the_base() -> None:
    target = Target.parse(f"http://10.0.0.5:8090/?token={TOKEN}")
    assert target.token == TOKEN
    assert target.base == "http://10.0.0.5:8090"


async def test_many_viewers_share_one_monitor() -> None:
    async with serve() as s:
        subscribers = s.monitor.subscriber_count  # the event hub and the boot timer
        viewers = [RemoteMonitor(Target.parse(s.url)) for _ in range(5)]
        for viewer in viewers:
            await viewer.start()
        try:
            for viewer in viewers:
                await wait_snap(viewer, lambda x: bool(x.vms))
            assert s.monitor.subscriber_count == subscribers
            assert s.server.hub.viewers == 5
            base = s.monitor.snapshot
            s.monitor.push(replace(base, vms=base.vms[:1], generated_at=base.generated_at + 1))
            for viewer in viewers:
                await wait_snap(viewer, lambda x: len(x.vms) == 1)
        finally:
            for viewer in viewers:
                await viewer.stop()
        await until(lambda: s.server.hub.viewers == 0, what="the viewers to leave")
