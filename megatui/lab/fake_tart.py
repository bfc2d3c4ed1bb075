"""The lab's fake `tart` executable, following docs/facts/tart.md §12.

Output text, exit codes, stderr lines, the text-table padding and the JSON writer's
quirks (" : ", escaped slashes, shuffled keys, "[\\n\\n]") copy real tart 2.35.0 so
megatui's parsers meet the real thing in tests and demos.

VM state lives where real tart keeps it: a VM is running iff a `tart run` process
holds the POSIX lock on its config.json (F_GETLK, as tart's PIDLock), and suspended
iff state.vzvmsave exists. The lab-only facts (address, boot timeline, credentials)
sit in a per-VM spec file under `<root>/lab/`.

Only the standard library is imported here: `tart list` and `tart ip` run on every
poll and must start fast. `tart run` imports `megatui.lab.vmserver` (asyncssh) late.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import shutil
import signal
import struct
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

VERSION = "2.35.0"

#: Environment variable naming the lab root, for running `main()` without a wrapper.
ROOT_ENV = "MEGATUI_FAKE_TART_ROOT"


# --------------------------------------------------------------------------- layout


class LabPaths:
    """Where everything of one lab lives. Shared by the fake tart, the VM server and
    `megatui.lab.tartlab`, so the three agree without talking to each other."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin_dir = root / "bin"
        self.tart = self.bin_dir / "tart"
        self.tart_home = root / "tart_home"
        self.vms = self.tart_home / "vms"
        self.oci = self.tart_home / "cache" / "OCIs"
        self.lab = root / "lab"
        self.settings = self.lab / "lab.json"
        self.hang = self.lab / "hang"
        self.hung = self.lab / "hung"
        #: fault/<command> holds a fault name (FAULTS) that `tart <command>` acts out.
        self.fault = self.lab / "fault"

    def vm_dir(self, name: str) -> Path:
        return self.vms / urllib.parse.quote(name, safe="")

    def lab_vm_dir(self, name: str) -> Path:
        return self.lab / "vms" / urllib.parse.quote(name, safe="")

    def spec(self, name: str) -> Path:
        return self.lab_vm_dir(name) / "spec.json"

    def host_key(self, name: str) -> Path:
        return self.lab_vm_dir(name) / "host_key"

    def run_record(self, name: str) -> Path:
        return self.lab_vm_dir(name) / "run.json"

    def lease(self, name: str) -> Path:
        return self.lab_vm_dir(name) / "lease"

    def log(self, name: str) -> Path:
        return self.lab_vm_dir(name) / "run.log"


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Replace a file in one step, so a concurrent reader never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    raw = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, raw)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# --------------------------------------------------------------------------- locks

# struct flock differs per platform; F_GETLK needs the native layout.
_FLOCK_FORMAT = "qqihh" if sys.platform == "darwin" else "hhqqi4x"


