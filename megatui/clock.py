"""Time sources. Everything that reads the time takes a `Clock`, so tests can fake it."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock epoch seconds: for display and for the JSON output."""
        ...

    def monotonic(self) -> float:
        """Monotonic seconds: for durations, pacing and timeouts."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to. now() and monotonic() move together."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self._now = start
        self._mono = 1000.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds

    def set(self, epoch: float) -> None:
        self._mono += epoch - self._now
        self._now = epoch
