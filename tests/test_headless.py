"""`megatui status` and `megatui wait` as scripts use them: real processes, the lab's
fake tart and SSH servers, exit codes and output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lab_fixtures import TartLabFactory, fast_vm, tart_lab_fixture  # noqa: F401

from megatui.lab.tartlab import TartLab


def lab_config(lab: TartLab, tmp_path: Path) -> Path:
    """The lab's config with fast pacing, as a user would write it."""
    text = lab.megatui_config_toml().replace(
        "[tart]\n", "[tart]\nboot_poll_interval = 0.2\npoll_interval = 1.0\n", 1
    )
    path = tmp_path / "megatui.toml"
    path.write_text(text)
    return path


def megatui(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEGATUI_CONFIG")}
    return subprocess.run(
        [sys.executable, "-m", "megatui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_wait_exits_0_once_ready_with_progress_on_stderr(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running"), fast_vm("beta", initial="running")])
    config = lab_config(lab, tmp_path)
    result = megatui("--config", str(config), "wait", "alpha", "beta", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert "alpha ready at 127.0.0." in result.stdout
    assert "beta ready at" in result.stdout
    assert "ready" in result.stderr  # progress lines as phases change
    assert "Traceback" not in result.stderr


def test_wait_json_output(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running")])
    result = megatui("--config", str(lab_config(lab, tmp_path)), "wait", "alpha", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    (vm,) = data["vms"]
    assert (vm["name"], vm["phase"], vm["progress"]) == ("alpha", "ready", 1.0)


def test_wait_unknown_vm_fails_at_once(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    lab = tart_lab([fast_vm("alpha")], start=False)
    started = time.monotonic()
    result = megatui("--config", str(lab_config(lab, tmp_path)), "wait", "ghost", "--timeout", "60")
    assert result.returncode == 2
    assert time.monotonic() - started < 30
    assert result.stderr.strip() == "megatui: unknown VM 'ghost' (tart lists: alpha)"


def test_wait_timeout_names_the_stuck_phase(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running", port_after=60, login_after=90)])
    result = megatui("--config", str(lab_config(lab, tmp_path)), "wait", "alpha", "--timeout", "2")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("megatui: timed out after 2 s: alpha stuck in ip for"), last


def test_wait_failed_login_is_an_error_not_a_timeout(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running", reject_logins=True)])
    result = megatui("--config", str(lab_config(lab, tmp_path)), "wait", "alpha", "--timeout", "60")
    assert result.returncode == 1
    assert "alpha: authentication failed for admin@127.0.0." in result.stderr


def test_wait_with_tart_missing_is_one_line(tmp_path: Path) -> None:
    result = megatui("--tart", str(tmp_path / "no-tart"), "wait", "alpha", "--timeout", "10")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "tart not installed" in result.stderr


def test_status_json_shape(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running"), fast_vm("beta")])
    config = lab_config(lab, tmp_path)
    # Wait until alpha is ready, so the snapshot has an address and a probe.
    assert megatui("--config", str(config), "wait", "alpha").returncode == 0
    result = megatui(
        "--config",
        str(config),
        "--docker-host",
        f"unix://{tmp_path}/none.sock",
        "--kubeconfig",
        str(tmp_path / "none"),
        "status",
        "--json",
        "--timeout",
        "5",
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= {
        "generated_at",
        "host",
        "sources",
        "vms",
        "nodes",
        "pods",
        "applications",
        "docker",
    }
    assert data["host"] == "local"
    vms = {vm["name"]: vm for vm in data["vms"]}
    assert vms["alpha"]["phase"] == "ready" and vms["alpha"]["ip"]
    assert vms["beta"] == {**vms["beta"], "phase": "stopped", "ip": None, "progress": 0.0}
    assert data["sources"]["tart"]["ok"] is True
    # Unreachable sources are per-source errors, and the others keep working.
    assert data["sources"]["docker"]["ok"] is False
    assert data["sources"]["kubernetes"]["ok"] is False
    assert "admin" not in json.dumps(data["sources"])  # no secrets


def test_status_text(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    lab = tart_lab([fast_vm("alpha")], start=False)
    result = megatui("--config", str(lab_config(lab, tmp_path)), "status", "--timeout", "5")
    assert result.returncode == 0, result.stderr
    assert "alpha" in result.stdout and "stopped" in result.stdout
    assert "SOURCE" in result.stdout


def test_unreachable_host_is_one_line_and_exit_1(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.touch()
    for command in (["status", "--json"], ["wait", "alpha", "--timeout", "5"]):
        result = megatui("--host", "nobody@127.0.0.1:1", *command)
        assert result.returncode == 1, result
        assert result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert "127.0.0.1" in result.stderr


def test_bad_host_spec_is_a_usage_error() -> None:
    result = megatui("--host", "user@:22", "status")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
