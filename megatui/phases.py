"""The boot-phase engine: Tart's three states plus IP and SSH probes -> one boot phase per VM.

Tart only knows running/suspended/stopped (docs/facts/tart.md §10), so megatui derives the phases
in between from what it can observe. Everything here is pure: time comes from an injected
`Clock`, and the only I/O is `BootHistory.load`/`save`, which the caller invokes.

Durations are measured on the monotonic clock so a wall-clock jump cannot bend progress,
ETA or the learned history; `phase_since` and the spans use wall-clock epoch seconds
because they are shown to people and written to JSON.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from megatui.clock import Clock
from megatui.files import write_atomic
from megatui.model import (
    BOOT_PHASES,
    DEFAULT_PHASE_SECONDS,
    VM,
    Phase,
    PhaseSpan,
    PreBootStage,
    ProbeStage,
    TartState,
)

#: A phase is "far longer than usual" once it has lasted more than HINT_FACTOR times its
#: expected duration AND more than HINT_MIN_SECONDS. The factor absorbs normal jitter (a
#: median is exceeded half the time); the floor keeps VMs that learned very short phases
#: from getting a hint after a few poll intervals. With the defaults this gives:
#: starting 60 s, booting 3 min, ip 2 min, ssh-pending 4 min.
HINT_FACTOR = 2.0
HINT_MIN_SECONDS = 60.0

#: `tart stop` sends SIGINT and waits 30 s by default before SIGKILL (docs/facts/tart.md §7.1), so a
#: VM still running after twice that is stuck, not slow.
STOP_EXPECTED_SECONDS = 30.0

#: Within a phase, progress advances with elapsed time only up to this share of the
#: phase's expected duration, so an overrunning phase never looks finished.
PHASE_PROGRESS_CAP = 0.95

#: Progress shown for anything but READY never exceeds this, whatever the float maths.
BELOW_DONE = 0.999

#: Learned durations below this are treated as this, so weights never sum to zero.
MIN_EXPECTED_SECONDS = 1.0

#: Spans kept per VM. A flapping health check after READY adds two spans per flap.
MAX_SPANS = 32

HISTORY_FORMAT_VERSION = 1

_PROBE_ERROR_DEFAULTS: dict[ProbeStage, str] = {
    ProbeStage.AUTH_FAILED: "SSH login rejected: check the user and key or password",
    ProbeStage.HOST_KEY_CHANGED: "SSH host key differs from the one trusted earlier",
    ProbeStage.ERROR: "SSH readiness probe failed",
}

_NOT_LISTED = "not in `tart list`: was the VM deleted or renamed?"

#: A controller's (Orchard's) stages before `tart run`, in order. A VM of such a
#: backend boots through STARTING (megatui asked), these, then BOOTING on.
PRE_BOOT_PHASES: tuple[Phase, ...] = (Phase.SCHEDULING, Phase.PULLING, Phase.CLONING)
SCHEDULED_BOOT_PHASES: tuple[Phase, ...] = (Phase.STARTING, *PRE_BOOT_PHASES, *BOOT_PHASES[1:])
#: Every phase a VM moves through on its way to READY, whatever its backend.
MOVING_PHASES: frozenset[Phase] = frozenset(SCHEDULED_BOOT_PHASES) | frozenset(BOOT_PHASES)
#: Typical durations of the pre-boot stages (an image pull of tens of GB dominates).
PRE_BOOT_SECONDS: dict[Phase, float] = {
    Phase.SCHEDULING: 5.0,
    Phase.PULLING: 600.0,
    Phase.CLONING: 60.0,
}
#: Phases only learned samples can estimate: an image pull takes seconds or an hour
#: depending on the image, the registry and the link, and Orchard's status_message
#: gives no progress (orchard.md §3.3). Without samples of this key (the image) it
#: has no ETA: its bar holds still and the hint waits for the typical duration.
UNGUESSABLE: frozenset[Phase] = frozenset({Phase.PULLING})
_STAGE_PHASES: dict[PreBootStage, Phase] = {
    PreBootStage.SCHEDULING: Phase.SCHEDULING,
    PreBootStage.PULLING: Phase.PULLING,
    PreBootStage.CLONING: Phase.CLONING,
}

_BOOT_INDEX: dict[Phase, int] = {phase: i for i, phase in enumerate(BOOT_PHASES)}
_SCHEDULED_INDEX: dict[Phase, int] = {phase: i for i, phase in enumerate(SCHEDULED_BOOT_PHASES)}
_LEARNED = frozenset(MOVING_PHASES)


def _default_seconds(phase: Phase) -> float:
    return PRE_BOOT_SECONDS.get(phase) or DEFAULT_PHASE_SECONDS[phase]


_IDLE_PHASES = frozenset({Phase.STOPPED, Phase.SUSPENDED, Phase.STOPPING})


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything the sources know about one VM at one poll."""

    tart_state: TartState | None  # None: the VM is not in `tart list` (deleted/unknown)
    ip: str | None = None  # only ever set by the caller for a RUNNING VM
    probe: ProbeStage | None = None  # latest SSH probe stage, None if not probed yet
    probe_error: str | None = None
    start_requested: bool = False  # megatui launched `tart run`, not yet seen running
    stop_requested: bool = False  # megatui asked tart to stop it and it still runs
    error: str | None = None  # a definite error from tart (e.g. start failed: VM limit)
    #: A controller's stage before `tart run` (None: past them, or tart itself).
    stage: PreBootStage | None = None
    stage_message: str | None = None
    #: The backend has pre-boot stages (Orchard): boots run through them.
    scheduled: bool = False


