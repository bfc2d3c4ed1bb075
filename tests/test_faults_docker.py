"""The Docker source under faults (issue 10): the daemon stopped and started again (a real
dockerd), and a daemon that accepts connections but never answers (a raw socket server,
then the lab's fake Engine API on the same socket).

Each test runs a real Monitor (only its docker source) and asserts the exact line
shown, an upper bound on detection and on recovery (with and without `r`), that the
Monitor keeps running, that nothing reaches stderr, and that nothing is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

# docker_fixtures is a pytest plugin here: let pytest rewrite its asserts first.
pytest.register_assert_rewrite("docker_fixtures")

from docker_fixtures import DockerDaemon, raw_server, silent  # noqa: E402
from faults_helpers import (  # noqa: E402
    Leaks,
    assert_running,
    private_tempdir,
    wait_status,
)

from megatui.config import Settings  # noqa: E402
from megatui.lab.docker_api import start_fake_docker  # noqa: E402
from megatui.model import SourceStatus  # noqa: E402
from megatui.monitor import Monitor  # noqa: E402

pytest_plugins = ["docker_fixtures"]

DOCKER = "docker"
FAST_POLL = 0.2  # the poll interval, also the backoff's base
SLOW_POLL = 20.0  # a backoff only `r` can cut short in a test
TIMEOUT = 2.0
# Upper bounds, with slack for a loaded 2-core machine.
DETECT = FAST_POLL + TIMEOUT + 3.0
RECOVER = 15.0  # the backoff after a few seconds down is <= 6.4 s (x1.2 jitter)
RECOVER_WITH_R = 3.0 + TIMEOUT


def ok(status: SourceStatus) -> bool:
    return status.ok


def failing(status: SourceStatus) -> bool:
    return not status.ok


@contextlib.asynccontextmanager
async def watching(
    url: str, poll: float, capfd: pytest.CaptureFixture[str]
) -> AsyncIterator[Monitor]:
    settings = Settings(docker_host=url, docker_poll_interval=poll, docker_timeout=TIMEOUT)
    monitor = Monitor(settings, sources={"docker"})
    await monitor.start()
    try:
        yield monitor
        assert_running(monitor)
    finally:
        await monitor.stop()
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert err == ""


@pytest.mark.parametrize("refresh", [False, True], ids=["wait", "r"])
async def test_dockerd_down_then_back(
    private_daemon: DockerDaemon,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    refresh: bool,
) -> None:
    private_tempdir(tmp_path, monkeypatch)
    leaks = Leaks.take()
    await asyncio.to_thread(private_daemon.start)
    down_line = f"cannot reach the Docker daemon at {private_daemon.url}: no such socket"
    async with watching(private_daemon.url, SLOW_POLL if refresh else FAST_POLL, capfd) as monitor:
        await wait_status(monitor, DOCKER, ok, 15.0)
        assert await asyncio.to_thread(private_daemon.stop) == []
        if refresh:
            monitor.refresh()  # `r` polls at once instead of in 20 s
        status, took = await wait_status(monitor, DOCKER, failing, DETECT)
        assert status.error == down_line
        assert took < DETECT
        assert_running(monitor)
        if refresh:
            retry = monitor.retry_in(DOCKER)
            assert retry is not None and retry > 10.0

        await asyncio.to_thread(private_daemon.start)
        if refresh:
            monitor.refresh()
        status, took = await wait_status(
            monitor, DOCKER, ok, RECOVER_WITH_R if refresh else RECOVER
        )
        assert monitor.snapshot.docker is not None and monitor.snapshot.docker.reachable
    await asyncio.to_thread(private_daemon.stop)
    await leaks.check(timeout=TIMEOUT + 5.0)


async def test_r_resets_the_docker_backoff(
    docker_sock_dir: Path,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After many failures the backoff is long; `r` polls at once and starts it over."""
    private_tempdir(tmp_path, monkeypatch)
    leaks = Leaks.take()
    path = docker_sock_dir / "docker.sock"
    url = f"unix://{path}"

    def retry_over(seconds: float) -> Callable[[SourceStatus], bool]:
        return lambda _s: (monitor.retry_in(DOCKER) or 0) > seconds

    async with watching(url, FAST_POLL, capfd) as monitor:
        status, _ = await wait_status(monitor, DOCKER, failing, DETECT)
        assert status.error == f"cannot reach the Docker daemon at {url}: no such socket"
        # The backoff grows past 2.5 s: 0.2, 0.4, 0.8, 1.6, 3.2 s (x0.8-1.2).
        await wait_status(monitor, DOCKER, retry_over(2.5), 30.0)
        polls = monitor.snapshot.generated_at
        monitor.refresh()  # still down: one poll at once, and the backoff starts over
        await wait_status(
            monitor,
            DOCKER,
            lambda _s: (
                monitor.snapshot.generated_at > polls
                and (monitor.retry_in(DOCKER) or 99) <= FAST_POLL * 1.2
            ),
            2.0,
        )
        await wait_status(monitor, DOCKER, retry_over(2.5), 30.0)
        fake = await start_fake_docker(path)
        try:
            monitor.refresh()
            _, took = await wait_status(monitor, DOCKER, ok, RECOVER_WITH_R)
            assert took < 2.5  # sooner than the backoff would have allowed
        finally:
            await fake.stop()
    await leaks.check(timeout=TIMEOUT + 5.0)


async def test_a_daemon_that_never_answers(
    docker_sock_dir: Path,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private_tempdir(tmp_path, monkeypatch)
    leaks = Leaks.take()
    path = docker_sock_dir / "docker.sock"
    url = f"unix://{path}"
    async with watching(url, FAST_POLL, capfd) as monitor:
        async with raw_server(path, silent):
            status, took = await wait_status(monitor, DOCKER, failing, DETECT + TIMEOUT)
            assert status.error == f"cannot reach the Docker daemon at {url}: timed out after 2 s"
            assert took < DETECT + TIMEOUT
            assert_running(monitor)
        fake = await start_fake_docker(path)
        try:
            await wait_status(monitor, DOCKER, ok, RECOVER)
        finally:
            await fake.stop()
    await leaks.check(timeout=TIMEOUT + 5.0)
