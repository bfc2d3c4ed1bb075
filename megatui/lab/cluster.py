"""The lab's Kind-like cluster: its objects and how they change over time.

Four nodes named as Kind names them, the seven pods of a standard Argo CD
install going through their real start-up states (Init:0/1, PodInitializing,
ContainerCreating, Running) with the repo-server stuck in CrashLoopBackOff, and a
few Applications. A driver task applies each change through the store, so
watchers see MODIFIED events exactly as from a live apiserver.

Objects are complete: every field the kubernetes 37.x pydantic models require is
present (docs/facts/kubernetes.md §8), so even the official client's models accept them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from megatui.lab import drill_scenario
from megatui.lab.kube_api import (
    APPLICATIONS,
    NAMESPACES,
    NODES,
    PODS,
    FakeKubeAPI,
    KubeStore,
    ResourceType,
    rfc3339,
)
from megatui.lab.kube_certs import (
    generate_certs,
    kubeconfig_dict,
    server_ssl_context,
    write_kubeconfig,
)

JSON = dict[str, Any]

#: The namespaces a fresh Kind cluster has (the Argo CD one is added to them).
KIND_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system", "local-path-storage")

KUBE_VERSION = "v1.33.1"
ARGOCD_IMAGE = "quay.io/argoproj/argocd:v3.1.5"
NAMESPACE = "argocd"


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def _uid(seed: str) -> str:
    h = _hex(seed, 32)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --------------------------------------------------------------------------- nodes


def node_object(
    name: str,
    *,
    control_plane: bool,
    ip: str,
    created: float,
    ready: bool = True,
    cluster: str = "kind",
) -> JSON:
    """A Kind node as the apiserver serves it (docs/facts/kubernetes.md §11.5, §11.6)."""
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
    }
    taints: list[JSON] = []
    if control_plane:
        labels["node-role.kubernetes.io/control-plane"] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        taints.append({"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
    stamp = rfc3339(created)
    if ready:
        ready_cond = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status",
        }
    else:
        ready_cond = {
            "type": "Ready",
            "status": "False",
            "reason": "KubeletNotReady",
            "message": "container runtime network not ready: NetworkReady=false "
            "reason:NetworkPluginNotReady message:Network plugin returns error: "
            "cni plugin not initialized",
        }
    pressure = [
        ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ]
    conditions = [
        {
            "type": t,
            "status": "False",
            "lastHeartbeatTime": stamp,
            "lastTransitionTime": stamp,
            "reason": r,
            "message": m,
        }
        for t, r, m in pressure
    ]
    conditions.append({**ready_cond, "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
    index = int(ip.rsplit(".", 1)[1])
    spec: JSON = {
        "podCIDR": f"10.244.{index - 2}.0/24",
        "podCIDRs": [f"10.244.{index - 2}.0/24"],
        "providerID": f"kind://docker/{cluster}/{name}",
    }
    if taints:
        spec["taints"] = taints
    capacity = {
        "cpu": "8",
        "ephemeral-storage": "263112772Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": "16365916Ki",
        "pods": "110",
    }
    return {
        "metadata": {
            "name": name,
            "uid": _uid("node/" + name),
            "creationTimestamp": stamp,
            "labels": labels,
            "annotations": {
                "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": spec,
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": _hex("machine/" + name, 32),
                "systemUUID": _uid("system/" + name),
                "bootID": _uid("boot/" + name),
                "kernelVersion": "6.8.0-60-generic",
                "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://2.1.1",
                "kubeletVersion": KUBE_VERSION,
                "kubeProxyVersion": KUBE_VERSION,
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
            "images": [
                {"names": [f"registry.k8s.io/kube-proxy:{KUBE_VERSION}"], "sizeBytes": 97133040},
                {"names": ["registry.k8s.io/pause:3.10"], "sizeBytes": 320368},
            ],
        },
    }


def kind_nodes(created: float, cluster: str = "kind", *, workers_ready: bool = True) -> list[JSON]:
    """`<cluster>-control-plane` and three workers, on the `kind` network."""
    nodes = [
        node_object(
            f"{cluster}-control-plane",
            control_plane=True,
            ip="172.18.0.2",
            created=created,
            cluster=cluster,
        )
    ]
    for i, suffix in enumerate(("", "2", "3")):
        nodes.append(
            node_object(
                f"{cluster}-worker{suffix}",
                control_plane=False,
                ip=f"172.18.0.{3 + i}",
                created=created + 12,
                ready=workers_ready,
                cluster=cluster,
            )
        )
    return nodes


# --------------------------------------------------------------------------- pods


class Stage(StrEnum):
    """Where a pod is on its way up, each a state kubectl shows differently."""

    PENDING = "Pending"  # scheduled, kubelet has not reported yet
    INIT = "Init:0/1"  # the init container runs
    POD_INITIALIZING = "PodInitializing"  # init done, main container being created
    CONTAINER_CREATING = "ContainerCreating"
    STARTING = "Running 0/1"  # running, readiness probe not passed yet
    RUNNING = "Running"
    ERROR = "Error"  # the main container just exited with an error
    CRASH_LOOP = "CrashLoopBackOff"


@dataclass(frozen=True, slots=True)
class Component:
    """One workload of the standard install (docs/facts/kubernetes.md §12.1)."""

    name: str
    pod: str
    init: str | None
    container: str
    image: str
    port: int
    probe: bool
    node: str


def argocd_components(cluster: str = "kind") -> list[Component]:
    w1, w2, w3 = f"{cluster}-worker", f"{cluster}-worker2", f"{cluster}-worker3"
    c = Component
    return [
        c("argocd-application-controller", "argocd-application-controller-0", None,
          "argocd-application-controller", ARGOCD_IMAGE, 8082, True, w1),
        c("argocd-applicationset-controller", "argocd-applicationset-controller-58b5f8b47c-f494f",
          None, "argocd-applicationset-controller", ARGOCD_IMAGE, 7000, False, w2),
        c("argocd-dex-server", "argocd-dex-server-96bd797bf-k6f28", "copyutil", "dex",
          "ghcr.io/dexidp/dex:v2.43.1", 5556, False, w3),
        c("argocd-notifications-controller", "argocd-notifications-controller-657b5467b9-w74gg",
          None, "argocd-notifications-controller", ARGOCD_IMAGE, 9001, False, w1),
        c("argocd-redis", "argocd-redis-58b4567b8d-5jvpq", "secret-init", "redis",
          "public.ecr.aws/docker/library/redis:7.2.7-alpine", 6379, False, w2),
        c("argocd-repo-server", "argocd-repo-server-6c46b7867b-2x59w", "copyutil",
          "argocd-repo-server", ARGOCD_IMAGE, 8081, True, w3),
        c("argocd-server", "argocd-server-7b67dbdff8-2xzs9", None, "argocd-server",
          ARGOCD_IMAGE, 8080, True, w1),
    ]  # fmt: skip


_NODE_IPS = {
    "control-plane": "172.18.0.2",
    "worker": "172.18.0.3",
    "worker2": "172.18.0.4",
    "worker3": "172.18.0.5",
}


def _container_spec(name: str, image: str, port: int | None, probe: bool) -> JSON:
    spec: JSON = {
        "name": name,
        "image": image,
        "imagePullPolicy": "Always",
        "resources": {},
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": [
            {
                "name": "kube-api-access",
                "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                "readOnly": True,
            }
        ],
    }
    if port is not None:
        spec["ports"] = [{"containerPort": port, "protocol": "TCP"}]
    if probe and port is not None:
        spec["readinessProbe"] = {
            "httpGet": {"path": "/healthz", "port": port, "scheme": "HTTP"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "timeoutSeconds": 1,
            "successThreshold": 1,
            "failureThreshold": 3,
        }
    return spec


#: The kubelet's restart back-off of a crash-looping container: 10 s, doubled after
#: each crash, at most 5 min (docs/facts/kubernetes.md; kubelet's CrashLoopBackOff).
CRASH_BACKOFF_INITIAL = 10.0
CRASH_BACKOFF_MAX = 300.0


def crash_backoff(crashes: int) -> float:
    """Seconds the kubelet waits before restarting after the `crashes`-th crash."""
    return min(CRASH_BACKOFF_INITIAL * 2.0 ** max(0, crashes - 1), CRASH_BACKOFF_MAX)


def go_duration(seconds: float) -> str:
    """A duration as Go prints it in kubelet messages: 10s, 1m20s, 5m0s."""
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"


def pod_object(
    comp: Component,
    stage: Stage,
    *,
    created: float,
    now: float,
    restarts: int = 0,
    last_restart: float | None = None,
    namespace: str = NAMESPACE,
    labels: dict[str, str] | None = None,
    backoff: float = 40.0,
) -> JSON:
    """A pod of `comp` at `stage`, with statuses as the kubelet reports them."""
    node_suffix = comp.node.rsplit("-", 1)[-1]
    host_ip = _NODE_IPS.get(node_suffix, "172.18.0.3")
    pod_ip = f"10.244.{int(host_ip.rsplit('.', 1)[1]) - 2}.{int(_hex(comp.pod, 2), 16) % 200 + 10}"
    stamp = rfc3339(created)
    now_stamp = rfc3339(now)
    statefulset = comp.pod.endswith("-0")
    if statefulset:
        owner: JSON = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": comp.name}
        pod_labels = {
            "app.kubernetes.io/name": comp.name,
            "statefulset.kubernetes.io/pod-name": comp.pod,
        }
    else:
        rs = comp.pod.rsplit("-", 1)[0]
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs}
        pod_labels = {
            "app.kubernetes.io/name": comp.name,
            "pod-template-hash": rs.rsplit("-", 1)[1],
        }
    pod_labels.update(labels or {})
    owner.update(
        {"uid": _uid("owner/" + owner["name"]), "controller": True, "blockOwnerDeletion": True}
    )
    meta: JSON = {
        "name": comp.pod,
        "namespace": namespace,
        "uid": _uid(f"pod/{namespace}/{comp.pod}"),
        "creationTimestamp": stamp,
        "labels": pod_labels,
        "ownerReferences": [owner],
    }
    if not statefulset:
        meta["generateName"] = comp.pod.rsplit("-", 1)[0] + "-"
    spec: JSON = {
        "containers": [_container_spec(comp.container, comp.image, comp.port, comp.probe)],
        "dnsPolicy": "ClusterFirst",
        "enableServiceLinks": True,
        "nodeName": comp.node,
        "preemptionPolicy": "PreemptLowerPriority",
        "priority": 0,
        "restartPolicy": "Always",
        "schedulerName": "default-scheduler",
        "securityContext": {},
        "serviceAccount": comp.name,
        "serviceAccountName": comp.name,
        "terminationGracePeriodSeconds": 30,
        "tolerations": [
            {
                "key": "node.kubernetes.io/not-ready",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
            {
                "key": "node.kubernetes.io/unreachable",
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            },
        ],
        "volumes": [
            {
                "name": "kube-api-access",
                "projected": {
                    "defaultMode": 420,
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
                    ],
                },
            }
        ],
    }
    if comp.init:
        spec["initContainers"] = [_container_spec(comp.init, ARGOCD_IMAGE, None, False)]

    def cstatus(
        name: str,
        image: str,
        state: JSON,
        *,
        ready: bool,
        started: bool,
        count: int,
        last: JSON | None,
    ) -> JSON:
        digest = _hex(image, 64)
        out: JSON = {
            "name": name,
            "image": image,
            "imageID": f"{image.split(':')[0]}@sha256:{digest}"
            if started or "terminated" in state or "running" in state
            else "",
            "ready": ready,
            "restartCount": count,
            "started": started,
            "state": state,
            "lastState": {"terminated": last} if last else {},
        }
        if "waiting" not in state or last:
            out["containerID"] = "containerd://" + _hex(f"{name}/{count}", 64)
        return out

    def terminated(reason: str, code: int, at: float) -> JSON:
        return {
            "exitCode": code,
            "reason": reason,
            "startedAt": rfc3339(at - 3),
            "finishedAt": rfc3339(at),
            "containerID": "containerd://" + _hex(f"{reason}/{at}", 64),
        }

    order = list(Stage)
    reached = order.index(stage)
    init_done = reached >= order.index(Stage.POD_INITIALIZING) or (
        not comp.init and reached >= order.index(Stage.CONTAINER_CREATING)
    )
    running = stage in (Stage.STARTING, Stage.RUNNING)
    ready = stage == Stage.RUNNING
    scheduled = {
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": stamp,
    }

    def cond(kind: str, ok: bool, reason: str | None = None) -> JSON:
        c: JSON = {
            "type": kind,
            "status": "True" if ok else "False",
            "lastProbeTime": None,
            "lastTransitionTime": now_stamp,
        }
        if not ok and reason:
            c["reason"] = reason
        return c

    status: JSON = {"phase": "Pending", "qosClass": "BestEffort"}
    if stage == Stage.PENDING:
        status["conditions"] = [scheduled]
    else:
        status.update(
            {
                "hostIP": host_ip,
                "hostIPs": [{"ip": host_ip}],
                "startTime": stamp,
            }
        )
        # The sandbox (and its IP) exists once init runs or the container is up.
        sandbox = stage != Stage.CONTAINER_CREATING or bool(comp.init)
        status["conditions"] = [
            cond("PodReadyToStartContainers", sandbox),
            cond("Initialized", init_done, "ContainersNotInitialized"),
            cond("Ready", ready, "ContainersNotReady"),
            cond("ContainersReady", ready, "ContainersNotReady"),
            scheduled,
        ]
        if sandbox:
            status["podIP"] = pod_ip
            status["podIPs"] = [{"ip": pod_ip}]
        if comp.init:
            if init_done:
                init_state: JSON = {"terminated": terminated("Completed", 0, created + 4)}
            else:
                init_state = {"running": {"startedAt": rfc3339(created + 1)}}
            status["initContainerStatuses"] = [
                cstatus(
                    comp.init,
                    ARGOCD_IMAGE,
                    init_state,
                    ready=init_done,
                    started=not init_done,
                    count=0,
                    last=None,
                )
            ]
        last = (
            terminated("Error", 1, last_restart) if last_restart is not None and restarts else None
        )
        if stage in (Stage.INIT, Stage.POD_INITIALIZING):
            main_state: JSON = {"waiting": {"reason": "PodInitializing"}}
        elif stage == Stage.CONTAINER_CREATING:
            main_state = {"waiting": {"reason": "ContainerCreating"}}
        elif running:
            main_state = {
                "running": {
                    "startedAt": rfc3339(
                        last_restart + 10 if last_restart and restarts else created + 5
                    )
                }
            }
            status["phase"] = "Running"
        elif stage == Stage.ERROR:
            main_state = {"terminated": terminated("Error", 1, last_restart or now)}
            status["phase"] = "Running"
        else:  # CRASH_LOOP
            main_state = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {go_duration(backoff)} restarting failed "
                    f"container={comp.container} "
                    f"pod={comp.pod}_{namespace}({meta['uid']})",
                }
            }
            status["phase"] = "Running"
        status["containerStatuses"] = [
            cstatus(
                comp.container,
                comp.image,
                main_state,
                ready=ready,
                started=running,
                count=restarts,
                last=last,
            )
        ]
    return {"metadata": meta, "spec": spec, "status": status}


# --------------------------------------------------------------------------- applications


def application_object(
    name: str,
    *,
    sync: str,
    health: str,
    created: float,
    now: float,
    project: str = "default",
    path: str = "guestbook",
    revision: str | None = None,
    operation: str | None = "Succeeded",
    message: str | None = None,
    namespace: str = NAMESPACE,
) -> JSON:
    """An Argo CD Application with the status fields the UI reads
    (docs/facts/kubernetes.md §12.2)."""
    rev = revision or _hex("rev/" + name, 40)
    source = {
        "repoURL": "https://github.com/argoproj/argocd-example-apps.git",
        "path": path,
        "targetRevision": "HEAD",
    }
    destination = {"server": "https://kubernetes.default.svc", "namespace": name}
    status: JSON = {
        "sync": {
            "status": sync,
            "revision": rev,
            "comparedTo": {"source": source, "destination": destination},
        },
        "health": {"status": health, "lastTransitionTime": rfc3339(now)},
        "reconciledAt": rfc3339(now),
        "sourceType": "Directory",
        "summary": {"images": ["gcr.io/google-samples/gb-frontend:v5"]},
        "controllerNamespace": namespace,
        "resources": [
            {
                "version": "v1",
                "kind": "Service",
                "namespace": name,
                "name": f"{name}-ui",
                "status": sync,
                "health": {"status": "Healthy"},
            },
            {
                "group": "apps",
                "version": "v1",
                "kind": "Deployment",
                "namespace": name,
                "name": f"{name}-ui",
                "status": sync,
                "health": {"status": health},
            },
        ],
    }
    if message:
        status["health"]["message"] = message
    if operation:
        op_message = {
            "Succeeded": "successfully synced (all tasks run)",
            "Failed": "one or more synchronization tasks completed unsuccessfully",
            "Running": "waiting for healthy state of apps/Deployment/" + f"{name}-ui",
        }.get(operation, "")
        state: JSON = {
            "operation": {
                "sync": {"revision": rev, "syncStrategy": {"hook": {}}},
                "initiatedBy": {"automated": True},
                "retry": {"limit": 5},
            },
            "phase": operation,
            "message": op_message,
            "startedAt": rfc3339(now - 20),
            "syncResult": {"revision": rev, "source": source, "resources": []},
        }
        if operation != "Running":
            state["finishedAt"] = rfc3339(now - 5)
        status["operationState"] = state
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": _uid(f"app/{namespace}/{name}"),
            "creationTimestamp": rfc3339(created),
            "generation": 3,
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "project": project,
            "source": source,
            "destination": destination,
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
        "status": status,
    }


def namespace_object(name: str, created: float) -> JSON:
    return {
        "metadata": {
            "name": name,
            "uid": _uid("ns/" + name),
            "creationTimestamp": rfc3339(created),
            "labels": {"kubernetes.io/metadata.name": name},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }


def load_pods(
    count: int, *, created: float, now: float, namespace: str = NAMESPACE, cluster: str = "kind"
) -> list[JSON]:
    """`count` extra pods for scale tests: mostly Running, some crash-looping or
    still starting, spread over the workers."""
    pods = []
    workers = [f"{cluster}-worker", f"{cluster}-worker2", f"{cluster}-worker3"]
    for i in range(count):
        rs = f"load-{i // 50:04d}-{_hex(f'rs{i // 50}', 10)}"
        comp = Component(
            name=f"load-{i // 50:04d}",
            pod=f"{rs}-{_hex(f'pod{i}', 5)}",
            init="copyutil" if i % 3 == 0 else None,
            container="app",
            image="registry.example/load:1.0",
            port=8080,
            probe=i % 2 == 0,
            node=workers[i % 3],
        )
        if i % 97 == 0:
            pods.append(
                pod_object(
                    comp,
                    Stage.CRASH_LOOP,
                    created=created,
                    now=now,
                    restarts=1 + i % 7,
                    last_restart=now - 60 - i % 600,
                    namespace=namespace,
                )
            )
        elif i % 89 == 0:
            pods.append(
                pod_object(
                    comp, Stage.CONTAINER_CREATING, created=created, now=now, namespace=namespace
                )
            )
        else:
            pods.append(
                pod_object(comp, Stage.RUNNING, created=created, now=now, namespace=namespace)
            )
    return pods


def load_applications(count: int, *, created: float, now: float) -> list[JSON]:
    """`count` extra Argo CD Applications for scale benchmarks: mostly synced and
    healthy, some out of sync or degraded, as a big install looks."""
    apps = []
    for i in range(count):
        bad = i % 37 == 0
        apps.append(
            application_object(
                f"load-app-{i:05d}",
                sync="OutOfSync" if bad or i % 11 == 0 else "Synced",
                health="Degraded" if bad else "Progressing" if i % 53 == 0 else "Healthy",
                created=created,
                now=now,
                path=f"apps/load-{i % 100:02d}",
                operation="Failed" if bad else "Succeeded",
                message=f'Deployment "load-app-{i:05d}" exceeded its progress deadline'
                if bad
                else None,
            )
        )
    return apps


async def _churn(cluster: LabCluster, rate: float, clock: Callable[[], float]) -> None:
    """Change `rate` load pods a second (a restart each), round-robin, forever: the
    scale benchmark's steady stream of snapshots."""
    names = sorted(
        obj["metadata"]["name"]
        for obj in cluster.store.objects(PODS, NAMESPACE)
        if obj["metadata"]["name"].startswith("load-")
    )
    if not names or rate <= 0:
        return
    i = 0
    while True:
        await asyncio.sleep(1 / rate)
        stored = cluster.pod(names[i % len(names)])
        i += 1
        if stored is None:
            continue
        obj = json.loads(json.dumps(stored))  # the store's own object stays as it was
        for status in obj.get("status", {}).get("containerStatuses", []):
            status["restartCount"] = status.get("restartCount", 0) + 1
        obj["metadata"].pop("resourceVersion", None)
        cluster.set_object(PODS, obj)


