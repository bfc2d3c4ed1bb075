"""KubeSource's list/watch loop against the lab's fake API server (plain http).

Every wait is on a condition with a deadline: the recorder's states, or the fake
server's request log and open watches. Nothing sleeps to let time pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from k8s_objects import (
    application,
    argocd_install,
    argocd_pod,
    container_status,
    node,
    terminated,
    waiting,
)
from kube_timing import timed_settings

from megatui.clock import SystemClock
from megatui.config import KubeTiming
from megatui.lab.kube_api import (
    APPLICATIONS,
    NAMESPACES,
    NODES,
    PODS,
    FakeKubeAPI,
    KubeStore,
    RequestRecord,
)
from megatui.lab.kube_certs import kubeconfig_dict, write_kubeconfig
from megatui.sources import kube
from megatui.sources.kube import CRD_MISSING, KubeSource, KubeState

#: Quick retries so that recovery shows within a test's deadline.
FAST = KubeTiming(
    reconnect_delay=0.05,
    reconnect_max_delay=0.2,
    reconnect_jitter=0.1,
    crd_retry_interval=60.0,
    coalesce=0.01,
)
REPO = "argocd-repo-server-6c46b7867b-00000"


class Recorder:
    """The on_change callback: keeps every state and lets a test wait for one."""

    def __init__(self) -> None:
        self.states: list[KubeState] = []
        self._tick = asyncio.Event()

    def __call__(self, state: KubeState) -> None:
        self.states.append(state)
        self._tick.set()

    @property
    def last(self) -> KubeState:
        return self.states[-1]

    async def wait_for(
        self, predicate: Callable[[KubeState], bool], timeout: float = 5.0
    ) -> KubeState:
        async with asyncio.timeout(timeout):
            while not (self.states and predicate(self.states[-1])):
                self._tick.clear()
                await self._tick.wait()
        return self.states[-1]


def populate(store: KubeStore, *, namespace: bool = True, pods: bool = True) -> None:
    """A healthy Kind cluster with Argo CD, built by tests/k8s_objects.py."""
    if namespace:
        store.set(NAMESPACES, {"metadata": {"name": "argocd"}, "status": {"phase": "Active"}})
    store.set(NODES, node("kind-control-plane"))
    for i, name in enumerate(("kind-worker", "kind-worker2", "kind-worker3")):
        store.set(NODES, node(name, roles=(), internal_ip=f"172.18.0.{3 + i}"))
    if pods:
        for pod in argocd_install():
            store.set(PODS, pod)
    store.set(APPLICATIONS, application("guestbook"))
    store.set(
        APPLICATIONS,
        application(
            "helm-guestbook",
            sync="OutOfSync",
            health="Degraded",
            operation_phase="Failed",
            operation_message="one or more synchronization tasks completed unsuccessfully",
        ),
    )


def kubeconfig_for(tmp_path: Path, url: str, *, token: str | None = None) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", kubeconfig_dict(url, token=token))


def make_source(
    kubeconfig: Path | str, rec: Recorder, timing: KubeTiming = FAST, **settings: Any
) -> KubeSource:
    values: dict[str, Any] = {"kube_request_timeout": 2.0, "kube_watch_timeout": 30.0}
    values.update(settings)
    return KubeSource(
        timed_settings(timing, kubeconfig=str(kubeconfig), **values), SystemClock(), rec
    )


@contextlib.asynccontextmanager
async def running(source: KubeSource) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(source.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # run() must end by cancellation only, never by an error of its own.
        assert task.cancelled()


def loaded(state: KubeState) -> bool:
    return len(state.nodes) == 4 and len(state.pods) == 7 and len(state.applications) == 2


def pod_status(state: KubeState, name: str) -> str | None:
    return next((p.status for p in state.pods if p.name == name), None)


def crashing_repo_server(restarts: int = 3) -> dict[str, Any]:
    return argocd_pod(
        "argocd-repo-server",
        container_statuses=[
            container_status(
                "argocd-repo-server",
                waiting("CrashLoopBackOff"),
                restart_count=restarts,
                last_state=terminated(1, "Error", finished_at=time.time() - 30),
            )
        ],
    )


@pytest.fixture
async def api() -> AsyncIterator[FakeKubeAPI]:
    server = FakeKubeAPI(bookmark_interval=None)
    populate(server.store)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def watching(api: FakeKubeAPI, n: int = 3) -> None:
    await api.wait_for(lambda: api.watch_count() >= n)


def last_watch(api: FakeKubeAPI, resource: Any) -> RequestRecord:
    return api.calls(resource, watch=True)[-1]


# --------------------------------------------------------------------------- the fake itself


async def test_fake_server_speaks_the_watch_protocol(api: FakeKubeAPI) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{api.url}/api/v1/namespaces/argocd/pods") as resp:
            assert resp.headers["Content-Type"].startswith("application/json")
            assert int(resp.headers["Content-Length"]) == len(await resp.read())
            body = await resp.json()
        assert body["kind"] == "PodList"
        rv = body["metadata"]["resourceVersion"]
        assert all("kind" not in item for item in body["items"])  # trap 6

        url = f"{api.url}/api/v1/namespaces/argocd/pods"
        query = {"watch": "True", "resourceVersion": rv, "timeoutSeconds": "5"}
        async with http.get(url, params=query) as resp:
            assert resp.status == 200
            assert resp.headers["Transfer-Encoding"] == "chunked"
            api.store.set(PODS, crashing_repo_server())
            line = await resp.content.readline()
            event = json.loads(line)
            assert line.endswith(b"\n")
            assert event["type"] == "MODIFIED"
            assert event["object"]["kind"] == "Pod"
            assert int(event["object"]["metadata"]["resourceVersion"]) > int(rv)

        api.expire_history()
        async with http.get(url, params={**query, "watch": "1"}) as resp:
            assert resp.status == 200  # 410 travels inside a 200
            lines = (await resp.read()).splitlines()
        assert len(lines) == 1
        error = json.loads(lines[0])
        assert error["type"] == "ERROR"
        assert error["object"]["code"] == 410
        assert error["object"]["message"].startswith(f"too old resource version: {rv}")


async def test_fake_server_ends_a_watch_after_timeout_seconds(api: FakeKubeAPI) -> None:
    async with aiohttp.ClientSession() as http:
        started = time.monotonic()
        async with http.get(
            f"{api.url}/api/v1/nodes", params={"watch": "TRUE", "timeoutSeconds": "1"}
        ) as resp:
            body = await resp.read()
        elapsed = time.monotonic() - started
    added = [json.loads(line) for line in body.splitlines()]
    assert [e["type"] for e in added] == ["ADDED"] * 4  # no RV: synthetic ADDED first
    assert 0.9 <= elapsed < 3.0


async def test_official_models_accept_what_the_lab_serves(tmp_path: Path) -> None:
    """kubernetes 37.x builds pydantic models that reject incomplete objects (§8)."""
    from kubernetes.aio import client, config

    from megatui.lab.cluster import start_lab_cluster

    lab = await start_lab_cluster(tls=False, workdir=tmp_path, animate=False)
    try:
        api_client = await config.new_client_from_config(
            config_file=str(lab.kubeconfig_path), context=lab.context
        )
        async with api_client:
            core = client.CoreV1Api(api_client)
            nodes = await core.list_node()
            pods = await core.list_namespaced_pod("argocd")
        assert len(nodes.items) == 4
        assert nodes.items[0].status.node_info.boot_id
        assert len(pods.items) == 7
    finally:
        await lab.stop()


# --------------------------------------------------------------------------- list, then watch


async def test_first_list_then_a_modified_event_updates_the_state_quickly(
    api: FakeKubeAPI, tmp_path: Path
) -> None:
    rec = Recorder()
    source = make_source(kubeconfig_for(tmp_path, api.url), rec, kube_watch_timeout=42)
    async with running(source):
        state = await rec.wait_for(loaded)
        assert state.statuses["kubernetes"].ok
        assert state.statuses["applications"].ok
        assert state.argocd is not None and state.argocd.ready == 7
        assert state.nodes[0].name == "kind-control-plane"
        await watching(api)

        watch = last_watch(api, PODS)
        lists = api.calls(PODS, watch=False)
        assert len(lists) == 1
        assert watch.query["allowWatchBookmarks"] == "true"
        assert watch.query["timeoutSeconds"] == "42"
        assert watch.query["resourceVersion"]

        changed_at = time.monotonic()
        api.store.set(PODS, crashing_repo_server())
        state = await rec.wait_for(lambda s: pod_status(s, REPO) == "CrashLoopBackOff")
        assert time.monotonic() - changed_at < 0.5
        assert state.argocd is not None and state.argocd.ready == 6
        assert next(p for p in state.pods if p.name == REPO).restarts.startswith("3 (")

        api.store.delete(PODS, REPO, "argocd")
        state = await rec.wait_for(lambda s: len(s.pods) == 6)
        # Changes arrive by watch: the lists were never polled again.
        assert len(api.calls(PODS, watch=False)) == 1
        assert len(api.calls(NODES, watch=False)) == 1
        assert len(api.calls(APPLICATIONS, watch=False)) == 1


async def test_a_burst_of_changes_is_coalesced(api: FakeKubeAPI, tmp_path: Path) -> None:
    rec = Recorder()
    timing = KubeTiming(reconnect_delay=0.05, reconnect_max_delay=0.2, coalesce=0.5)
    async with running(make_source(kubeconfig_for(tmp_path, api.url), rec, timing)):
        await rec.wait_for(loaded)
        await watching(api)
        before = len(rec.states)
        for i in range(1, 101):
            api.store.set(PODS, crashing_repo_server(restarts=i))
        await rec.wait_for(lambda s: any(p.restarts.startswith("100 (") for p in s.pods), timeout=5)
        # 100 events: the first goes out at once, the rest within one or two windows.
        assert len(rec.states) - before <= 4


async def test_events_read_together_are_published_together(
    api: FakeKubeAPI, tmp_path: Path
) -> None:
    """Five changes written at once reach the client in one read: the publish at the
    loop's next turn carries all of them. Before, the first went out alone at once and
    the other four a coalescing window later (through a terminal: two repaints)."""
    rec = Recorder()
    # No window at all: what is left to group them is only "the loop's next turn".
    timing = KubeTiming(reconnect_delay=0.05, reconnect_max_delay=0.2, coalesce=0.0)
    async with running(make_source(kubeconfig_for(tmp_path, api.url), rec, timing)):
        await rec.wait_for(loaded)
        await watching(api)
        before = len(rec.states)
        for i in range(1, 6):  # the fake API server shares this loop: one step
            api.store.set(PODS, crashing_repo_server(restarts=i))
        await rec.wait_for(lambda s: any(p.restarts.startswith("5 (") for p in s.pods), timeout=5)
        seen = {p.restarts.split(" ")[0] for s in rec.states[before:] for p in s.pods}
        assert not seen & {"1", "2", "3", "4"}, "a publish carried only part of the read"


async def test_a_burst_read_in_two_reads_is_one_publish(
    api: FakeKubeAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A burst written at once on the server may reach us in two reads: the publish
    waits for the watches to go quiet (BURST_GAP, widened here so that a loaded
    machine cannot split it), not a whole coalescing window for the second read."""
    monkeypatch.setattr(kube, "BURST_GAP", 0.2)
    rec = Recorder()
    timing = KubeTiming(reconnect_delay=0.05, reconnect_max_delay=0.2, coalesce=1.0)
    async with running(make_source(kubeconfig_for(tmp_path, api.url), rec, timing)):
        await rec.wait_for(loaded)
        await watching(api)
        # The scenario: a burst after a quiet spell longer than the window.
        for _ in range(10):
            published = len(rec.states)
            await asyncio.sleep(1.1)
            if len(rec.states) == published:
                break
        before = len(rec.states)
        started = time.monotonic()
        for i in range(1, 4):
            api.store.set(PODS, crashing_repo_server(restarts=i))
        await asyncio.sleep(0.05)  # the second part of the burst, in another read
        for i in range(4, 6):
            api.store.set(PODS, crashing_repo_server(restarts=i))
        await rec.wait_for(lambda s: any(p.restarts.startswith("5 (") for p in s.pods), timeout=5)
        elapsed = time.monotonic() - started
        seen = {p.restarts.split(" ")[0] for s in rec.states[before:] for p in s.pods}
        assert not seen & {"1", "2", "3", "4"}, "the first read went out alone"
        assert elapsed < 0.8, f"waited {elapsed:.2f} s: the coalescing window, not the gap"


