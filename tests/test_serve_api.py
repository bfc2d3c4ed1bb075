"""The served API: auth, status, SSE with resume and slow viewers, actions, doctor,
metrics and shedding, against an in-process server around a FakeMonitor."""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import replace

import aiohttp
import pytest
from serve_fixtures import TOKEN, read_sse, serve, until
from ui_fakes import sample_snapshot

from megatui.doctor import CheckResult, Status
from megatui.model import VM, Event, Phase, Snapshot, TartState
from megatui.serve.sse import EventHub
from megatui.snapshot_json import decode

ROUTES = [
    ("GET", "/"),
    ("GET", "/api/v1/healthz"),
    ("GET", "/api/v1/status"),
    ("GET", "/api/v1/timeline"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/doctor"),
    ("GET", "/api/v1/vms/dev-ready"),
    ("GET", "/api/v1/vms/dev-ready/log"),
    ("POST", "/api/v1/vms/dev-ready/start"),
    ("POST", "/api/v1/vms/dev-ready/stop"),
    ("GET", "/metrics"),
    ("GET", "/static/js/textual.js"),
    ("GET", "/ws"),
    ("GET", "/no/such/page"),
]


async def test_without_the_token_every_route_is_401_and_nothing_else() -> None:
    async with serve(token=TOKEN, allow_actions=True, tab_command=("true",)) as s:
        for wrong in ({}, {"Authorization": "Bearer nope"}, {"X-Megatui-Token": TOKEN[:-1]}):
            async with s.session(**wrong) as session:
                for method, path in ROUTES:
                    async with session.request(method, path, allow_redirects=False) as reply:
                        body = await reply.read()
                        assert reply.status == 401, (method, path, wrong)
                        assert body == b"401: unauthorized\n"
                        assert "Set-Cookie" not in reply.headers
        assert s.monitor.calls == []


async def test_the_token_in_a_header_opens_the_api() -> None:
    async with serve(token=TOKEN) as s:
        for header in ({"Authorization": f"Bearer {TOKEN}"}, {"X-Megatui-Token": TOKEN}):
            async with s.session(**header) as session, session.get("/api/v1/status") as reply:
                assert reply.status == 200
                snap, _ = decode(await reply.json())
                assert [vm.name for vm in snap.vms] == [vm.name for vm in s.monitor.snapshot.vms]


async def test_browser_gets_the_token_once_then_an_httponly_strict_cookie() -> None:
    async with serve(token=TOKEN, tab_command=("true",)) as s:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(s.url, cookie_jar=jar) as browser:
            async with browser.get(f"/?token={TOKEN}&fontsize=14", allow_redirects=False) as r:
                assert r.status == 302
                # The token leaves the address bar; other parameters stay.
                assert r.headers["Location"] == "/?fontsize=14"
                cookie = r.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
                assert f"megatui_token={TOKEN}" in cookie
            async with browser.get("/") as r:
                assert r.status == 200
                page = await r.text()
                assert "/ws" in page and "megatui" in page
                # The splash must not show a command line (textual-serve's default).
                assert "python" not in page and "attach" not in page
            async with browser.get("/api/v1/status") as r:
                assert r.status == 200
            # The cookie alone does not change anything: POST needs the header.
            async with browser.post("/api/v1/vms/dev-ready/start") as r:
                assert r.status == 403
        assert s.monitor.calls == []


async def test_post_needs_a_matching_origin() -> None:
    async with serve(token=TOKEN, allow_actions=True) as s:
        async with s.session(**{"X-Megatui-Token": TOKEN}) as session:
            evil = {"Origin": "http://evil.example"}
            async with session.post("/api/v1/vms/dev-ready/stop", headers=evil) as r:
                assert r.status == 403
                assert "cross-origin" in await r.text()
            assert s.monitor.calls == []
            own = {"Origin": s.url}
            async with session.post("/api/v1/vms/dev-ready/stop", headers=own) as r:
                assert r.status == 202, await r.text()
        assert s.monitor.calls == [("stop_vm", "dev-ready")]


async def test_loopback_server_refuses_foreign_host_names() -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 is refused."""
    async with serve() as s:
        async with s.session(Host="evil.example") as session, session.get("/api/v1/status") as r:
            assert r.status == 403
        async with s.session() as session, session.get("/api/v1/healthz") as r:
            assert r.status == 200
            health = await r.json()
            assert health["ok"] is True and health["actions"] is False


async def test_actions_refused_without_allow_actions_and_when_readonly() -> None:
    async with (
        serve() as s,
        s.session() as session,
        session.post("/api/v1/vms/dev-ready/start") as r,
    ):
        assert r.status == 403
        assert "--allow-actions" in (await r.json())["error"]
    async with serve(allow_actions=True, readonly=True) as s, s.session() as session:
        async with session.post("/api/v1/vms/dev-ready/start") as r:
            assert r.status == 403
            assert "read-only" in (await r.json())["error"]
        assert s.monitor.calls == []


async def test_unknown_vm_is_404_with_one_line() -> None:
    async with serve(allow_actions=True) as s, s.session() as session:
        for method, path in (
            ("POST", "/api/v1/vms/ghost/start"),
            ("GET", "/api/v1/vms/ghost"),
            ("GET", "/api/v1/vms/ghost/log"),
        ):
            async with session.request(method, path) as r:
                assert r.status == 404
                error = (await r.json())["error"]
                assert error == "unknown VM 'ghost'"
        async with session.post("/api/v1/vms/dev-ready/reboot") as r:
            assert r.status == 404
        assert s.monitor.calls == []


async def test_start_returns_the_backends_note() -> None:
    async with serve(allow_actions=True) as s, s.session() as session:
        async with session.post("/api/v1/vms/dev-ready/start") as r:
            assert r.status == 202
            assert await r.json() == {
                "ok": True,
                "vm": "dev-ready",
                "action": "start",
                "note": None,
            }
        s.monitor.start_note = "stopped VM recreated from its spec"
        async with session.post("/api/v1/vms/dev-ready/start") as r:
            assert r.status == 202
            assert (await r.json())["note"] == "stopped VM recreated from its spec"


def test_a_note_from_the_server_is_one_line_or_none() -> None:
    from megatui.serve.client import _note

    reply = json.dumps({"ok": True, "note": "recreated\nfrom  its spec"})
    assert _note(reply) == "recreated from its spec"
    assert _note('{"ok": true}') is None  # a server from before notes
    assert _note('{"note": 3}') is None and _note("<html>") is None and _note("[]") is None
    assert len(_note(json.dumps({"note": "x" * 1000})) or "") == 300


async def test_action_failure_is_409_with_the_monitors_line() -> None:
    from megatui.api import ActionError

    async with serve(allow_actions=True) as s, s.session() as session:
        s.monitor.errors["start_vm"] = ActionError("VM 'dev-ready' is already running")
        async with session.post("/api/v1/vms/dev-ready/start") as r:
            assert r.status == 409
            assert (await r.json())["error"] == "VM 'dev-ready' is already running"


def _with_vm_phase(snap: Snapshot, name: str, phase: Phase, at: float) -> Snapshot:
    vms = tuple(
        replace(vm, phase=phase, phase_since=at) if vm.name == name else vm for vm in snap.vms
    )
    return replace(snap, vms=vms, generated_at=at)


async def test_events_stream_snapshots_and_timeline_and_resume() -> None:
    async with serve() as s, s.session() as session:
        base = s.monitor.snapshot
        async with session.get("/api/v1/events") as reply:
            assert reply.headers["Content-Type"] == "text/event-stream"
            [(first_id, kind, data)] = await read_sse(reply, 1)
            assert kind == "snapshot"
            assert decode(json.loads(data))[0].vm("dev-ready") is not None
            events = list(s.monitor.events)
            for i in range(3):
                at = base.generated_at + 10 * (i + 1)
                events.append(Event(at, "vm", "dev-ready", f"step {i}"))
                s.monitor.push(_with_vm_phase(base, "dev-ready", Phase.STOPPING, at), events)
            got = await read_sse(reply, 6)
        kinds = [k for _, k, _ in got]
        assert kinds == ["timeline", "snapshot"] * 3
        messages = [json.loads(d)["message"] for _, k, d in got if k == "timeline"]
        assert messages == ["step 0", "step 1", "step 2"]
        after_first_step = got[1][0]
        # Reconnect having seen step 0: steps 1 and 2, then the current snapshot.
        async with session.get("/api/v1/events", headers={"Last-Event-ID": after_first_step}) as r:
            resumed = await read_sse(r, 3)
        assert [json.loads(d).get("message") for _, k, d in resumed if k == "timeline"] == [
            "step 1",
            "step 2",
        ]
        assert resumed[-1][1] == "snapshot"
        # An id from another server run: a gap, then the snapshot.
        async with session.get("/api/v1/events", headers={"Last-Event-ID": "other-5"}) as r:
            assert [k for _, k, _ in await read_sse(r, 2)] == ["gap", "snapshot"]
        assert first_id.split("-")[0] == after_first_step.split("-")[0]


async def test_a_viewer_that_never_reads_is_dropped_not_buffered() -> None:
    def hub(monitor: object) -> EventHub:
        return EventHub(monitor, queue=8, write_timeout=2.0)  # type: ignore[arg-type]

    async with serve(hub=hub) as s:
        base = s.monitor.snapshot
        # A big snapshot so the socket buffers fill quickly.
        vms = tuple(
            VM(f"vm-{i:04d}", TartState.RUNNING, Phase.READY, "10.0.0.1", 1.0, 0.0)
            for i in range(2000)
        )
        port = int(s.url.rsplit(":", 1)[1])
        raw = socket.create_connection(("127.0.0.1", port))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            raw.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            await until(lambda: s.server.hub.viewers == 1, what="the viewer to connect")
            for i in range(200):
                s.monitor.push(replace(base, vms=vms, generated_at=base.generated_at + i))
                await asyncio.sleep(0)
                if s.server.hub.viewers == 0:
                    break
            await until(lambda: s.server.hub.viewers == 0, what="the slow viewer to be dropped")
            assert s.server.hub.dropped == 1
        finally:
            raw.close()
        # Others are unaffected: a new viewer still gets the snapshot.
        async with s.session() as session, session.get("/api/v1/events") as reply:
            assert [k for _, k, _ in await read_sse(reply, 1)] == ["snapshot"]


async def test_doctor_runs_once_for_concurrent_callers_and_feeds_metrics() -> None:
    runs = 0
    release = asyncio.Event()

    async def doctor() -> tuple[list[CheckResult], dict[str, object]]:
        nonlocal runs
        runs += 1
        await release.wait()
        results = [
            CheckResult("docker.daemon", Status.PASS, "up", "", 0.1),
            CheckResult("kube.nodes", Status.FAIL, "1 NotReady", "", 0.2),
        ]
        return results, {"totals": {"pass": 1, "fail": 1}, "checks": []}

    async with serve(doctor=doctor) as s, s.session() as session:

        async def call() -> dict[str, object]:
            async with session.get("/api/v1/doctor") as r:
                assert r.status == 200
                data: dict[str, object] = await r.json()
                return data

        calls = [asyncio.create_task(call()) for _ in range(3)]
        await until(lambda: runs == 1, what="doctor to start")
        release.set()
        answers = await asyncio.gather(*calls)
        assert runs == 1 and all(a["totals"] == {"pass": 1, "fail": 1} for a in answers)
        async with session.get("/metrics") as r:
            text = await r.text()
        assert 'megatui_doctor_check{check="kube.nodes",status="fail"} 1.0' in text
        assert 'megatui_doctor_check{check="kube.nodes",status="pass"} 0.0' in text


async def test_metrics_follow_the_snapshot_with_bounded_labels() -> None:
    async with serve() as s, s.session() as session:
        async with session.get("/metrics") as r:
            assert r.status == 200
            text = await r.text()
        for vm in s.monitor.snapshot.vms:
            assert f'megatui_vm_phase{{phase="{vm.phase}",vm="{vm.name}"}} 1.0' in text
        assert 'megatui_source_up{source="docker"}' in text
        # No pod names (their hashes churn): owners only.
        for pod in s.monitor.snapshot.pods:
            if pod.name.count("-") >= 3:
                assert pod.name not in text
        assert 'owner="argocd-dex-server"' in text
        # A VM that goes away takes its series with it.
        gone = s.monitor.snapshot.vms[0].name
        s.monitor.push(replace(sample_snapshot(), vms=s.monitor.snapshot.vms[1:]))
        async with session.get("/metrics") as r:
            assert f'vm="{gone}"' not in await r.text()


async def test_boot_histograms_observe_phase_changes() -> None:
    async with serve() as s, s.session() as session:
        base = s.monitor.snapshot
        t = base.generated_at
        for phase, at in (
            (Phase.STOPPED, t),
            (Phase.STARTING, t + 1),
            (Phase.BOOTING, t + 11),
            (Phase.IP, t + 41),
            (Phase.SSH_PENDING, t + 46),
            (Phase.READY, t + 61),
        ):
            s.monitor.push(_with_vm_phase(base, "dev-ready", phase, at))
        async with session.get("/metrics") as r:
            text = await r.text()
        assert 'megatui_vm_phase_duration_seconds_count{phase="booting"} 1.0' in text
        assert 'megatui_vm_phase_duration_seconds_sum{phase="booting"} 30.0' in text
        assert "megatui_vm_time_to_ready_seconds_sum 60.0" in text


async def test_a_flood_is_shed_with_503_not_queued() -> None:
    gate = asyncio.Event()

    async def slow_doctor() -> tuple[list[CheckResult], dict[str, object]]:
        await gate.wait()
        return [], {}

    async with serve(doctor=slow_doctor, max_requests=4) as s, s.session() as session:

        async def status_of(path: str) -> int:
            async with session.get(path) as r:
                await r.read()
                return r.status

        held = [asyncio.create_task(status_of("/api/v1/doctor")) for _ in range(4)]
        await until(lambda: s.server._in_flight == 4, what="four requests in flight")
        shed = await asyncio.gather(*(status_of("/api/v1/status") for _ in range(50)))
        assert set(shed) == {503}
        gate.set()
        assert set(await asyncio.gather(*held)) == {200}
        assert await status_of("/api/v1/status") == 200


async def test_a_token_in_a_url_over_plain_http_beyond_loopback_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with serve(token=TOKEN, tab_command=("true",)) as s:
        for _ in range(3):
            async with (
                aiohttp.ClientSession(s.url) as browser,
                browser.get(f"/?token={TOKEN}", allow_redirects=False) as r,
            ):
                assert r.status == 302
    warnings = [r for r in caplog.records if "token was sent in a URL" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
