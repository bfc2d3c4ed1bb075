"""A real OpenSSH sshd on loopback, for end-to-end tests.

Usage (import the fixture into the test module, like the other *_fixtures):

    from sshd_fixtures import SSHDFactory, real_sshd_fixture  # noqa: F401

    def test_x(real_sshd: SSHDFactory) -> None:
        sshd = real_sshd(env={"PATH": "/opt/fake-tart/bin:/usr/bin:/bin"})
        sshd.host, sshd.port, sshd.user, sshd.client_key_path, sshd.host_public_key
        sshd.restart(new_host_key=True)   # like a rebuilt machine: sessions die too

Each server has its own directory under tmp_path with sshd_config, host key,
client key and authorized_keys, and listens on its own 127.0.0.x address and a
free high port. It runs as the current user: as root it logs in root with the
client key (PermitRootLogin prohibit-password); as anyone else it can only log
in that same user, which is all a test needs.

sshd forks one process per connection and those outlive the listener, so stop()
kills the whole process tree, not just the pid it started.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import asyncssh
import pytest
from conftest import require_binary

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 5.0
_PRIVSEP_DIR = Path("/run/sshd")
# Distinct loopback addresses per server, so tests also cover "not 127.0.0.1".
_ADDRESSES = itertools.cycle(f"127.0.0.{n}" for n in range(60, 90))


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _write_keypair(path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519", comment=path.name)
    key.write_private_key(str(path))
    key.write_public_key(str(path) + ".pub")
    path.chmod(0o600)


def _quote(value: str) -> str:
    if any(c in value for c in '"\n\r'):
        raise ValueError(f"cannot put {value!r} into sshd_config")
    return f'"{value}"' if any(c.isspace() for c in value) else value


def _descendants(root: int) -> list[int]:
    """Every process below `root`, deepest first."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # Field 4 is the parent; the command name (field 2) may hold spaces.
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    else:
        out = subprocess.run(
            ["ps", "-A", "-o", "pid=", "-o", "ppid="],
            capture_output=True,
            text=True,
            check=False,
            timeout=_STOP_TIMEOUT,
        ).stdout
        for line in out.splitlines():
            pid, ppid = (int(x) for x in line.split())
            children.setdefault(ppid, []).append(pid)
    found: list[int] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found[::-1]


