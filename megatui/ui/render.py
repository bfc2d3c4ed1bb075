"""Snapshot values turned into Rich `Text` cells and lines.

Pure functions: no widgets and no clock reads, so every rule here is unit-tested
without an app. Everything that comes from outside (VM, pod and app names, error
messages) goes through `Text(...)`, never through markup parsing: a VM named
`[@click=app.quit]x[/]` must render as those characters, not as a link.

Colours are the sixteen ANSI names, so they read the same under the truecolor themes
(Textual converts them) and under the ANSI theme used on plain terminals.
"""

from __future__ import annotations

import math
import time

from rich.text import Text

from megatui.model import (
    BOOT_PHASES,
    VM,
    Application,
    ArgoSummary,
    DockerStatus,
    Event,
    Node,
    Phase,
    Pod,
    SourceStatus,
)
from megatui.report import duration, progress_bar
from megatui.sources.kube_status import age as kube_age

OK = "green"
WARN = "yellow"
BAD = "red"
BUSY = "cyan"
MUTED = "dim"

BAR_WIDTH = 8


def literal(value: str, style: str = "") -> Text:
    """Outside text as a single-line cell that is never parsed as markup."""
    return Text(value, style=style, no_wrap=True, overflow="ellipsis", end="")


def cell_signature(cell: Text) -> tuple[object, ...]:
    """What a cell looks like. `Text.__eq__` ignores the base style, and a colour
    change alone (Synced -> OutOfSync keeps the width) must still repaint the cell."""
    return (cell.plain, str(cell.style), tuple(cell.spans))


# --- time ---------------------------------------------------------------------------


def age_cell(created: float | None, now: float) -> Text:
    if created is None:
        return literal("<unknown>", MUTED)
    return literal(kube_age(created, now))


def clock_time(epoch: float) -> str:
    """HH:MM:SS in the local time zone, as the user reads their own clock."""
    return time.strftime("%H:%M:%S", time.localtime(epoch))


# --- VMs ----------------------------------------------------------------------------

PHASE_STYLE: dict[Phase, str] = {
    Phase.STOPPED: MUTED,
    Phase.SUSPENDED: MUTED,
    Phase.SCHEDULING: BUSY,
    Phase.PULLING: BUSY,
    Phase.CLONING: BUSY,
    Phase.STARTING: BUSY,
    Phase.BOOTING: BUSY,
    Phase.IP: BUSY,
    Phase.SSH_PENDING: BUSY,
    Phase.READY: f"bold {OK}",
    Phase.STOPPING: WARN,
    Phase.ERROR: f"bold {BAD}",
}


#: A controller's stages before the boot (Orchard): they move, and show a bar, as the
#: boot phases do.
PRE_BOOT_PHASES: tuple[Phase, ...] = (Phase.SCHEDULING, Phase.PULLING, Phase.CLONING)


def is_booting(vm: VM) -> bool:
    return vm.phase in BOOT_PHASES or vm.phase in PRE_BOOT_PHASES


def phase_cell(vm: VM) -> Text:
    style = PHASE_STYLE.get(vm.phase, "")
    if vm.hint and is_booting(vm):
        # A stuck boot keeps its phase name but turns amber, so it stands out in a
        # column of cyan without reading as a failure.
        style = f"bold {WARN}"
    return literal(str(vm.phase), style)


def state_cell(vm: VM) -> Text:
    return literal(str(vm.state), MUTED if vm.state != "running" else "")


def bar(progress: float) -> str:
    """The TUI's boot bar: report.progress_bar (the one drawing rule) at its width."""
    return progress_bar(progress, BAR_WIDTH)


def progress_cell(vm: VM, now: float) -> Text:
    """The boot bar, the time spent in the current phase and the ETA.

    Depends on `now` only while the VM is moving (booting or stopping), so a fleet of
    ready or stopped VMs never changes on the clock tick."""
    in_phase = duration(now - vm.phase_since)
    if vm.phase in (Phase.STOPPED, Phase.SUSPENDED):
        return literal("—", MUTED)
    if vm.phase is Phase.READY:
        return Text.assemble((bar(1.0), OK), " ", ("ready", OK), no_wrap=True, end="")
    if vm.phase is Phase.ERROR:
        return Text.assemble((bar(vm.progress), BAD), " ", ("failed", BAD), no_wrap=True, end="")
    if vm.phase is Phase.STOPPING:
        return Text.assemble(("stopping ", WARN), (in_phase, WARN), no_wrap=True, end="")
    style = WARN if vm.hint else BUSY
    text = Text.assemble((bar(vm.progress), style), f" {in_phase:>6}", no_wrap=True, end="")
    if vm.eta_seconds is not None:
        text.append(f" eta {duration(vm.eta_seconds)}", MUTED)
    return text


