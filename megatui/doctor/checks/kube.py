"""Checks of the kubeconfig, the API server and the nodes."""

from __future__ import annotations

import contextlib

from megatui.doctor.outcome import Outcome, failed, ok, plural
from megatui.doctor.runner import Context
from megatui.model import Snapshot


async def check_kubeconfig(ctx: Context) -> Outcome:
    """The kubeconfig, its context and that context's cluster, read exactly as the
    Kubernetes source reads them (with --host: the host's kubeconfig, as forwarded)."""
    from megatui.sources.kube_client import connect
    from megatui.sources.kubeconfig import KubeError

    remote = ctx.monitor.transport.is_remote
    if remote:  # the monitor fetches and forwards the host's kubeconfig first
        await ctx.first_snapshot()
    try:
        client = await connect(ctx.monitor.source_settings)
    except KubeError as exc:
        reason = str(exc)
        status = ctx.snapshot.sources.get("kubernetes") if ctx.snapshot else None
        if remote and status is not None and not status.ok and status.error:
            reason = status.error  # what went wrong on the host, not a local temp path
        return failed(
            reason,
            "set --kubeconfig/--context or [kube] kubeconfig/context; "
            "`kind export kubeconfig` writes the Kind cluster's context into ~/.kube/config",
        )
    with contextlib.suppress(Exception):
        await client.close()
    return ok(f"context '{client.context}': {client.server}")


def _kube_answered(snap: Snapshot) -> bool:
    """Whether the API server answered any request (a list, or a 404 for the CRD)."""
    status = snap.sources.get("kubernetes")
    apps = snap.sources.get("applications")
    return bool(
        (status is not None and status.ok)
        or any(n.status != "NotRegistered" for n in snap.nodes)
        or snap.argocd is not None  # the pods were listed
        or (apps is not None and apps.ok)
    )


async def check_kube_api(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    status = snap.sources.get("kubernetes")
    apps = snap.sources.get("applications")
    context = snap.kube_context or "the current context"
    if status is None and apps is None:
        return failed("the Kubernetes source gave no answer")
    if not _kube_answered(snap):
        error = (status.error if status else None) or (apps.error if apps else None)
        return failed(
            error or "API server unreachable",
            "check that the cluster is running (`docker ps`, `kind get clusters`) and "
            "that --kubeconfig/--context name it",
        )
    return ok(f"the API server of context '{context}' answered")


def _node_problem(node_status: str, container_state: str | None) -> str:
    if container_state and container_state != "running":
        return f"{node_status} (container {container_state})"
    return node_status


async def check_nodes(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    registered = [n for n in snap.nodes if n.status != "NotRegistered"]
    expected = ctx.settings.expected_nodes
    hint = "kubectl describe node NAME shows why"
    if not registered:
        status = snap.sources.get("kubernetes")
        why = f": {status.error}" if status and not status.ok and status.error else ""
        return failed("no nodes listed" + why, hint)
    not_ready = [n for n in registered if n.status.split(",")[0] != "Ready"]
    problems = []
    if not_ready:
        problems.append(
            ", ".join(f"{n.name} {_node_problem(n.status, n.container_state)}" for n in not_ready)
        )
    if expected is not None and len(registered) != expected:
        problems.append(f"{len(registered)} nodes, expected {expected}")
    if problems:
        return failed("; ".join(problems), hint)
    of = f" (expected {expected})" if expected is not None else ""
    return ok(f"{plural(len(registered), 'node')} Ready{of}")
