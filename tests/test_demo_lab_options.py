"""DemoLab's benchmark options (benchmarks/bench_keys.py): extra pods in the Argo CD
namespace, a settled cluster, and the watch bookmark interval."""

from __future__ import annotations

from pathlib import Path

from megatui.lab.demo import DemoLab
from megatui.lab.kube_api import PODS
from megatui.lab.tartlab import LabVMSpec


def test_demo_lab_serves_extra_pods_settled_and_passes_the_bookmark_interval(
    tmp_path: Path,
) -> None:
    lab = DemoLab(
        tmp_path / "lab",
        (LabVMSpec("only-vm", initial="stopped", os="linux"),),
        extra_pods=30,
        animate=False,
        bookmark_interval=60.0,
    )
    lab.start()
    try:
        pods = lab.cluster.store.objects(PODS, "argocd")
        # The seven pods of a standard Argo CD install, plus the extra ones.
        assert len(pods) == 7 + 30
        assert sum(p["metadata"]["name"].startswith("load-") for p in pods) == 30
        # Settled: every Argo CD pod has started (no Pending start-up animation).
        argo = [p for p in pods if p["metadata"]["name"].startswith("argocd-")]
        assert all(p["status"]["phase"] == "Running" for p in argo)
        assert lab.cluster.api.bookmark_interval == 60.0
    finally:
        lab.stop()
