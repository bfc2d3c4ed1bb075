"""`megatui doctor`: the platform's test suite in one command.

The checks read the monitor's snapshot after its first round, the one the TUI shows
(same sources, same code path, locally or with --host), so doctor cannot disagree
with the screen; the few things a snapshot does not hold (`tart --version`, whether
the kubeconfig names a usable context) are asked through the same objects the
sources use. Checks declare what they need; independent ones run concurrently, and
a check whose prerequisite did not pass is skipped with the reason instead of
failing noisily. Running VMs are given until --timeout to become ready.

Exit codes: 0 when every check passed or only warned, 1 when any check failed, 2 for
a usage problem (a bad --timeout, a JUnit file that cannot be written; bad config and
a malformed --host are caught by the CLI, with the same code).
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
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import TextIO

from megatui import __version__, readiness, report
from megatui.config import Settings
from megatui.headless import build_monitor
from megatui.model import VM, Phase, Pod, Snapshot, StatusKind, TartState
from megatui.monitor import Monitor
from megatui.sources.hostkeys import HostKeyStoreError
from megatui.sources.tart import TartError, TartErrorKind
from megatui.transport import TransportError


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


class Progress:
    """What doctor is doing while it runs, on stderr.

    On a terminal: one line, rewritten in place and cleared before the report (which
    lists every check), so nothing is shown twice. Elsewhere (CI logs, pipes): a line
    per finished check, and a line whenever the VMs being waited for change phase.
    """

    def __init__(self, out: TextIO, total: int) -> None:
        self.out = out
        self.total = total
        self.done = 0
        self.tty = _isatty(out)
        self._shown = False
        self._last_note = ""
        self._last_key = ""

    def finished(self, result: CheckResult) -> None:
        self.done += 1
        if self.tty:
            self._status(f"{result.name}: {result.status}")
        else:
            self._line(f"{_MARK[result.status]} {result.name:<24} {result.reason}")

    def note(self, text: str, key: str | None = None) -> None:
        """A passing state (VMs booting). A terminal shows every new text; a log gets a
        line only when `key` (say, the VMs' phases without their percentages) changes."""
        if self.tty:
            if text != self._last_note:
                self._status(text)
        elif (key if key is not None else text) != self._last_key:
            self._line("  " + text)
        self._last_note = text
        self._last_key = key if key is not None else text

    def clear(self) -> None:
        if self.tty and self._shown:
            self.out.write("\r\033[K")
            self.out.flush()
            self._shown = False

    def _status(self, text: str) -> None:
        width = max(20, shutil.get_terminal_size().columns - 1)
        line = f"[{self.done}/{self.total}] {text}"
        if len(line) > width:
            line = line[: width - 1] + "…"
        self.out.write("\r\033[K" + line)
        self.out.flush()
        self._shown = True

    def _line(self, text: str) -> None:
        print(text, file=self.out, flush=True)


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


@dataclass
class Context:
    settings: Settings
    monitor: Monitor
    progress: Progress
    #: The monitor's first round (every source answered once), while it runs.
    first_round: asyncio.Task[bool] | None = None
    snapshot: Snapshot | None = None
    #: Why the --host connection failed, if it did.
    connect_error: str | None = None
    extra: dict[str, object] = field(default_factory=dict)

    async def first_snapshot(self) -> Snapshot:
        """The snapshot once every source has answered once (or its time ran out): one
        view of the platform, the same for every check that reads it."""
        if self.snapshot is None:
            if self.first_round is not None:
                await asyncio.shield(self.first_round)
            if self.snapshot is None:
                self.snapshot = self.monitor.snapshot
        return self.snapshot


CheckFn = Callable[[Context], Awaitable[Outcome]]


@dataclass(frozen=True)
class Check:
    name: str
    run: CheckFn
    needs: tuple[str, ...] = ()
    #: Goes through the --host connection: with --host, it needs remote.connection.
    via_host: bool = False


def ok(reason: str) -> Outcome:
    return Outcome(Status.PASS, reason)


def warn(reason: str, hint: str = "") -> Outcome:
    return Outcome(Status.WARN, reason, hint)


def failed(reason: str, hint: str = "") -> Outcome:
    return Outcome(Status.FAIL, reason, hint)


def skipped(reason: str) -> Outcome:
    return Outcome(Status.SKIPPED, reason)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


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
    term = os.environ.get("TERM", "")
    colours = (
        "truecolor"
        if colorterm in ("truecolor", "24bit")
        else ("256 colours" if "256" in term else "basic colours")
    )
    reason = f"{size.columns}x{size.lines}, {term or 'TERM unset'}, {colours}"
    if term in ("", "dumb"):
        return warn(reason + ": no colours or cursor control", "run the TUI in a real terminal")
    if size.columns < 80 or size.lines < 24:
        return warn(reason + ": smaller than 80x24", "enlarge the window for the TUI")
    if os.environ.get("NO_COLOR"):
        return warn(reason + ", NO_COLOR set", "unset NO_COLOR for status colours")
    return ok(reason)


async def check_ssh_agent(ctx: Context) -> Outcome:
    if not ctx.settings.ssh_agent and not ctx.settings.host:
        # VM logins are told not to use it, and there is no --host connection.
        return skipped("not used ([ssh] agent = false)")
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
    except Exception as exc:  # any agent failure is just a warning
        return warn(f"cannot talk to the SSH agent: {exc}", "restart your ssh-agent")
    if not keys:
        return warn("the SSH agent holds no keys", "ssh-add your key")
    return ok(f"SSH agent with {_plural(len(keys), 'key')}")


# --- docker ----------------------------------------------------------------


async def check_docker_daemon(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    docker = snap.docker
    if docker is None:
        return failed("the Docker source gave no answer")
    if not docker.reachable:
        return failed(
            docker.error or "Docker daemon unreachable",
            "start Docker (Docker Desktop, colima or dockerd) or set [docker] host",
        )
    return ok(f"Docker {docker.server_version} reachable" if docker.server_version else "reachable")


async def check_kind_network(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    docker = snap.docker
    assert docker is not None
    if docker.kind_network:
        return ok("network 'kind' exists")
    return failed(
        "no Docker network named exactly 'kind'",
        "kind creates it with the first cluster: `kind create cluster`",
    )


async def check_kind_nodes(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    docker = snap.docker
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
    label = "cluster" if len(docker.clusters) == 1 else "clusters"
    return ok(f"Kind {label} {names}: {_plural(total, 'node container')} running")


# --- kubernetes and argocd ----------------------------------------------------------------


async def check_kubeconfig(ctx: Context) -> Outcome:
    """The kubeconfig, its context and that context's cluster, read exactly as the
    Kubernetes source reads them (with --host: the host's kubeconfig, as forwarded)."""
    from megatui.sources.kube import connect
    from megatui.sources.kubeconfig import KubeError

    remote = ctx.monitor.transport.is_remote
    if remote:  # the monitor fetches and forwards the host's kubeconfig first
        await ctx.first_snapshot()
    try:
        client = await connect(ctx.monitor.source_settings)
    except KubeError as exc:
        reason = str(exc)
        status = ctx.snapshot.sources.get("kubernetes") if ctx.snapshot else None
        if remote and status is not None and not status.ok and status.error:
            reason = status.error  # what went wrong on the host, not a local temp path
        return failed(
            reason,
            "set --kubeconfig/--context or [kube] kubeconfig/context; "
            "`kind export kubeconfig` writes the Kind cluster's context into ~/.kube/config",
        )
    with contextlib.suppress(Exception):
        await client.api.close()
    return ok(f"context '{client.context}': {client.server}")


def _kube_answered(snap: Snapshot) -> bool:
    """Whether the API server answered any request (a list, or a 404 for the CRD)."""
    status = snap.sources.get("kubernetes")
    apps = snap.sources.get("applications")
    return bool(
        (status is not None and status.ok)
        or any(n.status != "NotRegistered" for n in snap.nodes)
        or snap.argocd is not None  # the pods were listed
        or (apps is not None and apps.ok)
    )


async def check_kube_api(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    status = snap.sources.get("kubernetes")
    apps = snap.sources.get("applications")
    context = snap.kube_context or "the current context"
    if status is None and apps is None:
        return failed("the Kubernetes source gave no answer")
    if not _kube_answered(snap):
        error = (status.error if status else None) or (apps.error if apps else None)
        return failed(
            error or "API server unreachable",
            "check that the cluster is running (`docker ps`, `kind get clusters`) and "
            "that --kubeconfig/--context name it",
        )
    return ok(f"the API server of context '{context}' answered")


def _node_problem(node_status: str, container_state: str | None) -> str:
    if container_state and container_state != "running":
        return f"{node_status} (container {container_state})"
    return node_status


async def check_nodes(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    registered = [n for n in snap.nodes if n.status != "NotRegistered"]
    expected = ctx.settings.expected_nodes
    hint = "kubectl describe node NAME shows why"
    if not registered:
        status = snap.sources.get("kubernetes")
        why = f": {status.error}" if status and not status.ok and status.error else ""
        return failed("no nodes listed" + why, hint)
    not_ready = [n for n in registered if n.status.split(",")[0] != "Ready"]
    problems = []
    if not_ready:
        problems.append(
            ", ".join(f"{n.name} {_node_problem(n.status, n.container_state)}" for n in not_ready)
        )
    if expected is not None and len(registered) != expected:
        problems.append(f"{len(registered)} nodes, expected {expected}")
    if problems:
        return failed("; ".join(problems), hint)
    of = f" (expected {expected})" if expected is not None else ""
    return ok(f"{_plural(len(registered), 'node')} Ready{of}")


def _namespace_missing(snap: Snapshot) -> bool:
    status = snap.sources.get("kubernetes")
    return bool(status and status.kind is StatusKind.MISSING_NAMESPACE)


async def check_argocd_namespace(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    ns = ctx.settings.namespace
    if _namespace_missing(snap):
        return failed(
            f"namespace '{ns}' not found",
            f"install ArgoCD: kubectl create namespace {ns} && kubectl apply -n {ns} -f "
            "https://raw.githubusercontent.com/argoproj/argo-cd/stable/manifests/install.yaml",
        )
    if snap.argocd is None:  # the pods of the namespace could not be listed
        status = snap.sources.get("kubernetes")
        error = status.error if status and status.error else "no answer"
        return failed(f"cannot list the pods of namespace '{ns}': {error}")
    return ok(f"namespace '{ns}' with {_plural(len(snap.pods), 'pod')}")


def _unhealthy(pod: Pod) -> bool:
    return not pod.running_ready and pod.status != "Completed"


def _describe_pod(pod: Pod) -> str:
    text = f"{pod.name} {pod.status} {pod.ready}"
    if pod.restarts and pod.restarts != "0":
        text += f", restarts {pod.restarts}"
    if pod.why:
        text += f" ({pod.why})"
    return text


async def check_argocd_components(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    ns = ctx.settings.namespace
    summary = snap.argocd
    pods = snap.pods
    bad = [p for p in pods if _unhealthy(p)]
    hint = f"kubectl -n {ns} describe pod POD; kubectl -n {ns} logs POD --previous"
    if summary is None or not summary.standard_install:
        if not pods:
            return failed(f"no pods in namespace '{ns}'", "install ArgoCD (install.yaml)")
        if bad:
            listed = "; ".join(_describe_pod(p) for p in bad)
            return failed(f"pods not running and ready: {listed}", hint)
        return warn(
            f"not a standard ArgoCD install; its {_plural(len(pods), 'pod')} run and are ready",
            "doctor knows the 7 components of the standard install.yaml",
        )
    if summary.missing:
        parts = []
        for component in summary.missing:
            own = [p for p in pods if p.component == component]
            if not own:
                parts.append(f"{component}: no pod")
            else:
                parts.extend(_describe_pod(p) for p in own if _unhealthy(p))
        return failed(
            f"{summary.ready}/{summary.total} components running and ready; " + "; ".join(parts),
            hint,
        )
    if bad:  # every component has a ready pod; others (an old rollout, a job) do not
        listed = "; ".join(_describe_pod(p) for p in bad)
        return warn(
            f"{summary.ready}/{summary.total} components ready, but not every pod: {listed}",
            hint,
        )
    return ok(f"{summary.ready}/{summary.total} components running and ready")


async def check_applications(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    ns = ctx.settings.namespace
    status = snap.sources.get("applications")
    if status is None:
        return failed("the Applications were not listed: no answer from the API server")
    if not status.ok:
        return failed(status.error or "cannot list Applications")
    if status.kind is StatusKind.MISSING_CRD:  # a calm "ok" for the TUI, broken here
        return failed(
            status.note or "ArgoCD Applications CRD not installed",
            "install ArgoCD's CRDs: they come with install.yaml",
        )
    apps = snap.applications
    if not apps:
        return warn(
            f"no Applications in namespace '{ns}'",
            "create them with `argocd app create` or kubectl apply",
        )
    bad = [a for a in apps if a.sync != "Synced" or a.health != "Healthy"]
    if bad:
        listed = ", ".join(f"{a.name} {a.sync}/{a.health}" for a in bad)
        return failed(
            f"{len(bad)} of {_plural(len(apps), 'Application')} not Synced and Healthy: " + listed,
            "argocd app get NAME shows the diff and the failing resources",
        )
    everyone = "the Application is" if len(apps) == 1 else f"all {len(apps)} Applications are"
    return ok(f"{everyone} Synced and Healthy")


# --- tart and VMs ----------------------------------------------------------------


async def check_tart(ctx: Context) -> Outcome:
    try:
        version = await ctx.monitor.tart.version()
    except TartError as exc:
        return failed(str(exc), _TART_HINTS.get(exc.kind, _TART_OTHER_HINT))
    return ok(f"tart {version}")


# Installed but hung or locked is not fixed by installing it again.
_TART_OTHER_HINT = "run `tart --version` on the Mac to see what it says"
_TART_HINTS = {
    TartErrorKind.NOT_INSTALLED: "brew install cirruslabs/cli/tart, or set --tart / tart.path",
    TartErrorKind.TIMEOUT: (
        "tart is installed but hung: look for a stuck tart process (`pgrep -l tart`) "
        "and end it, or reboot the Mac"
    ),
    TartErrorKind.KEYCHAIN_LOCKED: "run `security unlock-keychain login.keychain` on the Mac",
}


def _configured_vms(ctx: Context) -> list[str]:
    return list(ctx.settings.doctor_vms) or sorted(ctx.settings.vms)


def _tart_unlisted(ctx: Context) -> Outcome | None:
    """The outcome of VM checks when `tart list` never answered."""
    if ctx.monitor.known_vm_names() is not None:
        return None
    status = ctx.monitor.snapshot.sources.get("tart")
    error = status.error if status and status.error else "no answer"
    return skipped(f"tart list failed: {error}")


def _in_scope(ctx: Context, vm: VM) -> bool:
    """Running VMs doctor waits for: all, or those named in [doctor] vms."""
    wanted = ctx.settings.doctor_vms
    return vm.state is TartState.RUNNING and (not wanted or vm.name in wanted)


async def check_vms_exist(ctx: Context) -> Outcome:
    snap = await ctx.first_snapshot()
    wanted = _configured_vms(ctx)
    known = ctx.monitor.known_vm_names()
    if known is None:
        status = snap.sources.get("tart")
        return failed(
            f"tart list failed: {status.error if status and status.error else 'no answer'}"
        )
    if not wanted:
        return ok(f"tart lists {_plural(len(known), 'VM')}; none configured in [doctor] vms")
    missing = [n for n in wanted if n not in known]
    if missing:
        return failed(
            f"configured VMs missing: {', '.join(missing)}",
            "tart clone IMAGE NAME creates a VM; tart list shows what exists",
        )
    return ok(f"all {_plural(len(wanted), 'configured VM')} exist")


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
        try:
            while True:
                snap = ctx.monitor.snapshot
                running = [vm for vm in snap.vms if _in_scope(ctx, vm)]
                # The same stop rule as `megatui wait` and the TUI's wait dialog.
                tart = snap.sources.get("tart")
                hopeless = ctx.monitor.tart_hopeless()
                waiting = [
                    vm
                    for vm in running
                    if readiness.decide(vm.name, vm, tart, tart_fatal=hopeless).verdict
                    is readiness.Verdict.WAITING
                ]
                if waiting:
                    ctx.progress.note(
                        "waiting for VMs: "
                        + ", ".join(
                            f"{vm.name} {vm.phase} {round(vm.progress * 100)}%" for vm in waiting
                        ),
                        key=" ".join(f"{vm.name}:{vm.phase}" for vm in waiting),
                    )
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
    await ctx.first_snapshot()
    if (unlisted := _tart_unlisted(ctx)) is not None:
        return unlisted
    snap = await _wait_running_vms(ctx)
    running = [vm for vm in snap.vms if _in_scope(ctx, vm)]
    if not running:
        return ok("no running VMs to wait for")
    # A VM that answers SSH but refuses our login booted fine: the login check says so.
    stuck = [vm for vm in running if vm.phase not in (Phase.READY, Phase.ERROR)]
    if stuck:
        listed = "; ".join(
            f"{vm.name} stuck in {vm.phase}" + (f" ({vm.hint})" if vm.hint else "") for vm in stuck
        )
        return failed(
            f"not ready within {report.duration(ctx.settings.doctor_timeout)}: {listed}",
            "megatui shows the phase timeline of each VM (key d); "
            "raise --timeout or [doctor] timeout for slow boots",
        )
    return ok(f"{_plural(len(running), 'running VM')} reached SSH")


async def check_ssh_logins(ctx: Context) -> Outcome:
    await ctx.first_snapshot()
    if (unlisted := _tart_unlisted(ctx)) is not None:
        return unlisted
    snap = await _wait_running_vms(ctx)
    running = [vm for vm in snap.vms if _in_scope(ctx, vm)]
    broken = [vm for vm in running if vm.phase is Phase.ERROR]
    if broken:
        listed = "; ".join(f"{vm.name}: {vm.error}" for vm in broken)
        return failed(
            listed,
            "set [ssh] user/password/key or [vms.NAME]; after a VM rebuild, "
            "`megatui forget-key NAME`",
        )
    ready = [vm for vm in running if vm.phase is Phase.READY]
    if not ready:
        if running:
            return skipped("no running VM became ready to log in to")
        return ok("no running VMs to log in to")
    try:
        unknown_keys = [vm.name for vm in ready if ctx.monitor.hostkeys.lookup(vm.name) is None]
    except HostKeyStoreError as exc:
        return failed(str(exc), "remove or repair the file; keys are trusted again on next login")
    if unknown_keys:
        return warn(f"host keys not stored for: {', '.join(unknown_keys)}")
    return ok(f"{_plural(len(ready), 'VM')} accept logins; host keys known")


# --- remote host ----------------------------------------------------------------


async def check_remote_connection(ctx: Context) -> Outcome:
    if not ctx.monitor.transport.is_remote:
        return skipped("not using --host")
    if ctx.connect_error is not None:
        return failed(
            ctx.connect_error,
            f"`ssh {ctx.settings.host}` must log in without a password: Remote Login on, "
            "the host key in ~/.ssh/known_hosts, your key in the agent or ~/.ssh",
        )
    return ok(f"connected to {ctx.monitor.transport.label}")


async def check_keychain(ctx: Context) -> Outcome:
    if not ctx.monitor.transport.is_remote:
        return skipped("not using --host")
    from megatui.keychain import KEYCHAIN_HINT, keychain_locked

    locked = await keychain_locked(ctx.monitor.transport)
    if locked is None:
        return skipped("no macOS login keychain on the host (no `security`, or no keychain)")
    if locked:
        return failed("the login keychain of the host is locked", KEYCHAIN_HINT)
    return ok("the login keychain of the host is unlocked")


CHECKS: tuple[Check, ...] = (
    Check("platform.os", check_os),
    Check("platform.python", check_python),
    Check("platform.terminal", check_terminal),
    Check("platform.ssh-agent", check_ssh_agent),
    Check("remote.connection", check_remote_connection),
    Check("remote.keychain", check_keychain, via_host=True),
    Check("docker.daemon", check_docker_daemon, via_host=True),
    Check("docker.kind-network", check_kind_network, ("docker.daemon",)),
    Check("docker.kind-nodes", check_kind_nodes, ("docker.daemon",)),
    Check("kubernetes.config", check_kubeconfig, via_host=True),
    Check("kubernetes.api", check_kube_api, ("kubernetes.config",)),
    Check("kubernetes.nodes", check_nodes, ("kubernetes.api",)),
    Check("argocd.namespace", check_argocd_namespace, ("kubernetes.api",)),
    Check("argocd.components", check_argocd_components, ("argocd.namespace",)),
    Check("argocd.applications", check_applications, ("argocd.namespace",)),
    Check("tart.installed", check_tart, via_host=True),
    Check("tart.vms", check_vms_exist, ("tart.installed",)),
    Check("tart.vms-boot", check_vms_boot, ("tart.installed",)),
    Check("tart.ssh-logins", check_ssh_logins, ("tart.installed",)),
)


def plan(settings: Settings, checks: Sequence[Check] = CHECKS) -> list[Check]:
    """The checks for this run: with --host, what goes through the host connection
    needs it (and is skipped, with that reason, when it failed)."""
    if not settings.host:
        return list(checks)
    return [replace(c, needs=(*c.needs, "remote.connection")) if c.via_host else c for c in checks]


def first_round_timeout(settings: Settings) -> float:
    """Long enough for every source to answer once, by the sources' own timeouts (tart
    lists, then asks each VM's address, then the probes log in)."""
    tart_and_ssh = 2 * settings.tart_timeout + settings.ssh_connect_timeout
    bound = max(tart_and_ssh, settings.kube_request_timeout, settings.docker_timeout) + 5.0
    # With --host the monitor first fetches the kubeconfig and finds the Docker socket.
    return bound + 20.0 if settings.host else bound


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
        ctx.progress.finished(result)
        done[check.name].set()

    await asyncio.gather(*(run_one(c) for c in checks))
    return [results[c.name] for c in checks]


def totals(results: Sequence[CheckResult]) -> dict[str, int]:
    return {s.value: sum(1 for r in results if r.status is s) for s in Status}


def to_json(
    results: Sequence[CheckResult], started: float, duration: float, host: str = "local"
) -> dict[str, object]:
    return {
        "timestamp": report.iso(started),
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "megatui": __version__,
            "host": host,
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


def to_junit(results: Sequence[CheckResult], duration: float, started: float | None = None) -> str:
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
    if started is not None:
        stamp = report.iso(started)
        assert stamp is not None
        suite.set("timestamp", stamp.removesuffix("Z"))
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
            failure = ET.SubElement(case, "failure", message=r.reason, type="fail")
            failure.text = r.reason + (f"\nhint: {r.hint}" if r.hint else "")
        elif r.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=r.reason)
        elif r.status is Status.WARN:
            out = ET.SubElement(case, "system-out")
            out.text = f"warning: {r.reason}" + (f"\nhint: {r.hint}" if r.hint else "")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, "unicode") + "\n"


def render_text(results: Sequence[CheckResult], duration: float) -> str:
    """Every check in a fixed order, grouped, with hints under failures and warnings."""
    count = totals(results)
    width = max((len(r.name) for r in results), default=0)
    lines: list[str] = []
    group = None
    for r in results:
        this_group = r.name.partition(".")[0]
        if group is not None and this_group != group:
            lines.append("")
        group = this_group
        lines.append(f"{_MARK[r.status]} {r.name:<{width}}  {r.reason}")
        if r.hint and r.status in (Status.FAIL, Status.WARN):
            lines.append(f"  {'':<{width}}  hint: {r.hint}")
    summary = (
        f"{count['pass']} passed, {count['warn']} warned, {count['fail']} failed, "
        f"{count['skipped']} skipped in {duration:.1f} s"
    )
    return "\n".join([*lines, "", summary])


def _junit_problem(path: str) -> str | None:
    """Why the JUnit file cannot be written, found before minutes of checks."""
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        return f"--junit {path}: is a directory"
    if not parent.is_dir():
        return f"--junit {path}: directory {parent} does not exist"
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        return f"--junit {path}: not writable"
    return None


async def run(
    settings: Settings, as_json: bool, junit: str | None, out: TextIO | None = None
) -> int:
    """Run every check; the report goes to stdout, progress to `out` (stderr)."""
    problem = _usage_problem(settings, junit)
    if problem:
        print(f"megatui: {problem}", file=sys.stderr)
        return 2
    started_wall = time.time()
    started = time.monotonic()
    monitor = build_monitor(settings)
    checks = plan(settings)
    ctx = Context(settings, monitor, Progress(out or sys.stderr, len(checks)))
    try:
        connect = getattr(monitor.transport, "connect", None)
        if connect is not None:
            try:
                await connect()
            except (TransportError, OSError) as exc:
                ctx.connect_error = str(exc) or type(exc).__name__
        if ctx.connect_error is None:
            await monitor.start()
            ctx.first_round = asyncio.create_task(
                monitor.wait_first_round(first_round_timeout(settings))
            )
        results = await run_checks(ctx, checks)
    finally:
        if ctx.first_round is not None and not ctx.first_round.done():
            ctx.first_round.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ctx.first_round
        ctx.progress.clear()
        await monitor.stop()
        await monitor.transport.close()
    duration = time.monotonic() - started
    if junit:
        try:
            Path(junit).write_text(to_junit(results, duration, started_wall), encoding="utf-8")
        except OSError as exc:
            print(f"megatui: cannot write {junit}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    if as_json:
        print(report.dumps(to_json(results, started_wall, duration, monitor.transport.label)))
    else:
        print(render_text(results, duration))
    return 1 if any(r.status is Status.FAIL for r in results) else 0


def _usage_problem(settings: Settings, junit: str | None) -> str | None:
    """A bad flag, found before minutes of checks (exit 2)."""
    if not settings.doctor_timeout > 0:
        return f"--timeout: expected a positive number (got {settings.doctor_timeout:g})"
    if junit:
        return _junit_problem(junit)
    return None
