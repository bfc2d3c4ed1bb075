"""What the lab shows when one looks inside: events, logs and Application detail.

* the repo-server's crash loop leaves kubelet events (`BackOff`, `Unhealthy`,
  `Started`) and a log per run ending in its fatal line;
* the platform's historic failure: the Orchard controller Pod in namespace
  `orchard`, stuck in ContainerCreating for two days because its hostPath
  volume `docker-sock` is not a socket (a `FailedMount` event repeated ~1,400 times);
* the degraded Application carries a `SyncError` condition, a failed operation with
  per-resource results, and a resource tree with a Degraded Deployment.

Strings are the kubelet's and Argo CD's (kubernetes-drilldown.md §4, §6).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from megatui.lab.kube_api import APPLICATIONS, EVENTS, JSON, NAMESPACES, PODS, rfc3339
from megatui.lab.kube_events import EventRecorder

if TYPE_CHECKING:
    from megatui.lab.kube_api import FakeKubeAPI

ORCHARD_NAMESPACE = "orchard"
ORCHARD_POD = "orchard-controller-5d7c8f9b6d-q4x7m"
DOCKER_SOCK_MOUNT = (
    'MountVolume.SetUp failed for volume "docker-sock" : '
    "hostPath type check failed: /var/run/docker.sock is not a socket file"
)

_REPO_SERVER_LOG = [
    'time="{t}" level=info msg="ArgoCD Repository Server is starting" built="2025-09-05T18:10:24Z" '
    "commit=1b5bc2b version=v3.1.5+1b5bc2b",
    'time="{t}" level=info msg="Generating self-signed gRPC TLS certificate for this session"',
    'time="{t}" level=info msg="Initializing GnuPG keyring at /app/config/gpg/keys"',
    'time="{t}" level=fatal msg="Failed to initialize GnuPG keyring: '
    'open /app/config/gpg/source: permission denied"',
]


def _recorder(api: FakeKubeAPI) -> EventRecorder:
    rec = getattr(api, "_drill_recorder", None)
    if rec is None:
        rec = EventRecorder(api.store)
        api._drill_recorder = rec  # type: ignore[attr-defined]
    return rec


def repo_server_run(api: FakeKubeAPI, pod: JSON, now: float, *, crashed: bool) -> None:
    """One run of the repo-server: its log lines and the kubelet's events."""
    meta = pod["metadata"]
    ns, name = meta["namespace"], meta["name"]
    container = pod["spec"]["containers"][0]["name"]
    book = api.ext.logs
    book.start_run(ns, name, container)
    for i, line in enumerate(_REPO_SERVER_LOG):
        at = now - 3 + i * 0.5
        book.write(ns, name, container, line.format(t=rfc3339(at)), at=at)
    rec = _recorder(api)
    rec.kubelet(
        pod,
        "Started",
        f"Started container {container}",
        now=now,
        type_="Normal",
        container=container,
    )
    if crashed:
        rec.kubelet(
            pod,
            "Unhealthy",
            "Readiness probe failed: HTTP probe failed with statuscode: 503",
            now=now,
            container=container,
        )
        rec.kubelet(
            pod,
            "BackOff",
            f"Back-off restarting failed container {container} in pod {name}_{ns}({meta['uid']})",
            now=now,
            container=container,
        )


def running_logs(api: FakeKubeAPI, pod: JSON, now: float) -> None:
    """A few quiet lines for a healthy pod."""
    meta = pod["metadata"]
    container = pod["spec"]["containers"][0]["name"]
    book = api.ext.logs
    if book.runs(meta["namespace"], meta["name"], container):
        return
    book.start_run(meta["namespace"], meta["name"], container)
    for i in range(5):
        book.write(
            meta["namespace"],
            meta["name"],
            container,
            f'time="{rfc3339(now - 600 + i * 60)}" level=info msg="Alloc=14123 TotalAlloc=20 '
            f'Sys=29285 NumGC={i + 3} Goroutines=42"',
            at=now - 600 + i * 60,
        )


def orchard_controller(now: float) -> JSON:
    """The Orchard controller Pod as it sat for two days: ContainerCreating."""
    created = now - 2 * 86400 - 3600
    uid = "4b1f0c3e-6a8d-4f5e-9b7a-2c1d0e9f8a7b"
    return {
        "metadata": {
            "name": ORCHARD_POD,
            "namespace": ORCHARD_NAMESPACE,
            "uid": uid,
            "creationTimestamp": rfc3339(created),
            "labels": {"app.kubernetes.io/name": "orchard-controller"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "ReplicaSet",
                    "name": "orchard-controller-5d7c8f9b6d",
                    "uid": "9e0c6f3a-1b2d-4c5e-8f7a-6b5c4d3e2f1a",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "nodeName": "kind-worker",
            "containers": [
                {
                    "name": "orchard-controller",
                    "image": "ghcr.io/cirruslabs/orchard:0.34.0",
                    "args": ["controller", "run"],
                    "ports": [{"containerPort": 6120, "protocol": "TCP"}],
                    "volumeMounts": [{"name": "docker-sock", "mountPath": "/var/run/docker.sock"}],
                }
            ],
            "volumes": [
                {
                    "name": "docker-sock",
                    "hostPath": {"path": "/var/run/docker.sock", "type": "Socket"},
                },
                {
                    "name": "kube-api-access",
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
                        ],
                    },
                },
            ],
            "restartPolicy": "Always",
        },
        "status": {
            "phase": "Pending",
            "qosClass": "BestEffort",
            "hostIP": "172.18.0.3",
            "startTime": rfc3339(created + 1),
            "conditions": [
                {
                    "type": "PodReadyToStartContainers",
                    "status": "False",
                    "lastProbeTime": None,
                    "lastTransitionTime": rfc3339(created + 1),
                },
                {
                    "type": "Initialized",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": rfc3339(created + 1),
                },
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "ContainersNotReady",
                    "message": "containers with unready status: [orchard-controller]",
                    "lastProbeTime": None,
                    "lastTransitionTime": rfc3339(created + 1),
                },
                {
                    "type": "PodScheduled",
                    "status": "True",
                    "lastProbeTime": None,
                    "lastTransitionTime": rfc3339(created),
                },
            ],
            "containerStatuses": [
                {
                    "name": "orchard-controller",
                    "image": "ghcr.io/cirruslabs/orchard:0.34.0",
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": "ContainerCreating"}},
                    "lastState": {},
                }
            ],
        },
    }


