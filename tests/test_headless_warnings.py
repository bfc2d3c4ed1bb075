"""`status` run in-process leaves nothing for the garbage collector to complain about
(issue 10): every socket a failed Docker connect made is closed, not merely freed.

Warnings are errors here, so an unclosed socket's ResourceWarning (reported by pytest
as an unraisable exception) fails the test.
"""

from __future__ import annotations

import gc
import json
import socket
from pathlib import Path

import pytest

from megatui import headless
from megatui.config import Settings
from megatui.lab.docker_api import start_fake_docker


def _settings(tmp_path: Path, sock: Path) -> Settings:
    # No kubeconfig, no tart: those sources fail at once; Docker is what is tried.
    return Settings(
        docker_host=f"unix://{sock}",
        docker_timeout=2.0,
        kubeconfig=str(tmp_path / "no-kubeconfig"),
        tart_path=str(tmp_path / "no-tart"),
    )


async def _status(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> dict[str, dict[str, object]]:
    await headless.status(settings, True, 5.0)
    gc.collect()  # anything left unclosed is reported now, inside the test
    sources: dict[str, dict[str, object]] = json.loads(capsys.readouterr().out)["sources"]
    return sources


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("daemon", ["missing", "refusing", "up"])
async def test_status_closes_every_socket(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], daemon: str
) -> None:
    sock = tmp_path / "docker.sock"
    fake = None
    if daemon == "refusing":
        # A socket file nobody listens on: what a crashed daemon leaves.
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(sock))
    elif daemon == "up":
        fake = await start_fake_docker(sock)
    try:
        sources = await _status(_settings(tmp_path, sock), capsys)
    finally:
        if fake is not None:
            await fake.stop()
    expected = {
        "missing": f"cannot reach the Docker daemon at unix://{sock}: no such socket",
        "refusing": f"cannot reach the Docker daemon at unix://{sock}: connection refused",
        "up": None,
    }[daemon]
    assert sources["docker"]["error"] == expected