# --------------------------------------------------------------------------- 410 and relist


async def test_an_expired_resource_version_relists_without_losing_events(
    api: FakeKubeAPI, tmp_path: Path
) -> None:
    rec = Recorder()
    async with running(make_source(kubeconfig_for(tmp_path, api.url), rec)):
        await rec.wait_for(loaded)
        await watching(api)
        resumed_from = last_watch(api, PODS).query["resourceVersion"]
        # All in one step, so the client cannot reconnect in between: the stream
        # breaks, three changes happen, and the history that held them is gone.
        api.cut_watches(PODS)
        api.store.set(PODS, crashing_repo_server())
        api.store.delete(PODS, "argocd-server-6c46b7867b-00000", "argocd")
        api.store.set(PODS, argocd_pod("argocd-server", index=1))
        api.expire_history()

        state = await rec.wait_for(
            lambda s: (
                pod_status(s, REPO) == "CrashLoopBackOff"
                and {p.name for p in s.pods} >= {"argocd-server-6c46b7867b-00001"}
                and "argocd-server-6c46b7867b-00000" not in {p.name for p in s.pods}
            )
        )
        assert len(api.calls(PODS, watch=False)) == 2
        # The resumed watch asked for the old RV and got the 410 ERROR event.
        watches = api.calls(PODS, watch=True)
        assert [w.query["resourceVersion"] for w in watches[:2]] == [resumed_from] * 2
        assert {p.name for p in state.pods} == {
            p["metadata"]["name"] for p in api.store.objects(PODS, "argocd")
        }
        assert state.statuses["kubernetes"].ok
        # The other resources were not disturbed.
        assert len(api.calls(NODES, watch=False)) == 1


