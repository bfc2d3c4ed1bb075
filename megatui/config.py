"""Settings: a TOML file, then MEGATUI_* environment variables, then flags.

Every key is declared once in `SCHEMA`; the loader rejects anything else with a
one-line message naming the key, which the CLI turns into exit code 2.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

APP_NAME = "megatui"


class ConfigError(Exception):
    """A bad config file, environment variable or flag. The message is one line."""


def config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    override = os.environ.get("MEGATUI_DATA_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def state_dir() -> Path:
    override = os.environ.get("MEGATUI_STATE_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))


def default_config_path() -> Path:
    return config_dir() / "config.toml"


# --- value checkers: each returns the converted value or raises ValueError(reason)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("expected a string")
    return v


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(v, str) and v.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _positive(v: Any) -> float:
    try:
        f = float(v) if not isinstance(v, bool) else float("nan")
    except (TypeError, ValueError):
        raise ValueError("expected a number") from None
    if not f > 0 or f != f or f == float("inf"):
        raise ValueError("expected a positive number")
    return f


def _port(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("expected a port number")
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise ValueError("expected a port number") from None
    if isinstance(v, float) and v != n:
        raise ValueError("expected a port number")
    if not 1 <= n <= 65535:
        raise ValueError("expected a port number between 1 and 65535")
    return n


def _count(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("expected a whole number")
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise ValueError("expected a whole number") from None
    if n < 0:
        raise ValueError("expected a whole number of 0 or more")
    return n


def _str_list(v: Any) -> tuple[str, ...]:
    if isinstance(v, str):
        return tuple(s for s in (p.strip() for p in v.split(",")) if s)
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise ValueError("expected a list of strings")
    return tuple(v)


Checker = Callable[[Any], Any]

#: section -> key -> checker. `vms.NAME` tables use VM_SCHEMA.
SCHEMA: dict[str, dict[str, Checker]] = {
    "general": {
        "host": _str,
        "readonly": _bool,
        "theme": _str,
    },
    "tart": {
        "path": _str,
        "poll_interval": _positive,
        "boot_poll_interval": _positive,
        "timeout": _positive,
    },
    "ssh": {
        "user": _str,
        "password": _str,
        "key": _str,
        "agent": _bool,
        "port": _port,
        "command": _str,
        "health_interval": _positive,
        "probe_interval": _positive,
        "connect_timeout": _positive,
    },
    "kube": {
        "kubeconfig": _str,
        "context": _str,
        "namespace": _str,
        "request_timeout": _positive,
        "watch_timeout": _positive,
    },
    "docker": {
        "host": _str,
        "poll_interval": _positive,
        "timeout": _positive,
    },
    "doctor": {
        "expected_nodes": _count,
        "vms": _str_list,
        "timeout": _positive,
    },
    "keys": {
        "start": _str,
        "stop": _str,
        "ssh": _str,
        "copy": _str,
        "detail": _str,
        "filter": _str,
        "refresh": _str,
        "help": _str,
        "quit": _str,
    },
}

VM_SCHEMA: dict[str, Checker] = {
    "port": _port,
    "user": _str,
    "password": _str,
    "key": _str,
    "command": _str,
    "host": _str,  # address override, for VMs tart cannot resolve
}

#: MEGATUI_* variables and the config key each sets.
ENV_KEYS: dict[str, tuple[str, str]] = {
    "MEGATUI_HOST": ("general", "host"),
    "MEGATUI_READONLY": ("general", "readonly"),
    "MEGATUI_THEME": ("general", "theme"),
    "MEGATUI_TART": ("tart", "path"),
    "MEGATUI_TART_POLL_INTERVAL": ("tart", "poll_interval"),
    "MEGATUI_VM_USER": ("ssh", "user"),
    "MEGATUI_VM_PASSWORD": ("ssh", "password"),
    "MEGATUI_VM_KEY": ("ssh", "key"),
    "MEGATUI_VM_PORT": ("ssh", "port"),
    "MEGATUI_VM_COMMAND": ("ssh", "command"),
    "MEGATUI_KUBECONFIG": ("kube", "kubeconfig"),
    "MEGATUI_CONTEXT": ("kube", "context"),
    "MEGATUI_NAMESPACE": ("kube", "namespace"),
    "MEGATUI_DOCKER_HOST": ("docker", "host"),
}


@dataclass(frozen=True, slots=True)
class VMSettings:
    """How to reach and log in to one VM (defaults from [ssh])."""

    port: int = 22
    user: str = "admin"
    password: str | None = None
    key: str | None = None
    command: str = "echo ready"
    host: str | None = None


@dataclass(frozen=True, slots=True)
class VMOverride:
    """A [vms.NAME] table as written: unset keys are None."""

    port: int | None = None
    user: str | None = None
    password: str | None = None
    key: str | None = None
    command: str | None = None
    host: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    config_path: Path | None = None
    host: str | None = None
    readonly: bool = False
    theme: str | None = None
    tart_path: str = "tart"
    tart_poll_interval: float = 10.0
    tart_boot_poll_interval: float = 1.0
    tart_timeout: float = 10.0
    ssh_user: str = "admin"
    ssh_password: str | None = None
    ssh_key: str | None = None
    ssh_agent: bool = True
    ssh_port: int = 22
    ssh_command: str = "echo ready"
    ssh_health_interval: float = 30.0
    ssh_probe_interval: float = 0.25
    ssh_connect_timeout: float = 5.0
    vms: Mapping[str, VMOverride] = field(default_factory=dict)
    kubeconfig: str | None = None
    kube_context: str | None = None
    namespace: str = "argocd"
    kube_request_timeout: float = 10.0
    # The watch heartbeat: the API server ends each watch after this many seconds, so a
    # watch silent for longer (plus a grace) is stalled. 20 s: a frozen API server is
    # seen within 30 s, at the cost of one cheap re-watch per resource every 20 s.
    kube_watch_timeout: float = 20.0
    docker_host: str | None = None
    docker_poll_interval: float = 5.0
    docker_timeout: float = 5.0
    expected_nodes: int | None = None
    doctor_vms: tuple[str, ...] = ()
    doctor_timeout: float = 300.0
    keys: Mapping[str, str] = field(default_factory=dict)

    def vm(self, name: str) -> VMSettings:
        """The effective login settings for a VM: its table over [ssh]."""
        own = self.vms.get(name) or VMOverride()
        return VMSettings(
            port=own.port if own.port is not None else self.ssh_port,
            user=own.user or self.ssh_user,
            password=own.password or self.ssh_password,
            key=own.key or self.ssh_key,
            command=own.command or self.ssh_command,
            host=own.host,
        )


# Flat settings attribute for each (section, key).
_ATTR: dict[tuple[str, str], str] = {
    ("general", "host"): "host",
    ("general", "readonly"): "readonly",
    ("general", "theme"): "theme",
    ("tart", "path"): "tart_path",
    ("tart", "poll_interval"): "tart_poll_interval",
    ("tart", "boot_poll_interval"): "tart_boot_poll_interval",
    ("tart", "timeout"): "tart_timeout",
    ("ssh", "user"): "ssh_user",
    ("ssh", "password"): "ssh_password",
    ("ssh", "key"): "ssh_key",
    ("ssh", "agent"): "ssh_agent",
    ("ssh", "port"): "ssh_port",
    ("ssh", "command"): "ssh_command",
    ("ssh", "health_interval"): "ssh_health_interval",
    ("ssh", "probe_interval"): "ssh_probe_interval",
    ("ssh", "connect_timeout"): "ssh_connect_timeout",
    ("kube", "kubeconfig"): "kubeconfig",
    ("kube", "context"): "kube_context",
    ("kube", "namespace"): "namespace",
    ("kube", "request_timeout"): "kube_request_timeout",
    ("kube", "watch_timeout"): "kube_watch_timeout",
    ("docker", "host"): "docker_host",
    ("docker", "poll_interval"): "docker_poll_interval",
    ("docker", "timeout"): "docker_timeout",
    ("doctor", "expected_nodes"): "expected_nodes",
    ("doctor", "vms"): "doctor_vms",
    ("doctor", "timeout"): "doctor_timeout",
}


def _check(where: str, checker: Checker, value: Any) -> Any:
    try:
        return checker(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc} (got {value!r})") from None


def _from_table(data: Mapping[str, Any], origin: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate a parsed TOML document. Returns (flat settings, vm tables)."""
    flat: dict[str, Any] = {}
    vms: dict[str, Any] = {}
    keys: dict[str, str] = {}
    for section, body in data.items():
        if section == "vms":
            if not isinstance(body, dict):
                raise ConfigError(f"{origin}: 'vms' must be a table of [vms.NAME] tables")
            for name, table in body.items():
                if not isinstance(table, dict):
                    raise ConfigError(f"{origin}: 'vms.{name}' must be a table")
                vm: dict[str, Any] = {}
                for key, value in table.items():
                    if key not in VM_SCHEMA:
                        raise ConfigError(f"{origin}: unknown key 'vms.{name}.{key}'")
                    vm[key] = _check(f"{origin}: 'vms.{name}.{key}'", VM_SCHEMA[key], value)
                vms[name] = vm
            continue
        if section not in SCHEMA:
            raise ConfigError(f"{origin}: unknown section '{section}'")
        if not isinstance(body, dict):
            raise ConfigError(f"{origin}: '{section}' must be a table")
        for key, value in body.items():
            checker = SCHEMA[section].get(key)
            if checker is None:
                raise ConfigError(f"{origin}: unknown key '{section}.{key}'")
            checked = _check(f"{origin}: '{section}.{key}'", checker, value)
            if section == "keys":
                keys[key] = checked
            else:
                flat[_ATTR[(section, key)]] = checked
    if keys:
        flat["keys"] = keys
    return flat, vms


def load_file(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return _from_table(data, str(path))


def load_env(environ: Mapping[str, str]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for var, (section, key) in ENV_KEYS.items():
        if var in environ:
            checker = SCHEMA[section][key]
            flat[_ATTR[(section, key)]] = _check(var, checker, environ[var])
    return flat


def load_settings(
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """File (explicit, MEGATUI_CONFIG, or the default location), then env, then flags.

    `overrides` holds flag values keyed by Settings attribute; None values are ignored.
    """
    env = os.environ if environ is None else environ
    explicit = config_file or env.get("MEGATUI_CONFIG")
    path: Path | None
    flat: dict[str, Any] = {}
    vm_tables: dict[str, Any] = {}
    if explicit:
        path = Path(explicit).expanduser()
        flat, vm_tables = load_file(path)
    else:
        path = default_config_path()
        if path.exists():
            flat, vm_tables = load_file(path)
        else:
            path = None
    flat.update(load_env(env))
    for key, value in (overrides or {}).items():
        if value is not None:
            flat[key] = value
    vms = {name: VMOverride(**table) for name, table in vm_tables.items()}
    return Settings(config_path=path, vms=vms, **flat)
