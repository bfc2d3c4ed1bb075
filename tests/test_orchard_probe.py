"""Readiness probes through the controller's port-forward: staggered requests, so
that the controller's once-a-second dial retry (docs/orchard.md, "Readiness") is
sampled at several phases, the first to connect wins and nothing is left open."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from megatui.backends import orchard as backend
from megatui.backends.orchard import staggered_port_forward
from megatui.sources.orchard import OrchardPortClosed, OrchardPortForwardError


class _Writer:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


class _Controller:
    """Stands in for OrchardClient.open_port_forward: each request waits for the test
    to answer it (connect, refuse) or to be cancelled."""

    def __init__(self) -> None:
        self.requests: list[tuple[float, asyncio.Future[Any]]] = []
        self.arrived = asyncio.Event()
        self.cancelled = 0
        self.waits: list[int] = []

    async def open_port_forward(self, vm: str, port: int, *, wait: int) -> Any:
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.requests.append((asyncio.get_running_loop().time(), answer))
        self.waits.append(wait)
        self.arrived.set()
        try:
            return await answer
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def wait_requests(self, n: int) -> None:
        async with asyncio.timeout(5.0):
            while len(self.requests) < n:
                self.arrived.clear()
                await self.arrived.wait()


def _closed_port() -> OrchardPortClosed:
    return OrchardPortClosed("port-forward to vm:22: 500 nothing answers", 500)


async def test_requests_are_staggered_and_the_first_to_connect_wins() -> None:
    controller = _Controller()
    probe = asyncio.create_task(staggered_port_forward(controller, "vm", 22))  # type: ignore[arg-type]
    await controller.wait_requests(backend.PROBE_REQUESTS)
    starts = [at for at, _ in controller.requests]
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= backend.PROBE_STAGGER * 0.9 for gap in gaps), gaps
    assert controller.waits == [backend.PROBE_WAIT] * backend.PROBE_REQUESTS
    # The second connects; the third connected too before it could be cancelled.
    winner, late = _Writer(), _Writer()
    controller.requests[1][1].set_result(("reader", winner))
    controller.requests[2][1].set_result(("reader", late))
    _reader, writer = await asyncio.wait_for(probe, 5.0)
    assert writer is winner and not winner.closed
    assert late.closed, "a loser that connected is closed"
    assert controller.cancelled == 1, "the request still waiting is cancelled"
    assert len(controller.requests) == backend.PROBE_REQUESTS


async def test_of_two_connecting_in_one_turn_the_earlier_request_wins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """asyncio.wait hands back a set: which of two finished tasks comes first in it
    follows their addresses. Repeated, so that set order cannot pass by luck (it
    did, most of the time, before the choice was made by request order)."""
    monkeypatch.setattr(backend, "PROBE_STAGGER", 0.001)
    for _ in range(40):
        controller = _Controller()
        probe = asyncio.create_task(staggered_port_forward(controller, "vm", 22))  # type: ignore[arg-type]
        await controller.wait_requests(backend.PROBE_REQUESTS)
        first, second = _Writer(), _Writer()
        controller.requests[2][1].set_result(("reader", second))
        controller.requests[1][1].set_result(("reader", first))
        _reader, writer = await asyncio.wait_for(probe, 5.0)
        assert writer is first and not first.closed
        assert second.closed


async def test_every_request_giving_up_is_one_not_yet() -> None:
    controller = _Controller()
    probe = asyncio.create_task(staggered_port_forward(controller, "vm", 22))  # type: ignore[arg-type]
    await controller.wait_requests(backend.PROBE_REQUESTS)
    for _at, answer in controller.requests:
        answer.set_exception(_closed_port())
    with pytest.raises(OrchardPortClosed):
        await asyncio.wait_for(probe, 5.0)
    assert len(controller.requests) == backend.PROBE_REQUESTS


async def test_a_controller_that_answers_at_once_gets_one_request() -> None:
    """No retry within `wait` (the answer came before the next stagger): further
    requests would only hammer it."""
    controller = _Controller()
    probe = asyncio.create_task(staggered_port_forward(controller, "vm", 22))  # type: ignore[arg-type]
    await controller.wait_requests(1)
    controller.requests[0][1].set_exception(_closed_port())
    with pytest.raises(OrchardPortClosed):
        await asyncio.wait_for(probe, 5.0)
    assert len(controller.requests) == 1


async def test_a_refusal_ends_the_probe_at_once() -> None:
    controller = _Controller()
    probe = asyncio.create_task(staggered_port_forward(controller, "vm", 22))  # type: ignore[arg-type]
    await controller.wait_requests(2)
    controller.requests[1][1].set_exception(OrchardPortForwardError("404 no such VM", 404))
    with pytest.raises(OrchardPortForwardError) as caught:
        await asyncio.wait_for(probe, 5.0)
    assert caught.value.status == 404
    assert controller.cancelled == 1  # the first, still waiting
    assert len(controller.requests) == 2


async def test_cancelling_the_probe_cancels_every_request() -> None:
    controller = _Controller()
    probe = asyncio.create_task(staggered_port_forward(controller, "vm", 22))  # type: ignore[arg-type]
    await controller.wait_requests(2)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe
    assert controller.cancelled == 2
    assert all(answer.done() for _at, answer in controller.requests)
