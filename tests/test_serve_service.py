"""`megatui service`: the launchd plist and the systemd user unit for `megatui serve`."""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from megatui.cli import build_parser, service_argv
from megatui.serve import service

ARGV = [
    "--host",
    "admin@mac studio.local",
    "serve",
    "--bind",
    "0.0.0.0",
    "--port",
    "9100",
    "--allow-actions",
]


def test_service_argv_keeps_the_flags_given_now_with_absolute_paths(tmp_path: Path) -> None:
    config = tmp_path / "megatui.toml"
    args = build_parser().parse_args(
        [
            "--config",
            str(config),
            "--readonly",
            "--vm-password-file",
            "secret.txt",
            "service",
            "install",
            "--port",
            "9100",
            "--allow-actions",
        ]
    )
    argv = service_argv(args)
    assert argv[argv.index("--config") + 1] == str(config)
    assert "--readonly" in argv
    assert argv[argv.index("--vm-password-file") + 1] == os.path.abspath("secret.txt")
    assert argv[argv.index("serve") :] == [
        "serve",
        "--bind",
        "127.0.0.1",
        "--port",
        "9100",
        "--allow-actions",
    ]


def test_launchd_plist_round_trips_with_the_expected_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MEGATUI_STATE_DIR", str(tmp_path / "state"))
    data = plistlib.loads(service.launchd_plist(ARGV))
    assert data["Label"] == service.LABEL
    assert data["ProgramArguments"] == [sys.executable, "-m", "megatui", *ARGV]
    assert data["RunAtLoad"] is True
    assert data["KeepAlive"] == {"SuccessfulExit": False}
    assert data["StandardOutPath"].startswith(str(tmp_path / "state" / "logs"))
    assert data["StandardErrorPath"].startswith(str(tmp_path / "state" / "logs"))
    assert plistlib.loads(plistlib.dumps(data)) == data
    files = service.service_file(ARGV, platform="darwin")
    assert files.path.name == f"{service.LABEL}.plist"
    assert files.path.parent.name == "LaunchAgents"


def test_systemd_unit_restarts_on_failure_and_logs_to_the_state_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MEGATUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    files = service.service_file(ARGV, platform="linux")
    assert files.path == tmp_path / "config" / "systemd" / "user" / "megatui.service"
    unit = files.content.decode()
    assert "Restart=on-failure" in unit
    assert f"StandardOutput=append:{tmp_path / 'state' / 'logs'}" in unit
    # The host with a space survives as one word.
    assert '"admin@mac studio.local"' in unit


def test_systemd_unit_passes_systemd_analyze_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (not a required system part)")
    monkeypatch.setenv("MEGATUI_STATE_DIR", str(tmp_path / "state"))
    runtime = tmp_path / "run"  # --user needs a runtime directory, even in a container
    runtime.mkdir(mode=0o700)

    def verify(text: str) -> subprocess.CompletedProcess[str]:
        unit = tmp_path / "megatui.service"
        unit.write_text(text)
        return subprocess.run(
            [analyze, "verify", "--user", str(unit)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        )

    done = verify(service.systemd_unit(ARGV))
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stderr
    # The check does catch a broken unit here.
    broken = verify(service.systemd_unit(ARGV).replace("Restart=on-failure", "Restart=bogus"))
    assert "bogus" in broken.stdout + broken.stderr


def test_install_status_uninstall_without_a_service_manager(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEGATUI_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no systemctl: the file is still written
    assert service.main("status", ARGV, platform="linux") == 1
    assert service.main("install", ARGV, platform="linux") == 1
    path = tmp_path / "config" / "systemd" / "user" / "megatui.service"
    assert path.exists()
    assert "could not start the service: systemctl not found" in capsys.readouterr().err
    assert service.main("uninstall", ARGV, platform="linux") == 0
    assert not path.exists()
    assert service.main("uninstall", ARGV, platform="linux") == 1
