"""The lab's fake Orchard controller against docs/orchard.md and Orchard's OpenAPI
description (every exchange is validated by the `orchard_lab` fixture)."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from orchard_fixtures import (  # noqa: F401
    ADMIN,
    INVALID_ON_PURPOSE,
    advance,
    orchard_lab_fixture,
    validate_watch_line,
)

from megatui.lab.orchard import FakeOrchard, Timings, gojson
from megatui.lab.orchard.store import MSG_GONE, MSG_OFFLINE

_IMAGE = "ghcr.io/cirruslabs/macos-tahoe-base:latest"
_DEADLINE = 10.0


def _auth(user: str = ADMIN[0], token: str = ADMIN[1]) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{token}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


async def _call(
    lab: FakeOrchard,
    method: str,
    path: str,
    body: object = None,
    *,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    invalid: bool = False,
) -> tuple[int, str, bytes]:
    """(status, Content-Type, body). `invalid`: the request breaks the OpenAPI
    description on purpose, so the fixture does not hold it against the client."""
    extra = {INVALID_ON_PURPOSE: "1"} if invalid else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method,
            lab.url + path,
            data=raw if raw is not None else (json.dumps(body) if body is not None else None),
            headers={
                **(_auth() if headers is None else headers),
                "Content-Type": "application/json",
                **extra,
            },
        ) as resp,
    ):
        return resp.status, resp.headers.get("Content-Type", ""), await resp.read()


async def _create(lab: FakeOrchard, name: str, **extra: Any) -> dict[str, Any]:
    status, _ctype, body = await _call(
        lab, "POST", "/v1/vms", {"name": name, "image": _IMAGE, **extra}
    )
    assert status == 200, body
    created: dict[str, Any] = json.loads(body)
    return created


async def _vm(lab: FakeOrchard, name: str) -> dict[str, Any]:
    status, _ctype, body = await _call(lab, "GET", f"/v1/vms/{name}")
    assert status == 200, body
    vm: dict[str, Any] = json.loads(body)
    return vm


# ------------------------------------------------------------------ Go JSON


async def test_created_vm_is_go_encoded_in_field_order(orchard_lab: FakeOrchard) -> None:
    status, ctype, body = await _call(
        orchard_lab,
        "POST",
        "/v1/vms",
        {
            "name": "tahoe-base",
            "image": _IMAGE,
            "cpu": 4,
            "memory": 8192,
            "headless": True,
            "username": "admin",
            "password": "admin",
        },
    )
    assert (status, ctype) == (200, "application/json; charset=utf-8")
    text = body.decode()
    assert not text.endswith("\n") and ", " not in text and ": " not in text
    vm = json.loads(body)
    # docs/facts/orchard.md §3.1's example, key for key (uid and createdAt differ by nature).
    assert list(vm) == [
        "image", "imagePullPolicy", "cpu", "memory", "headless", "os", "arch", "runtime",
        "powerState", "localName", "tartName", "observedGeneration", "conditions", "status",
        "username", "password", "restart_policy", "restarted_at", "uid", "resources",
        "scheduled_at", "started_at", "generation", "name", "createdAt",
    ]  # fmt: skip
    assert vm["restarted_at"] == vm["scheduled_at"] == vm["started_at"] == gojson.ZERO_TIME
    assert vm["conditions"] == [{"type": "scheduled", "state": "false"}]
    assert vm["resources"] == {"org.cirruslabs.tart-vms": 1}
    assert vm["localName"] == vm["tartName"] == f"orchard-tahoe-base-{vm['uid']}-0"
    assert (vm["status"], vm["restart_policy"], vm["generation"]) == ("pending", "Never", 0)


def test_go_json_escapes_and_times() -> None:
    assert gojson.dumps({"a": "<b>&\u2028", "n": [1, 2]}) == (
        '{"a":"\\u003cb\\u003e\\u0026\\u2028","n":[1,2]}'
    )
    assert gojson.go_time(None) == "0001-01-01T00:00:00Z"
    assert gojson.go_time(1_700_000_000.5) == "2023-11-14T22:13:20.5Z"
    assert gojson.go_time(1_700_000_000.0, 120) == "2023-11-15T00:13:20+02:00"
    # omitempty drops zero values but never a time or a no-omitempty field.
    assert gojson.encode(gojson.VM_FIELDS, {}) == {
        "observedGeneration": 0,
        "restarted_at": gojson.ZERO_TIME,
        "scheduled_at": gojson.ZERO_TIME,
        "started_at": gojson.ZERO_TIME,
        "generation": 0,
        "createdAt": gojson.ZERO_TIME,
    }


async def test_not_found_is_empty_and_unknown_route_is_gin_text(orchard_lab: FakeOrchard) -> None:
    assert await _call(orchard_lab, "GET", "/v1/vms/none") == (404, "", b"")
    assert (await _call(orchard_lab, "DELETE", "/v1/vms/none"))[::2] == (404, b"")
    status, ctype, body = await _call(orchard_lab, "GET", "/v1/nope")
    assert (status, body) == (404, b"404 page not found") and ctype.startswith("text/plain")
    status, _ctype, body = await _call(orchard_lab, "GET", "/v1/vms")
    assert (status, body) == (200, b"[]")  # never null


# ------------------------------------------------------------------ auth


async def test_401_texts(orchard_lab: FakeOrchard) -> None:
    orchard_lab.add_account("viewer", "viewer-token", ("compute:read",))
    viewer = _auth("viewer", "viewer-token")
    status, _c, body = await _call(
        orchard_lab, "POST", "/v1/vms", {"name": "a", "image": _IMAGE}, headers=viewer
    )
    assert status == 401
    assert body == b'{"message":"all of the following roles must be present: compute:write"}'
    assert (await _call(orchard_lab, "GET", "/v1/vms", headers=viewer))[0] == 200
    await _create(orchard_lab, "a")
    status, _c, body = await _call(orchard_lab, "GET", "/v1/vms/a/ip", headers=viewer)
    assert status == 401
    assert json.loads(body) == {
        "message": "any of the following roles must be present: compute:write, compute:connect"
    }
    # Wrong token and no credentials: 401 with an empty body.
    assert (await _call(orchard_lab, "GET", "/v1/vms", headers=_auth("viewer", "x")))[::2] == (
        401,
        b"",
    )
    assert (await _call(orchard_lab, "GET", "/v1/vms", headers={}))[::2] == (401, b"")
    assert (await _call(orchard_lab, "GET", "/v1/", headers={}))[0] == 200  # health: no auth


# ------------------------------------------------------------------ create and update


async def test_409_412_400_verbatim(orchard_lab: FakeOrchard) -> None:
    await _create(orchard_lab, "a")
    cases: list[tuple[object, int, bytes]] = [
        ({"name": "a", "image": _IMAGE}, 409, b'{"message":"VM with this name already exists"}'),
        (
            {"name": "bad name!", "image": _IMAGE},
            412,
            b'{"message":"VM name name contains restricted characters, please only use '
            b'[A-Za-z0-9:-_.]"}',
        ),
        ({"name": "", "image": _IMAGE}, 412, b'{"message":"VM name is empty"}'),
        ({"name": "b"}, 412, b'{"message":"VM image is empty"}'),
    ]
    for body, status, answer in cases:
        assert (await _call(orchard_lab, "POST", "/v1/vms", body))[::2] == (status, answer), body
    invalid = (400, b'{"message":"invalid JSON was provided"}')
    bad_cpu = {"name": "b", "image": _IMAGE, "cpu": "four"}
    assert (await _call(orchard_lab, "POST", "/v1/vms", bad_cpu, invalid=True))[::2] == invalid
    assert (await _call(orchard_lab, "POST", "/v1/vms", raw=b"{", invalid=True))[::2] == invalid
    # Allowed odd names: the controller only warns about them in its CLI.
    await _create(orchard_lab, "Mixed_Case:1.x")


async def test_put_replaces_the_whole_spec_and_stop_is_terminal(orchard_lab: FakeOrchard) -> None:
    orchard_lab.add_worker("mini-1")
    await _create(orchard_lab, "a")
    advance(orchard_lab, 10)
    status, _c, body = await _call(orchard_lab, "PUT", "/v1/vms/a", {"powerState": "stopped"})
    assert (status, body) == (
        412,
        b'{"message":"\\"os\\", \\"arch\\" and \\"runtime\\" fields cannot be modified"}',
    )
    vm = await _vm(orchard_lab, "a")
    spec = {k: v for k, v in vm.items() if k not in ("localName", "tartName", "generation")}
    assert (await _call(orchard_lab, "PUT", "/v1/vms/a", spec))[0] == 200  # nothing changed
    assert (await _vm(orchard_lab, "a"))["generation"] == 0
    bad = await _call(
        orchard_lab, "PUT", "/v1/vms/a", {**spec, "powerState": "paused"}, invalid=True
    )
    assert bad[::2] == (412, b'{"message":"invalid \\"powerState\\" value: paused"}')
    bad = await _call(orchard_lab, "PUT", "/v1/vms/a", {**spec, "powerState": "suspended"})
    assert json.loads(bad[2])["message"] == (
        'invalid "powerState" transition: only suspendable VMs can be suspended'
    )
    status, _c, body = await _call(
        orchard_lab, "PUT", "/v1/vms/a", {**spec, "powerState": "stopped"}
    )
    assert status == 200 and json.loads(body)["generation"] == 1
    advance(orchard_lab, 1)
    vm = await _vm(orchard_lab, "a")
    # After a stop the status stays "running" (§3.5).
    assert (vm["status"], vm["status_message"], vm["powerState"]) == (
        "running",
        "Stopping VM",
        "stopped",
    )
    assert {"type": "running", "state": "false"} in vm["conditions"]
    again = await _call(orchard_lab, "PUT", "/v1/vms/a", {**spec, "powerState": "running"})
    assert json.loads(again[2]) == {
        "message": 'invalid "powerState" transition: cannot transition from a terminal power state'
    }


# ------------------------------------------------------------------ lifecycle


async def test_status_message_progression_and_timings(orchard_lab: FakeOrchard) -> None:
    orchard_lab.add_worker("mini-1")
    await _create(orchard_lab, "a", imagePullPolicy="Always")
    seen: list[tuple[str, str, float]] = []
    clock = orchard_lab.clock
    for _ in range(80):
        advance(orchard_lab, 0.5)
        vm = await _vm(orchard_lab, "a")
        entry = (vm["status"], vm.get("status_message", ""))
        if not seen or seen[-1][:2] != entry:
            seen.append((*entry, clock.monotonic()))
    steps = [(s, m) for s, m, _t in seen]
    assert steps == [
        ("pending", ""),
        ("pending", "pulling VM image..."),
        ("pending", "cloning VM..."),
        ("pending", "configuring VM..."),
        ("running", "VM started"),
    ]
    times = [t for _s, _m, t in seen]
    assert times[2] - times[1] == pytest.approx(10.0, abs=0.6)  # pull
    assert times[3] - times[2] == pytest.approx(4.0, abs=0.6)  # clone
    vm = await _vm(orchard_lab, "a")
    assert vm["worker"] == "mini-1" and vm["image_fqn"].startswith(
        "ghcr.io/cirruslabs/macos-tahoe-base@sha256:"
    )
    assert vm["conditions"] == [
        {"type": "scheduled", "state": "true"},
        {"type": "running", "state": "true"},
    ]
    assert vm["scheduled_at"] != gojson.ZERO_TIME and vm["started_at"] != gojson.ZERO_TIME


async def test_two_macos_vms_per_worker(orchard_lab: FakeOrchard) -> None:
    orchard_lab.add_worker("mini-1")
    for name in ("a", "b", "c"):
        await _create(orchard_lab, name)
    advance(orchard_lab, 10)
    vms = {name: await _vm(orchard_lab, name) for name in ("a", "b", "c")}
    placed = sorted(n for n, vm in vms.items() if vm.get("worker") == "mini-1")
    waiting = [n for n, vm in vms.items() if "worker" not in vm]
    assert len(placed) == 2 and len(waiting) == 1
    assert vms[waiting[0]]["status"] == "pending"
    assert orchard_lab.store.used_resources("mini-1")["org.cirruslabs.tart-vms"] == 2
    # A freed slot (delete) lets the waiting VM in.
    assert (await _call(orchard_lab, "DELETE", f"/v1/vms/{placed[0]}"))[::2] == (200, b"")
    advance(orchard_lab, 3)
    assert (await _vm(orchard_lab, waiting[0]))["worker"] == "mini-1"


async def test_on_failure_restarts_with_a_new_local_name(orchard_lab: FakeOrchard) -> None:
    orchard_lab.add_worker("mini-1")
    await _create(orchard_lab, "keep", restart_policy="OnFailure")
    await _create(orchard_lab, "once")
    advance(orchard_lab, 10)
    for name in ("keep", "once"):
        orchard_lab.fail_vm(name, 'tart command failed: "boom"')
    vm = await _vm(orchard_lab, "once")
    assert (vm["status"], vm["status_message"]) == (
        "failed",
        'VM failed: tart command failed: "boom"',
    )
    assert vm["conditions"] == [
        {"type": "scheduled", "state": "false"},
        {"type": "running", "state": "false"},
    ]
    refused = await _call(orchard_lab, "PUT", "/v1/vms/once", {"os": "darwin"})
    assert refused[::2] == (412, b'{"message":"cannot update VM in a terminal state"}')
    advance(orchard_lab, 2.5)
    keep = await _vm(orchard_lab, "keep")
    assert keep["restart_count"] == 1 and keep["localName"].endswith("-1")
    assert keep["restarted_at"] != gojson.ZERO_TIME
    assert (await _vm(orchard_lab, "once"))["status"] == "failed"  # Never: stays failed
    advance(orchard_lab, 10)
    assert (await _vm(orchard_lab, "keep"))["status"] == "running"


async def test_worker_offline_after_three_minutes_and_vanishing(orchard_lab: FakeOrchard) -> None:
    orchard_lab.add_worker("mini-1", utc_offset_minutes=120)
    orchard_lab.add_worker("mini-2")
    await _create(orchard_lab, "a")
    advance(orchard_lab, 10)
    worker = (await _vm(orchard_lab, "a"))["worker"]
    other = "mini-2" if worker == "mini-1" else "mini-1"
    status, _c, body = await _call(orchard_lab, "GET", "/v1/workers/mini-1")
    assert status == 200 and json.loads(body)["last_seen"].endswith("+02:00")
    assert "scheduling_paused" not in json.loads(body)  # omitted when false
    orchard_lab.worker_silent(worker)
    advance(orchard_lab, 170, step=5)
    assert (await _vm(orchard_lab, "a"))["status"] == "running"
    advance(orchard_lab, 20, step=5)
    vm = await _vm(orchard_lab, "a")
    assert (vm["status"], vm["status_message"]) == ("failed", MSG_OFFLINE)
    await _create(orchard_lab, "b")
    advance(orchard_lab, 10)
    assert (await _vm(orchard_lab, "b"))["worker"] == other
    orchard_lab.worker_vanish(other)
    advance(orchard_lab, 1)
    assert (await _vm(orchard_lab, "b"))["status_message"] == MSG_GONE


# ------------------------------------------------------------------ watch


async def _watch_lines(lab: FakeOrchard, name: str, count: int, value: str = "true") -> list[bytes]:
    lines: list[bytes] = []
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{lab.url}/v1/vms/{name}", params={"watch": value}, headers=_auth()) as resp,
    ):
        assert resp.headers["Content-Type"] == "application/x-ndjson"
        while len(lines) < count:
            line = await resp.content.readline()
            if not line:
                break
            lines.append(line)
    return lines


async def test_watch_only_for_exact_true(orchard_lab: FakeOrchard) -> None:
    await _create(orchard_lab, "a")
    for value in ("True", "1", "TRUE", "yes"):
        status, ctype, body = await _call(orchard_lab, "GET", f"/v1/vms/a?watch={value}")
        assert (status, ctype) == (200, "application/json; charset=utf-8")
        assert json.loads(body)["name"] == "a"


async def test_watch_events_ndjson(orchard_lab: FakeOrchard) -> None:
    orchard_lab.add_worker("mini-1")
    # A watch on a VM that does not exist yet waits for it (no 404).
    task = asyncio.create_task(_watch_lines(orchard_lab, "a", 6))
    await orchard_lab.wait_for_watch("a")
    assert not task.done()
    await _create(orchard_lab, "a")
    advance(orchard_lab, 10)
    await _call(orchard_lab, "DELETE", "/v1/vms/a")
    lines = await asyncio.wait_for(task, _DEADLINE)
    events = [validate_watch_line("a", line) for line in lines]
    assert all(line.endswith(b"\n") and b"\n" not in line[:-1] for line in lines)
    assert events[0]["type"] == "ADDED" and events[0]["object"]["status"] == "pending"
    assert {e["type"] for e in events[1:-1]} == {"MODIFIED"}
    # DELETED carries a zero-value VM.
    assert events[-1] == {"type": "DELETED", "object": gojson.encode(gojson.VM_FIELDS, {})}
    messages = [e["object"].get("status_message") for e in events[1:-1]]
    assert messages[-1] == "VM started"


async def test_watch_cut_mid_line(orchard_lab: FakeOrchard) -> None:
    await _create(orchard_lab, "a")
    orchard_lab.cut_watch("a")
    lines = await asyncio.wait_for(_watch_lines(orchard_lab, "a", 2), _DEADLINE)
    assert len(lines) == 1 and not lines[0].endswith(b"\n")


# ------------------------------------------------------------------ port-forward


async def _running(lab: FakeOrchard, name: str) -> None:
    lab.add_worker("mini-1")
    await _create(lab, name)
    advance(lab, 10)


async def test_port_forward_binary_and_text_frames(orchard_lab: FakeOrchard) -> None:
    await _running(orchard_lab, "a")
    url = f"{orchard_lab.url}/v1/vms/a/port-forward?port=22&wait=5"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers={**_auth(), "User-Agent": "t/1"}) as ws,
    ):
        msg = await ws.receive(timeout=_DEADLINE)
        assert msg.type == aiohttp.WSMsgType.BINARY and msg.data.startswith(b"SSH-2.0-")
    async with (
        aiohttp.ClientSession(skip_auto_headers=["User-Agent"]) as session,
        session.ws_connect(url, headers=_auth()) as ws,
    ):
        msg = await ws.receive(timeout=_DEADLINE)
        # No User-Agent: a legacy x/net/websocket client, spoken to in text frames.
        assert msg.type == aiohttp.WSMsgType.TEXT and msg.data.startswith("SSH-2.0-")


async def test_port_forward_pings(orchard_lab: FakeOrchard) -> None:
    await _running(orchard_lab, "a")
    orchard_lab.ping_interval = 0.2
    url = f"{orchard_lab.url}/v1/vms/a/port-forward?port=22"
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, headers=_auth(), autoping=False) as ws,
    ):
        kinds = set()
        async with asyncio.timeout(_DEADLINE):
            while aiohttp.WSMsgType.PING not in kinds:
                kinds.add((await ws.receive()).type)


async def test_port_forward_refusals(orchard_lab: FakeOrchard) -> None:
    orchard_lab.add_worker("mini-1")
    await _create(orchard_lab, "a")

    async def status_of(query: str, invalid: bool = False) -> int:
        url = f"{orchard_lab.url}/v1/vms/a/port-forward?{query}"
        headers = {**_auth(), **({INVALID_ON_PURPOSE: "1"} if invalid else {})}
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url, headers=headers):
                    return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    assert await status_of("port=0", invalid=True) == 400
    assert await status_of("port=22&wait=0") == 408  # still pending
    advance(orchard_lab, 7)  # running, guest still booting: nothing listens yet
    assert (await _vm(orchard_lab, "a"))["status"] == "running"
    assert await status_of("port=22&wait=0") == 500
    assert await status_of("port=5900&wait=0") == 500
    advance(orchard_lab, 3)
    assert await status_of("port=22&wait=0") == 101
    orchard_lab.worker_silent("mini-1")
    assert await status_of("port=22&wait=0") == 503
    orchard_lab.fail_vm("a", "boom")
    assert await status_of("port=22&wait=0") == 417


# ------------------------------------------------------------------ TLS and faults


async def test_tls_self_signed_for_orchard_controller(tmp_path: Any) -> None:
    lab = FakeOrchard(tmp_path / "tls-lab")
    await lab.start(use_tls=True)
    try:
        assert lab.url.startswith("https://") and lab.certificate_pem
        cert = x509.load_pem_x509_certificate(lab.certificate_pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert san.value.get_values_for_type(x509.DNSName) == ["orchard-controller"]
        ctx = ssl.create_default_context(cadata=lab.certificate_pem.decode())
        async with (
            aiohttp.ClientSession() as session,
            session.get(lab.url + "/v1/", ssl=ctx, server_hostname="orchard-controller") as resp,
        ):
            assert resp.status == 200
    finally:
        await lab.stop()


async def test_html_answers(orchard_lab: FakeOrchard) -> None:
    orchard_lab.answer_html(200)
    status, ctype, body = await _call(orchard_lab, "GET", "/v1/vms")
    assert status == 200 and ctype.startswith("text/html") and body.startswith(b"<html>")
    orchard_lab.answer_html(None)
    assert (await _call(orchard_lab, "GET", "/v1/vms"))[0] == 200


async def test_runs_on_its_own_with_the_system_clock(tmp_path: Any) -> None:
    fast = Timings(schedule=0.05, clone=0.1, configure=0.05, boot=0.1)
    lab = FakeOrchard(tmp_path / "live", timings=fast, tick=0.02)
    await lab.start()
    try:
        lab.add_worker("mini-1")
        await _create(lab, "a")
        messages: list[str] = []
        async with (
            asyncio.timeout(_DEADLINE),
            aiohttp.ClientSession() as session,
            session.get(f"{lab.url}/v1/vms/a?watch=true", headers=_auth()) as resp,
        ):
            while "VM started" not in messages:
                event = json.loads(await resp.content.readline())
                messages.append(event["object"].get("status_message", ""))
        # However late the watch began, what it saw is the tail of the progression.
        seen = list(dict.fromkeys(m for m in messages if m))
        progression = ["cloning VM...", "configuring VM...", "VM started"]
        assert seen == progression[-len(seen) :]
    finally:
        await lab.stop()
