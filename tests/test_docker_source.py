"""DockerSource against the lab's fake Engine API and against sockets that are no daemon."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

# Before the import below, so that pytest rewrites its asserts as it does for plugins.
pytest.register_assert_rewrite("docker_fixtures")

import requests.exceptions  # noqa: E402
import urllib3.exceptions  # noqa: E402
from aiohttp import ClientSession, UnixConnector  # noqa: E402
from docker_fixtures import (  # noqa: E402
    dripping,
    free_loopback_port,
    raw_server,
    refusing_socket,
    replying,
    silent,
)

from megatui.clock import FakeClock  # noqa: E402
from megatui.lab.docker_api import FakeDocker, human_duration, start_fake_docker  # noqa: E402
from megatui.model import DockerStatus, KindCluster, KindNodeContainer  # noqa: E402
from megatui.sources.docker import (  # noqa: E402
    DockerReplyError,
    DockerSource,
    describe_failure,
    has_network,
    normalize_url,
    parse_inspect,
    parse_kind_clusters,
)

pytest_plugins = ["docker_fixtures"]

KIND = "io.x-k8s.kind.cluster"
ROLE = "io.x-k8s.kind.role"


def node(
    name: str,
    cluster: str,
    role: str,
    state: str,
    exit_code: int | None = None,
    restarts: int | None = None,
) -> KindNodeContainer:
    return KindNodeContainer(name, role, state, cluster, exit_code, restarts)


def entry(names: list[str], labels: dict[str, str] | None, state: str = "running") -> Any:
    return {"Id": "x", "Names": names, "Labels": labels, "State": state}


def paths(fake: FakeDocker) -> list[str]:
    return [path for path, _ in fake.requests]


# ---- parsing ------------------------------------------------------------------------


def test_network_counts_only_with_its_exact_name() -> None:
    assert has_network([{"Name": "kind"}, {"Name": "kind-old"}]) is True
    assert has_network([{"Name": "kind-old"}]) is False
    assert has_network([{"Name": "kindnet"}, {"Name": "my-kind"}, {"Name": "KIND"}]) is False
    assert has_network([]) is False


def test_clusters_are_grouped_and_sorted() -> None:
    containers = [
        entry(["/kind-worker2"], {KIND: "kind", ROLE: "worker"}, "exited"),
        entry(["/beta-control-plane"], {KIND: "beta", ROLE: "control-plane"}),
        entry(["/kind-control-plane"], {KIND: "kind", ROLE: "control-plane"}, "paused"),
        entry(["/kind-worker"], {KIND: "kind", ROLE: "worker"}),
        entry(["/alpha-external-load-balancer"], {KIND: "alpha", ROLE: "external-load-balancer"}),
    ]
    assert parse_kind_clusters(containers) == (
        KindCluster(
            "alpha",
            (node("alpha-external-load-balancer", "alpha", "external-load-balancer", "running"),),
        ),
        KindCluster("beta", (node("beta-control-plane", "beta", "control-plane", "running"),)),
        KindCluster(
            "kind",
            (
                node("kind-control-plane", "kind", "control-plane", "paused"),
                node("kind-worker", "kind", "worker", "running"),
                node("kind-worker2", "kind", "worker", "exited"),
            ),
        ),
    )


def test_containers_without_a_cluster_label_are_ignored() -> None:
    containers = [
        entry(["/registry"], None),
        entry(["/web"], {"app": "web"}),
        entry(["/blank"], {KIND: ""}),
        entry(["/kind-worker"], {KIND: "kind"}, ""),
    ]
    # No role label and no State: kept, with an empty role and an "unknown" state.
    assert parse_kind_clusters(containers) == (
        KindCluster("kind", (node("kind-worker", "kind", "", "unknown"),)),
    )


def test_the_own_name_wins_over_legacy_link_aliases() -> None:
    containers = [entry(["/web/db", "/kind-worker"], {KIND: "kind", ROLE: "worker"})]
    assert parse_kind_clusters(containers)[0].nodes[0].name == "kind-worker"


@pytest.mark.parametrize(
    ("containers", "message"),
    [
        ({"message": "x"}, "/containers/json: not a list"),
        (["x"], "an entry is not an object"),
        ([{"Names": "kind-worker", "Labels": {KIND: "kind"}}], "has no Names"),
        ([{"Names": ["/a"], "Labels": ["x"]}], "Labels is not an object"),
    ],
)
def test_malformed_container_lists_are_reply_errors(containers: Any, message: str) -> None:
    with pytest.raises(DockerReplyError, match=message):
        parse_kind_clusters(containers)


@pytest.mark.parametrize(
    ("inspected", "expected"),
    [
        ({"State": {"ExitCode": 137}, "RestartCount": 2}, (137, 2)),
        ({"State": {"ExitCode": "137"}, "RestartCount": True}, (None, None)),
        ({"State": None, "RestartCount": 0}, (None, 0)),
        ([], (None, None)),
        (None, (None, None)),
    ],
)
def test_inspect_fields_are_used_only_with_their_shape(
    inspected: Any, expected: tuple[int | None, int | None]
) -> None:
    assert parse_inspect(inspected) == expected


def test_the_inspect_reply_is_matched_by_id() -> None:
    listed = [entry(["/kind-control-plane"], {KIND: "kind", ROLE: "control-plane"}, "exited")]
    inspected = {"x": {"State": {"ExitCode": 137}, "RestartCount": 1}}
    assert parse_kind_clusters(listed, inspected) == (
        KindCluster(
            "kind", (node("kind-control-plane", "kind", "control-plane", "exited", 137, 1),)
        ),
    )
    assert parse_kind_clusters(listed, {"y": inspected["x"]})[0].nodes[0].exit_code is None


def test_malformed_network_lists_are_reply_errors() -> None:
    with pytest.raises(DockerReplyError, match="/networks: not a list"):
        has_network({"Name": "kind"})
    with pytest.raises(DockerReplyError, match="an entry is not an object"):
        has_network(["kind"])


def test_a_bare_socket_path_becomes_a_unix_url() -> None:
    assert normalize_url("/tmp/fwd/docker.sock") == "unix:///tmp/fwd/docker.sock"
    assert normalize_url("tcp://127.0.0.1:2375") == "tcp://127.0.0.1:2375"
    assert DockerSource("/tmp/fwd/docker.sock").url == "unix:///tmp/fwd/docker.sock"


def test_permission_denied_is_named() -> None:
    # The shape requests gives for a unix socket connect() failure (the same chain as the
    # real ENOENT and ECONNREFUSED cases below); root, as the tests run, is never refused.
    exc = requests.exceptions.ConnectionError(
        urllib3.exceptions.ProtocolError(
            "Connection aborted.", PermissionError(13, "Permission denied")
        )
    )
    assert (
        describe_failure(exc, "unix:///var/run/docker.sock", 5.0)
        == "cannot reach the Docker daemon at unix:///var/run/docker.sock: permission denied"
    )


# ---- against the fake Engine API ------------------------------------------------------


async def test_a_kind_cluster_from_the_fake_daemon(fake_docker: FakeDocker) -> None:
    fake_docker.set_node_state("kind-worker2", "exited")
    fake_docker.set_node_state("kind-worker3", "running", exit_code=255, restart_count=1)
    source = DockerSource(fake_docker.url, timeout=5)
    try:
        status = await source.poll()
    finally:
        await source.close()

    assert status == DockerStatus(
        reachable=True,
        server_version="27.3.1",
        kind_network=True,
        clusters=(
            KindCluster(
                "kind",
                (
                    node("kind-control-plane", "kind", "control-plane", "running", 0, 0),
                    node("kind-worker", "kind", "worker", "running", 0, 0),
                    node("kind-worker2", "kind", "worker", "exited", 137, 0),
                    # A running container reports ExitCode 0 whatever its last run left.
                    node("kind-worker3", "kind", "worker", "running", 0, 1),
                ),
            ),
        ),
    )


async def test_only_kind_old_means_no_kind_network(fake_docker: FakeDocker) -> None:
    fake_docker.remove_network("kind")
    fake_docker.add_network("kind-old")
    source = DockerSource(fake_docker.url, timeout=5)
    try:
        status = await source.poll()
    finally:
        await source.close()
    assert status.reachable
    assert status.kind_network is False


async def test_one_request_of_each_kind_per_poll_and_one_client(fake_docker: FakeDocker) -> None:
    fake_docker.add_container("registry", labels={"app": "registry"})
    source = DockerSource(fake_docker.url, timeout=5)
    try:
        for _ in range(3):
            assert (await source.poll()).reachable
    finally:
        await source.close()

    # One unversioned /version: the SDK's version handshake, done once for the one client.
    # Each Kind node container is inspected (the registry, not a Kind node, is not).
    inspects = sorted(
        f"/v1.47/containers/{fake_docker.containers[n].id}/json"
        for n in ("kind-worker", "kind-worker2", "kind-worker3", "kind-control-plane")
    )
    per_poll = ["/v1.47/version", "/v1.47/containers/json", *inspects, "/v1.47/networks"]
    seen = paths(fake_docker)
    polls = [seen[1 + i * 7 : 8 + i * 7] for i in range(3)]
    assert seen[0] == "/version"
    assert len(seen) == 1 + 7 * 3
    # Inspected in the list's order, so compared as a set per poll.
    assert [[*p[:2], *sorted(p[2:6]), p[6]] for p in polls] == [per_poll] * 3
    containers_query = fake_docker.requests[2][1]
    assert containers_query["all"] == "1"
    assert json.loads(containers_query["filters"]) == {"label": [KIND]}
    assert json.loads(fake_docker.requests[7][1]["filters"]) == {"name": ["kind"]}


async def test_fake_daemon_gone_then_back(docker_sock_dir: Path) -> None:
    path = docker_sock_dir / "docker.sock"
    fake = await start_fake_docker(path, workers=1)
    source = DockerSource(f"unix://{path}", timeout=5)
    try:
        assert (await source.poll()).reachable
        await fake.stop()
        assert await source.poll() == DockerStatus(
            reachable=False,
            error=f"cannot reach the Docker daemon at unix://{path}: no such socket",
        )
        fake = await start_fake_docker(path, workers=2)
        back = await source.poll()
        assert [n.name for n in back.clusters[0].nodes] == [
            "kind-control-plane",
            "kind-worker",
            "kind-worker2",
        ]
        # After the failure the client was built anew: a fresh version handshake.
        assert paths(fake)[0] == "/version"
    finally:
        await source.close()
        await fake.stop()


async def test_default_url_honours_docker_host(
    fake_docker: FakeDocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", fake_docker.url)
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    monkeypatch.delenv("DOCKER_CERT_PATH", raising=False)
    source = DockerSource(None, timeout=5)
    try:
        status = await source.poll()
    finally:
        await source.close()
    assert source.url == fake_docker.url
    assert status.reachable


def test_default_url_without_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "DOCKER_TLS_VERIFY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.docker: no CLI context either
    assert DockerSource(None).url == "unix:///var/run/docker.sock"
    monkeypatch.setenv("DOCKER_HOST", "/run/user/501/docker.sock")
    assert DockerSource(None).url == "unix:///run/user/501/docker.sock"


# ---- sockets that are no (working) daemon -----------------------------------------------


async def poll_once(url: str, timeout: float = 5.0) -> DockerStatus:
    source = DockerSource(url, timeout=timeout)
    try:
        return await source.poll()
    finally:
        await source.close()


def unreachable(url: str, reason: str) -> DockerStatus:
    return DockerStatus(reachable=False, error=f"cannot reach the Docker daemon at {url}: {reason}")


async def test_absent_socket(docker_sock_dir: Path) -> None:
    url = f"unix://{docker_sock_dir}/nothing-here.sock"
    assert await poll_once(url) == unreachable(url, "no such socket")


async def test_refusing_socket(docker_sock_dir: Path) -> None:

    path = refusing_socket(docker_sock_dir / "stale.sock")
    url = f"unix://{path}"
    assert await poll_once(url) == unreachable(url, "connection refused")


async def test_a_file_that_is_no_socket(docker_sock_dir: Path) -> None:
    path = docker_sock_dir / "docker.sock"
    path.write_text("")
    url = f"unix://{path}"
    assert await poll_once(url) == unreachable(url, "not a socket")


async def test_refusing_tcp_port() -> None:

    url = f"tcp://127.0.0.1:{free_loopback_port()}"
    assert await poll_once(url) == unreachable(url, "connection refused")


async def test_an_invalid_url_is_one_line_not_an_exception() -> None:
    status = await poll_once("ftp://example.invalid")
    assert status.reachable is False
    assert status.error == (
        "Docker client error for ftp://example.invalid: "
        "Invalid bind address protocol: ftp://example.invalid"
    )


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (b"garbage garbage\r\n\r\n", "no Docker API at {url}: the reply is not HTTP"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            "no Docker API at {url}: the reply is not JSON",
        ),
        (
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
            b'Content-Length: 30\r\nConnection: close\r\n\r\n{"message": "page not found"}\n',
            "the Docker daemon at {url} answered HTTP 404: page not found",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: 3\r\nConnection: close\r\n\r\n[]\n",
            "no Docker API at {url}: unexpected reply to /version",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: 3\r\nConnection: close\r\n\r\n{}\n",
            "no Docker API at {url}: unexpected reply to /version",
        ),
        (b"", "cannot reach the Docker daemon at {url}: the connection closed without a reply"),
    ],
    ids=["garbage", "not-json", "http-404", "json-list", "json-without-version", "closes"],
)
async def test_garbage_servers(docker_sock_dir: Path, reply: bytes, error: str) -> None:

    async with raw_server(docker_sock_dir / "junk.sock", replying(reply)) as server:
        status = await poll_once(server.url)
    assert status == DockerStatus(reachable=False, error=error.format(url=server.url))


async def test_wrong_json_after_the_handshake_is_a_reply_error(docker_sock_dir: Path) -> None:
    """A server that passes the SDK's handshake but lists containers wrongly."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            body = b'{"ApiVersion": "1.41", "Version": "20.10.24"}'
            if b"/containers/json" in path:
                body = b'{"containers": []}'
            elif b"/networks" in path:
                body = b"[]"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()

    async with raw_server(docker_sock_dir / "odd.sock", handler) as server:
        status = await poll_once(server.url)
    assert status == DockerStatus(
        reachable=False,
        error=f"no Docker API at {server.url}: unexpected reply to /containers/json: not a list",
    )


