"""Parsers and failure classification of megatui.sources.tart against docs/facts/tart.md."""

from __future__ import annotations

import pytest

from megatui.model import TartState, TartVM
from megatui.sources.tart import (
    TartError,
    TartErrorKind,
    classify_failure,
    parse_get_json,
    parse_ip,
    parse_list_json,
)
from megatui.transport import CommandResult

# --------------------------------------------------------------------------- tart list

# Synthesised, not captured: `tart list --format json` as tart 2.31.0 - 2.35.0 writes it
# by its encoder's rules (docs/facts/tart.md, "tart list"): keys in random order, " : "
# separators, escaped slashes.
LIST_2_35 = """[
  {
    "Accessed" : "2026-05-12T10:11:12Z",
    "Disk" : 50,
    "Name" : "sequoia-base",
    "Running" : false,
    "Size" : 22,
    "Source" : "local",
    "State" : "stopped"
  },
  {
    "State" : "stopped",
    "Source" : "OCI",
    "Name" : "ghcr.io\\/cirruslabs\\/macos-sequoia-base:latest",
    "Size" : 22,
    "Running" : false,
    "Disk" : 50,
    "Accessed" : "2026-05-10T08:00:01Z"
  }
]
"""


def test_list_current_release_keeps_local_and_drops_oci() -> None:
    assert parse_list_json(LIST_2_35) == [
        TartVM("sequoia-base", TartState.STOPPED, 50, 22, "2026-05-12T10:11:12Z")
    ]


def test_list_all_three_states_in_scrambled_key_order() -> None:
    text = """[
  {
    "State" : "running",
    "Name" : "runner-1",
    "Running" : true,
    "Source" : "local",
    "Accessed" : "2026-05-12T10:08:00Z",
    "Size" : 24,
    "Disk" : 50
  },
  {
    "Size" : 4,
    "Accessed" : "2026-05-05T10:00:00Z",
    "Source" : "local",
    "Disk" : 20,
    "Name" : "ubuntu",
    "Running" : false,
    "State" : "suspended"
  }
]
"""
    vms = parse_list_json(text)
    assert [(v.name, v.state, v.disk_gb, v.size_gb) for v in vms] == [
        ("runner-1", TartState.RUNNING, 50, 24),
        ("ubuntu", TartState.SUSPENDED, 20, 4),
    ]


def test_list_oci_doubles_tag_and_digest_are_filtered() -> None:
    text = """[
  {
    "Source" : "local",
    "Name" : "a",
    "State" : "stopped"
  },
  {
    "Source" : "OCI",
    "Name" : "ghcr.io\\/cirruslabs\\/macos-sequoia-base:latest",
    "State" : "stopped"
  },
  {
    "Source" : "OCI",
    "Name" : "ghcr.io\\/cirruslabs\\/macos-sequoia-base@sha256:6c1e0f4e",
    "State" : "stopped"
  }
]"""
    assert [v.name for v in parse_list_json(text)] == ["a"]


def test_list_lowercase_oci_source_before_2_11() -> None:
    text = (
        '[\n  {\n    "Name" : "img:1",\n    "Source" : "oci",\n    "Size" : 3,\n'
        '    "State" : "stopped"\n  },\n  {\n    "Name" : "vm",\n    "Source" : "local",\n'
        '    "Size" : 3,\n    "State" : "running"\n  }\n]'
    )
    assert parse_list_json(text) == [TartVM("vm", TartState.RUNNING, None, 3, None)]


def test_list_size_on_disk_era_2_15_to_2_30() -> None:
    text = (
        '[{"Source" : "local", "SizeOnDisk" : 18, "Name" : "old", "Disk" : 50,'
        ' "Size" : 21, "Running" : true, "State" : "running"}]'
    )
    assert parse_list_json(text) == [TartVM("old", TartState.RUNNING, 50, 21, None)]


def test_list_running_only_json_1_2_to_1_7() -> None:
    text = (
        '[{"Source" : "local", "Name" : "r", "Size" : 20, "Running" : true},'
        ' {"Source" : "local", "Name" : "s", "Size" : 20, "Running" : false}]'
    )
    assert [(v.name, v.state) for v in parse_list_json(text)] == [
        ("r", TartState.RUNNING),
        ("s", TartState.STOPPED),
    ]


