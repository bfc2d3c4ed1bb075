"""The VMs panel's tables: the VMs' columns and cells, one Mac's or a fleet's, and a
controller's workers (Orchard).

A fleet's VM table adds the columns only a fleet has (WORKER, RESTARTS); a session
with one Mac (tart) has no workers, and the panel then looks exactly as it always
did. Pure functions of the snapshot, like render.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text

from megatui.model import VM, Snapshot, Worker
from megatui.report import progress_bar
from megatui.sources.kube_status import age as kube_age
from megatui.ui import render
from megatui.ui.render import literal
from megatui.ui.table import Column, Row

_HEAD = (
    Column("name", "NAME", 18),
    Column("phase", "PHASE", 11),
    Column("progress", "PROGRESS", 26),
)
_TAIL = (Column("ip", "IP", 15), Column("state", "STATE", 9))
#: The VMs table of one Mac.
VM_COLUMNS = (*_HEAD, *_TAIL, Column("note", "NOTE", 60))
#: The VMs table of a fleet: WORKER and RESTARTS before IP, so that both still show
#: at 80 columns next to the boot bar.
FLEET_VM_COLUMNS = (
    *_HEAD,
    Column("worker", "WORKER", 12),
    Column("restarts", "RESTARTS", 8),
    *_TAIL,
    # Short enough that the table fits in 160 columns without a scrollbar; the
    # line under the table has the whole note of the selected VM.
    Column("note", "NOTE", 36),
)

# Alike in shape with panels.py's node, pod and Application columns on purpose:
# each table declares its own columns as data.
WORKER_COLUMNS = (
    Column("name", "WORKER", 18),
    Column("status", "STATUS", 16),
    Column("vms", "VMS", 5),
    Column("cpu", "CPU", 13),
    Column("memory", "MEMORY", 18),
    Column("note", "NOTE", 68),
)

#: The resource bars are shorter than a VM's boot bar: the numbers matter as much.
RESOURCE_BAR = 6


def is_fleet(snapshot: Snapshot) -> bool:
    """Whether the VMs table needs the fleet columns: a VM runs on a named worker."""
    return any(vm.worker for vm in snapshot.vms)


def stale_reason(vm: VM, workers: Mapping[str, Worker]) -> str | None:
    """Why a stale VM's data is old: its worker's own failure text when the
    controller gives one, else that the worker is offline."""
    if not vm.stale:
        return None
    worker = workers.get(vm.worker) if vm.worker else None
    if worker is not None and worker.failure:
        return worker.failure
    return f"stale: worker {vm.worker} is offline" if vm.worker else None


def vm_columns(fleet: bool) -> tuple[Column, ...]:
    return FLEET_VM_COLUMNS if fleet else VM_COLUMNS


def vm_cells(vm: VM, now: float, workers: Mapping[str, Worker] | None) -> tuple[Text, ...]:
    """A VM's row under `vm_columns`: `workers` is the fleet's, None for one Mac."""
    head = (literal(vm.name, "bold"), render.phase_cell(vm), render.progress_cell(vm, now))
    tail = (render.ip_cell(vm), render.state_cell(vm))
    if workers is None:
        return (*head, *tail, render.note_cell(vm))
    cells = (
        *head,
        literal(vm.worker or "—", "" if vm.worker else render.MUTED),
        render.restarts_count_cell(vm),
        *tail,
        render.note_cell(vm, stale_reason(vm, workers)),
    )
    if vm.stale:
        # The last known state of a VM whose worker is gone: readable, but faded,
        # except its NOTE, which says why.
        return (*(render.dimmed(cell) for cell in cells[:-1]), cells[-1])
    return cells


def status_cell(worker: Worker) -> Text:
    if not worker.online:
        return literal("✗ offline", f"bold {render.BAD}")
    if worker.scheduling_paused:
        return literal("● online, paused", render.WARN)
    return literal("● online", render.OK)


def _usage(used: float, total: float, label: str) -> Text:
    if total <= 0:
        return literal("—", render.MUTED)
    share = used / total
    style = render.BAD if share > 1 else render.WARN if share >= 0.9 else render.BUSY
    return Text.assemble(
        (progress_bar(share, RESOURCE_BAR), style), f" {label}", no_wrap=True, end=""
    )


def _gib(mib: int) -> str:
    gib = mib / 1024
    return f"{gib:.0f}" if gib >= 10 or gib == int(gib) else f"{gib:.1f}"


def worker_cells(worker: Worker, now: float) -> tuple[Text, ...]:
    full = worker.vm_capacity > 0 and worker.vms_running >= worker.vm_capacity
    vms = literal(f"{worker.vms_running}/{worker.vm_capacity}", render.WARN if full else "")
    cpu = _usage(worker.cpu_used, worker.cpu_total, f"{worker.cpu_used}/{worker.cpu_total}")
    memory = _usage(
        worker.memory_used_mib,
        worker.memory_total_mib,
        f"{_gib(worker.memory_used_mib)}/{_gib(worker.memory_total_mib)} GiB",
    )
    return (literal(worker.name, "bold"), status_cell(worker), vms, cpu, memory, note(worker, now))


def note(worker: Worker, now: float) -> Text:
    if worker.failure:
        return literal(worker.failure, render.BAD if not worker.online else render.WARN)
    if not worker.online:
        seen = kube_age(worker.last_seen, now) if worker.last_seen else None
        return literal(f"last seen {seen} ago" if seen else "never seen", render.BAD)
    if worker.scheduling_paused:
        return literal("scheduling paused: takes no new VMs", render.MUTED)
    return literal("")


def worker_rows(snapshot: Snapshot, matches: Sequence[str] | None = None) -> list[Row]:
    """The worker rows, their ages taken at the snapshot (they move with the data,
    not on the clock tick). `matches`, when given, names the workers to keep."""
    now = snapshot.generated_at
    keep = set(matches) if matches is not None else None
    return [
        Row(worker.name, worker_cells(worker, now))
        for worker in snapshot.workers
        if keep is None or worker.name in keep
    ]


def workers_line(workers: Sequence[Worker]) -> Text:
    """`Workers 2/3 online · 1 paused · VM slots 4/6`."""
    online = sum(w.online for w in workers)
    paused = sum(w.scheduling_paused for w in workers)
    used = sum(w.vms_running for w in workers if w.online)
    slots = sum(w.vm_capacity for w in workers if w.online)
    everyone = online == len(workers)
    text = Text.assemble(
        ("Workers ", "bold"),
        (f"{online}/{len(workers)} online", render.OK if everyone else f"bold {render.BAD}"),
        end="",
    )
    if paused:
        text.append(f" · {paused} paused", render.WARN)
    text.append(" · VM slots ", render.MUTED)
    text.append(f"{used}/{slots}", render.WARN if slots and used >= slots else "")
    return text
