"""The simulated Tart host: the fake tart's faithfulness to tart.md, and lab VMs
booting through IP -> port -> SSH login."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import asyncssh
import pytest
from lab_fixtures import TartLabFactory, fast_vm, tart_lab_fixture, wait_for  # noqa: F401

from megatui.config import load_settings
from megatui.lab import fake_tart
from megatui.lab.tartlab import LabVMSpec, TartLab, process_alive
from megatui.lab.vmserver import CLEAR, run_command

# --------------------------------------------------------------------------- helpers


def tart(
    lab: TartLab, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(lab.tart_path), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def in_process(
    lab: TartLab, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run the fake tart's main() here: fast, for output-format checks."""
    code = fake_tart.main(list(args), root=lab.root)
    out = capsys.readouterr()
    return code, out.out, out.err


def started_at(lab: TartLab, name: str) -> float:
    record = json.loads(lab.paths.run_record(name).read_text())
    return float(record["started_at"])


async def tcp_probe(ip: str, port: int) -> str:
    """'refused', 'closed' (accepted, then closed at once) or 'ssh' (an SSH banner)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 2.0)
    except ConnectionRefusedError:
        return "refused"
    try:
        data = await asyncio.wait_for(reader.read(64), 2.0)
    except ConnectionResetError:
        data = b""
    finally:
        writer.close()
    return "ssh" if data.startswith(b"SSH-") else "closed"


async def login(
    ip: str, port: int, *, password: str | None = "admin", key: asyncssh.SSHKey | None = None
) -> asyncssh.SSHClientConnection:
    return await asyncio.wait_for(
        asyncssh.connect(
            ip,
            port,
            username="admin",
            password=password,
            client_keys=[key] if key is not None else None,
            agent_path=None,
            known_hosts=None,
        ),
        5.0,
    )


# --------------------------------------------------------------------------- boot timeline


async def test_vm_boots_through_ip_port_and_login(tart_lab: TartLabFactory) -> None:
    ip_after, port_after, login_after = 0.4, 0.8, 1.2
    lab = tart_lab(
        [
            LabVMSpec(
                "alpha",
                initial="running",
                ip_after=ip_after,
                port_after=port_after,
                login_after=login_after,
            )
        ]
    )
    ip, port = lab.address("alpha")
    t0 = started_at(lab, "alpha")
    tolerance = 0.05

    # tart ip: "no IP address found" (exit 1) until ip_after, then the address.
    answers: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        before = time.time() - t0
        result = await asyncio.to_thread(tart, lab, "ip", "alpha")
        after = time.time() - t0
        if result.returncode == 0:
            assert result.stdout == f"{ip}\n"
            assert after >= ip_after - tolerance
            answers.append("ip")
            break
        assert (result.returncode, result.stderr) == (1, "no IP address found\n")
        assert before < ip_after + tolerance
        answers.append("none")
    assert answers[-1] == "ip"

    # The port: refused, then accept-and-close, then an SSH server.
    seen: list[str] = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and seen[-1:] != ["ssh"]:
        before = time.time() - t0
        state = await tcp_probe(ip, port)
        after = time.time() - t0
        if state == "refused":
            # The port may open later than port_after (never earlier): the VM opens
            # it only once its SSH server has loaded, so the phases stay in order on
            # a loaded machine.
            assert "closed" not in seen and "ssh" not in seen, f"refused again at {before:.2f} s"
        elif state == "closed":
            assert after >= port_after - tolerance and before < login_after + tolerance
        else:
            assert after >= login_after - tolerance, f"ssh at {after:.2f} s"
        if not seen or seen[-1] != state:
            seen.append(state)
        await asyncio.sleep(0.02)
    # Refusal can pass unseen on a slow machine; the booting port must not.
    assert seen in (["closed", "ssh"], ["refused", "closed", "ssh"]), seen

    async with await login(ip, port) as conn:
        ready = await conn.run("echo ready", check=False)
    assert (ready.exit_status, ready.stdout) == (0, "ready\n")


async def test_port_is_refused_before_port_after(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running", port_after=30.0, login_after=30.0)])
    ip, port = lab.address("alpha")
    assert await tcp_probe(ip, port) == "refused"


async def test_ip_wait_waits_for_the_lease(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running", ip_after=0.5)])
    result = await asyncio.to_thread(tart, lab, "ip", "alpha", "--wait", "5")
    assert (result.returncode, result.stdout) == (0, f"{lab.address('alpha')[0]}\n")


# --------------------------------------------------------------------------- logins

IMMEDIATE = {"ip_after": 0.0, "port_after": 0.0, "login_after": 0.0}


async def ready_vm(tart_lab: TartLabFactory, **spec: object) -> tuple[TartLab, str, int]:
    values: dict[str, object] = {**IMMEDIATE, "initial": "running", **spec}
    lab = tart_lab([LabVMSpec("alpha", **values)])  # type: ignore[arg-type]
    ip, port = lab.address("alpha")

    async def listening() -> bool:
        return await tcp_probe(ip, port) != "refused"

    deadline = time.monotonic() + 10
    while not await listening():
        assert time.monotonic() < deadline, "lab VM never listened"
        await asyncio.sleep(0.02)
    return lab, ip, port


async def test_password_login_and_wrong_password(tart_lab: TartLabFactory) -> None:
    _lab, ip, port = await ready_vm(tart_lab, password="s3cret")
    async with await login(ip, port, password="s3cret") as conn:
        assert (await conn.run("hostname", check=True)).stdout == "alpha\n"
    with pytest.raises(asyncssh.PermissionDenied):
        await login(ip, port, password="admin")


async def test_public_key_login(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    other = asyncssh.generate_private_key("ssh-ed25519")
    pub = tmp_path / "id.pub"
    pub.write_bytes(key.export_public_key())
    # A path to a .pub file works as well as the key line itself.
    _lab, ip, port = await ready_vm(tart_lab, authorized_key=str(pub))
    async with await login(ip, port, password=None, key=key) as conn:
        assert (await conn.run("echo ready", check=True)).stdout == "ready\n"
    with pytest.raises(asyncssh.PermissionDenied):
        await login(ip, port, password=None, key=other)


async def test_reject_logins_can_be_switched_on_a_running_vm(tart_lab: TartLabFactory) -> None:
    lab, ip, port = await ready_vm(tart_lab, reject_logins=True)
    with pytest.raises(asyncssh.PermissionDenied):
        await login(ip, port)
    lab.set_reject_logins("alpha", False)
    async with await login(ip, port) as conn:
        assert (await conn.run("true", check=False)).exit_status == 0
    lab.set_reject_logins("alpha", True)
    with pytest.raises(asyncssh.PermissionDenied):
        await login(ip, port)


async def test_host_key_is_stable_across_restarts_until_rotated(tart_lab: TartLabFactory) -> None:
    lab, ip, port = await ready_vm(tart_lab)
    stored = asyncssh.read_private_key(lab.host_key_path("alpha")).public_data
    first = await asyncssh.get_server_host_key(ip, port)
    assert first is not None and first.public_data == stored

    assert (await asyncio.to_thread(tart, lab, "stop", "alpha")).returncode == 0
    await asyncio.to_thread(lab.start, "alpha")
    deadline = time.monotonic() + 10
    while await tcp_probe(ip, port) == "refused":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    again = await asyncssh.get_server_host_key(ip, port)
    assert again is not None and again.public_data == stored

    lab.rotate_host_key("alpha")
    rotated = await asyncssh.get_server_host_key(ip, port)
    assert rotated is not None and rotated.public_data != stored


async def test_exec_commands_and_interactive_shell(tart_lab: TartLabFactory) -> None:
    _lab, ip, port = await ready_vm(tart_lab)
    async with await login(ip, port) as conn:
        assert (await conn.run("uname", check=True)).stdout == "Darwin\n"
        missing = await conn.run("brew --version", check=False)
        assert (missing.exit_status, missing.stderr) == (127, "zsh:1: command not found: brew\n")
        process = await conn.create_process(term_type="xterm")
        banner = await asyncio.wait_for(process.stdout.readuntil("% "), 5)
        assert "Last login:" in banner and banner.endswith("admin@alpha ~ % ")
        process.stdin.write("whoami\n")
        reply = await asyncio.wait_for(process.stdout.readuntil("% "), 5)
        assert "whoami" in reply  # echoed by the terminal line editor
        assert "admin\r\n" in reply
        process.stdin.write("exit 3\n")
        done = await asyncio.wait_for(process.wait(), 5)
        assert done.exit_status == 3


def _bare_newlines(text: str) -> int:
    return text.count("\n") - text.count("\r\n")


async def test_the_lab_shell_on_a_terminal(tart_lab: TartLabFactory) -> None:
    _lab, ip, port = await ready_vm(tart_lab)
    async with await login(ip, port) as conn:
        process = await conn.create_process(term_type="xterm")
        banner = await asyncio.wait_for(process.stdout.readuntil("% "), 5)
        # Each session starts on a clear screen, not below the previous one's text.
        assert banner.startswith(CLEAR), repr(banner)
        assert "`help`" in banner
        replies = []
        for command in ("ls", "pwd", "brew install x", "uname -z", "help"):
            process.stdin.write(command + "\n")
            replies.append(await asyncio.wait_for(process.stdout.readuntil("% "), 5))
        ls, pwd, missing, bad_flag, help_text = replies
        assert "Desktop  Documents  Downloads" in ls
        assert "/Users/admin\r\n" in pwd
        assert "zsh:1: command not found: brew\r\n" in missing
        assert "`help` lists the commands" in missing
        assert "uname: illegal option -- z\r\n" in bad_flag
        assert "ls, pwd" in help_text
        # On a terminal every line ends in CR LF, stderr's too: no stair steps.
        for text in (banner, *replies):
            assert _bare_newlines(text) == 0, repr(text)
        process.stdin.write("exit\n")
        await asyncio.wait_for(process.wait(), 5)
        # Without a terminal, stdout and stderr stay apart and plain.
        result = await conn.run("ls nowhere", check=False)
        assert (result.exit_status, result.stdout) == (1, "")
        assert result.stderr == "ls: nowhere: No such file or directory\n"


async def test_run_command_without_ssh() -> None:
    assert await run_command("echo -n hi", vm="v", user="u", os_name="linux") == ("hi", "", 0)
    assert await run_command("uname -m", vm="v", user="u", os_name="linux") == (
        "aarch64\n",
        "",
        0,
    )
    assert (await run_command("echo 'open", vm="v", user="u", os_name="darwin"))[2] == 1
    assert (await run_command("false", vm="v", user="u", os_name="darwin"))[2] == 1
    assert await run_command("pwd", vm="v", user="u", os_name="linux") == ("/home/u\n", "", 0)
    assert await run_command("ls", vm="v", user="u", os_name="linux") == ("", "", 0)
    listing = (await run_command("ls -la", vm="v", user="u", os_name="darwin"))[0]
    assert listing.splitlines()[:2] == ["Desktop", "Documents"]
    assert await run_command("ls ~/Desktop", vm="v", user="u", os_name="darwin") == ("", "", 0)
    assert await run_command("clear", vm="v", user="u", os_name="darwin") == (CLEAR, "", 0)


# --------------------------------------------------------------------------- lifecycle


async def test_tart_stop_ends_the_run_process_and_leaves_a_stale_lease(
    tart_lab: TartLabFactory,
) -> None:
    lab, ip, _port = await ready_vm(tart_lab)
    assert (await asyncio.to_thread(tart, lab, "ip", "alpha")).stdout == f"{ip}\n"
    pid = lab.run_pid("alpha")
    assert pid is not None
    stop = await asyncio.to_thread(tart, lab, "stop", "alpha")
    assert (stop.returncode, stop.stdout, stop.stderr) == (0, "", "")
    wait_for(lambda: not process_alive(pid), what="the run process to end")
    assert "Stopping VM..." in lab.log_path("alpha").read_text()
    listed = json.loads((await asyncio.to_thread(tart, lab, "list", "--format", "json")).stdout)
    alpha = next(e for e in listed if e["Name"] == "alpha")
    assert (alpha["State"], alpha["Running"]) == ("stopped", False)
    stale = await asyncio.to_thread(tart, lab, "ip", "alpha")
    assert (stale.returncode, stale.stdout) == (0, f"{ip}\n")


def test_run_errors_follow_tart_md(tart_lab: TartLabFactory) -> None:
    lab = tart_lab(
        [
            fast_vm("a", initial="running"),
            fast_vm("b", initial="running"),
            fast_vm("c"),
        ]
    )
    missing = tart(lab, "run", "--no-graphics", "ghost")
    assert (missing.returncode, missing.stderr) == (
        1,
        'Error: the specified VM "ghost" does not exist\n',
    )
    double = tart(lab, "run", "--no-graphics", "a")
    assert (double.returncode, double.stderr) == (2, 'VM "a" is already running!\n')
    third = tart(lab, "run", "--no-graphics", "c")
    assert (third.returncode, third.stderr) == (
        1,
        "The number of VMs exceeds the system limit (other running VMs: a, b)\n",
    )
    both = tart(lab, "run", "--graphics", "--no-graphics", "c")
    assert both.returncode == 64
    assert both.stderr.splitlines() == [
        "Error: --graphics and --no-graphics are mutually exclusive",
        "Usage: tart run [<options>] <name>",
        "  See 'tart run --help' for more information.",
    ]


def test_suspend_and_resume(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([fast_vm("mac")])
    log = lab.log_path("mac")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        runner = subprocess.Popen(
            [str(lab.tart_path), "run", "--no-graphics", "--suspendable", "mac"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: lab.run_pid("mac") == runner.pid, what="mac to run")
        assert tart(lab, "suspend", "mac").returncode == 0
        assert runner.wait(10) == 0
        assert tart(lab, "list", "-q").returncode == 0
        state = json.loads(tart(lab, "get", "mac", "--format", "json").stdout)["State"]
        assert state == "suspended"
        lab.start("mac")
        assert "resuming VM..." in log.read_text()
    finally:
        runner.kill()
        runner.wait()


def test_suspend_without_suspendable_kills_the_vm(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([fast_vm("mac", initial="running")])
    pid = lab.run_pid("mac")
    assert pid is not None
    assert tart(lab, "suspend", "mac").returncode == 0
    wait_for(lambda: not process_alive(pid), what="the runner to die")
    assert "Failed to suspend the VM: " in lab.log_path("mac").read_text()
    assert json.loads(tart(lab, "get", "mac", "--format", "json").stdout)["State"] == "stopped"


def test_stop_all_leaves_no_process_however_vms_were_started(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([fast_vm("a", initial="running"), fast_vm("b", os="linux")])
    # b is started the way TartCLI.start does it: nohup in a shell that exits at once.
    detach = 'nohup "$@" >/dev/null 2>&1 </dev/null & echo $!'
    out = subprocess.run(
        ["/bin/sh", "-c", detach, "sh", str(lab.tart_path), "run", "--no-graphics", "b"],
        capture_output=True,
        text=True,
        check=True,
    )
    detached = int(out.stdout)
    wait_for(lambda: lab.run_pid("b") == detached, what="b to run")
    lab.set_hang("list", True)
    hung = subprocess.Popen([str(lab.tart_path), "list"], start_new_session=True)
    wait_for(lambda: len(lab.hung_pids()) == 2, what="tart list to hang")
    pids = [lab.run_pid("a"), detached, *lab.hung_pids()]
    lab.stop_all()
    hung.wait(5)
    assert [p for p in pids if p is not None and process_alive(p)] == []
    assert lab.run_pid("a") is None and lab.run_pid("b") is None


# --------------------------------------------------------------------------- output formats


def test_list_text_table_padding(
    tart_lab: TartLabFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = tart_lab([fast_vm("runner-1", initial="running"), fast_vm("ubuntu", initial="suspended")])
    code, out, err = in_process(lab, capsys, "list")
    assert (code, err) == (0, "")
    lines = out.split("\n")
    assert lines[-1] == ""  # print() ends the output
    header, *rows = lines[:-1]
    assert re.fullmatch(r"Source Name +Disk Size Accessed +State {4}", header)
    # Every line keeps its padding except the very last one.
    assert all(len(line) == len(header) for line in lines[:-2])
    assert not lines[-2].endswith(" ")
    assert rows[0].startswith("local  runner-1 ") and rows[0].endswith(" running  ")
    assert rows[1].startswith("local  ubuntu ") and " suspended" in rows[1]
    oci = [r for r in rows if r.startswith("OCI    ")]
    names = [r.split()[1] for r in oci]
    assert names[0] == "ghcr.io/cirruslabs/macos-sequoia-base:latest"
    assert names[1].startswith("ghcr.io/cirruslabs/macos-sequoia-base@sha256:")
    assert "Running" not in header  # JSON only (tart.md §2.2)


def test_list_json_encoding(tart_lab: TartLabFactory, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running")])
    orders = set()
    for _ in range(12):
        code, out, _err = in_process(lab, capsys, "list", "--format", "json")
        assert code == 0
        assert out.startswith('[\n  {\n    "') and out.endswith("  }\n]\n")
        assert '" : ' in out and '": ' not in out
        assert "ghcr.io\\/cirruslabs\\/macos-sequoia-base:latest" in out
        entries = json.loads(out)
        orders.add(tuple(entries[0]))
        assert [e["Source"] for e in entries] == ["local", "OCI", "OCI"]
        local = entries[0]
        assert set(local) == {"Source", "Name", "Disk", "Size", "Accessed", "Running", "State"}
        assert (local["State"], local["Running"]) == ("running", True)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", local["Accessed"])
    assert len(orders) > 1  # keys come in a random order on each run


def test_empty_host_outputs(tart_lab: TartLabFactory, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tart_lab([], oci_images=())
    assert in_process(lab, capsys, "list", "--format", "json") == (0, "[\n\n]\n", "")
    assert in_process(lab, capsys, "list") == (0, "\n", "")
    assert in_process(lab, capsys, "list", "-q") == (0, "", "")


def test_list_source_filter_and_quiet(
    tart_lab: TartLabFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = tart_lab([fast_vm("alpha")], start=False)
    code, out, _ = in_process(lab, capsys, "list", "--source", "local", "-q")
    assert (code, out) == (0, "alpha\n")
    code, out, _ = in_process(lab, capsys, "list", "--quiet", "--source=oci")
    assert code == 0 and len(out.splitlines()) == 2
    code, out, err = in_process(lab, capsys, "list", "--source", "OCI")
    assert (code, out) == (64, "")
    assert err.splitlines()[0] == "Error: 'OCI' is not a valid <source>"


@pytest.mark.parametrize(
    ("args", "first_line"),
    [
        (["list", "--foo"], "Error: Unknown option '--foo'"),
        (
            ["list", "--format", "yaml"],
            "Error: The value 'yaml' is invalid for '--format <format>'",
        ),
        (["ip"], "Error: Missing expected argument '<name>'"),
        (["ip", "a", "b"], "Error: Unexpected argument 'b'"),
        (["ip", "a", "--wait", "soon"], "Error: The value 'soon' is invalid for '--wait <wait>'"),
        (["stop", "a", "-t"], "Error: Missing value for '-t <timeout>'"),
        (["frobnicate"], "Error: Unexpected argument 'frobnicate'"),
    ],
)
def test_usage_errors_exit_64_with_three_lines(
    tart_lab: TartLabFactory,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    first_line: str,
) -> None:
    lab = tart_lab([fast_vm("a")], start=False, oci_images=())
    code, out, err = in_process(lab, capsys, *args)
    assert (code, out) == (64, "")
    lines = err.splitlines()
    assert lines[0] == first_line
    assert lines[1].startswith("Usage: tart ")
    assert re.fullmatch(r"  See 'tart( \w+)? --help' for more information\.", lines[2])
    assert len(lines) == 3


def test_lifecycle_messages(tart_lab: TartLabFactory, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tart_lab([fast_vm("a", initial="running"), fast_vm("s")], oci_images=())
    assert in_process(lab, capsys, "--version") == (0, "2.35.0\n", "")
    assert in_process(lab, capsys, "stop", "s") == (1 + 1, "", 'VM "s" is not running\n')
    assert in_process(lab, capsys, "suspend", "s") == (
        2,
        "",
        'VM "VM "s" is not running" is not running\n',
    )
    assert in_process(lab, capsys, "ip", "ghost") == (
        2,
        "",
        'the specified VM "ghost" does not exist\n',
    )
    assert in_process(lab, capsys, "ip", "s") == (
        1,
        "",
        "no IP address found, is your VM running?\n",
    )
    assert in_process(lab, capsys, "ip", "s", "--resolver", "agent")[2] == (
        "no IP address found, is your VM running? (also make sure that Guest agent for Tart "
        "is running inside of a VM)\n"
    )
    assert in_process(lab, capsys, "delete", "a") == (1, "", 'VM "a" is running\n')
    assert in_process(lab, capsys, "delete", "ghost")[0] == 2
    assert in_process(lab, capsys, "delete", "s") == (0, "", "")
    assert in_process(lab, capsys, "list", "-q") == (0, "a\n", "")


def test_get_text_and_json(tart_lab: TartLabFactory, capsys: pytest.CaptureFixture[str]) -> None:
    lab = tart_lab([fast_vm("tux", os="linux")], start=False, oci_images=())
    code, out, _ = in_process(lab, capsys, "get", "tux")
    assert code == 0
    header, row = out.rstrip("\n").split("\n")
    assert header.split() == [
        "OS",
        "CPU",
        "Memory",
        "Disk",
        "DiskFormat",
        "Size",
        "Display",
        "State",
    ]
    assert header.endswith("State  ")  # padded to "stopped"
    assert row.split() == ["linux", "4", "8192", "50", "raw", "0.000", "1024x768", "stopped"]
    code, out, _ = in_process(lab, capsys, "get", "tux", "--format", "json")
    info = json.loads(out)
    assert info["Size"] == "0.000" and info["Running"] is False


def test_text_helpers() -> None:
    assert (
        fake_tart.text_table(["A", "Long"], [["xx", "y"], ["z", "w"]]) == "A  Long\nxx y   \nz  w"
    )
    assert fake_tart.text_table(["A"], []) == ""
    assert fake_tart.relative_time(0) == "in 0 seconds"
    assert fake_tart.relative_time(1) == "1 second ago"
    assert fake_tart.relative_time(180) == "3 minutes ago"
    assert fake_tart.relative_time(2 * 86400 + 5) == "2 days ago"
    assert fake_tart.relative_time(8 * 86400) == "1 week ago"
    assert fake_tart.swift_json([]) == "[\n\n]"
    assert fake_tart.swift_json({"a/b": "c/d"}) == '{\n  "a\\/b" : "c\\/d"\n}'


# --------------------------------------------------------------------------- plumbing


def test_wrapper_needs_no_environment(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([fast_vm("alpha")], start=False, oci_images=())
    result = tart(lab, "list", "-q", env={})
    assert (result.returncode, result.stdout, result.stderr) == (0, "alpha\n", "")


def test_fake_tart_does_not_import_asyncssh() -> None:
    code = "import sys, megatui.lab.fake_tart; print('asyncssh' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_megatui_config_points_at_the_lab(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    lab = tart_lab([fast_vm("alpha"), fast_vm("beta", user="ci", password="pw")], start=False)
    path = tmp_path / "megatui.toml"
    path.write_text(lab.megatui_config_toml())
    settings = load_settings(config_file=path, environ={})
    assert settings.tart_path == str(lab.tart_path)
    assert settings.vm("alpha").port == lab.address("alpha")[1]
    assert (settings.vm("alpha").user, settings.vm("alpha").password) == ("admin", "admin")
    assert (settings.vm("beta").user, settings.vm("beta").password) == ("ci", "pw")
    assert lab.address("alpha") != lab.address("beta")


def test_lab_can_be_loaded_again(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([fast_vm("alpha", reject_logins=True)], start=False)
    again = TartLab.load(lab.root)
    assert again.specs == lab.specs
    assert again.address("alpha") == lab.address("alpha")


def test_addresses_are_loopback_and_distinct(tart_lab: TartLabFactory) -> None:
    lab = tart_lab([fast_vm(n) for n in ("a", "b", "c")], start=False)
    addresses = [lab.address(n) for n in ("a", "b", "c")]
    assert all(ip.startswith("127.") for ip, _ in addresses)
    assert len({port for _, port in addresses}) == 3
    if sys.platform.startswith("linux"):
        assert [ip for ip, _ in addresses] == ["127.0.0.10", "127.0.0.11", "127.0.0.12"]
    assert os.access(lab.tart_path, os.X_OK)
