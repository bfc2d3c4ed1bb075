"""Debian's kubectl against the lab's fake API server over mutual TLS.

kubectl is the reference client: if it discovers the resources, lists, watches and
prints what the fake serves, the fake speaks the protocol. Its columns come from
the fake's server-side printing (an independent transcription of the apiserver's
printers), and are compared with megatui's own kube_status rows for the same objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import require_binary
from k8s_objects import container_status, terminated, waiting

from megatui.lab.cluster import LabCluster, start_lab_cluster
from megatui.lab.kube_api import APPLICATIONS, NODES, PODS
from megatui.sources.kube_status import age, application_row, node_row, pod_row


@pytest.fixture
def kubectl() -> str:
    return require_binary("kubectl", "/usr/bin/kubectl")


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[LabCluster]:
    cluster = await start_lab_cluster(tls=True, workdir=tmp_path / "lab", animate=False)
    try:
        yield cluster
    finally:
        await cluster.stop()


def _argv(kubectl: str, lab: LabCluster, *args: str) -> list[str]:
    return [
        kubectl,
        "--kubeconfig",
        str(lab.kubeconfig_path),
        "--cache-dir",
        str(lab.workdir / "kube-cache"),
        "--request-timeout",
        "10s",
        *args,
    ]


async def run_kubectl(kubectl: str, lab: LabCluster, *args: str) -> str:
    """kubectl as a child of this event loop (the fake server runs in it too)."""
    proc = await asyncio.create_subprocess_exec(
        *_argv(kubectl, lab, *args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "HOME": str(lab.workdir)},
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(30):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    return out.decode()


def table(text: str) -> list[dict[str, str]]:
    """kubectl's human table: columns are separated by two or more spaces."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = re.split(r"\s{2,}", lines[0].strip())
    return [dict(zip(header, re.split(r"\s{2,}", line.strip()), strict=True)) for line in lines[1:]]


async def test_get_nodes_matches_node_row(kubectl: str, lab: LabCluster) -> None:
    rows = table(await run_kubectl(kubectl, lab, "get", "nodes"))
    now = time.time()
    expected = []
    for obj in lab.store.objects(NODES):
        node = node_row(obj)
        expected.append(
            {
                "NAME": node.name,
                "STATUS": node.status,
                "ROLES": node.roles,
                "AGE": age(node.created, now),
                "VERSION": node.version,
            }
        )
    assert rows == expected
    assert [r["NAME"] for r in rows] == [
        "kind-control-plane",
        "kind-worker",
        "kind-worker2",
        "kind-worker3",
    ]


async def test_get_pods_matches_pod_row(kubectl: str, lab: LabCluster) -> None:
    rows = table(await run_kubectl(kubectl, lab, "get", "pods", "-n", "argocd"))
    now = time.time()
    expected = []
    for obj in lab.store.objects(PODS, "argocd"):
        pod = pod_row(obj, now)
        expected.append(
            {
                "NAME": pod.name,
                "READY": pod.ready,
                "STATUS": pod.status,
                "RESTARTS": pod.restarts,
                "AGE": age(pod.created, now),
            }
        )
    assert rows == expected
    statuses = {r["STATUS"] for r in rows}
    assert statuses == {"Running", "CrashLoopBackOff"}
    assert any(re.fullmatch(r"7 \(12m ago\)", r["RESTARTS"]) for r in rows)


