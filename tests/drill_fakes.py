"""Sample objects for the drill-down screens: the sample snapshot's crash-looping dex
pod as the API would send it, its events, its logs, an Application with a failed
sync, and a real Kind node (tests/fixtures/k8s/node_kind_control_plane.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ui_fakes import NOW, FakeMonitor

from megatui.lab.cluster import Component, Stage, application_object, pod_object
from megatui.lab.drill_scenario import degrade_application
from megatui.model import KubeEvent
from megatui.sources.kube_logs import LogLine, parse_line

DEX = "argocd-dex-server-6f7c9b8d5-k9m2p"
FIXTURES = Path(__file__).parent / "fixtures" / "k8s"


def dex_pod() -> dict[str, Any]:
    comp = Component("argocd-dex-server", DEX, "copyutil", "dex",
                     "ghcr.io/dexidp/dex:v2.43.1", 5556, False, "megalopolis-worker")  # fmt: skip
    obj = pod_object(comp, Stage.CRASH_LOOP, created=NOW - 2 * 86400, now=NOW,
                     restarts=7, last_restart=NOW - 134)  # fmt: skip
    last = obj["status"]["containerStatuses"][0]["lastState"]["terminated"]
    last.update({"exitCode": 2, "message": "failed to initialize storage: permission denied"})
    return obj


def dex_events() -> list[KubeEvent]:
    def ev(name: str, type_: str, reason: str, message: str, count: int, first: float,
           last: float, path: str = "spec.containers{dex}") -> KubeEvent:  # fmt: skip
        return KubeEvent("argocd", f"{DEX}.{name}", type_, reason, message, "Pod", DEX, "",
                         path, count, first, last, "kubelet")  # fmt: skip

    return [
        ev("3", "Warning", "BackOff",
           f"Back-off restarting failed container dex in pod {DEX}_argocd(x)",
           31, NOW - 2 * 3600, NOW - 14),
        ev("2", "Normal", "Started", "Started container dex", 8, NOW - 2 * 3600, NOW - 140),
        ev("1", "Normal", "Scheduled", f"Successfully assigned argocd/{DEX} to megalopolis-worker",
           1, NOW - 2 * 86400, NOW - 2 * 86400, ""),
    ]  # fmt: skip


def dex_logs(n: int = 40) -> list[LogLine]:
    lines = [
        parse_line(f"2026-05-28T20:2{i // 10}:{i % 10:02d}.000000000Z ".encode()
                   + f'time="…" level=info msg="dex line {i}"'.encode())
        for i in range(n)
    ]  # fmt: skip
    lines.append(parse_line(b"2026-05-28T20:26:40.000000000Z \x1b[31mred\x1b[0m \xff raw\n"))
    lines.append(parse_line(b'2026-05-28T20:26:41.000000000Z level=fatal msg="permission denied"'))
    return lines


def platform_app() -> dict[str, Any]:
    """The sample snapshot's degraded `platform-infra` Application as the API has it."""
    app = application_object(
        "platform-infra",
        sync="OutOfSync",
        health="Degraded",
        created=NOW - 86400,
        now=NOW - 60,
        operation="Failed",
        message='Deployment "platform-infra-ui" exceeded its progress deadline',
    )
    degraded = degrade_application(app)
    for r in degraded["status"]["resources"]:
        if r["kind"] == "Pod":
            r["name"] = DEX
    return degraded


def kind_node() -> dict[str, Any]:
    node: dict[str, Any] = json.loads((FIXTURES / "node_kind_control_plane.json").read_text())
    node["metadata"]["name"] = "megalopolis-control-plane"
    return node


def drill_monitor(monitor: FakeMonitor) -> FakeMonitor:
    monitor.objects[("pod", DEX)] = dex_pod()
    monitor.objects[("application", "platform-infra")] = platform_app()
    monitor.objects[("node", "megalopolis-control-plane")] = kind_node()
    monitor.kube_events[f"argocd/{DEX}"] = dex_events()
    monitor.pod_logs[(DEX, "dex", False)] = dex_logs()
    return monitor
