"""DockerSource against a real Docker engine (Debian's dockerd in a temporary directory).

Skipped locally without dockerd, busybox-static or root; under CI=true those fail instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# Before the import below, so that pytest rewrites its asserts as it does for plugins.
pytest.register_assert_rewrite("docker_fixtures")

from docker_fixtures import DockerDaemon, DockerEngine  # noqa: E402

from megatui.model import DockerStatus, KindCluster, KindNodeContainer  # noqa: E402
from megatui.sources.docker import DockerSource  # noqa: E402

pytest_plugins = ["docker_fixtures"]
pytestmark = pytest.mark.docker


async def poll_once(url: str | None) -> DockerStatus:
    source = DockerSource(url, timeout=10)
    try:
        return await source.poll()
    finally:
        await source.close()


async def test_empty_engine_is_reachable_with_its_version(docker_engine: DockerEngine) -> None:
    status = await poll_once(docker_engine.url)

    expected_version = docker_engine.client.version()["Version"]
    assert status == DockerStatus(reachable=True, server_version=expected_version)


async def test_kind_network_is_matched_by_its_exact_name(docker_engine: DockerEngine) -> None:
    docker_engine.create_network("kind-old")
    # The daemon's own name filter is a substring match, so it offers kind-old for "kind".
    offered = [n["Name"] for n in docker_engine.client.api.networks(names=["kind"])]
    assert offered == ["kind-old"]

    only_old = await poll_once(docker_engine.url)
    assert only_old.reachable
    assert only_old.kind_network is False

    kind = docker_engine.create_network("kind")
    both = await poll_once(docker_engine.url)
    assert both.kind_network is True

    kind.remove()
    assert (await poll_once(docker_engine.url)).kind_network is False


async def test_running_and_exited_node_containers(docker_engine: DockerEngine) -> None:
    docker_engine.create_network("kind")
    # Created out of order, to see the sorting; `true` exits at once, like a stopped node.
    worker = docker_engine.run_node("kind-worker", cluster="kind", role="worker", command=("true",))
    assert worker.wait(timeout=30)["StatusCode"] == 0
    docker_engine.run_node("kind-control-plane", cluster="kind", role="control-plane")
    docker_engine.run_node("alpha-control-plane", cluster="alpha", role="control-plane")
    docker_engine.run_node("not-a-kind-node", cluster=None, network=None)

    status = await poll_once(docker_engine.url)

    assert status.reachable, status.error
    assert status.kind_network is True
    assert status.clusters == (
        KindCluster(
            name="alpha",
            nodes=(
                KindNodeContainer("alpha-control-plane", "control-plane", "running", "alpha", 0, 0),
            ),
        ),
        KindCluster(
            name="kind",
            nodes=(
                KindNodeContainer("kind-control-plane", "control-plane", "running", "kind", 0, 0),
                KindNodeContainer("kind-worker", "worker", "exited", "kind", 0, 0),
            ),
        ),
    )


async def test_a_node_stopped_between_polls_shows_exited(docker_engine: DockerEngine) -> None:
    docker_engine.create_network("kind")
    node = docker_engine.run_node("kind-control-plane", cluster="kind", role="control-plane")
    source = DockerSource(docker_engine.url, timeout=10)
    try:
        before = await source.poll()
        node.kill()
        assert node.wait(timeout=30)["StatusCode"] == 137
        after = await source.poll()
    finally:
        await source.close()

    assert [n.state for c in before.clusters for n in c.nodes] == ["running"]
    assert [(n.state, n.exit_code) for c in after.clusters for n in c.nodes] == [("exited", 137)]


async def test_default_url_comes_from_docker_host(
    docker_engine: DockerEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.url)
    docker_engine.create_network("kind")

    source = DockerSource(None, timeout=10)
    try:
        status = await source.poll()
    finally:
        await source.close()

    assert source.url == docker_engine.url
    assert status.reachable, status.error
    assert status.kind_network is True


async def test_daemon_stopped_mid_session_then_back(private_daemon: DockerDaemon) -> None:
    private_daemon.start()
    source = DockerSource(private_daemon.url, timeout=10)
    try:
        assert (await source.poll()).reachable

        assert private_daemon.stop() == []
        down = await source.poll()
        assert down == DockerStatus(
            reachable=False,
            error=f"cannot reach the Docker daemon at {private_daemon.url}: no such socket",
        )

        private_daemon.start()
        back = await source.poll()
        assert back.reachable, back.error
        assert back.server_version
    finally:
        await source.close()


async def test_absent_socket_of_a_daemon_that_never_ran(docker_sock_dir: Path) -> None:
    url = f"unix://{docker_sock_dir}/docker.sock"
    assert await poll_once(url) == DockerStatus(
        reachable=False, error=f"cannot reach the Docker daemon at {url}: no such socket"
    )