async def test_an_http_410_on_the_watch_also_relists(api: FakeKubeAPI, tmp_path: Path) -> None:
    rec = Recorder()
    async with running(make_source(kubeconfig_for(tmp_path, api.url), rec)):
        await rec.wait_for(loaded)
        await watching(api)
        api.inject_error(410, "too old resource version: 1 (5)", plural="pods", times=1)
        api.end_watches(PODS)
        await api.wait_for(lambda: len(api.calls(PODS, watch=False)) == 2)
        await api.wait_for(lambda: api.watch_count(PODS) == 1)
        assert rec.last.statuses["kubernetes"].ok


# --------------------------------------------------------------------------- broken streams


@pytest.mark.parametrize("partial", [False, True], ids=["clean-cut", "half-an-event"])
async def test_a_cut_stream_resumes_from_the_last_rv_without_relisting(
    api: FakeKubeAPI, tmp_path: Path, partial: bool
) -> None:
    rec = Recorder()
    async with running(make_source(kubeconfig_for(tmp_path, api.url), rec)):
        await rec.wait_for(loaded)
        await watching(api)
        stored = api.store.set(PODS, crashing_repo_server())
        await rec.wait_for(lambda s: pod_status(s, REPO) == "CrashLoopBackOff")
        seen_rv = stored["metadata"]["resourceVersion"]

        api.cut_watches(PODS, partial=partial)
        api.store.delete(PODS, REPO, "argocd")  # while the client is disconnected
        state = await rec.wait_for(lambda s: pod_status(s, REPO) is None)

        assert last_watch(api, PODS).query["resourceVersion"] == seen_rv
        assert len(api.calls(PODS, watch=False)) == 1
        assert state.statuses["kubernetes"].ok
        # A single cut reconnects at once and never shows as an error.
        assert all(s.statuses["kubernetes"].ok for s in rec.states if "kubernetes" in s.statuses)