def seed_orchard(api: FakeKubeAPI, now: float) -> JSON:
    """The historic failure with its events: Scheduled once, FailedMount ~1,400 times."""
    store = api.store
    store.set(
        NAMESPACES,
        {
            "metadata": {
                "name": ORCHARD_NAMESPACE,
                "labels": {"kubernetes.io/metadata.name": ORCHARD_NAMESPACE},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        },
    )
    pod = store.set(PODS, orchard_controller(now))
    created = now - 2 * 86400 - 3600
    rec = _recorder(api)
    rec.scheduler(
        pod,
        "Scheduled",
        f"Successfully assigned {ORCHARD_NAMESPACE}/{ORCHARD_POD} to kind-worker",
        now=created,
        action="Binding",
        type_="Normal",
    )
    event = rec.kubelet(pod, "FailedMount", DOCKER_SOCK_MOUNT, now=created + 2)
    # Two days of retries every ~2 minutes, folded into one object as the kubelet does.
    event = json.loads(json.dumps(event))
    event["count"] = 1398
    event["lastTimestamp"] = rfc3339(now - 75)
    store.set(EVENTS, event)
    return pod


def degrade_application(app: JSON) -> JSON:
    """A failed sync with its results, a SyncError condition, a Degraded Deployment."""
    obj: JSON = json.loads(json.dumps(app))
    status = obj.setdefault("status", {})
    name = obj["metadata"]["name"]
    dest = (obj.get("spec") or {}).get("destination", {}).get("namespace", name)
    status["conditions"] = [
        {
            "type": "SyncError",
            "message": f"Failed sync attempt to {status.get('sync', {}).get('revision', '')[:7]}: "
            "one or more synchronization tasks completed unsuccessfully (retried 5 times).",
            "lastTransitionTime": status.get("reconciledAt"),
        }
    ]
    status["resources"] = [
        {
            "version": "v1",
            "kind": "Service",
            "namespace": dest,
            "name": f"{name}-ui",
            "status": "Synced",
            "health": {"status": "Healthy"},
        },
        {
            "group": "apps",
            "version": "v1",
            "kind": "Deployment",
            "namespace": dest,
            "name": f"{name}-ui",
            "status": "OutOfSync",
            "health": {
                "status": "Degraded",
                "message": f'Deployment "{name}-ui" exceeded its progress deadline',
            },
        },
        {
            "version": "v1",
            "kind": "Pod",
            "namespace": "argocd",
            "name": "argocd-repo-server-6c46b7867b-2x59w",
            "status": "Synced",
            "health": {"status": "Degraded", "message": "back-off restarting failed container"},
        },
    ]
    op = status.get("operationState")
    if isinstance(op, dict):
        op["message"] = (
            "one or more synchronization tasks completed unsuccessfully, reason: "
            f'Deployment.apps "{name}-ui" is invalid: spec.template.spec.containers[0].image: '
            "Required value (retried 5 times)."
        )
        op["retryCount"] = 5
        op.setdefault("syncResult", {})["resources"] = [
            {
                "group": "",
                "version": "v1",
                "kind": "Service",
                "namespace": dest,
                "name": f"{name}-ui",
                "status": "Synced",
                "message": f"service/{name}-ui unchanged",
                "syncPhase": "Sync",
            },
            {
                "group": "apps",
                "version": "v1",
                "kind": "Deployment",
                "namespace": dest,
                "name": f"{name}-ui",
                "status": "SyncFailed",
                "message": f'Deployment.apps "{name}-ui" is invalid: '
                "spec.template.spec.containers[0].image: Required value",
                "syncPhase": "Sync",
            },
        ]
    return obj


def seed(api: FakeKubeAPI, now: float, namespace: str = "argocd") -> None:
    """Everything above, over a store that already holds the settled Argo CD pods."""
    for pod in api.store.objects(PODS, namespace):
        name = pod["metadata"]["name"]
        if name.startswith("argocd-repo-server"):
            for k in range(2):
                repo_server_run(api, pod, now - 900 + k * 300, crashed=True)
        else:
            running_logs(api, pod, now)
    seed_orchard(api, now)
    for app in api.store.objects(APPLICATIONS, namespace):
        if (app.get("status") or {}).get("health", {}).get("status") == "Degraded":
            api.store.set(APPLICATIONS, degrade_application(app))