def ip_cell(vm: VM) -> Text:
    return literal(vm.ip or "—", "" if vm.ip else MUTED)


def note_cell(vm: VM, stale_reason: str | None = None) -> Text:
    """The VM's error or hint; for a stale VM (its worker is offline) the reason its
    data is old, when it has nothing more telling to say."""
    if vm.error:
        return literal(vm.error, BAD)
    if vm.hint:
        return literal(vm.hint, WARN)
    if vm.stale:
        return literal(stale_reason or "stale: its worker is offline", BAD)
    return literal("")


def dimmed(cell: Text) -> Text:
    """The cell faded, its colours kept: old data that still says what it was."""
    out = cell.copy()
    out.stylize(MUTED)
    return out


def restarts_count_cell(vm: VM) -> Text:
    return literal(str(vm.restart_count), WARN if vm.restart_count else "")


def vm_line(vm: VM, now: float, stale_reason: str | None = None) -> Text:
    """One line about the selected VM under the table: its full hint or error, which
    the NOTE column may have to cut, or what the keys would do."""
    name = Text(vm.name, style="bold", end="")
    if vm.error:
        return Text.assemble(("✗ ", BAD), name, ": ", (vm.error, BAD), end="")
    if vm.hint:
        return Text.assemble(("⚠ ", WARN), name, ": ", (vm.hint, WARN), end="")
    if vm.stale:
        reason = stale_reason or "its worker is offline"
        return Text.assemble(("⚠ ", WARN), name, f" {vm.phase} (stale): ", (reason, BAD), end="")
    if vm.phase is Phase.READY:
        return Text.assemble(
            ("✓ ", OK), name, f" ready at {vm.ip or '?'} · ", ("enter", "bold"), " ssh", end=""
        )
    if is_booting(vm):
        eta = f" · eta {duration(vm.eta_seconds)}" if vm.eta_seconds is not None else ""
        return Text.assemble(
            "… ",
            name,
            f" {vm.phase} for {duration(now - vm.phase_since)}",
            f" · {round(vm.progress * 100)}%{eta}",
            end="",
        )
    return Text.assemble(name, f" {vm.phase}", end="", style=MUTED)


def pod_why_line(pod: Pod | None) -> Text:
    """The selected pod's WHY under the pods table, for a panel too narrow to show the
    NOTE column (ui/panels.py ArgoPanel)."""
    if pod is None:
        return Text("", end="")
    name = Text(pod.name, style="bold", end="")
    if pod.why:
        return Text.assemble(("⚠ ", WARN), name, ": ", (pod.why, WARN), end="")
    return Text.assemble(name, f" {pod.status}", end="", style=MUTED)


# --- cluster ------------------------------------------------------------------------


def node_status_cell(node: Node) -> Text:
    """kubectl's STATUS merged with the Kind container: a stopped container and a
    kubelet that stopped reporting need different fixes, so they read differently."""
    container = node.container_state
    if container is not None and container != "running":
        return Text.assemble(
            (f"container {container}", f"bold {BAD}"),
            (f" · {node.status}", MUTED),
            no_wrap=True,
            overflow="ellipsis",
            end="",
        )
    if node.status.startswith("NotReady") or node.status.startswith("Unknown"):
        return literal(f"kubelet {node.status}", f"bold {BAD}")
    if node.status.startswith("Ready"):
        return literal(node.status, OK if node.status == "Ready" else WARN)
    return literal(node.status, WARN)


