"""`megatui doctor`: the platform's test suite in one command.

Every check reads the same monitor snapshot the TUI shows (same sources, same code
path, locally or with --host), so doctor cannot disagree with the screen. Checks
declare what they need; independent ones run concurrently and a check whose
prerequisite did not pass is skipped with the reason, instead of failing noisily.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TextIO

from megatui import report
from megatui.config import Settings
from megatui.headless import build_monitor
from megatui.model import Phase, Snapshot, TartState
from megatui.monitor import Monitor
from megatui.sources.hostkeys import HostKeyStoreError
from megatui.sources.tart import TartError


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str
    hint: str = ""


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    reason: str
    hint: str
    duration: float


@dataclass
class Context:
    settings: Settings
    monitor: Monitor
    out: TextIO
    snapshot: Snapshot | None = None
    first_round_complete: bool = True
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def snap(self) -> Snapshot:
        assert self.snapshot is not None
        return self.snapshot


CheckFn = Callable[[Context], Awaitable[Outcome]]


@dataclass(frozen=True)
class Check:
    name: str
    run: CheckFn
    needs: tuple[str, ...] = ()


def ok(reason: str) -> Outcome:
    return Outcome(Status.PASS, reason)


def warn(reason: str, hint: str = "") -> Outcome:
    return Outcome(Status.WARN, reason, hint)


def failed(reason: str, hint: str = "") -> Outcome:
    return Outcome(Status.FAIL, reason, hint)


def skipped(reason: str) -> Outcome:
    return Outcome(Status.SKIPPED, reason)


# --- platform ----------------------------------------------------------------


async def check_os(ctx: Context) -> Outcome:
    system = platform.system()
    name = f"macOS {platform.mac_ver()[0]}" if system == "Darwin" else system
    return ok(f"{name} {platform.machine()}")


async def check_python(ctx: Context) -> Outcome:
    version = platform.python_version()
    return ok(f"Python {version} ({sys.executable})")


async def check_terminal(ctx: Context) -> Outcome:
    if not sys.stdout.isatty():
        return ok("not a terminal (fine for scripts and CI)")
    size = shutil.get_terminal_size()
    colorterm = os.environ.get("COLORTERM", "")
    term = os.environ.get("TERM", "unknown")
    colours = (
        "truecolor"
        if colorterm in ("truecolor", "24bit")
        else ("256 colours" if "256" in term else "basic colours")
    )
    reason = f"{size.columns}x{size.lines}, {term}, {colours}"
    if size.columns < 80 or size.lines < 24:
        return warn(reason + ": smaller than 80x24", "enlarge the window for the TUI")
    if os.environ.get("NO_COLOR"):
        return warn(reason + ", NO_COLOR set", "unset NO_COLOR for status colours")
    return ok(reason)


async def check_ssh_agent(ctx: Context) -> Outcome:
    sock = os.environ.get("SSH_AUTH_SOCK")
    if not sock:
        return warn(
            "no SSH agent (SSH_AUTH_SOCK unset)",
            "key logins need --vm-key or [ssh] key; password logins still work",
        )
    if not Path(sock).exists():
        return warn(f"SSH_AUTH_SOCK points at a missing socket: {sock}", "restart your ssh-agent")
    try:
        import asyncssh

        async with asyncio.timeout(5):
            agent = await asyncssh.connect_agent(sock)
        if agent is None:
            return warn("cannot talk to the SSH agent", "restart your ssh-agent")
        try:
            async with asyncio.timeout(5):
                keys = await agent.get_keys()
        finally:
            agent.close()
    except (OSError, TimeoutError, Exception) as exc:  # any agent failure is just a warning
        return warn(f"cannot talk to the SSH agent: {exc}", "restart your ssh-agent")
    if not keys:
        return warn("the SSH agent holds no keys", "ssh-add your key")
    return ok(f"SSH agent with {len(keys)} key{'s' if len(keys) != 1 else ''}")


# --- docker ----------------------------------------------------------------


async def check_docker_daemon(ctx: Context) -> Outcome:
    docker = ctx.snap.docker
    if docker is None:
        return failed("the Docker source gave no answer")
    if not docker.reachable:
        return failed(
            docker.error or "Docker daemon unreachable",
            "start Docker (Docker Desktop, colima or dockerd) or set [docker] host",
        )
    return ok(f"Docker {docker.server_version or ''} reachable".replace("  ", " "))


async def check_kind_network(ctx: Context) -> Outcome:
    docker = ctx.snap.docker
    assert docker is not None
    if docker.kind_network:
        return ok("network 'kind' exists")
    return failed(
        "no Docker network named exactly 'kind'",
        "kind creates it with the first cluster: `kind create cluster`",
    )


async def check_kind_nodes(ctx: Context) -> Outcome:
    docker = ctx.snap.docker
    assert docker is not None
    if not docker.clusters:
        return failed("no Kind node containers found", "create one with `kind create cluster`")
    down = [n for c in docker.clusters for n in c.nodes if n.state != "running"]
    total = sum(len(c.nodes) for c in docker.clusters)
    names = ", ".join(c.name for c in docker.clusters)
    if down:
        listed = ", ".join(f"{n.name} {n.state}" for n in down)
        return failed(
            f"{len(down)} of {total} Kind node containers not running: {listed}",
            "docker start them, or recreate the cluster",
        )
    return ok(f"Kind cluster {names}: {total} node containers running")


# --- kubernetes and argocd ----------------------------------------------------------------


async def check_kube_api(ctx: Context) -> Outcome:
    status = ctx.snap.sources.get("kubernetes")
    context = ctx.snap.kube_context or "the current context"
    if status is None:
        return failed("the Kubernetes source gave no answer")
    if not status.ok and not ctx.snap.nodes:
        return failed(
            status.error or "API server unreachable",
            "check --kubeconfig/--context, and that the cluster is running",
        )
    return ok(f"{context}: API server answered")


async def check_nodes(ctx: Context) -> Outcome:
    nodes = ctx.snap.nodes
    registered = [n for n in nodes if n.status != "NotRegistered"]
    not_ready = [n for n in registered if not n.status.startswith("Ready")]
    expected = ctx.settings.expected_nodes
    problems = []
    if not_ready:
        problems.append(", ".join(f"{n.name} {n.status}" for n in not_ready))
    if expected is not None and len(registered) != expected:
        problems.append(f"{len(registered)} nodes, expected {expected}")
    if problems:
        return failed("; ".join(problems), "kubectl describe node NAME shows why")
    return ok(f"{len(registered)} nodes Ready")


def _namespace_missing(ctx: Context) -> bool:
    status = ctx.snap.sources.get("kubernetes")
    return bool(status and status.error == f"namespace '{ctx.settings.namespace}' not found")


async def check_argocd_namespace(ctx: Context) -> Outcome:
    ns = ctx.settings.namespace
    if _namespace_missing(ctx):
        return failed(
            f"namespace '{ns}' not found",
            "install ArgoCD: kubectl create namespace argocd && kubectl apply -n "
            "argocd -f install.yaml",
        )
    return ok(f"namespace '{ns}' with {len(ctx.snap.pods)} pods")


async def check_argocd_components(ctx: Context) -> Outcome:
    summary = ctx.snap.argocd
    bad = [p for p in ctx.snap.pods if not p.running_ready]
    if summary is None or not summary.standard_install:
        if bad:
            listed = ", ".join(f"{p.name} {p.status} {p.ready}" for p in bad)
            return failed(f"pods not running and ready: {listed}")
        return warn("not a standard ArgoCD install; all its pods are running and ready")
    if summary.ready == summary.total and not bad:
        return ok(f"{summary.ready}/{summary.total} components running and ready")
    detail = ", ".join(f"{p.name} {p.status} {p.ready}" for p in bad)
    return failed(
        f"{summary.ready}/{summary.total} components ready: {detail}",
        f"kubectl -n {ctx.settings.namespace} logs POD --previous shows why a pod crashes",
    )


async def check_applications(ctx: Context) -> Outcome:
    status = ctx.snap.sources.get("applications")
    if status is not None and not status.ok:
        return failed(status.error or "cannot list Applications")
    apps = ctx.snap.applications
    if status is not None and status.error:  # the calm "CRD not installed" line
        return failed(status.error, "install ArgoCD's CRDs (install.yaml)")
    bad = [a for a in apps if a.sync != "Synced" or a.health != "Healthy"]
    if bad:
        listed = ", ".join(f"{a.name} {a.sync}/{a.health}" for a in bad)
        return failed(
            f"{len(bad)} of {len(apps)} Applications not Synced/Healthy: {listed}",
            "argocd app get NAME shows the diff and the failing resources",
        )
    return ok(f"{len(apps)} Applications Synced and Healthy")


# --- tart and VMs ----------------------------------------------------------------


async def check_tart(ctx: Context) -> Outcome:
    try:
        version = await ctx.monitor.tart.version()
    except TartError as exc:
        return failed(str(exc), "brew install cirruslabs/cli/tart, or set --tart / tart.path")
    return ok(f"tart {version}")


def _configured_vms(ctx: Context) -> list[str]:
    return list(ctx.settings.doctor_vms) or sorted(ctx.settings.vms)


async def check_vms_exist(ctx: Context) -> Outcome:
    wanted = _configured_vms(ctx)
    known = ctx.monitor.known_vm_names()
    if known is None:
        status = ctx.snap.sources.get("tart")
        return failed(status.error if status and status.error else "tart list gave no answer")
    if not wanted:
        return ok(f"{len(known)} VMs (none configured in [doctor] vms)")
    missing = [n for n in wanted if n not in known]
    if missing:
        return failed(
            f"configured VMs missing: {', '.join(missing)}",
            "tart clone IMAGE NAME creates a VM; tart list shows what exists",
        )
    return ok(f"all {len(wanted)} configured VMs exist")


async def _wait_running_vms(ctx: Context) -> Snapshot:
    """Wait until every running VM is ready or in error, or the timeout: once, shared."""
    cached = ctx.extra.get("vms_settled")
    if isinstance(cached, Snapshot):
        return cached
    lock = ctx.extra.setdefault("vms_lock", asyncio.Lock())
    assert isinstance(lock, asyncio.Lock)
    async with lock:
        cached = ctx.extra.get("vms_settled")
        if isinstance(cached, Snapshot):
            return cached
        deadline = time.monotonic() + ctx.settings.doctor_timeout
        changed = asyncio.Event()
        unsubscribe = ctx.monitor.subscribe(lambda _s: changed.set())
        last = ""
        try:
            while True:
                snap = ctx.monitor.snapshot
                running = [vm for vm in snap.vms if vm.state is TartState.RUNNING]
                waiting = [vm for vm in running if vm.phase not in (Phase.READY, Phase.ERROR)]
                if waiting:
                    line = "  waiting for VMs: " + ", ".join(
                        f"{vm.name} {vm.phase} {round(vm.progress * 100)}%" for vm in waiting
                    )
                    if line != last:
                        print(line, file=ctx.out, flush=True)
                        last = line
                remaining = deadline - time.monotonic()
                if not waiting or remaining <= 0:
                    ctx.extra["vms_settled"] = snap
                    return snap
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, 1.0)):
                        await changed.wait()
        finally:
            unsubscribe()


async def check_vms_boot(ctx: Context) -> Outcome:
    snap = await _wait_running_vms(ctx)
    running = [vm for vm in snap.vms if vm.state is TartState.RUNNING]
    if not running:
        return ok("no running VMs")
    # A VM that answers SSH but refuses our login booted fine: the login check says so.
    stuck = [vm for vm in running if vm.phase not in (Phase.READY, Phase.ERROR)]
    if stuck:
        listed = "; ".join(
            f"{vm.name} stuck in {vm.phase}" + (f" ({vm.hint})" if vm.hint else "") for vm in stuck
        )
        return failed(
            f"not ready within {report.duration(ctx.settings.doctor_timeout)}: {listed}",
            "megatui shows the phase timeline of each VM (key d)",
        )
    return ok(f"{len(running)} running VMs reached SSH")


async def check_ssh_logins(ctx: Context) -> Outcome:
    snap = await _wait_running_vms(ctx)
    running = [vm for vm in snap.vms if vm.state is TartState.RUNNING]
    broken = [vm for vm in running if vm.phase is Phase.ERROR]
    if broken:
        listed = "; ".join(f"{vm.name}: {vm.error}" for vm in broken)
        return failed(
            listed,
            "set [ssh] user/password/key or [vms.NAME]; after a VM rebuild, "
            "`megatui forget-key NAME`",
        )
    ready = [vm for vm in running if vm.phase is Phase.READY]
    try:
        unknown_keys = [vm.name for vm in ready if ctx.monitor.hostkeys.lookup(vm.name) is None]
    except HostKeyStoreError as exc:
        return failed(str(exc), "remove or repair the file; keys are trusted again on next login")
    if unknown_keys:
        return warn(f"host keys not stored for: {', '.join(unknown_keys)}")
    if not ready:
        return ok("no running VMs to log in to")
    return ok(f"{len(ready)} VMs accept logins; host keys known")


# --- remote host ----------------------------------------------------------------


async def check_keychain(ctx: Context) -> Outcome:
    if not ctx.monitor.transport.is_remote:
        return skipped("not using --host")
    from megatui.remote import KEYCHAIN_HINT, keychain_locked

    locked = await keychain_locked(ctx.monitor.transport)  # type: ignore[arg-type]
    if locked is None:
        return skipped("the host has no macOS keychain (`security` not found)")
    if locked:
        return failed("the login keychain of the host is locked", KEYCHAIN_HINT)
    return ok("the login keychain of the host is unlocked")


CHECKS: tuple[Check, ...] = (
    Check("platform.os", check_os),
    Check("platform.python", check_python),
    Check("platform.terminal", check_terminal),
    Check("platform.ssh-agent", check_ssh_agent),
    Check("docker.daemon", check_docker_daemon),
    Check("docker.kind-network", check_kind_network, ("docker.daemon",)),
    Check("docker.kind-nodes", check_kind_nodes, ("docker.daemon",)),
    Check("kubernetes.api", check_kube_api),
    Check("kubernetes.nodes", check_nodes, ("kubernetes.api",)),
    Check("argocd.namespace", check_argocd_namespace, ("kubernetes.api",)),
    Check("argocd.components", check_argocd_components, ("argocd.namespace",)),
    Check("argocd.applications", check_applications, ("argocd.namespace",)),
    Check("tart.installed", check_tart),
    Check("tart.vms", check_vms_exist, ("tart.installed",)),
    Check("tart.vms-boot", check_vms_boot, ("tart.installed",)),
    Check("tart.ssh-logins", check_ssh_logins, ("tart.installed",)),
    Check("remote.keychain", check_keychain),
)

_MARK = {Status.PASS: "✓", Status.WARN: "!", Status.FAIL: "✗", Status.SKIPPED: "-"}


async def run_checks(ctx: Context, checks: Sequence[Check] = CHECKS) -> list[CheckResult]:
    results: dict[str, CheckResult] = {}
    done: dict[str, asyncio.Event] = {c.name: asyncio.Event() for c in checks}

    async def run_one(check: Check) -> None:
        for need in check.needs:
            await done[need].wait()
        blockers = [n for n in check.needs if results[n].status not in (Status.PASS, Status.WARN)]
        started = time.monotonic()
        if blockers:
            outcome = skipped(f"needs {', '.join(blockers)}")
        else:
            try:
                outcome = await check.run(ctx)
            except Exception as exc:  # a check's own bug must not hide the others
                outcome = failed(f"check crashed: {type(exc).__name__}: {exc}")
        result = CheckResult(
            check.name, outcome.status, outcome.reason, outcome.hint, time.monotonic() - started
        )
        results[check.name] = result
        print(f"{_MARK[result.status]} {result.name:<22} {result.reason}", file=ctx.out, flush=True)
        done[check.name].set()

    await asyncio.gather(*(run_one(c) for c in checks))
    return [results[c.name] for c in checks]


def totals(results: Sequence[CheckResult]) -> dict[str, int]:
    return {s.value: sum(1 for r in results if r.status is s) for s in Status}


def to_json(results: Sequence[CheckResult], started: float, duration: float) -> dict[str, object]:
    return {
        "timestamp": report.iso(started),
        "platform": {
            "system": platform.system(),
            "machine": platform.machine(),
            "python": platform.python_version(),
        },
        "totals": totals(results),
        "duration": round(duration, 3),
        "checks": [
            {
                "name": r.name,
                "status": r.status.value,
                "reason": r.reason,
                "hint": r.hint,
                "duration": round(r.duration, 3),
            }
            for r in results
        ],
    }


def to_junit(results: Sequence[CheckResult], duration: float) -> str:
    count = totals(results)
    suite = ET.Element(
        "testsuite",
        name="megatui doctor",
        tests=str(len(results)),
        failures=str(count["fail"]),
        errors="0",
        skipped=str(count["skipped"]),
        time=f"{duration:.3f}",
    )
    for r in results:
        group, _, name = r.name.partition(".")
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"megatui.doctor.{group}",
            name=name,
            time=f"{r.duration:.3f}",
        )
        if r.status is Status.FAIL:
            failure = ET.SubElement(case, "failure", message=r.reason)
            failure.text = r.hint or r.reason
        elif r.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=r.reason)
        elif r.status is Status.WARN:
            out = ET.SubElement(case, "system-out")
            out.text = f"warning: {r.reason}" + (f" (hint: {r.hint})" if r.hint else "")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, "unicode") + "\n"


def render_text(results: Sequence[CheckResult], duration: float) -> str:
    count = totals(results)
    lines = []
    for r in results:
        if r.status in (Status.FAIL, Status.WARN) and r.hint:
            lines.append(f"{_MARK[r.status]} {r.name}: {r.reason}\n    hint: {r.hint}")
    summary = (
        f"{count['pass']} passed, {count['warn']} warned, {count['fail']} failed, "
        f"{count['skipped']} skipped in {duration:.1f} s"
    )
    return "\n".join([*lines, summary])


async def run(
    settings: Settings, as_json: bool, junit: str | None, out: TextIO | None = None
) -> int:
    progress = out or sys.stderr
    started_wall = time.time()
    started = time.monotonic()
    monitor = build_monitor(settings)
    ctx = Context(settings, monitor, progress)
    try:
        connect = getattr(monitor.transport, "connect", None)
        if connect is not None:
            try:
                await connect()
            except Exception as exc:
                print(f"megatui: {exc}", file=sys.stderr)
                return 1
        await monitor.start()
        ctx.first_round_complete = await monitor.wait_first_round(
            min(30.0, settings.doctor_timeout)
        )
        ctx.snapshot = monitor.snapshot
        results = await run_checks(ctx)
    finally:
        await monitor.stop()
        await monitor.transport.close()
    duration = time.monotonic() - started
    if junit:
        Path(junit).write_text(to_junit(results, duration))
    if as_json:
        print(report.dumps(to_json(results, started_wall, duration)))
    else:
        print(render_text(results, duration))
    return 1 if any(r.status is Status.FAIL for r in results) else 0
