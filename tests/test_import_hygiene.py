"""Only megatui.ui may import Textual's packages (textual, textual_serve): the core must
run headless and stay testable. And the cold-start rule: a command imports only what it
needs, when it needs it; the official Kubernetes client is never imported."""

from __future__ import annotations

import asyncio
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import megatui
from megatui.lab.cluster import start_lab_cluster


def _core_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(megatui.__path__, prefix="megatui."):
        if info.name.startswith("megatui.ui"):
            continue
        names.append(info.name)
    return names


def test_core_modules_do_not_import_textual() -> None:
    modules = _core_modules()
    assert "megatui.model" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_serve'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"core modules pulled in textual: {out}"


# --- cold start: import only what the command at hand needs (docs/architecture.md) ---

#: Packages a headless command must not import before it needs them: the TUI's, the
#: server's, and every client library (each costs 0.1 to 0.3 s of CPU to import).
HEAVY = (
    "textual",
    "textual_serve",
    "rich",
    "kubernetes",
    "pydantic",
    "docker",
    "requests",
    "urllib3",
    "asyncssh",
    "cryptography",
    "aiohttp",
    "prometheus_client",
    "yaml",
    "openapi_core",
)


def _imported(code: str, *args: str, env: dict[str, str] | None = None) -> set[str]:
    """The top-level packages a fresh interpreter imported while running `code`."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=env,
    ).stdout
    return set(out.split())


def test_the_headless_commands_import_no_client_library() -> None:
    """`--version`, argument parsing and the monitor itself pull in none of HEAVY:
    each source imports its client when it starts (in a thread)."""
    code = (
        "import sys\n"
        "import megatui.cli\n"
        "megatui.cli.build_parser().parse_args(['status', '--json'])\n"
        "import megatui.headless, megatui.monitor, megatui.report, megatui.vm_commands\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    present = _imported(code) & set(HEAVY)
    assert present == set(), f"imported before any source needs them: {sorted(present)}"


def test_no_module_of_megatui_imports_the_kubernetes_package() -> None:
    """Not even the TUI, the server or the lab: the official client (and its generated
    models, pydantic, requests) is a test-only dependency."""
    modules = [info.name for info in pkgutil.walk_packages(megatui.__path__, prefix="megatui.")]
    assert "megatui.ui.app" in modules and "megatui.sources.kube" in modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    present = _imported(code)
    assert "textual" in present  # the walk did reach the UI
    assert "kubernetes" not in present and "pydantic" not in present


async def test_status_talks_to_kubernetes_without_the_kubernetes_package(tmp_path: Path) -> None:
    """`megatui status --json` against an API server (the lab's, with mutual TLS):
    the kube source answers, and neither the official client nor Textual was imported."""
    cluster = await start_lab_cluster(tls=True, workdir=tmp_path / "kube", animate=False)
    try:
        code = (
            "import runpy, sys\n"
            "sys.argv = ['megatui', *sys.argv[1:]]\n"
            "try:\n"
            "    runpy.run_module('megatui', run_name='__main__')\n"
            "except SystemExit:\n"
            "    pass\n"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MEGATUI_")},
            "MEGATUI_DATA_DIR": str(tmp_path / "data"),
            "MEGATUI_STATE_DIR": str(tmp_path / "state"),
        }
        args = [
            "--kubeconfig",
            str(cluster.kubeconfig_path),
            "--tart",
            str(tmp_path / "no-tart"),
            "--docker-host",
            f"unix://{tmp_path / 'no-docker.sock'}",
            "status",
            "--json",
            "--timeout",
            "20",
        ]
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", code, *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    finally:
        await cluster.stop()
    report, _, modules = result.stdout.rpartition("\n}\n")
    data = json.loads(report + "\n}")
    assert data["sources"]["kubernetes"]["ok"], data["sources"]["kubernetes"]
    assert data["sources"]["applications"]["ok"]
    present = set(modules.split())
    assert "aiohttp" in present  # the kube source's own client ran
    assert present & {"kubernetes", "pydantic", "textual", "prometheus_client"} == set()
