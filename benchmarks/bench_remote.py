"""megatui driving a Mac host over SSH, against a loopback one: the demo lab (tart
VMs, a Kind-like API server, Docker) behind a real OpenSSH sshd on 127.0.0.x.

Measures
* `megatui --host ... status --json` wall time, as shipped (the CLI subprocess);
* the same path in-process with the host-side glue (connect + prepare_remote +
  monitor's first round), which is what --host becomes once integrated;
* one command's round trip: `tart list --format json` over RemoteTransport vs local;
* steady state with the monitor running: new SSH connections to the host (should
  be 0 after the first), commands per second it runs there.

    PYTHONPATH=.:tests python -m benchmarks.bench_remote [--runs 5] [--seconds 30] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sshd_fixtures import RealSSHD

from benchmarks.results import Result, Row, add_json_argument, command_line, write_if_asked
from megatui.config import RemoteSettings, Settings, load_settings
from megatui.lab.demo import DemoLab
from megatui.model import Phase, TartState
from megatui.monitor import Monitor
from megatui.remote import RemoteTransport, prepare_remote
from megatui.transport import CommandResult, LocalTransport


def summary(values: Sequence[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(ordered) * 1000:7.1f} ms  "
        f"p95 {p95 * 1000:7.1f} ms  max {ordered[-1] * 1000:7.1f} ms  (n={len(ordered)})"
    )


class Host:
    """The demo lab behind sshd, and a local HOME that trusts it."""

    def __init__(self, root: Path) -> None:
        self.lab = DemoLab(root / "lab")
        self.lab.start()
        assert self.lab.tart is not None
        settings = load_settings(self.lab.config_path, environ={})
        assert settings.kubeconfig and settings.docker_host
        host_home = root / "host-home"
        (host_home / ".kube").mkdir(parents=True)
        (host_home / ".docker" / "run").mkdir(parents=True)
        (host_home / ".kube" / "config").write_bytes(Path(settings.kubeconfig).read_bytes())
        (host_home / ".docker" / "run" / "docker.sock").symlink_to(
            settings.docker_host.removeprefix("unix://")
        )
        self.sshd = RealSSHD(
            "/usr/sbin/sshd",
            root / "sshd",
            host="127.0.0.97",
            env={
                "HOME": str(host_home),
                "PATH": f"{self.lab.tart.paths.bin_dir}:/usr/bin:/bin",
            },
        )
        self.sshd.start()
        self.local_home = root / "local-home"
        (self.local_home / ".ssh").mkdir(parents=True)
        self.known_hosts = self.local_home / ".ssh" / "known_hosts"
        self.known_hosts.write_text(self.sshd.known_hosts_line() + "\n")
        self.ssh_config = self.local_home / ".ssh" / "config"
        self.ssh_config.write_text(
            f"Host *\n    IdentityFile {self.sshd.client_key_path}\n    IdentitiesOnly yes\n"
        )
        self.config = root / "megatui.toml"
        toml = self.lab.tart.megatui_config_toml().replace(
            f'path = "{self.lab.tart.tart_path}"', 'path = "tart"'
        )
        self.config.write_text(toml + f'\n[kube]\ncontext = "{settings.kube_context}"\n')
        self.spec = f"{self.sshd.user}@{self.sshd.host}:{self.sshd.port}"
        self.env: dict[str, str] = {
            k: v for k, v in os.environ.items() if not k.startswith(("MEGATUI_", "SSH_"))
        }
        self.env.update(HOME=str(self.local_home), **self.lab.environ())

    @property
    def accepted(self) -> int:
        return self.sshd.log.count("Accepted publickey")

    def transport(self) -> RemoteTransport:
        return RemoteTransport(
            self.spec,
            RemoteSettings(known_hosts=str(self.known_hosts), ssh_config=str(self.ssh_config)),
        )

    def settings(self) -> Settings:
        return load_settings(self.config, {"host": self.spec}, environ={})

    def close(self) -> None:
        self.sshd.stop()
        self.lab.stop()


def cli_status(host: Host, runs: int) -> tuple[list[float], dict[str, Any]]:
    times = []
    data: dict[str, Any] = {}
    argv = [sys.executable, "-m", "megatui", "--host", host.spec, "--config", str(host.config)]
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run(
            [*argv, "status", "--json", "--timeout", "30"],
            env=host.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"status failed: {result.stderr.strip()}")
        data = json.loads(result.stdout)
    return times, data


async def in_process_status(host: Host, runs: int, workdir: Path) -> tuple[list[float], Any]:
    times = []
    ok: Mapping[str, bool] = {}
    for n in range(runs):
        started = time.perf_counter()
        transport = host.transport()
        await transport.connect()
        setup = await prepare_remote(transport, host.settings(), workdir / f"run{n}")
        monitor = Monitor(setup.settings, transport=transport)
        await monitor.start()
        await monitor.wait_first_round(30)
        times.append(time.perf_counter() - started)
        ok = {name: s.ok for name, s in monitor.snapshot.sources.items()}
        await monitor.stop()
        await transport.close()
    return times, ok


async def command_latency(host: Host, calls: int) -> tuple[list[float], list[float]]:
    assert host.lab.tart is not None
    remote = host.transport()
    await remote.connect()
    local = LocalTransport()
    argv = ["tart", "list", "--format", "json"]
    remote_times, local_times = [], []
    try:
        for _ in range(calls):
            started = time.perf_counter()
            result = await remote.run(argv, timeout=10)
            remote_times.append(time.perf_counter() - started)
            assert result.exit_code == 0, result.stderr
            started = time.perf_counter()
            result = await local.run([str(host.lab.tart.tart_path), *argv[1:]], timeout=10)
            local_times.append(time.perf_counter() - started)
            assert result.exit_code == 0, result.stderr
    finally:
        await remote.close()
    return remote_times, local_times


async def steady_state(host: Host, seconds: float, workdir: Path) -> dict[str, float]:
    transport = host.transport()
    await transport.connect()
    setup = await prepare_remote(transport, host.settings(), workdir / "steady")
    commands = 0
    original_run = transport.run

    async def counting_run(
        argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> CommandResult:
        nonlocal commands
        commands += 1
        return await original_run(argv, timeout=timeout, env=env)

    transport.run = counting_run  # type: ignore[method-assign]
    monitor = Monitor(setup.settings, transport=transport)
    await monitor.start()
    await monitor.wait_first_round(30)

    # Let the demo's VMs finish booting so the probes settle into health checks (the
    # demo's macOS VM accepts logins 24 s after its start).
    def booted() -> bool:
        vms = monitor.snapshot.vms
        return all(vm.phase is Phase.READY for vm in vms if vm.state is TartState.RUNNING)

    changed = asyncio.Event()
    unsubscribe = monitor.subscribe(lambda _s: changed.set())
    try:
        async with asyncio.timeout(60):
            while not booted():
                changed.clear()
                await changed.wait()
    finally:
        unsubscribe()
    await asyncio.sleep(2)
    before = (transport.connections_opened, host.accepted, commands, monitor.prober.handshakes)
    await asyncio.sleep(seconds)
    after = (transport.connections_opened, host.accepted, commands, monitor.prober.handshakes)
    await monitor.stop()
    await transport.close()
    return {
        "new_connections_transport": after[0] - before[0],
        "new_logins_seen_by_sshd": after[1] - before[1],
        "commands_per_second": (after[2] - before[2]) / seconds,
        "new_vm_handshakes": after[3] - before[3],
        "session_retries": transport.session_retries,
    }


async def main_async(args: argparse.Namespace, host: Host, workdir: Path) -> Result:
    print(f"host {host.spec} (real sshd), demo lab with {len(host.lab.specs)} VMs\n")
    cli_times, data = cli_status(host, args.runs)
    print(f"megatui --host status --json (CLI, as shipped)   {summary(cli_times)}")
    print("  sources: " + ", ".join(f"{k}={v['ok']}" for k, v in data["sources"].items()))
    proc_times, ok = await in_process_status(host, args.runs, workdir)
    print(f"connect + prepare_remote + first round (glue)    {summary(proc_times)}")
    print("  sources: " + ", ".join(f"{k}={v}" for k, v in sorted(ok.items())))
    remote_times, local_times = await command_latency(host, args.calls)
    print(f"tart list --format json over the connection      {summary(remote_times)}")
    print(f"tart list --format json locally                  {summary(local_times)}")
    steady = await steady_state(host, args.seconds, workdir)
    print(f"steady state over {args.seconds:g} s with the monitor running:")
    for key, value in steady.items():
        print(f"  {key:28} {value:g}")
    result = Result(
        bench="remote",
        title="Remote host over one SSH connection",
        command=command_line("benchmarks.bench_remote"),
    )
    behind = f"a real OpenSSH sshd on loopback, the demo lab ({len(host.lab.specs)} VMs) behind it"
    section = f"--host: {behind}"
    result.add(
        Row.from_samples(
            section,
            "megatui --host ... status --json, whole CLI",
            "s",
            "a new process: exec -> exit (interpreter start, imports, SSH connect and login, "
            "host-side setup, every source's first round, JSON out)",
            cli_times,
            budget=2.0,
            judged="median",
        )
    )
    result.add(
        Row.from_samples(
            section,
            "connect + host-side setup + first round",
            "s",
            "in-process, modules imported: SSH connect -> prepare_remote -> "
            "Monitor.wait_first_round",
            proc_times,
        )
    )
    local_median = statistics.median(local_times)
    result.add(
        Row.from_samples(
            section,
            "tart list --format json over the connection",
            "ms",
            "connection open: one command's round trip (a new channel, the fake tart's "
            "process on the host, its output back)",
            [t * 1000 for t in remote_times],
        )
    )
    result.add(
        Row.from_samples(
            section,
            "tart list --format json run locally",
            "ms",
            "the same fake tart as a local child process (asyncio subprocess)",
            [t * 1000 for t in local_times],
            alternative="for scale: the command without SSH",
            ratio=local_median / statistics.median(remote_times),
        )
    )
    section = f"steady state, {args.seconds:g} s with the monitor running"
    for measure, key, limit in (
        ("new connections to the host", "new_logins_seen_by_sshd", 0.0),
        ("new VM SSH handshakes", "new_vm_handshakes", 0.0),
        ("commands run on the host per second", "commands_per_second", None),
    ):
        result.add(
            Row(
                section,
                measure,
                "count",
                "counted by sshd's log (logins), the prober and a counting transport",
                value=steady[key],
                budget=limit,
                judged="value" if limit is not None else None,
            )
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    add_json_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mt-bench-remote-") as tmp:
        root = Path(tmp)
        # The monitor keeps its host keys and boot history in these.
        os.environ["MEGATUI_DATA_DIR"] = str(root / "data")
        os.environ["MEGATUI_STATE_DIR"] = str(root / "state")
        os.environ.pop("SSH_AUTH_SOCK", None)
        host = Host(root)
        try:
            result = asyncio.run(main_async(args, host, root / "work"))
        finally:
            host.close()
    write_if_asked(result, args.json)


if __name__ == "__main__":
    main()
