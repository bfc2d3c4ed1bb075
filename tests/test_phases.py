"""The boot-phase engine: derivation, spans, progress, ETA, hints and the learned history."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from megatui.clock import FakeClock
from megatui.model import BOOT_PHASES, VM, Phase, PreBootStage, ProbeStage, TartState
from megatui.phases import (
    MAX_SPANS,
    BootHistory,
    Observation,
    PhaseEngine,
    derive_phase,
    format_duration,
)

NAME = "vm1"
ADDR = "192.168.64.5"
# Default expectations: starting 30, booting 90, ip 60, ssh-pending 120 -> 300 s in total.
TOTAL = 300.0


def stopped(*, stop_requested: bool = False, error: str | None = None) -> Observation:
    return Observation(TartState.STOPPED, stop_requested=stop_requested, error=error)


def suspended() -> Observation:
    return Observation(TartState.SUSPENDED)


def starting() -> Observation:
    return Observation(TartState.STOPPED, start_requested=True)


def booting() -> Observation:
    return Observation(TartState.RUNNING)


def has_ip(probe: ProbeStage | None = None, probe_error: str | None = None) -> Observation:
    return Observation(TartState.RUNNING, ip=ADDR, probe=probe, probe_error=probe_error)


def pending(probe_error: str | None = None) -> Observation:
    return has_ip(ProbeStage.OPEN, probe_error)


def ready() -> Observation:
    return has_ip(ProbeStage.READY)


def stopping() -> Observation:
    return Observation(TartState.RUNNING, ip=ADDR, probe=ProbeStage.READY, stop_requested=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def engine(clock: FakeClock) -> PhaseEngine:
    return PhaseEngine(clock)


def run(
    engine: PhaseEngine, clock: FakeClock, steps: Sequence[tuple[float, Observation]]
) -> list[VM]:
    """Advance the clock, then observe, for each (seconds, observation)."""
    out = []
    for seconds, obs in steps:
        clock.advance(seconds)
        out.append(engine.observe(NAME, obs))
    return out


def cold_boot(engine: PhaseEngine, clock: FakeClock) -> None:
    """stopped -> starting 10 s -> booting 50 s -> ip 20 s -> ssh-pending 40 s -> ready."""
    run(
        engine,
        clock,
        [(0, stopped()), (5, starting()), (10, booting()), (50, has_ip()), (20, pending())],
    )
    run(engine, clock, [(40, ready())])


# --- derivation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obs", "phase", "error"),
    [
        (stopped(), Phase.STOPPED, None),
        (suspended(), Phase.SUSPENDED, None),
        (starting(), Phase.STARTING, None),
        (Observation(TartState.SUSPENDED, start_requested=True), Phase.STARTING, None),
        (Observation(TartState.RUNNING, start_requested=True), Phase.BOOTING, None),
        (booting(), Phase.BOOTING, None),
        # A probe result without an address is ignored: the probe needs the IP.
        (Observation(TartState.RUNNING, probe=ProbeStage.READY), Phase.BOOTING, None),
        (has_ip(), Phase.IP, None),
        (has_ip(ProbeStage.CLOSED), Phase.IP, None),
        (pending(), Phase.SSH_PENDING, None),
        (ready(), Phase.READY, None),
        (stopping(), Phase.STOPPING, None),
        (Observation(TartState.SUSPENDED, stop_requested=True), Phase.STOPPING, None),
        (stopped(stop_requested=True), Phase.STOPPED, None),
        (has_ip(ProbeStage.AUTH_FAILED, "Permission denied"), Phase.ERROR, "Permission denied"),
        (has_ip(ProbeStage.HOST_KEY_CHANGED, "host key changed"), Phase.ERROR, "host key changed"),
        (has_ip(ProbeStage.ERROR, "bad key file"), Phase.ERROR, "bad key file"),
        (stopped(error="VM limit"), Phase.ERROR, "VM limit"),
        (Observation(TartState.RUNNING, ip=ADDR, error="boom"), Phase.ERROR, "boom"),
        (Observation(TartState.RUNNING, stop_requested=True, error="kill"), Phase.ERROR, "kill"),
        (Observation(None, error="gone"), Phase.ERROR, "gone"),
    ],
)
def test_derive_phase(obs: Observation, phase: Phase, error: str | None) -> None:
    assert derive_phase(obs) == (phase, error)


@pytest.mark.parametrize(
    ("stage", "word"),
    [
        (ProbeStage.AUTH_FAILED, "rejected"),
        (ProbeStage.HOST_KEY_CHANGED, "host key"),
        (ProbeStage.ERROR, "failed"),
    ],
)
def test_probe_errors_without_a_message_get_a_default(stage: ProbeStage, word: str) -> None:
    phase, error = derive_phase(has_ip(stage))
    assert phase is Phase.ERROR
    assert error is not None and word in error


def test_unknown_vm_is_an_error(engine: PhaseEngine) -> None:
    vm = engine.observe(NAME, Observation(None))
    assert vm.phase is Phase.ERROR
    assert vm.state is TartState.STOPPED
    assert vm.error is not None and "tart list" in vm.error
    assert vm.progress == 0.0 and vm.eta_seconds is None


# --- a full boot -------------------------------------------------------------------------


def test_cold_boot_walks_every_phase(engine: PhaseEngine, clock: FakeClock) -> None:
    t0 = clock.now()
    first = engine.observe(NAME, stopped())
    assert (first.phase, first.progress, first.eta_seconds) == (Phase.STOPPED, 0.0, None)

    vms = run(engine, clock, [(5, starting()), (10, starting()), (0, booting())])
    assert vms[0].phase is Phase.STARTING
    assert vms[0].phase_since == t0 + 5
    assert (vms[0].progress, vms[0].eta_seconds) == (0.0, TOTAL)
    assert vms[1].progress == pytest.approx(10 / TOTAL)
    assert vms[1].eta_seconds == pytest.approx(TOTAL - 10)
    # Starting took 10 s of its expected 30: it now counts as complete.
    assert vms[2].phase is Phase.BOOTING
    assert vms[2].progress == pytest.approx(30 / TOTAL)
    assert vms[2].eta_seconds == pytest.approx(270)
    assert vms[2].state is TartState.RUNNING and vms[2].ip is None

    vms = run(engine, clock, [(50, has_ip()), (20, pending()), (40, ready())])
    assert [v.phase for v in vms] == [Phase.IP, Phase.SSH_PENDING, Phase.READY]
    assert [v.progress for v in vms[:2]] == pytest.approx([120 / TOTAL, 180 / TOTAL])
    assert [v.eta_seconds for v in vms[:2]] == pytest.approx([180, 120])
    done = vms[2]
    assert done.progress == 1.0 and done.eta_seconds is None
    assert done.ip == ADDR and done.error is None and done.hint is None
    assert done.phase_since == t0 + 125

    spans = [
        (s.phase, s.started - t0, None if s.ended is None else s.ended - t0) for s in done.history
    ]
    assert spans == [
        (Phase.STARTING, 5, 15),
        (Phase.BOOTING, 15, 65),
        (Phase.IP, 65, 85),
        (Phase.SSH_PENDING, 85, 125),
        (Phase.READY, 125, None),
    ]
    history = engine.history
    assert [history.samples(NAME, p) for p in BOOT_PHASES] == [(10,), (50,), (20,), (40,)]
    assert engine.dirty


def test_port_is_passed_through(engine: PhaseEngine) -> None:
    assert engine.observe(NAME, ready(), port=2222).port == 2222


def test_dirty_follows_history_changes(clock: FakeClock) -> None:
    engine = PhaseEngine(clock, BootHistory({NAME: {"booting": [40.0]}}))
    run(engine, clock, [(0, stopped()), (5, stopped())])
    assert not engine.dirty
    cold_boot(engine, clock)
    assert engine.dirty
    engine.mark_saved()
    assert not engine.dirty
    # A health-check flap after READY is not a boot and must not force a save.
    run(engine, clock, [(10, has_ip(ProbeStage.CLOSED)), (10, ready())])
    assert not engine.dirty


def test_new_boot_resets_spans(engine: PhaseEngine, clock: FakeClock) -> None:
    cold_boot(engine, clock)
    vms = run(engine, clock, [(5, stopping()), (5, stopped()), (60, starting())])
    assert [s.phase for s in vms[1].history][-3:] == [Phase.READY, Phase.STOPPING, Phase.STOPPED]
    assert [s.phase for s in vms[2].history] == [Phase.STARTING]
    assert vms[2].progress == 0.0


# --- progress ----------------------------------------------------------------------------


def _random_boot(seed: int) -> tuple[BootHistory, list[tuple[float, Observation]]]:
    """One boot as an erratic sequence of polls: slow and fast phases, skipped phases,
    the IP or the port disappearing again, probe errors, repeated polls."""
    rng = random.Random(seed)
    history = BootHistory({NAME: {p.value: [rng.uniform(0, 200)] for p in BOOT_PHASES}})
    levels = [starting(), booting(), has_ip(), has_ip(ProbeStage.CLOSED), pending()]
    steps: list[tuple[float, Observation]] = [(0, stopped())]
    level = 0
    while True:
        r = rng.random()
        obs = None
        if r < 0.45:
            level += rng.choice((1, 1, 1, 2, 3))
        elif r < 0.6 and level >= 2:
            level -= 1  # the lease or the port went away again; tart still says running
        elif r < 0.7 and level >= 2:
            obs = has_ip(ProbeStage.AUTH_FAILED, "Permission denied")
        if level >= len(levels):
            steps.append((rng.choice((0, 1, 7)), ready()))
            return history, steps
        steps.append((rng.choice((0, 1, 3, 20, 45, 150, 900)), obs or levels[level]))


@pytest.mark.parametrize("seed", range(60))
def test_progress_never_goes_backwards_during_a_boot(seed: int, clock: FakeClock) -> None:
    history, steps = _random_boot(seed)
    engine = PhaseEngine(clock, history)
    vms = run(engine, clock, steps)
    last = 0.0
    for vm in vms[1:]:
        assert vm.progress >= last, [v.phase.value for v in vms]
        last = vm.progress
        if vm.phase is not Phase.READY:
            assert vm.progress < 1.0
        if vm.eta_seconds is not None:
            assert vm.eta_seconds >= 0
    assert vms[-1].phase is Phase.READY and vms[-1].progress == 1.0


def test_progress_holds_when_a_boot_steps_back(engine: PhaseEngine, clock: FakeClock) -> None:
    vms = run(engine, clock, [(0, stopped()), (1, starting()), (30, booting()), (90, has_ip())])
    at_ip = vms[-1].progress
    assert at_ip == pytest.approx(120 / TOTAL)
    # The lease vanished: the raw estimate drops to the start of booting, the bar must not.
    lost = run(engine, clock, [(5, booting()), (20, booting())])
    assert [v.phase for v in lost] == [Phase.BOOTING, Phase.BOOTING]
    assert [v.progress for v in lost] == [at_ip, at_ip]
    assert lost[0].eta_seconds == pytest.approx(90 + 60 + 120)
    # A boot that went backwards has no trustworthy phase starts left to learn from.
    run(engine, clock, [(10, has_ip()), (10, pending()), (10, ready())])
    assert engine.history.samples(NAME, Phase.IP) == ()
    assert engine.history.samples(NAME, Phase.SSH_PENDING) == ()
    assert engine.history.samples(NAME, Phase.BOOTING) == (90,)


def test_progress_is_capped_below_one_when_a_phase_overruns(
    engine: PhaseEngine, clock: FakeClock
) -> None:
    vms = run(engine, clock, [(0, starting()), (1, booting()), (1, has_ip()), (1, pending())])
    vms += run(engine, clock, [(100_000, pending())])
    assert vms[-1].progress == pytest.approx((TOTAL - 0.05 * 120) / TOTAL)
    assert vms[-1].progress < 1.0
    assert vms[-1].eta_seconds == 0.0


def test_skipped_phases_count_as_completed(engine: PhaseEngine, clock: FakeClock) -> None:
    vms = run(engine, clock, [(0, stopped()), (1, starting()), (40, has_ip()), (20, pending())])
    assert vms[2].phase is Phase.IP
    assert vms[2].progress == pytest.approx((30 + 90) / TOTAL)
    assert [s.phase for s in vms[2].history] == [Phase.STARTING, Phase.IP]
    # The starting span also covered booting, so neither is learned; ip is.
    history = engine.history
    assert history.samples(NAME, Phase.STARTING) == ()
    assert history.samples(NAME, Phase.BOOTING) == ()
    assert history.samples(NAME, Phase.IP) == (20,)


def test_stopped_and_suspended_have_zero_progress(engine: PhaseEngine, clock: FakeClock) -> None:
    cold_boot(engine, clock)
    assert run(engine, clock, [(1, suspended())])[0].progress == 0.0
    assert run(engine, clock, [(1, stopped())])[0].progress == 0.0


# --- ETA and learning --------------------------------------------------------------------


def test_eta_uses_learned_history_after_a_boot(engine: PhaseEngine, clock: FakeClock) -> None:
    cold_boot(engine, clock)
    vms = run(engine, clock, [(5, stopping()), (5, stopped()), (5, starting()), (4, starting())])
    learned = 10 + 50 + 20 + 40
    assert vms[2].eta_seconds == pytest.approx(learned)
    assert vms[3].eta_seconds == pytest.approx(learned - 4)
    assert vms[3].progress == pytest.approx(4 / learned)


def test_eta_is_none_when_not_booting(engine: PhaseEngine, clock: FakeClock) -> None:
    vms = run(engine, clock, [(0, stopped()), (1, suspended())])
    cold_boot(engine, clock)
    vms += run(engine, clock, [(1, ready()), (1, stopping()), (1, has_ip(ProbeStage.ERROR))])
    assert [v.eta_seconds for v in vms] == [None] * 5


def test_resume_from_suspended_is_not_learned(engine: PhaseEngine, clock: FakeClock) -> None:
    run(engine, clock, [(0, suspended()), (1, starting()), (2, booting()), (1, has_ip())])
    run(engine, clock, [(1, pending()), (1, ready())])
    assert engine.history.samples(NAME, Phase.STARTING) == ()
    assert not engine.dirty


def test_vm_started_outside_megatui_learns_from_booting(
    engine: PhaseEngine, clock: FakeClock
) -> None:
    vms = run(engine, clock, [(0, stopped()), (3, booting()), (70, has_ip())])
    assert vms[1].progress == pytest.approx(30 / TOTAL)
    assert [s.phase for s in vms[1].history] == [Phase.BOOTING]
    assert engine.history.samples(NAME, Phase.BOOTING) == (70,)


def test_median_of_the_last_samples() -> None:
    history = BootHistory(keep=5)
    for seconds in (1, 2, 3, 100, 200, 300):
        history.record(NAME, Phase.BOOTING, seconds)
    assert history.samples(NAME, Phase.BOOTING) == (2, 3, 100, 200, 300)
    assert history.expected(NAME, Phase.BOOTING) == 100
    # Nothing learned for ip: the default, scaled as booting compares with its own.
    assert history.expected(NAME, Phase.IP) == pytest.approx(60 * 100 / 90)
    trimmed = BootHistory({NAME: {"ip": [1.0, 2.0, 3.0, 4.0]}}, keep=2)
    assert trimmed.samples(NAME, Phase.IP) == (3.0, 4.0)


def test_a_vm_without_history_is_seeded_from_the_last_boots_of_any_vm() -> None:
    history = BootHistory(keep=3)
    assert history.expected("new", Phase.BOOTING) == 90  # nothing known: the default
    for vm, seconds in (("a", 4.0), ("b", 6.0), ("a", 5.0), ("c", 100.0), ("b", 7.0)):
        history.record(vm, Phase.BOOTING, seconds)
    # The last 3 boots of any VM (5, 100, 7): their median, not the 90 s default.
    assert history.expected("new", Phase.BOOTING) == 7.0
    assert history.expected("a", Phase.BOOTING) == 4.5  # its own, once it has them
    # No VM seen in ip yet: its 60 s default, scaled as booting compares (7 / 90).
    assert history.expected("new", Phase.IP) == pytest.approx(60 * 7 / 90)
    # After a save and load (the file keeps no order across VMs, so by VM name):
    # a's 4, 5, b's 6, 7, c's 100 give 6.
    again = BootHistory.from_json(history.to_json())
    assert again.expected("a", Phase.BOOTING) == 4.5
    assert again.expected("new", Phase.BOOTING) == 6.0


def test_first_boot_eta_of_a_new_vm_comes_from_other_vms_boots(clock: FakeClock) -> None:
    # A lab whose VMs boot in 10 s: the first boot of another VM must not say 5 min.
    history = BootHistory()
    for phase, seconds in zip(BOOT_PHASES, (1.0, 2.0, 3.0, 4.0), strict=True):
        history.record("seen-before", phase, seconds)
    engine = PhaseEngine(clock, history)
    vms = run(engine, clock, [(0, stopped()), (1, starting())])
    assert vms[1].eta_seconds == pytest.approx(10.0)


def test_phases_never_seen_are_scaled_like_those_seen(clock: FakeClock) -> None:
    # The demo: VMs already booting when megatui starts teach only ip and ssh-pending
    # (here a tenth of the defaults); a first boot must not expect 30 + 90 s before them.
    history = BootHistory()
    history.record("running-at-start", Phase.IP, 6.0)
    history.record("running-at-start", Phase.SSH_PENDING, 12.0)
    engine = PhaseEngine(clock, history)
    vms = run(engine, clock, [(0, stopped()), (1, starting())])
    assert vms[1].eta_seconds == pytest.approx(3 + 9 + 6 + 12)


def test_zero_durations_do_not_zero_the_weights(clock: FakeClock) -> None:
    history = BootHistory({NAME: {p.value: [0.0] for p in BOOT_PHASES}})
    assert history.expected(NAME, Phase.IP) == 1.0
    engine = PhaseEngine(clock, history)
    vms = run(engine, clock, [(0, starting()), (100, starting())])
    assert 0 < vms[1].progress < 1.0


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_record_rejects_non_durations(bad: float) -> None:
    with pytest.raises(ValueError):
        BootHistory().record(NAME, Phase.IP, bad)


@pytest.mark.parametrize("phase", [Phase.READY, Phase.STOPPED, Phase.ERROR])
def test_history_only_knows_boot_phases(phase: Phase) -> None:
    with pytest.raises(ValueError):
        BootHistory().expected(NAME, phase)
    with pytest.raises(ValueError):
        BootHistory().record(NAME, phase, 1.0)


# --- persistence -------------------------------------------------------------------------


def test_history_is_saved_and_reloaded(tmp_path: Path, clock: FakeClock) -> None:
    engine = PhaseEngine(clock)
    cold_boot(engine, clock)
    path = tmp_path / "data" / "boot-history.json"
    engine.history.save(path)
    engine.mark_saved()
    assert [p.name for p in path.parent.iterdir()] == [path.name]

    loaded = BootHistory.load(path)
    for phase in BOOT_PHASES:
        assert loaded.samples(NAME, phase) == engine.history.samples(NAME, phase)
    fresh = PhaseEngine(FakeClock(), loaded)
    assert not fresh.dirty
    assert fresh.observe(NAME, starting()).eta_seconds == pytest.approx(120)


def test_save_replaces_the_file_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_text("old", encoding="utf-8")
    history = BootHistory({NAME: {"booting": [42.0]}})
    history.save(path)
    assert json.loads(path.read_text(encoding="utf-8"))["vms"] == {NAME: {"booting": [42.0]}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json"]


def test_failed_save_removes_its_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "history.json"
    target.mkdir()  # os.replace cannot put a file over a directory
    with pytest.raises(OSError):
        BootHistory({NAME: {"ip": [1.0]}}).save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.json"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1, 2]",
        "null",
        '{"version": 99, "vms": {"vm1": {"booting": [5]}}}',
        '{"vms": {"vm1": {"booting": [5]}}}',
        '{"version": 1, "vms": 5}',
        '{"version": 1, "vms": {"vm1": [5]}}',
        '{"version": 1, "vms": {"vm1": {"booting": "5"}}}',
        '{"version": 1, "vms": {"vm1": {"booting": ["5", -3, true, null, 1e999]}}}',
        '{"version": 1, "vms": {"vm1": {"booting": [' + "9" * 400 + "]}}}",
        "[" * 100_000,
    ],
)
def test_garbage_history_is_tolerated(text: str, tmp_path: Path) -> None:
    path = tmp_path / "history.json"
    path.write_text(text, encoding="utf-8")
    for history in (BootHistory.from_json(text), BootHistory.load(path)):
        assert history.samples(NAME, Phase.BOOTING) == ()
        assert history.expected(NAME, Phase.BOOTING) == 90


def test_unreadable_history_files_are_tolerated(tmp_path: Path) -> None:
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    assert BootHistory.load(binary).samples(NAME, Phase.IP) == ()
    assert BootHistory.load(tmp_path / "missing.json").samples(NAME, Phase.IP) == ()
    assert BootHistory.load(tmp_path).samples(NAME, Phase.IP) == ()


def test_partly_valid_history_keeps_the_valid_samples() -> None:
    text = json.dumps(
        {
            "version": 1,
            "vms": {
                NAME: {"booting": [10, "x", -1, 20], "bogus": [1], "ready": [5], "ip": [7.5]},
                "broken": 7,
            },
        }
    )
    history = BootHistory.from_json(text)
    assert history.samples(NAME, Phase.BOOTING) == (10, 20)
    assert history.samples(NAME, Phase.IP) == (7.5,)
    assert history.samples("broken", Phase.IP) == ()


# --- hints -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "obs", "threshold", "expected"),
    [
        ([], starting(), 60, "tart has not reported the VM running after 60 s"),
        ([starting()], booting(), 180, "no IP after 3 min: stale DHCP lease? try `tart ip vm1"),
        (
            [starting(), booting()],
            has_ip(ProbeStage.CLOSED),
            120,
            f"port 2222 on {ADDR} still closed after 2 min: is Remote Login (sshd) enabled",
        ),
        (
            [starting(), booting(), has_ip()],
            pending("readiness command exited 1"),
            240,
            "SSH not accepting logins after 4 min: check the credentials and the readiness "
            "command (last: readiness command exited 1)",
        ),
        ([ready()], stopping(), 60, "still running 60 s after the stop request"),
    ],
)
def test_hint_appears_after_the_threshold_and_not_before(
    engine: PhaseEngine,
    clock: FakeClock,
    steps: list[Observation],
    obs: Observation,
    threshold: float,
    expected: str,
) -> None:
    engine.observe(NAME, stopped(), port=2222)
    for step in steps:
        clock.advance(1)
        engine.observe(NAME, step, port=2222)
    clock.advance(1)
    assert engine.observe(NAME, obs, port=2222).hint is None
    clock.advance(threshold)  # exactly at the threshold: not yet
    assert engine.observe(NAME, obs, port=2222).hint is None
    clock.advance(0.5)
    hint = engine.observe(NAME, obs, port=2222).hint
    assert hint is not None and expected in hint
    assert "\n" not in hint


def test_hint_threshold_follows_learned_durations(clock: FakeClock) -> None:
    slow = PhaseEngine(clock, BootHistory({NAME: {"booting": [200.0]}}))
    vms = run(slow, clock, [(0, starting()), (1, booting()), (399, booting()), (2, booting())])
    assert vms[2].hint is None
    assert vms[3].hint is not None and "after 6 min" in vms[3].hint


def test_hint_has_a_floor_for_fast_vms(clock: FakeClock) -> None:
    fast = PhaseEngine(clock, BootHistory({NAME: {"booting": [5.0]}}))
    vms = run(fast, clock, [(0, starting()), (1, booting()), (59, booting()), (2, booting())])
    assert vms[2].hint is None
    assert vms[3].hint is not None and "after 61 s" in vms[3].hint


def test_hint_goes_away_with_the_phase(engine: PhaseEngine, clock: FakeClock) -> None:
    vms = run(engine, clock, [(0, starting()), (1, booting()), (500, booting()), (1, has_ip())])
    assert vms[2].hint is not None
    assert vms[3].hint is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (59.9, "59 s"),
        (90, "90 s"),
        (119, "119 s"),
        (120, "2 min"),
        (185, "3 min"),
        (7199, "119 min"),
        (7200, "2 h"),
        (-3, "0 s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


# --- VMs megatui did not see start -------------------------------------------------------


def test_first_seen_running_vm_enters_its_phase(engine: PhaseEngine, clock: FakeClock) -> None:
    t0 = clock.now()
    vms = run(engine, clock, [(0, has_ip()), (30, has_ip()), (30, pending()), (40, ready())])
    first = vms[0]
    assert first.phase is Phase.IP and first.phase_since == t0
    assert [s.phase for s in first.history] == [Phase.IP]
    # Starting and booting are behind it.
    assert first.progress == pytest.approx(120 / TOTAL)
    assert first.eta_seconds == pytest.approx(180)
    assert vms[1].progress == pytest.approx(150 / TOTAL)
    assert vms[3].progress == 1.0
    # The ip span began when megatui looked, not when the VM got its address.
    history = engine.history
    assert history.samples(NAME, Phase.IP) == ()
    assert history.samples(NAME, Phase.SSH_PENDING) == (40,)
    assert history.samples(NAME, Phase.STARTING) == ()


def test_first_seen_ready_vm(engine: PhaseEngine) -> None:
    vm = engine.observe(NAME, ready())
    assert (vm.phase, vm.progress, vm.eta_seconds) == (Phase.READY, 1.0, None)
    assert [s.phase for s in vm.history] == [Phase.READY]
    assert not engine.dirty


def test_forget_makes_the_next_observation_a_first_sighting(
    engine: PhaseEngine, clock: FakeClock
) -> None:
    run(engine, clock, [(0, stopped()), (1, starting())])
    engine.forget(NAME)
    vms = run(engine, clock, [(10, booting()), (50, has_ip())])
    assert [s.phase for s in vms[0].history] == [Phase.BOOTING]
    assert engine.history.samples(NAME, Phase.STARTING) == ()
    assert engine.history.samples(NAME, Phase.BOOTING) == ()


# --- stopping ----------------------------------------------------------------------------


def test_stop_flow(engine: PhaseEngine, clock: FakeClock) -> None:
    cold_boot(engine, clock)
    vms = run(engine, clock, [(1, stopping()), (10, stopping())])
    vms += run(engine, clock, [(5, stopped(stop_requested=True)), (1, stopped())])
    assert [v.phase for v in vms] == [Phase.STOPPING] * 2 + [Phase.STOPPED] * 2
    assert vms[0].state is TartState.RUNNING
    assert all(v.progress == 0.0 and v.eta_seconds is None and v.error is None for v in vms)
    assert vms[2].phase_since == vms[3].phase_since


def test_stop_during_boot_learns_nothing_from_the_aborted_phase(
    engine: PhaseEngine, clock: FakeClock
) -> None:
    steps = [(0, stopped()), (1, starting()), (10, booting()), (30, booting())]
    vms = run(engine, clock, [*steps, (1, Observation(TartState.RUNNING, stop_requested=True))])
    assert vms[-1].phase is Phase.STOPPING
    vms = run(engine, clock, [(3, stopped())])
    assert engine.history.samples(NAME, Phase.STARTING) == (10,)
    assert engine.history.samples(NAME, Phase.BOOTING) == ()


def test_stopping_a_suspended_vm(engine: PhaseEngine, clock: FakeClock) -> None:
    vms = run(
        engine,
        clock,
        [
            (0, suspended()),
            (1, Observation(TartState.SUSPENDED, stop_requested=True)),
            (1, stopped()),
        ],
    )
    assert [v.phase for v in vms] == [Phase.SUSPENDED, Phase.STOPPING, Phase.STOPPED]


def test_withdrawn_stop_returns_to_the_running_phase(engine: PhaseEngine, clock: FakeClock) -> None:
    cold_boot(engine, clock)
    vms = run(engine, clock, [(1, stopping()), (40, ready())])
    assert (vms[1].phase, vms[1].progress) == (Phase.READY, 1.0)
    assert [s.phase for s in vms[1].history][-3:] == [Phase.READY, Phase.STOPPING, Phase.READY]


# --- errors ------------------------------------------------------------------------------


def test_probe_error_keeps_ip_and_progress_then_recovers(
    engine: PhaseEngine, clock: FakeClock
) -> None:
    steps = [(0, stopped()), (1, starting()), (10, booting()), (20, has_ip()), (5, pending())]
    vms = run(engine, clock, [*steps, (30, pending())])
    before = vms[-1].progress
    err = run(engine, clock, [(1, has_ip(ProbeStage.AUTH_FAILED, "Permission denied (publickey)"))])
    err += run(engine, clock, [(300, has_ip(ProbeStage.AUTH_FAILED, "Permission denied"))])
    assert [v.phase for v in err] == [Phase.ERROR, Phase.ERROR]
    assert err[0].error == "Permission denied (publickey)"
    assert err[1].error == "Permission denied"
    assert err[0].ip == ADDR and err[0].state is TartState.RUNNING
    assert [v.progress for v in err] == [before, before]
    assert [v.eta_seconds for v in err] == [None, None]
    assert err[1].phase_since == err[0].phase_since  # a new message is not a new phase

    back = run(engine, clock, [(5, pending()), (5, ready())])
    assert back[0].progress >= before
    assert (back[1].phase, back[1].progress, back[1].error) == (Phase.READY, 1.0, None)
    # The boot was interrupted: ssh-pending's real duration is unknown.
    assert engine.history.samples(NAME, Phase.SSH_PENDING) == ()
    assert engine.history.samples(NAME, Phase.IP) == (5,)


def test_start_failure_then_a_new_start(engine: PhaseEngine, clock: FakeClock) -> None:
    limit = "The number of VMs exceeds the system limit (other running VMs: a, b)"
    steps = [(0, stopped()), (1, starting()), (3, starting()), (0, stopped(error=limit))]
    vms = run(engine, clock, steps)
    failed = vms[-1]
    assert (failed.phase, failed.error, failed.state) == (Phase.ERROR, limit, TartState.STOPPED)
    assert failed.progress == pytest.approx(3 / TOTAL)
    assert failed.eta_seconds is None
    again = run(engine, clock, [(60, starting())])[0]
    assert [s.phase for s in again.history] == [Phase.STARTING]
    assert (again.progress, again.error) == (0.0, None)
    assert engine.history.samples(NAME, Phase.STARTING) == ()


@pytest.mark.parametrize(
    ("restart", "phase", "progress", "then"),
    [
        (starting(), Phase.STARTING, 0.0, booting()),
        (booting(), Phase.BOOTING, 30 / TOTAL, has_ip()),
    ],
)
def test_error_on_a_running_vm_that_is_then_stopped(
    engine: PhaseEngine,
    clock: FakeClock,
    restart: Observation,
    phase: Phase,
    progress: float,
    then: Observation,
) -> None:
    run(engine, clock, [(0, has_ip()), (5, has_ip(ProbeStage.HOST_KEY_CHANGED))])
    # Still an error, but tart now says stopped: the boot is over, and the next start
    # (by megatui, or by hand outside it) is a new one.
    run(engine, clock, [(5, stopped(error="tart run exited 1"))])
    vms = run(engine, clock, [(5, restart), (20, then)])
    assert [s.phase for s in vms[0].history] == [phase]
    assert vms[0].progress == pytest.approx(progress)
    assert engine.history.samples(NAME, phase) == (20,)


# --- after READY -------------------------------------------------------------------------


def test_health_check_failure_after_ready(engine: PhaseEngine, clock: FakeClock) -> None:
    cold_boot(engine, clock)
    engine.mark_saved()
    learned = tuple(engine.history.samples(NAME, p) for p in BOOT_PHASES)
    total = 10 + 50 + 20 + 40
    vms = run(engine, clock, [(60, has_ip(ProbeStage.CLOSED)), (10, has_ip(ProbeStage.CLOSED))])
    vms += run(engine, clock, [(10, pending()), (10, ready())])
    assert [v.phase for v in vms] == [Phase.IP, Phase.IP, Phase.SSH_PENDING, Phase.READY]
    # Progress starts over from the failing phase, with the learned weights.
    assert vms[0].progress == pytest.approx((10 + 50) / total)
    assert vms[0].eta_seconds == pytest.approx(20 + 40)
    assert vms[1].progress == pytest.approx((10 + 50 + 10) / total)
    assert vms[3].progress == 1.0
    assert [s.phase for s in vms[3].history][-4:] == [
        Phase.READY,
        Phase.IP,
        Phase.SSH_PENDING,
        Phase.READY,
    ]
    assert tuple(engine.history.samples(NAME, p) for p in BOOT_PHASES) == learned
    assert not engine.dirty


def test_flapping_health_check_keeps_history_bounded(engine: PhaseEngine, clock: FakeClock) -> None:
    cold_boot(engine, clock)
    for _ in range(100):
        run(engine, clock, [(1, pending()), (1, ready())])
    vm = engine.observe(NAME, ready())
    assert len(vm.history) == MAX_SPANS
    assert vm.history[-1].phase is Phase.READY and vm.history[-1].ended is None
    assert vm.history[-2].phase is Phase.SSH_PENDING


# --- time --------------------------------------------------------------------------------


class SkewClock:
    """Wall time and monotonic time moving independently, as after an NTP step."""

    def __init__(self) -> None:
        self.wall = 1_780_000_000.0
        self.mono = 50.0

    def now(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono


def test_durations_use_the_monotonic_clock() -> None:
    clock = SkewClock()
    engine = PhaseEngine(clock)
    engine.observe(NAME, stopped())
    engine.observe(NAME, starting())
    clock.wall -= 3600  # the wall clock steps back an hour ...
    clock.mono += 10  # ... while 10 s really pass
    mid = engine.observe(NAME, starting())
    assert mid.progress == pytest.approx(10 / TOTAL)
    assert mid.eta_seconds == pytest.approx(TOTAL - 10)
    vm = engine.observe(NAME, booting())
    assert vm.phase_since == clock.wall
    assert engine.history.samples(NAME, Phase.STARTING) == (10,)


# --- a controller's pre-boot stages (Orchard) --------------------------------------------

IMAGE = "ghcr.io/cirruslabs/macos-tahoe-base:latest"


def staged(stage: PreBootStage | None, message: str | None = None) -> Observation:
    """A controller's VM: pending (RUNNING with a stage), or past its stages."""
    state = TartState.STOPPED if stage is PreBootStage.FAILED else TartState.RUNNING
    return Observation(state, stage=stage, stage_message=message, scheduled=True)


