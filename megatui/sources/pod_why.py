"""WHY a pod is stuck, in one short line (issue #12).

Two halves, both pure:

* `pod_clue(obj, status)` reads the pod object alone (called where the pod row is
  built): when its trouble began, whether it is a failure state or still starting,
  and the best line the object holds: a container's last termination (reason, exit
  code, message), its `waiting.message`, or an unmet condition's message.
* `decide_why(clue, warning, now)` picks the most telling source once the pod has
  been in trouble long enough: a crash's termination first, else the pod's latest
  Warning event (`FailedMount`, `FailedScheduling`, `BackOff`, `Unhealthy`...), else
  the object's own line.

Failure states get a WHY at once; start-up states (Pending, ContainerCreating,
Init:*, PodInitializing) and "Running but not Ready" only after `STUCK_AFTER`
seconds, as a normal start takes a few.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from megatui.model import Pod, PodClue
from megatui.sources.kube_status import parse_time
from megatui.text import one_line as fold_line

STUCK_AFTER = 30.0
MAX_WHY = 160

#: Waiting reasons and STATUS values that are failures, not a start under way.
FAILURES = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
        "StartError",
        "PostStartHookError",
        "Error",
        "OOMKilled",
        "ContainerStatusUnknown",
        "Evicted",
    }
)
_HEALTHY_DONE = frozenset({"Completed", "Succeeded", "Terminating"})

JSON = dict[str, Any]


def one_line(text: str, limit: int = MAX_WHY) -> str:
    """Whitespace folded, control characters dropped, cut with an ellipsis.

    `text.one_line` plus the control characters: these messages come from the API
    server (a container's own termination message) and reach the screen verbatim."""
    return fold_line("".join(ch if ch.isprintable() else " " for ch in text), limit)


def _statuses(status: JSON) -> list[JSON]:
    found: list[JSON] = []
    for key in ("initContainerStatuses", "containerStatuses"):
        found.extend(s for s in status.get(key) or () if isinstance(s, dict))
    return found


def termination_text(name: str, term: JSON) -> str:
    """`repo-server: Error, exit code 1: <message>`."""
    reason = str(term.get("reason") or "terminated")
    code = term.get("exitCode")
    text = f"{name}: {reason}" + (f", exit code {code}" if code is not None else "")
    message = str(term.get("message") or "").strip()
    return text + (f": {message}" if message else "")


def _container_detail(status: JSON) -> tuple[str | None, bool, str | None]:
    """(detail, crashed, waiting reason) from the first container in trouble."""
    for cs in _statuses(status):
        state = cs.get("state") or {}
        name = str(cs.get("name") or "?")
        waiting = state.get("waiting") if isinstance(state.get("waiting"), dict) else None
        terminated = state.get("terminated") if isinstance(state.get("terminated"), dict) else None
        last = (cs.get("lastState") or {}).get("terminated")
        if terminated and terminated.get("exitCode") not in (0, None):
            return termination_text(name, terminated), True, None
        if waiting is not None:
            reason = str(waiting.get("reason") or "")
            if reason == "CrashLoopBackOff" and isinstance(last, dict):
                return termination_text(name, last), True, reason
            message = str(waiting.get("message") or "").strip()
            if message:
                return f"{name}: {message}", False, reason
            if reason:
                return None, False, reason
    return None, False, None


def _unmet_condition(status: JSON) -> tuple[str | None, float | None]:
    """The message of PodScheduled=False, else of Ready=False, and since when."""
    found: tuple[str | None, float | None] = (None, None)
    for cond in status.get("conditions") or ():
        if not isinstance(cond, dict) or cond.get("status") == "True":
            continue
        kind = cond.get("type")
        message = str(cond.get("message") or cond.get("reason") or "").strip() or None
        since = parse_time(cond.get("lastTransitionTime"))
        if kind == "PodScheduled":
            return message, since
        if kind == "Ready" and found == (None, None):
            found = (message, since)
    return found


def pod_clue(obj: JSON, status_text: str, running_ready: bool) -> PodClue | None:
    """None for a pod that is fine (running and ready, or done)."""
    if running_ready or status_text in _HEALTHY_DONE:
        return None
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    if not isinstance(meta, dict) or not isinstance(status, dict):
        return None
    created = parse_time(meta.get("creationTimestamp")) or 0.0
    detail, crashed, waiting_reason = _container_detail(status)
    condition, since = _unmet_condition(status)
    head = status_text.split(":", 1)[-1] if status_text.startswith("Init:") else status_text
    failing = crashed or head in FAILURES or (waiting_reason or "") in FAILURES
    return PodClue(
        uid=str(meta.get("uid") or ""),
        since=since if since is not None else created,
        failing=failing,
        crashed=crashed,
        detail=one_line(detail) if detail else (one_line(condition) if condition else None),
    )


def decide_why(
    clue: PodClue | None, warning: tuple[str, str, int] | None, now: float
) -> str | None:
    """The one line for the NOTE column. `warning` is the pod's latest Warning event
    as (reason, message, count)."""
    if clue is None:
        return None
    if not clue.failing and now - clue.since <= STUCK_AFTER:
        return None
    if clue.crashed and clue.detail:
        return clue.detail
    if warning is not None:
        reason, message, count = warning
        times = f" (x{count})" if count > 1 else ""
        return one_line(f"{reason}{times}: {message}")
    return clue.detail


Warning = tuple[str, str, int]  # the latest Warning event's reason, message, count


def with_why(
    pods: tuple[Pod, ...], warning_of: Callable[[Pod], Warning | None], now: float
) -> tuple[Pod, ...]:
    """Pods with `why` set; pods whose WHY did not change are the same objects."""
    out: list[Pod] | None = None
    for i, pod in enumerate(pods):
        if pod.clue is None and pod.why is None:
            continue
        why = decide_why(pod.clue, warning_of(pod) if pod.clue else None, now)
        if why != pod.why:
            if out is None:
                out = list(pods)
            out[i] = dataclasses.replace(pod, why=why)
    return pods if out is None else tuple(out)


def next_why_due(pods: tuple[Pod, ...], now: float) -> float | None:
    """When the earliest pod still inside its `STUCK_AFTER` grace gets a WHY, or None.

    Nothing else changes then (no event, no watch update), so the monitor sets one timer
    for this moment instead of waiting for the next published change.
    """
    due = [
        p.clue.since + STUCK_AFTER
        for p in pods
        if p.clue is not None and not p.clue.failing and now - p.clue.since <= STUCK_AFTER
    ]
    return min(due, default=None)