def derive_phase(obs: Observation) -> tuple[Phase, str | None]:
    """The phase one observation shows, and the error message for the ERROR phase.

    Stateless: the engine adds what needs memory (spans, progress, history).
    """
    if obs.error is not None:
        return Phase.ERROR, obs.error
    if obs.tart_state is None:
        return Phase.ERROR, _NOT_LISTED
    if obs.stop_requested:
        # `tart stop` on a suspended VM only deletes its saved state, so it is "stopping"
        # until tart reports stopped, exactly like a running one.
        return (Phase.STOPPED if obs.tart_state is TartState.STOPPED else Phase.STOPPING), None
    if obs.tart_state is not TartState.RUNNING:
        if obs.start_requested:
            return Phase.STARTING, None
        if obs.stage is PreBootStage.FAILED:
            # The controller gave up on the VM: the first line of its message.
            return Phase.ERROR, obs.stage_message or "failed (the controller gave no reason)"
        if obs.tart_state is TartState.SUSPENDED:
            return Phase.SUSPENDED, None
        return Phase.STOPPED, None
    if obs.stage is not None:
        return _STAGE_PHASES[obs.stage], None
    if obs.ip is None:
        return Phase.BOOTING, None
    if obs.probe is None or obs.probe is ProbeStage.CLOSED:
        return Phase.IP, None
    if obs.probe is ProbeStage.OPEN:
        return Phase.SSH_PENDING, None
    if obs.probe is ProbeStage.READY:
        return Phase.READY, None
    return Phase.ERROR, obs.probe_error or _PROBE_ERROR_DEFAULTS[obs.probe]


def format_duration(seconds: float) -> str:
    """'45 s', '3 min', '2 h': rounded down, so 'after 3 min' is always true."""
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s} s"
    minutes = s // 60
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h"


# --- learned durations ------------------------------------------------------------------


