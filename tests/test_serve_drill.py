"""Drill-down through `megatui serve`: pod events, Kubernetes objects and pod logs
reach an attached RemoteMonitor (and its TUI) as they reach a local Monitor."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from cluster_fixtures import kube_monitor, kube_monitor_fixture, lab_cluster_fixture  # noqa: F401
from serve_fixtures import TOKEN, Served, serve, until

from megatui.api import ActionError
from megatui.config import load_settings
from megatui.lab.cluster import LabCluster
from megatui.monitor import Monitor
from megatui.serve.client import RemoteMonitor, Target
from megatui.sources.kube_logs import LogBuffer, LogLine

REPO = "argocd-repo-server-6c46b7867b-2x59w"
SERVER = "argocd-server-7b67dbdff8-2xzs9"


@pytest.fixture
async def served(monitor: Monitor) -> AsyncIterator[Served]:
    async with serve(token=TOKEN, monitor=monitor) as s:
        yield s


@pytest.fixture
async def remote(served: Served) -> AsyncIterator[RemoteMonitor]:
    viewer = RemoteMonitor(Target.parse(served.url, TOKEN))
    await viewer.start()
    try:
        yield viewer
    finally:
        await viewer.stop()


async def refused(call: object) -> ActionError:
    assert asyncio.iscoroutine(call)
    with pytest.raises(ActionError) as caught:
        await call
    return caught.value


async def test_pod_events_and_objects_as_the_local_monitor_has_them(
    monitor: Monitor, remote: RemoteMonitor, lab: LabCluster
) -> None:
    pod = await remote.kube_object("pod", "argocd", REPO)
    assert pod == await monitor.kube_object("pod", "argocd", REPO)
    uid = pod["metadata"]["uid"]
    local = monitor.pod_events("argocd", REPO, uid)
    assert remote.pod_events("argocd", REPO, uid) == []  # asked for; the answer redraws
    await until(lambda: bool(remote.pod_events("argocd", REPO, uid)), what="the pod's events")
    got = remote.pod_events("argocd", REPO, uid)
    assert sorted(e.reason for e in got) == ["BackOff", "Started", "Unhealthy"]
    assert [(e.key, e.reason, e.count, e.message) for e in got] == [
        (e.key, e.reason, e.count, e.message) for e in local
    ]
    assert [e.last for e in got] == [None if e.last is None else int(e.last) for e in local]
    assert remote.events_problem() is None

    app = await remote.kube_object("application", "argocd", "helm-guestbook")
    assert app["kind"] == "Application" and app["status"]["sync"]["status"] == "OutOfSync"
    node_name = monitor.snapshot.nodes[0].name
    node = await remote.kube_object("node", "", node_name)
    assert node == await monitor.kube_object("node", "", node_name)

    gone = await refused(remote.kube_object("pod", "argocd", "ghost"))
    local_gone = await refused(monitor.kube_object("pod", "argocd", "ghost"))
    assert str(gone) == str(local_gone) == 'pods "ghost" not found (404)'
    assert gone.status == 404
    with pytest.raises(ValueError, match="unknown kind"):
        await remote.kube_object("secret", "argocd", "x")


async def test_forbidden_events_are_the_same_one_line(lab: LabCluster, tmp_path: Path) -> None:
    lab.api.forbid("events")  # before the watch starts: its first list is refused
    async with kube_monitor(lab, tmp_path) as mon:
        await until(lambda: mon.events_problem() is not None, 20, "the watch to be refused")
        async with serve(token=TOKEN, monitor=mon) as s:
            viewer = RemoteMonitor(Target.parse(s.url, TOKEN))
            await viewer.start()
            try:
                assert viewer.pod_events("argocd", REPO) == []
                await until(lambda: viewer.events_problem() is not None, what="the problem")
                assert viewer.events_problem() == mon.events_problem()
                assert 'cannot list resource "events"' in (viewer.events_problem() or "")
            finally:
                await viewer.stop()


async def test_logs_of_a_crash_looping_pod_with_previous_and_refusals(
    monitor: Monitor, remote: RemoteMonitor, lab: LabCluster
) -> None:
    async def read(target: object, container: str, *, previous: bool = False) -> list[LogLine]:
        buffer = LogBuffer()
        assert isinstance(target, (Monitor, RemoteMonitor))
        async with asyncio.timeout(20):
            await target.follow_pod_logs(
                "argocd", REPO, container, buffer, lambda _l: None, previous=previous
            )
        return list(buffer.lines)

    lines = await read(remote, "argocd-repo-server")
    assert lines and "level=fatal" in lines[-1].text and lines[-1].stamp
    assert lines == await read(monitor, "argocd-repo-server")
    previous = await read(remote, "argocd-repo-server", previous=True)
    assert previous == await read(monitor, "argocd-repo-server", previous=True)
    assert "level=fatal" in previous[-1].text

    error = await refused(read(remote, "copyutil", previous=True))
    assert str(error) == f'previous terminated container "copyutil" in pod "{REPO}" not found'
    assert error.status == 400
    absent = await refused(read(remote, "nope"))
    assert str(absent) == str(await refused(read(monitor, "nope")))
    assert "\n" not in str(absent) and absent.status == 400

    lab.api.forbid("pods/log")
    forbidden = await refused(read(remote, "argocd-repo-server"))
    assert 'cannot get resource "pods/log"' in str(forbidden) and forbidden.status == 403


async def test_a_followed_log_resumes_after_a_drop_without_duplicates(
    served: Served, remote: RemoteMonitor, lab: LabCluster
) -> None:
    buffer = LogBuffer()
    batches: list[list[LogLine]] = []
    container = "argocd-server"
    follow = asyncio.create_task(
        remote.follow_pod_logs("argocd", SERVER, container, buffer, batches.append)
    )
    try:
        await until(lambda: len(buffer.lines) == 5, 20, "the tail")
        lab.api.ext.logs.write("argocd", SERVER, container, "live line 1")
        await until(lambda: buffer.lines[-1].text == "live line 1", 20, "a live line")
        assert served.server.drill.opened == 1
        served.server.drill.close()  # the link breaks
        await until(lambda: served.server.drill.opened == 2, 20, "the viewer to reconnect")
        lab.api.ext.logs.write("argocd", SERVER, container, "live line 2")
        await until(lambda: buffer.lines[-1].text == "live line 2", 20, "the next line")
        texts = [line.text for line in buffer.lines]
        assert len(texts) == 7 and len(set(texts)) == 7, texts
        assert [line.text for batch in batches for line in batch] == texts
        assert not follow.done()
    finally:
        follow.cancel()
        await asyncio.gather(follow, return_exceptions=True)
    # The viewer went: the server stops reading the API server's stream too.
    await until(lambda: served.server.drill.streams == 0, 10, "the server's stream to end")


async def test_the_log_stream_is_ndjson_with_its_refusal_as_the_status(served: Served) -> None:
    path = f"/api/v1/pods/argocd/{REPO}/logs"
    async with served.session(Authorization=f"Bearer {TOKEN}") as session:
        async with session.get(path, params={"container": "argocd-repo-server"}) as reply:
            assert reply.status == 200
            assert reply.headers["Content-Type"].startswith("application/x-ndjson")
            docs = [json.loads(line) for line in (await reply.text()).splitlines()]
        assert docs[-1] == {"end": True}
        assert all(set(d) == {"stamp", "text"} for d in docs[:-1]) and len(docs) > 1
        query = {"container": "copyutil", "previous": "true"}
        async with session.get(path, params=query) as reply:
            assert reply.status == 400
            body = await reply.json()
        assert body["status"] == 400 and "copyutil" in body["error"]
        async with session.get(path) as reply:
            assert reply.status == 400 and (await reply.json())["error"] == "container: required"
        async with session.get("/api/v1/objects/pod/argocd") as reply:
            assert reply.status == 404  # a pod needs its namespace


async def test_the_new_routes_need_the_token() -> None:
    routes = [
        "/api/v1/pods/argocd/p/events",
        "/api/v1/pods/argocd/p/logs?container=c",
        "/api/v1/objects/pod/argocd/p",
        "/api/v1/objects/node/n",
    ]
    async with serve(token=TOKEN) as s:
        async with aiohttp.ClientSession(s.url) as session:
            for route in routes:
                async with session.get(route) as reply:
                    assert reply.status == 401, route
        authorized = s.session(Authorization=f"Bearer {TOKEN}")
        async with authorized as session, session.get(routes[0]) as reply:
            assert reply.status == 200 and (await reply.json())["events"] == []
    # On a loopback bind no token, but the Host must name the loopback.
    async with serve() as s, s.session(Host="evil.example") as session:
        for route in routes:
            async with session.get(route) as reply:
                assert reply.status == 403, route


async def test_the_attached_tui_opens_the_pod_detail_and_its_logs(
    served: Served, tmp_path: Path
) -> None:
    from ui_fakes import screen_text
    from ui_fakes import until as ui_until

    from megatui.ui.app import MegatuiApp
    from megatui.ui.logs import LogsScreen
    from megatui.ui.pod_detail import PodDetailScreen
    from megatui.ui.table import KeyedTable

    viewer = RemoteMonitor(Target.parse(served.url, TOKEN))
    (tmp_path / "viewer.toml").write_text("")
    app = MegatuiApp(viewer, load_settings(tmp_path / "viewer.toml", environ={}))
    app.animation_level = "none"
    async with app.run_test(size=(160, 48)) as pilot:
        table = app.query_one("#pod-table", KeyedTable)
        await ui_until(pilot, lambda: f"argocd/{REPO}" in table.keys, "the pods")
        table.focus()
        table.select_key(f"argocd/{REPO}")
        await pilot.press("d")
        await ui_until(pilot, lambda: isinstance(app.screen, PodDetailScreen), "the detail")
        detail = app.screen
        assert isinstance(detail, PodDetailScreen)
        await ui_until(pilot, lambda: detail.obj is not None, "the pod object")
        await ui_until(
            pilot,
            lambda: "Started container argocd-repo-server" in screen_text(app),
            "the pod's events",  # a Normal event: only the detail's events table has it
        )
        assert "Readiness probe failed: HTTP probe failed" in screen_text(app)
        assert "not available in an attached viewer" not in screen_text(app)
        await pilot.press("l")
        await ui_until(pilot, lambda: isinstance(app.screen, LogsScreen), "the logs")
        logs = app.screen
        assert isinstance(logs, LogsScreen)
        await ui_until(pilot, lambda: "level=fatal" in logs.view.text, "the crash's log")
        await pilot.press("p")
        await ui_until(pilot, lambda: logs.state == "previous run", "previous")
        await ui_until(pilot, lambda: "level=fatal" in logs.view.text, "the previous log")
        await pilot.press("c")  # the init container has no previous run: the API's line
        await ui_until(pilot, lambda: logs.error is not None, "the API's refusal")
        assert logs.error == f'previous terminated container "copyutil" in pod "{REPO}" not found'
        await pilot.press("escape", "escape")
        await ui_until(pilot, lambda: not isinstance(app.screen, PodDetailScreen), "closed")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json\n", "the server sent a log line that is not JSON"),
        (b"[1]\n", "the server sent a log line that is not an object"),
        (b'{"stamp": 5, "text": "x"}\n', "the server sent a log line without its stamp and text"),
        (b'{"stamp": "yesterday", "text": "x"}\n', "a bad stamp: 'yesterday'"),
        (b'{"what": 1}\n', "the server sent a log line of an unknown kind"),
        (b'{"error": "nope", "status": 403}\n', "nope"),
    ],
)
async def test_what_the_server_sends_is_shape_checked(body: bytes, message: str) -> None:
    from aiohttp import web

    from megatui.serve import remote_logs

    async def logs(_request: web.Request) -> web.Response:
        good = b'{"keepalive": true}\n{"stamp": "2026-12-04T10:00:00.5Z", "text": "a\\u001b[2J"}\n'
        return web.Response(body=good + body, content_type="application/x-ndjson")

    app = web.Application()
    app.router.add_get("/api/v1/pods/ns/p/logs", logs)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    buffer = LogBuffer()
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as session:
            with pytest.raises(ActionError, match=message):
                await remote_logs.follow(session, "ns", "p", "c", buffer, lambda _l: None)
    finally:
        await runner.cleanup()
    # The line before the bad one was kept, its escape made inert.
    assert [line.text for line in buffer.lines] == ["a\u241b[2J"]
