"""Snapshots as stable JSON and as readable text, for `status`, `wait` and `doctor`.

The JSON shape is documented in the README and is a contract with users' scripts:
add keys, never rename or remove them. Secrets (passwords, key paths) are never
part of a snapshot, so they cannot leak here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from megatui.model import VM, Application, DockerStatus, Node, Phase, Pod, Snapshot, Worker
from megatui.sources.kube_status import age


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Each *_json here spells its keys out rather than using dataclasses.asdict: the keys
# are the contract with users' scripts, so renaming a model field must not rename a
# key. They (and snapshot_json._argo_json, serve/recovery_runner._policy_json)
# are alike in shape only.
def vm_json(vm: VM) -> dict[str, Any]:
    return {
        "name": vm.name,
        "state": str(vm.state),
        "phase": str(vm.phase),
        "ip": vm.ip,
        "progress": round(vm.progress, 3),
        "phase_since": iso(vm.phase_since),
        "eta_seconds": None if vm.eta_seconds is None else round(vm.eta_seconds),
        "error": vm.error,
        "hint": vm.hint,
        "backend": vm.backend,
        "worker": vm.worker,
        "restart_policy": vm.restart_policy,
        "restart_count": vm.restart_count,
        "stale": vm.stale,
    }


def worker_json(worker: Worker) -> dict[str, Any]:
    return {
        "name": worker.name,
        "online": worker.online,
        "last_seen": iso(worker.last_seen),
        "scheduling_paused": worker.scheduling_paused,
        "vms_running": worker.vms_running,
        "vm_capacity": worker.vm_capacity,
        "cpu_used": worker.cpu_used,
        "cpu_total": worker.cpu_total,
        "memory_used_mib": worker.memory_used_mib,
        "memory_total_mib": worker.memory_total_mib,
        "failure": worker.failure,
    }


def node_json(node: Node, now: float) -> dict[str, Any]:
    return {
        "name": node.name,
        "status": node.status,
        "roles": node.roles,
        "version": node.version,
        "created": iso(node.created),
        "container_state": node.container_state,
        "container_exit_code": node.container_exit_code,
        "container_restarts": node.container_restarts,
    }


def pod_json(pod: Pod) -> dict[str, Any]:
    return {
        "name": pod.name,
        "namespace": pod.namespace,
        "ready": pod.ready,
        "status": pod.status,
        "restarts": pod.restarts,
        "node": pod.node,
        "created": iso(pod.created),
        "why": pod.why,
    }


def app_json(app: Application) -> dict[str, Any]:
    return {
        "name": app.name,
        "namespace": app.namespace,
        "project": app.project,
        "sync": app.sync,
        "health": app.health,
        "operation": app.operation,
        "message": app.message,
    }


def docker_json(docker: DockerStatus | None) -> dict[str, Any] | None:
    if docker is None:
        return None
    return {
        "reachable": docker.reachable,
        "error": docker.error,
        "server_version": docker.server_version,
        "kind_network": docker.kind_network,
        "clusters": [
            {
                "name": cluster.name,
                "nodes": [
                    {
                        "name": n.name,
                        "role": n.role,
                        "state": n.state,
                        "exit_code": n.exit_code,
                        "restart_count": n.restart_count,
                    }
                    for n in cluster.nodes
                ],
            }
            for cluster in docker.clusters
        ],
    }


def snapshot_json(snap: Snapshot, vms: Iterable[VM] | None = None) -> dict[str, Any]:
    return {
        "generated_at": iso(snap.generated_at),
        "host": snap.host,
        # Which of `sources` lists the VMs: "tart", or "orchard" for a controller.
        "vm_source": snap.vm_source,
        "sources": {
            name: {
                "ok": s.ok,
                "kind": str(s.kind),
                "error": s.error,
                "note": s.note,
                "detail": s.detail,
                "updated_at": iso(s.updated_at),
            }
            for name, s in sorted(snap.sources.items())
        },
        "vms": [vm_json(vm) for vm in (snap.vms if vms is None else vms)],
        "nodes": [node_json(n, snap.generated_at) for n in snap.nodes],
        "pods": [pod_json(p) for p in snap.pods],
        "applications": [app_json(a) for a in snap.applications],
        "docker": docker_json(snap.docker),
        "workers": [worker_json(w) for w in snap.workers],
        "readonly": snap.readonly,
        "readonly_reason": snap.readonly_reason,
    }


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


# --- readable text -----------------------------------------------------------------


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column unpadded."""
    all_rows = [list(headers), *([str(c) for c in row] for row in rows)]
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers))]
    lines = []
    for row in all_rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def progress_bar(progress: float, width: int = 10) -> str:
    """A boot bar of `width` cells, full ones for `progress` (clamped to 0..1): the one
    drawing of it, for the reports here and the TUI's VMs panel (ui/render.py)."""
    filled = round(max(0.0, min(1.0, progress)) * width)
    return "█" * filled + "░" * (width - filled)


