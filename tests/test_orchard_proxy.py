"""`megatui orchard-proxy VM PORT` as a real process: the user's own OpenSSH `ssh`
logs in to a VM of the fake controller with it as its ProxyCommand, the token in
no process's argv; and every way it ends is clean (EOF, SIGTERM, refusals)."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest
from backend_fixtures import IMAGE, orchard_fleet
from conftest import require_binary
from orchard_fixtures import ADMIN, advance, validate_exchange

from megatui.actions import host_key_alias
from megatui.backends.orchard import OrchardBackend
from megatui.lab.orchard import FakeOrchard
from megatui.sources.orchard import NewVM, OrchardClient
from megatui.sources.orchard_config import resolve

REPO = Path(__file__).resolve().parent.parent
DEADLINE = 20.0
PYTHON = [sys.executable, "-m", "megatui"]


@pytest.fixture(name="fleet")
async def fleet_fixture(tmp_path: Path) -> AsyncIterator[FakeOrchard]:
    lab = await orchard_fleet(tmp_path / "orchard")
    try:
        lab.add_worker("mini-1")
        yield lab
    finally:
        await lab.stop()
    for ex in lab.exchanges:
        validate_exchange(ex)


def _home(tmp_path: Path, lab: FakeOrchard) -> Path:
    """An ORCHARD_HOME whose contexts file holds the controller and its token."""
    home = tmp_path / "orchard-home"
    (home / ".orchard").mkdir(parents=True)
    context = {"url": lab.url, "serviceAccountName": ADMIN[0], "serviceAccountToken": ADMIN[1]}
    text = json.dumps({"default-context": "lab", "contexts": {"lab": context}})
    (home / ".orchard" / "orchard.yml").write_text(text)  # JSON is YAML
    return home


def _env(home: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHARD_")}
    env["PYTHONPATH"] = str(REPO)
    if home is not None:
        env["ORCHARD_HOME"] = str(home)
    return env


async def _running(lab: FakeOrchard, name: str) -> None:
    async with OrchardClient(resolve(url=lab.url, service_account=ADMIN[0], token=ADMIN[1])) as c:
        await c.create_vm(NewVM(name, IMAGE, username="admin", password="admin"))
    advance(lab, 12)


async def _proxy(home: Path | None, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *PYTHON,
        "orchard-proxy",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(home),
    )


def _argv_holding(text: str) -> list[str]:
    """The command lines of every process that has `text` in its argv."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if text in argv:
            found.append(argv)
    return found


async def _read_until(stream: asyncio.StreamReader, marker: bytes) -> bytes:
    seen = b""
    async with asyncio.timeout(DEADLINE):
        while marker not in seen:
            chunk = await stream.read(4096)
            if not chunk:
                break
            seen += chunk
    assert marker in seen, seen
    return seen


async def _forwards_closed(lab: FakeOrchard) -> None:
    async with asyncio.timeout(DEADLINE):
        while True:  # the lab counts them; nothing signals the count reaching 0
            if not lab.open_forwards:
                return
            await asyncio.sleep(0.02)


async def test_openssh_logs_in_through_the_proxy(
    fleet: FakeOrchard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ssh = require_binary("ssh", "/usr/bin/ssh")
    # No installed `megatui` on PATH: the ProxyCommand runs this Python's (this tree's).
    monkeypatch.setattr("megatui.backends.orchard.shutil.which", lambda _name: None)
    await _running(fleet, "a")
    # The guest takes our key; its host key goes into megatui's known_hosts form.
    local = str(fleet.store.get_vm("a").fields["localName"])
    spec_path = fleet.guests.paths.spec(local)
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = tmp_path / "id_ed25519"
    key.write_private_key(str(key_path))
    key_path.chmod(0o600)
    spec = json.loads(spec_path.read_text())
    spec["authorized_key"] = key.export_public_key().decode()
    spec_path.write_text(json.dumps(spec))
    host_key = asyncssh.read_private_key(fleet.host_key_path("a")).export_public_key().decode()
    known = tmp_path / "known_hosts"
    known.write_text(f"{host_key_alias('a')} {host_key}")

    home = _home(tmp_path, fleet)
    config = resolve(context="lab", env={"ORCHARD_HOME": str(home)})
    backend = OrchardBackend(OrchardClient(config))
    command = backend.ssh_command("a", None, 22)
    assert command.options[1].startswith("ProxyCommand=" + shlex.join(PYTHON))
    await backend.close()
    assert ADMIN[1] not in " ".join(command.options)
    argv = [
        ssh,
        "-F",
        "/dev/null",
        "-T",
        *command.options,
        "-i",
        str(key_path),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known}",
        "-o",
        f"HostKeyAlias={host_key_alias('a')}",
        f"admin@{command.destination}",
    ]
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(home),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        await _read_until(proc.stdout, b"% ")  # the guest's prompt: logged in
        proc.stdin.write(b"echo via-orchard\n")
        await _read_until(proc.stdout, b"via-orchard")
        # While the session is up, the proxy runs and no argv anywhere holds the token.
        assert any("orchard-proxy" in line for line in _argv_holding("orchard-proxy"))
        assert _argv_holding(ADMIN[1]) == []
        proc.stdin.write(b"exit 3\n")
        await proc.stdin.drain()
        async with asyncio.timeout(DEADLINE):
            code = await proc.wait()
        stderr = (await proc.stderr.read()).decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 3, stderr
    assert "Traceback" not in stderr
    await _forwards_closed(fleet)