async def test_a_hanging_server_times_out_and_the_source_recovers(
    api: FakeKubeAPI, tmp_path: Path
) -> None:
    rec = Recorder()
    source = make_source(kubeconfig_for(tmp_path, api.url), rec, kube_request_timeout=0.5)
    async with running(source):
        await rec.wait_for(loaded)
        await watching(api)
        api.set_hang(True)
        api.end_watches()  # the reconnects now meet a server that never answers
        state = await rec.wait_for(lambda s: not s.statuses["kubernetes"].ok)
        status = state.statuses["kubernetes"]
        assert status.error == f"the API server at {api.url} did not answer within 0.5 s"
        assert status.next_retry_at is not None
        assert status.updated_at is not None  # from before: the data is stale, not gone
        assert len(state.pods) == 7

        api.set_hang(False)
        api.store.set(PODS, crashing_repo_server())
        state = await rec.wait_for(
            lambda s: s.statuses["kubernetes"].ok and pod_status(s, REPO) == "CrashLoopBackOff"
        )
        assert state.statuses["kubernetes"].next_retry_at is None


async def test_a_server_error_event_is_reported_and_retried(
    api: FakeKubeAPI, tmp_path: Path
) -> None:
    rec = Recorder()
    async with running(make_source(kubeconfig_for(tmp_path, api.url), rec)):
        await rec.wait_for(loaded)
        await watching(api)
        api.inject_error(500, "etcdserver: request timed out", plural="nodes", times=2)
        api.end_watches(NODES)
        state = await rec.wait_for(lambda s: not s.statuses["kubernetes"].ok)
        assert state.statuses["kubernetes"].error == (
            "API server error (500): etcdserver: request timed out"
        )
        await rec.wait_for(lambda s: s.statuses["kubernetes"].ok)