def lock_holder(config_json: Path) -> int:
    """The pid holding the POSIX write lock on config.json, or 0 (tart's PIDLock.pid()).

    F_GETLK only asks; it never takes the lock, so polling `tart list` cannot make a
    concurrent `tart run` fail its trylock."""
    try:
        fd = os.open(config_json, os.O_RDONLY)
    except OSError:
        return 0  # tart: a failure to open the lock counts as "not running"
    try:
        if sys.platform == "darwin":
            query = struct.pack(_FLOCK_FORMAT, 0, 0, 0, fcntl.F_WRLCK, os.SEEK_SET)
            _start, _len, pid, kind, _whence = struct.unpack(
                _FLOCK_FORMAT, fcntl.fcntl(fd, fcntl.F_GETLK, query)
            )
        else:
            query = struct.pack(_FLOCK_FORMAT, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
            kind, _whence, _start, _len, pid = struct.unpack(
                _FLOCK_FORMAT, fcntl.fcntl(fd, fcntl.F_GETLK, query)
            )
    except OSError:
        return 0
    finally:
        os.close(fd)
    return 0 if kind == fcntl.F_UNLCK else int(pid)


# --------------------------------------------------------------------------- output


def swift_json(value: object) -> str:
    """JSONEncoder(.prettyPrinted) as swift-foundation writes it (docs/facts/tart.md §2.1)."""
    if isinstance(value, list) and not value:
        return "[\n\n]"
    text = json.dumps(_shuffled(value), indent=2, separators=(",", " : "), ensure_ascii=False)
    # "/" only occurs inside strings in JSON text, so escaping it globally is exact.
    return text.replace("/", "\\/")


def _shuffled(value: object) -> object:
    # Swift dictionaries are seeded per instance: every object gets its own order.
    if isinstance(value, dict):
        items = list(value.items())
        random.shuffle(items)
        return {k: _shuffled(v) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v) for v in value]
    return value


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """TextTable's plain format plus tart's trim (docs/facts/tart.md §2.2): every cell padded to
    its column, one space between cells, then only the very end loses its padding."""
    if not rows:
        return ""
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        " ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + "\n"
        for row in (header, *rows)
    ]
    return "".join(lines).strip()


def relative_time(seconds_ago: float) -> str:
    """RelativeDateTimeFormatter, .full units, numeric style, for a past date."""
    s = int(seconds_ago)
    if s <= 0:
        return "in 0 seconds"
    for unit, size in (
        ("year", 365 * 86400),
        ("month", 30 * 86400),
        ("week", 7 * 86400),
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
        ("second", 1),
    ):
        if s >= size:
            n = s // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- arguments


class _UsageError(Exception):
    pass


class _HelpRequested(Exception):
    pass


@dataclass(frozen=True)
class _Option:
    names: tuple[str, ...]
    dest: str
    value: str | None = None  # "<format>"; None for a flag
    choices: tuple[str, ...] | None = None
    max_int: int | None = None  # an unsigned integer option up to this value
    repeat: bool = False


@dataclass(frozen=True)
class _Command:
    name: str
    usage: str
    abstract: str
    options: tuple[_Option, ...] = ()
    positionals: tuple[str, ...] = ()
    variadic: bool = False


_UINT16 = 65535
_UINT64 = 2**64 - 1

_RUN_FLAGS = (
    "--no-graphics",
    "--graphics",
    "--suspendable",
    "--no-audio",
    "--no-clipboard",
    "--vnc",
    "--vnc-experimental",
    "--recovery",
    "--serial",
    "--nested",
    "--net-softnet",
    "--net-host",
    "--capture-system-keys",
    "--no-trackpad",
    "--no-pointer",
    "--no-keyboard",
)
_RUN_VALUES = (
    "--serial-path",
    "--disk",
    "--rosetta",
    "--dir",
    "--net-bridged",
    "--net-softnet-allow",
    "--net-softnet-block",
    "--net-softnet-expose",
    "--root-disk-opts",
    "--provisioning-opts",
)

_FORMAT = _Option(("--format",), "format", "<format>", choices=("text", "json"))