# --------------------------------------------------------------------------- the cluster


@dataclass
class LabCluster:
    """A running lab cluster: the fake apiserver, its store and its kubeconfig."""

    api: FakeKubeAPI
    kubeconfig_path: Path
    context: str
    cluster_name: str
    workdir: Path
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def store(self) -> KubeStore:
        return self.api.store

    def set_object(self, resource: ResourceType, obj: JSON) -> JSON:
        return self.store.set(resource, obj)

    def delete_object(
        self, resource: ResourceType, name: str, namespace: str | None = None
    ) -> JSON | None:
        return self.store.delete(resource, name, namespace)

    def bump(self, steps: int = 1) -> int:
        return self.store.bump(steps)

    def pod(self, name: str, namespace: str = NAMESPACE) -> JSON | None:
        return self.store.get(PODS, name, namespace)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.api.stop()


Step = tuple[float, Callable[[], None]]


def _script(cluster: LabCluster, start: float, clock: Callable[[], float]) -> list[Step]:
    """The start-up story, in seconds from `start` at speed 1."""
    name = cluster.cluster_name
    comps = argocd_components(name)
    steps: list[Step] = []

    def put_pod(comp: Component, stage: Stage, **kw: Any) -> Callable[[], None]:
        def action() -> None:
            cluster.set_object(PODS, pod_object(comp, stage, created=start, now=clock(), **kw))

        return action

    def workers_ready() -> None:
        for node in kind_nodes(start - 40, name, workers_ready=True)[1:]:
            cluster.set_object(NODES, node)

    steps.append((1.0, workers_ready))
    for i, comp in enumerate(comps):
        t = 0.3 + 0.15 * i
        if comp.init:
            steps.append((t, put_pod(comp, Stage.INIT)))
            steps.append((t + 1.2, put_pod(comp, Stage.POD_INITIALIZING)))
        else:
            steps.append((t + 0.4, put_pod(comp, Stage.CONTAINER_CREATING)))
        if comp.probe:
            steps.append((t + 2.0, put_pod(comp, Stage.STARTING)))
        if comp.name != "argocd-repo-server":
            steps.append((t + 3.0, put_pod(comp, Stage.RUNNING)))

    def app(name_: str, sync: str, health: str, **kw: Any) -> Callable[[], None]:
        def action() -> None:
            obj = application_object(
                name_, sync=sync, health=health, created=start, now=clock(), **kw
            )
            if health == "Degraded":
                obj = drill_scenario.degrade_application(obj)
            cluster.set_object(APPLICATIONS, obj)

        return action

    steps.append((3.5, app("guestbook", "Synced", "Progressing", operation="Running")))
    steps.append((5.0, app("guestbook", "Synced", "Healthy")))
    steps.append(
        (
            4.0,
            app(
                "helm-guestbook", "OutOfSync", "Missing", path="helm-guestbook", operation="Running"
            ),
        )
    )
    steps.append(
        (
            6.0,
            app(
                "helm-guestbook",
                "OutOfSync",
                "Degraded",
                path="helm-guestbook",
                operation="Failed",
                message='Deployment "helm-guestbook" exceeded its progress deadline',
            ),
        )
    )
    steps.sort(key=lambda s: s[0])
    return steps


