"""`Subscribers`: the callbacks told of each new value (the monitor's snapshots, the
attached viewer's snapshots, the host connection's state changes).

One rule for all of them: a callback that raises is logged and the others are still
told (a consumer's bug must not stop the publisher); a callback unsubscribed while a
value is being published is not told of it any more, one subscribed meanwhile hears
from the next value on; unsubscribing twice is harmless.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class Subscribers(Generic[T]):
    def __init__(self, what: str) -> None:
        #: Named in the log line when a callback fails ("snapshot subscriber").
        self._what = what
        # By subscription, so one callback subscribed twice is two subscriptions.
        self._callbacks: dict[int, Callable[[T], None]] = {}
        self._ids = itertools.count()

    def __len__(self) -> int:
        return len(self._callbacks)

    def subscribe(self, callback: Callable[[T], None]) -> Callable[[], None]:
        """Call `callback` with every value published from now on; returns the
        function that ends it."""
        token = next(self._ids)
        self._callbacks[token] = callback

        def unsubscribe() -> None:
            self._callbacks.pop(token, None)

        return unsubscribe

    def publish(self, value: T) -> None:
        for token, callback in list(self._callbacks.items()):
            if token not in self._callbacks:
                continue  # unsubscribed by an earlier callback of this round
            try:
                callback(value)
            except Exception:
                log.exception("%s failed", self._what)