COMMANDS: dict[str, _Command] = {
    c.name: c
    for c in (
        _Command(
            "list",
            "tart list [--source <source>] [--format <format>] [--quiet]",
            "List created VMs",
            (
                _Option(("--source",), "source", "<source>"),
                _FORMAT,
                _Option(("-q", "--quiet"), "quiet"),
            ),
        ),
        _Command(
            "ip",
            "tart ip <name> [--wait <wait>] [--resolver <resolver>]",
            "Get VM's IP address",
            (
                _Option(("--wait",), "wait", "<wait>", max_int=_UINT16),
                _Option(
                    ("--resolver",), "resolver", "<resolver>", choices=("dhcp", "arp", "agent")
                ),
            ),
            ("<name>",),
        ),
        _Command(
            "run",
            "tart run [<options>] <name>",
            "Run a VM",
            tuple(_Option((f,), f[2:]) for f in _RUN_FLAGS)
            + tuple(_Option((f,), f[2:], f"<{f[2:]}>", repeat=True) for f in _RUN_VALUES),
            ("<name>",),
        ),
        _Command(
            "stop",
            "tart stop <name> [--timeout <timeout>]",
            "Stop a VM",
            (_Option(("-t", "--timeout"), "timeout", "<timeout>", max_int=_UINT64),),
            ("<name>",),
        ),
        _Command(
            "get",
            "tart get <name> [--format <format>]",
            "Get a VM's configuration",
            (_FORMAT,),
            ("<name>",),
        ),
        _Command(
            "delete", "tart delete <name> ...", "Delete a VM", (), ("<name> ...",), variadic=True
        ),
        _Command("suspend", "tart suspend <name>", "Suspend a VM", (), ("<name>",)),
    )
}

#: Real subcommands this fake does not simulate (docs/facts/tart.md §7.8).
_NOT_SIMULATED = (
    "create",
    "clone",
    "set",
    "login",
    "logout",
    "exec",
    "pull",
    "push",
    "import",
    "export",
    "prune",
    "rename",
    "fqn",
)