async def _drive(
    cluster: LabCluster, start: float, speed: float, clock: Callable[[], float]
) -> None:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for at, action in _script(cluster, start, clock):
        delay = t0 + at / speed - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        action()
    await _crash_loop(cluster, start, speed, clock)


async def _crash_loop(
    cluster: LabCluster, start: float, speed: float, clock: Callable[[], float]
) -> None:
    """The repo-server starts, fails its probe, exits with an error and backs off as
    the kubelet does: 10 s, 20 s, 40 s ... 5 min (divided by `speed`), so Events get
    a few lines a minute at first and one every 5 minutes after, not one every 9 s."""
    comp = next(
        c for c in argocd_components(cluster.cluster_name) if c.name == "argocd-repo-server"
    )
    restarts = 0
    last = start

    def put(stage: Stage, now: float, backoff: float = 40.0) -> JSON:
        return cluster.set_object(
            PODS,
            pod_object(
                comp,
                stage,
                created=start,
                now=now,
                restarts=restarts,
                last_restart=last,
                backoff=backoff,
            ),
        )

    while True:
        await asyncio.sleep(1.0 / speed)
        now = clock()
        last = now
        crashed = put(Stage.ERROR, now)
        drill_scenario.repo_server_run(cluster.api, crashed, now, crashed=True)
        restarts += 1
        backoff = crash_backoff(restarts)
        await asyncio.sleep(0.3 / speed)
        put(Stage.CRASH_LOOP, clock(), backoff)
        await asyncio.sleep(backoff / speed)
        put(Stage.STARTING, clock())


