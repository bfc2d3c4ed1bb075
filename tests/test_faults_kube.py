"""The Kubernetes source under faults (issue 10): API server killed, frozen, silent, and
answering with data of unexpected shapes.

Each test runs a real Monitor (only its kube source) against the lab's fake API server
and asserts the exact line shown, an upper bound on how fast the fault is seen and on
recovery once it is removed (with and without `r`, i.e. Monitor.refresh()), that the
Monitor keeps running, that nothing reaches stderr, and that nothing is left behind.

Timing is shrunk for the tests (watch heartbeat 2 s + 1 s grace, backoff 0.2-2 s);
test_production_heartbeat_sees_a_frozen_server_within_30_s checks the real numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from faults_helpers import Leaks, assert_running, private_tempdir, wait_status
from k8s_objects import argocd_install, node
from kube_timing import timed_settings

from megatui.config import KubeTiming, Settings
from megatui.lab.kube_api import NAMESPACES, NODES, PODS, FakeKubeAPI, KubeStore
from megatui.lab.kube_certs import kubeconfig_dict, write_kubeconfig
from megatui.model import SourceStatus
from megatui.monitor import Monitor
from megatui.sources import kube

#: Test pacing: backoff 0.2 s doubling to 2 s, heartbeat 2 s + 1 s grace.
FAST = KubeTiming(
    reconnect_delay=0.2,
    reconnect_max_delay=2.0,
    reconnect_jitter=0.1,
    coalesce=0.01,
    watch_grace=1.0,
)
#: Backoff so slow that only `r` can explain a recovery within a second or two.
SLOW = KubeTiming(
    reconnect_delay=20.0,
    reconnect_max_delay=30.0,
    reconnect_jitter=0.1,
    coalesce=0.01,
    watch_grace=1.0,
)
WATCH_TIMEOUT = 2
STALL = WATCH_TIMEOUT + FAST.watch_grace  # 3 s of silence make a stalled watch
KUBE = "kubernetes"

# Upper bounds, with slack for a loaded 2-core machine.
DETECT_REFUSED = 5.0  # open watches end at once; the reconnect is refused
DETECT_STALL = STALL + 4.0
RECOVER = FAST.reconnect_max_delay * 1.1 + 4.0  # one backoff, one list
RECOVER_WITH_R = 3.0  # SLOW's backoff would take >= 18 s


def ok(status: SourceStatus) -> bool:
    return status.ok


def failing(status: SourceStatus) -> bool:
    return not status.ok


@dataclass
class Lab:
    store: KubeStore
    api: FakeKubeAPI
    monitor: Monitor
    leaks: Leaks

    @property
    def url(self) -> str:
        return self.api.url


def populate(store: KubeStore) -> None:
    store.set(NAMESPACES, {"metadata": {"name": "argocd"}, "status": {"phase": "Active"}})
    store.set(NODES, node("kind-control-plane"))
    store.set(NODES, node("kind-worker", roles=()))
    for pod in argocd_install():
        store.set(PODS, pod)


@contextlib.asynccontextmanager
async def lab(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    timing: KubeTiming = FAST,
) -> AsyncIterator[Lab]:
    private_tempdir(tmp_path, monkeypatch)
    leaks = Leaks.take()
    store = KubeStore()
    populate(store)
    api = FakeKubeAPI(store)
    await api.start()
    config = write_kubeconfig(tmp_path / "kubeconfig", kubeconfig_dict(api.url))
    settings = timed_settings(
        timing, kubeconfig=str(config), kube_request_timeout=2.0, kube_watch_timeout=WATCH_TIMEOUT
    )
    monitor = Monitor(settings, sources={"kube"})
    await monitor.start()
    the_lab = Lab(store, api, monitor, leaks)
    try:
        await wait_status(monitor, KUBE, ok, timeout=15.0)
        yield the_lab
        assert_running(monitor)
    finally:
        await monitor.stop()
        await the_lab.api.stop()
    await leaks.check()
    err = capfd.readouterr().err
    assert "Traceback" not in err
    assert err == ""


async def restart_api(the_lab: Lab) -> None:
    """A new API server process on the same port, with the same data."""
    api = FakeKubeAPI(the_lab.store)
    await api.start(port=the_lab.api.port)
    the_lab.api = api


def stall_lines(url: str, *resources: str) -> set[str]:
    return {f"the {r} watch on {url} stalled: nothing received for {STALL:g} s" for r in resources}


# --------------------------------------------------------------------------- killed


@pytest.mark.parametrize("refresh", [False, True], ids=["wait", "r"])
async def test_killed_api_server(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    refresh: bool,
) -> None:
    timing = SLOW if refresh else FAST
    async with lab(tmp_path, capfd, monkeypatch, timing) as the_lab:
        await the_lab.api.stop()
        status, took = await wait_status(the_lab.monitor, KUBE, failing, DETECT_REFUSED)
        assert status.error == f"cannot reach the API server at {the_lab.url}: connection refused"
        assert took < DETECT_REFUSED
        assert_running(the_lab.monitor)

        await restart_api(the_lab)
        if refresh:
            the_lab.monitor.refresh()
        _status, took = await wait_status(
            the_lab.monitor, KUBE, ok, RECOVER_WITH_R if refresh else RECOVER
        )
        assert len(the_lab.monitor.snapshot.pods) == 7


# --------------------------------------------------------------------------- frozen


@pytest.mark.parametrize("refresh", [False, True], ids=["wait", "r"])
async def test_frozen_api_server_goes_stale(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    refresh: bool,
) -> None:
    async with lab(tmp_path, capfd, monkeypatch, SLOW if refresh else FAST) as the_lab:
        the_lab.api.freeze()
        status, took = await wait_status(the_lab.monitor, KUBE, failing, DETECT_STALL)
        # Seen by a silent watch, or by a re-watch (every 2 s) that is never answered.
        assert status.error in stall_lines(the_lab.url, "nodes", "pods") | {
            f"the API server at {the_lab.url} did not answer within 2 s"
        }
        assert took < DETECT_STALL
        apps = the_lab.monitor.snapshot.sources["applications"]
        assert apps.error in stall_lines(the_lab.url, "applications") | {
            None,
            f"the API server at {the_lab.url} did not answer within 2 s",
        }
        # The data stays, marked stale: old, not fresh.
        assert len(the_lab.monitor.snapshot.pods) == 7
        assert_running(the_lab.monitor)
        if not refresh:
            # While frozen, retries are not answered either.
            await wait_status(
                the_lab.monitor,
                KUBE,
                lambda s: s.error == f"the API server at {the_lab.url} did not answer within 2 s",
                DETECT_STALL,
            )
        the_lab.api.thaw()
        if refresh:
            # SLOW's backoff (>= 18 s) is still running: only `r` explains a quick return.
            the_lab.monitor.refresh()
        _, took = await wait_status(
            the_lab.monitor, KUBE, ok, RECOVER_WITH_R if refresh else RECOVER
        )


async def test_silent_watches_go_stale_and_recover(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lists answered, watches open but sending nothing (no event, no bookmark, no end)."""
    async with lab(tmp_path, capfd, monkeypatch) as the_lab:
        the_lab.api.silence(True)
        status, took = await wait_status(the_lab.monitor, KUBE, failing, DETECT_STALL)
        assert status.error in stall_lines(the_lab.url, "nodes", "pods")
        assert took < DETECT_STALL
        assert_running(the_lab.monitor)
        the_lab.api.silence(False)
        await wait_status(the_lab.monitor, KUBE, ok, RECOVER)


