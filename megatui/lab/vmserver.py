"""The inside of a lab VM: its boot timeline and its SSH server.

It runs inside the fake `tart run` process, so the VM lives exactly as long as that
process, as with real tart. Seconds after the run started:

* before `ip_after`: no DHCP lease (`tart ip` answers "no IP address found");
* from `ip_after`: a lease is written, and it outlives the VM (stale lease);
* before `port_after` (and until asyncssh has loaded): nothing listens on the VM's
  address (connection refused);
* from `port_after` to `login_after`: the port accepts TCP and closes it at once,
  as a booting Mac does before sshd is up;
* from `login_after`: an asyncssh server takes password and public-key logins.

The spec file is re-read for every login and the host key for every connection, so
`TartLab.set_reject_logins` and `TartLab.rotate_host_key` act on a running VM.

asyncssh is imported in a worker thread while the VM "boots": importing it takes
long enough on a busy machine to push the listener past `port_after` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncssh

from megatui.lab.fake_tart import LabPaths, lab_spec, timeline, write_lease

#: Faults of a VM's sshd that `TartLab.set_sshd_fault` switches on, and how often
#: the VM looks for them.
SSHD_FAULTS = frozenset({"down", "listener-dead"})
_FAULT_POLL = 0.05

#: What the fake guest answers to `uname -r` and `sw_vers`.
_DARWIN_RELEASE = "24.6.0"
_MACOS_VERSION = ("15.6", "24G84")
#: A new macOS user's home folder, as `ls` shows it; a Linux guest's home is empty.
_DARWIN_HOME = ("Desktop", "Documents", "Downloads", "Library", "Movies", "Music", "Pictures")
#: Clears a terminal and puts the cursor home.
CLEAR = "\x1b[H\x1b[2J"
#: The commands this shell knows, for `help` and the line after "command not found".
BUILTINS = (
    "echo",
    "ls",
    "pwd",
    "cd",
    "uname",
    "sw_vers",
    "hostname",
    "whoami",
    "sleep",
    "true",
    "false",
    "clear",
    "help",
    "exit",
)


def _home(user: str, os_name: str) -> str:
    return f"/Users/{user}" if os_name == "darwin" else f"/home/{user}"


def _ls(args: list[str], user: str, os_name: str) -> tuple[str, str, int]:
    """The home folder, the only place this guest has: `ls`, `ls -la`, `ls ~/Desktop`."""
    names = _DARWIN_HOME if os_name == "darwin" else ()
    home = _home(user, os_name)
    paths = [a for a in args if not a.startswith("-")]
    for path in paths:
        if path not in (".", "~", home, *names, *(f"~/{n}" for n in names)):
            return "", f"ls: {path}: No such file or directory\n", 1
    if paths and paths != ["."] and paths != ["~"] and paths != [home]:
        return "", "", 0  # a folder of the home: empty on a fresh guest
    one_per_line = any(a.startswith("-") and ("l" in a or "1" in a) for a in args)
    if not names:
        return "", "", 0
    return ("\n" if one_per_line else "  ").join(names) + "\n", "", 0


async def run_command(command: str, *, vm: str, user: str, os_name: str) -> tuple[str, str, int]:
    """A tiny guest shell: (stdout, stderr, exit status) for one command line.

    Enough for readiness probes (`echo ready`) and a demo; anything else is "not
    found" with status 127, as from a real shell."""
    try:
        words = shlex.split(command)
    except ValueError:
        return "", 'zsh:1: unmatched "\n', 1
    if not words:
        return "", "", 0
    prog, args = words[0], words[1:]
    darwin = os_name == "darwin"
    kernel = "Darwin" if darwin else "Linux"
    machine = "arm64" if darwin else "aarch64"
    if prog == "echo":
        if args[:1] == ["-n"]:
            return " ".join(args[1:]), "", 0
        return " ".join(args) + "\n", "", 0
    if prog == "ls":
        return _ls(args, user, os_name)
    if prog == "pwd":
        return _home(user, os_name) + "\n", "", 0
    if prog == "cd":
        if args and args[0] not in ("~", _home(user, os_name)):
            return "", f"cd: no such file or directory: {args[0]}\n", 1
        return "", "", 0
    if prog == "clear":
        return CLEAR, "", 0
    if prog == "help":
        return (
            "This is the megatui lab's pretend VM: no real macOS inside.\n"
            f"It knows: {', '.join(BUILTINS)}.\n",
            "",
            0,
        )
    if prog == "true":
        return "", "", 0
    if prog == "false":
        return "", "", 1
    if prog == "exit":
        return "", "", int(args[0]) if args and args[0].isdigit() else 0
    if prog == "hostname":
        return f"{vm}\n", "", 0
    if prog == "whoami":
        return f"{user}\n", "", 0
    if prog == "uname":
        flag = args[0] if args else "-s"
        answers = {
            "-s": kernel,
            "-m": machine,
            "-r": _DARWIN_RELEASE,
            "-n": vm,
            "-a": f"{kernel} {vm} {_DARWIN_RELEASE} {kernel} Kernel Version {_DARWIN_RELEASE} "
            f"(megatui lab) {machine}",
        }
        if flag not in answers:
            return "", f"uname: illegal option -- {flag.lstrip('-')[:1]}\n", 1
        return answers[flag] + "\n", "", 0
    if prog == "sw_vers" and darwin:
        version, build = _MACOS_VERSION
        return (
            f"ProductName:\t\tmacOS\nProductVersion:\t\t{version}\nBuildVersion:\t\t{build}\n",
            "",
            0,
        )
    if prog == "sleep" and args:
        try:
            await asyncio.sleep(min(float(args[0]), 3600.0))
        except ValueError:
            return "", "usage: sleep seconds\n", 1
        return "", "", 0
    return "", f"zsh:1: command not found: {prog}\n", 127


