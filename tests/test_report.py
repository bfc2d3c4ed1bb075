from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from megatui import report
from megatui.model import (
    VM,
    Application,
    DockerStatus,
    KindCluster,
    KindNodeContainer,
    Node,
    Phase,
    Pod,
    Snapshot,
    SourceStatus,
    StatusKind,
    TartState,
)

NOW = 1_780_000_000.0


def sample() -> Snapshot:
    return Snapshot(
        generated_at=NOW,
        host="local",
        sources={
            "tart": SourceStatus("tart", ok=True, updated_at=NOW - 1),
            "docker": SourceStatus(
                "docker",
                ok=False,
                error="cannot reach the Docker daemon",
                detail="cannot reach the Docker daemon: no such socket\n\nStart Docker.",
            ),
        },
        vms=(
            VM(
                "b",
                TartState.RUNNING,
                Phase.SSH_PENDING,
                "192.168.64.3",
                0.625,
                NOW - 12,
                eta_seconds=44.6,
            ),
            VM("a", TartState.STOPPED, Phase.STOPPED, None, 0.0, NOW - 100),
        ),
        nodes=(
            Node(
                "kind-control-plane",
                "Ready",
                "control-plane",
                "v1.33.1",
                NOW - 7200,
                container_state="running",
                container_exit_code=0,
                container_restarts=2,
            ),
        ),
        pods=(Pod("argocd-server-1", "argocd", "1/1", "Running", "0", "kind-worker", NOW - 60),),
        applications=(
            Application("guestbook", "argocd", "default", "Synced", "Healthy", "Succeeded", ""),
        ),
        docker=DockerStatus(
            True,
            server_version="26.1",
            kind_network=True,
            clusters=(
                KindCluster(
                    "kind",
                    (
                        KindNodeContainer(
                            "kind-control-plane", "control-plane", "running", "kind", 0, 2
                        ),
                    ),
                ),
            ),
        ),
    )


def test_json_has_the_documented_keys() -> None:
    data = json.loads(report.dumps(report.snapshot_json(sample())))
    assert set(data) == {
        "generated_at",
        "host",
        "sources",
        "vms",
        "nodes",
        "pods",
        "applications",
        "docker",
        # Added with Orchard (#11): the fleet's workers and why a session is read-only.
        "workers",
        "readonly",
        "readonly_reason",
        # Which source lists the VMs: "tart", or "orchard" (model.vm_source).
        "vm_source",
    }
    assert data["workers"] == []
    assert data["vm_source"] == "tart"
    assert data["vms"][0]["backend"] == "tart"
    assert {"worker", "restart_policy", "restart_count"} <= set(data["vms"][0])
    assert data["generated_at"] == "2026-05-28T20:26:40Z"
    assert data["sources"]["tart"] == {
        "ok": True,
        "kind": "ok",
        "error": None,
        "note": None,
        "detail": None,
        "updated_at": "2026-05-28T20:26:39Z",
    }
    assert data["sources"]["docker"]["ok"] is False
    # The whole reason and the fix, as the detail view shows it.
    assert data["sources"]["docker"]["detail"] == (
        "cannot reach the Docker daemon: no such socket\n\nStart Docker."
    )
    # A failing status built without a kind still says it failed.
    assert data["sources"]["docker"]["kind"] == "error"
    vm = data["vms"][0]
    assert set(vm) >= {
        "name",
        "state",
        "phase",
        "ip",
        "progress",
        "phase_since",
        "eta_seconds",
        "error",
    }
    assert vm["phase"] == "ssh-pending"
    assert vm["progress"] == 0.625
    assert vm["eta_seconds"] == 45
    assert data["nodes"][0]["container_state"] == "running"
    assert (data["nodes"][0]["container_exit_code"], data["nodes"][0]["container_restarts"]) == (
        0,
        2,
    )
    assert data["docker"]["clusters"][0]["nodes"][0] == {
        "name": "kind-control-plane",
        "role": "control-plane",
        "state": "running",
        "exit_code": 0,
        "restart_count": 2,
    }


def test_text_report_sections() -> None:
    text = report.snapshot_text(sample())
    assert "host local" in text
    assert "ssh-pending" in text and "62%" in text
    assert "cannot reach the Docker daemon" in text
    assert "kind-control-plane" in text and "Kind cluster kind" in text
    assert "guestbook" in text


def test_duration_and_bar() -> None:
    assert report.duration(5) == "5s"
    assert report.duration(125) == "2m05s"
    assert report.duration(7300) == "2h01m"
    assert report.progress_bar(0.5, 4) == "██░░"
    assert report.progress_bar(2.0, 4) == "████"


def test_a_failing_status_is_never_kind_ok() -> None:
    assert SourceStatus("tart", ok=False).kind is StatusKind.ERROR
    assert SourceStatus("tart", ok=True).kind is StatusKind.OK
    status = SourceStatus("tart", ok=False, kind=StatusKind.TIMEOUT)
    assert status.kind is StatusKind.TIMEOUT


def _status(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEGATUI_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "megatui",
            "--tart",
            str(tmp_path / "no-tart"),
            "--docker-host",
            f"unix://{tmp_path}/none.sock",
            "--kubeconfig",
            str(tmp_path / "none"),
            "status",
            *extra,
            "--timeout",
            "5",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_status_exits_1_with_kinds_when_no_source_answered(tmp_path: Path) -> None:
    result = _status(tmp_path, "--json")
    assert result.returncode == 1, result.stderr
    sources = json.loads(result.stdout)["sources"]
    assert sources["tart"]["kind"] == "not-installed"
    assert sources["docker"]["kind"] == "unreachable"
    assert {s["ok"] for s in sources.values()} == {False}
    assert all(s["kind"] != "ok" for s in sources.values())
    assert "Traceback" not in result.stderr
