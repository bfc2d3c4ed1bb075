"""[recovery] in the config file, and the user-intent state file recovery reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from megatui import vm_intents
from megatui.config import ConfigError, RecoveryPolicy, load_settings
from megatui.recovery import Intent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_star_is_the_default_and_a_vm_table_overrides_it_key_by_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[recovery."*"]\nrestart = "on-exit"\nmax_restarts = 5\n\n'
        '[recovery.builder]\nrestart = "unhealthy"\nunhealthy_after = 2\nbackoff = 5\n'
        "ready_timeout = 90\n",
    )
    settings = load_settings(path, environ={})
    assert settings.recovery_policy("other") == RecoveryPolicy(restart="on-exit", max_restarts=5)
    assert settings.recovery_policy("builder") == RecoveryPolicy(
        restart="unhealthy", unhealthy_after=2, max_restarts=5, backoff=5.0, ready_timeout=90.0
    )


def test_without_recovery_no_vm_is_managed(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, '[recovery.only]\nrestart = "on-exit"\n'), environ={})
    assert settings.recovery_policy("other") is None
    assert settings.recovery_policy("only") == RecoveryPolicy(restart="on-exit")
    assert load_settings(environ={}).recovery_policy("any") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[recovery."*"]\nrestart = "always"\n',
            """'recovery."*".restart': expected "never", "on-exit", "unhealthy" (got "always")""",
        ),
        (
            "[recovery.vm1]\nunhealthy_after = 0\n",
            "'recovery.vm1.unhealthy_after': expected a whole number of 1 or more (got 0)",
        ),
        (
            "[recovery.vm1]\nmax_restarts = -1\n",
            "'recovery.vm1.max_restarts': expected a whole number of 0 or more (got -1)",
        ),
        (
            '[recovery.vm1]\nbackoff = "soon"\n',
            "'recovery.vm1.backoff': expected a number (got \"soon\")",
        ),
        ("[recovery.vm1]\nretries = 3\n", "unknown key 'recovery.vm1.retries'"),
        (
            "[recovery.vm1]\nready_timeout = 0\n",
            "'recovery.vm1.ready_timeout': expected a positive number (got 0)",
        ),
        ("[recovery]\nrestart = 3\n", "'recovery.restart' must be a table"),
        ('recovery = "on-exit"\n', "'recovery' must be a table of [recovery.NAME] tables"),
    ],
)
def test_a_bad_recovery_key_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_the_cli_exits_2_on_a_bad_recovery_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[recovery.vm1]\nunhealthy_after = 0\n")
    done = subprocess.run(
        [sys.executable, "-m", "megatui", "--config", str(path), "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    assert done.returncode == 2
    assert "recovery.vm1.unhealthy_after" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# --- the intents file ------------------------------------------------------------------


def test_intents_round_trip_and_the_newest_wins(tmp_path: Path) -> None:
    path = tmp_path / "state" / "vm-intents.json"
    vm_intents.record("alpha", "stop", 10.0, path)
    vm_intents.record("beta", "start", 11.0, path)
    vm_intents.record("alpha", "start", 12.0, path)
    assert vm_intents.load(path) == {"beta": Intent("start", 11.0), "alpha": Intent("start", 12.0)}
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "vm-intents.json",
        "vm-intents.json.lock",
    ]


def test_the_default_path_is_in_the_state_directory() -> None:
    vm_intents.record("alpha", "stop", 1.0)
    assert vm_intents.default_path().parent == Path(os.environ["MEGATUI_STATE_DIR"])
    assert vm_intents.load() == {"alpha": Intent("stop", 1.0)}


def test_the_file_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "vm-intents.json"
    for n in range(vm_intents.MAX_VMS + 40):
        vm_intents.record(f"vm{n}", "stop", float(n), path)
    loaded = vm_intents.load(path)
    assert len(loaded) == vm_intents.MAX_VMS
    assert "vm0" not in loaded and f"vm{vm_intents.MAX_VMS + 39}" in loaded


def test_recovery_own_actions_are_not_recorded(tmp_path: Path) -> None:
    path = tmp_path / "vm-intents.json"
    with vm_intents.acting():
        vm_intents.record("alpha", "stop", 1.0, path)
    assert vm_intents.load(path) == {}
    vm_intents.record("alpha", "stop", 2.0, path)
    assert vm_intents.load(path) == {"alpha": Intent("stop", 2.0)}


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[1, 2]",
        json.dumps(
            {"a": {"action": "explode", "at": 1}, "b": "x", "c": {"action": "stop"}}
        ).encode(),
        b"\xff\xfe",
        b" " * (vm_intents.MAX_BYTES + 1),
    ],
)
def test_a_damaged_file_reads_as_nothing_and_is_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "vm-intents.json"
    path.write_bytes(content)
    assert vm_intents.load(path) == {}
    vm_intents.record("alpha", "stop", 3.0, path)
    assert vm_intents.load(path) == {"alpha": Intent("stop", 3.0)}


def test_an_unwritable_state_directory_does_not_raise(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    vm_intents.record("alpha", "stop", 1.0, blocker / "sub" / "vm-intents.json")  # no exception
    assert vm_intents.load(blocker / "sub" / "vm-intents.json") == {}


def test_the_reader_sees_every_new_write(tmp_path: Path) -> None:
    path = tmp_path / "vm-intents.json"
    reader = vm_intents.Reader(path)
    assert reader.load() == {}
    vm_intents.record("alpha", "stop", 1.0, path)
    assert reader.load() == {"alpha": Intent("stop", 1.0)}
    vm_intents.record("alpha", "start", 2.0, path)  # same size: a new file all the same
    assert reader.load() == {"alpha": Intent("start", 2.0)}
    path.unlink()
    assert reader.load() == {}
