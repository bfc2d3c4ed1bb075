"""Recovery's memory across restarts of `megatui serve` (megatui/recovery_history.py):
max_restarts per hour counts the attempts of the run before; a damaged file is one
line in the log and read as empty, never a crash."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest

from megatui import recovery_history
from megatui.clock import FakeClock
from megatui.config import RecoveryPolicy, Settings
from megatui.model import VM, Phase, TartState
from megatui.recovery import HISTORY, WINDOW, ActionKind, Plan, Record, RecoveryEngine, Result
from megatui.serve.recovery_runner import RecoveryRunner

POLICY = RecoveryPolicy(restart="on-exit", max_restarts=2, backoff=1.0)


def crash(engine: RecoveryEngine, clock: FakeClock) -> Plan:
    """VM alpha seen ready, then stopped without anyone asking."""
    for phase in (Phase.READY, Phase.STOPPED):
        running = phase is Phase.READY
        state = TartState.RUNNING if running else TartState.STOPPED
        plan = engine.evaluate(
            [VM("alpha", state, phase, None, 0.0, 0.0)],
            {"alpha": POLICY},
            {},
            readonly=False,
            health_interval=30.0,
        )
        clock.advance(1)
    return plan


def restart_once(engine: RecoveryEngine, clock: FakeClock) -> None:
    plan = crash(engine, clock)
    assert len(plan.actions) == 1, plan
    engine.begin(plan.actions[0], POLICY)
    clock.advance(5)
    engine.finish(plan.actions[0], Result.FAILED, "tart run: no such VM")
    clock.advance(600)


def test_attempts_before_a_restart_still_count_after_it(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    clock = FakeClock(start=1_800_000_000.0)
    first_run = RecoveryEngine(clock, random.Random(1))
    restart_once(first_run, clock)
    restart_once(first_run, clock)
    recovery_history.save(path, first_run.memory(), clock.now())

    second_run = RecoveryEngine(clock, random.Random(2))
    second_run.restore(recovery_history.load(path, clock.now()))
    assert second_run.restarts_last_hour("alpha") == 2
    assert [r.detail for r in second_run.history("alpha")] == ["tart run: no such VM"] * 2
    plan = crash(second_run, clock)
    assert plan.actions == ()  # max_restarts = 2 already spent in this hour
    assert "2 attempts in the last hour (max_restarts)" in plan.notices[0].message
    # Once the first attempt is an hour old, the VM is started again.
    clock.advance(WINDOW)
    assert second_run.restarts_last_hour("alpha") == 0
    assert [a.kind for a in crash(second_run, clock).actions] == [ActionKind.START]


def test_the_runner_loads_the_history_from_the_state_directory() -> None:
    clock = FakeClock(start=1_800_000_000.0)
    record = Record(clock.now() - 10, ActionKind.RESTART, Result.OK, "ready")
    recovery_history.save(None, {"alpha": ([clock.now() - 10], [record])}, clock.now())
    runner = RecoveryRunner(_NoMonitor(), Settings(), clock=clock)  # type: ignore[arg-type]
    assert runner.engine.restarts_last_hour("alpha") == 1
    assert runner.engine.history("alpha") == (record,)


def test_attempts_older_than_the_hour_are_dropped_and_records_kept(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    now = 1_800_000_000.0
    old = Record(now - 2 * WINDOW, ActionKind.START, Result.OK, "ready")
    recovery_history.save(path, {"alpha": ([now - WINDOW - 1, now - 60], [old])}, now)
    assert recovery_history.load(path, now) == {"alpha": ((now - 60,), (old,))}


@pytest.mark.parametrize(
    "content",
    [
        b"{",
        b"\xff\xfe",
        b"[]",
        b'{"version": 2, "vms": {}}',
        b'{"version": 1, "vms": []}',
        b'{"version": 1, "vms": {"alpha": {"attempts": "many", "records": []}}}',
        b'{"version": 1, "vms": {"alpha": {"attempts": [NaN], "records": []}}}',
        b'{"version": 1, "vms": {"alpha": {"attempts": [true], "records": []}}}',
        b'{"version": 1, "vms": {"alpha": {"attempts": [], "records": [{"at": 1, '
        b'"action": "reboot", "result": "ok", "detail": ""}]}}}',
        b'{"version": 1, "vms": {"alpha": {"attempts": [], "records": [{"at": 1, '
        b'"action": "start", "result": "ok"}]}}}',
        b" " * (recovery_history.MAX_BYTES + 1),
    ],
    ids=[
        "truncated",
        "not-utf8",
        "a-list",
        "other-version",
        "vms-a-list",
        "attempts-text",
        "nan",
        "bool-time",
        "unknown-action",
        "no-detail",
        "too-large",
    ],
)
def test_a_damaged_file_is_one_line_and_read_as_empty(
    content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = recovery_history.default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    clock = FakeClock(start=1_800_000_000.0)
    with caplog.at_level(logging.WARNING, logger="megatui.recovery_history"):
        runner = RecoveryRunner(_NoMonitor(), Settings(), clock=clock)  # type: ignore[arg-type]
    assert runner.engine.memory() == {}
    lines = [r.getMessage() for r in caplog.records if r.name == "megatui.recovery_history"]
    assert len(lines) == 1 and "damaged" in lines[0] and str(path) in lines[0]
    assert "\n" not in lines[0]
    # The next save replaces it with a good file.
    restart_once(runner.engine, clock)
    runner._save_history()
    assert recovery_history.load(path, clock.now())["alpha"][0]


def test_the_file_is_private_bounded_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "history.json"
    now = 1_800_000_000.0
    record = Record(now, ActionKind.START, Result.FAILED, "x" * 5000)
    memory = {
        f"vm{i}": ([now - j for j in range(300)], [record] * 50)
        for i in range(recovery_history.MAX_VMS + 40)
    }
    recovery_history.save(path, memory, now)
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["history.json"]
    loaded = recovery_history.load(path, now)
    assert len(loaded) == recovery_history.MAX_VMS
    assert "vm0" not in loaded and f"vm{recovery_history.MAX_VMS + 39}" in loaded
    attempts, records = loaded["vm40"]
    assert len(attempts) == recovery_history.MAX_ATTEMPTS and len(records) == HISTORY
    assert len(records[0].detail) == recovery_history.MAX_DETAIL
    assert len(json.loads(path.read_bytes())["vms"]) == recovery_history.MAX_VMS


def test_long_details_never_make_a_file_too_large_to_read(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    now = 1_800_000_000.0
    record = Record(now, ActionKind.START, Result.FAILED, "\u00e9" * 5000)  # 6 bytes in JSON
    memory = {f"vm{i}": ([now], [record] * HISTORY) for i in range(recovery_history.MAX_VMS)}
    recovery_history.save(path, memory, now)
    assert path.stat().st_size <= recovery_history.MAX_BYTES
    loaded = recovery_history.load(path, now)
    assert 0 < len(loaded) < recovery_history.MAX_VMS
    assert f"vm{recovery_history.MAX_VMS - 1}" in loaded  # the newest are kept


def test_an_unwritable_state_directory_is_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="megatui.recovery_history"):
        recovery_history.save(blocker / "history.json", {"alpha": ([1.0], [])}, 2.0)
    assert len(caplog.records) == 1 and "cannot save" in caplog.records[0].getMessage()


class _NoMonitor:
    """The runner reads the history when it is built, before it looks at a monitor."""
