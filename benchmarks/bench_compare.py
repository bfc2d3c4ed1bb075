"""megatui against what a user would run instead, in the same run on the same lab (not a test).

1. Readiness: the platform's shell loop (`tart ip` / `nc -z` / `ssh ... echo ready`,
   sleeping 5, 10 or 15 s between tries) against `megatui wait` (the real CLI, a
   process): from the VM's sshd accepting logins to each one exiting. All four watch
   the same boot, started together right after `tart run` (as a script does); each
   boot's sshd comes up at a random time (login_after uniform over 3-18 s) so that no
   loop's sleep phase is locked to it. The floor: one asyncssh login to the same sshd.
2. Kubernetes: `kubectl get pods -w` (real kubectl) against megatui's Kubernetes
   source, both watching the lab's fake API server (a child process): a pod changed
   by a PUT -> visible (kubectl's line read from its stdout; the source's published
   state).
3. Status: the shell status script (`kubectl get pods -A`, `kubectl get nodes`,
   `docker network ls`, `tart list`, against the lab's API server, fake Docker API and
   fake tart) against one `megatui status --json`: wall time (exec -> exit) and the
   number of processes each starts (successful execve calls, counted with strace in
   separate, untimed runs).

    PYTHONPATH=.:tests python -m benchmarks.bench_compare [--boots 8] [--changes 30]
        [--runs 10] [--only readiness kube status] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import aiohttp

from benchmarks._proc import start_cluster, stop_cluster
from benchmarks.bench_kube import NAMESPACE, Waiter
from benchmarks.lab import VMS, SettledLab, megatui_argv
from benchmarks.results import Result, Row, add_json_argument, command_line, write_if_asked
from megatui.clock import SystemClock
from megatui.config import Settings

SLEEPS = (5, 10, 15)
VM = "bench"
LOGIN_AFTER = (3.0, 18.0)
WATCH_TIMEOUT = 90.0

#: `nc -z` where no nc is installed: the same TCP connect, by bash's /dev/tcp.
NC_SHIM = """#!/bin/bash
# nc -z [-w N] HOST PORT (a stand-in: no nc on this machine)
wait=2
while getopts "zw:" opt; do case $opt in w) wait=$OPTARG;; esac; done
shift $((OPTIND - 1))
exec timeout "$wait" bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null
"""


def ssh_options(port: int, key: Path) -> list[str]:
    return [
        "-p", str(port), "-i", str(key), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
        "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
        "-o", "LogLevel=ERROR",
    ]  # fmt: skip


def shell_loop(sleep: int, port: int, key: Path, user: str) -> str:
    """The readiness loop of the platform's scripts, for this lab's VM."""
    ssh = shlex.join(["ssh", *ssh_options(port, key)])
    return (
        f'until ip=$(tart ip {VM} 2>/dev/null) && nc -z -w 2 "$ip" {port} && '
        f'{ssh} {user}@"$ip" echo ready >/dev/null 2>&1; do sleep {sleep}; done'
    )


# --- 1. readiness ----------------------------------------------------------------------


class Watcher:
    """A process that exits once it has seen the VM ready; records when it exited."""

    def __init__(self, label: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.label = label
        self.argv = list(argv)
        self.env = dict(env)
        self.exited_at: float | None = None
        self.code: int | None = None

    async def run(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self.code = await asyncio.wait_for(proc.wait(), WATCH_TIMEOUT)
            self.exited_at = time.time()
        except TimeoutError:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


def shell_env(lab: SettledLab, root: Path) -> dict[str, str]:
    env = lab.process_env()
    if shutil.which("nc", path=env["PATH"]) is None:
        shim = root / "shim-bin"
        shim.mkdir(exist_ok=True)
        (shim / "nc").write_text(NC_SHIM)
        (shim / "nc").chmod(0o755)
        env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    return env


async def stop_vm(lab: SettledLab, env: Mapping[str, str]) -> None:
    assert lab.tart is not None
    proc = await asyncio.create_subprocess_exec(
        "tart", "stop", VM, env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    await asyncio.wait_for(proc.wait(), 30)
    deadline = time.monotonic() + 30
    while lab.tart.run_pid(VM) is not None:
        if time.monotonic() > deadline:
            raise SystemExit(f"lab VM {VM} did not stop")
        await asyncio.sleep(0.1)


async def readiness(
    lab: SettledLab, root: Path, boots: int, rng: random.Random
) -> tuple[dict[str, list[float]], list[float], list[float], list[str]]:
    assert lab.tart is not None
    env = shell_env(lab, root)
    spec = lab.tart.spec(VM)
    _ip, port = lab.tart.address(VM)
    latencies: dict[str, list[float]] = {"megatui wait": []}
    latencies |= {f"sleep {s}": [] for s in SLEEPS}
    problems: list[str] = []
    wait_argv = [*megatui_argv(lab.config_path), "wait", VM, "--timeout", str(WATCH_TIMEOUT)]
    for boot in range(boots):
        lab.set_login_after(VM, round(rng.uniform(*LOGIN_AFTER), 2))
        lab.tart.start(VM)  # `tart run VM &`, returns once it holds the VM
        watchers = [Watcher("megatui wait", wait_argv, env)] + [
            Watcher(f"sleep {s}", ["sh", "-c", shell_loop(s, port, lab.key_path, spec.user)], env)
            for s in SLEEPS
        ]
        await asyncio.gather(*(w.run() for w in watchers))
        accepting = lab.logins_accepted_at(VM)
        for w in watchers:
            if w.code == 0 and w.exited_at is not None:
                latencies[w.label].append(w.exited_at - accepting)
            else:
                problems.append(f"boot {boot + 1}: {w.label} exit {w.code}")
        print(
            f"boot {boot + 1}/{boots}: "
            + ", ".join(
                f"{label} {values[-1]:.2f} s" for label, values in latencies.items() if values
            ),
            flush=True,
        )
        if boot < boots - 1:
            await stop_vm(lab, env)
    # The VM is up: the floors, against the same sshd.
    floor = await asyncssh_logins(lab, 20)
    failures: list[str] = []
    ssh_once = await ssh_processes(lab, env, port, spec.user, 10, failures)
    if failures:
        problems.append(f"{len(failures)} of 10 `ssh ... echo ready` tries failed ({failures[0]})")
    await stop_vm(lab, env)
    return latencies, floor, ssh_once, problems


async def asyncssh_logins(lab: SettledLab, count: int) -> list[float]:
    import asyncssh

    assert lab.tart is not None
    ip, port = lab.tart.address(VM)
    user = lab.tart.spec(VM).user
    times = []
    for _ in range(count):
        started = time.perf_counter()
        conn = await asyncssh.connect(
            ip, port, username=user, client_keys=[str(lab.key_path)], known_hosts=None,
            agent_path=None, config=[],
        )  # fmt: skip
        times.append(time.perf_counter() - started)
        conn.close()
        await conn.wait_closed()
    return times


async def ssh_processes(
    lab: SettledLab,
    env: Mapping[str, str],
    port: int,
    user: str,
    count: int,
    failures: list[str],
) -> list[float]:
    """One try of the shell loop's last step, `ssh ... echo ready`, as a process."""
    assert lab.tart is not None
    ip, _ = lab.tart.address(VM)
    argv = ["ssh", *ssh_options(port, lab.key_path), f"{user}@{ip}", "echo", "ready"]
    times = []
    for _ in range(count):
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *argv, env=dict(env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        if proc.returncode == 0:
            times.append(time.perf_counter() - started)
        else:
            # Reported with the figures, not timed: a refused try is not a login.
            lines = err.decode(errors="replace").strip().splitlines() or ["no message"]
            failures.append(lines[-1][:120])
    return times


# --- 2. kubectl get pods -w vs the Kubernetes source ------------------------------------


class LineReader:
    """kubectl's stdout read in a thread, each line stamped as it arrives."""

    def __init__(self, stream: object) -> None:
        self.lines: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for raw in stream:  # type: ignore[attr-defined]
            stamp = time.perf_counter()
            with self.cond:
                self.lines.append((stamp, raw.decode(errors="replace")))
                self.cond.notify_all()

    def wait_line(self, predicate: object, since: int, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self.cond:
            index = since
            while True:
                while index < len(self.lines):
                    stamp, line = self.lines[index]
                    if predicate(line):  # type: ignore[operator]
                        return stamp
                    index += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)


def spawn_kubectl_watch(kubeconfig: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["kubectl", "--kubeconfig", kubeconfig, "get", "pods", "-n", NAMESPACE, "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def kube(root: Path, pods: int, changes: int) -> tuple[list[float], list[float]]:
    proc, info = await start_cluster(root / "kube", "--pods", str(pods), timeout=120)
    kubectl: subprocess.Popen[bytes] | None = None
    task: asyncio.Task[None] | None = None
    try:
        kubectl = spawn_kubectl_watch(info["kubeconfig"])
        reader = LineReader(kubectl.stdout)
        waiter = Waiter()
        settings = Settings(kubeconfig=info["kubeconfig"], kube_request_timeout=30.0)
        from megatui.sources.kube import KubeSource

        task = asyncio.create_task(KubeSource(settings, SystemClock(), waiter).run())
        await waiter.until(lambda s: len(s.pods) >= pods)
        base = f"{info['url']}/api/v1/namespaces/{NAMESPACE}/pods"
        assert waiter.state is not None
        name = sorted(p.name for p in waiter.state.pods)[len(waiter.state.pods) // 2]
        first = await asyncio.to_thread(reader.wait_line, lambda line: name in line, 0, 60)
        if first is None:
            raise SystemExit("kubectl get pods -w never listed the pods")
        ours: list[float] = []
        theirs: list[float] = []
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/{name}") as resp:
                obj = await resp.json()
            for i in range(changes + 1):  # change 0 is a warm-up, not timed
                want = str(2000 + i)
                obj["status"]["containerStatuses"][0]["restartCount"] = 2000 + i
                obj["metadata"].pop("resourceVersion", None)
                since = len(reader.lines)
                t0 = time.perf_counter()
                async with http.put(f"{base}/{name}", json=obj) as resp:
                    assert resp.status == 200, await resp.text()
                    obj = await resp.json()
                seen_at = await waiter.until(
                    lambda s, want=want: any(
                        p.name == name and p.restarts.split(" ")[0] == want for p in s.pods
                    )
                )
                line_at = await asyncio.to_thread(
                    reader.wait_line,
                    lambda line, want=want: line.split()[:1] == [name] and want in line.split(),
                    since,
                    10,
                )
                if i and line_at is not None:
                    ours.append(seen_at - t0)
                    theirs.append(line_at - t0)
                await asyncio.sleep(0.1)  # one change at a time, past any coalescing
        return ours, theirs
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if kubectl is not None:
            os.killpg(kubectl.pid, signal.SIGKILL)
            kubectl.wait()
        await stop_cluster(proc)


# --- 3. the shell status script vs status --json ---------------------------------------

STATUS_SCRIPT = "kubectl get pods -A; kubectl get nodes; docker network ls; tart list"


def run_timed(argv: Sequence[str], env: Mapping[str, str]) -> float:
    started = time.perf_counter()
    out = subprocess.run(argv, env=dict(env), capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"{shlex.join(argv[-4:])}: exit {out.returncode}: {out.stderr[-300:]}")
    return elapsed


def processes_started(argv: Sequence[str], env: Mapping[str, str], trace: Path) -> int:
    """Successful execve calls by the command and all its descendants (strace -f)."""
    subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=execve", "-o", str(trace), *argv],
        env=dict(env),
        capture_output=True,
        timeout=120,
        check=True,
    )
    return sum(
        1 for line in trace.read_text().splitlines() if "execve(" in line and line.endswith("= 0")
    )


def status(lab: SettledLab, root: Path, runs: int) -> dict[str, tuple[list[float], int | None]]:
    env = lab.process_env()
    script = ["sh", "-c", STATUS_SCRIPT]
    ours = [*megatui_argv(lab.config_path), "status", "--json", "--timeout", "30"]
    run_timed(ours, env)  # learns the VM's host key, as a user's first run does
    run_timed(script, env)
    times: dict[str, list[float]] = {"script": [], "megatui": []}
    for _ in range(runs):  # alternated, so load drifts hit both alike
        times["script"].append(run_timed(script, env))
        times["megatui"].append(run_timed(ours, env))
    counts: dict[str, int | None] = {"script": None, "megatui": None}
    if shutil.which("strace"):
        counts["script"] = processes_started(script, env, root / "script.trace")
        counts["megatui"] = processes_started(ours, env, root / "megatui.trace")
    return {k: (times[k], counts[k]) for k in times}


# --- the report -----------------------------------------------------------------------


def ratio(alternative: Sequence[float], ours: Sequence[float]) -> float:
    return statistics.median(alternative) / statistics.median(ours)


def add_readiness(
    result: Result,
    latencies: dict[str, list[float]],
    floor: list[float],
    ssh_once: list[float],
    sleeps_note: str,
) -> None:
    section = "readiness: sshd accepting logins -> noticed"
    clock = (
        "wall clock: the VM's sshd accepting logins (its tart run's start + login_after) "
        "-> the process exits 0; each started right after `tart run` ({})"
    )
    wait = latencies["megatui wait"]
    result.add(
        Row.from_samples(
            section,
            "megatui wait (the CLI, a process)",
            "s",
            clock.format("its interpreter start and imports happen before sshd is up"),
            wait,
        )
    )
    for sleep in SLEEPS:
        values = latencies[f"sleep {sleep}"]
        if values:
            result.add(
                Row.from_samples(
                    section,
                    f"shell loop, sleep {sleep}",
                    "s",
                    clock.format("`tart ip`, `nc -z`, `ssh ... echo ready` per try"),
                    values,
                    alternative=f"`until ip=$(tart ip vm) && nc -z $ip 22 && ssh admin@$ip "
                    f"echo ready; do sleep {sleep}; done`",
                    ratio=ratio(values, wait),
                )
            )
    result.add(
        Row.from_samples(
            section,
            "the floor: one asyncssh login to the same sshd",
            "s",
            "in-process, asyncssh imported: TCP connect + SSH handshake + key login, VM up",
            floor,
            alternative="the physical limit (ratio: floor / megatui wait)",
            ratio=ratio(floor, wait),
        )
    )
    result.notes.append(sleeps_note)
    if not ssh_once:
        return
    result.add(
        Row.from_samples(
            section,
            "one `ssh ... echo ready` (OpenSSH client, a process)",
            "s",
            "exec -> exit of the shell loop's last step, VM up",
            ssh_once,
            alternative="one try of the shell loop's login (ratio: / megatui wait)",
            ratio=ratio(ssh_once, wait),
        )
    )


def add_kube(result: Result, ours: list[float], theirs: list[float], pods: int) -> None:
    section = f"Kubernetes: a pod change -> visible ({pods} pods in {NAMESPACE}, same server)"
    clock = (
        "both watching already: just before the HTTP PUT of the pod -> {} (the fake API "
        "server in a child process, plain HTTP on loopback)"
    )
    result.add(
        Row.from_samples(
            section,
            "megatui's Kubernetes source",
            "ms",
            clock.format("KubeSource publishes a state showing it (in this process)"),
            [x * 1000 for x in ours],
        )
    )
    result.add(
        Row.from_samples(
            section,
            "kubectl get pods -w",
            "ms",
            clock.format("kubectl's line for it is read from its stdout (a reader thread)"),
            [x * 1000 for x in theirs],
            alternative="`kubectl get pods -n argocd -w`",
            ratio=ratio(theirs, ours),
        )
    )


def add_status(result: Result, figures: dict[str, tuple[list[float], int | None]]) -> None:
    section = "status: one look at everything (settled lab: 2 VMs, 4 nodes, Argo CD, Docker)"
    ours, our_count = figures["megatui"]
    script, script_count = figures["script"]
    clock = "a new process: exec -> exit, stdout to a pipe ({})"
    result.add(
        Row.from_samples(
            section,
            "megatui status --json",
            "s",
            clock.format("interpreter start, imports, every source's first round"),
            ours,
        )
    )
    result.add(
        Row.from_samples(
            section,
            "the shell status script",
            "s",
            clock.format("sh plus each command's start, in sequence"),
            script,
            alternative=f"`{STATUS_SCRIPT}`",
            ratio=ratio(script, ours),
        )
    )
    if our_count is not None and script_count is not None:
        count_clock = "successful execve calls of the command and its children (strace -f)"
        result.add(Row(section, "processes started: megatui status --json", "count",
                       count_clock, value=our_count))  # fmt: skip
        result.add(
            Row(
                section,
                "processes started: the shell status script",
                "count",
                count_clock,
                value=script_count,
                alternative=f"`{STATUS_SCRIPT}`",
                ratio=script_count / our_count,
            )
        )


async def main_async(args: argparse.Namespace, root: Path, result: Result) -> None:
    rng = random.Random(args.seed)
    parts = set(args.only)
    if "readiness" in parts or "status" in parts:
        lab = SettledLab(root / "lab", VMS)
        lab.start()
        try:
            if "status" in parts:
                add_status(result, await asyncio.to_thread(status, lab, root, args.runs))
            if "readiness" in parts:
                latencies, floor, ssh_once, problems = await readiness(lab, root, args.boots, rng)
                note = (
                    f"Readiness: {args.boots} boots, sshd accepting logins {LOGIN_AFTER[0]:g}-"
                    f"{LOGIN_AFTER[1]:g} s after `tart run` (random, seed {args.seed})."
                )
                if problems:
                    note += " Not counted: " + "; ".join(problems) + "."
                add_readiness(result, latencies, floor, ssh_once, note)
        finally:
            lab.stop()
    if "kube" in parts:
        ours, theirs = await kube(root, args.pods, args.changes)
        add_kube(result, ours, theirs, args.pods + 7)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boots", type=int, default=8)
    parser.add_argument("--changes", type=int, default=30)
    parser.add_argument("--pods", type=int, default=200, help="extra pods in argocd")
    parser.add_argument("--runs", type=int, default=10, help="status runs of each")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument(
        "--only",
        nargs="+",
        choices=("readiness", "kube", "status"),
        default=["status", "kube", "readiness"],
    )
    add_json_argument(parser)
    args = parser.parse_args()
    result = Result(
        bench="compare",
        title="megatui against what a user would run instead",
        command=command_line("benchmarks.bench_compare"),
    )
    with tempfile.TemporaryDirectory(prefix="mt-bench-compare-") as tmp:
        root = Path(tmp)
        os.environ["MEGATUI_DATA_DIR"] = str(root / "data")
        os.environ["MEGATUI_STATE_DIR"] = str(root / "state")
        os.environ.pop("SSH_AUTH_SOCK", None)
        asyncio.run(main_async(args, root, result))
    for row in result.rows:
        figure = f"median {row.median:.3f}" if row.median is not None else f"{row.value:g}"
        extra = f"  ratio {row.ratio:.1f}" if row.ratio is not None else ""
        print(f"{row.section[:30]:30} {row.measure[:50]:50} {figure} {row.unit}{extra}")
    for note in result.notes:
        print(note)
    write_if_asked(result, args.json)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
