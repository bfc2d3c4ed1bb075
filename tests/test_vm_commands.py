"""`megatui start|stop|create|delete` as scripts run them, for both backends: the
lab's fake tart, and the lab's fake Orchard controller (run on the test's loop, so
megatui runs as an asyncio subprocess). Exit codes as `wait`: 0, 1, 2."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from lab_fixtures import TartLabFactory, fast_vm, tart_lab_fixture  # noqa: F401
from orchard_fixtures import ADMIN, FAST
from test_headless import lab_config, megatui

from megatui.lab.orchard import FakeOrchard, Timings
from megatui.sources.orchard import NewVM, OrchardClient
from megatui.sources.orchard_config import OrchardConfig

IMAGE = "ghcr.io/cirruslabs/macos-tahoe-base:latest"
VIEWER = ("viewer", "viewer-secret-token")

# --- tart ------------------------------------------------------------------------------


def test_tart_stop_start_wait_and_errors(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    lab = tart_lab([fast_vm("alpha", initial="running"), fast_vm("beta")])
    config = str(lab_config(lab, tmp_path))
    stopped = megatui("--config", config, "stop", "alpha")
    assert (stopped.returncode, stopped.stdout.strip()) == (0, "VM 'alpha' stopping"), stopped
    started = megatui("--config", config, "start", "beta", "--wait", "--timeout", "30")
    assert started.returncode == 0, started.stderr
    assert "beta ready at" in started.stdout
    again = megatui("--config", config, "start", "beta")
    assert (again.returncode, again.stdout.strip()) == (0, "VM 'beta' is already running")
    ghost = megatui("--config", config, "stop", "ghost")
    assert ghost.returncode == 2
    assert ghost.stderr.strip() == "megatui: unknown VM 'ghost' (tart lists: alpha, beta)"
    policy = megatui(
        "--config", config, "create", "gamma", "--image", "x", "--restart-policy", "OnFailure"
    )
    assert policy.returncode == 1
    assert policy.stderr.strip().startswith("megatui: tart has no restart policy")
    unasked = megatui("--config", config, "delete", "alpha")
    assert unasked.returncode == 2 and "--yes" in unasked.stderr


def test_tart_create_failure_and_delete(tart_lab: TartLabFactory, tmp_path: Path) -> None:
    lab = tart_lab([fast_vm("alpha")], start=False)
    config = str(lab_config(lab, tmp_path))
    # The lab's tart does not clone: its refusal is tart's line, exit 1.
    made = megatui("--config", config, "create", "gamma", "--image", "alpha", "--cpu", "2")
    assert made.returncode == 1
    assert made.stderr.startswith("megatui: tart clone: ") and made.stderr.count("\n") == 1
    bad = megatui("--config", config, "create", "delta", "--image", "alpha", "--cpu", "zero")
    assert bad.returncode == 2
    gone = megatui("--config", config, "delete", "alpha", "--yes")
    assert (gone.returncode, gone.stdout.strip()) == (0, "VM 'alpha' deleted"), gone.stderr
    after = megatui("--config", config, "stop", "alpha")
    assert after.returncode == 2, after.stderr


# --- Orchard ---------------------------------------------------------------------------


@pytest.fixture(name="controller")
async def controller_fixture(tmp_path: Path) -> AsyncIterator[FakeOrchard]:
    # Its own clock: the fleet moves in real time, fast.
    lab = FakeOrchard(tmp_path / "orchard", timings=Timings(**vars(FAST)), tick=0.02)
    await lab.start()
    lab.add_worker("mini-1")
    lab.add_worker("mini-2")
    lab.add_account(VIEWER[0], VIEWER[1], ("compute:read",))
    client = OrchardClient(OrchardConfig(lab.url, ADMIN[0], ADMIN[1]))
    try:
        await client.create_vm(NewVM("alpha", IMAGE, username="admin", password="admin"))
    finally:
        await client.close()
    try:
        yield lab
    finally:
        await lab.stop()


async def orchard(
    lab: FakeOrchard, tmp_path: Path, *args: str, account: tuple[str, str] = ADMIN
) -> tuple[int, str, str]:
    """megatui with the controller in its config and the token in the environment
    the Orchard CLI uses (never an argument)."""
    config = tmp_path / "megatui.toml"
    config.write_text(
        "[tart]\nboot_poll_interval = 0.2\n[ssh]\nuser = 'admin'\npassword = 'admin'\n"
        f"agent = false\n[orchard]\nurl = '{lab.url}'\nservice_account = '{account[0]}'\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHARD_")}
    env["ORCHARD_SERVICE_ACCOUNT_TOKEN"] = account[1]
    env["ORCHARD_HOME"] = str(tmp_path / "no-orchard-home")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "megatui",
        "--config",
        str(config),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(90):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    text_out, text_err = out.decode(), err.decode()
    assert account[1] not in text_out + text_err, "the token must never be shown"
    assert "Traceback" not in text_err
    return proc.returncode, text_out, text_err


async def test_orchard_create_stop_start_delete(controller: FakeOrchard, tmp_path: Path) -> None:
    code, out, err = await orchard(
        controller,
        tmp_path,
        "create",
        "beta",
        "--image",
        IMAGE,
        "--cpu",
        "2",
        "--memory",
        "4096",
        "--restart-policy",
        "OnFailure",
    )
    assert code == 0, err
    assert controller.store.get_vm("beta").fields["restart_policy"] == "OnFailure"
    code, out, err = await orchard(controller, tmp_path, "create", "beta", "--image", IMAGE)
    # The controller's 409, verbatim, in one line.
    assert code == 1 and "VM with this name already exists" in err
    assert len(err.strip().splitlines()) == 1
    code, out, err = await orchard(controller, tmp_path, "wait", "alpha", "--timeout", "60")
    assert code == 0, err
    old_uid = controller.store.get_vm("alpha").fields["uid"]
    code, out, err = await orchard(controller, tmp_path, "stop", "alpha")
    assert code == 0, err
    code, out, err = await orchard(
        controller, tmp_path, "start", "alpha", "--wait", "--timeout", "60"
    )
    assert code == 0, err
    assert "recreated from its spec" in err and "alpha ready at" in out
    assert controller.store.get_vm("alpha").fields["uid"] != old_uid
    code, out, err = await orchard(controller, tmp_path, "delete", "beta", "--yes")
    assert (code, out.strip()) == (0, "VM 'beta' deleted"), err
    code, out, err = await orchard(controller, tmp_path, "delete", "ghost", "--yes")
    assert code == 2 and "unknown VM 'ghost' (orchard lists: alpha)" in err


async def test_orchard_refusals_and_status(controller: FakeOrchard, tmp_path: Path) -> None:
    code, out, err = await orchard(controller, tmp_path, "stop", "alpha", account=VIEWER)
    assert code == 1
    assert "compute:write" in err and len(err.strip().splitlines()) == 1
    code, out, err = await orchard(controller, tmp_path, "status", "--json", account=VIEWER)
    assert code == 0, err
    import json

    data = json.loads(out)
    assert {w["name"] for w in data["workers"]} == {"mini-1", "mini-2"}
    (vm,) = data["vms"]
    assert (vm["name"], vm["backend"], vm["restart_policy"]) == ("alpha", "orchard", "Never")
    assert "worker" in vm and "restart_count" in vm
    assert data["readonly"] is True and "compute:write" in data["readonly_reason"]


async def test_orchard_suspend_a_suspendable_vm_and_refuse_the_others(
    controller: FakeOrchard, tmp_path: Path
) -> None:
    client = OrchardClient(OrchardConfig(controller.url, ADMIN[0], ADMIN[1]))
    try:
        await client.create_vm(NewVM("sleepy", IMAGE, suspendable=True))
    finally:
        await client.close()
    code, out, err = await orchard(controller, tmp_path, "suspend", "sleepy")
    assert (code, out.strip()) == (0, "VM 'sleepy' suspending"), err
    assert controller.store.get_vm("sleepy").fields["powerState"] == "suspended"
    # Not created suspendable: the controller's 412, verbatim, in one line.
    code, out, err = await orchard(controller, tmp_path, "suspend", "alpha")
    assert code == 1
    assert err.count("\n") == 1 and "only suspendable VMs can be suspended" in err, err
    assert controller.store.get_vm("alpha").fields["powerState"] == "running"