def populate_settled(
    store: KubeStore, *, now: float, cluster: str = "kind", namespace: str = NAMESPACE
) -> None:
    """The cluster as it looks after a while: everything Running except the
    repo-server, which is crash-looping; two Applications healthy, one degraded."""
    created = now - 2 * 3600
    for ns in (*KIND_NAMESPACES, namespace):
        store.set(NAMESPACES, namespace_object(ns, created))
    for node in kind_nodes(created, cluster):
        store.set(NODES, node)
    for comp in argocd_components(cluster):
        if comp.name == "argocd-repo-server":
            # Stable kubectl output: the last restart stays "12m" for half a minute.
            pod = pod_object(
                comp,
                Stage.CRASH_LOOP,
                created=created,
                now=now,
                restarts=7,
                last_restart=now - 12 * 60 - 30,
                namespace=namespace,
                backoff=crash_backoff(7),
            )
        else:
            pod = pod_object(comp, Stage.RUNNING, created=created, now=now, namespace=namespace)
        store.set(PODS, pod)
    apps = [
        application_object(
            "guestbook",
            sync="Synced",
            health="Healthy",
            created=created,
            now=now,
            namespace=namespace,
        ),
        application_object(
            "kustomize-guestbook",
            sync="Synced",
            health="Healthy",
            created=created,
            now=now,
            path="kustomize-guestbook",
            namespace=namespace,
        ),
        application_object(
            "helm-guestbook",
            sync="OutOfSync",
            health="Degraded",
            created=created,
            now=now,
            path="helm-guestbook",
            operation="Failed",
            namespace=namespace,
            message='Deployment "helm-guestbook" exceeded its progress deadline',
        ),
    ]
    for app in apps:
        store.set(APPLICATIONS, app)