async def test_production_heartbeat_sees_a_frozen_server_within_30_s(tmp_path: Path) -> None:
    """With the shipped settings a watch asks for bookmarks and a server-side timeout,
    and declares itself stalled within 30 s of the last byte."""
    settings = Settings()
    assert settings.kube_watch_timeout + settings.kube_watch_grace <= 30
    store = KubeStore()
    populate(store)
    async with FakeKubeAPI(store) as api:
        config = write_kubeconfig(tmp_path / "kubeconfig", kubeconfig_dict(api.url))
        monitor = Monitor(Settings(kubeconfig=str(config)), sources={"kube"})
        await monitor.start()
        try:
            await api.wait_for(lambda: api.watch_count(NODES) == 1, timeout=15.0)
        finally:
            await monitor.stop()
    query = api.calls(NODES, watch=True)[0].query
    assert query["allowWatchBookmarks"].lower() == "true"
    assert query["timeoutSeconds"] == str(int(settings.kube_watch_timeout))


# --------------------------------------------------------------------------- garbage


def pods_list(items: list[object]) -> bytes:
    return json.dumps(
        {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": "5"},
            "items": items,
        }
    ).encode()


def good_pods() -> list[object]:
    return list(argocd_install())


def _with_status_string() -> list[object]:
    items = good_pods()
    bad = dict(items[2])  # type: ignore[arg-type]
    bad["status"] = "Running"
    items[2] = bad
    return items


