"""The lab's Kubernetes API server (the drill-down scenario: a crash loop, Warning
events, pod logs) and a kube-only Monitor on it, for the tests of the monitor's
drill-down half and of the same through `megatui serve`.

Use in a test module with
`from cluster_fixtures import kube_monitor_fixture, lab_cluster_fixture  # noqa: F401`;
the fixtures are then `lab` and `monitor`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from megatui.config import Settings, load_settings, toml_value
from megatui.lab.cluster import LabCluster, start_lab_cluster
from megatui.monitor import Monitor


@pytest.fixture(name="lab")
async def lab_cluster_fixture(tmp_path: Path) -> AsyncIterator[LabCluster]:
    cluster = await start_lab_cluster(tls=False, animate=False, workdir=tmp_path / "kube")
    try:
        yield cluster
    finally:
        await cluster.stop()


def kube_settings(lab: LabCluster, tmp_path: Path) -> Settings:
    """Settings from a config file that points at the lab's kubeconfig."""
    config = tmp_path / "megatui.toml"
    config.write_text(f"[kube]\nkubeconfig = {toml_value(str(lab.kubeconfig_path))}\n")
    return load_settings(config, environ={})


@contextlib.asynccontextmanager
async def kube_monitor(lab: LabCluster, tmp_path: Path) -> AsyncIterator[Monitor]:
    """A started Monitor of the lab's cluster only, stopped on the way out."""
    mon = Monitor(kube_settings(lab, tmp_path), sources={"kube"})
    await mon.start()
    try:
        yield mon
    finally:
        await mon.stop()


@pytest.fixture(name="monitor")
async def kube_monitor_fixture(lab: LabCluster, tmp_path: Path) -> AsyncIterator[Monitor]:
    async with kube_monitor(lab, tmp_path) as mon:
        assert await mon.wait_first_round(15)
        yield mon
