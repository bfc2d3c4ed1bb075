"""Shared test plumbing. Area-specific fixtures live in tests/<area>_fixtures.py modules."""

from __future__ import annotations

import os
import shutil

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str, *candidates: str) -> str:
    """The path of a system program a test needs.

    Missing locally: the test is skipped. Missing under CI=true: the test fails,
    because .ci/run installs it and a silent skip would hide a broken setup.
    """
    for candidate in (name, *candidates):
        found = shutil.which(candidate)
        if found:
            return found
        if os.path.isabs(candidate) and os.access(candidate, os.X_OK):
            return candidate
    message = f"{name} is not installed"
    if IN_CI:
        pytest.fail(f"{message}, but CI=true requires it", pytrace=False)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _isolated_dirs(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep the developer's own config, data and state out of every test."""
    base = tmp_path_factory.mktemp("megatui-home")
    monkeypatch.setenv("MEGATUI_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("MEGATUI_STATE_DIR", str(base / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    for var in list(os.environ):
        if var.startswith("MEGATUI_") and var not in ("MEGATUI_DATA_DIR", "MEGATUI_STATE_DIR"):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TEXTUAL_THEME", raising=False)
