"""Settings: a TOML file, then MEGATUI_* environment variables, then flags.

Every key is declared once in `SCHEMA`; the loader rejects anything else with a
one-line message naming the key, which the CLI turns into exit code 2.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import platformdirs

from megatui.backoff import JITTER
from megatui.key_bindings import DEFAULT_KEYS, RESERVED_KEYS, key_list

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    _Section = TypeVar("_Section", bound=DataclassInstance)

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


def _orchard_url(v: Any) -> str:
    from megatui.sources.orchard_config import OrchardConfigError, check_url

    try:
        return check_url(_str(v))
    except OrchardConfigError as exc:
        raise ValueError(str(exc)) from None


def _secret(v: Any) -> str:
    """A token: a string, and never repeated in a message (the caller's `got`
    would print it, so the reason says all there is to say)."""
    if not isinstance(v, str) or not v or any(ch.isspace() for ch in v):
        raise ValueError("expected a token without spaces")
    return v


def _bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("1", "true", "yes", "on"):
        return True
    if isinstance(v, str) and v.lower() in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _number(v: Any, *, zero_ok: bool) -> float:
    """A finite number above 0 (or 0 itself if `zero_ok`); true and false are not numbers."""
    try:
        f = float(v) if not isinstance(v, bool) else float("nan")
    except (TypeError, ValueError):
        raise ValueError("expected a number") from None
    if not (f >= 0 if zero_ok else f > 0) or f == float("inf"):
        raise ValueError(
            "expected a number of 0 or more" if zero_ok else "expected a positive number"
        )
    return f


def _positive(v: Any) -> float:
    return _number(v, zero_ok=False)


def _not_negative(v: Any) -> float:
    return _number(v, zero_ok=True)


def _fraction(v: Any) -> float:
    """A jitter: a number in [0, 1), so a jittered delay stays positive."""
    f = _not_negative(v)
    if not f < 1:
        raise ValueError("expected a number from 0 to below 1")
    return f


def _integer(v: Any, expected: str) -> int:
    """A whole number (2.0 is one, 2.5 and true are not); `expected` names it in errors."""
    if isinstance(v, bool):
        raise ValueError(f"expected {expected}")
    try:
        n = int(v)
    except (TypeError, ValueError):
        raise ValueError(f"expected {expected}") from None
    if isinstance(v, float) and v != n:
        raise ValueError(f"expected {expected}")
    return n


def _port(v: Any) -> int:
    n = _integer(v, "a port number")
    if not 1 <= n <= 65535:
        raise ValueError("expected a port number between 1 and 65535")
    return n


def _count(v: Any) -> int:
    n = _integer(v, "a whole number")
    if n < 0:
        raise ValueError("expected a whole number of 0 or more")
    return n


def _at_least_one(v: Any) -> int:
    n = _count(v)
    if n < 1:
        raise ValueError("expected a whole number of 1 or more")
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
    # The one SSH connection to the Mac of `--host` (megatui.remote).
    "remote": {
        "connect_timeout": _positive,
        "keepalive_interval": _positive,
        "keepalive_count": _at_least_one,
        "reconnect_delay": _positive,
        "reconnect_max_delay": _positive,
        "max_sessions": _at_least_one,
        "known_hosts": _str,
        "ssh_config": _str,
    },
    "kube": {
        "kubeconfig": _str,
        "context": _str,
        "namespace": _str,
        "request_timeout": _positive,
        "watch_timeout": _positive,
        # The pacing of the watches (KubeTiming).
        "reconnect_delay": _positive,
        "reconnect_max_delay": _positive,
        "reconnect_jitter": _fraction,
        "crd_retry_interval": _positive,
        "coalesce": _not_negative,
        "restarts_refresh_interval": _positive,
        "watch_grace": _positive,
    },
    "docker": {
        "host": _str,
        "poll_interval": _positive,
        "timeout": _positive,
    },
    "orchard": {
        "url": _orchard_url,
        "context": _str,
        "service_account": _str,
        "token": _secret,
    },
    "doctor": {
        "expected_nodes": _count,
        "vms": _str_list,
        "timeout": _positive,
    },
    "keys": dict.fromkeys(DEFAULT_KEYS, key_list),
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
class RemoteSettings:
    """How the one SSH connection to the `--host` Mac behaves ([remote])."""

    connect_timeout: float = 10.0
    # asyncssh sends a keepalive after `keepalive_interval` s with nothing received
    # and drops the connection after `keepalive_count` unanswered ones: a frozen Mac
    # (asleep, sshd stopped, traffic blackholed) is declared lost (count + 1) *
    # interval = 12 s after it went silent, before VM probes through it time out.
    keepalive_interval: float = 4.0
    keepalive_count: int = 2
    # Reconnects back off from `reconnect_delay` doubling up to `reconnect_max_delay`.
    reconnect_delay: float = 1.0
    reconnect_max_delay: float = 30.0
    # OpenSSH's MaxSessions (10 by default, also on macOS) caps concurrent exec
    # channels per connection; beyond it sshd refuses the channel. Stay below it
    # and keep room for the kill of a timed-out command.
    max_sessions: int = 8
    # ssh's UserKnownHostsFile and `ssh -F`: None is ~/.ssh/known_hosts, ~/.ssh/config.
    known_hosts: str | None = None
    ssh_config: str | None = None


#: The defaults of [remote], written once.
_REMOTE = RemoteSettings()


@dataclass(frozen=True, slots=True)
class KubeTiming:
    """How the Kubernetes watches pace their retries and change reports ([kube])."""

    # A failing request retries after `reconnect_delay`, doubling up to
    # `reconnect_max_delay`, each delay scaled by a random factor in [1-j, 1+j].
    reconnect_delay: float = 0.5
    reconnect_max_delay: float = 30.0
    reconnect_jitter: float = JITTER
    crd_retry_interval: float = 60.0  # a missing CRD is looked for again this rarely
    coalesce: float = 0.05  # at most one on_change per this many seconds in a burst
    restarts_refresh_interval: float = 10.0  # re-render "N (5m ago)" restarts this often
    # A watch asks the server to end it after watch_timeout; one that receives nothing
    # for watch_timeout + watch_grace (no event, no bookmark, no end) is stalled.
    watch_grace: float = 5.0


#: The defaults of the [kube] pacing, written once.
_KUBE = KubeTiming()

#: (section, smaller key, larger key): backoffs that must not start above their cap.
_ORDERED: tuple[tuple[str, str, str], ...] = (
    ("remote", "reconnect_delay", "reconnect_max_delay"),
    ("kube", "reconnect_delay", "reconnect_max_delay"),
)


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
    # [remote], flat like every other section; `remote()` gathers them. Alike on purpose
    # to the [kube] pacing below: one typed field a key, its default from the dataclass.
    remote_connect_timeout: float = _REMOTE.connect_timeout
    remote_keepalive_interval: float = _REMOTE.keepalive_interval
    remote_keepalive_count: int = _REMOTE.keepalive_count
    remote_reconnect_delay: float = _REMOTE.reconnect_delay
    remote_reconnect_max_delay: float = _REMOTE.reconnect_max_delay
    remote_max_sessions: int = _REMOTE.max_sessions
    remote_known_hosts: str | None = None
    remote_ssh_config: str | None = None
    kubeconfig: str | None = None
    kube_context: str | None = None
    namespace: str = "argocd"
    kube_request_timeout: float = 10.0
    # The watch heartbeat: the API server ends each watch after this many seconds, so a
    # watch silent for longer (plus a grace) is stalled. 20 s: a frozen API server is
    # seen within 30 s, at the cost of one cheap re-watch per resource every 20 s.
    kube_watch_timeout: float = 20.0
    # The [kube] pacing, flat and alike on purpose to [remote] above (one typed field a
    # key, its default from the dataclass); `kube_timing()` gathers them.
    kube_reconnect_delay: float = _KUBE.reconnect_delay
    kube_reconnect_max_delay: float = _KUBE.reconnect_max_delay
    kube_reconnect_jitter: float = _KUBE.reconnect_jitter
    kube_crd_retry_interval: float = _KUBE.crd_retry_interval
    kube_coalesce: float = _KUBE.coalesce
    kube_restarts_refresh_interval: float = _KUBE.restarts_refresh_interval
    kube_watch_grace: float = _KUBE.watch_grace
    docker_host: str | None = None
    docker_poll_interval: float = 5.0
    docker_timeout: float = 5.0
    expected_nodes: int | None = None
    doctor_vms: tuple[str, ...] = ()
    doctor_timeout: float = 300.0
    keys: Mapping[str, str] = field(default_factory=dict)
    #: [recovery."*"] and [recovery.NAME] tables as written (see recovery_policy).
    recovery: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def recovery_policy(self, name: str) -> RecoveryPolicy | None:
        """The VM's recovery policy: its table over the "*" table; None when neither
        exists (the VM is not managed)."""
        return recovery_policy(self.recovery, name)

    #: An Orchard controller for the VMs (else tart, on this Mac or --host).
    orchard_url: str | None = None
    orchard_context: str | None = None
    orchard_service_account: str | None = None
    orchard_token: str | None = field(default=None, repr=False)

    @property
    def orchard(self) -> bool:
        """The VMs come from an Orchard controller."""
        # "" is `--orchard` without a URL: the Orchard CLI's default context.
        return self.orchard_url is not None or bool(self.orchard_context)

    def remote(self) -> RemoteSettings:
        """The [remote] keys, as the host connection takes them."""
        return self._gather(RemoteSettings, "remote_")

    def kube_timing(self) -> KubeTiming:
        """The [kube] pacing keys, as the Kubernetes sources take them."""
        return self._gather(KubeTiming, "kube_")

    def _gather(self, section: type[_Section], prefix: str) -> _Section:
        """A section's dataclass from the flat `prefix + field` settings."""
        fields = dataclasses.fields(section)
        return section(**{f.name: getattr(self, prefix + f.name) for f in fields})

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
    ("remote", "connect_timeout"): "remote_connect_timeout",
    ("remote", "keepalive_interval"): "remote_keepalive_interval",
    ("remote", "keepalive_count"): "remote_keepalive_count",
    ("remote", "reconnect_delay"): "remote_reconnect_delay",
    ("remote", "reconnect_max_delay"): "remote_reconnect_max_delay",
    ("remote", "max_sessions"): "remote_max_sessions",
    ("remote", "known_hosts"): "remote_known_hosts",
    ("remote", "ssh_config"): "remote_ssh_config",
    ("kube", "kubeconfig"): "kubeconfig",
    ("kube", "context"): "kube_context",
    ("kube", "namespace"): "namespace",
    ("kube", "request_timeout"): "kube_request_timeout",
    ("kube", "watch_timeout"): "kube_watch_timeout",
    ("kube", "reconnect_delay"): "kube_reconnect_delay",
    ("kube", "reconnect_max_delay"): "kube_reconnect_max_delay",
    ("kube", "reconnect_jitter"): "kube_reconnect_jitter",
    ("kube", "crd_retry_interval"): "kube_crd_retry_interval",
    ("kube", "coalesce"): "kube_coalesce",
    ("kube", "restarts_refresh_interval"): "kube_restarts_refresh_interval",
    ("kube", "watch_grace"): "kube_watch_grace",
    ("docker", "host"): "docker_host",
    ("docker", "poll_interval"): "docker_poll_interval",
    ("docker", "timeout"): "docker_timeout",
    ("orchard", "url"): "orchard_url",
    ("orchard", "context"): "orchard_context",
    ("orchard", "service_account"): "orchard_service_account",
    ("orchard", "token"): "orchard_token",
    ("doctor", "expected_nodes"): "expected_nodes",
    ("doctor", "vms"): "doctor_vms",
    ("doctor", "timeout"): "doctor_timeout",
}