def _parse(cmd: _Command, args: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """ArgumentParser's behaviour for the options tart has, with its messages."""
    by_name = {n: o for o in cmd.options for n in o.names}
    values: dict[str, Any] = {}
    positionals: list[str] = []
    i = 0
    only_positionals = False
    while i < len(args):
        arg = args[i]
        i += 1
        if only_positionals or not arg.startswith("-") or arg == "-":
            positionals.append(arg)
            continue
        if arg == "--":
            only_positionals = True
            continue
        if arg in ("-h", "--help"):
            raise _HelpRequested
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        opt = by_name.get(name)
        if opt is None or (opt.value is None and eq):
            raise _UsageError(f"Unknown option '{name}'")
        if opt.value is None:
            values[opt.dest] = True
            continue
        shown = f"{name} {opt.value}"
        if eq:
            value = inline
        elif i < len(args) and not args[i].startswith("-"):
            value = args[i]
            i += 1
        else:
            raise _UsageError(f"Missing value for '{shown}'")
        converted: Any = value
        if opt.choices is not None and value not in opt.choices:
            raise _UsageError(f"The value '{value}' is invalid for '{shown}'")
        if opt.max_int is not None:
            if not value.isascii() or not value.isdigit() or int(value) > opt.max_int:
                raise _UsageError(f"The value '{value}' is invalid for '{shown}'")
            converted = int(value)
        if opt.repeat:
            values.setdefault(opt.dest, []).append(converted)
        else:
            values[opt.dest] = converted
    if len(positionals) < len(cmd.positionals):
        raise _UsageError(f"Missing expected argument '{cmd.positionals[len(positionals)]}'")
    if not cmd.variadic and len(positionals) > len(cmd.positionals):
        raise _UsageError(f"Unexpected argument '{positionals[len(cmd.positionals)]}'")
    return values, positionals


def _usage_error(message: str, usage: str, help_cmd: str) -> int:
    _err(f"Error: {message}")
    _err(f"Usage: {usage}")
    _err(f"  See '{help_cmd}' for more information.")
    return 64


# --------------------------------------------------------------------------- helpers


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _does_not_exist(name: str) -> str:
    return f'the specified VM "{name}" does not exist'


@dataclass
class _Entry:
    source: str  # "local" or "OCI"
    name: str
    path: Path


@dataclass
class _Ctx:
    paths: LabPaths
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ip_retry_interval(self) -> float:
        value = self.settings.get("ip_retry_interval", 1.0)
        return float(value) if isinstance(value, int | float) else 1.0


def _local_entries(paths: LabPaths) -> list[_Entry]:
    try:
        children = list(paths.vms.iterdir())
    except OSError:
        return []
    entries = [
        _Entry("local", urllib.parse.unquote(p.name), p)
        for p in children
        if (p / "config.json").is_file()
    ]
    return sorted(entries, key=lambda e: e.name)


def _oci_entries(paths: LabPaths) -> list[_Entry]:
    """Each pulled image twice: the tag symlink and the digest directory
    (docs/facts/tart.md §3.2)."""
    entries: list[_Entry] = []
    for dirpath, dirnames, _files in os.walk(paths.oci):
        repo = Path(dirpath).relative_to(paths.oci).as_posix()
        for d in list(dirnames):
            full = Path(dirpath) / d
            if not (full / "config.json").is_file():
                continue
            dirnames.remove(d)  # a VM directory: do not descend
            sep = ":" if full.is_symlink() else "@"
            entries.append(_Entry("OCI", urllib.parse.unquote(f"{repo}{sep}{d}"), full))
    return sorted(entries, key=lambda e: e.name)


def _find_local(paths: LabPaths, name: str) -> Path | None:
    path = paths.vm_dir(name)
    return path if (path / "config.json").is_file() else None


def _open_local(ctx: _Ctx, name: str) -> Path | None:
    """The VM's directory, or None after printing tart's "does not exist" (exit 2).

    The one rule for it; the commands' three-line calls of it (`_cmd_stop`, `_cmd_get`,
    `_cmd_suspend`...) are alike in shape, each then doing its own command."""
    vm_dir = _find_local(ctx.paths, name)
    if vm_dir is None:
        _err(_does_not_exist(name))
    return vm_dir


def _state(path: Path) -> str:
    if lock_holder(path / "config.json"):
        return "running"
    if (path / "state.vzvmsave").exists():
        return "suspended"
    return "stopped"


_VM_FILES = ("config.json", "disk.img", "nvram.bin")


def _sizes(path: Path) -> tuple[int, int]:
    """(apparent, allocated) bytes of the files tart counts."""
    apparent = allocated = 0
    for f in _VM_FILES:
        try:
            st = (path / f).stat()
        except OSError:
            continue
        apparent += st.st_size
        allocated += st.st_blocks * 512
    return apparent, allocated


def _accessed(path: Path) -> float:
    try:
        return path.stat().st_atime
    except OSError:
        return time.time()


def _touch_access(path: Path) -> None:
    """tart's open() updates the VM directory's access date (docs/facts/tart.md §4)."""
    with contextlib.suppress(OSError):
        os.utime(path, (time.time(), path.stat().st_mtime))


def _vm_os(path: Path) -> str:
    config = read_json(path / "config.json") or {}
    value = config.get("os")
    return value if isinstance(value, str) else "darwin"


# --------------------------------------------------------------------------- commands


def _cmd_list(ctx: _Ctx, opts: dict[str, Any], _pos: list[str]) -> int:
    source = opts.get("source")
    if source is not None and source not in ("local", "oci"):
        return _usage_error(
            f"'{source}' is not a valid <source>", COMMANDS["list"].usage, "tart list --help"
        )
    entries: list[_Entry] = []
    if source in (None, "local"):
        entries += _local_entries(ctx.paths)
    if source in (None, "oci"):
        entries += _oci_entries(ctx.paths)
    if opts.get("quiet"):
        for e in entries:
            _out(e.name)
        return 0
    now = time.time()
    rows: list[dict[str, Any]] = []
    for e in entries:
        apparent, allocated = _sizes(e.path)
        state = _state(e.path)
        accessed = _accessed(e.path)
        rows.append(
            {
                "Source": e.source,
                "Name": e.name,
                "Disk": apparent // 10**9,
                "Size": allocated // 10**9,
                "Accessed": accessed,
                "Running": state == "running",
                "State": state,
            }
        )
    if opts.get("format") == "json":
        for r in rows:
            r["Accessed"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r["Accessed"]))
        _out(swift_json(rows))
        return 0
    header = ["Source", "Name", "Disk", "Size", "Accessed", "State"]
    cells = [
        [
            r["Source"],
            r["Name"],
            str(r["Disk"]),
            str(r["Size"]),
            relative_time(now - r["Accessed"]),
            r["State"],
        ]
        for r in rows
    ]
    _out(text_table(header, cells))
    return 0