async def test_a_silent_daemon_times_out_within_the_deadline(docker_sock_dir: Path) -> None:

    async with raw_server(docker_sock_dir / "silent.sock", silent) as server:
        started = time.monotonic()
        status = await poll_once(server.url, timeout=0.4)
        elapsed = time.monotonic() - started
        await server.wait_idle(5)
    assert status == unreachable(server.url, "timed out after 0.4 s")
    assert 0.35 < elapsed < 1.5


async def test_the_requests_of_one_poll_share_its_deadline(docker_sock_dir: Path) -> None:
    """A slow containers list and a stuck networks list together stay within one
    timeout, so the worker ends by itself and the next poll can start a fresh one."""
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].split(b"?")[0]
            seen.append(path)
            if path.endswith(b"/networks"):
                await reader.read()  # never answers
                return
            body = b'{"ApiVersion": "1.41", "Version": "20.10.24"}'
            if path.endswith(b"/containers/json"):
                # A slow daemon: most of the 2 s budget, leaving a loaded machine 1.4 s
                # for the version and networks requests to be asked at all.
                await asyncio.sleep(0.6)
                body = b"[]"
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()

    async with raw_server(docker_sock_dir / "slow.sock", handler) as server:
        source = DockerSource(server.url, timeout=2.0)
        try:
            first = await source.poll()
            second = await source.poll()
        finally:
            await source.close()
    assert first == second == unreachable(server.url, "timed out after 2 s")
    # Had the networks request got a full 2 s of its own, the first worker would still
    # be stuck (until 2.6 s) at the second poll, which would then not have asked anything.
    assert seen.count(b"/v1.41/networks") == 2