def test_list_0_37_era_without_running_or_state_means_stopped() -> None:
    text = '[{"Source" : "local", "Name" : "x", "Size" : 12}]'
    assert parse_list_json(text) == [TartVM("x", TartState.STOPPED, None, 12, None)]


def test_list_missing_disk_size_accessed_are_none() -> None:
    text = '[{"Name" : "bare", "Source" : "local", "State" : "suspended"}]'
    assert parse_list_json(text) == [TartVM("bare", TartState.SUSPENDED)]


def test_list_escaped_slash_in_local_name_is_unescaped() -> None:
    text = '[{"Name" : "team\\/vm", "Source" : "local", "State" : "stopped"}]'
    assert parse_list_json(text)[0].name == "team/vm"


@pytest.mark.parametrize("text", ["[\n\n]\n", "[\n\n]", "[]"])
def test_list_empty(text: str) -> None:
    assert parse_list_json(text) == []


def test_list_unknown_future_state_falls_back_to_running_flag() -> None:
    text = '[{"Name" : "p", "Source" : "local", "State" : "paused", "Running" : true}]'
    assert parse_list_json(text)[0].state == TartState.RUNNING


def test_list_booleans_are_not_sizes() -> None:
    text = '[{"Name" : "b", "Source" : "local", "Disk" : true, "Size" : "22"}]'
    vm = parse_list_json(text)[0]
    assert (vm.disk_gb, vm.size_gb) == (None, None)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("Source Name Disk Size Accessed State\nlocal a 50 22 2 days ago stopped\n", "not JSON"),
        ("", "not JSON"),
        ('{"Name" : "a"}', "expected a JSON array"),
        ("[1, 2]", "an entry is not an object"),
        ('[{"Source" : "local", "State" : "stopped"}]', "an entry has no Name"),
        ('[{"Source" : "local", "Name" : ""}]', "an entry has no Name"),
        ('[{"Source" : "local", "Name" : 7}]', "an entry has no Name"),
        ('[{"Source" : "local", "Name" : "z", "State" : "zombie"}]', "unknown State"),
    ],
)
def test_list_garbage_is_a_one_line_parse_error(text: str, reason: str) -> None:
    with pytest.raises(TartError) as info:
        parse_list_json(text)
    err = info.value
    assert err.kind == TartErrorKind.PARSE
    message = str(err)
    assert "\n" not in message
    assert message.startswith("could not parse tart list output: ")
    assert reason in message
    assert len(message) < 160


def test_parse_error_quotes_a_short_excerpt() -> None:
    with pytest.raises(TartError) as info:
        parse_list_json("Source Name\n" + "x" * 5000)
    assert "(got 'Source Name xxxxx" in str(info.value)
    assert len(str(info.value)) < 160


# --------------------------------------------------------------------------- tart ip / get


def test_ip_ok() -> None:
    assert parse_ip("192.168.64.3\n") == "192.168.64.3"


def test_ip_empty_is_none() -> None:
    assert parse_ip("") is None
    assert parse_ip("\n") is None


@pytest.mark.parametrize("text", ["no IP", "192.168.64", "192.168.64.300", "fe80::1", "1.2.3.4x"])
def test_ip_garbage_raises(text: str) -> None:
    with pytest.raises(TartError) as info:
        parse_ip(text)
    assert info.value.kind == TartErrorKind.PARSE


def test_get_json_sample_keeps_size_as_string() -> None:
    text = """{
  "CPU" : 4,
  "Disk" : 50,
  "DiskFormat" : "raw",
  "Display" : "1024x768",
  "Memory" : 8192,
  "OS" : "darwin",
  "Running" : false,
  "Size" : "22.518",
  "State" : "stopped"
}
"""
    got = parse_get_json(text)
    assert got["Size"] == "22.518"
    assert got["OS"] == "darwin"
    assert got["Memory"] == 8192


