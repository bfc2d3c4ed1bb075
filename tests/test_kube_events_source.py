"""EventsSource against the lab's API server: list + watch with KubeSource's loop,
repeats folded into one event with its count, both APIs, RBAC in one line."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from kube_timing import timed_settings
from test_kube_watch import FAST, kubeconfig_for

from megatui.clock import SystemClock
from megatui.lab.cluster import populate_settled
from megatui.lab.drill_scenario import seed
from megatui.lab.kube_api import EVENTS, PODS, FakeKubeAPI
from megatui.lab.kube_events import EventRecorder
from megatui.sources.kube_events import EventsSource, EventsState

NOW = 1_800_000_000.0
REPO_POD = "argocd-repo-server-6c46b7867b-2x59w"


class States:
    def __init__(self) -> None:
        self.items: list[EventsState] = []
        self._tick = asyncio.Event()

    def __call__(self, state: EventsState) -> None:
        self.items.append(state)
        self._tick.set()

    async def wait_for(
        self, cond: Callable[[EventsState], bool], timeout: float = 10
    ) -> EventsState:
        async with asyncio.timeout(timeout):
            while True:
                for state in reversed(self.items):
                    if cond(state):
                        return state
                self._tick.clear()
                await self._tick.wait()


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeAPI]:
    server = FakeKubeAPI()
    populate_settled(server.store, now=NOW)
    await server.start()
    seed(server, NOW)
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def running(source: EventsSource) -> AsyncIterator[None]:
    task = asyncio.create_task(source.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def make(tmp_path: Path, server: FakeKubeAPI, rec: States, **kw: str) -> EventsSource:
    settings = timed_settings(
        FAST,
        kubeconfig=str(kubeconfig_for(tmp_path, server.url)),
        kube_request_timeout=2.0,
        kube_watch_timeout=30.0,
    )
    return EventsSource(settings, SystemClock(), rec, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("which", ["v1", "events.k8s.io/v1"])
async def test_lists_then_folds_repeats_from_the_watch(
    tmp_path: Path, api: FakeKubeAPI, which: str
) -> None:
    rec = States()
    source = make(tmp_path, api, rec, api=which)
    async with running(source):
        state = await rec.wait_for(lambda s: len(s.events) == 3)
        pod = api.store.get(PODS, REPO_POD, "argocd")
        assert pod is not None
        found = state.for_pod("argocd", REPO_POD, pod["metadata"]["uid"])
        assert {e.reason for e in found} == {"BackOff", "Unhealthy", "Started"}
        backoff = next(e for e in found if e.reason == "BackOff")
        assert backoff.count == 2
        # The kubelet reports the same BackOff again: one object, count 3.
        recorder = EventRecorder(api.store)
        stored = api.store.get(EVENTS, backoff.name, "argocd")
        assert stored is not None
        api.store.set(EVENTS, {**json.loads(json.dumps(stored)), "count": 3})
        recorder.kubelet(pod, "Failed", "Error: ImagePullBackOff", now=NOW + 5)
        state = await rec.wait_for(lambda s: len(s.events) == 4)
        found = state.for_pod("argocd", REPO_POD, pod["metadata"]["uid"])
        assert [e.count for e in found if e.reason == "BackOff"] == [3]
        assert found[0].reason == "Failed"  # newest first
        assert state.status is not None and state.status.ok


async def test_forbidden_events_is_one_line_naming_verb_and_resource(
    tmp_path: Path, api: FakeKubeAPI
) -> None:
    api.forbid("events")
    rec = States()
    async with running(make(tmp_path, api, rec)):
        state = await rec.wait_for(lambda s: s.status is not None and not s.status.ok)
    assert state.status is not None and state.status.error is not None
    error = state.status.error
    assert "\n" not in error
    assert 'cannot list resource "events"' in error and error.startswith("forbidden (403)")
