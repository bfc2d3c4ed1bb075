"""The lab cluster's crash-looping repo-server backs off as a kubelet does.

Facts (kubernetes.md, kubelet CrashLoopBackOff): the restart delay starts at 10 s,
doubles after each crash and is capped at 5 minutes; the waiting message reads
"back-off 40s restarting failed container=...", the delay in Go's duration format."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from megatui.lab.cluster import PODS, _crash_loop, crash_backoff, go_duration
from megatui.lab.kube_api import FakeKubeAPI


def test_backoff_doubles_from_10_s_to_5_min() -> None:
    assert [crash_backoff(n) for n in range(1, 9)] == [10, 20, 40, 80, 160, 300, 300, 300]
    assert [go_duration(s) for s in (10, 40, 80, 160, 300)] == [
        "10s",
        "40s",
        "1m20s",
        "2m40s",
        "5m0s",
    ]


class _Recorder:
    cluster_name = "kind"

    def __init__(self) -> None:
        self.seen: list[tuple[float, Any]] = []
        self.crashes = asyncio.Event()
        # Each run also writes the repo-server's log lines and the kubelet's events
        # (the drill-down scenario) into a real API server of the lab.
        self.api = FakeKubeAPI()

    def set_object(self, kind: str, obj: Any) -> Any:
        assert kind == PODS
        self.seen.append((time.monotonic(), obj))
        if len(self.waiting()) >= 5:
            self.crashes.set()
        return obj

    def waiting(self) -> list[str]:
        return [
            status["state"]["waiting"]["message"]
            for _, obj in self.seen
            for status in obj["status"]["containerStatuses"]
            if "waiting" in status["state"] and status["state"]["waiting"].get("message")
        ]


async def test_the_crash_loop_backs_off_like_the_kubelet() -> None:
    cluster = _Recorder()
    speed = 200.0  # 10 s of the lab is 50 ms here
    task = asyncio.create_task(_crash_loop(cluster, 0.0, speed, time.time))  # type: ignore[arg-type]
    crashes = asyncio.create_task(cluster.crashes.wait())
    try:
        # The loop never ends by itself: if it does, its exception is the failure.
        await asyncio.wait({task, crashes}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()
        assert crashes.done(), "five crash-loop waits did not come within 30 s"
    finally:
        task.cancel()
        crashes.cancel()
    backoffs = [message.split()[1] for message in cluster.waiting()[:5]]
    assert backoffs == ["10s", "20s", "40s", "1m20s", "2m40s"]
    # The restarts themselves are spaced by the back-off, not a fixed 9 s.
    errors = [
        at
        for at, obj in cluster.seen
        if "terminated" in obj["status"]["containerStatuses"][0]["state"]
    ]
    gaps = [b - a for a, b in itertools.pairwise(errors)][:4]
    assert gaps[3] > gaps[0] * 3, gaps  # 80 s vs 10 s of lab time, with slack