def _run_elapsed(paths: LabPaths, name: str, holder: int) -> tuple[float, bool]:
    """Seconds since the current `tart run` of the VM started, and whether it resumed."""
    record = read_json(paths.run_record(name)) or {}
    if record.get("pid") != holder:
        return 0.0, False  # the runner holds the lock but has not written its record yet
    started = record.get("started_at")
    resumed = bool(record.get("resumed"))
    if not isinstance(started, int | float):
        return 0.0, resumed
    return max(0.0, time.time() - started), resumed


def lab_spec(paths: LabPaths, name: str) -> dict[str, Any]:
    return read_json(paths.spec(name)) or {}


def timeline(spec: dict[str, Any], resumed: bool) -> tuple[float, float, float]:
    """(ip_after, port_after, login_after). A VM resumed from suspend is already booted."""
    if resumed:
        return 0.0, 0.0, 0.0
    values = []
    for key, default in (("ip_after", 2.0), ("port_after", 4.0), ("login_after", 6.0)):
        v = spec.get(key, default)
        values.append(float(v) if isinstance(v, int | float) else default)
    return values[0], values[1], values[2]


def write_lease(paths: LabPaths, name: str, ip: str) -> None:
    write_atomic(paths.lease(name), json.dumps({"ip": ip, "leased_at": time.time()}))


def _resolve_ip(ctx: _Ctx, name: str, vm_dir: Path, resolver: str) -> str | None:
    spec = lab_spec(ctx.paths, name)
    ip = spec.get("ip")
    holder = lock_holder(vm_dir / "config.json")
    if holder:
        elapsed, resumed = _run_elapsed(ctx.paths, name, holder)
        if isinstance(ip, str) and elapsed >= timeline(spec, resumed)[0]:
            if not ctx.paths.lease(name).exists():
                write_lease(ctx.paths, name, ip)
            return ip
        return None
    if resolver != "dhcp":
        return None  # the ARP cache and the guest agent know only live guests
    # bootpd's lease outlives the VM: tart ip returns it for a stopped VM (docs/facts/tart.md §5.5).
    lease = read_json(ctx.paths.lease(name)) or {}
    leased = lease.get("ip")
    return leased if isinstance(leased, str) else None


def _cmd_ip(ctx: _Ctx, opts: dict[str, Any], pos: list[str]) -> int:
    name = pos[0]
    vm_dir = _open_local(ctx, name)
    if vm_dir is None:
        return 2
    _touch_access(vm_dir)
    resolver = str(opts.get("resolver", "dhcp"))
    wait_until = time.monotonic() + int(opts.get("wait", 0))
    while True:
        ip = _resolve_ip(ctx, name, vm_dir, resolver)
        if ip is not None:
            _out(ip)
            return 0
        time.sleep(ctx.ip_retry_interval)
        if time.monotonic() >= wait_until:
            break
    message = "no IP address found"
    if not lock_holder(vm_dir / "config.json"):
        message += ", is your VM running?"
    if resolver == "agent":
        message += " (also make sure that Guest agent for Tart is running inside of a VM)"
    elif resolver == "arp" and _vm_os(vm_dir) == "linux":
        message += " (not all Linux distributions are compatible with the ARP resolver)"
    _err(message)
    return 1


def _running_darwin_vms(paths: LabPaths, exclude: str) -> list[str]:
    return [
        e.name
        for e in _local_entries(paths)
        if e.name != exclude and lock_holder(e.path / "config.json") and _vm_os(e.path) == "darwin"
    ]


