"""Builders for Kubernetes and Argo CD objects as the API server sends them (camelCase JSON).

Every builder returns a fresh plain dict that the `kubernetes` 37.x pydantic models accept:
all the fields docs/facts/kubernetes.md §8 lists as required are present (ContainerStatus name,
image, imageID, ready and restartCount; all ten NodeSystemInfo fields; exitCode; address types; the
kubelet's `Port`), so a fake API server can serve them as they are. Times are epoch seconds
in, RFC 3339 strings out.

Defaults describe a healthy Kind cluster running Argo CD; tests override what they are about.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from megatui.sources.kube_status import ARGOCD_COMPONENTS

JSON = dict[str, Any]

#: A fixed "now" for tests: 2026-05-28T20:26:40Z.
NOW = 1_780_000_000.0
ARGOCD_IMAGE = "quay.io/argoproj/argocd:v3.1.0"
_IMAGE_ID = "sha256:" + "0" * 64


def _uid(prefix: str, *parts: str) -> str:
    """A stable, unique-enough uid (hash() is salted per process)."""
    return f"{prefix}-0000-4000-8000-{zlib.crc32('/'.join(parts).encode()):012d}"


def rfc3339(epoch: float) -> str:
    """Epoch seconds as the API server writes a metav1.Time: whole seconds, UTC, "Z"."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- container states ---------------------------------------------------------------------


def running(started_at: float = NOW - 3600) -> JSON:
    return {"running": {"startedAt": rfc3339(started_at)}}


def waiting(reason: str | None = None, message: str | None = None) -> JSON:
    body: JSON = {}
    if reason is not None:
        body["reason"] = reason
    if message is not None:
        body["message"] = message
    return {"waiting": body}


def terminated(
    exit_code: int = 0,
    reason: str | None = None,
    *,
    signal: int | None = None,
    finished_at: float | None = NOW - 60,
    started_at: float | None = None,
) -> JSON:
    """A `terminated` state. finished_at None leaves `finishedAt` out (a zero time in Go)."""
    body: JSON = {"exitCode": exit_code}
    if reason is not None:
        body["reason"] = reason
    if signal is not None:
        body["signal"] = signal
    if started_at is not None:
        body["startedAt"] = rfc3339(started_at)
    elif finished_at is not None:
        body["startedAt"] = rfc3339(finished_at - 1)
    if finished_at is not None:
        body["finishedAt"] = rfc3339(finished_at)
    return {"terminated": body}


# --- pods ---------------------------------------------------------------------------------


def container(name: str, *, image: str = ARGOCD_IMAGE, restart_policy: str | None = None) -> JSON:
    """A container of a pod spec; restart_policy "Always" on an init container is a sidecar."""
    spec: JSON = {"name": name, "image": image, "imagePullPolicy": "IfNotPresent"}
    if restart_policy is not None:
        spec["restartPolicy"] = restart_policy
    return spec


def sidecar(name: str, *, image: str = ARGOCD_IMAGE) -> JSON:
    """A native sidecar: an init container with restartPolicy Always."""
    return container(name, image=image, restart_policy="Always")


def container_status(
    name: str,
    state: JSON | None = None,
    *,
    ready: bool | None = None,
    restart_count: int = 0,
    started: bool | None = None,
    last_state: JSON | None = None,
    image: str = ARGOCD_IMAGE,
) -> JSON:
    """A ContainerStatus. By default a running container, ready and started when running."""
    state = running() if state is None else state
    is_running = "running" in state
    return {
        "name": name,
        "image": image,
        "imageID": f"{image.split(':', 1)[0]}@{_IMAGE_ID}",
        "containerID": f"containerd://{name}",
        "ready": is_running if ready is None else ready,
        "restartCount": restart_count,
        "started": is_running if started is None else started,
        "state": state,
        "lastState": {} if last_state is None else last_state,
    }


def pod_condition(kind: str, status: str = "True", reason: str | None = None) -> JSON:
    condition: JSON = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": rfc3339(NOW - 3600),
    }
    if reason is not None:
        condition["reason"] = reason
    return condition


def ready_conditions(ready: bool = True, initialized: bool = True) -> list[JSON]:
    """The conditions the kubelet sets on a scheduled pod."""
    return [
        pod_condition("PodReadyToStartContainers"),
        pod_condition("Initialized", str(initialized)),
        pod_condition("Ready", str(ready)),
        pod_condition("ContainersReady", str(ready)),
        pod_condition("PodScheduled"),
    ]