# (Its keyword knobs look like lab/orchard FakeOrchard's: shape only.)
async def start_lab_cluster(
    host: str = "127.0.0.1",
    port: int = 0,
    tls: bool = True,
    workdir: Path | None = None,
    *,
    name: str = "kind",
    animate: bool = True,
    speed: float = 1.0,
    extra_pods: int = 0,
    extra_apps: int = 0,
    churn: float = 0.0,
    bookmark_interval: float | None = 5.0,
    history_size: int = 1000,
    clock: Callable[[], float] = time.time,
) -> LabCluster:
    """Start the fake apiserver with Kind-like content and write its kubeconfig.

    `animate`: the seven Argo CD pods start from scratch and go through their
    states over a few seconds (divided by `speed`), then the repo-server keeps
    crash-looping; without it the cluster is settled and only tests change it.
    `extra_pods`, `extra_apps`: that many more pods and Applications in the Argo CD
    namespace; `churn`: that many of those pods restart a second (benchmarks)."""
    workdir = workdir or Path(tempfile.mkdtemp(prefix="megatui-lab-kube-"))
    workdir.mkdir(parents=True, exist_ok=True)
    store = KubeStore(history_size=history_size, clock=clock)
    certs = generate_certs() if tls else None
    ssl_ctx = server_ssl_context(certs, workdir / "pki") if certs else None
    api = FakeKubeAPI(store, ssl_context=ssl_ctx, clock=clock, bookmark_interval=bookmark_interval)
    now = clock()
    if animate:
        created = now
        for ns in (*KIND_NAMESPACES, NAMESPACE):
            store.set(NAMESPACES, namespace_object(ns, now - 60))
        for node in kind_nodes(now - 40, name, workers_ready=False):
            store.set(NODES, node)
        for comp in argocd_components(name):
            store.set(PODS, pod_object(comp, Stage.PENDING, created=created, now=now))
        store.set(
            APPLICATIONS,
            application_object(
                "kustomize-guestbook",
                sync="Synced",
                health="Healthy",
                created=now - 3600,
                now=now,
                path="kustomize-guestbook",
            ),
        )
        drill_scenario.seed_orchard(api, now)
    else:
        populate_settled(store, now=now, cluster=name)
        drill_scenario.seed(api, now)
    for pod in load_pods(extra_pods, created=now - 3600, now=now, cluster=name):
        store.set(PODS, pod)
    for app in load_applications(extra_apps, created=now - 3600, now=now):
        store.set(APPLICATIONS, app)
    url = await api.start(host, port)
    context = f"kind-{name}"
    kubeconfig = write_kubeconfig(
        workdir / "kubeconfig", kubeconfig_dict(url, cluster=name, certs=certs)
    )
    cluster = LabCluster(
        api=api, kubeconfig_path=kubeconfig, context=context, cluster_name=name, workdir=workdir
    )
    if animate:
        cluster._tasks.append(asyncio.create_task(_drive(cluster, now, speed, clock)))
    if churn > 0:
        cluster._tasks.append(asyncio.create_task(_churn(cluster, churn, clock)))
    return cluster