async def test_a_hung_request_is_not_piled_up_and_close_waits_for_it(docker_sock_dir: Path) -> None:
    """A server that answers one byte at a time defeats per-read socket timeouts; the
    poll still returns at its deadline, and later polls do not start a second request
    while the first is still stuck."""

    release = asyncio.Event()
    async with raw_server(docker_sock_dir / "drip.sock", dripping(release, 0.05)) as server:
        source = DockerSource(server.url, timeout=0.3)
        try:
            first = await source.poll()
            assert first == unreachable(server.url, "timed out after 0.3 s")
            started = time.monotonic()
            second = await source.poll()
            assert time.monotonic() - started < 0.2
            assert second == first
            assert server.connections == 1
        finally:
            release.set()
            await source.close()
        await server.wait_idle(5)
    assert server.connections == server.finished == 1


async def test_poll_after_close_works_again(fake_docker: FakeDocker) -> None:
    source = DockerSource(fake_docker.url, timeout=5)
    await source.close()
    try:
        assert (await source.poll()).reachable
    finally:
        await source.close()


# ---- the fake Engine API itself ---------------------------------------------------------


async def get_json(fake: FakeDocker, path: str) -> tuple[int, Any]:
    async with (
        ClientSession(connector=UnixConnector(path=str(fake.socket_path))) as session,
        session.get(f"http://docker{path}") as response,
    ):
        return response.status, await response.json()


