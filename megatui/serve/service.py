"""`megatui service install|uninstall|status`: `megatui serve` as a user service.

macOS: a launchd LaunchAgent (~/Library/LaunchAgents/LABEL.plist), KeepAlive so
launchd restarts it when it crashes. Linux: a systemd user unit
(~/.config/systemd/user/megatui.service), Restart=on-failure. Both log to files in
the state directory. The service runs exactly the flags given now.
"""

from __future__ import annotations

import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from megatui.config import state_dir

LABEL = "io.megalopolis.megatui"
UNIT = "megatui.service"
COMMAND_TIMEOUT = 15.0


@dataclass(frozen=True)
class ServiceFiles:
    path: Path
    content: bytes


def command(argv: Sequence[str]) -> list[str]:
    """The service's command line: this interpreter running megatui."""
    return [sys.executable, "-m", "megatui", *argv]


def log_paths() -> tuple[Path, Path]:
    logs = state_dir() / "logs"
    return logs / "serve.out.log", logs / "serve.err.log"


def launchd_plist(argv: Sequence[str], environ: dict[str, str] | None = None) -> bytes:
    out, err = log_paths()
    env = {"PYTHONUNBUFFERED": "1", **(environ or {})}
    data = {
        "Label": LABEL,
        "ProgramArguments": command(argv),
        "RunAtLoad": True,
        # Restart when it exits with a failure (a crash), not after a clean stop.
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": 10,
        "StandardOutPath": str(out),
        "StandardErrorPath": str(err),
        "EnvironmentVariables": env,
        "ProcessType": "Background",
    }
    return plistlib.dumps(data)


def _systemd_quote(word: str) -> str:
    # systemd splits ExecStart like a shell, but "%" and "$" are its own specifiers.
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"' if not word or any(c in word for c in " \t'\"\\") else escaped


def systemd_unit(argv: Sequence[str], environ: dict[str, str] | None = None) -> str:
    out, err = log_paths()
    env = {"PYTHONUNBUFFERED": "1", **(environ or {})}
    lines = [
        "[Unit]",
        "Description=megatui serve: the Megalopolis control room",
        "After=network-online.target",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(_systemd_quote(w) for w in command(argv)),
        *(f'Environment="{k}={v}"' for k, v in sorted(env.items())),
        "Restart=on-failure",
        "RestartSec=5",
        f"StandardOutput=append:{out}",
        f"StandardError=append:{err}",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def service_file(argv: Sequence[str], platform: str = sys.platform) -> ServiceFiles:
    env = {k: os.environ[k] for k in ("MEGATUI_STATE_DIR", "MEGATUI_DATA_DIR") if k in os.environ}
    if platform == "darwin":
        path = Path.home() / "Library" / "LaunchAgents" / f"{LABEL}.plist"
        return ServiceFiles(path, launchd_plist(argv, env))
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return ServiceFiles(config / "systemd" / "user" / UNIT, systemd_unit(argv, env).encode())


def _run(argv: list[str]) -> tuple[int, str]:
    if shutil.which(argv[0]) is None:
        return 127, f"{argv[0]} not found"
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        return 124, f"{argv[0]} timed out"
    return done.returncode, (done.stdout + done.stderr).strip()


def _manager(platform: str, action: str, path: Path) -> list[str]:
    if platform == "darwin":
        uid = os.getuid()
        verbs = {
            "load": ["launchctl", "bootstrap", f"gui/{uid}", str(path)],
            "unload": ["launchctl", "bootout", f"gui/{uid}/{LABEL}"],
            "status": ["launchctl", "print", f"gui/{uid}/{LABEL}"],
        }
    else:
        verbs = {
            "load": ["systemctl", "--user", "enable", "--now", UNIT],
            "unload": ["systemctl", "--user", "disable", "--now", UNIT],
            "status": ["systemctl", "--user", "status", "--no-pager", UNIT],
        }
    return verbs[action]


def main(action: str, argv: Sequence[str], platform: str = sys.platform) -> int:
    files = service_file(argv, platform)
    if action == "install":
        files.path.parent.mkdir(parents=True, exist_ok=True)
        log_paths()[0].parent.mkdir(parents=True, exist_ok=True)
        files.path.write_bytes(files.content)
        print(f"wrote {files.path}")
        print("runs: " + shlex.join(command(argv)))
        if platform != "darwin":
            _run(["systemctl", "--user", "daemon-reload"])
        code, text = _run(_manager(platform, "load", files.path))
        if code != 0:
            print(f"megatui: could not start the service: {text}", file=sys.stderr)
            return 1
        print(f"started; logs in {log_paths()[0].parent}")
        return 0
    if action == "uninstall":
        if not files.path.exists():
            print(f"megatui: no service installed ({files.path} does not exist)", file=sys.stderr)
            return 1
        _run(_manager(platform, "unload", files.path))
        files.path.unlink()
        print(f"stopped and removed {files.path}")
        return 0
    if not files.path.exists():
        print(f"not installed ({files.path} does not exist)")
        return 1
    code, text = _run(_manager(platform, "status", files.path))
    print(f"installed: {files.path}")
    print(text or f"(status exit {code})")
    return 0 if code == 0 else 1