def _power_off(code: int) -> NoReturn:
    # VZVirtualMachine.stop() is a hard power-off, so no graceful teardown here
    # either: exiting closes every socket and the kernel drops the lock.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _install_power_signals(vm_dir: Path, suspendable: bool) -> None:
    """tart run's signals (docs/facts/tart.md §6.4). Plain handlers, not asyncio ones: they must
    work from the first instant, and Python runs them even inside the event loop's
    select(). SIGHUP keeps its default: tart dies of it too."""

    def on_sigint(_signum: int, _frame: object) -> None:
        _out("Stopping VM...")
        _power_off(0)

    def on_sigusr1(_signum: int, _frame: object) -> None:
        if not suspendable:
            # tart prints this to stdout, and the VM dies instead of suspending (§7.2).
            _out("Failed to suspend the VM: the VM was not started with --suspendable")
            _power_off(1)
        write_atomic(vm_dir / "state.vzvmsave", b"megatui lab suspended VM state\n")
        _power_off(0)

    def on_sigusr2(_signum: int, _frame: object) -> None:
        _out("Requesting guest OS to stop...")
        _out("guest has stopped the virtual machine")
        _power_off(0)

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGUSR1, on_sigusr1)
    signal.signal(signal.SIGUSR2, on_sigusr2)


def _cmd_run(ctx: _Ctx, opts: dict[str, Any], pos: list[str]) -> int:
    name = pos[0]
    usage = COMMANDS["run"].usage
    for a, b in (("vnc", "vnc-experimental"), ("graphics", "no-graphics")):
        if opts.get(a) and opts.get(b):
            return _usage_error(f"--{a} and --{b} are mutually exclusive", usage, "tart run --help")
    if sum(bool(opts.get(k)) for k in ("net-bridged", "net-softnet", "net-host")) > 1:
        return _usage_error(
            "--net-bridged, --net-softnet and --net-host are mutually exclusive",
            usage,
            "tart run --help",
        )
    vm_dir = _find_local(ctx.paths, name)
    if vm_dir is None:
        # validate() opens the VM, so ArgumentParser prefixes "Error:" and exits 1 (§1).
        _err(f"Error: {_does_not_exist(name)}")
        return 1
    os_name = _vm_os(vm_dir)
    suspended = (vm_dir / "state.vzvmsave").exists()
    if opts.get("suspendable") and os_name != "darwin":
        return _usage_error("You can only suspend macOS VMs", usage, "tart run --help")
    # Real tart hits Apple's limit only after it has taken the lock, while
    # Virtualization.framework starts. The fake checks first so a failing run never
    # shows up as "running" for an instant, which keeps callers' tests deterministic.
    if os_name == "darwin":
        others = _running_darwin_vms(ctx.paths, exclude=name)
        if len(others) >= 2:
            _err(
                "The number of VMs exceeds the system limit "
                f"(other running VMs: {', '.join(others)})"
            )
            return 1
    suspendable = bool(opts.get("suspendable")) or suspended
    # Signals first: `tart stop` sends SIGINT as soon as it sees the lock, which may
    # be while this process is still importing asyncssh.
    _install_power_signals(vm_dir, suspendable)
    # Never open and close config.json again in this process after locking: closing
    # any descriptor of a file drops the process's POSIX locks on it.
    lock_fd = os.open(vm_dir / "config.json", os.O_RDWR)
    try:
        fcntl.lockf(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock_fd)
        _err(f'VM "{name}" is already running!')
        return 2
    started_at = time.time()
    if suspended:
        _out("restoring VM state from a snapshot...")
        with contextlib.suppress(FileNotFoundError):
            (vm_dir / "state.vzvmsave").unlink()
        _out("resuming VM...")
    write_atomic(
        ctx.paths.run_record(name),
        json.dumps({"pid": os.getpid(), "started_at": started_at, "resumed": suspended}),
    )
    _touch_access(vm_dir)

    from megatui.lab.vmserver import run_vm  # asyncssh: only `tart run` pays for it

    return run_vm(
        ctx.paths,
        name,
        vm_dir,
        started_at=started_at,
        resumed=suspended,
        lock_fd=lock_fd,
    )