class _VM:
    def __init__(
        self,
        paths: LabPaths,
        name: str,
        vm_dir: Path,
        *,
        started_at: float,
        resumed: bool,
    ) -> None:
        self.paths = paths
        self.name = name
        self.vm_dir = vm_dir
        self.started_at = started_at
        self.resumed = resumed
        self.spec = lab_spec(paths, name)
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns: set[socket.socket] = set()

    # ----------------------------------------------------------------- timeline

    def _until(self, offset: float) -> float:
        return max(0.0, self.started_at + offset - time.time())

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        ssh_ready = loop.run_in_executor(None, _ssh_handler, self)
        ip_after, port_after, login_after = timeline(self.spec, self.resumed)
        ip = self.spec.get("ip")
        port = self.spec.get("port")
        if isinstance(ip, str):
            loop.call_later(self._until(ip_after), self._lease, ip)
        if isinstance(ip, str) and isinstance(port, int):
            await asyncio.sleep(self._until(port_after))
            # While asyncssh loads in its thread it holds the GIL for long stretches,
            # so this loop could not accept-and-close in time and early connections
            # would wait in the backlog until sshd is up, skipping ssh-pending.
            # Opening the port only once it has loaded keeps the phases in order.
            with contextlib.suppress(Exception):
                await asyncio.shield(ssh_ready)
            await self._listen(ip, port, login_after, ssh_ready)
        # The VM runs until a signal powers it off (fake_tart._install_power_signals).
        await asyncio.Event().wait()
        return 0

    def _lease(self, ip: str) -> None:
        with contextlib.suppress(OSError):
            write_lease(self.paths, self.name, ip)

    async def _listen(
        self, ip: str, port: int, login_after: float, ssh_ready: asyncio.Future[SSHHandler]
    ) -> None:
        loop = asyncio.get_running_loop()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # A restarted VM must get its port back while old connections sit in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((ip, port))
        except OSError as exc:
            listener.close()
            print(f"lab VM {self.name}: cannot listen on {ip}:{port}: {exc}", file=sys.stderr)
            sys.stderr.flush()
            return
        listener.listen(64)
        listener.setblocking(False)
        while True:
            if self._sshd_fault() is not None:
                listener.close()
                await self._sshd_fault_passes()
                return await self._listen(ip, port, login_after, ssh_ready)
            try:
                async with asyncio.timeout(_FAULT_POLL):
                    conn, _peer = await loop.sock_accept(listener)
            except TimeoutError:
                continue
            if time.time() < self.started_at + login_after:
                conn.close()  # booting: the port answers, sshd is not up yet
                continue
            # Connections that arrive while asyncssh still loads wait in line here,
            # connected, as they would for a slow sshd.
            task = asyncio.create_task(self._serve(conn, ssh_ready))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    # ----------------------------------------------------------------- faults

    def _sshd_fault(self) -> str | None:
        """`TartLab.set_sshd_fault`: "down" (sshd gone, sessions cut) or
        "listener-dead" (no new connections; open sessions live on)."""
        try:
            text = (self.paths.lab_vm_dir(self.name) / "sshd_fault").read_text().strip()
        except OSError:
            return None
        return text if text in SSHD_FAULTS else None

    async def _sshd_fault_passes(self) -> None:
        while (fault := self._sshd_fault()) is not None:
            if fault == "down":
                for conn in list(self._conns):
                    with contextlib.suppress(OSError):
                        conn.shutdown(socket.SHUT_RDWR)
            await asyncio.sleep(_FAULT_POLL)

    async def _serve(self, conn: socket.socket, ssh_ready: asyncio.Future[SSHHandler]) -> None:
        try:
            serve = await ssh_ready
        except Exception as exc:
            conn.close()
            print(f"lab VM {self.name}: no SSH server: {exc}", file=sys.stderr, flush=True)
            return
        self._conns.add(conn)
        try:
            await serve(conn)
        finally:
            self._conns.discard(conn)

    # ----------------------------------------------------------------- sessions

    async def session(self, process: asyncssh.SSHServerProcess[str]) -> None:
        import asyncssh  # loaded already by _ssh_handler: only a lookup

        user = str(self.spec.get("user", "admin"))
        os_name = str(self.spec.get("os", "darwin"))
        try:
            if process.command is not None:
                out, err, status = await run_command(
                    process.command, vm=self.name, user=user, os_name=os_name
                )
                _write(process, out, err)
                process.exit(status)
                return
            await self._shell(process, user, os_name)
        except (asyncssh.Error, OSError):
            process.close()

    async def _shell(
        self, process: asyncssh.SSHServerProcess[str], user: str, os_name: str
    ) -> None:
        """A shell-ish session for the demo: banner, prompt, the commands above, exit."""
        import asyncssh

        stamp = time.strftime("%a %b %d %H:%M:%S")
        if process.get_terminal_type() is not None:
            # A fresh screen per session: not the text of the session before it.
            process.stdout.write(CLEAR)
        process.stdout.write(f"Last login: {stamp} on ttys000 (megatui lab VM {self.name})\n")
        process.stdout.write("This lab VM has a tiny shell: `help` lists what it knows.\n")
        prompt = f"{user}@{self.name} ~ % "
        status = 0
        while True:
            process.stdout.write(prompt)
            try:
                line = await process.stdin.readline()
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                process.stdout.write("\n")
                continue
            except asyncssh.TerminalSizeChanged:
                continue
            if not line:
                break
            command = line.strip()
            if command in ("exit", "logout") or command.startswith("exit "):
                words = command.split()
                status = int(words[1]) if len(words) > 1 and words[1].isdigit() else 0
                break
            out, err, code = await run_command(command, vm=self.name, user=user, os_name=os_name)
            if code == 127:
                err += "(a megatui lab VM: `help` lists the commands it knows)\n"
            _write(process, out, err)
        process.exit(status)