@pytest.mark.parametrize("text", ["[\n\n]", "OS CPU\ndarwin 4", ""])
def test_get_garbage(text: str) -> None:
    with pytest.raises(TartError) as info:
        parse_get_json(text)
    assert info.value.kind == TartErrorKind.PARSE
    assert str(info.value).startswith("could not parse tart get output")


# --------------------------------------------------------------------------- failures


def _fail(argv: list[str], code: int, stderr: str, stdout: str = "") -> CommandResult:
    return CommandResult(tuple(argv), code, stdout, stderr)


@pytest.mark.parametrize(
    ("argv", "code", "stderr", "kind", "message"),
    [
        # §1: RuntimeErrors without prefix, exit 2.
        (
            ["tart", "ip", "missing"],
            2,
            'the specified VM "missing" does not exist\n',
            TartErrorKind.VM_NOT_FOUND,
            'VM "missing" does not exist',
        ),
        (
            ["tart", "get", "x"],
            2,
            'the specified VM "x" does not exist\n',
            TartErrorKind.VM_NOT_FOUND,
            'VM "x" does not exist',
        ),
        # §1 trap: the same error from validate() gains "Error: " and exit 1.
        (
            ["tart", "run", "--no-graphics", "missing"],
            1,
            'Error: the specified VM "missing" does not exist\n',
            TartErrorKind.VM_NOT_FOUND,
            'VM "missing" does not exist',
        ),
        (
            ["tart", "stop", "a"],
            2,
            'VM "a" is not running\n',
            TartErrorKind.NOT_RUNNING,
            'VM "a" is not running',
        ),
        # §7.2: the doubled suspend message.
        (
            ["tart", "suspend", "a"],
            2,
            'VM "VM "a" is not running" is not running\n',
            TartErrorKind.NOT_RUNNING,
            'VM "a" is not running',
        ),
        (
            ["tart", "run", "--no-graphics", "a"],
            2,
            'VM "a" is already running!\n',
            TartErrorKind.ALREADY_RUNNING,
            'VM "a" is already running',
        ),
        # §7.4: delete of a running VM keeps the default exit 1.
        (
            ["tart", "delete", "a"],
            1,
            'VM "a" is running\n',
            TartErrorKind.IS_RUNNING,
            'VM "a" is running; stop it first',
        ),
        # §9.4: Apple's limit.
        (
            ["tart", "run", "--no-graphics", "c"],
            1,
            "The number of VMs exceeds the system limit (other running VMs: a, b)\n",
            TartErrorKind.VM_LIMIT,
            "Apple allows at most 2 running macOS VMs per host: other running VMs: a, b",
        ),
        # §7.7: rename errors are usage errors (64).
        (
            ["tart", "rename", "x", "y"],
            64,
            "Error: failed to rename a non-existent local VM: x\n"
            "Usage: tart rename <name> <new-name>\n"
            "  See 'tart rename --help' for more information.\n",
            TartErrorKind.USAGE,
            "tart rename rejected its arguments: failed to rename a non-existent local VM: x",
        ),
    ],
)
def test_classify_runtime_errors(
    argv: list[str], code: int, stderr: str, kind: TartErrorKind, message: str
) -> None:
    err = classify_failure(_fail(argv, code, stderr), None)
    assert err.kind == kind
    assert str(err) == message


def test_classify_names_the_vm_from_the_message() -> None:
    err = classify_failure(_fail(["tart", "stop", "b"], 2, 'VM "b" is not running\n'), None)
    assert err.vm == "b"
    doubled = 'VM "VM "q" is not running" is not running\n'
    err = classify_failure(_fail(["tart", "suspend", "q"], 2, doubled), None)
    assert err.vm == "q"


