"""Readiness through the Orchard port-forward, measured on the lab's fake controller
(not a test).

From the moment a VM's sshd accepts logins (the fake worker's guest is up: its
`guest_up_at`, on the controller's monotonic clock, which is the system's here) to
the moment the monitor publishes `ready` for it. Budget (issue #11): median <= 0.5 s,
max <= 1.0 s. The monitor runs at its default pace; the fake controller retries a
port-forward dial about once a second until `wait` runs out (orchard.md §5), as
Orchard does. Each boot is a new VM created and deleted through the monitor (as
`megatui create` does), with a guest boot of 0.5 to 1.5 x --boot seconds after
`tart run`; the first is a warm-up (the lab's SSH server imports asyncssh) and is
not counted. Also counted: the port-forward requests megatui sends per VM while it
waits for sshd (docs/orchard.md bounds them).

Run from the repository root:
    python -m benchmarks.bench_readiness_orchard [--boots N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from benchmarks._timing import phase, wait_for
from benchmarks.results import Result, Row, add_json_argument, summarize
from megatui.backends.base import NewVMSpec
from megatui.backends.orchard import OrchardBackend
from megatui.config import Settings
from megatui.lab.orchard import FakeOrchard, Timings
from megatui.lab.orchard.controller import BOOTSTRAP_ADMIN
from megatui.model import Phase, Snapshot
from megatui.monitor import Monitor
from megatui.sources.orchard import OrchardClient
from megatui.sources.orchard_config import OrchardConfig

IMAGE = "ghcr.io/cirruslabs/macos-tahoe-base:latest"
TOKEN = "bench-token"
SECTION = "Orchard fleet"


@dataclass
class Measured:
    latencies: list[float] = field(default_factory=list)
    #: Port-forward requests megatui opened per VM (probes and logins), and for how
    #: long it probed: from its first request to `ready`.
    requests: list[int] = field(default_factory=list)
    probing_s: list[float] = field(default_factory=list)


class CountingClient(OrchardClient):
    """Counts the port-forward requests of each VM (the probes' and the logins')."""

    def __init__(self, config: OrchardConfig) -> None:
        super().__init__(config)
        self.forwards: dict[str, list[float]] = {}

    async def _connect_ws(self, vm: str, port: int, wait: int):  # type: ignore[no-untyped-def]
        self.forwards.setdefault(vm, []).append(time.monotonic())
        return await super()._connect_ws(vm, port, wait)


async def measure(root: Path, boots: int, poll: float, boot_s: float) -> Measured:
    rng = random.Random(11)
    # Realistic stage order, short stages: what is measured starts when sshd is up.
    timings = Timings(schedule=0.3, pull=0.5, clone=0.5, configure=0.3, boot=boot_s, stop=0.5)
    lab = FakeOrchard(root, timings=timings, admin_token=TOKEN, poll_interval=poll, tick=0.02)
    await lab.start()
    lab.add_worker("mini-1")
    client = CountingClient(OrchardConfig(lab.url, BOOTSTRAP_ADMIN, TOKEN))
    settings = Settings(ssh_user="admin", ssh_password="admin", ssh_agent=False)
    monitor = Monitor(settings, sources={"tart", "ssh"}, backend=OrchardBackend(client))
    ready_at: dict[str, float] = {}

    def on_snapshot(snap: Snapshot) -> None:
        for vm in snap.vms:
            if vm.phase is Phase.READY and vm.name not in ready_at:
                ready_at[vm.name] = time.monotonic()

    monitor.subscribe(on_snapshot)
    out = Measured()
    try:
        await monitor.start()
        for boot in range(boots + 1):
            name = f"bench-{boot:02d}"
            # Guests boot in 0.5 .. 1.5 x --boot: a fixed boot would lock sshd's start
            # to one phase of the controller's 1-s dial retry and of the probe pace.
            lab.store.timings = replace(lab.store.timings, boot=boot_s * rng.uniform(0.5, 1.5))
            # Created through megatui, as `megatui create` or the TUI's dialog does.
            await monitor.create_vm(NewVMSpec(name, IMAGE, username="admin", password="admin"))
            await wait_for(monitor, lambda s, n=name: phase(s, n) is Phase.READY, 60.0)
            up = lab.store.get_vm(name).guest_up_at
            assert up is not None
            if boot:
                out.latencies.append(ready_at[name] - up)
                sent = client.forwards.get(name, [])
                out.requests.append(len(sent))
                out.probing_s.append(ready_at[name] - sent[0] if sent else 0.0)
            await monitor.delete_vm(name)
            await wait_for(monitor, lambda s, n=name: s.vm(n) is None, 60.0)
    finally:
        await monitor.stop()
        await lab.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--boots", type=int, default=20)
    parser.add_argument(
        "--poll", type=float, default=1.0, help="the controller's dial retry (Orchard: ~1 s)"
    )
    parser.add_argument("--boot", type=float, default=8.0, help="mean guest boot after tart run")
    add_json_argument(parser)
    args = parser.parse_args()
    result = Result(
        bench="readiness_orchard",
        title="Readiness through the Orchard port-forward",
        command="python -m benchmarks.bench_readiness_orchard " + " ".join(sys.argv[1:]),
    )
    with tempfile.TemporaryDirectory(prefix="megatui-bench-") as tmp:
        root = Path(tmp)
        os.environ["MEGATUI_DATA_DIR"] = str(root / "data")
        os.environ["MEGATUI_STATE_DIR"] = str(root / "state")
        got = asyncio.run(measure(root / "orchard", args.boots, args.poll, args.boot))
    clock = (
        "from the fake worker's guest sshd accepting logins (guest_up_at) to the monitor "
        f"publishing ready; the controller retries its dial every {args.poll:g} s within a "
        f"request's wait; guest boots {0.5 * args.boot:g}-{1.5 * args.boot:g} s, one VM at a time"
    )
    measure_ = "sshd accepting logins -> ready published"
    result.add(
        Row.from_samples(SECTION, measure_, "s", clock, got.latencies, budget=0.5, judged="median")
    )
    result.add(
        Row.from_samples(SECTION, measure_, "s", clock, got.latencies, budget=1.0, judged="max")
    )
    rate = sum(got.requests) / sum(got.probing_s)
    result.add(
        Row(
            SECTION,
            "port-forward requests per VM per second while waiting for sshd",
            "count",
            "all of a VM's port-forward requests (probes and the login), from its first "
            "to ready, summed over the boots",
            n=len(got.requests),
            value=round(rate, 2),
            note=f"{sum(got.requests)} requests in {sum(got.probing_s):.1f} s of probing",
        )
    )
    s = summarize(got.latencies)
    print(
        f"readiness through the port-forward over {s.n} boots: median {s.median:.3f} s, "
        f"p95 {s.p95:.3f} s, min {min(got.latencies):.3f} s, max {s.max:.3f} s "
        "(budget 0.5 / 1.0 s)"
    )
    print(f"port-forward requests per VM while probing: {rate:.2f}/s")
    if args.json:
        result.write(args.json)


if __name__ == "__main__":
    main()