def _write(process: asyncssh.SSHServerProcess[str], out: str, err: str) -> None:
    """Output of a command. On a terminal both streams go to the screen, and there
    every line must end in CR LF: asyncssh's line editor adds the CR on stdout only,
    so stderr written as is came out stair-stepped."""
    if process.get_terminal_type() is not None:
        process.stdout.write(out + err)
        return
    process.stdout.write(out)
    process.stderr.write(err)


#: Serves one accepted connection with SSH until the client goes away.
SSHHandler = Callable[[socket.socket], Awaitable[None]]


def _ssh_handler(vm: _VM) -> SSHHandler:
    """Import asyncssh (slow: run this in a thread) and return the SSH handler."""
    import asyncssh

    class _Server(asyncssh.SSHServer):
        """Checks logins against the VM's lab spec, read afresh on every attempt."""

        def __init__(self, paths: LabPaths, name: str) -> None:
            self._paths = paths
            self._name = name

        def _spec(self) -> dict[str, object]:
            return lab_spec(self._paths, self._name)

        def begin_auth(self, username: str) -> bool:
            return True  # always require authentication

        def password_auth_supported(self) -> bool:
            return True

        def validate_password(self, username: str, password: str) -> bool:
            spec = self._spec()
            if spec.get("reject_logins"):
                return False
            return username == spec.get("user") and password == spec.get("password")

        def public_key_auth_supported(self) -> bool:
            return True

        def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
            spec = self._spec()
            authorized = spec.get("authorized_key")
            if spec.get("reject_logins") or not isinstance(authorized, str):
                return False
            if username != spec.get("user"):
                return False
            try:
                keys = asyncssh.import_authorized_keys(authorized)
            except (ValueError, asyncssh.KeyImportError):
                return False
            return keys.validate(key, "", "127.0.0.1") is not None

    async def serve(conn: socket.socket) -> None:
        try:
            host_key = asyncssh.read_private_key(vm.paths.host_key(vm.name))
            connection = await asyncssh.run_server(
                conn,
                server_factory=lambda: _Server(vm.paths, vm.name),
                server_host_keys=[host_key],
                process_factory=vm.session,
                encoding="utf-8",
                login_timeout=30,
            )
        except Exception:
            # A failed login or a client that went away: the client saw it already.
            conn.close()
            return
        with contextlib.suppress(Exception):
            await connection.wait_closed()

    return serve


def run_vm(
    paths: LabPaths,
    name: str,
    vm_dir: Path,
    *,
    started_at: float,
    resumed: bool,
    lock_fd: int,
) -> int:
    """Run the VM until a signal ends it. `lock_fd` holds the config.json lock; it
    stays open for the life of the process, which is what makes the VM "running"."""
    del lock_fd  # documented ownership only: closing it would stop the VM
    vm = _VM(paths, name, vm_dir, started_at=started_at, resumed=resumed)
    return asyncio.run(vm.main())
