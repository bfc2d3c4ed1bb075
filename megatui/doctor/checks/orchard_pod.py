"""The platform's own historic failure: the Orchard controller's Pod in the Kind
cluster stuck in ContainerCreating because its manifest mounts the Docker socket.

The Pod asked for a hostPath volume of type Socket at /var/run/docker.sock; Kind
nodes are containers without a Docker socket, so the kubelet's hostPath type check
fails and it retries for ever, leaving a `FailedMount` event counted in the
thousands (docs/facts/kubernetes-drilldown.md §4, FailedMount). The controller does not
need Docker at all (it only schedules; workers run tart on the Macs), so the fix is to
remove the volume. Read with one list of the namespace's Pods and one of its Events,
through the same client as the Kubernetes source.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from megatui.clock import SystemClock
from megatui.doctor.outcome import Outcome, failed, ok, plural, skipped
from megatui.doctor.runner import Context
from megatui.model import KubeEvent

#: Where the platform's manifests put the controller (and the lab's drill scenario).
ORCHARD_NAMESPACE = "orchard"
HINT = (
    "the Orchard controller does not need Docker: remove the docker.sock hostPath volume "
    "and its volumeMount (Kind nodes have no Docker socket), e.g. "
    "`kubectl -n {ns} edit deployment {deployment}`"
)

JSON = dict[str, Any]


@dataclass(frozen=True)
class StuckMount:
    namespace: str
    pod: str
    deployment: str
    volume: str
    event: KubeEvent

    def describe(self) -> str:
        times = f" (x{self.event.count})" if self.event.count > 1 else ""
        return (
            f"Pod {self.namespace}/{self.pod} stuck in ContainerCreating: "
            f"FailedMount{times}: {self.event.message}"
        )


def _docker_sock_volumes(pod: JSON) -> list[str]:
    spec = pod.get("spec") if isinstance(pod.get("spec"), dict) else {}
    out = []
    for volume in (spec or {}).get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        host = volume.get("hostPath")
        path = host.get("path") if isinstance(host, dict) else None
        if isinstance(path, str) and path.rstrip("/").endswith("docker.sock"):
            out.append(str(volume.get("name", "")))
    return out


def _deployment(pod: JSON, name: str) -> str:
    """The Deployment behind the Pod: its ReplicaSet's name without the hash."""
    meta = pod.get("metadata") if isinstance(pod.get("metadata"), dict) else {}
    for owner in (meta or {}).get("ownerReferences") or []:
        if isinstance(owner, dict) and owner.get("kind") == "ReplicaSet":
            return str(owner.get("name", "")).rsplit("-", 1)[0] or name
    return name


def stuck_on_docker_sock(pods: Sequence[JSON], events: Iterable[KubeEvent]) -> list[StuckMount]:
    """Pods in ContainerCreating with a docker.sock hostPath volume that a FailedMount
    event names (by volume name or path)."""
    from megatui.sources.kube_status import ShapeError, pod_row

    by_pod: dict[str, list[KubeEvent]] = {}
    for ev in events:
        if ev.reason == "FailedMount" and ev.object_kind in ("Pod", ""):
            by_pod.setdefault(ev.object_name, []).append(ev)
    found = []
    now = time.time()
    for obj in pods:
        try:
            row = pod_row(dict(obj), now)
        except ShapeError:
            continue
        if row.status != "ContainerCreating":
            continue
        for volume in _docker_sock_volumes(obj):
            hits = [
                ev
                for ev in by_pod.get(row.name, [])
                if f'"{volume}"' in ev.message or "docker.sock" in ev.message
            ]
            if hits:
                latest = max(hits, key=lambda ev: ev.last or 0.0)
                found.append(
                    StuckMount(row.namespace, row.name, _deployment(obj, row.name), volume, latest)
                )
                break
    return found


async def _list(ctx: Context, client: Any, path: str) -> list[JSON]:
    """One list GET through the Kubernetes source's own request path (auth, TLS,
    one-line errors); raises KubeError."""
    from megatui.sources.kube import KubeSource
    from megatui.sources.kube_logs import status_line
    from megatui.sources.kubeconfig import KubeError

    settings = ctx.monitor.source_settings
    source = KubeSource(settings, SystemClock(), lambda _state: None)
    limit = settings.kube_request_timeout
    resp = await source._get(client, path, [], aiohttp.ClientTimeout(total=limit))
    try:
        body = await resp.read()
    finally:
        resp.release()
    if resp.status != 200:
        raise KubeError(f"GET {path}: {status_line(resp.status, body)} ({resp.status})")
    try:
        data = json.loads(body)
    except ValueError:
        raise KubeError(f"GET {path}: not JSON") from None
    items = data.get("items") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise KubeError(f"GET {path}: no list of items")
    return [item for item in items if isinstance(item, dict)]


async def check_controller_pod(ctx: Context) -> Outcome:
    from megatui.sources.kube_client import connect
    from megatui.sources.kube_events import parse_event
    from megatui.sources.kubeconfig import KubeError

    ns = ORCHARD_NAMESPACE
    quoted = urllib.parse.quote(ns, safe="")
    try:
        client = await connect(ctx.monitor.source_settings)
    except KubeError as exc:
        return failed(str(exc))
    try:
        pods = await _list(ctx, client, f"/api/v1/namespaces/{quoted}/pods")
        if not pods:
            return skipped(f"no Pod in namespace '{ns}'")
        events = await _list(ctx, client, f"/api/v1/namespaces/{quoted}/events")
    except KubeError as exc:
        return failed(str(exc))
    finally:
        with contextlib.suppress(Exception):
            await client.close()
    stuck = stuck_on_docker_sock(pods, (parse_event(e) for e in events))
    if stuck:
        first = stuck[0]
        return failed(
            "; ".join(s.describe() for s in stuck),
            HINT.format(ns=first.namespace, deployment=first.deployment),
        )
    return ok(f"{plural(len(pods), 'Pod')} in namespace '{ns}', none stuck on a docker.sock mount")