# --------------------------------------------------------------------------- bookmarks


async def test_bookmarks_advance_the_resource_version(api: FakeKubeAPI, tmp_path: Path) -> None:
    rec = Recorder()
    async with running(make_source(kubeconfig_for(tmp_path, api.url), rec)):
        await rec.wait_for(loaded)
        await watching(api)
        before = last_watch(api, PODS).query["resourceVersion"]
        # Unrelated writes move the global RV; only a bookmark tells the pod watch.
        api.store.bump(500)
        bookmark_rv = str(api.store.resource_version)
        assert api.send_bookmarks() == 3
        api.end_watches(PODS)
        # The history before the bookmark is gone: resuming from `before` would 410.
        api.expire_history()
        await api.wait_for(lambda: len(api.calls(PODS, watch=True)) == 2)
        await api.wait_for(lambda: api.watch_count(PODS) == 1)
        resumed = last_watch(api, PODS).query["resourceVersion"]
        assert resumed == bookmark_rv != before
        assert len(api.calls(PODS, watch=False)) == 1


# --------------------------------------------------------------------------- calm and clear states


async def test_a_missing_crd_is_one_calm_line(api: FakeKubeAPI, tmp_path: Path) -> None:
    api.drop_crd()
    rec = Recorder()
    async with running(make_source(kubeconfig_for(tmp_path, api.url), rec)):
        state = await rec.wait_for(lambda s: "applications" in s.statuses and len(s.pods) == 7)
        status = state.statuses["applications"]
        assert status.ok
        assert status.error is None and status.note == CRD_MISSING  # nothing is broken
        assert status.next_retry_at is not None
        assert status.next_retry_at - time.time() > 50  # retried rarely
        assert state.statuses["kubernetes"].ok
        # Nodes and pods go on being watched; the CRD is not asked for again soon.
        await watching(api, 2)
        assert len(api.calls(APPLICATIONS)) == 1