def _hundred_mb() -> Iterable[bytes]:
    yield b'{"kind":"PodList","apiVersion":"v1","metadata":{"resourceVersion":"5"},"items":["'
    block = b"x" * (1 << 20)
    for _ in range(100):
        yield block
    yield b'"]}'


GARBAGE_LISTS = [
    pytest.param(
        lambda: [pods_list([*good_pods()[:3], "oops", *good_pods()[3:]])],
        "pods: unexpected shape: items[3] is not an object",
        id="item-not-object",
    ),
    pytest.param(
        lambda: [pods_list(_with_status_string())],
        "pods: unexpected shape: items[2].status is not an object",
        id="status-string",
    ),
    pytest.param(
        lambda: [pods_list(good_pods())[:-700]],
        "pods: unexpected shape: the list is not valid JSON",
        id="truncated-json",
    ),
    pytest.param(_hundred_mb, "pods: unexpected shape: the list is larger than 64 MiB", id="100MB"),
]


@pytest.mark.parametrize(("body", "line"), GARBAGE_LISTS)
async def test_garbage_pod_list_fails_pods_only(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    body: object,
    line: str,
) -> None:
    async with lab(tmp_path, capfd, monkeypatch) as the_lab:
        # The good pods must be on screen before the bad list: otherwise the garbage
        # can be the first pods list, and there is nothing "last good" to keep.
        await wait_status(
            the_lab.monitor, KUBE, lambda _s: len(the_lab.monitor.snapshot.pods) == 7, 10.0
        )
        the_lab.api.inject_list("pods", body)  # type: ignore[arg-type]
        # Force a relist of pods: the re-watch gets 410 Gone.
        the_lab.api.inject_error(410, "too old resource version", plural="pods", times=1)
        the_lab.api.cut_watches(PODS)
        status, _ = await wait_status(the_lab.monitor, KUBE, failing, 10.0)
        assert status.error == line
        assert_running(the_lab.monitor)
        # Nodes keep working while pods are broken.
        the_lab.store.set(NODES, node("kind-worker2", roles=()))
        snapshot = the_lab.monitor.snapshot
        await wait_status(
            the_lab.monitor, KUBE, lambda _s: len(the_lab.monitor.snapshot.nodes) == 3, 5.0
        )
        # The last good pods stay on screen (stale).
        assert len(snapshot.pods) == 7
        # It retries (with backoff: a retry time is shown) and recovers once fixed.
        assert the_lab.monitor.retry_in(KUBE) is not None
        await the_lab.api.wait_for(lambda: len(the_lab.api.calls(PODS, watch=False)) >= 3)
        the_lab.api.clear_errors()
        await wait_status(the_lab.monitor, KUBE, ok, RECOVER)
        assert len(the_lab.monitor.snapshot.pods) == 7