class RealSSHD:
    """One sshd process (restartable) and everything it needs on disk."""

    def __init__(
        self,
        sshd_path: str,
        workdir: Path,
        *,
        host: str,
        extra_config: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.sshd_path = sshd_path
        self.workdir = workdir
        self.host = host
        self.port = _free_port(host)
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        #: Extra sshd_config lines, used from the next start. sshd keeps the
        #: first value of most keywords, so they go before the base settings and
        #: override them; from the first `Match` line on they go to the end,
        #: because a Match block runs to the end of the file.
        self.extra_config: list[str] = list(extra_config)
        #: Environment of login sessions (sshd `SetEnv`), e.g. {"PATH": ...}.
        self.env: dict[str, str] = dict(env or {})
        self.client_key_path = workdir / "client_ed25519"
        self.host_key_path = workdir / "ssh_host_ed25519_key"
        self.config_path = workdir / "sshd_config"
        self.authorized_keys_path = workdir / "authorized_keys"
        self.log_path = workdir / "sshd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._log_lines: list[str] = []
        self._listening = threading.Event()

        workdir.mkdir(parents=True, exist_ok=True)
        _write_keypair(self.client_key_path)
        _write_keypair(self.host_key_path)
        self.authorized_keys_path.write_text(Path(str(self.client_key_path) + ".pub").read_text())

    # --- what clients need

    @property
    def host_public_key(self) -> str:
        """The server's key as `algorithm base64` (no comment)."""
        parts = Path(str(self.host_key_path) + ".pub").read_text().split()
        return f"{parts[0]} {parts[1]}"

    @property
    def client_public_key(self) -> str:
        return Path(str(self.client_key_path) + ".pub").read_text().strip()

    def known_hosts_line(self) -> str:
        return f"[{self.host}]:{self.port} {self.host_public_key}"

    def ssh_argv(self, *command: str) -> list[str]:
        """An OpenSSH client command line that logs in to this server."""
        ssh = require_binary("ssh", "/usr/bin/ssh")
        known = self.workdir / "known_hosts"
        known.write_text(self.known_hosts_line() + "\n")
        return [
            ssh,
            "-F",
            "/dev/null",
            "-i",
            str(self.client_key_path),
            "-p",
            str(self.port),
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            f"{self.user}@{self.host}",
            *command,
        ]

    @property
    def log(self) -> str:
        return "\n".join(self._log_lines)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- lifecycle

    def config_text(self) -> str:
        split = next(
            (
                i
                for i, line in enumerate(self.extra_config)
                if [w.lower() for w in line.split()[:1]] == ["match"]
            ),
            len(self.extra_config),
        )
        lines = self.extra_config[:split]
        lines += [
            f"ListenAddress {self.host}:{self.port}",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.workdir / 'sshd.pid'}",
            f"AuthorizedKeysFile {self.authorized_keys_path}",
            "PermitRootLogin prohibit-password",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            # No PAM: it needs root and, in containers, pam_loginuid fails sessions.
            "UsePAM no",
            # Key files live in pytest's tmp dirs, whose modes sshd would reject.
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "LogLevel VERBOSE",
            "MaxStartups 100",
            "Subsystem sftp internal-sftp",
        ]
        if self.env:
            pairs = " ".join(_quote(f"{k}={v}") for k, v in self.env.items())
            lines.append(f"SetEnv {pairs}")
        lines += self.extra_config[split:]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        if self.running:
            raise RuntimeError("sshd is already running")
        if os.geteuid() == 0:
            # sshd chroots its pre-auth child here when run as root (Debian
            # creates it only when the service starts).
            _PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        for attempt in range(3):
            self.config_path.write_text(self.config_text())
            if self._spawn():
                return
            if "Address already in use" in self.log and attempt < 2:
                # Someone took the port between _free_port() and bind().
                self.port = _free_port(self.host)
                continue
            break
        pytest.fail(f"sshd did not start; its log:\n{self.log}", pytrace=False)

    def _spawn(self) -> bool:
        self._listening.clear()
        self._log_lines.clear()
        proc = subprocess.Popen(
            [self.sshd_path, "-D", "-e", "-f", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self._proc = proc
        self._reader = threading.Thread(target=self._read_log, args=(proc,), daemon=True)
        self._reader.start()
        # "Server listening" is logged once the socket is bound and listening:
        # the moment clients can connect, with no polling of the port.
        self._listening.wait(_START_TIMEOUT)
        if self.running and any("Server listening on" in line for line in self._log_lines):
            return True
        self._terminate()
        return False

    def _read_log(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        with self.log_path.open("a", encoding="utf-8") as log:
            for raw in proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self._log_lines.append(line)
                log.write(line + "\n")
                log.flush()
                if "Server listening on" in line:
                    self._listening.set()
        # EOF: sshd and every child holding its stderr are gone.
        self._listening.set()

    def stop(self) -> None:
        self._terminate()

    def restart(self, *, new_host_key: bool = False) -> None:
        """Stop (dropping every session, like a reboot) and start on the same port."""
        self.stop()
        if new_host_key:
            _write_keypair(self.host_key_path)
        self.start()

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            # Per-connection sshd processes call setsid(), so they are in no
            # group of ours; kill them by ancestry while the listener still
            # reaps them, then the listener itself.
            for pid in _descendants(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.terminate()
            try:
                proc.wait(_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(_STOP_TIMEOUT)
        if self._reader is not None:
            self._reader.join(_STOP_TIMEOUT)
            self._reader = None
        if proc.stderr is not None:
            proc.stderr.close()


class SSHDFactory(Protocol):
    def __call__(
        self,
        *,
        host: str | None = None,
        extra_config: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> RealSSHD: ...


@pytest.fixture(name="real_sshd")
def real_sshd_fixture(tmp_path: Path) -> Iterator[SSHDFactory]:
    """Start real sshd servers; all are stopped and reaped at teardown."""
    sshd_path = require_binary("sshd", "/usr/sbin/sshd")
    started: list[RealSSHD] = []

    def start(
        *,
        host: str | None = None,
        extra_config: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> RealSSHD:
        server = RealSSHD(
            sshd_path,
            tmp_path / f"sshd{len(started)}",
            host=host or next(_ADDRESSES),
            extra_config=extra_config,
            env=env,
        )
        started.append(server)
        server.start()
        return server

    yield start
    for server in started:
        server.stop()
