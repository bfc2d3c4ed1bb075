"""`megatui doctor` as CI runs it: the real CLI in a subprocess, against the lab (tart
VMs, the fake Kubernetes API) and a REAL Docker engine.

A healthy platform passes; each deliberately broken platform lists exactly its broken
parts, and every other check passes or is skipped with a reason.

Tests marked `docker` need dockerd (skipped locally without it, failing under CI=true:
see docker_fixtures). The others check the runner, the report formats and the usage
errors, without the platform.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from monitor_helpers import wait_snapshot

pytest.register_assert_rewrite("docker_fixtures", "doctor_fixtures")

from docker_fixtures import free_loopback_port  # noqa: E402
from doctor_fixtures import DoctorPlatform, DoctorRun, failing  # noqa: E402
from sshd_fixtures import SSHDFactory, real_sshd_fixture  # noqa: E402, F401

from megatui import doctor  # noqa: E402
from megatui.config import Settings  # noqa: E402
from megatui.doctor import (  # noqa: E402
    CHECKS,
    Check,
    CheckResult,
    Context,
    Outcome,
    Progress,
    Status,
)
from megatui.lab.cluster import start_lab_cluster  # noqa: E402
from megatui.lab.kube_api import FakeKubeAPI  # noqa: E402
from megatui.model import Application, Node, Pod, Snapshot, SourceStatus, StatusKind  # noqa: E402
from megatui.monitor import Monitor  # noqa: E402
from megatui.sources.kube_status import ARGOCD_COMPONENTS, argocd_summary  # noqa: E402
from megatui.sources.tart import TartError, TartErrorKind  # noqa: E402

pytest_plugins = ["docker_fixtures", "doctor_fixtures"]

#: Skipped in a healthy run of the lab: its config sets [ssh] agent = false, and no --host.
SKIPPED_WHEN_HEALTHY = {
    "platform.ssh-agent": "not used ([ssh] agent = false)",
    "remote.connection": "not using --host",
    "remote.keychain": "not using --host",
}
PASSED_WHEN_HEALTHY = len(CHECKS) - len(SKIPPED_WHEN_HEALTHY)

ALL_CHECKS = [c.name for c in CHECKS]


def megatui(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "megatui", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_only_broken(run: DoctorRun, broken: set[str], skipped: set[str]) -> None:
    """Exactly `broken` failed; exactly `skipped` (and SKIPPED_WHEN_HEALTHY) were
    skipped, each with a reason; everything else passed; the JUnit file agrees."""
    assert run.returncode == 1, run.stderr
    assert failing(run) == broken, json.dumps(run.data, indent=2)
    assert run.with_status("skipped") == skipped | set(SKIPPED_WHEN_HEALTHY), run.stdout
    assert run.with_status("warn") == set(), run.stdout
    for name in broken | skipped:
        assert run.checks[name]["reason"], name
    for name in broken:
        assert "\n" not in run.checks[name]["reason"]
    for name in skipped:
        # Dependants are skipped because of what they need, which is named.
        assert run.checks[name]["reason"].startswith("needs "), run.checks[name]
    totals = run.data["totals"]
    assert totals == {
        "pass": len(ALL_CHECKS) - len(broken) - len(skipped) - len(SKIPPED_WHEN_HEALTHY),
        "warn": 0,
        "fail": len(broken),
        "skipped": len(skipped) + len(SKIPPED_WHEN_HEALTHY),
    }
    suite = run.junit()
    assert suite.get("failures") == str(len(broken))
    assert suite.get("skipped") == str(len(skipped) + len(SKIPPED_WHEN_HEALTHY))
    failed_cases = {
        f"{case.get('classname', '').removeprefix('megatui.doctor.')}.{case.get('name')}"
        for case in suite.iter("testcase")
        if case.find("failure") is not None
    }
    assert failed_cases == broken


# --- a healthy platform -----------------------------------------------------------------


@pytest.mark.docker
def test_healthy_platform_passes_with_json_and_junit(doctor_platform: DoctorPlatform) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    run = doctor_platform.doctor()

    assert run.returncode == 0, run.stderr
    data = run.data
    assert set(data) >= {"timestamp", "platform", "totals", "duration", "checks"}
    stamp = datetime.strptime(data["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= stamp <= before + timedelta(seconds=60)
    assert {"system", "machine", "python"} <= set(data["platform"])
    assert data["platform"]["host"] == "local"
    assert isinstance(data["duration"], float) and 0 < data["duration"] < 60
    assert [c["name"] for c in data["checks"]] == ALL_CHECKS
    for check in data["checks"]:
        assert set(check) == {"name", "status", "reason", "hint", "duration"}
        assert check["reason"] and "\n" not in check["reason"]
        assert 0 <= check["duration"] <= data["duration"]
        expected = "skipped" if check["name"] in SKIPPED_WHEN_HEALTHY else "pass"
        assert check["status"] == expected, check
    for name, reason in SKIPPED_WHEN_HEALTHY.items():
        assert run.checks[name]["reason"] == reason
    assert data["totals"] == {
        "pass": PASSED_WHEN_HEALTHY,
        "warn": 0,
        "fail": 0,
        "skipped": len(SKIPPED_WHEN_HEALTHY),
    }

    # The reasons say what was found, from the same sources the TUI shows.
    reasons = {name: c["reason"] for name, c in run.checks.items()}
    assert reasons["docker.kind-nodes"] == "Kind cluster kind: 4 node containers running"
    assert reasons["kubernetes.config"].startswith("context 'kind-kind': https://127.0.0.1:")
    assert reasons["kubernetes.nodes"] == "4 nodes Ready (expected 4)"
    assert reasons["argocd.components"] == "7/7 components running and ready"
    assert reasons["argocd.applications"] == "all 3 Applications are Synced and Healthy"
    assert reasons["tart.vms"] == "all 4 configured VMs exist"
    assert reasons["tart.vms-boot"] == "2 running VMs reached SSH"
    assert reasons["tart.ssh-logins"] == "2 VMs accept logins; host keys known"
    assert reasons["docker.daemon"] == (
        f"Docker {doctor_platform.engine.client.version()['Version']} reachable"
    )

    suite = run.junit()
    assert suite.tag == "testsuite"
    assert suite.get("tests") == str(len(ALL_CHECKS))
    assert (suite.get("failures"), suite.get("errors")) == ("0", "0")
    assert suite.get("skipped") == str(len(SKIPPED_WHEN_HEALTHY))
    cases = list(suite.iter("testcase"))
    assert [f"{c.get('classname')}.{c.get('name')}" for c in cases] == [
        f"megatui.doctor.{name}" for name in ALL_CHECKS
    ]
    skipped_cases = {c.get("name") for c in cases if c.find("skipped") is not None}
    assert skipped_cases == {"ssh-agent", "connection", "keychain"}
    # --json keeps stdout pure JSON; progress went to stderr as the checks finished.
    assert run.stdout.lstrip().startswith("{")
    assert "✓ argocd.components" in run.stderr


@pytest.mark.docker
def test_healthy_platform_text_report(doctor_platform: DoctorPlatform) -> None:
    run = doctor_platform.doctor(json_out=False)

    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    shown = [line.split()[1] for line in lines if line[:1] in ("✓", "!", "✗", "-")]
    assert shown == ALL_CHECKS  # every check, in a fixed order, once
    assert "✓ kubernetes.nodes" in run.stdout
    assert "- remote.keychain" in run.stdout and "not using --host" in run.stdout
    assert lines[-1].startswith(
        f"{PASSED_WHEN_HEALTHY} passed, 0 warned, 0 failed, {len(SKIPPED_WHEN_HEALTHY)} skipped"
    )
    assert "Traceback" not in run.stderr


# --- one broken thing at a time ---------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    id: str
    #: Breaks the platform; returns extra doctor arguments.
    breaks: Callable[[DoctorPlatform], list[str]]
    broken: set[str]
    skipped: set[str] = field(default_factory=set)
    #: check -> text its reason must contain
    reasons: dict[str, str] = field(default_factory=dict)


def _no_args(action: Callable[[DoctorPlatform], object]) -> Callable[[DoctorPlatform], list[str]]:
    def run(platform: DoctorPlatform) -> list[str]:
        action(platform)
        return []

    return run


def _config(**doctor_keys: object) -> Callable[[DoctorPlatform], list[str]]:
    def run(platform: DoctorPlatform) -> list[str]:
        return ["--config", str(platform.write_config("variant.toml", **doctor_keys))]

    return run


ALL_VMS = ["runner", "builder", "spare", "slowpoke"]
ARGOCD_AFTER_NAMESPACE = {"argocd.components", "argocd.applications"}
AFTER_API = {"kubernetes.nodes", "argocd.namespace", *ARGOCD_AFTER_NAMESPACE}

SCENARIOS = [
    Scenario(
        "no-kind-network",
        _no_args(DoctorPlatform.break_kind_network),
        {"docker.kind-network"},
        reasons={"docker.kind-network": "no Docker network named exactly 'kind'"},
    ),
    Scenario(
        "node-container-exited",
        _no_args(DoctorPlatform.break_node_container),
        {"docker.kind-nodes"},
        reasons={"docker.kind-nodes": "1 of 4 Kind node containers not running: kind-worker3"},
    ),
    Scenario(
        "docker-unreachable",
        lambda p: ["--docker-host", f"unix://{p.root}/absent.sock"],
        {"docker.daemon"},
        {"docker.kind-network", "docker.kind-nodes"},
        reasons={"docker.daemon": "no such socket"},
    ),
    Scenario(
        "kubeconfig-missing",
        lambda p: ["--kubeconfig", str(p.root / "absent-kubeconfig")],
        {"kubernetes.config"},
        {"kubernetes.api", *AFTER_API},
        reasons={"kubernetes.config": "kubeconfig not found: "},
    ),
    Scenario(
        "api-server-down",
        lambda p: ["--kubeconfig", str(p.unreachable_kubeconfig())],
        {"kubernetes.api"},
        AFTER_API,
        reasons={"kubernetes.api": "connection refused"},
    ),
    Scenario(
        "wrong-node-count",
        _config(expected_nodes=3, vms=ALL_VMS, timeout=20),
        {"kubernetes.nodes"},
        reasons={"kubernetes.nodes": "4 nodes, expected 3"},
    ),
    Scenario(
        "argocd-not-installed",
        _no_args(DoctorPlatform.break_namespace),
        {"argocd.namespace"},
        ARGOCD_AFTER_NAMESPACE,
        reasons={"argocd.namespace": "namespace 'argocd' not found"},
    ),
    Scenario(
        "pod-crash-looping",
        _no_args(DoctorPlatform.break_pod),
        {"argocd.components"},
        reasons={
            "argocd.components": "6/7 components running and ready; "
            "argocd-repo-server-6c46b7867b-2x59w CrashLoopBackOff 0/1, restarts 5"
        },
    ),
    Scenario(
        "application-degraded",
        _no_args(DoctorPlatform.break_application),
        {"argocd.applications"},
        reasons={"argocd.applications": "helm-guestbook OutOfSync/Degraded"},
    ),
    Scenario(
        "applications-crd-missing",
        _no_args(DoctorPlatform.break_crd),
        {"argocd.applications"},
        reasons={"argocd.applications": "ArgoCD Applications CRD not installed"},
    ),
    Scenario(
        "tart-missing",
        lambda p: ["--tart", "/nonexistent/tart"],
        {"tart.installed"},
        {"tart.vms", "tart.vms-boot", "tart.ssh-logins"},
        reasons={"tart.installed": 'tart not installed (looked for "/nonexistent/tart"'},
    ),
    Scenario(
        "vm-missing",
        _config(expected_nodes=4, vms=[*ALL_VMS, "ghost"], timeout=20),
        {"tart.vms"},
        reasons={"tart.vms": "configured VMs missing: ghost"},
    ),
    Scenario(
        "vm-login-fails",
        _no_args(DoctorPlatform.break_login),
        {"tart.ssh-logins"},
        reasons={"tart.ssh-logins": "builder: authentication failed for admin@"},
    ),
]


@pytest.mark.docker
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_a_broken_platform_lists_exactly_its_broken_parts(
    doctor_platform: DoctorPlatform, scenario: Scenario
) -> None:
    args = scenario.breaks(doctor_platform)
    config: Path | None = None
    if args[:1] == ["--config"]:
        config, args = Path(args[1]), args[2:]

    run = doctor_platform.doctor(*args, config=config)

    assert_only_broken(run, scenario.broken, scenario.skipped)
    for name, text in scenario.reasons.items():
        assert text in run.checks[name]["reason"], run.checks[name]
    for name in scenario.broken:
        assert run.checks[name]["hint"], f"{name} failed without a hint"


@pytest.mark.docker
def test_a_vm_not_ready_in_time_with_progress_while_waiting(
    doctor_platform: DoctorPlatform,
) -> None:
    doctor_platform.start_vm("slowpoke")  # its SSH port opens after a minute

    run = doctor_platform.doctor("--timeout", "2")

    assert_only_broken(run, {"tart.vms-boot"}, set())
    reason = run.checks["tart.vms-boot"]["reason"]
    assert reason.startswith("not ready within 2s: slowpoke stuck in ip"), reason
    # The other running VMs were ready: their logins are checked and pass.
    assert run.checks["tart.ssh-logins"]["reason"] == "2 VMs accept logins; host keys known"
    lines = run.stderr.splitlines()
    waiting = [i for i, line in enumerate(lines) if line.startswith("  waiting for VMs: ")]
    assert waiting, run.stderr
    assert all("slowpoke" in lines[i] for i in waiting)
    assert "slowpoke ip " in lines[waiting[-1]]
    # One line per check as it finishes: the platform's own at once, the VMs' last.
    done = {line.split()[1]: i for i, line in enumerate(lines) if line[:1] in "✓✗!-"}
    assert set(done) == set(ALL_CHECKS)
    assert done["platform.os"] < waiting[0] < done["tart.vms-boot"]
    assert lines[done["tart.vms-boot"]].startswith("✗ tart.vms-boot")


# --- the same checks over --host ---------------------------------------------------------


@pytest.mark.docker
@pytest.mark.sshd
@pytest.mark.parametrize("broken", ["nothing", "vm-login"])
def test_over_host_the_same_config_gives_the_same_verdict(
    doctor_platform: DoctorPlatform, real_sshd: SSHDFactory, tmp_path: Path, broken: str
) -> None:
    """The platform behind a real sshd, as a Mac host: the same config (its paths are
    the host's), run with --host. Tart, the VM logins, the Kubernetes API and Docker
    are all reached through the one SSH connection."""
    sshd = real_sshd()
    local_home = tmp_path / "local-home"
    (local_home / ".ssh").mkdir(parents=True)
    (local_home / ".ssh" / "known_hosts").write_text(sshd.known_hosts_line() + "\n")
    (local_home / ".ssh" / "config").write_text(
        f"Host *\n    IdentityFile {sshd.client_key_path}\n    IdentitiesOnly yes\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSH_")}
    env.pop("KUBECONFIG", None)
    env.pop("DOCKER_HOST", None)
    env["HOME"] = str(local_home)
    if broken == "vm-login":
        doctor_platform.break_login("runner")
    host = f"{sshd.user}@{sshd.host}:{sshd.port}"

    run = doctor_platform.doctor("--host", host, env=env)

    checks = run.checks
    assert checks["remote.connection"] == {**checks["remote.connection"], "status": "pass"}
    assert checks["remote.connection"]["reason"] == f"connected to {host}"
    # Linux has no `security`: there is no login keychain to report on.
    assert checks["remote.keychain"]["status"] == "skipped"
    # With --host the agent matters (for the host login), and this environment has none.
    assert checks["platform.ssh-agent"]["status"] == "warn"
    assert run.data["platform"]["host"] == host
    others = set(ALL_CHECKS) - {"remote.connection", "remote.keychain", "platform.ssh-agent"}
    expected_failures = {"tart.ssh-logins"} if broken == "vm-login" else set()
    assert failing(run) == expected_failures, json.dumps(run.data, indent=2)
    assert {n for n in others if checks[n]["status"] == "pass"} == others - expected_failures
    assert run.returncode == (1 if expected_failures else 0), run.stderr
    assert checks["docker.kind-nodes"]["reason"] == "Kind cluster kind: 4 node containers running"
    assert checks["argocd.applications"]["reason"] == "all 3 Applications are Synced and Healthy"
    # The API server was reached through a forward of the host's kubeconfig, not directly.
    server = checks["kubernetes.config"]["reason"].removeprefix("context 'kind-kind': ")
    assert server.startswith("https://127.0.0.1:")
    assert server != doctor_platform.cluster.url
    if broken == "vm-login":
        assert checks["tart.ssh-logins"]["reason"].startswith("runner: authentication failed")
    else:
        assert checks["tart.ssh-logins"]["reason"] == "2 VMs accept logins; host keys known"


# --- usage and config errors: exit 2, one line -------------------------------------------


def test_config_error_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "megatui.toml"
    config.write_text("[doctor]\nexpected_nodes = -4\n")
    result = megatui("--config", str(config), "doctor", "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"megatui: {config}: 'doctor.expected_nodes': expected a whole number of 0 or more "
        "(got -4)\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "0"], "megatui: --timeout: expected a positive number (got 0)"),
        (
            ["--host", "us@er@:99999"],
            "megatui: invalid host 'us@er@:99999': expected [USER@]MAC[:PORT]",
        ),
        (
            ["--junit", "/nonexistent-dir/doctor.xml"],
            "megatui: --junit /nonexistent-dir/doctor.xml: directory /nonexistent-dir "
            "does not exist",
        ),
    ],
)
def test_usage_error_exits_2_before_any_check(args: list[str], message: str) -> None:
    result = megatui("doctor", *args)
    assert result.returncode == 2
    assert (result.stdout, result.stderr) == ("", message + "\n")


def test_an_unreachable_host_fails_its_connection_and_skips_what_needs_it(
    tmp_path: Path,
) -> None:
    junit = tmp_path / "doctor.xml"
    host = f"127.0.0.1:{free_loopback_port()}"
    result = megatui("--host", host, "doctor", "--json", "--junit", str(junit))

    assert result.returncode == 1, result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    assert list(checks) == ALL_CHECKS
    assert {n for n, c in checks.items() if c["status"] == "fail"} == {"remote.connection"}
    assert checks["remote.connection"]["reason"] == (
        f"cannot reach {host}: connection refused (is Remote Login enabled on the Mac?)"
    )
    for name, check in checks.items():
        if name.startswith("platform."):
            assert check["status"] in ("pass", "warn"), check
        elif name != "remote.connection":
            assert check["status"] == "skipped", check
            assert check["reason"].startswith("needs "), check
    assert checks["tart.installed"]["reason"] == "needs remote.connection"
    assert checks["argocd.applications"]["reason"] == "needs argocd.namespace"
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "1"


# --- the runner, without a platform ----------------------------------------------------


def _context(out: io.StringIO) -> Context:
    return Context(Settings(), Monitor(Settings()), Progress(out, 3))


async def test_independent_checks_run_concurrently_and_dependants_wait() -> None:
    order: list[str] = []
    a_started = asyncio.Event()
    b_started = asyncio.Event()

    async def a(ctx: Context) -> Outcome:
        order.append("a")
        a_started.set()
        await b_started.wait()  # deadlocks (and times out) unless b runs meanwhile
        return Outcome(Status.PASS, "a")

    async def b(ctx: Context) -> Outcome:
        order.append("b")
        b_started.set()
        await a_started.wait()
        return Outcome(Status.WARN, "b", "hint b")

    async def c(ctx: Context) -> Outcome:
        order.append("c")
        return Outcome(Status.PASS, "c")

    checks = [Check("x.a", a), Check("x.b", b), Check("x.c", c, ("x.a", "x.b"))]
    async with asyncio.timeout(5):
        results = await doctor.run_checks(_context(io.StringIO()), checks)

    assert order[2] == "c" and set(order[:2]) == {"a", "b"}
    assert [(r.name, r.status) for r in results] == [
        ("x.a", Status.PASS),
        ("x.b", Status.WARN),  # a warning satisfies a dependency
        ("x.c", Status.PASS),
    ]


async def test_dependants_of_a_failure_are_skipped_with_the_reason() -> None:
    ran: list[str] = []

    async def broken(ctx: Context) -> Outcome:
        raise RuntimeError("boom")

    async def dependant(ctx: Context) -> Outcome:
        ran.append("dependant")
        return Outcome(Status.PASS, "fine")

    async def other(ctx: Context) -> Outcome:
        return Outcome(Status.PASS, "fine")

    out = io.StringIO()
    checks = [
        Check("x.broken", broken),
        Check("x.dependant", dependant, ("x.broken", "x.other")),
        Check("x.other", other),
    ]
    results = {r.name: r for r in await doctor.run_checks(_context(out), checks)}

    assert results["x.broken"].status is Status.FAIL
    assert results["x.broken"].reason == "check crashed: RuntimeError: boom"
    assert results["x.dependant"].status is Status.SKIPPED
    assert results["x.dependant"].reason == "needs x.broken"
    assert ran == []
    # Not a terminal: one progress line per check as it finishes.
    assert len(out.getvalue().splitlines()) == 3


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_log_is_a_line_per_check_and_per_phase_change() -> None:
    out = io.StringIO()
    progress = Progress(out, 2)
    progress.note("waiting for VMs: alpha booting 40%", key="alpha:booting")
    progress.note("waiting for VMs: alpha booting 55%", key="alpha:booting")
    progress.note("waiting for VMs: alpha ip 70%", key="alpha:ip")
    progress.finished(CheckResult("x.a", Status.WARN, "meh", "hint", 0.1))
    progress.clear()
    assert out.getvalue().splitlines() == [
        "  waiting for VMs: alpha booting 40%",
        "  waiting for VMs: alpha ip 70%",
        "! x.a                      meh",
    ]


def test_progress_on_a_terminal_is_one_line_rewritten_then_cleared() -> None:
    out = _Terminal()
    progress = Progress(out, 2)
    progress.finished(CheckResult("x.a", Status.PASS, "fine", "", 0.1))
    progress.note("waiting for VMs: alpha booting 40%")
    progress.note("waiting for VMs: alpha booting 40%")  # unchanged: not written again
    progress.finished(CheckResult("x.b", Status.FAIL, "bad", "", 0.1))
    progress.clear()

    text = out.getvalue()
    assert "\n" not in text
    assert text.count("\r\033[K") == 4
    assert "[1/2] waiting for VMs: alpha booting 40%" in text
    assert "[2/2] x.b: fail" in text
    assert text.endswith("\r\033[K")


def test_junit_and_text_report_of_mixed_results() -> None:
    results = [
        CheckResult("docker.daemon", Status.FAIL, "daemon down <&>", "start it", 0.5),
        CheckResult("docker.kind-network", Status.SKIPPED, "needs docker.daemon", "", 0.0),
        CheckResult("platform.ssh-agent", Status.WARN, "no agent", "ssh-add", 0.01),
        CheckResult("tart.installed", Status.PASS, "tart 2.35.0", "", 0.1),
    ]
    suite = ET.fromstring(doctor.to_junit(results, 1.25, 0.0))
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "1", "1")
    assert suite.get("time") == "1.250"
    assert suite.get("timestamp") == "1970-01-01T00:00:00"
    failure = suite.find("testcase[@name='daemon']/failure")
    assert failure is not None and failure.get("message") == "daemon down <&>"
    assert failure.text == "daemon down <&>\nhint: start it"
    warned = suite.find("testcase[@name='ssh-agent']/system-out")
    assert warned is not None and warned.text == "warning: no agent\nhint: ssh-add"

    text = doctor.render_text(results, 1.25)
    assert text.splitlines() == [
        "✗ docker.daemon        daemon down <&>",
        "                       hint: start it",
        "- docker.kind-network  needs docker.daemon",
        "",
        "! platform.ssh-agent   no agent",
        "                       hint: ssh-add",
        "",
        "✓ tart.installed       tart 2.35.0",
        "",
        "1 passed, 1 warned, 1 failed, 1 skipped in 1.2 s",
    ]


def test_every_dependency_names_an_earlier_check() -> None:
    seen: set[str] = set()
    for check in CHECKS:
        assert set(check.needs) <= seen, check.name
        seen.add(check.name)
    assert len(seen) == len(CHECKS)


async def test_the_first_round_includes_every_kubernetes_resource(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Doctor judges the snapshot of the first round: it must not be taken while the
    Applications are still being listed (the nodes and pods answered first)."""
    release = asyncio.Event()
    dispatch = FakeKubeAPI._dispatch

    async def slow_applications(api: FakeKubeAPI, request: web.Request) -> web.StreamResponse:
        if request.path.endswith("/applications") and "watch" not in request.query:
            await release.wait()
        return await dispatch(api, request)

    monkeypatch.setattr(FakeKubeAPI, "_dispatch", slow_applications)
    cluster = await start_lab_cluster(tls=False, animate=False, workdir=tmp_path / "kube")
    settings = Settings(kubeconfig=str(cluster.kubeconfig_path), kube_request_timeout=30)
    monitor = Monitor(settings, sources={"kube"})
    try:
        await monitor.start()
        snap = await wait_snapshot(monitor, lambda s: len(s.nodes) == 4 and s.argocd is not None)
        assert "applications" not in snap.sources
        assert await monitor.wait_first_round(1.0) is False  # still waiting for them

        release.set()
        assert await monitor.wait_first_round(10) is True
        assert monitor.snapshot.sources["applications"].ok
        assert len(monitor.snapshot.applications) == 3
    finally:
        release.set()
        await monitor.stop()
        await cluster.stop()


# --- the checks' judgement on snapshots the platform tests do not build ------------------


def _pod(
    component: str,
    status: str = "Running",
    ready: str = "1/1",
    *,
    name: str | None = None,
    restarts: str = "0",
) -> Pod:
    done, total = ready.split("/")
    running_ready = status == "Running" and done == total
    pod_name = name or f"{component}-7d9f-x1"
    return Pod(pod_name, NS, ready, status, restarts, "w", None, component, running_ready)


def _argocd(*pods: Pod) -> Snapshot:
    kube = SourceStatus("kubernetes", ok=True)
    return Snapshot(
        0.0, "local", sources={"kubernetes": kube}, pods=pods, argocd=argocd_summary(pods)
    )


def _apps(status: SourceStatus | None, *apps: Application) -> Snapshot:
    sources = {"applications": status} if status else {}
    return Snapshot(0.0, "local", sources=sources, applications=apps)


def _app(name: str, sync: str = "Synced", health: str = "Healthy") -> Application:
    return Application(name, NS, "default", sync, health, "Succeeded", "")


def _node(name: str, status: str = "Ready", container: str | None = "running") -> Node:
    return Node(name, status, "<none>", "v1.33.1", None, container_state=container)


def _kube(error: str | None, **parts: object) -> Snapshot:
    status = SourceStatus("kubernetes", ok=error is None, error=error)
    return Snapshot(0.0, "local", sources={"kubernetes": status}, **parts)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Judgement:
    id: str
    check: Callable[[Context], Awaitable[Outcome]]
    snapshot: Snapshot
    status: str
    reason: str


NS = "argocd"
STANDARD = [_pod(c) for c in ARGOCD_COMPONENTS]
APPS_OK = SourceStatus("applications", ok=True)
components = doctor.check_argocd_components
applications = doctor.check_applications

JUDGEMENTS = [
    Judgement("all-components", components, _argocd(*STANDARD), "pass", "7/7 components"),
    Judgement(
        "component-without-pod",
        components,
        _argocd(*STANDARD[:2], *STANDARD[3:]),
        "fail",
        "6/7 components running and ready; argocd-dex-server: no pod",
    ),
    Judgement(
        "old-rollout-pod-crashing",
        components,
        _argocd(
            *STANDARD,
            _pod("argocd-server", "CrashLoopBackOff", "0/1", name="old", restarts="4 (1m ago)"),
        ),
        "warn",
        "7/7 components ready, but not every pod: old CrashLoopBackOff 0/1, restarts 4 (1m ago)",
    ),
    Judgement(
        "completed-job-is-fine",
        components,
        _argocd(*STANDARD, _pod("argocd-cleanup", "Completed", "0/1")),
        "pass",
        "7/7 components",
    ),
    Judgement(
        "ha-install",
        components,
        _argocd(*STANDARD, _pod("argocd-redis-ha-server")),
        "warn",
        "not a standard ArgoCD install",
    ),
    Judgement("empty-namespace", components, _argocd(), "fail", "no pods in namespace 'argocd'"),
    Judgement("apps-never-listed", applications, _apps(None), "fail", "no answer"),
    Judgement(
        "apps-forbidden",
        applications,
        _apps(SourceStatus("applications", ok=False, error="forbidden (403): no")),
        "fail",
        "forbidden (403): no",
    ),
    Judgement("no-apps", applications, _apps(APPS_OK), "warn", "no Applications in namespace"),
    Judgement(
        "one-app",
        applications,
        _apps(APPS_OK, _app("guestbook")),
        "pass",
        "the Application is Synced and Healthy",
    ),
    Judgement(
        "app-progressing",
        applications,
        _apps(APPS_OK, _app("a"), _app("b", health="Progressing")),
        "fail",
        "1 of 2 Applications not Synced and Healthy: b Synced/Progressing",
    ),
    Judgement(
        "api-answered-but-namespace-missing",
        doctor.check_kube_api,
        _kube("namespace 'argocd' not found", nodes=(_node("n"),), argocd=argocd_summary(())),
        "pass",
        "answered",
    ),
    Judgement(
        "api-down",
        doctor.check_kube_api,
        _kube("cannot reach the API server at x: refused"),
        "fail",
        "cannot reach the API server at x: refused",
    ),
    Judgement(
        "node-container-exited",
        doctor.check_nodes,
        _kube(None, nodes=(_node("cp"), _node("kind-worker", "NotReady", "exited"))),
        "fail",
        "kind-worker NotReady (container exited)",
    ),
    Judgement(
        "cordoned-node-is-ready",
        doctor.check_nodes,
        _kube(None, nodes=(_node("cp", "Ready,SchedulingDisabled"),)),
        "pass",
        "1 node Ready",
    ),
    Judgement(
        "nodes-forbidden",
        doctor.check_nodes,
        _kube("forbidden (403): nodes"),
        "fail",
        "no nodes listed: forbidden (403): nodes",
    ),
    Judgement(
        "pods-not-listable",
        doctor.check_argocd_namespace,
        _kube("forbidden (403): pods", nodes=(_node("n"),)),
        "fail",
        "cannot list the pods of namespace 'argocd': forbidden (403): pods",
    ),
]


@pytest.mark.parametrize("case", JUDGEMENTS, ids=[j.id for j in JUDGEMENTS])
async def test_check_judgement(case: Judgement) -> None:
    progress = Progress(io.StringIO(), 1)
    ctx = Context(Settings(), Monitor(Settings()), progress, snapshot=case.snapshot)
    outcome = await case.check(ctx)
    assert outcome.status.value == case.status, outcome
    assert case.reason in outcome.reason, outcome
    assert "\n" not in outcome.reason


class _Tart:
    def __init__(self, error: TartError) -> None:
        self.error = error

    async def version(self) -> str:
        raise self.error


@pytest.mark.parametrize(
    ("kind", "brew"),
    [
        (TartErrorKind.NOT_INSTALLED, True),
        (TartErrorKind.TIMEOUT, False),
        (TartErrorKind.KEYCHAIN_LOCKED, False),
        (TartErrorKind.OTHER, False),
    ],
)
async def test_tart_hint_follows_the_kind_of_failure(kind: TartErrorKind, brew: bool) -> None:
    ctx = _context(io.StringIO())
    ctx.monitor.tart = _Tart(TartError(kind, "tart --version failed"))  # type: ignore[assignment]
    outcome = await doctor.check_tart(ctx)
    assert outcome.status is Status.FAIL
    # Installing tart again does not help a tart that is there but hung or locked.
    assert ("brew install" in outcome.hint) is brew, outcome.hint
    if kind is TartErrorKind.TIMEOUT:
        assert outcome.hint.startswith("tart is installed but hung"), outcome.hint


def _with_sources(**sources: SourceStatus) -> Context:
    ctx = _context(io.StringIO())
    ctx.snapshot = Snapshot(generated_at=0.0, host="local", sources=dict(sources))
    return ctx


async def test_doctor_decides_on_the_status_kind_not_its_wording() -> None:
    crd = SourceStatus(
        "applications", ok=True, note="reworded: no CRD", kind=StatusKind.MISSING_CRD
    )
    outcome = await doctor.check_applications(_with_sources(applications=crd))
    assert (outcome.status, outcome.reason) == (Status.FAIL, "reworded: no CRD")
    # The same words without the kind are only a remark: no Applications, a warning.
    calm = SourceStatus("applications", ok=True, note="reworded: no CRD")
    assert (await doctor.check_applications(_with_sources(applications=calm))).status is (
        Status.WARN
    )
    missing = SourceStatus(
        "kubernetes", ok=False, error="no argocd here", kind=StatusKind.MISSING_NAMESPACE
    )
    outcome = await doctor.check_argocd_namespace(_with_sources(kubernetes=missing))
    assert outcome.reason == "namespace 'argocd' not found"
    other = SourceStatus("kubernetes", ok=False, error="namespace 'argocd' not found")
    outcome = await doctor.check_argocd_namespace(_with_sources(kubernetes=other))
    assert outcome.reason.startswith("cannot list the pods of namespace 'argocd'"), outcome


async def test_kubeconfig_hint_is_a_whole_sentence(tmp_path: Path) -> None:
    settings = Settings(kubeconfig=str(tmp_path / "absent"))
    ctx = Context(settings, Monitor(settings), Progress(io.StringIO(), 1))
    outcome = await doctor.check_kubeconfig(ctx)
    assert outcome.status is Status.FAIL
    assert outcome.hint.endswith("writes the Kind cluster's context into ~/.kube/config")