def toml_value(value: Any) -> str:
    """A value as it is spelt in TOML (true, not True), for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def _check(where: str, checker: Checker, value: Any) -> Any:
    try:
        return checker(value)
    except ValueError as exc:
        if checker is _secret:  # a secret is never echoed back
            raise ConfigError(f"{where}: {exc}") from None
        raise ConfigError(f"{where}: {exc} (got {toml_value(value)})") from None


def _check_key_conflicts(keys: Mapping[str, str], written: Mapping[str, Any], origin: str) -> None:
    """Two actions on one key would silently lose one of them (Textual does not check
    bindings with an id): one line naming the [keys] entry instead."""
    owner: dict[str, str] = dict(RESERVED_KEYS)
    mapped = {**DEFAULT_KEYS, **keys}
    # The user's own entries last, so the message names the entry they wrote.
    for action in sorted(mapped, key=lambda a: a in keys):
        for key in mapped[action].split(","):
            first = owner.setdefault(key, action)
            if first != action:
                taken = first if first in RESERVED_KEYS.values() else f"keys.{first}"
                raise ConfigError(
                    f"{origin}: 'keys.{action}': {key} is already bound to {taken}"
                    f" (got {toml_value(written.get(action, mapped[action]))})"
                )


def _from_table(data: Mapping[str, Any], origin: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validate a parsed TOML document. Returns (flat settings, vm tables)."""
    flat: dict[str, Any] = {}
    vms: dict[str, Any] = {}
    keys: dict[str, str] = {}
    for section, body in data.items():
        if section == "recovery":
            flat["recovery"] = _recovery_tables(body, origin)
            continue
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
        _check_key_conflicts(keys, data.get("keys", {}), origin)
        flat["keys"] = keys
    _check_ordered(flat, origin)
    return flat, vms