async def test_an_installed_crd_is_picked_up_on_the_next_look(
    api: FakeKubeAPI, tmp_path: Path
) -> None:
    api.drop_crd()
    rec = Recorder()
    timing = KubeTiming(reconnect_delay=0.05, reconnect_max_delay=0.2, crd_retry_interval=0.2)
    async with running(make_source(kubeconfig_for(tmp_path, api.url), rec, timing)):
        await rec.wait_for(lambda s: "applications" in s.statuses)
        api.install_crd()
        api.store.set(APPLICATIONS, application("guestbook"))
        state = await rec.wait_for(lambda s: len(s.applications) == 1)
        assert state.statuses["applications"].error is None
        assert state.statuses["applications"].note is None
        assert state.statuses["applications"].ok
        # A CRD dropped while watched ends the watch and goes back to the calm line.
        api.drop_crd()
        state = await rec.wait_for(lambda s: s.statuses["applications"].note == CRD_MISSING)
        assert state.applications == ()


async def test_a_missing_namespace_is_named(tmp_path: Path) -> None:
    server = FakeKubeAPI(bookmark_interval=None)
    populate(server.store, namespace=False, pods=False)
    await server.start()
    rec = Recorder()
    try:
        async with running(make_source(kubeconfig_for(tmp_path, server.url), rec)):
            state = await rec.wait_for(
                lambda s: len(s.nodes) == 4 and "kubernetes" in s.statuses
                and not s.statuses["kubernetes"].ok
            )  # fmt: skip
            assert state.statuses["kubernetes"].error == "namespace 'argocd' not found"
            # Watched all the same: Argo CD being installed shows up by itself.
            await watching(server)
            server.store.set(NAMESPACES, {"metadata": {"name": "argocd"}})
            server.store.set(PODS, argocd_pod("argocd-server"))
            state = await rec.wait_for(lambda s: s.statuses["kubernetes"].ok)
            assert [p.name for p in state.pods] == ["argocd-server-6c46b7867b-00000"]
    finally:
        await server.stop()


@pytest.mark.parametrize("plural", ["pods", "nodes"])
async def test_forbidden_names_the_resource_and_the_rest_keeps_working(
    api: FakeKubeAPI, tmp_path: Path, plural: str
) -> None:
    api.forbid(plural)
    rec = Recorder()
    async with running(make_source(kubeconfig_for(tmp_path, api.url), rec)):
        state = await rec.wait_for(
            lambda s: (
                len(s.applications) == 2
                and "kubernetes" in s.statuses
                and not s.statuses["kubernetes"].ok
                and (len(s.nodes) == 4 or len(s.pods) == 7)
            )
        )
        error = state.statuses["kubernetes"].error or ""
        assert error.startswith(f"forbidden (403): {plural} is forbidden: User ")
        assert state.statuses["applications"].ok
        api.allow()
        await rec.wait_for(loaded)
        await rec.wait_for(lambda s: s.statuses["kubernetes"].ok)


async def test_restart_ages_are_rendered_again_as_time_passes(
    api: FakeKubeAPI, tmp_path: Path
) -> None:
    """A crash-looping pod may not change for minutes; its "N (age ago)" must not freeze."""
    from megatui.clock import FakeClock

    clock = FakeClock(start=time.time())
    api.store.set(PODS, crashing_repo_server())  # last restart 30 s before now
    rec = Recorder()
    timing = KubeTiming(
        reconnect_delay=0.05, reconnect_max_delay=0.2, restarts_refresh_interval=0.05
    )
    settings = timed_settings(timing, kubeconfig=str(kubeconfig_for(tmp_path, api.url)))
    async with running(KubeSource(settings, clock, rec)):
        state = await rec.wait_for(loaded)
        before = next(p.restarts for p in state.pods if p.name == REPO)
        assert before.startswith("3 (") and before.endswith("s ago)")
        clock.advance(3600)
        state = await rec.wait_for(
            lambda s: next(p.restarts for p in s.pods if p.name == REPO).endswith("m ago)")
        )
        assert next(p.restarts for p in state.pods if p.name == REPO) == "3 (60m ago)"
        assert len(api.calls(PODS, watch=False)) == 1  # re-rendered, not re-listed