@pytest.mark.parametrize(
    ("stage", "phase"),
    [
        (PreBootStage.SCHEDULING, Phase.SCHEDULING),
        (PreBootStage.PULLING, Phase.PULLING),
        (PreBootStage.CLONING, Phase.CLONING),
    ],
)
def test_pre_boot_stages_are_phases_before_booting(stage: PreBootStage, phase: Phase) -> None:
    assert derive_phase(staged(stage, "why")) == (phase, None)


def test_failed_is_the_error_phase_with_the_controllers_line() -> None:
    assert derive_phase(staged(PreBootStage.FAILED, "VM failed: guest panic")) == (
        Phase.ERROR,
        "VM failed: guest panic",
    )
    assert derive_phase(staged(PreBootStage.FAILED)) == (
        Phase.ERROR,
        "failed (the controller gave no reason)",
    )
    # Started again (Orchard recreates it): starting, not the old failure.
    restarted = replace(staged(PreBootStage.FAILED, "VM failed"), start_requested=True)
    assert derive_phase(restarted) == (Phase.STARTING, None)


def controller_boot(engine: PhaseEngine, clock: FakeClock, name: str, pull: float) -> list[VM]:
    steps = [
        (0.0, replace(stopped(), scheduled=True, start_requested=True)),
        (2.0, staged(PreBootStage.SCHEDULING, "waiting for the scheduler")),
        (3.0, staged(PreBootStage.PULLING, "pulling VM image...")),
        (pull, staged(PreBootStage.CLONING, "cloning VM...")),
        (20.0, staged(None)),
        (30.0, replace(has_ip(), scheduled=True)),
        (5.0, replace(pending(), scheduled=True)),
        (10.0, replace(ready(), scheduled=True)),
    ]
    out = []
    for seconds, obs in steps:
        clock.advance(seconds)
        out.append(engine.observe(name, obs, key=IMAGE))
    return out