def _check_ordered(flat: Mapping[str, Any], origin: str) -> None:
    """A backoff that starts above its cap is a typo: one line naming both keys (an
    unset one counts with its default)."""
    defaults = Settings()
    for section, low, high in _ORDERED:
        low_attr, high_attr = _ATTR[(section, low)], _ATTR[(section, high)]
        if low_attr not in flat and high_attr not in flat:
            continue
        lo = flat.get(low_attr, getattr(defaults, low_attr))
        hi = flat.get(high_attr, getattr(defaults, high_attr))
        if lo > hi:
            raise ConfigError(
                f"{origin}: '{section}.{low}' must not be above '{section}.{high}'"
                f" (got {lo:g} and {hi:g})"
            )


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


# --- [recovery]: what `megatui serve` does about a VM that exits or stops answering


RESTART_MODES = ("never", "on-exit", "unhealthy")


def _restart_mode(v: Any) -> str:
    if v not in RESTART_MODES:
        raise ValueError("expected " + ", ".join(f'"{m}"' for m in RESTART_MODES))
    return str(v)


RECOVERY_SCHEMA: dict[str, Checker] = {
    "restart": _restart_mode,
    "unhealthy_after": _at_least_one,  # failed health checks in a row
    "max_restarts": _count,  # per rolling hour
    "backoff": _positive,  # seconds before the second attempt, doubling after
    "ready_timeout": _positive,  # seconds a started VM may take to be ready
}


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    restart: str = "never"
    unhealthy_after: int = 3
    max_restarts: int = 3
    backoff: float = 30.0
    # As `megatui wait`: an image's first boot may take minutes.
    ready_timeout: float = 600.0


def _recovery_tables(body: Any, origin: str) -> dict[str, dict[str, Any]]:
    if not isinstance(body, dict):
        raise ConfigError(f"{origin}: 'recovery' must be a table of [recovery.NAME] tables")
    tables: dict[str, dict[str, Any]] = {}
    for name, table in body.items():
        where = f"recovery.{toml_value(name) if name == '*' else name}"
        if not isinstance(table, dict):
            raise ConfigError(f"{origin}: '{where}' must be a table")
        checked: dict[str, Any] = {}
        for key, value in table.items():
            if key not in RECOVERY_SCHEMA:
                raise ConfigError(f"{origin}: unknown key '{where}.{key}'")
            checked[key] = _check(f"{origin}: '{where}.{key}'", RECOVERY_SCHEMA[key], value)
        tables[name] = checked
    return tables


def recovery_policy(tables: Mapping[str, Mapping[str, Any]], name: str) -> RecoveryPolicy | None:
    if name not in tables and "*" not in tables:
        return None
    return RecoveryPolicy(**{**tables.get("*", {}), **tables.get(name, {})})
