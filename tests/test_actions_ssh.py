"""The ssh command megatui gives the user, run against a real sshd (issue 10).

A user whose agent holds several keys must still log in with the configured key
when the server allows few attempts (MaxAuthTries): ssh offers the agent's keys
before an `-i` key unless IdentitiesOnly is set.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest
from conftest import require_binary
from sshd_fixtures import SSHDFactory, real_sshd_fixture  # noqa: F401

from megatui import actions
from megatui.config import VMSettings
from megatui.model import VM, Phase, TartState

TIMEOUT = 20.0
#: Keys in the agent besides the right one: more than MaxAuthTries.
OTHER_KEYS = 3


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A private ssh-agent holding OTHER_KEYS keys the server does not accept; the
    environment that points ssh at it. The agent is killed afterwards."""
    agent_bin = require_binary("ssh-agent", "/usr/bin/ssh-agent")
    add_bin = require_binary("ssh-add", "/usr/bin/ssh-add")
    sock = tmp_path / "agent.sock"
    proc = subprocess.Popen([agent_bin, "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        env = {**os.environ, "SSH_AUTH_SOCK": str(sock)}
        deadline = time.monotonic() + TIMEOUT
        while not sock.exists():  # the agent creates its socket once it runs
            assert time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.02)
        for n in range(OTHER_KEYS):
            path = tmp_path / f"other{n}"
            asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(path))
            path.chmod(0o600)
            done = subprocess.run(
                [add_bin, "-q", str(path)], env=env, capture_output=True, timeout=TIMEOUT
            )
            assert done.returncode == 0, done.stderr
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=TIMEOUT)


def _login(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # BatchMode: never ask for a password; -F /dev/null: not the user's config.
    full = [argv[0], "-F", "/dev/null", "-o", "BatchMode=yes", *argv[1:], "true"]
    return subprocess.run(full, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def test_the_configured_key_wins_over_a_full_agent(
    real_sshd: SSHDFactory, agent: dict[str, str], tmp_path: Path
) -> None:
    sshd = real_sshd(extra_config=["MaxAuthTries 2"])
    ssh = require_binary("ssh", "/usr/bin/ssh")
    known = tmp_path / "known_hosts"
    actions.write_known_hosts(known, {"vm": sshd.host_public_key})
    vm = VM("vm", TartState.RUNNING, Phase.READY, sshd.host, 1.0, 0.0)
    login = VMSettings(port=sshd.port, user=sshd.user, key=str(sshd.client_key_path))
    argv = actions.ssh_argv(vm, login, known_hosts=known, key_known=True, ssh=ssh)

    done = _login(argv, agent)
    assert done.returncode == 0, done.stderr

    # The same command without IdentitiesOnly fails here: the setup does test it.
    at = argv.index("IdentitiesOnly=yes")
    without = argv[: at - 1] + argv[at + 1 :]
    failed = _login(without, agent)
    assert failed.returncode == 255
    assert "Too many authentication failures" in failed.stderr
