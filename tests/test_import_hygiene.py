"""Only megatui.ui may import Textual's packages (textual, textual_serve): the core must
run headless and stay testable."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import megatui


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