def test_a_controller_boot_walks_its_stages_and_learns_per_image(clock: FakeClock) -> None:
    engine = PhaseEngine(clock)
    vms = controller_boot(engine, clock, "ci-1", pull=100.0)
    assert [vm.phase for vm in vms] == [
        Phase.STARTING,
        Phase.SCHEDULING,
        Phase.PULLING,
        Phase.CLONING,
        Phase.BOOTING,
        Phase.IP,
        Phase.SSH_PENDING,
        Phase.READY,
    ]
    progress = [vm.progress for vm in vms]
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert all(0 < p < 1 for p in progress[1:-1])
    history = engine.history
    assert history.samples(IMAGE, Phase.PULLING) == (100.0,)
    assert history.samples(IMAGE, Phase.CLONING) == (20.0,)
    assert history.samples("ci-1", Phase.PULLING) == ()
    # Another VM of the same image (a new name, as Orchard's VMs often have) expects
    # the image's pull: its ETA in `pulling` is the learned 100 s plus what follows.
    clock.advance(1.0)
    engine.observe("ci-2", replace(stopped(), scheduled=True, start_requested=True), key=IMAGE)
    clock.advance(1.0)
    engine.observe("ci-2", staged(PreBootStage.SCHEDULING), key=IMAGE)
    clock.advance(1.0)
    vm = engine.observe("ci-2", staged(PreBootStage.PULLING), key=IMAGE)
    after_pull = sum(history.expected(IMAGE, p) for p in (Phase.CLONING, *BOOT_PHASES[1:]))
    assert vm.eta_seconds == pytest.approx(100.0 + after_pull)