def pod(
    name: str = "demo-7d4b9c8f6-x2x9q",
    namespace: str = "argocd",
    *,
    phase: str | None = "Running",
    containers: Sequence[str | JSON] = ("main",),
    init_containers: Sequence[str | JSON] = (),
    container_statuses: Sequence[JSON] | None = None,
    init_container_statuses: Sequence[JSON] | None = None,
    conditions: Sequence[JSON] | None = None,
    labels: Mapping[str, str] | None = None,
    node_name: str | None = "kind-control-plane",
    created: float | None = NOW - 3600,
    deletion_timestamp: float | None = None,
    reason: str | None = None,
    pod_ip: str | None = "10.244.0.8",
) -> JSON:
    """A Pod. Containers given as names become plain containers.

    container_statuses None gives each container a running, ready status; pass () for a pod
    the kubelet has not reported on yet. conditions None gives the kubelet's usual set,
    Ready only when every status is ready.
    """
    spec_containers = [container(c) if isinstance(c, str) else c for c in containers]
    spec_init = [container(c) if isinstance(c, str) else c for c in init_containers]
    if container_statuses is None:
        container_statuses = [container_status(c["name"]) for c in spec_containers]
    if conditions is None:
        all_ready = all(s["ready"] for s in container_statuses) and bool(container_statuses)
        conditions = ready_conditions(ready=all_ready)

    metadata: JSON = {
        "name": name,
        "namespace": namespace,
        "uid": _uid("00000000", namespace, name),
        "resourceVersion": "1",
        "labels": dict(labels or {}),
    }
    if created is not None:
        metadata["creationTimestamp"] = rfc3339(created)
    if deletion_timestamp is not None:
        metadata["deletionTimestamp"] = rfc3339(deletion_timestamp)
        metadata["deletionGracePeriodSeconds"] = 30

    spec: JSON = {
        "containers": spec_containers,
        "restartPolicy": "Always",
        "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30,
    }
    if spec_init:
        spec["initContainers"] = spec_init
    if node_name is not None:
        spec["nodeName"] = node_name

    status: JSON = {"conditions": list(conditions), "qosClass": "BestEffort"}
    if phase is not None:
        status["phase"] = phase
    if reason is not None:
        status["reason"] = reason
    if container_statuses:
        status["containerStatuses"] = list(container_statuses)
    if init_container_statuses:
        status["initContainerStatuses"] = list(init_container_statuses)
    if node_name is not None:
        status["hostIP"] = "172.18.0.2"
        status["hostIPs"] = [{"ip": "172.18.0.2"}]
        status["startTime"] = rfc3339(NOW - 3600 if created is None else created)
    if pod_ip is not None and node_name is not None:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


# The init containers of the standard install (docs/facts/kubernetes.md §12.1).
_ARGOCD_INIT: dict[str, str] = {
    "argocd-dex-server": "copyutil",
    "argocd-redis": "secret-init",
    "argocd-repo-server": "copyutil",
}
_ARGOCD_MAIN: dict[str, str] = {"argocd-dex-server": "dex", "argocd-redis": "redis"}


def argocd_pod(component: str, *, index: int = 0, ready: bool = True, **overrides: Any) -> JSON:
    """A Running pod of one standard Argo CD component, named like its workload's pods."""
    if component == "argocd-application-controller":
        name = f"{component}-{index}"  # a StatefulSet
    else:
        name = f"{component}-6c46b7867b-{index:05d}"
    main = _ARGOCD_MAIN.get(component, component)
    init = _ARGOCD_INIT.get(component)
    kwargs: dict[str, Any] = {
        "containers": [main],
        "labels": {"app.kubernetes.io/name": component},
        "container_statuses": [container_status(main, ready=ready)],
    }
    if init is not None:
        kwargs["init_containers"] = [init]
        kwargs["init_container_statuses"] = [
            container_status(init, terminated(0, "Completed", finished_at=NOW - 3500))
        ]
    kwargs.update(overrides)
    return pod(name, "argocd", **kwargs)


def argocd_install(components: Iterable[str] = ARGOCD_COMPONENTS) -> list[JSON]:
    """The pods of a healthy standard Argo CD install (all 7 components unless narrowed)."""
    return [argocd_pod(c) for c in components]


# --- nodes --------------------------------------------------------------------------------


def node_condition(kind: str, status: str, reason: str = "", message: str = "") -> JSON:
    return {
        "type": kind,
        "status": status,
        "lastHeartbeatTime": rfc3339(NOW - 10),
        "lastTransitionTime": rfc3339(NOW - 86400),
        "reason": reason,
        "message": message,
    }