async def test_fake_label_filters_match_exactly_and_all_means_stopped_too(
    fake_docker: FakeDocker,
) -> None:
    fake_docker.add_kind_node("other-control-plane", cluster="other", role="control-plane")
    fake_docker.set_node_state("kind-worker", "exited")
    query = '{"label": ["io.x-k8s.kind.cluster=kind", "io.x-k8s.kind.role=worker"]}'

    _, running = await get_json(fake_docker, f"/v1.47/containers/json?filters={query}")
    _, every = await get_json(fake_docker, f"/containers/json?all=1&filters={query}")
    _, old_style = await get_json(
        fake_docker, '/containers/json?all=1&filters={"label": {"io.x-k8s.kind.cluster": true}}'
    )

    assert sorted(c["Names"][0] for c in running) == ["/kind-worker2", "/kind-worker3"]
    assert sorted(c["Names"][0] for c in every) == [
        "/kind-worker",
        "/kind-worker2",
        "/kind-worker3",
    ]
    assert len(old_style) == 5
    exited = next(c for c in every if c["Names"] == ["/kind-worker"])
    assert exited["State"] == "exited"
    assert exited["Status"].startswith("Exited (137) ")


async def test_fake_network_name_filter_is_a_substring_match(fake_docker: FakeDocker) -> None:
    fake_docker.add_network("kind-old")
    _, found = await get_json(fake_docker, '/networks?filters={"name": ["kind"]}')
    assert [n["Name"] for n in found] == ["kind", "kind-old"]