def docker_lines(docker: DockerStatus | None) -> Text:
    if docker is None:
        return Text.assemble(("Docker ", "bold"), ("no data yet", MUTED), end="")
    if not docker.reachable:
        return Text.assemble(
            ("Docker ", "bold"),
            ("✗ unreachable", f"bold {BAD}"),
            (f": {docker.error}" if docker.error else "", BAD),
            end="",
        )
    text = Text.assemble(("Docker ", "bold"), ("● reachable", OK), end="")
    if docker.server_version:
        text.append(f" {docker.server_version}", MUTED)
    text.append(" · kind network ")
    text.append("✓" if docker.kind_network else "✗ missing", OK if docker.kind_network else BAD)
    if not docker.clusters:
        text.append("\n")
        text.append("Kind   ", "bold")
        text.append("no clusters", WARN)
    for cluster in docker.clusters:
        text.append("\n")
        text.append("Kind   ", "bold")
        text.append(cluster.name, "bold")
        text.append(":")
        for container in cluster.nodes:
            text.append(" ")
            text.append(container.name)
            text.append(" ")
            text.append(container.state, OK if container.state == "running" else f"bold {BAD}")
    return text


# --- ArgoCD -------------------------------------------------------------------------

_BAD_POD = (
    "CrashLoopBackOff",
    "Error",
    "ImagePullBackOff",
    "ErrImagePull",
    "OOMKilled",
    "CreateContainerConfigError",
    "InvalidImageName",
)


def pod_status_cell(pod: Pod) -> Text:
    status = pod.status
    if any(bad in status for bad in _BAD_POD):
        style = f"bold {BAD}"
    elif status == "Running":
        style = OK if pod.running_ready else WARN
    elif status == "Completed":
        style = MUTED
    else:
        style = WARN
    return literal(status, style)


def restarts_cell(pod: Pod) -> Text:
    restarted = not pod.restarts.startswith("0")
    return literal(pod.restarts, WARN if restarted else "")


def argocd_line(summary: ArgoSummary | None, pods: int) -> Text:
    if summary is None:
        return Text.assemble(("ArgoCD ", "bold"), ("no data yet", MUTED), end="")
    if not summary.standard_install:
        return Text.assemble(
            ("ArgoCD ", "bold"),
            (f"not a standard install · {pods} pods", WARN),
            end="",
        )
    complete = summary.ready == summary.total
    text = Text.assemble(
        ("ArgoCD ", "bold"),
        ("✓ " if complete else "✗ ", OK if complete else BAD),
        (f"{summary.ready}/{summary.total} components ready", OK if complete else BAD),
        end="",
    )
    if summary.missing:
        text.append(" · missing: ", MUTED)
        text.append(", ".join(summary.missing), BAD)
    return text


SYNC_STYLE = {"Synced": OK, "OutOfSync": WARN, "Unknown": MUTED}
HEALTH_STYLE = {
    "Healthy": OK,
    "Progressing": BUSY,
    "Suspended": MUTED,
    "Degraded": f"bold {BAD}",
    "Missing": BAD,
    "Unknown": MUTED,
}
OPERATION_STYLE = {
    "Running": BUSY,
    "Succeeded": OK,
    "Failed": f"bold {BAD}",
    "Error": f"bold {BAD}",
    "Terminating": WARN,
}


def sync_cell(app: Application) -> Text:
    return literal(app.sync, SYNC_STYLE.get(app.sync, WARN))


def health_cell(app: Application) -> Text:
    return literal(app.health, HEALTH_STYLE.get(app.health, WARN))


def operation_cell(app: Application) -> Text:
    return literal(app.operation or "—", OPERATION_STYLE.get(app.operation, MUTED))


# --- sources and events -------------------------------------------------------------


def stale_line(status: SourceStatus, now: float, retry_in: float | None) -> Text:
    """`⚠ docker: connection refused · stale 42 s · retrying in 8 s`."""
    text = Text.assemble(("⚠ ", WARN), (status.name, "bold"), end="")
    if status.error:
        text.append(": ")
        text.append(status.error, BAD)
    if status.updated_at is None:
        text.append(" · no data yet", MUTED)
    else:
        text.append(f" · stale {max(0, int(now - status.updated_at))} s", WARN)
    if retry_in is not None:
        text.append(f" · retrying in {max(0, math.ceil(retry_in))} s", MUTED)
    return text


SEVERITY_STYLE = {"info": "", "warning": WARN, "error": f"bold {BAD}"}


def event_cells(event: Event) -> tuple[Text, Text, Text, Text]:
    style = SEVERITY_STYLE.get(event.severity, "")
    return (
        literal(clock_time(event.at), MUTED),
        literal(event.kind, MUTED),
        literal(event.subject, "bold" if event.severity != "info" else ""),
        literal(event.message, style),
    )