async def test_get_pods_in_every_state_matches_pod_row(kubectl: str, lab: LabCluster) -> None:
    """The start-up states, a failed init container and a terminating pod: the fake's
    printer and kube_status must agree on each."""
    from megatui.lab.cluster import Stage, argocd_components, pod_object

    now = time.time()
    comps = argocd_components()
    dex = next(c for c in comps if c.name == "argocd-dex-server")
    server = next(c for c in comps if c.name == "argocd-server")
    for i, stage in enumerate(Stage):
        for comp in (dex, server):
            # Restarts 12m30s ago: both sides print "12m" however long kubectl takes.
            obj = pod_object(
                comp, stage, created=now - 300, now=now, restarts=i, last_restart=now - 750
            )
            obj["metadata"]["name"] = f"{comp.name}-{stage.name.lower().replace('_', '-')}"
            lab.set_object(PODS, obj)
    failed_init = pod_object(dex, Stage.INIT, created=now - 300, now=now)
    failed_init["metadata"]["name"] = "dex-init-failed"
    failed_init["status"]["initContainerStatuses"][0].update(
        container_status("copyutil", waiting("CrashLoopBackOff"), restart_count=2,
                         last_state=terminated(1, "Error", finished_at=now - 750))
    )  # fmt: skip
    lab.set_object(PODS, failed_init)
    going = pod_object(server, Stage.RUNNING, created=now - 300, now=now)
    going["metadata"]["name"] = "server-terminating"
    going["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    lab.set_object(PODS, going)

    rows = table(await run_kubectl(kubectl, lab, "get", "pods", "-n", "argocd"))
    now = time.time()
    by_name = {r["NAME"]: r for r in rows}
    for obj in lab.store.objects(PODS, "argocd"):
        pod = pod_row(obj, now)
        got = by_name[pod.name]
        assert (got["READY"], got["STATUS"], got["RESTARTS"]) == (
            pod.ready,
            pod.status,
            pod.restarts,
        ), pod.name
    shown = {r["STATUS"] for r in rows}
    assert {"Pending", "Init:0/1", "PodInitializing", "ContainerCreating", "Error"} <= shown
    assert {"Init:CrashLoopBackOff", "Terminating", "CrashLoopBackOff", "Running"} <= shown


async def test_get_applications_matches_application_row(kubectl: str, lab: LabCluster) -> None:
    rows = table(await run_kubectl(kubectl, lab, "get", "applications.argoproj.io", "-n", "argocd"))
    expected = []
    for obj in lab.store.objects(APPLICATIONS, "argocd"):
        app = application_row(obj)
        expected.append({"NAME": app.name, "SYNC STATUS": app.sync, "HEALTH STATUS": app.health})
    assert rows == expected
    assert ("OutOfSync", "Degraded") in {(r["SYNC STATUS"], r["HEALTH STATUS"]) for r in rows}
    # The short name from discovery works too.
    assert table(await run_kubectl(kubectl, lab, "get", "apps", "-n", "argocd")) == rows


async def test_a_missing_crd_is_what_kubectl_reports_too(kubectl: str, lab: LabCluster) -> None:
    lab.api.drop_crd()
    proc = await asyncio.create_subprocess_exec(
        *_argv(kubectl, lab, "get", "applications.argoproj.io", "-n", "argocd"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "HOME": str(lab.workdir)},
        start_new_session=True,
    )
    async with asyncio.timeout(30):
        _out, err = await proc.communicate()
    assert proc.returncode == 1
    assert 'the server doesn\'t have a resource type "applications"' in err.decode()


@contextlib.asynccontextmanager
async def kubectl_watch(kubectl: str, lab: LabCluster) -> AsyncIterator[asyncio.StreamReader]:
    proc = await asyncio.create_subprocess_exec(
        *_argv(kubectl, lab, "get", "pods", "-n", "argocd", "--watch"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HOME": str(lab.workdir)},
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout
    finally:
        # Its own session: the whole group goes, nothing is left behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)


async def test_get_pods_watch_shows_changes_as_they_happen(kubectl: str, lab: LabCluster) -> None:
    async with kubectl_watch(kubectl, lab) as out:
        async with asyncio.timeout(20):
            header = (await out.readline()).decode()
            assert header.split()[:3] == ["NAME", "READY", "STATUS"]
            first = [(await out.readline()).decode() for _ in range(7)]
            assert sum("Running" in line for line in first) == 6
            await lab.api.wait_for(lambda: lab.api.watch_count(PODS) == 1, timeout=20)

            obj = lab.pod("argocd-server-7b67dbdff8-2xzs9")
            assert obj is not None
            obj["status"]["containerStatuses"][0].update(
                {"ready": False, "state": waiting("CrashLoopBackOff"), "restartCount": 1,
                 "lastState": terminated(1, "Error", finished_at=time.time() - 5)}
            )  # fmt: skip
            lab.set_object(PODS, obj)
            line = (await out.readline()).decode().split()
        assert line[:4] == ["argocd-server-7b67dbdff8-2xzs9", "0/1", "CrashLoopBackOff", "1"]
        watch = lab.api.calls(PODS, watch=True)[-1]
        assert watch.query.get("resourceVersion")  # resumed from its list, not from zero