def node(
    name: str = "kind-control-plane",
    *,
    ready: str | None = "True",
    unschedulable: bool = False,
    roles: Iterable[str] = ("control-plane",),
    labels: Mapping[str, str] | None = None,
    kubelet_version: str = "v1.33.1",
    internal_ip: str | None = "172.18.0.2",
    created: float | None = NOW - 86400,
    cluster: str = "kind",
) -> JSON:
    """A Kind Node. ready is the Ready condition's status ("True", "False", "Unknown"), or
    None to leave the condition out; roles become node-role.kubernetes.io/<role> labels."""
    all_labels = {
        "beta.kubernetes.io/arch": "arm64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "arm64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    for role in roles:
        all_labels[f"node-role.kubernetes.io/{role}"] = ""
    all_labels.update(labels or {})

    conditions = [
        node_condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        node_condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        node_condition("PIDPressure", "False", "KubeletHasSufficientPID"),
    ]
    if ready is not None:
        ready_reason = "KubeletReady" if ready == "True" else "KubeletNotReady"
        conditions.append(node_condition("Ready", ready, ready_reason))
    addresses = [{"type": "Hostname", "address": name}]
    if internal_ip is not None:
        addresses.insert(0, {"type": "InternalIP", "address": internal_ip})

    metadata: JSON = {
        "name": name,
        "uid": _uid("11111111", name),
        "resourceVersion": "1",
        "labels": all_labels,
        "annotations": {
            "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
            "node.alpha.kubernetes.io/ttl": "0",
        },
    }
    if created is not None:
        metadata["creationTimestamp"] = rfc3339(created)
    spec: JSON = {
        "podCIDR": "10.244.0.0/24",
        "podCIDRs": ["10.244.0.0/24"],
        "providerID": f"kind://docker/{cluster}/{name}",
    }
    if unschedulable:
        spec["unschedulable"] = True
        spec["taints"] = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": metadata,
        "spec": spec,
        "status": {
            "conditions": conditions,
            "addresses": addresses,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "arm64",
                "bootID": "c865ce06-b2a0-45aa-95cf-4d51e7ff4215",
                "containerRuntimeVersion": "containerd://2.1.1",
                "kernelVersion": "6.10.14-linuxkit",
                "kubeProxyVersion": kubelet_version,
                "kubeletVersion": kubelet_version,
                "machineID": "e9d7e4ddbde540739dcfba4cf3b13d4c",
                "operatingSystem": "linux",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "systemUUID": "aaa89d95-08c7-43b2-a662-6a54b37488ec",
            },
            "capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
        },
    }


# --- Argo CD Applications -----------------------------------------------------------------


def application(
    name: str = "guestbook",
    namespace: str = "argocd",
    *,
    project: str | None = "default",
    sync: str | None = "Synced",
    health: str | None = "Healthy",
    health_message: str | None = None,
    revision: str | None = "ea8759964626a583667a2bfd08f334ec2070040a",
    operation_phase: str | None = "Succeeded",
    operation_message: str | None = "successfully synced (all tasks run)",
    conditions: Iterable[tuple[str, str]] = (),
    with_status: bool = True,
) -> JSON:
    """An Application. None leaves a field out; conditions are (type, message) pairs.
    with_status False gives a freshly created app with no status at all."""
    spec: JSON = {
        "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
        "source": {
            "repoURL": "https://github.com/argoproj/argocd-example-apps.git",
            "path": name,
            "targetRevision": "HEAD",
        },
    }
    if project is not None:
        spec["project"] = project
    app: JSON = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": _uid("22222222", namespace, name),
            "resourceVersion": "1",
            "creationTimestamp": rfc3339(NOW - 7200),
        },
        "spec": spec,
    }
    if not with_status:
        return app

    status: JSON = {"sync": {}, "health": {}}
    if sync is not None:
        status["sync"]["status"] = sync
    if revision is not None:
        status["sync"]["revision"] = revision
    if health is not None:
        status["health"]["status"] = health
    if health_message is not None:
        status["health"]["message"] = health_message
    if operation_phase is not None:
        operation: JSON = {
            "operation": {"sync": {"revision": revision or ""}, "initiatedBy": {"automated": True}},
            "phase": operation_phase,
            "startedAt": rfc3339(NOW - 120),
        }
        if operation_message is not None:
            operation["message"] = operation_message
        if operation_phase in ("Succeeded", "Failed", "Error"):
            operation["finishedAt"] = rfc3339(NOW - 110)
        status["operationState"] = operation
    condition_list = [
        {"type": kind, "message": message, "lastTransitionTime": rfc3339(NOW - 300)}
        for kind, message in conditions
    ]
    if condition_list:
        status["conditions"] = condition_list
    status["reconciledAt"] = rfc3339(NOW - 30)
    app["status"] = status
    return app
