"""The metrics through a real Prometheus and promtool (Debian's `prometheus` package)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
from lab_fixtures import TartLabFactory, fast_vm, tart_lab_fixture  # noqa: F401
from monitor_helpers import lab_settings, wait_snapshot
from serve_fixtures import free_port, require_binary, serve

from megatui.model import Phase
from megatui.monitor import Monitor

ROOT = Path(__file__).resolve().parent.parent


def test_alert_rules_example_passes_promtool() -> None:
    promtool = require_binary("promtool")
    done = subprocess.run(
        [promtool, "check", "rules", str(ROOT / "docs" / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


async def test_the_exposition_passes_promtool_lint() -> None:
    promtool = require_binary("promtool")
    async with serve() as s, s.session() as session, session.get("/metrics") as reply:
        text = await reply.read()
    proc = await asyncio.create_subprocess_exec(
        promtool,
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        out, _ = await proc.communicate(text)
    assert proc.returncode == 0, out
    assert b"megatui_vm_phase{" in text


@contextlib.asynccontextmanager
async def prometheus(target: str, tmp_path: Path) -> AsyncIterator[str]:
    binary = require_binary("prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: megatui\n"
        f"    static_configs: [{{targets: ['{target}']}}]\n"
    )
    proc = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            async with asyncio.timeout(15):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def query(session: aiohttp.ClientSession, url: str, promql: str) -> list[dict[str, object]]:
    try:
        async with session.get(f"{url}/api/v1/query", params={"query": promql}) as reply:
            if reply.status != 200:
                return []
            data = json.loads(await reply.text())
    except aiohttp.ClientError:
        return []  # Prometheus is still starting
    result: list[dict[str, object]] = data["data"]["result"]
    return result


async def poll(session: aiohttp.ClientSession, url: str, promql: str, timeout: float) -> list:  # type: ignore[type-arg]
    """Query until the answer is not empty (Prometheus scrapes every second)."""
    async with asyncio.timeout(timeout):
        while True:
            result = await query(session, url, promql)
            if result:
                return result
            await asyncio.sleep(0.5)  # the next scrape is the only thing to wait for


async def test_prometheus_sees_a_lab_vm_become_ready(
    tart_lab: TartLabFactory, tmp_path: Path
) -> None:
    require_binary("prometheus")
    lab = tart_lab([fast_vm("alpha", initial="stopped")])
    monitor = Monitor(lab_settings(lab, tmp_path), sources={"tart", "ssh"})
    await monitor.start()
    try:
        async with (
            serve(monitor=monitor, allow_actions=True) as s,
            prometheus(s.url.removeprefix("http://"), tmp_path) as prom,
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        ):
            await wait_snapshot(monitor, lambda x: x.vm("alpha") is not None)
            stopped = await poll(session, prom, 'megatui_vm_ready{vm="alpha"} == 0', 60)
            assert stopped[0]["metric"]["job"] == "megatui"  # type: ignore[index]
            async with s.session() as api, api.post("/api/v1/vms/alpha/start") as reply:
                assert reply.status == 202, await reply.text()
            await wait_snapshot(monitor, lambda x: x.vm("alpha").phase is Phase.READY, 30)  # type: ignore[union-attr]
            ready = await poll(session, prom, 'megatui_vm_ready{vm="alpha"} == 1', 30)
            assert ready[0]["metric"]["vm"] == "alpha"  # type: ignore[index]
            phase = await poll(session, prom, 'megatui_vm_phase{vm="alpha",phase="ready"} == 1', 30)
            assert phase
            boots = await poll(session, prom, "megatui_vm_time_to_ready_seconds_count > 0", 30)
            assert float(boots[0]["value"][1]) >= 1  # type: ignore[index]
    finally:
        await monitor.stop()
