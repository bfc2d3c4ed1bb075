"""A healthy Megalopolis for `megatui doctor`, and ways to break one part of it.

Load with `pytest_plugins = ["docker_fixtures", "doctor_fixtures"]` in a test module.

The `doctor_platform` fixture gives a platform built once per module and put back
to healthy before every test (real containers cost most of a second each). It has:

* Tart: a lab with fast VM timelines; `runner` and `builder` running, `spare` and
  `slowpoke` stopped (`slowpoke` never opens its SSH port in time, for timeouts);
* Kubernetes: the lab's fake API server (mutual TLS, settled), made healthy: every
  Argo CD pod Running and Ready, every Application Synced and Healthy. Its store is
  only touched on the lab's own event loop thread (`DoctorPlatform.in_cluster`);
* Docker: the REAL dockerd of `docker_fixtures`, with a `kind` network and four
  busybox containers named and labelled like the Kind cluster's nodes;
* a megatui config file pointing at all of them, with fast pacing.

Each `break_*` method breaks exactly one thing, as a user's setup would be broken;
`DoctorPlatform.make_healthy` undoes any of them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from docker_fixtures import DockerEngine, free_loopback_port

from megatui.lab import drill_scenario
from megatui.lab.cluster import (
    NAMESPACE,
    LabCluster,
    Stage,
    application_object,
    argocd_components,
    namespace_object,
    pod_object,
    start_lab_cluster,
)
from megatui.lab.drill_scenario import ORCHARD_NAMESPACE
from megatui.lab.kube_api import APPLICATIONS, EVENTS, NAMESPACES, PODS
from megatui.lab.tartlab import LabVMSpec, TartLab, create_tart_lab

T = TypeVar("T")

#: VM timelines are seconds after `tart run`: IP, then SSH port, then a working login.
VM_SPECS: tuple[LabVMSpec, ...] = (
    LabVMSpec(
        "runner", initial="running", os="linux", ip_after=0.2, port_after=0.4, login_after=0.6
    ),
    LabVMSpec("builder", initial="running", ip_after=0.2, port_after=0.4, login_after=0.6),
    # Stopped VMs are fine for doctor: only running ones must become ready.
    LabVMSpec(
        "spare", initial="stopped", os="linux", ip_after=0.3, port_after=1.5, login_after=2.5
    ),
    # Started by tests that need a VM which is not ready within --timeout.
    LabVMSpec(
        "slowpoke", initial="stopped", os="linux", ip_after=0.2, port_after=60, login_after=60
    ),
)

#: The Kind cluster: container name -> role (names as `kind create cluster` gives them).
KIND_NODES = {
    "kind-control-plane": "control-plane",
    "kind-worker": "worker",
    "kind-worker2": "worker",
    "kind-worker3": "worker",
}

APP_NAMES = ("guestbook", "kustomize-guestbook", "helm-guestbook")

#: How long one doctor run may take at most before the test fails.
RUN_TIMEOUT = 90.0


class LoopThread:
    """An asyncio loop in a thread, for the lab's API server while the test blocks on
    a megatui subprocess."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


@dataclass
class DoctorRun:
    """One `megatui doctor` process: exit code, output, and the parsed JSON and JUnit."""

    returncode: int
    stdout: str
    stderr: str
    junit_path: Path | None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def checks(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.data["checks"]}

    def with_status(self, status: str) -> set[str]:
        return {name for name, c in self.checks.items() if c["status"] == status}

    def junit(self) -> ET.Element:
        assert self.junit_path is not None
        return ET.parse(self.junit_path).getroot()


