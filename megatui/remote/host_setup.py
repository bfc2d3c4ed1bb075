"""The host's side of the platform as local ends: its kubeconfig and its Docker socket.

`prepare_remote` fetches the host's kubeconfig (or `kind get kubeconfig`), points
each cluster at a local forward of its API server and embeds the certificate files
it names; and it finds the Docker socket that answers on the host (Docker Desktop,
Colima, OrbStack move it) and forwards it. The sources then run as they would
locally, on these local ends.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from megatui.config import Settings
from megatui.remote.connection import RemoteTransport
from megatui.sources.kubeconfig import apply_override
from megatui.text import one_line
from megatui.transport import CommandNotFound, TransportError

#: Where the Docker daemon's socket lives on a Mac, in the order they are tried:
#: the classic path (Docker Desktop's optional symlink, or a Linux host), Docker
#: Desktop's per-user socket, then Colima and OrbStack.
DOCKER_SOCKETS = (
    "/var/run/docker.sock",
    "~/.docker/run/docker.sock",
    "~/.colima/default/docker.sock",
    "~/.orbstack/run/docker.sock",
)


@dataclass(frozen=True, slots=True)
class RemoteSetup:
    """Settings whose kubeconfig and docker_host point at local ends of forwards,
    and one line per source whose host-side part could not be prepared."""

    settings: Settings
    #: The settings as given, naming paths on the host (for `refresh_kubeconfig`).
    host_settings: Settings
    problems: Mapping[str, str]
    #: Where the kubeconfig came from on the host, e.g. "~/.kube/config".
    kubeconfig_source: str | None = None
    #: The host socket Docker answered on, e.g. "~/.docker/run/docker.sock".
    docker_socket: str | None = None


async def prepare_remote(
    transport: RemoteTransport,
    settings: Settings,
    workdir: Path | None = None,
    *,
    timeout: float = 10.0,
    docker_sockets: Sequence[str] = DOCKER_SOCKETS,
) -> RemoteSetup:
    """Fetch the host's kubeconfig and forward its API servers and Docker socket.

    `settings.kubeconfig` and `settings.docker_host`, when given, name things on the
    host. Nothing here is fatal: a source that cannot be prepared gets a local path
    that does not exist (never this machine's own kubeconfig or Docker daemon), and
    the reason is in `problems` for the monitor to show. The local kubeconfig goes
    to `workdir`, by default the transport's private directory (gone after close)."""
    workdir = workdir or transport.private_dir()
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    problems: dict[str, str] = {}
    kube_path = workdir / "kubeconfig"
    kube_source: str | None = None
    try:
        kube_source, _changed = await _forward_kubeconfig(transport, settings, kube_path, timeout)
    except (TransportError, OSError, ValueError) as exc:
        problems["kube"] = _reason(exc)
        with contextlib.suppress(OSError):
            kube_path.unlink()
    docker_host, socket_path, problem = await _forward_docker(
        transport, settings, timeout, docker_sockets
    )
    if problem:
        problems["docker"] = problem
    new = replace(settings, kubeconfig=str(kube_path), docker_host=docker_host)
    return RemoteSetup(new, settings, problems, kube_source, socket_path)


async def refresh_kubeconfig(
    transport: RemoteTransport, setup: RemoteSetup, *, timeout: float = 10.0
) -> bool:
    """Fetch the host's kubeconfig again and rewrite the local copy if it changed
    (Kind recreated the cluster: new port, new certificates). The file is left
    untouched otherwise, so the kube source's change detection stays quiet.
    Returns whether it changed; raises one-line errors like `prepare_remote` reports."""
    dest = Path(setup.settings.kubeconfig or "")
    _source, changed = await _forward_kubeconfig(transport, setup.host_settings, dest, timeout)
    return changed


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return one_line(exc.strerror)
    return one_line(str(exc))


async def _read_kubeconfig(
    transport: RemoteTransport, settings: Settings, timeout: float
) -> tuple[bytes, str]:
    if settings.kubeconfig:
        return await transport.read_file(settings.kubeconfig, timeout=timeout), settings.kubeconfig
    try:
        return await transport.read_file("~/.kube/config", timeout=timeout), "~/.kube/config"
    except FileNotFoundError:
        pass
    try:
        result = await transport.run(["kind", "get", "kubeconfig"], timeout=timeout)
    except CommandNotFound:
        raise FileNotFoundError(
            errno.ENOENT,
            f"no kubeconfig on {transport.label}: ~/.kube/config does not exist and kind "
            "is not installed",
        ) from None
    if result.exit_code != 0 or not result.stdout.strip():
        reason = one_line(result.stderr) or f"exit {result.exit_code}"
        raise FileNotFoundError(
            errno.ENOENT,
            f"no kubeconfig on {transport.label}: ~/.kube/config does not exist and "
            f"`kind get kubeconfig` failed: {reason}",
        )
    return result.stdout.encode(), "kind get kubeconfig"


async def _forward_kubeconfig(
    transport: RemoteTransport, settings: Settings, dest: Path, timeout: float
) -> tuple[str, bool]:
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; kubernetes depends on it

    raw, source = await _read_kubeconfig(transport, settings, timeout)
    try:
        config = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source} on {transport.label} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{source} on {transport.label} is not a kubeconfig")
    base_dir = os.path.dirname(source) if source.startswith(("/", "~")) else "~"
    for entry in config.get("clusters") or []:
        cluster = entry.get("cluster") if isinstance(entry, dict) else None
        if not isinstance(cluster, dict) or not isinstance(cluster.get("server"), str):
            continue
        await _forward_server(transport, cluster)
        await _inline(transport, cluster, "certificate-authority", base_dir, timeout)
    for entry in config.get("users") or []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if isinstance(user, dict):
            await _inline(transport, user, "client-certificate", base_dir, timeout)
            await _inline(transport, user, "client-key", base_dir, timeout)
    text = yaml.safe_dump(config, sort_keys=False)
    with contextlib.suppress(OSError):
        if dest.read_text() == text:
            return source, False
    tmp = dest.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a file that existed
    tmp.replace(dest)
    return source, True


