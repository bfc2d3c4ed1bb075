"""The monitor's cluster half: Kubernetes and Docker merged into one snapshot, with
the lab's fake API server and fake Docker API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from monitor_helpers import wait_snapshot

from megatui import report
from megatui.config import load_settings
from megatui.lab.cluster import start_lab_cluster
from megatui.lab.docker_api import start_fake_docker
from megatui.monitor import Monitor


@dataclass
class Platform:
    cluster: Any
    docker: Any
    config: Path


@pytest.fixture
async def platform(tmp_path: Path) -> AsyncIterator[Platform]:
    cluster = await start_lab_cluster(tls=False, animate=False, workdir=tmp_path / "kube")
    docker = await start_fake_docker(tmp_path / "d.sock")
    config = tmp_path / "megatui.toml"
    config.write_text(
        f'[kube]\nkubeconfig = "{cluster.kubeconfig_path}"\n'
        f'[docker]\nhost = "{docker.url}"\npoll_interval = 0.2\n'
    )
    try:
        yield Platform(cluster, docker, config)
    finally:
        await docker.stop()
        await cluster.stop()


async def test_nodes_merge_container_state_with_kubelet_condition(platform: Platform) -> None:
    monitor = Monitor(load_settings(platform.config, environ={}), sources={"kube", "docker"})
    await monitor.start()
    try:
        snap = await wait_snapshot(
            monitor, lambda s: len(s.nodes) == 4 and all(n.container_state for n in s.nodes)
        )
        assert {n.container_state for n in snap.nodes} == {"running"}
        platform.docker.set_node_state("kind-worker2", "exited", exit_code=137, restart_count=1)
        snap = await wait_snapshot(
            monitor,
            lambda s: any(
                n.name == "kind-worker2" and n.container_state == "exited" for n in s.nodes
            ),
        )
    finally:
        await monitor.stop()
    worker2 = next(n for n in snap.nodes if n.name == "kind-worker2")
    # The container is down while the API server still has the kubelet's last word:
    # the two facts are kept apart, so "container exited" reads differently from
    # "kubelet NotReady".
    assert worker2.container_state == "exited"
    assert (worker2.container_exit_code, worker2.container_restarts) == (137, 1)
    assert worker2.status.startswith("Ready")


async def test_cluster_sections_in_status_json(platform: Platform) -> None:
    monitor = Monitor(load_settings(platform.config, environ={}), sources={"kube", "docker"})
    await monitor.start()
    try:
        await monitor.wait_first_round(10)
        snap = await wait_snapshot(monitor, lambda s: len(s.pods) == 7 and s.applications)
    finally:
        await monitor.stop()
    data = report.snapshot_json(snap)
    assert data["sources"]["kubernetes"]["ok"] is True
    assert data["sources"]["docker"]["ok"] is True
    assert data["docker"]["kind_network"] is True
    assert {p["status"] for p in data["pods"]} >= {"Running", "CrashLoopBackOff"}
    assert snap.argocd is not None and snap.argocd.standard_install
    apps = {a["name"]: (a["sync"], a["health"]) for a in data["applications"]}
    assert ("OutOfSync", "Degraded") in apps.values()
    text = report.snapshot_text(snap)
    assert "ArgoCD components ready: 6/7" in text


async def test_one_source_failing_leaves_the_others_working(
    platform: Platform, tmp_path: Path
) -> None:
    settings = load_settings(
        platform.config, {"docker_host": f"unix://{tmp_path}/absent.sock"}, environ={}
    )
    monitor = Monitor(settings, sources={"kube", "docker"})
    await monitor.start()
    try:
        await monitor.wait_first_round(10)
        snap = await wait_snapshot(monitor, lambda s: len(s.nodes) == 4)
    finally:
        await monitor.stop()
    assert snap.sources["docker"].ok is False
    assert "no such socket" in (snap.sources["docker"].error or "")
    assert snap.sources["kubernetes"].ok is True
    assert all(n.container_state is None for n in snap.nodes)