@pytest.mark.parametrize(
    ("stderr", "detail"),
    [
        ("Error: Unknown option '--foo'", "Unknown option '--foo'"),
        ("Error: Unexpected argument 'x'", "Unexpected argument 'x'"),
        ("Error: Missing expected argument '<name>'", "Missing expected argument '<name>'"),
        (
            "Error: The value 'yaml' is invalid for '--format <format>'",
            "The value 'yaml' is invalid for '--format <format>'",
        ),
        ("Error: 'foo' is not a valid <source>", "'foo' is not a valid <source>"),
        (
            "Error: --graphics and --no-graphics are mutually exclusive",
            "--graphics and --no-graphics are mutually exclusive",
        ),
    ],
)
def test_classify_usage_errors_exit_64(stderr: str, detail: str) -> None:
    text = f"{stderr}\nUsage: tart list [--source <source>]\n  See 'tart list --help' for more.\n"
    err = classify_failure(_fail(["tart", "list", "--foo"], 64, text), None)
    assert err.kind == TartErrorKind.USAGE
    assert str(err) == f"tart list rejected its arguments: {detail}"


@pytest.mark.parametrize(
    "stderr",
    [
        "Error: SecKeyCreateRandomKey_ios failed",
        "Failed to generate keypair",
        "Error: Interaction is not allowed with the Security Server.",
        "Keychain returned unsuccessful status -25308",
    ],
)
def test_classify_keychain_locked(stderr: str) -> None:
    err = classify_failure(_fail(["tart", "run", "--no-graphics", "a"], 1, stderr + "\n"), "a")
    assert err.kind == TartErrorKind.KEYCHAIN_LOCKED
    assert "security unlock-keychain login.keychain" in str(err)
    assert "\n" not in str(err)
    assert err.vm == "a"


@pytest.mark.parametrize(
    ("argv", "code", "stderr", "message"),
    [
        (
            ["tart", "ip", "a"],
            1,
            "no IP address found, is your VM running?\n",
            "tart ip: no IP address found, is your VM running?",
        ),
        (
            ["tart", "stop", "a"],
            1,
            'failed to forcefully terminate the VM "a": 1\n',
            'tart stop: failed to forcefully terminate the VM "a": 1',
        ),
        (
            ["tart", "set", "a", "--cpu", "2"],
            1,
            "Error: LessThanMinimalResourcesError: VM should have 4 CPU cores at minimum "
            "(requested 2)\n",
            "tart set: LessThanMinimalResourcesError: VM should have 4 CPU cores at minimum "
            "(requested 2)",
        ),
        (
            ["tart", "run", "a"],
            1,
            "VM is missing some of its files (config.json, disk.img or nvram.bin)\n",
            "tart run: VM is missing some of its files (config.json, disk.img or nvram.bin)",
        ),
        (
            ["tart", "exec", "a", "ls"],
            1,
            "Failed to connect to the VM using its control socket: x, is the Tart Guest "
            "Agent running?\n",
            "tart exec: Failed to connect to the VM using its control socket: x, is the Tart "
            "Guest Agent running?",
        ),
        (["tart", "list"], 1, "", "tart list failed with exit code 1"),
    ],
)
def test_classify_other(argv: list[str], code: int, stderr: str, message: str) -> None:
    err = classify_failure(_fail(argv, code, stderr), None)
    assert err.kind == TartErrorKind.OTHER
    assert str(err) == message


def test_classify_suspend_failure_printed_to_stdout() -> None:
    result = _fail(
        ["tart", "run", "a"], 1, "", stdout="Failed to suspend the VM: not suspendable\n"
    )
    assert str(classify_failure(result, "a")) == (
        "tart run: Failed to suspend the VM: not suspendable"
    )


@pytest.mark.parametrize(
    "stderr",
    [
        "zsh:1: command not found: tart\n",
        "bash: line 1: tart: command not found\n",
        "nohup: failed to run command 'tart': No such file or directory\n",
    ],
)
def test_classify_shell_could_not_find_tart(stderr: str) -> None:
    code = 127 if "nohup" not in stderr else 1
    err = classify_failure(_fail(["/opt/tart", "list"], code, stderr), None)
    assert err.kind == TartErrorKind.NOT_INSTALLED
    assert str(err) == (
        'tart not installed (looked for "/opt/tart"; set --tart, MEGATUI_TART or tart.path)'
    )


def test_classify_long_multiline_output_stays_one_short_line() -> None:
    noise = "\n".join(f"line {i} " + "y" * 80 for i in range(50))
    err = classify_failure(_fail(["tart", "list"], 3, noise), None)
    assert "\n" not in str(err)
    assert len(str(err)) <= 240