def _cmd_stop(ctx: _Ctx, opts: dict[str, Any], pos: list[str]) -> int:
    name = pos[0]
    vm_dir = _open_local(ctx, name)
    if vm_dir is None:
        return 2
    config = vm_dir / "config.json"
    pid = lock_holder(config)
    if not pid:
        state_file = vm_dir / "state.vzvmsave"
        if state_file.exists():
            state_file.unlink()
            return 0
        _err(f'VM "{name}" is not running')
        return 2
    timeout = int(opts.get("timeout", 30))
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while lock_holder(config) == pid and time.monotonic() < deadline:
        time.sleep(0.1)
    if lock_holder(config) == pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError as exc:
            _err(f'failed to forcefully terminate the VM "{name}": {exc.errno}')
            return 1
        # The kernel drops the lock as the process exits; wait for that so a
        # `tart list` right after this returns agrees.
        deadline = time.monotonic() + 2.0
        while lock_holder(config) == pid and time.monotonic() < deadline:
            time.sleep(0.02)
    return 0


def _cmd_get(ctx: _Ctx, opts: dict[str, Any], pos: list[str]) -> int:
    name = pos[0]
    vm_dir = _open_local(ctx, name)
    if vm_dir is None:
        return 2
    _touch_access(vm_dir)
    config = read_json(vm_dir / "config.json") or {}
    apparent, allocated = _sizes(vm_dir)
    raw_display = config.get("display")
    display: dict[str, Any] = raw_display if isinstance(raw_display, dict) else {}
    shown = f"{display.get('width', 1024)}x{display.get('height', 768)}{display.get('unit', '')}"
    state = _state(vm_dir)
    memory = config.get("memorySize", 8 * 1024**3)
    info: dict[str, Any] = {
        "OS": config.get("os", "darwin"),
        "CPU": config.get("cpuCount", 4),
        "Memory": int(memory) // 1024 // 1024 if isinstance(memory, int) else 0,
        "Disk": apparent // 10**9,
        "DiskFormat": config.get("diskFormat", "raw"),
        "Size": f"{allocated / 1e9:.3f}",
        "Display": shown,
        "Running": state == "running",
        "State": state,
    }
    if opts.get("format") == "json":
        _out(swift_json(info))
        return 0
    header = [k for k in info if k != "Running"]
    _out(text_table(header, [[str(info[k]) for k in header]]))
    return 0


def _cmd_delete(ctx: _Ctx, _opts: dict[str, Any], pos: list[str]) -> int:
    oci = {e.name: e.path for e in _oci_entries(ctx.paths)}
    for name in pos:
        vm_dir = _find_local(ctx.paths, name)
        if vm_dir is not None:
            if lock_holder(vm_dir / "config.json"):
                _err(f'VM "{name}" is running')
                return 1
            shutil.rmtree(vm_dir)
            continue
        path = oci.get(name)
        if path is None:
            _err(_does_not_exist(name))
            return 2
        if path.is_symlink():
            path.unlink()
        else:
            shutil.rmtree(path)
    return 0


def _cmd_suspend(ctx: _Ctx, _opts: dict[str, Any], pos: list[str]) -> int:
    name = pos[0]
    vm_dir = _open_local(ctx, name)
    if vm_dir is None:
        return 2
    pid = lock_holder(vm_dir / "config.json")
    if not pid:
        # tart formats VMNotRunning twice here (docs/facts/tart.md §7.2).
        _err(f'VM "VM "{name}" is not running" is not running')
        return 2
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGUSR1)
    return 0  # returns at once, without waiting for the runner


