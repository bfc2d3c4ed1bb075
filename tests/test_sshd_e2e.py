"""SSHProber against a real OpenSSH sshd: what a Mac VM's Remote Login looks like."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from sshd_fixtures import RealSSHD, SSHDFactory, real_sshd_fixture  # noqa: F401

from megatui.clock import FakeClock
from megatui.model import ProbeStage
from megatui.sources.hostkeys import HostKeyStore
from megatui.sources.ssh_probe import Credentials, SSHProber
from megatui.transport import LocalTransport

pytestmark = [
    pytest.mark.sshd,
    # A leaked socket or transport fails the test that leaked it.
    pytest.mark.filterwarnings("error::ResourceWarning"),
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
]


@pytest.fixture
def store(tmp_path: Path) -> HostKeyStore:
    return HostKeyStore(tmp_path / "vm_host_keys.json")


@pytest.fixture
async def prober(store: HostKeyStore) -> AsyncIterator[SSHProber]:
    p = SSHProber(LocalTransport(), store, FakeClock())
    yield p
    await p.close()


def _creds(sshd: RealSSHD) -> Credentials:
    return Credentials(user=sshd.user, key_path=str(sshd.client_key_path), use_agent=False)


async def test_key_login_is_ready_and_the_connection_is_reused(
    real_sshd: SSHDFactory, prober: SSHProber, store: HostKeyStore, tmp_path: Path
) -> None:
    sshd = real_sshd()
    first = await prober.probe("mac1", sshd.host, sshd.port, _creds(sshd))
    assert (first.stage, first.error) == (ProbeStage.READY, None)
    assert store.lookup("mac1") == sshd.host_public_key
    assert prober.has_connection("mac1")

    second = await prober.probe("mac1", sshd.host, sshd.port, _creds(sshd))
    assert second.stage is ProbeStage.READY
    # The health check really runs commands over the kept connection.
    marker = tmp_path / "ran"
    third = await prober.probe("mac1", sshd.host, sshd.port, _creds(sshd), f"touch {marker}")
    assert third.stage is ProbeStage.READY
    assert marker.exists()
    assert prober.handshakes == 1
    assert sshd.log.count("Accepted publickey") == 1


async def test_rebuilt_vm_with_new_host_key_is_refused_before_auth(
    real_sshd: SSHDFactory, prober: SSHProber, store: HostKeyStore
) -> None:
    sshd = real_sshd()
    assert (await prober.probe("mac1", sshd.host, sshd.port, _creds(sshd))).stage is (
        ProbeStage.READY
    )
    trusted = sshd.host_public_key

    sshd.restart(new_host_key=True)  # every session dies, like a reboot
    result = await prober.probe("mac1", sshd.host, sshd.port, _creds(sshd))

    assert result.stage is ProbeStage.HOST_KEY_CHANGED
    assert result.error is not None
    assert result.error.startswith("host key of VM 'mac1' changed (now SHA256:")
    assert result.error.endswith("run `megatui forget-key mac1`")
    assert store.lookup("mac1") == trusted
    assert prober.handshakes == 2
    # sshd never got as far as a user name (the log restarted with the server).
    assert "publickey" not in sshd.log
    assert sshd.user not in sshd.log

    assert store.forget("mac1")
    again = await prober.probe("mac1", sshd.host, sshd.port, _creds(sshd))
    assert again.stage is ProbeStage.READY
    assert store.lookup("mac1") == sshd.host_public_key != trusted


async def test_unknown_client_key_is_auth_failed(
    real_sshd: SSHDFactory, prober: SSHProber, tmp_path: Path
) -> None:
    sshd = real_sshd()
    stranger = tmp_path / "stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(stranger))
    creds = Credentials(user=sshd.user, key_path=str(stranger), use_agent=False)
    result = await prober.probe("mac1", sshd.host, sshd.port, creds)
    assert result.stage is ProbeStage.AUTH_FAILED
    assert result.error == f"authentication failed for {sshd.user}@{sshd.host}"


async def test_stopped_sshd_takes_its_sessions_along(
    real_sshd: SSHDFactory, prober: SSHProber
) -> None:
    sshd = real_sshd()
    assert (await prober.probe("mac1", sshd.host, sshd.port, _creds(sshd))).stage is (
        ProbeStage.READY
    )
    sshd.stop()
    # A per-connection sshd left alive would answer the health check: READY.
    result = await prober.probe("mac1", sshd.host, sshd.port, _creds(sshd))
    assert result.stage is ProbeStage.CLOSED
    assert not prober.has_connection("mac1")


async def test_login_environment_reaches_commands(
    real_sshd: SSHDFactory, prober: SSHProber, tmp_path: Path
) -> None:
    # How later tests emulate a Mac host: a fake `tart` first on the login PATH.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "fake-tart"
    tool.write_text('#!/bin/sh\n[ "$MEGATUI_MARK" = "two words" ] && echo "tart ok"\n')
    tool.chmod(0o755)
    sshd = real_sshd(env={"PATH": f"{bin_dir}:/usr/bin:/bin", "MEGATUI_MARK": "two words"})

    result = await prober.probe("mac1", sshd.host, sshd.port, _creds(sshd), "fake-tart")
    assert (result.stage, result.error) == (ProbeStage.READY, None)

    # The same through OpenSSH's own client, as other tests will use it.
    ssh = await asyncio.create_subprocess_exec(
        *sshd.ssh_argv("fake-tart"),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        out, err = await ssh.communicate()
    assert (ssh.returncode, out) == (0, b"tart ok\n"), err
