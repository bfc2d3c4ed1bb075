"""The pure formatting rules of the TUI: kubectl ages, merged node status, bars, lines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ui_fakes import NOW, sample_vms, utc

from megatui.model import VM, Node, Phase, Pod, SourceStatus, TartState
from megatui.ui import render


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (125, "2m5s"),
        (9 * 60 + 59, "9m59s"),
        (10 * 60 + 30, "10m"),
        (179 * 60, "179m"),
        (3 * 3600, "3h"),
        (5 * 3600 + 20 * 60, "5h20m"),
        (8 * 3600 + 59 * 60, "8h"),
        (47 * 3600, "47h"),
        (2 * 86400, "2d"),
        (2 * 86400 + 3 * 3600, "2d3h"),
        (8 * 86400 + 5 * 3600, "8d"),
        (400 * 86400, "400d"),
        (2 * 365 * 86400 + 10 * 86400, "2y10d"),
        (9 * 365 * 86400, "9y"),
    ],
)
def test_kubectl_age(seconds: float, shown: str) -> None:
    assert render.age_cell(0.0, seconds).plain == shown


def test_duration() -> None:
    assert [render.duration(s) for s in (None, 0, 7.4, 65, 3599, 7380)] == [
        "-",
        "0s",
        "7s",
        "1m05s",
        "59m59s",
        "2h03m",
    ]


def node(status: str, container: str | None) -> Node:
    return Node("n", status, "<none>", "v1.31.0", NOW, container_state=container)


def test_node_status_tells_container_from_kubelet() -> None:
    exited = render.node_status_cell(node("NotReady", "exited"))
    kubelet = render.node_status_cell(node("NotReady", "running"))
    ready = render.node_status_cell(node("Ready", "running"))
    cordoned = render.node_status_cell(node("Ready,SchedulingDisabled", None))
    assert exited.plain == "container exited · NotReady"
    assert kubelet.plain == "kubelet NotReady"
    assert ready.plain == "Ready" and render.OK in str(ready.style)
    assert cordoned.plain == "Ready,SchedulingDisabled"
    assert render.WARN in str(cordoned.style)


def test_progress_depends_on_the_clock_only_while_moving() -> None:
    by_name = {vm.name: vm for vm in sample_vms()}
    for name in ("dev-ready", "builder-stopped", "gpu-error"):
        vm = by_name[name]
        assert render.progress_cell(vm, NOW).plain == render.progress_cell(vm, NOW + 99).plain
    booting = by_name["ci-booting"]
    assert render.progress_cell(booting, NOW).plain == "██░░░░░░    45s eta 3m08s"
    assert render.progress_cell(booting, NOW + 30).plain == "██░░░░░░  1m15s eta 3m08s"


def test_stuck_vm_is_amber_not_cyan() -> None:
    vm = next(vm for vm in sample_vms() if vm.name == "web-ip")
    assert render.WARN in str(render.phase_cell(vm).style)
    assert render.note_cell(vm).plain.startswith("no DHCP lease")


def test_vm_line_prefers_the_error() -> None:
    vm = VM("v", TartState.STOPPED, Phase.ERROR, None, 0.1, NOW, error="bad", hint="try x")
    assert render.vm_line(vm, NOW).plain == "✗ v: bad"


def test_stale_line_format() -> None:
    status = SourceStatus("kube", False, error="timeout", updated_at=NOW - 42.9)
    assert render.stale_line(status, NOW, 7.2).plain == (
        "⚠ kube: timeout · stale 42 s · retrying in 8 s"
    )
    never = SourceStatus("kube", False, error="no kubeconfig")
    assert render.stale_line(never, NOW, None).plain == "⚠ kube: no kubeconfig · no data yet"


def test_crashloop_is_red() -> None:
    pod = Pod("p", "argocd", "0/1", "CrashLoopBackOff", "7 (2m ago)", "n", NOW)
    assert render.BAD in str(render.pod_status_cell(pod).style)
    assert render.WARN in str(render.restarts_cell(pod).style)


@pytest.fixture
def _utc() -> Iterator[None]:
    with utc():
        yield


@pytest.mark.usefixtures("_utc")
def test_clock_time_is_local_hh_mm_ss() -> None:
    assert render.clock_time(NOW) == "20:26:40"


def test_literal_never_parses_markup() -> None:
    text = render.literal("[b]x[/b]")
    assert text.plain == "[b]x[/b]" and not text.spans


def test_cell_signature_sees_colour_changes() -> None:
    a = render.literal("Synced", render.OK)
    b = render.literal("Synced", render.WARN)
    assert a == b  # rich's own equality ignores the style...
    assert render.cell_signature(a) != render.cell_signature(b)  # ...ours does not