@dataclass
class DoctorPlatform:
    root: Path
    tart: TartLab
    cluster: LabCluster
    engine: DockerEngine
    lab_loop: LoopThread
    config: Path
    node_containers: dict[str, Any]
    runs: int = 0

    # ---- running doctor ---------------------------------------------------------

    def doctor(
        self,
        *args: str,
        config: Path | None = None,
        json_out: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> DoctorRun:
        """`python -m megatui --config CONFIG doctor [--json --junit F] ARGS`."""
        self.runs += 1
        junit = self.root / f"junit-{self.runs}.xml"
        argv = [
            sys.executable,
            "-m",
            "megatui",
            "--config",
            str(config or self.config),
            "doctor",
            *args,
        ]
        if json_out:
            argv += ["--json", "--junit", str(junit)]
        if env is None:
            env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "DOCKER_HOST")}
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=RUN_TIMEOUT, env=env, check=False
        )
        run = DoctorRun(
            result.returncode, result.stdout, result.stderr, junit if json_out else None
        )
        if json_out and result.returncode in (0, 1):
            try:
                run.data = json.loads(result.stdout)
            except ValueError:
                pytest.fail(f"doctor printed no JSON:\n{result.stdout}\n{result.stderr}")
        return run

    def write_config(self, name: str, **doctor: Any) -> Path:
        """The platform's config with [doctor] keys replaced, as a second file."""
        text = self.config.read_text()
        head, _, _old = text.partition("\n[doctor]\n")
        lines = [f"{key} = {json.dumps(value)}" for key, value in doctor.items()]
        path = self.root / name
        path.write_text(head + "\n[doctor]\n" + "\n".join(lines) + "\n")
        return path

    # ---- the cluster, on its own loop ----------------------------------------------

    def in_cluster(self, action: Callable[[LabCluster], T]) -> T:
        async def run() -> T:
            return action(self.cluster)

        return self.lab_loop.call(run())

    # ---- back to healthy, before every test -------------------------------------------

    def make_healthy(self) -> None:
        """Undo whatever a test broke (idempotent; cheap when nothing is broken)."""
        self.in_cluster(_make_cluster_healthy)
        self._make_docker_healthy()
        for spec in VM_SPECS:
            self.tart.set_reject_logins(spec.name, False)
            running = self.tart.run_pid(spec.name) is not None
            if running and spec.initial == "stopped":
                subprocess.run(
                    [str(self.tart.tart_path), "stop", spec.name, "--timeout", "0"],
                    check=True,
                    capture_output=True,
                    timeout=30,
                )
            elif not running and spec.initial == "running":
                self.tart.start(spec.name)

    def _make_docker_healthy(self) -> None:
        client = self.engine.client
        networks = {n.name: n for n in client.networks.list()}
        for container in self.node_containers.values():
            container.reload()
            if container.status != "running":
                container.start()
        kind = networks.get("kind") or self.engine.create_network("kind")
        kind.reload()  # lists running containers only: hence after starting them
        attached = set(kind.attrs.get("Containers") or {})
        for container in self.node_containers.values():
            if container.id not in attached:
                kind.connect(container)
        for name, network in networks.items():
            if name not in ("kind", "bridge", "host", "none"):
                for container in self.node_containers.values():
                    network.disconnect(container, force=True)
                network.remove()

    # ---- one broken thing each --------------------------------------------------

    def break_kind_network(self) -> None:
        """The nodes sit on `kind-old`; no network is named exactly `kind`."""
        old = self.engine.create_network("kind-old")
        kind = self.engine.client.networks.get("kind")
        for container in self.node_containers.values():
            old.connect(container)
            kind.disconnect(container, force=True)
        kind.remove()

    def break_node_container(self, name: str = "kind-worker3") -> None:
        container = self.node_containers[name]
        container.kill()
        container.wait(timeout=30)

    def break_pod(self, component: str = "argocd-repo-server") -> None:
        """One Argo CD pod crash-loops (the others stay Running and Ready)."""

        def crash(cluster: LabCluster) -> None:
            now = time.time()
            comp = next(c for c in argocd_components() if c.name == component)
            cluster.set_object(
                PODS,
                pod_object(
                    comp,
                    Stage.CRASH_LOOP,
                    created=now - 7200,
                    now=now,
                    restarts=5,
                    last_restart=now - 90,
                ),
            )

        self.in_cluster(crash)

    def break_application(self, name: str = "helm-guestbook") -> None:
        def degrade(cluster: LabCluster) -> None:
            now = time.time()
            cluster.set_object(
                APPLICATIONS,
                application_object(
                    name,
                    sync="OutOfSync",
                    health="Degraded",
                    created=now - 7200,
                    now=now,
                    path=name,
                    operation="Failed",
                    message=f'Deployment "{name}" exceeded its progress deadline',
                ),
            )

        self.in_cluster(degrade)

    def break_orchard_pod(self) -> None:
        """The platform's historic failure: the Orchard controller's Pod stuck in
        ContainerCreating on its docker.sock hostPath volume (the drill scenario's)."""
        self.in_cluster(lambda cluster: drill_scenario.seed_orchard(cluster.api, time.time()))

    def break_crd(self) -> None:
        self.in_cluster(lambda cluster: cluster.api.drop_crd())

    def break_namespace(self) -> None:
        """Argo CD uninstalled: its namespace, pods and Applications are gone."""

        def uninstall(cluster: LabCluster) -> None:
            for pod in cluster.store.objects(PODS, NAMESPACE):
                cluster.delete_object(PODS, pod["metadata"]["name"], NAMESPACE)
            for app in cluster.store.objects(APPLICATIONS, NAMESPACE):
                cluster.delete_object(APPLICATIONS, app["metadata"]["name"], NAMESPACE)
            cluster.delete_object(NAMESPACES, NAMESPACE)

        self.in_cluster(uninstall)

    def unreachable_kubeconfig(self) -> Path:
        """The kubeconfig with its server moved to a port nothing listens on: what a
        user has once the Kind cluster's API server is down."""
        dead = f"https://127.0.0.1:{free_loopback_port()}"
        text = self.cluster.kubeconfig_path.read_text()
        assert self.cluster.url in text
        path = self.root / "kubeconfig-api-down"
        path.write_text(text.replace(self.cluster.url, dead))
        return path

    def break_login(self, vm: str = "builder") -> None:
        self.tart.set_reject_logins(vm, True)

    # ---- other changes -------------------------------------------------------------

    def start_vm(self, name: str) -> None:
        self.tart.start(name)