# --------------------------------------------------------------------------- CLI


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m megatui.lab.cluster",
        description="Serve the lab's Kind-like Kubernetes API until stdin closes or a signal.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--http", action="store_true", help="plain http instead of mutual TLS")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--pods", type=int, default=0, help="extra pods in the argocd namespace")
    parser.add_argument("--apps", type=int, default=0, help="extra Applications (benchmarks)")
    parser.add_argument("--churn", type=float, default=0.0, help="extra pods restarted a second")
    parser.add_argument("--settled", action="store_true", help="no start-up animation")
    parser.add_argument("--speed", type=float, default=1.0)
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace, ready: Callable[[JSON], Awaitable[None] | None]) -> None:
    cluster = await start_lab_cluster(
        args.host,
        args.port,
        tls=not args.http,
        workdir=args.workdir,
        animate=not args.settled,
        speed=args.speed,
        extra_pods=args.pods,
        extra_apps=args.apps,
        churn=args.churn,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # stdin closing (the parent went away) also ends the lab.
    stdin = sys.stdin.fileno()

    def on_stdin() -> None:
        if not os.read(stdin, 65536):
            stop.set()

    loop.add_reader(stdin, on_stdin)
    info = {
        "url": cluster.url,
        "kubeconfig": str(cluster.kubeconfig_path),
        "context": cluster.context,
    }
    result = ready(info)
    if result is not None:
        await result
    try:
        await stop.wait()
    finally:
        loop.remove_reader(stdin)
        await cluster.stop()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)

    def ready(info: JSON) -> None:
        print(json.dumps(info), flush=True)

    asyncio.run(_serve(args, ready))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
