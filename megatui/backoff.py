"""Exponential backoff with jitter: the one rule for how long a failing thing waits.

Jitter keeps several megatuis (or several sources of one) from retrying in step
against the same rebooted host or restarted API server."""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Each delay is scaled by a random factor in [1 - JITTER, 1 + JITTER].
JITTER = 0.2


def backoff_delay(
    failures: int,
    base: float,
    cap: float,
    rand: random.Random | None = None,
    jitter: float = JITTER,
) -> float:
    """The delay after `failures` earlier failures: `base` doubled each time, capped at
    `cap`, then jittered (`rand`, or the module's generator)."""
    delay: float = min(cap, base * 2.0 ** min(max(0, failures), 32))
    return delay * (rand or random).uniform(1.0 - jitter, 1.0 + jitter)


@dataclass
class Backoff:
    """A failure counter with its delays: `next_delay()` after each failure (base,
    then doubling up to `cap`), `reset()` after a success or when the user asks
    for a retry now."""

    base: float
    cap: float = 60.0
    failures: int = 0
    jitter: float = JITTER
    rand: random.Random | None = None

    def next_delay(self) -> float:
        delay = backoff_delay(self.failures, self.base, self.cap, self.rand, self.jitter)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