def test_a_tart_boot_is_unchanged_by_the_stages(engine: PhaseEngine, clock: FakeClock) -> None:
    vms = run(engine, clock, [(0.0, starting()), (30.0, booting())])
    # starting, booting, ip, ssh-pending: the defaults' 300 s, no pre-boot weights.
    assert vms[0].eta_seconds == pytest.approx(TOTAL)


def test_a_stage_that_lasts_far_too_long_says_why(clock: FakeClock) -> None:
    engine = PhaseEngine(clock)
    message = "no worker has a free macOS VM slot (Apple allows 2 per Mac)"
    engine.observe(NAME, staged(PreBootStage.SCHEDULING, message), key=IMAGE)
    clock.advance(3600.0)
    vm = engine.observe(NAME, staged(PreBootStage.SCHEDULING, message), key=IMAGE)
    assert vm.hint == f"no worker has taken the VM after 60 min: {message}"


def test_pre_boot_phases_are_learned_history_phases() -> None:
    history = BootHistory()
    history.record(IMAGE, Phase.PULLING, 42.0)
    assert BootHistory.from_json(history.to_json()).samples(IMAGE, Phase.PULLING) == (42.0,)


def test_an_images_first_pull_has_no_eta(clock: FakeClock) -> None:
    """Nothing learned about this image's pull: `pulling` with no made-up ETA and a
    bar that holds still; the phases after it are estimated again."""
    engine = PhaseEngine(clock)
    other = "ghcr.io/cirruslabs/macos-sequoia-xcode:latest"
    engine.history.record(other, Phase.PULLING, 30.0)  # another image's pull says nothing
    assert engine.history.expected(IMAGE, Phase.PULLING) is None
    engine.observe(NAME, replace(stopped(), scheduled=True, start_requested=True), key=IMAGE)
    clock.advance(1.0)
    first = engine.observe(NAME, staged(PreBootStage.PULLING, "pulling VM image..."), key=IMAGE)
    clock.advance(300.0)
    later = engine.observe(NAME, staged(PreBootStage.PULLING, "pulling VM image..."), key=IMAGE)
    assert first.phase is Phase.PULLING and first.eta_seconds is None
    assert later.eta_seconds is None and later.progress == first.progress
    assert later.hint is None, "no hint before the typical pull (600 s) is well past"
    clock.advance(2 * 600.0)
    late = engine.observe(NAME, staged(PreBootStage.PULLING, "pulling VM image..."), key=IMAGE)
    assert late.hint is not None and late.hint.startswith("the worker is still pulling")
    clock.advance(1.0)
    cloning = engine.observe(NAME, staged(PreBootStage.CLONING, "cloning VM..."), key=IMAGE)
    assert cloning.eta_seconds is not None and cloning.progress >= later.progress
    # The pull it watched (1501 s) is the image's estimate from now on.
    assert engine.history.expected(IMAGE, Phase.PULLING) == pytest.approx(1501.0)
