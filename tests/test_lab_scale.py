"""The lab's scale options (benchmarks/bench_scale.py): many VMs, many Applications."""

from __future__ import annotations

from collections import Counter

from megatui.lab.cluster import load_applications
from megatui.lab.tartlab import many_vms
from megatui.sources.kube_status import application_row


def test_many_vms_are_linux_and_only_the_first_run() -> None:
    specs = many_vms(200, running=10)
    assert len({s.name for s in specs}) == 200
    assert [s.initial for s in specs].count("running") == 10
    assert all(s.initial == "running" for s in specs[:10])
    assert {s.os for s in specs} == {"linux"}  # Apple's 2-macOS-VM limit does not apply


def test_load_applications_read_as_a_big_install() -> None:
    apps = [application_row(obj) for obj in load_applications(500, created=0.0, now=3600.0)]
    assert len({a.name for a in apps}) == 500
    health = Counter(a.health for a in apps)
    assert health["Healthy"] > 400 and health["Degraded"] > 0 and health["Progressing"] > 0
    assert Counter(a.sync for a in apps)["OutOfSync"] > 0