def vm_note(vm: VM) -> str:
    return vm.error or vm.hint or ""


def vm_rows(vms: Iterable[VM], now: float) -> list[list[str]]:
    rows = []
    for vm in vms:
        booting = vm.phase not in (Phase.STOPPED, Phase.SUSPENDED)
        bar = f"{progress_bar(vm.progress)} {round(vm.progress * 100):3d}%" if booting else ""
        rows.append(
            [
                vm.name,
                str(vm.state),
                str(vm.phase),
                bar,
                duration(now - vm.phase_since) if booting else "",
                duration(vm.eta_seconds) if vm.eta_seconds is not None else "",
                vm.ip or "",
                vm_note(vm),
            ]
        )
    return rows


VM_HEADERS = ("NAME", "STATE", "PHASE", "PROGRESS", "IN PHASE", "ETA", "IP", "NOTE")


def snapshot_text(snap: Snapshot) -> str:
    now = snap.generated_at
    out = [f"megatui status · host {snap.host} · {iso(now)}"]
    if snap.kube_context:
        out[0] += f" · context {snap.kube_context}"
    out.append("")
    out.append(
        table(
            ("SOURCE", "OK", "UPDATED", "ERROR OR NOTE"),
            (
                [
                    name,
                    "yes" if s.ok else "NO",
                    duration(now - s.updated_at) + " ago" if s.updated_at else "never",
                    s.error or s.note or "",
                ]
                for name, s in sorted(snap.sources.items())
            ),
        )
    )
    out.append("")
    if snap.vms:
        out.append(table(VM_HEADERS, vm_rows(snap.vms, now)))
    else:
        out.append("VMs: none")
    if snap.docker is not None:
        out.append("")
        out.append(docker_text(snap.docker))
    if snap.nodes:
        out.append("")
        out.append(
            table(
                ("NODE", "STATUS", "ROLES", "VERSION", "AGE", "CONTAINER"),
                (
                    [
                        n.name,
                        n.status,
                        n.roles,
                        n.version,
                        age(n.created, now),
                        n.container_state or "",
                    ]
                    for n in snap.nodes
                ),
            )
        )
    if snap.pods:
        out.append("")
        if snap.argocd is not None and snap.argocd.standard_install:
            out.append(
                f"ArgoCD components ready: {snap.argocd.ready}/{snap.argocd.total}"
                + (f" (missing: {', '.join(snap.argocd.missing)})" if snap.argocd.missing else "")
            )
        out.append(
            table(
                ("POD", "READY", "STATUS", "RESTARTS", "NODE", "AGE"),
                (
                    [p.name, p.ready, p.status, p.restarts, p.node, age(p.created, now)]
                    for p in snap.pods
                ),
            )
        )
    if snap.applications:
        out.append("")
        out.append(
            table(
                ("APPLICATION", "SYNC", "HEALTH", "OPERATION", "MESSAGE"),
                ([a.name, a.sync, a.health, a.operation, a.message] for a in snap.applications),
            )
        )
    return "\n".join(out)


def docker_text(docker: DockerStatus) -> str:
    if not docker.reachable:
        return f"Docker: unreachable: {docker.error or 'unknown error'}"
    lines = [
        f"Docker: up (server {docker.server_version or '?'}) · kind network: "
        + ("present" if docker.kind_network else "MISSING")
    ]
    for cluster in docker.clusters:
        states = ", ".join(f"{n.name} {n.state}" for n in cluster.nodes)
        lines.append(f"Kind cluster {cluster.name}: {states}")
    if not docker.clusters:
        lines.append("Kind clusters: none")
    return "\n".join(lines)
