"""Checks of ArgoCD: its namespace, its components, its Applications."""

from __future__ import annotations

from megatui.doctor.outcome import Outcome, failed, ok, plural, warn
from megatui.doctor.runner import Context
from megatui.model import Pod, Snapshot, StatusKind


def _namespace_missing(snap: Snapshot) -> bool:
    status = snap.sources.get("kubernetes")
    return bool(status and status.kind is StatusKind.MISSING_NAMESPACE)


async def check_argocd_namespace(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    ns = ctx.settings.namespace
    if _namespace_missing(snap):
        return failed(
            f"namespace '{ns}' not found",
            f"install ArgoCD: kubectl create namespace {ns} && kubectl apply -n {ns} -f "
            "https://raw.githubusercontent.com/argoproj/argo-cd/stable/manifests/install.yaml",
        )
    if snap.argocd is None:  # the pods of the namespace could not be listed
        status = snap.sources.get("kubernetes")
        error = status.error if status and status.error else "no answer"
        return failed(f"cannot list the pods of namespace '{ns}': {error}")
    return ok(f"namespace '{ns}' with {plural(len(snap.pods), 'pod')}")


def _unhealthy(pod: Pod) -> bool:
    return not pod.running_ready and pod.status != "Completed"


def _describe_pod(pod: Pod) -> str:
    text = f"{pod.name} {pod.status} {pod.ready}"
    if pod.restarts and pod.restarts != "0":
        text += f", restarts {pod.restarts}"
    if pod.why:
        text += f" ({pod.why})"
    return text


async def check_argocd_components(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    ns = ctx.settings.namespace
    summary = snap.argocd
    pods = snap.pods
    bad = [p for p in pods if _unhealthy(p)]
    hint = f"kubectl -n {ns} describe pod POD; kubectl -n {ns} logs POD --previous"
    if summary is None or not summary.standard_install:
        if not pods:
            return failed(f"no pods in namespace '{ns}'", "install ArgoCD (install.yaml)")
        if bad:
            listed = "; ".join(_describe_pod(p) for p in bad)
            return failed(f"pods not running and ready: {listed}", hint)
        return warn(
            f"not a standard ArgoCD install; its {plural(len(pods), 'pod')} run and are ready",
            "doctor knows the 7 components of the standard install.yaml",
        )
    if summary.missing:
        parts = []
        for component in summary.missing:
            own = [p for p in pods if p.component == component]
            if not own:
                parts.append(f"{component}: no pod")
            else:
                parts.extend(_describe_pod(p) for p in own if _unhealthy(p))
        return failed(
            f"{summary.ready}/{summary.total} components running and ready; " + "; ".join(parts),
            hint,
        )
    if bad:  # every component has a ready pod; others (an old rollout, a job) do not
        listed = "; ".join(_describe_pod(p) for p in bad)
        return warn(
            f"{summary.ready}/{summary.total} components ready, but not every pod: {listed}",
            hint,
        )
    return ok(f"{summary.ready}/{summary.total} components running and ready")


async def check_applications(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    ns = ctx.settings.namespace
    status = snap.sources.get("applications")
    if status is None:
        return failed("the Applications were not listed: no answer from the API server")
    if not status.ok:
        return failed(status.error or "cannot list Applications")
    if status.kind is StatusKind.MISSING_CRD:  # a calm "ok" for the TUI, broken here
        return failed(
            status.note or "ArgoCD Applications CRD not installed",
            "install ArgoCD's CRDs: they come with install.yaml",
        )
    apps = snap.applications
    if not apps:
        return warn(
            f"no Applications in namespace '{ns}'",
            "create them with `argocd app create` or kubectl apply",
        )
    bad = [a for a in apps if a.sync != "Synced" or a.health != "Healthy"]
    if bad:
        listed = ", ".join(f"{a.name} {a.sync}/{a.health}" for a in bad)
        return failed(
            f"{len(bad)} of {plural(len(apps), 'Application')} not Synced and Healthy: " + listed,
            "argocd app get NAME shows the diff and the failing resources",
        )
    everyone = "the Application is" if len(apps) == 1 else f"all {len(apps)} Applications are"
    return ok(f"{everyone} Synced and Healthy")
