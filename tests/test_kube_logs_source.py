"""sources/kube_logs.py against the lab's pods/log: tail, follow, reconnect without
duplicates, refusals in one line, and hostile bytes (a 1 MB line, binary, ANSI)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from megatui.lab.cluster import populate_settled
from megatui.lab.drill_scenario import ORCHARD_POD, seed
from megatui.lab.kube_api import PODS, FakeKubeAPI
from megatui.sources.kube_logs import (
    MAX_LINE_BYTES,
    LogBuffer,
    LogError,
    LogLine,
    follow,
    inert,
    parse_line,
    search,
)

NOW = 1_800_000_000.0
SERVER_POD = "argocd-server-7b67dbdff8-2xzs9"
REPO_POD = "argocd-repo-server-6c46b7867b-2x59w"


@pytest.fixture
async def lab() -> AsyncIterator[tuple[FakeKubeAPI, aiohttp.ClientSession]]:
    api = FakeKubeAPI()
    populate_settled(api.store, now=NOW)
    url = await api.start()
    seed(api, NOW)
    async with aiohttp.ClientSession(base_url=url) as session:
        yield api, session
    await api.stop()


def fetcher(session: aiohttp.ClientSession, seen: list[list[tuple[str, Any]]]) -> Any:
    async def fetch(path: str, query: list[tuple[str, Any]]) -> aiohttp.ClientResponse:
        seen.append(query)
        return await session.get(path, params=query)

    return fetch


async def test_previous_of_a_running_container_is_the_apis_own_line(
    lab: tuple[FakeKubeAPI, aiohttp.ClientSession],
) -> None:
    _, session = lab
    with pytest.raises(LogError) as err:
        await follow(fetcher(session, []), "argocd", SERVER_POD, "argocd-server", LogBuffer(),
                     lambda _l: None, previous=True)  # fmt: skip
    assert str(err.value) == (
        f'previous terminated container "argocd-server" in pod "{SERVER_POD}" not found'
    )


async def test_forbidden_pods_log_names_verb_and_resource(
    lab: tuple[FakeKubeAPI, aiohttp.ClientSession],
) -> None:
    api, session = lab
    api.forbid("pods/log")
    with pytest.raises(LogError) as err:
        await follow(fetcher(session, []), "argocd", SERVER_POD, "argocd-server", LogBuffer(),
                     lambda _l: None)  # fmt: skip
    assert 'cannot get resource "pods/log"' in str(err.value)
    assert "\n" not in str(err.value)


async def test_crashed_run_is_read_to_its_end(
    lab: tuple[FakeKubeAPI, aiohttp.ClientSession],
) -> None:
    _, session = lab
    buf = LogBuffer()
    await follow(fetcher(session, []), "argocd", REPO_POD, "argocd-repo-server", buf,
                 lambda _l: None)  # fmt: skip
    # The container is waiting in CrashLoopBackOff: follow returns the last run and ends.
    assert [line.text.split("level=")[1][:5] for line in buf.lines][-1] == "fatal"
    assert all(line.stamp.endswith("Z") and len(line.stamp) == 30 for line in buf.lines)


async def test_follow_reconnects_from_the_last_stamp_without_duplicates(
    lab: tuple[FakeKubeAPI, aiohttp.ClientSession],
) -> None:
    api, session = lab
    book = api.ext.logs
    # Several lines in the same second: sinceTime (whole seconds) re-sends them all.
    for i in range(6):
        book.write("argocd", SERVER_POD, "argocd-server", f"burst {i}", at=NOW + 100 + i * 0.1)
    buf = LogBuffer()
    got: list[str] = []
    queries: list[list[tuple[str, Any]]] = []
    arrived = asyncio.Event()

    def on_lines(lines: list[LogLine]) -> None:
        got.extend(line.text for line in lines)
        arrived.set()

    task = asyncio.create_task(
        follow(
            fetcher(session, queries),
            "argocd",
            SERVER_POD,
            "argocd-server",
            buf,
            on_lines,
            retry_delay=0.05,
        )
    )
    async with asyncio.timeout(10):
        while "burst 5" not in got:
            arrived.clear()
            await arrived.wait()
    # Break the stream: the server side closes the connection mid-follow.
    for transport in list(_transports(session)):
        transport.close()
    book.write("argocd", SERVER_POD, "argocd-server", "after the break", at=NOW + 100.7)
    async with asyncio.timeout(10):
        while "after the break" not in got:
            arrived.clear()
            await arrived.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(queries) >= 2
    assert ("sinceTime", "2027-01-15T08:01:40Z") in queries[-1]
    assert got.count("burst 0") == 1 and got.count("burst 5") == 1
    assert got[-1] == "after the break"
    assert len(got) == len(set(got))


def _transports(session: aiohttp.ClientSession) -> list[asyncio.Transport]:
    found = []
    connector = session.connector
    assert connector is not None
    for protos in (getattr(connector, "_acquired", set()),):
        for proto in protos:
            if proto.transport is not None:
                found.append(proto.transport)
    return found


async def test_hostile_bytes_are_inert_and_bounded(
    lab: tuple[FakeKubeAPI, aiohttp.ClientSession],
) -> None:
    api, session = lab
    pod = api.store.get(PODS, SERVER_POD, "argocd")
    assert pod is not None
    book = api.ext.logs
    book.start_run("argocd", SERVER_POD, "argocd-server")
    book.write("argocd", SERVER_POD, "argocd-server", b"\x1b[2J\x1b]0;pwned\x07red\x1b[31m!\n")
    book.write("argocd", SERVER_POD, "argocd-server", b"\xff\xfe\x00binary\x80\n")
    book.write("argocd", SERVER_POD, "argocd-server", b"A" * (1 << 20) + b"\n")
    book.write("argocd", SERVER_POD, "argocd-server", b"no newline at the end")
    stopped = json.loads(json.dumps(pod))
    stopped["status"]["containerStatuses"][0]["state"] = {
        "terminated": {"exitCode": 0, "reason": "Completed", "containerID": "containerd://y"}
    }
    api.store.set(PODS, stopped)
    buf = LogBuffer()
    await follow(fetcher(session, []), "argocd", SERVER_POD, "argocd-server", buf, lambda _l: None)
    texts = [line.text for line in buf.lines]
    assert len(texts) == 4
    assert all("\x1b" not in t and "\x07" not in t and "\x00" not in t for t in texts)
    assert texts[0].startswith("\u241b[2J\u241b]0;pwned\u2407red")
    assert "\ufffd" in texts[1] and "binary" in texts[1]
    assert len(texts[2].encode()) < MAX_LINE_BYTES + 100
    assert texts[2].endswith(f"[{(1 << 20) - MAX_LINE_BYTES:,} more bytes cut]")
    assert texts[3] == "no newline at the end"


async def test_a_container_still_creating_is_refused_in_one_line() -> None:
    api = FakeKubeAPI()
    populate_settled(api.store, now=NOW)
    url = await api.start()
    seed(api, NOW)
    try:
        async with aiohttp.ClientSession(base_url=url) as session:
            with pytest.raises(LogError) as err:
                await follow(fetcher(session, []), "orchard", ORCHARD_POD, "orchard-controller",
                             LogBuffer(), lambda _l: None)  # fmt: skip
    finally:
        await api.stop()
    assert str(err.value).endswith("is waiting to start: ContainerCreating")


def test_buffer_keeps_the_last_10000_lines() -> None:
    buf = LogBuffer()
    for i in range(12_000):
        buf.add(LogLine(f"2026-01-01T00:00:00.{i:09d}Z", f"line {i}"))
    assert len(buf.lines) == 10_000 and buf.dropped == 2_000
    assert buf.lines[0].text == "line 2000"


def test_parse_line_and_search() -> None:
    line = parse_line(b"2024-05-01T10:00:01.120000000Z hello \x1b[1mworld\n")
    assert line.stamp == "2024-05-01T10:00:01.120000000Z"
    assert line.text == "hello \u241b[1mworld"
    assert inert("tab\tkept") == "tab\tkept"
    assert search(["Alpha", "beta", "ALPHABET"], "alpha") == [0, 2]