_HANDLERS: dict[str, Callable[[_Ctx, dict[str, Any], list[str]], int]] = {
    "list": _cmd_list,
    "ip": _cmd_ip,
    "run": _cmd_run,
    "stop": _cmd_stop,
    "get": _cmd_get,
    "delete": _cmd_delete,
    "suspend": _cmd_suspend,
}


# --------------------------------------------------------------------------- hanging


def _hang(paths: LabPaths, command: str) -> NoReturn:
    """Block forever, like a tart wedged on a stuck XPC call, with a child process in
    the same group, so tests can prove a timeout leaves nothing behind."""
    paths.hung.mkdir(parents=True, exist_ok=True)
    (paths.hung / f"{os.getpid()}").write_text(f"tart {command}\n")
    child = os.fork()
    if child == 0:
        (paths.hung / f"{os.getpid()}").write_text(f"tart {command} (child)\n")
        while True:
            signal.pause()
    while True:
        signal.pause()


# --------------------------------------------------------------------------- faults

#: What each fault prints (to stdout, to stderr) and its exit code. "locked" is the
#: keychain message tart prints over SSH without an unlocked login keychain (docs/facts/tart.md
#: §6.6); "garbage" is output that is no JSON at all, with a successful exit.
FAULTS: dict[str, tuple[str, str, int]] = {
    "garbage": ("\x1b[31m\ufffd\x00 Segmentation fault? {{[[ not json\n", "", 0),
    "locked": ("", "Error: Keychain returned unsuccessful status -25308\n", 1),
}


def _fault(paths: LabPaths, command: str) -> str | None:
    try:
        name = (paths.fault / command).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return name if name in FAULTS else None


# --------------------------------------------------------------------------- main


def _help() -> str:
    lines = [
        "OVERVIEW: A tool to manage macOS and Linux VMs on Apple Silicon (megatui lab fake).",
        "",
        "USAGE: tart <subcommand>",
        "",
        "OPTIONS:",
        "  --version               Show the version.",
        "  -h, --help              Show help information.",
        "",
        "SUBCOMMANDS:",
    ]
    lines += [f"  {c.name:<23} {c.abstract}" for c in COMMANDS.values()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None, *, root: str | Path | None = None) -> int:
    """Run one fake `tart` invocation; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    root_value = root if root is not None else os.environ.get(ROOT_ENV)
    if not root_value:
        _err(f"fake tart: no lab root (pass root= or set {ROOT_ENV})")
        return 1
    paths = LabPaths(Path(root_value))
    ctx = _Ctx(paths, read_json(paths.settings) or {})

    command = args[0] if args else ""
    hang_name = "version" if command == "--version" else command
    if hang_name and (paths.hang / hang_name).exists():
        _hang(paths, hang_name)
    if hang_name and (fault := _fault(paths, hang_name)) is not None:
        out, err, code = FAULTS[fault]
        sys.stdout.write(out)
        sys.stderr.write(err)
        return code

    if not args or command in ("-h", "--help", "help"):
        _out(_help())
        return 0
    if command == "--version":
        _out(VERSION)
        return 0
    if command.startswith("-"):
        return _usage_error(f"Unknown option '{command}'", "tart <subcommand>", "tart --help")
    if command in _NOT_SIMULATED:
        _err(f"fake tart: '{command}' is not simulated by the megatui lab")
        return 1
    spec = COMMANDS.get(command)
    if spec is None:
        return _usage_error(f"Unexpected argument '{command}'", "tart <subcommand>", "tart --help")
    try:
        opts, pos = _parse(spec, args[1:])
    except _HelpRequested:
        _out(f"OVERVIEW: {spec.abstract}\n\nUSAGE: {spec.usage}")
        return 0
    except _UsageError as exc:
        return _usage_error(str(exc), spec.usage, f"tart {command} --help")
    try:
        return _HANDLERS[command](ctx, opts, pos)
    except BrokenPipeError:
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
