"""The one subscriber list (megatui/subscribers.py) used by Monitor, RemoteMonitor and
RemoteTransport: what a raising callback and an unsubscribe during publish do."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from megatui.config import Settings
from megatui.monitor import Monitor
from megatui.remote import RemoteTransport
from megatui.serve.client import RemoteMonitor, Target
from megatui.subscribers import Subscribers
from megatui.transport import LocalTransport


def test_every_subscriber_hears_every_value_in_order() -> None:
    subs: Subscribers[int] = Subscribers("number subscriber")
    a: list[int] = []
    b: list[int] = []
    subs.subscribe(a.append)
    subs.subscribe(b.append)
    subs.publish(1)
    subs.publish(2)
    assert (a, b) == ([1, 2], [1, 2])


def test_a_raising_callback_is_logged_and_the_others_still_hear(
    caplog: pytest.LogCaptureFixture,
) -> None:
    subs: Subscribers[int] = Subscribers("number subscriber")
    before: list[int] = []
    after: list[int] = []

    def broken(value: int) -> None:
        raise RuntimeError(f"bug with {value}")

    subs.subscribe(before.append)
    subs.subscribe(broken)
    subs.subscribe(after.append)
    with caplog.at_level(logging.ERROR, logger="megatui.subscribers"):
        subs.publish(7)
        subs.publish(8)
    assert (before, after) == ([7, 8], [7, 8])
    failures = [r for r in caplog.records if r.getMessage() == "number subscriber failed"]
    assert len(failures) == 2
    assert failures[0].exc_info is not None and "bug with 7" in str(failures[0].exc_info[1])


def test_unsubscribing_during_publish_stops_at_once() -> None:
    subs: Subscribers[int] = Subscribers("number subscriber")
    heard: list[tuple[str, int]] = []
    ends: dict[str, Callable[[], None]] = {}

    def first(value: int) -> None:
        heard.append(("first", value))
        ends["second"]()  # the later one must not hear this value any more
        ends["first"]()  # nor itself the next one

    ends["first"] = subs.subscribe(first)
    ends["second"] = subs.subscribe(lambda v: heard.append(("second", v)))
    subs.publish(1)
    subs.publish(2)
    assert heard == [("first", 1)]
    assert len(subs) == 0
    ends["first"]()  # twice is harmless


def test_subscribing_during_publish_hears_from_the_next_value() -> None:
    subs: Subscribers[int] = Subscribers("number subscriber")
    late: list[int] = []
    done: list[bool] = []

    def adder(value: int) -> None:
        if not done:
            done.append(True)
            subs.subscribe(late.append)

    subs.subscribe(adder)
    subs.publish(1)
    subs.publish(2)
    assert late == [2]


def test_one_callback_subscribed_twice_is_two_subscriptions() -> None:
    subs: Subscribers[int] = Subscribers("number subscriber")
    heard: list[int] = []
    end_one = subs.subscribe(heard.append)
    subs.subscribe(heard.append)
    subs.publish(1)
    end_one()
    subs.publish(2)
    assert heard == [1, 1, 2]


@pytest.mark.parametrize("owner", ["monitor", "remote_monitor", "transport"])
def test_the_publishers_use_the_one_list(owner: str) -> None:
    # Each publisher's subscribe/add_listener is this list's, so the rules above are theirs.
    if owner == "monitor":
        lists = vars_of(Monitor(Settings(), transport=LocalTransport()))
    elif owner == "remote_monitor":
        lists = vars_of(RemoteMonitor(Target(base="http://127.0.0.1:1")))
    else:
        lists = vars_of(RemoteTransport("admin@mac"))
    assert len(lists) == 1


def vars_of(obj: object) -> list[Subscribers[object]]:
    names = getattr(type(obj), "__slots__", None) or vars(obj)
    return [v for n in names if isinstance(v := getattr(obj, n), Subscribers)]