async def test_eof_and_sigterm_end_cleanly(fleet: FakeOrchard, tmp_path: Path) -> None:
    await _running(fleet, "a")
    home = _home(tmp_path, fleet)
    for how in ("eof", "sigterm", "sighup"):
        proc = await _proxy(home, "--orchard-context", "lab", "a", "22")
        assert proc.stdout is not None and proc.stdin is not None and proc.stderr is not None
        await _read_until(proc.stdout, b"SSH-2.0-")  # the guest's banner: bridged
        if how == "eof":
            proc.stdin.close()
        else:
            proc.send_signal(signal.SIGTERM if how == "sigterm" else signal.SIGHUP)
        async with asyncio.timeout(DEADLINE):
            code = await proc.wait()
        stderr = (await proc.stderr.read()).decode()
        expected = {"eof": 0, "sigterm": 128 + signal.SIGTERM, "sighup": 128 + signal.SIGHUP}
        assert (code, stderr) == (expected[how], ""), how
        await _forwards_closed(fleet)


@pytest.mark.parametrize(
    ("args", "with_home", "expected"),
    [
        (("--wait", "0", "nope", "22"), True, "port-forward to nope:22: 404 no such VM"),
        (("a", "22"), False, "no Orchard controller configured"),
        (("--orchard-context", "prod", "a", "22"), True, "no Orchard context 'prod'"),
        (("--orchard", "http://orchard.example:6120", "a", "22"), False, "plain HTTP"),
    ],
)
async def test_refusals_are_one_line_exit_1(
    fleet: FakeOrchard,
    tmp_path: Path,
    args: tuple[str, ...],
    with_home: bool,
    expected: str,
) -> None:
    home = _home(tmp_path, fleet) if with_home else tmp_path / "empty-home"
    proc = await _proxy(home, *args)
    async with asyncio.timeout(DEADLINE):
        out, err = await proc.communicate(b"")
    text = err.decode()
    assert proc.returncode == 1, text
    assert out == b"" and text.count("\n") == 1 and "Traceback" not in text
    assert text.startswith("megatui orchard-proxy: ") and expected in text, text
    assert ADMIN[1] not in text


async def test_the_monitors_ssh_argv_logs_in_with_the_token_from_megatuis_config(
    fleet: FakeOrchard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`Enter` on an Orchard VM: megatui's own argv (ProxyCommand, known_hosts the
    probe filled, StrictHostKeyChecking=yes), the token only in megatui's config."""
    from monitor_helpers import wait_snapshot

    from megatui.config import load_settings
    from megatui.headless import build_backend
    from megatui.model import Phase
    from megatui.monitor import Monitor

    ssh = require_binary("ssh", "/usr/bin/ssh")
    monkeypatch.setattr("megatui.backends.orchard.shutil.which", lambda _name: None)
    await _running(fleet, "a")
    local = str(fleet.store.get_vm("a").fields["localName"])
    spec_path = fleet.guests.paths.spec(local)
    key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = tmp_path / "id_ed25519"
    key.write_private_key(str(key_path))
    key_path.chmod(0o600)
    spec = json.loads(spec_path.read_text())
    spec["authorized_key"] = key.export_public_key().decode()
    spec_path.write_text(json.dumps(spec))
    config = tmp_path / "megatui.toml"
    config.write_text(
        f"[ssh]\nuser = 'admin'\nkey = '{key_path}'\nagent = false\n"
        f"[orchard]\nurl = '{fleet.url}'\nservice_account = '{ADMIN[0]}'\ntoken = '{ADMIN[1]}'\n"
    )
    monkeypatch.setenv("ORCHARD_HOME", str(tmp_path / "no-orchard-home"))
    settings = load_settings(config, environ={})
    backend = build_backend(settings)
    assert isinstance(backend, OrchardBackend)
    backend.clock = fleet.clock
    monitor = Monitor(settings, sources={"tart", "ssh"}, backend=backend, clock=fleet.clock)
    await monitor.start()
    try:
        await wait_snapshot(
            monitor, lambda s: (v := s.vm("a")) is not None and v.phase is Phase.READY
        )
        argv = monitor.ssh_argv("a")
    finally:
        await monitor.stop()
    assert ADMIN[1] not in " ".join(argv)
    assert "StrictHostKeyChecking=yes" in argv
    command = [
        ssh,
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        *argv[1:-1],
        argv[-1],
        "echo via-enter",
    ]
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(None),
    )
    async with asyncio.timeout(DEADLINE):
        out, err = await proc.communicate()
    assert b"via-enter" in out, (out, err)
    assert ADMIN[1].encode() not in err