def _make_cluster_healthy(cluster: LabCluster) -> None:
    """Every Argo CD pod Running and Ready, every Application Synced and Healthy. The
    settled lab has a crash-looping repo-server and a degraded app (the demo shows
    them); tests break more."""
    now = time.time()
    created = now - 2 * 3600
    cluster.api.install_crd()
    if cluster.store.get(NAMESPACES, NAMESPACE) is None:
        cluster.set_object(NAMESPACES, namespace_object(NAMESPACE, created))
    for comp in argocd_components():
        healthy = pod_object(comp, Stage.RUNNING, created=created, now=now)
        current = cluster.pod(comp.pod)
        if current is None or current["status"] != healthy["status"]:
            cluster.set_object(PODS, healthy)
    for name in APP_NAMES:
        app = cluster.store.get(APPLICATIONS, name, NAMESPACE)
        status = app["status"] if app else {}
        if (status.get("sync") or {}).get("status") != "Synced" or (status.get("health") or {}).get(
            "status"
        ) != "Healthy":
            path = "guestbook" if name == "guestbook" else name
            cluster.set_object(
                APPLICATIONS,
                application_object(
                    name, sync="Synced", health="Healthy", created=created, now=now, path=path
                ),
            )
    for resource in (PODS, EVENTS):  # the Orchard controller's stuck Pod, if a test put it
        for obj in cluster.store.objects(resource, ORCHARD_NAMESPACE):
            cluster.delete_object(resource, obj["metadata"]["name"], ORCHARD_NAMESPACE)


def _config_toml(tart: TartLab, cluster: LabCluster, docker_url: str) -> str:
    q = json.dumps  # a JSON string is a valid TOML basic string
    text = tart.megatui_config_toml()
    text = text.replace(
        "[tart]\n", "[tart]\nboot_poll_interval = 0.2\npoll_interval = 1.0\ntimeout = 10\n", 1
    )
    text = text.replace("[ssh]\n", "[ssh]\nprobe_interval = 0.1\nconnect_timeout = 5\n", 1)
    return (
        text
        + "\n[kube]\n"
        + f"kubeconfig = {q(str(cluster.kubeconfig_path))}\n"
        + f"context = {q(cluster.context)}\n"
        + "request_timeout = 5\n"
        + "\n[docker]\n"
        + f"host = {q(docker_url)}\n"
        + "poll_interval = 1\n"
        + "timeout = 5\n"
        + "\n[doctor]\n"
        + "expected_nodes = 4\n"
        + f"vms = {q([s.name for s in VM_SPECS])}\n"
        + "timeout = 20\n"
    )


@pytest.fixture(scope="module")
def _doctor_platform_once(
    docker_session_engine: DockerEngine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DoctorPlatform]:
    """Built once per module (real containers cost most of a second each); every test
    gets it back healthy through `doctor_platform`."""
    root = tmp_path_factory.mktemp("doctor-platform")
    engine = docker_session_engine
    engine.reset()
    tart = create_tart_lab(root / "tart", VM_SPECS, ip_retry_interval=0.1)
    lab_loop = LoopThread()
    cluster: LabCluster | None = None
    try:
        tart.start_running()
        cluster = lab_loop.call(start_lab_cluster(tls=True, animate=False, workdir=root / "kube"))
        engine.create_network("kind")
        containers = {
            name: engine.run_node(name, cluster="kind", role=role)
            for name, role in KIND_NODES.items()
        }
        platform = DoctorPlatform(
            root=root,
            tart=tart,
            cluster=cluster,
            engine=engine,
            lab_loop=lab_loop,
            config=root / "megatui.toml",
            node_containers=containers,
        )
        platform.config.write_text(_config_toml(tart, cluster, engine.url))
        yield platform
    finally:
        try:
            tart.stop_all()
        finally:
            if cluster is not None:
                lab_loop.call(cluster.stop())
            lab_loop.close()
            engine.reset()


@pytest.fixture
def doctor_platform(_doctor_platform_once: DoctorPlatform) -> DoctorPlatform:
    """The healthy platform; what the test breaks is put right before the next one."""
    _doctor_platform_once.make_healthy()
    return _doctor_platform_once


def failing(run: DoctorRun) -> set[str]:
    return run.with_status("fail")
