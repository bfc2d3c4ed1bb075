"""Recovery policy: which VMs `megatui serve` starts again, and when. No I/O.

Input at each evaluation: the snapshot's VMs, each VM's policy (config [recovery]),
the last start/stop each VM was asked for through any megatui (vm_intents), the
clock. Output: the actions to take now, notices for the timeline, and when to
evaluate again if nothing changes before. The runner (serve/recovery_runner.py)
executes the actions and reports back with `begin` and `finish`.

The rules, in one place:
- "on-exit": a VM seen running, then stopped, that nobody asked to stop, is started.
- "unhealthy": as on-exit, and a VM that was ready and is still running but has not
  answered its health check for `unhealthy_after` checks in a row (the first failed
  check is the moment it left ready, then one more per [ssh] health_interval) is
  stopped and started.
- A stop asked through megatui (TUI, `megatui stop`, the API, from any process) holds
  until a start is asked through megatui or the VM is seen stopped and then running
  again (started some other way): recovery never fights it.
- At most `max_restarts` attempts per rolling hour; between attempts that did not
  bring the VM to ready, the project's backoff (doubling from `backoff` seconds).
- Read-only: never acts. A VM without a policy (or "never", or gone) is not managed.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from megatui.backoff import backoff_delay
from megatui.clock import Clock
from megatui.config import RecoveryPolicy
from megatui.model import VM, Phase, TartState

WINDOW = 3600.0  # max_restarts counts attempts in this rolling window
BACKOFF_CAP = 900.0
HISTORY = 20  # records kept per VM
USER_STOPPED = "stopped through megatui: recovery leaves it stopped"


class ActionKind(StrEnum):
    START = "start"  # the VM exited: start it
    RESTART = "restart"  # the VM is unhealthy: stop it, then start it


class Result(StrEnum):
    OK = "ok"  # the VM reached ready
    FAILED = "failed"  # tart refused, or the VM gave up / did not get ready in time
    LIMITED = "limited"  # max_restarts reached: not attempted


@dataclass(frozen=True, slots=True)
class Intent:
    """The last start or stop asked for a VM through megatui."""

    action: str  # "start" or "stop"
    at: float  # wall clock


@dataclass(frozen=True, slots=True)
class Action:
    vm: str
    kind: ActionKind
    reason: str
    attempt: int  # 1 for the first attempt since the VM was last ready


# (Alike in shape only with model.Application and KindNodeContainer: plain records.)
@dataclass(frozen=True, slots=True)
class Notice:
    vm: str
    message: str
    severity: str = "info"


@dataclass(frozen=True, slots=True)
class Record:
    at: float
    action: ActionKind
    result: Result
    detail: str


@dataclass(frozen=True, slots=True)
class Plan:
    actions: tuple[Action, ...] = ()
    notices: tuple[Notice, ...] = ()
    #: Wall-clock time of the next evaluation a time rule needs (backoff, unhealthy
    #: count, window), or None.
    wake_at: float | None = None


@dataclass
class _Track:
    """What the engine remembers of one managed VM between evaluations."""

    was_running: bool = False
    was_ready: bool = False  # ready since it was last seen starting
    unready_since: float | None = None
    pending: ActionKind | None = None
    reason: str = ""
    attempts: int = 0  # since the VM was last ready
    not_before: float = 0.0
    #: A stop intent (its time) seen carried out: once the VM runs again, it is spent.
    honoured_stop: float | None = None
    spent_stop: float | None = None
    noted: str | None = None  # the last notice, so that each is said once


@dataclass
class _Memory:
    history: deque[Record] = field(default_factory=lambda: deque(maxlen=HISTORY))
    attempts_at: deque[float] = field(default_factory=deque)


class RecoveryEngine:
    def __init__(self, clock: Clock, rand: random.Random | None = None) -> None:
        self.clock = clock
        self._rand = rand or random.Random()
        self._tracks: dict[str, _Track] = {}
        self._memory: dict[str, _Memory] = {}
        #: (vm, action, result) -> count since start, for the metrics counter.
        self.counts: dict[tuple[str, str, str], int] = {}

    # --- evaluation ------------------------------------------------------------------

    def evaluate(
        self,
        vms: Sequence[VM],
        policies: Mapping[str, RecoveryPolicy],
        intents: Mapping[str, Intent],
        *,
        readonly: bool,
        health_interval: float,
        busy: Collection[str] = (),
    ) -> Plan:
        now = self.clock.now()
        actions: list[Action] = []
        notices: list[Notice] = []
        wakes: list[float] = []
        managed = set()
        for vm in vms:
            policy = policies.get(vm.name)
            if policy is None or policy.restart == "never":
                continue
            managed.add(vm.name)
            if vm.name in busy:
                continue
            track = self._tracks.setdefault(vm.name, _Track())
            self._observe(
                vm, policy, intents.get(vm.name), track, now, health_interval, notices, wakes
            )
            self._decide(vm.name, policy, track, now, readonly, actions, notices, wakes)
        for name in set(self._tracks) - managed:
            del self._tracks[name]  # removed from config, set to never, or gone
        return Plan(tuple(actions), tuple(notices), min(wakes) if wakes else None)

    def _observe(
        self,
        vm: VM,
        policy: RecoveryPolicy,
        intent: Intent | None,
        track: _Track,
        now: float,
        health_interval: float,
        notices: list[Notice],
        wakes: list[float],
    ) -> None:
        running = vm.state is TartState.RUNNING
        stop = intent.at if intent is not None and intent.action == "stop" else None
        if running and not track.was_running and track.honoured_stop is not None:
            # Stopped as asked, now running again: started some other way.
            track.spent_stop = track.honoured_stop
        user_stop = stop is not None and stop != track.spent_stop
        if not running and user_stop:
            track.honoured_stop = stop
        if user_stop or vm.phase is Phase.STOPPING:
            track.pending = None
            track.unready_since = None
            track.was_running, track.was_ready = running, False
            if user_stop and not running:
                self._note_once(vm.name, track, USER_STOPPED, notices)
            return
        if running:
            if track.pending is ActionKind.START:
                track.pending = None  # someone started it
            if track.noted == USER_STOPPED:
                track.noted = None  # started again: no longer the user's stop
            track.was_running = True
            if vm.phase is Phase.READY:
                track.was_ready, track.unready_since, track.attempts = True, None, 0
                track.noted = None
                if track.pending is ActionKind.RESTART:
                    track.pending = None
            elif policy.restart == "unhealthy" and track.was_ready and track.pending is None:
                since = track.unready_since = track.unready_since or now
                due = since + (policy.unhealthy_after - 1) * health_interval
                if now >= due:
                    track.pending = ActionKind.RESTART
                    track.reason = (
                        f"unhealthy: {policy.unhealthy_after} failed health check"
                        f"{'s' if policy.unhealthy_after != 1 else ''} in a row"
                        + (f" ({vm.error})" if vm.error else "")
                    )
                else:
                    wakes.append(due)
            return
        if track.was_running and vm.phase is not Phase.STARTING:
            track.pending, track.reason = ActionKind.START, "exited unexpectedly"
        track.was_running = track.was_ready = False
        track.unready_since = None

    def _decide(
        self,
        name: str,
        policy: RecoveryPolicy,
        track: _Track,
        now: float,
        readonly: bool,
        actions: list[Action],
        notices: list[Notice],
        wakes: list[float],
    ) -> None:
        if track.pending is None:
            return
        if readonly:
            message = f"{track.reason}: not recovering, megatui is read-only"
            self._note_once(name, track, message, notices)
            return
        if now < track.not_before:
            wakes.append(track.not_before)
            return
        window = self._window(name, now)
        if len(window) >= policy.max_restarts:
            message = (
                f"{track.reason}: not recovering, {len(window)} attempt"
                f"{'s' if len(window) != 1 else ''} in the last hour (max_restarts)"
            )
            if track.noted != message:
                self._remember(name, Record(now, track.pending, Result.LIMITED, message))
            self._note_once(name, track, message, notices, "warning")
            if window:
                wakes.append(window[0] + WINDOW)
            return
        actions.append(Action(name, track.pending, track.reason, track.attempts + 1))

    @staticmethod
    def _note_once(
        name: str, track: _Track, message: str, notices: list[Notice], severity: str = "info"
    ) -> None:
        """A timeline notice, said once until the situation changes."""
        if track.noted != message:
            track.noted = message
            notices.append(Notice(name, f"recovery: {message}", severity))

    # --- the runner reports back ------------------------------------------------------

    def begin(self, action: Action, policy: RecoveryPolicy) -> None:
        """The runner starts `action` now: it counts against max_restarts, and the
        next attempt waits for the backoff."""
        now = self.clock.now()
        track = self._tracks.setdefault(action.vm, _Track())
        memory = self._memory.setdefault(action.vm, _Memory())
        memory.attempts_at.append(now)
        track.attempts += 1
        track.pending = None
        track.noted = None
        track.not_before = now + backoff_delay(
            track.attempts - 1, policy.backoff, BACKOFF_CAP, self._rand
        )

    def finish(self, action: Action, result: Result, detail: str) -> None:
        """The action ended. Whatever the outcome, the VM counts as started: if it is
        stopped at the next evaluation, that is a new exit (retried after backoff)."""
        now = self.clock.now()
        track = self._tracks.get(action.vm)
        if track is not None:
            # Counted as ready, whatever the outcome: under "unhealthy", a VM that
            # runs but did not get ready fails its checks from now on (and is tried
            # again, after the backoff, within max_restarts).
            track.was_running = track.was_ready = True
            track.unready_since = None
        self._remember(action.vm, Record(now, action.kind, result, detail))

    def _remember(self, name: str, record: Record) -> None:
        self._memory.setdefault(name, _Memory()).history.append(record)
        key = (name, str(record.action), str(record.result))
        self.counts[key] = self.counts.get(key, 0) + 1

    def _window(self, name: str, now: float) -> deque[float]:
        attempts = self._memory.setdefault(name, _Memory()).attempts_at
        while attempts and attempts[0] <= now - WINDOW:
            attempts.popleft()
        return attempts

    # --- memory kept across restarts (recovery_history.py reads and writes it) --------

    def memory(self) -> dict[str, tuple[tuple[float, ...], tuple[Record, ...]]]:
        """Per VM: the attempt times max_restarts counts, and the records."""
        return {
            name: (tuple(memory.attempts_at), tuple(memory.history))
            for name, memory in self._memory.items()
        }

    def restore(self, memory: Mapping[str, tuple[Sequence[float], Sequence[Record]]]) -> None:
        """Take up what an earlier run remembered (before the first evaluation)."""
        for name, (attempts, records) in memory.items():
            kept = self._memory.setdefault(name, _Memory())
            kept.attempts_at.extend(attempts)
            kept.history.extend(records)

    # --- what the API and the metrics show -------------------------------------------

    def restarts_last_hour(self, name: str) -> int:
        return len(self._window(name, self.clock.now()))

    def history(self, name: str) -> tuple[Record, ...]:
        memory = self._memory.get(name)
        return tuple(memory.history) if memory is not None else ()

    def known(self) -> set[str]:
        """VMs the engine has memory of (managed now, or with a history)."""
        return set(self._tracks) | set(self._memory)

    def state(self, name: str) -> str:
        """One word for the API: idle, pending, waiting (backoff), user-stopped."""
        track = self._tracks.get(name)
        if track is None:
            return "unmanaged"
        if track.noted == USER_STOPPED:
            return "user-stopped"
        if track.pending is not None:
            return "waiting" if self.clock.now() < track.not_before else "pending"
        return "watching"

    def next_attempt_at(self, name: str) -> float | None:
        track = self._tracks.get(name)
        if track is None or track.pending is None or self.clock.now() >= track.not_before:
            return None
        return track.not_before


# --- what a viewer shows (the TUI's VM detail) -------------------------------------------


@dataclass(frozen=True, slots=True)
class RecoveryStatus:
    """One VM's recovery as a viewer shows it. `restarts_last_hour` and `state` are
    known only where recovery runs (`megatui serve`, or a viewer attached to it)."""

    policy: RecoveryPolicy
    restarts_last_hour: int | None = None
    state: str | None = None


def describe(status: RecoveryStatus) -> str:
    """One line: the policy, and what recovery did with it."""
    policy = status.policy
    parts = [f"restart {policy.restart}"]
    if policy.restart == "unhealthy":
        parts.append(f"after {policy.unhealthy_after} failed checks")
    if policy.restart != "never":
        parts.append(f"at most {policy.max_restarts}/hour")
    if status.restarts_last_hour is None:
        parts.append("carried out by megatui serve")
    else:
        count = status.restarts_last_hour
        parts.append(f"{count} restart{'s' if count != 1 else ''} in the last hour")
    if status.state in ("user-stopped", "waiting", "acting"):
        parts.append(
            {"user-stopped": "stopped by the user", "waiting": "backing off"}.get(
                status.state, "restarting now"
            )
        )
    return " · ".join(parts)


def status_from_json(doc: object) -> RecoveryStatus | None:
    """A VM's entry of /api/v1/recovery, shape checked (None when it has no policy)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("policy"), dict):
        return None
    raw = doc["policy"]
    try:
        policy = RecoveryPolicy(
            restart=str(raw["restart"]),
            unhealthy_after=int(raw["unhealthy_after"]),
            max_restarts=int(raw["max_restarts"]),
            backoff=float(raw["backoff_seconds"]),
            # Absent from servers older than the key.
            ready_timeout=float(raw.get("ready_timeout_seconds", 600.0)),
        )
    except (KeyError, TypeError, ValueError):
        return None
    restarts = doc.get("restarts_last_hour")
    state = doc.get("state")
    return RecoveryStatus(
        policy,
        restarts if isinstance(restarts, int) and not isinstance(restarts, bool) else None,
        state if isinstance(state, str) else None,
    )