class BootHistory:
    """Per-VM durations of the boot phases, learned from observed boots.

    Keyed by VM name and phase value (`"booting"`), newest sample last. The estimate is
    the median of the last `keep` samples: one odd boot (a macOS update, a cold disk
    cache) should not swing the ETA of every later one.

    A VM without its own samples (its first boot seen) is estimated from the last
    `keep` boots of any VM on this host, which say more about a lab's 10 s boots or a
    Mac's real ones than the macOS defaults do. A phase no VM was seen in gets its
    default scaled by how the phases that were seen compare with theirs.
    """

    def __init__(
        self, samples: dict[str, dict[str, list[float]]] | None = None, keep: int = 5
    ) -> None:
        self.keep = max(int(keep), 1)
        self._samples: dict[str, dict[Phase, list[float]]] = {}
        #: The last `keep` samples of each phase, of any VM, newest last.
        self._recent: dict[Phase, list[float]] = {}
        # Bumped on every change; the engine compares it to tell whether a save is due.
        self.revision = 0
        for vm, phases in (samples or {}).items():
            for key, values in phases.items():
                phase = _boot_phase(key)
                if phase is None:
                    continue
                for value in values:
                    self._add(vm, phase, value)

    def expected(self, vm: str, phase: Phase) -> float | None:
        """Expected seconds in `phase` for this VM: its learned median, else that of
        the last boots of any VM, else the default. None for an UNGUESSABLE phase
        this key has no samples of (an image's first pull)."""
        _require_boot_phase(phase)
        own = self._samples.get(vm, {}).get(phase)
        if phase in UNGUESSABLE:
            return max(float(statistics.median(own)), MIN_EXPECTED_SECONDS) if own else None
        learned = own or self._recent.get(phase)
        if not learned:
            return max(_default_seconds(phase) * self._pace(), MIN_EXPECTED_SECONDS)
        return max(float(statistics.median(learned)), MIN_EXPECTED_SECONDS)

    def _pace(self) -> float:
        """How this host's boots compare with the defaults, from the phases seen so far
        (1 with none). A VM that was already booting when megatui started teaches only
        its later phases; a lab whose VMs get an address in 3 s instead of 60 also
        boots faster than 90 s, so the unseen phases are scaled alike."""
        ratios = [
            float(statistics.median(values)) / DEFAULT_PHASE_SECONDS[phase]
            for phase, values in self._recent.items()
            # An image pull says nothing about how fast a guest boots.
            if values and phase in _BOOT_INDEX
        ]
        return float(statistics.median(ratios)) if ratios else 1.0

    def samples(self, vm: str, phase: Phase) -> tuple[float, ...]:
        _require_boot_phase(phase)
        return tuple(self._samples.get(vm, {}).get(phase, ()))

    def record(self, vm: str, phase: Phase, seconds: float) -> None:
        _require_boot_phase(phase)
        if not _valid_seconds(seconds):
            raise ValueError(f"not a duration: {seconds!r}")
        self._add(vm, phase, seconds)
        self.revision += 1

    def to_json(self) -> str:
        vms = {
            vm: {phase.value: list(values) for phase, values in phases.items() if values}
            for vm, phases in sorted(self._samples.items())
        }
        return json.dumps({"version": HISTORY_FORMAT_VERSION, "vms": vms}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BootHistory:
        """Parse `to_json` output. Anything unusable is dropped, never raised: the file is
        a cache of estimates, and a corrupt one must not stop megatui from starting."""
        try:
            data: Any = json.loads(text)
        except (ValueError, RecursionError):
            return cls()
        history = cls()
        if not isinstance(data, dict) or data.get("version") != HISTORY_FORMAT_VERSION:
            return history
        vms = data.get("vms")
        if not isinstance(vms, dict):
            return history
        for vm, phases in vms.items():
            if not isinstance(phases, dict):
                continue
            for key, values in phases.items():
                phase = _boot_phase(key)
                if phase is None or not isinstance(values, list):
                    continue
                for value in values:
                    history._add(vm, phase, value)
        return history

    @classmethod
    def load(cls, path: Path) -> BootHistory:
        """The history saved at `path`; empty if it is missing, unreadable or corrupt."""
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return cls()
        return cls.from_json(text)

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename), so a crash never leaves half a file.

        Raises OSError; the caller decides whether a failed save is worth reporting.
        """
        write_atomic(path, self.to_json())

    def _add(self, vm: object, phase: Phase, value: object) -> None:
        # Silently skips bad input: used for untrusted JSON; `record` validates first.
        if not isinstance(vm, str) or not _valid_seconds(value):
            return
        assert isinstance(value, int | float)
        for values in (
            self._samples.setdefault(vm, {}).setdefault(phase, []),
            self._recent.setdefault(phase, []),
        ):
            values.append(float(value))
            if len(values) > self.keep:
                del values[: len(values) - self.keep]


def _valid_seconds(value: object) -> bool:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        # JSON integers are unbounded; float() of a huge one overflows instead of inf.
        seconds = float(value)
    except OverflowError:
        return False
    return math.isfinite(seconds) and seconds >= 0


def _boot_phase(key: object) -> Phase | None:
    if not isinstance(key, str):
        return None
    try:
        phase = Phase(key)
    except ValueError:
        return None
    return phase if phase in _LEARNED else None


def _require_boot_phase(phase: Phase) -> None:
    if phase not in _LEARNED:
        raise ValueError(f"{phase.value} is not a boot phase")


# --- the engine -------------------------------------------------------------------------


class _Boot(Enum):
    IDLE = "idle"  # not booting: stopped, suspended, stopping, or an aborted boot
    BOOTING = "booting"  # in a boot phase (or an error while running, before READY)
    DONE = "done"  # reached READY and still running


@dataclass(slots=True)
class _Track:
    phase: Phase
    tart_state: TartState | None  # at the previous observation
    since: float  # epoch: when `phase` began
    since_mono: float
    spans: tuple[PhaseSpan, ...]  # finished spans of the current boot
    view: tuple[PhaseSpan, ...]  # spans + the open one; rebuilt only on a transition
    boot: _Boot
    # This boot's durations may be learned: it started from power-off and has not yet
    # gone backwards or hit an error. Resumes and recoveries after READY are not boots.
    regular: bool
    # The current span began at an observed forward transition of a regular boot, so its
    # start is a real phase start (to within one poll), not the moment megatui looked.
    clean: bool
    weights: tuple[float, ...]  # expected seconds per boot phase, frozen for this boot
    # Indexes of phases with no estimate (weight 0): no ETA while in them.
    unknown: frozenset[int]
    before: tuple[float, ...]  # weights[:i] summed, per index
    # weights[i+1:] summed, per index. Kept rather than computed as total - before - w,
    # which float rounding can push below zero and so make the ETA negative.
    after: tuple[float, ...]
    total: float
    high_water: float
    # The history key (the VM's name, or its image for a controller's VMs) and the
    # phases its boots run through.
    key: str = ""
    phases: tuple[Phase, ...] = BOOT_PHASES
    index: dict[Phase, int] = field(default_factory=lambda: _BOOT_INDEX)


class PhaseEngine:
    """Turns per-poll observations into `model.VM`s with phase, spans, progress, ETA, hint.

    One `observe` call is O(1): a bounded amount of work regardless of how long megatui
    has run or how often a VM has booted.
    """

    def __init__(self, clock: Clock, history: BootHistory | None = None) -> None:
        self._clock = clock
        self._history = history if history is not None else BootHistory()
        self._saved_revision = self._history.revision
        self._tracks: dict[str, _Track] = {}

    @property
    def history(self) -> BootHistory:
        return self._history

    @property
    def dirty(self) -> bool:
        """The history has changed since construction or the last `mark_saved`."""
        return self._history.revision != self._saved_revision

    def mark_saved(self) -> None:
        self._saved_revision = self._history.revision

    def forget(self, name: str) -> None:
        """Drop what the engine remembers about a VM (not its learned history)."""
        self._tracks.pop(name, None)

    def observe(self, name: str, obs: Observation, *, port: int = 22, key: str | None = None) -> VM:
        """`key` names what boots are learned for: the VM's name by default; a
        controller's VMs are recreated under new names and learn per image."""
        now = self._clock.now()
        mono = self._clock.monotonic()
        phase, error = derive_phase(obs)
        track = self._tracks.get(name)
        if track is None:
            track = self._first_seen(name, phase, obs, now, mono, key or name)
            self._tracks[name] = track
        elif phase is not track.phase:
            track.key = key or name
            if obs.scheduled:
                track.phases, track.index = SCHEDULED_BOOT_PHASES, _SCHEDULED_INDEX
            self._transition(name, track, phase, obs.tart_state, now, mono)
        if phase is Phase.ERROR:
            self._error_boot_state(name, track, obs.tart_state)
        track.tart_state = obs.tart_state

        elapsed = max(mono - track.since_mono, 0.0)
        progress, eta = self._progress(track, elapsed)
        return VM(
            name=name,
            state=obs.tart_state if obs.tart_state is not None else TartState.STOPPED,
            phase=phase,
            ip=obs.ip,
            progress=progress,
            phase_since=track.since,
            eta_seconds=eta,
            error=error,
            hint=self._hint(name, track, elapsed, obs, port),
            history=track.view,
            port=port,
        )

    # -- state changes

    def _first_seen(
        self, name: str, phase: Phase, obs: Observation, now: float, mono: float, key: str
    ) -> _Track:
        track = _Track(
            phase=phase,
            tart_state=obs.tart_state,
            since=now,
            since_mono=mono,
            spans=(),
            view=(PhaseSpan(phase, now),),
            boot=_Boot.IDLE,
            regular=False,
            clean=False,
            weights=(),
            unknown=frozenset(),
            before=(),
            after=(),
            total=0.0,
            high_water=0.0,
            key=key,
        )
        if obs.scheduled:
            track.phases, track.index = SCHEDULED_BOOT_PHASES, _SCHEDULED_INDEX
        if phase is Phase.STARTING:
            # megatui launched `tart run` just before this first poll: a real boot start.
            self._begin_boot(name, track, regular=True)
            track.clean = True
        elif phase in track.index or phase is Phase.READY:
            # Already past some phases when megatui started: learn from the transitions
            # still to come, but not from this span, whose real start is unknown.
            self._begin_boot(name, track, regular=True)
        if phase is Phase.READY:
            track.boot = _Boot.DONE
        return track

    def _transition(
        self,
        name: str,
        track: _Track,
        phase: Phase,
        tart_state: TartState | None,
        now: float,
        mono: float,
    ) -> None:
        prev = track.phase
        if (
            track.boot is _Boot.BOOTING
            and track.regular
            and track.clean
            and _successor(track, prev) is phase
        ):
            self._history.record(track.key, prev, max(mono - track.since_mono, 0.0))

        spans = (*track.spans, PhaseSpan(prev, track.since, now))
        track.phase, track.since, track.since_mono = phase, now, mono

        if phase in _IDLE_PHASES:
            # Stopping or stopped ends the boot, aborted or not; nothing more to learn.
            track.boot = _Boot.IDLE
            track.clean = False
            track.high_water = 0.0
        elif phase is Phase.ERROR:
            # Whatever comes after an error is recovery, not a measurement.
            track.regular = False
            track.clean = False
            if (
                tart_state is TartState.RUNNING
                and track.boot is _Boot.IDLE
                and _was_off(track.tart_state)
            ):
                # Started outside megatui and failing already: still a new boot.
                spans = ()
        elif phase is Phase.STARTING or track.boot is _Boot.IDLE:
            # STARTING always means megatui just ran `tart run`, even if the VM was READY
            # at the previous poll (it stopped and was restarted in between).
            if phase is Phase.STARTING or _was_off(track.tart_state):
                spans = ()
                # A resume from suspended takes seconds; learning it would make the next
                # cold boot's ETA absurdly optimistic.
                self._begin_boot(name, track, regular=track.tart_state is not TartState.SUSPENDED)
                track.clean = True
            else:
                # Tart kept running all along (a stop request was withdrawn): same
                # machine, same uptime, but its phase starts are not observed.
                self._begin_boot(name, track, regular=False)
            if phase is Phase.READY:
                track.boot = _Boot.DONE
        elif track.boot is _Boot.DONE:
            if phase in track.index:
                # A health check failed after READY: a new problem, not part of the boot.
                # Progress restarts from this phase; nothing is learned from it.
                self._begin_boot(name, track, regular=False)
        else:
            forward = phase is Phase.READY or (
                prev in track.index
                and phase in track.index
                and track.index[phase] > track.index[prev]
            )
            if not forward:
                track.regular = False
            track.clean = forward and track.regular
            if phase is Phase.READY:
                track.boot = _Boot.DONE

        if len(spans) >= MAX_SPANS:
            spans = spans[len(spans) - MAX_SPANS + 1 :]
        track.spans = spans
        track.view = (*spans, PhaseSpan(phase, now))

    def _error_boot_state(self, name: str, track: _Track, tart_state: TartState | None) -> None:
        # Evaluated on every ERROR observation, because tart's state can change while the
        # phase stays ERROR (a failing probe, then the VM is stopped).
        running = tart_state is TartState.RUNNING
        if not running and track.boot is not _Boot.IDLE:
            # Aborted. The high-water mark stays so the bar shows how far it got.
            track.boot = _Boot.IDLE
        elif running and track.boot is _Boot.IDLE:
            # Running but failing, e.g. started outside megatui: a boot we cannot measure.
            self._begin_boot(name, track, regular=False)

    def _begin_boot(self, name: str, track: _Track, *, regular: bool) -> None:
        expected = [self._history.expected(track.key or name, p) for p in track.phases]
        weights = tuple(e or 0.0 for e in expected)
        before = tuple(sum(weights[:i]) for i in range(len(weights)))
        after = tuple(sum(weights[i + 1 :]) for i in range(len(weights)))
        track.boot = _Boot.BOOTING
        track.regular = regular
        track.clean = False
        track.weights = weights
        track.unknown = frozenset(i for i, e in enumerate(expected) if e is None)
        track.before = before
        track.after = after
        track.total = sum(weights)
        track.high_water = 0.0

    # -- derived values

    def _progress(self, track: _Track, elapsed: float) -> tuple[float, float | None]:
        phase = track.phase
        if phase is Phase.READY:
            return 1.0, None
        index = track.index.get(phase)
        if index is not None and track.boot is _Boot.BOOTING:
            expected = track.weights[index]
            done = track.before[index] + min(elapsed, PHASE_PROGRESS_CAP * expected)
            track.high_water = max(track.high_water, min(done / track.total, BELOW_DONE))
            if index in track.unknown:
                return track.high_water, None  # e.g. "pulling", for as long as it takes
            return track.high_water, max(expected - elapsed, 0.0) + track.after[index]
        if phase is Phase.ERROR and track.boot is not _Boot.DONE:
            return track.high_water, None
        return 0.0, None

    def _hint(
        self, name: str, track: _Track, elapsed: float, obs: Observation, port: int
    ) -> str | None:
        phase = track.phase
        if phase is Phase.STOPPING:
            expected = STOP_EXPECTED_SECONDS
        elif phase in track.index and track.boot is _Boot.BOOTING:
            index = track.index[phase]
            # No estimate: only a wait beyond the typical one is worth a hint.
            unknown = index in track.unknown
            expected = _default_seconds(phase) if unknown else track.weights[index]
        else:
            return None
        if elapsed <= max(HINT_FACTOR * expected, HINT_MIN_SECONDS):
            return None
        took = format_duration(elapsed)
        if phase in _PRE_BOOT_HINTS:
            why = f": {obs.stage_message}" if obs.stage_message else ""
            return f"{_PRE_BOOT_HINTS[phase]} after {took}{why}"
        if phase is Phase.STARTING and track.phases is SCHEDULED_BOOT_PHASES:
            return f"the controller has not taken the VM after {took}"
        if phase is Phase.STARTING:
            return (
                f"tart has not reported the VM running after {took}: check the `tart run` "
                "output; macOS allows only 2 macOS VMs running at once"
            )
        if phase is Phase.BOOTING:
            return (
                f"no IP after {took}: stale DHCP lease? try `tart ip {name} --resolver agent`"
                " (bridged network: `--resolver arp`)"
            )
        if phase is Phase.IP:
            return (
                f"port {port} on {obs.ip} still closed after {took}: is Remote Login (sshd) "
                "enabled in the guest, or is the IP a stale lease of another VM?"
            )
        if phase is Phase.SSH_PENDING:
            last = f" (last: {obs.probe_error})" if obs.probe_error else ""
            return (
                f"port {port} open but SSH not accepting logins after {took}: "
                f"check the credentials and the readiness command{last}"
            )
        return (
            f"still running {took} after the stop request: is the `tart run` process hung? "
            f"try `tart stop {name} --timeout 5`"
        )


def _was_off(state: TartState | None) -> bool:
    # Tart did not report the VM running at the previous poll: a boot seen now is fresh.
    return state is not TartState.RUNNING


def _successor(track: _Track, phase: Phase) -> Phase | None:
    index = track.index.get(phase)
    if index is None:
        return None
    phases = track.phases
    return phases[index + 1] if index + 1 < len(phases) else Phase.READY


_PRE_BOOT_HINTS: dict[Phase, str] = {
    Phase.SCHEDULING: "no worker has taken the VM",
    Phase.PULLING: "the worker is still pulling the image",
    Phase.CLONING: "the worker is still cloning the VM",
}