async def _forward_server(transport: RemoteTransport, cluster: dict[str, Any]) -> None:
    """Point the cluster's server at a local forward of it."""
    url = urllib.parse.urlsplit(cluster["server"])
    if url.scheme not in ("http", "https") or not url.hostname:
        return
    port = url.port or (443 if url.scheme == "https" else 80)
    target = "127.0.0.1" if url.hostname in ("0.0.0.0", "::") else url.hostname
    local = await transport.forward_tcp(target, port)
    # Kind's API certificate has IP SAN 127.0.0.1, so 127.0.0.1:LOCAL verifies as
    # is; any other name must still be what the certificate is checked against.
    apply_override(cluster, f"127.0.0.1:{local}")


async def _inline(
    transport: RemoteTransport, entry: dict[str, Any], key: str, base_dir: str, timeout: float
) -> None:
    """A file reference names a file on the host: embed it as `<key>-data`."""
    path = entry.get(key)
    if not isinstance(path, str) or entry.get(f"{key}-data"):
        return
    full = path if path.startswith(("/", "~")) else f"{base_dir.rstrip('/')}/{path}"
    data = await transport.read_file(full, timeout=timeout)
    entry[f"{key}-data"] = base64.b64encode(data).decode("ascii")
    del entry[key]


async def _forward_docker(
    transport: RemoteTransport, settings: Settings, timeout: float, defaults: Sequence[str]
) -> tuple[str, str | None, str | None]:
    """(docker_host URL here, the host socket that answered, problem line)."""
    configured = settings.docker_host
    if configured and configured.startswith("tcp://"):
        url = urllib.parse.urlsplit(configured)
        if url.hostname and url.port:
            # A unix socket in the private directory, not a loopback port: a plain
            # tcp:// daemon has no authentication, so any local user could drive it.
            local = await transport.forward_tcp_private(url.hostname, url.port)
            return f"unix://{local}", None, None
    if configured and configured.startswith("unix://"):
        candidates: list[str] = [configured[len("unix://") :]]
    elif configured and configured.startswith("/"):
        candidates = [configured]
    else:
        candidates = list(defaults)
    errors = []
    working: str | None = None
    for path in candidates:
        try:
            await transport.probe_unix(path, timeout=timeout)
        except (TransportError, OSError) as exc:
            errors.append(_reason(exc))
            continue
        working = path
        break
    if working is not None:
        candidates.remove(working)
        candidates.insert(0, working)
    local = await transport.forward_unix(candidates)
    problem = None
    if working is None:
        problem = f"no Docker socket answers on {transport.label}: tried " + ", ".join(errors)
    return f"unix://{local}", working, problem
