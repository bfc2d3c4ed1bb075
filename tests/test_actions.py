from __future__ import annotations

from pathlib import Path

import pytest

from megatui import actions
from megatui.api import ActionError
from megatui.config import VMSettings
from megatui.model import VM, Phase, TartState


def vm(ip: str | None = "192.168.64.3") -> VM:
    return VM("runner", TartState.RUNNING, Phase.READY, ip, 1.0, 0.0)


def test_readonly_refuses_mutations_only() -> None:
    with pytest.raises(ActionError, match="read-only mode: start is disabled"):
        actions.check_allowed("start", readonly=True)
    with pytest.raises(ActionError, match="stop"):
        actions.check_allowed("stop", readonly=True)
    actions.check_allowed("ssh", readonly=True)
    actions.check_allowed("start", readonly=False)
    # The TUI's actions for the same verbs are the same rule (one list, MUTATING).
    with pytest.raises(ActionError, match="stop_vm"):
        actions.check_allowed("stop_vm", readonly=True)
    assert [
        a for a in ("start_vm", "stop_vm", "ssh", "wait", "copy_ssh") if actions.is_mutating(a)
    ] == [
        "start_vm",
        "stop_vm",
    ]


def test_ssh_argv_local_and_jump(tmp_path: Path) -> None:
    login = VMSettings(port=2222, user="admin", key="/k")
    known = tmp_path / "known_hosts"
    argv = actions.ssh_argv(vm(), login, known_hosts=known, key_known=True)
    assert argv[0] == "ssh"
    assert argv[-1] == "admin@192.168.64.3"
    assert argv[argv.index("-p") : argv.index("-p") + 2] == ["-p", "2222"]
    assert "HostKeyAlias=megatui-vm.runner" in argv
    assert "StrictHostKeyChecking=yes" in argv
    at = argv.index("-i")
    assert argv[at : at + 4] == ["-i", "/k", "-o", "IdentitiesOnly=yes"]
    jumped = actions.ssh_argv(vm(), VMSettings(), jump_host="me@mac")
    assert jumped[:3] == ["ssh", "-J", "me@mac"]
    assert "-p" not in jumped
    # No key given: the agent's keys are all ssh may use, so none is excluded.
    assert "IdentitiesOnly=yes" not in jumped


def test_ssh_argv_needs_an_address() -> None:
    with pytest.raises(ActionError, match="no IP address"):
        actions.ssh_argv(vm(ip=None), VMSettings())


def test_known_hosts_file_is_keyed_by_vm_name(tmp_path: Path) -> None:
    path = tmp_path / "k" / "known_hosts"
    actions.write_known_hosts(path, {"b": "ssh-ed25519 AAAB", "a": "ssh-ed25519 AAAA\n"})
    assert path.read_text() == ("megatui-vm.a ssh-ed25519 AAAA\nmegatui-vm.b ssh-ed25519 AAAB\n")


def test_host_key_alias_is_distinct_and_parseable_for_odd_names() -> None:
    names = ["a b", "a_20b", "a,b", "*", "?x", "!neg", "[x]:22", "#c", "né", "-rf", "x" * 300]
    aliases = [actions.host_key_alias(n) for n in names]
    assert len(set(aliases)) == len(names)
    for alias in aliases:
        assert alias.startswith("megatui-vm.")
        assert all(ch.isascii() and (ch.isalnum() or ch in "._-") for ch in alias), alias
    assert actions.host_key_alias("a b") == "megatui-vm.a_20b"
    assert actions.host_key_alias("a_20b") == "megatui-vm.a_5f20b"
    assert actions.host_key_alias("runner-1.x") == "megatui-vm.runner-1.x"


def test_known_hosts_rewrite_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "known_hosts"
    actions.write_known_hosts(path, {"a": "ssh-ed25519 AAAA"})
    actions.write_known_hosts(path, {"a": "ssh-ed25519 AAAA", "b": "ssh-ed25519 AAAB"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["known_hosts"]
    assert path.read_text().count("\n") == 2