async def test_fake_rejects_unknown_filters_like_the_daemon(fake_docker: FakeDocker) -> None:
    status, body = await get_json(fake_docker, '/containers/json?filters={"colour": ["red"]}')
    assert (status, body) == (400, {"message": "invalid filter 'colour'"})
    status, body = await get_json(fake_docker, "/images/json")
    assert (status, body) == (404, {"message": "page not found"})


async def test_fake_inspect_takes_an_id_prefix_or_the_name_and_404s_like_the_daemon(
    fake_docker: FakeDocker,
) -> None:
    fake_docker.set_node_state("kind-worker", "exited", exit_code=1, restart_count=1)
    cid = fake_docker.containers["kind-worker"].id
    async with ClientSession(connector=UnixConnector(path=str(fake_docker.socket_path))) as http:
        for ref in (cid, cid[:12], "kind-worker"):
            async with http.get(f"http://docker/v1.47/containers/{ref}/json") as reply:
                body = await reply.json()
            assert (body["Id"], body["State"]["Status"], body["State"]["ExitCode"]) == (
                cid,
                "exited",
                1,
            )
            assert (body["RestartCount"], body["Name"]) == (1, "/kind-worker")
        async with http.get("http://docker/containers/nope/json") as reply:
            assert reply.status == 404
            assert await reply.json() == {"message": "No such container: nope"}


def test_fake_rejects_unknown_states_and_names() -> None:
    fake = FakeDocker(Path("/nonexistent.sock"))
    fake.add_kind_node("kind-control-plane", cluster="kind", role="control-plane")
    with pytest.raises(ValueError, match="unknown container state 'sleeping'"):
        fake.set_node_state("kind-control-plane", "sleeping")
    with pytest.raises(KeyError, match="kind-worker9"):
        fake.set_node_state("kind-worker9", "exited")


async def test_fake_status_text_follows_its_clock(docker_sock_dir: Path) -> None:
    clock = FakeClock()
    fake = await start_fake_docker(docker_sock_dir / "docker.sock", workers=1, clock=clock)
    try:
        clock.advance(7200)
        fake.set_node_state("kind-worker", "exited", exit_code=0)
        clock.advance(90)
        _, listed = await get_json(fake, "/containers/json?all=1")
    finally:
        await fake.stop()
    status = {c["Names"][0]: c["Status"] for c in listed}
    assert status == {
        "/kind-control-plane": "Up 2 hours",
        "/kind-worker": "Exited (0) About a minute ago",
    }
    assert not os.path.exists(docker_sock_dir / "docker.sock")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (59 * 60, "59 minutes"),
        (3600, "About an hour"),
        (47 * 3600, "47 hours"),
        (3 * 86400, "3 days"),
        (20 * 86400, "2 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration_matches_docker(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text
