"""What a doctor check answers: a status, a reason and a hint, and its timed result."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str
    hint: str = ""


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    reason: str
    hint: str
    duration: float


def ok(reason: str) -> Outcome:
    return Outcome(Status.PASS, reason)


def warn(reason: str, hint: str = "") -> Outcome:
    return Outcome(Status.WARN, reason, hint)


def failed(reason: str, hint: str = "") -> Outcome:
    return Outcome(Status.FAIL, reason, hint)


def skipped(reason: str) -> Outcome:
    return Outcome(Status.SKIPPED, reason)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


#: How each status is marked in the report and the progress lines.
MARK = {Status.PASS: "✓", Status.WARN: "!", Status.FAIL: "✗", Status.SKIPPED: "-"}