GARBAGE_EVENTS = [
    pytest.param(
        b'{"type":"ERROR","object":"too old"}\n',
        "pods: unexpected shape: ERROR event object is not an object",
        id="error-not-object",
    ),
    pytest.param(
        b'{"type":"MODIFIED","object":{"kind":"Pod","metadata":{"name":"x"},"status":"Running"}}\n',
        "pods: unexpected shape: MODIFIED event object.status is not an object",
        id="status-string",
    ),
    pytest.param(
        b'{"type":"MODIFIED","object":{"kind":"Pod","metadata":\n',
        "pods: unexpected shape: a watch event is not valid JSON",
        id="truncated-json",
    ),
    pytest.param(
        b'{"type":"ADDED","object":{"x":"' + b"y" * (3 << 20) + b'"}}\n',
        "pods: unexpected shape: a watch event is larger than 2 MiB",
        id="3MB-event",
    ),
    pytest.param(b"[1,2]\n", "pods: unexpected shape: a watch event is not an object", id="array"),
]


@pytest.mark.parametrize(("line_bytes", "line"), GARBAGE_EVENTS)
async def test_garbage_pod_event_fails_pods_only(
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    line_bytes: bytes,
    line: str,
) -> None:
    async with lab(tmp_path, capfd, monkeypatch) as the_lab:
        await the_lab.api.wait_for(lambda: the_lab.api.watch_count(PODS) == 1)
        the_lab.api.send_raw(line_bytes, PODS)
        status, took = await wait_status(the_lab.monitor, KUBE, failing, 5.0)
        assert status.error == line
        assert took < 5.0
        assert len(the_lab.monitor.snapshot.pods) == 7
        assert_running(the_lab.monitor)
        # The resource starts over with a list after its backoff and is fine again.
        _, took = await wait_status(the_lab.monitor, KUBE, ok, RECOVER)


async def test_r_resets_the_kube_backoff_and_retries_at_once(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No jitter: 0.5 s, 1 s, 2 s, 4 s ... exactly.
    ramp = KubeTiming(
        reconnect_delay=0.5,
        reconnect_max_delay=30.0,
        reconnect_jitter=0.0,
        coalesce=0.01,
        watch_grace=1.0,
    )
    async with lab(tmp_path, capfd, monkeypatch, ramp) as the_lab:
        monitor, api = the_lab.monitor, the_lab.api
        api.inject_error(500, "etcd is unhappy", plural="pods")
        api.cut_watches(PODS)
        status, _ = await wait_status(monitor, KUBE, failing, 10.0)
        assert status.error == "API server error (500): etcd is unhappy"
        # Let the backoff grow to 4 s.
        await wait_status(monitor, KUBE, lambda _s: (monitor.retry_in(KUBE) or 0) > 3.0, 10.0)
        calls = len(api.calls(PODS))
        monitor.refresh()  # still failing: one retry at once ...
        await api.wait_for(lambda: len(api.calls(PODS)) > calls, timeout=1.0)
        # ... after which the backoff starts over at 0.5 s, not 8 s.
        await wait_status(monitor, KUBE, lambda _s: (monitor.retry_in(KUBE) or 99) <= 0.6, 2.0)
        await wait_status(monitor, KUBE, lambda _s: (monitor.retry_in(KUBE) or 0) > 3.0, 10.0)
        api.clear_errors()
        monitor.refresh()
        _, took = await wait_status(monitor, KUBE, ok, RECOVER_WITH_R)
        assert took < 2.0  # the 4 s backoff did not run out


async def test_an_internal_error_is_one_line_then_retried(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug inside the source (here: converting a node raises) is one status line, no
    traceback on the terminal, and the source starts over with backoff."""
    broken = asyncio.Event()
    real = kube._node_entry

    def node_entry(obj: dict[str, Any], now: float) -> tuple[str, Any]:
        if broken.is_set():
            raise RuntimeError("boom")
        return real(obj, now)

    monkeypatch.setattr(kube, "_node_entry", node_entry)
    async with lab(tmp_path, capfd, monkeypatch) as the_lab:
        broken.set()
        the_lab.store.set(NODES, node("kind-worker2", roles=()))
        status, took = await wait_status(the_lab.monitor, KUBE, failing, 5.0)
        assert status.error == "internal error: RuntimeError: boom"
        assert took < 5.0
        assert_running(the_lab.monitor)
        broken.clear()
        await wait_status(the_lab.monitor, KUBE, ok, RECOVER)
        assert len(the_lab.monitor.snapshot.nodes) == 3
