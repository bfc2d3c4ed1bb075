"""Kubeconfig loading and merging as kubectl does it, and the choice of a context.

kubectl's rules: the files are `--kubeconfig`, else every path in
$KUBECONFIG, else ~/.kube/config; merged, the first file to define a name wins and
the first `current-context` wins; relative certificate paths are relative to the file
that names them. The list-and-watch engine (`sources/kube.py`) builds its API client
from the `ChosenCluster` made here; the remote host's set-up (`remote/host_setup.py`)
points a cluster at the local end of a forward with `apply_override`.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from megatui.config import Settings
from megatui.text import tilde

JSON = dict[str, Any]
#: (path, mtime_ns, size) per kubeconfig file; -1s for a missing one.
Signature = tuple[tuple[str, int, int], ...]


class KubeError(Exception):
    """A failure whose str() is the one line the user sees."""


class KubeconfigError(KubeError):
    """Kubeconfig trouble: retried, as the file may appear or be fixed."""


def kubeconfig_paths(settings: Settings, environ: dict[str, str] | None = None) -> list[str]:
    """The kubeconfig files in kubectl's order: the explicit setting, else $KUBECONFIG
    (a path list), else ~/.kube/config. Read at call time, never at import
    (the client's own default is frozen at import: docs/facts/kubernetes.md trap 5)."""
    env = os.environ if environ is None else environ
    raw = settings.kubeconfig or env.get("KUBECONFIG") or "~/.kube/config"
    return [os.path.expanduser(p) for p in raw.split(os.pathsep) if p]


def kubeconfig_signature(paths: list[str]) -> Signature:
    """What changes when a kubeconfig file is written: (path, mtime, size) per file."""
    sig = []
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            sig.append((p, -1, -1))
        else:
            sig.append((p, st.st_mtime_ns, st.st_size))
    return tuple(sig)


def _absolutize(entry: Any, keys: tuple[str, ...], base: str) -> None:
    # Relative certificate paths are relative to the kubeconfig that names them.
    if not isinstance(entry, dict):
        return
    for key in keys:
        value = entry.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            entry[key] = os.path.join(base, os.path.expanduser(value))


def load_kubeconfig(paths: list[str]) -> tuple[JSON, str]:
    """Merge kubeconfig files as kubectl does: the first file to define a name wins,
    and the first `current-context` wins. Returns (merged, description)."""
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; kubernetes depends on it

    where = ":".join(tilde(p) for p in paths)
    merged: JSON = {"clusters": [], "contexts": [], "users": []}
    seen: dict[str, set[str]] = {k: set() for k in ("clusters", "contexts", "users")}
    found = False
    for path in paths:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise KubeconfigError(f"cannot read kubeconfig {tilde(path)}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise KubeconfigError(f"kubeconfig {tilde(path)} is not UTF-8 text") from None
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            line = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
            raise KubeconfigError(f"kubeconfig {tilde(path)} is not valid YAML: {line}") from None
        if not isinstance(doc, dict):
            raise KubeconfigError(f"kubeconfig {tilde(path)} is not a kubeconfig")
        found = True
        base = os.path.dirname(os.path.abspath(path))
        for section in ("clusters", "contexts", "users"):
            for item in doc.get(section) or []:
                if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                    continue
                if item["name"] in seen[section]:
                    continue
                inner = item.get(section[:-1])
                if inner is not None and not isinstance(inner, dict):
                    # The client would fail on it with an AttributeError of its own.
                    raise KubeconfigError(
                        f"kubeconfig {tilde(path)}: {section[:-1]} '{item['name']}' "
                        "is not a mapping"
                    )
                seen[section].add(item["name"])
                if section == "clusters":
                    _absolutize(item.get("cluster"), ("certificate-authority",), base)
                elif section == "users":
                    _absolutize(
                        item.get("user"), ("client-certificate", "client-key", "tokenFile"), base
                    )
                merged[section].append(item)
        if "current-context" not in merged and doc.get("current-context"):
            merged["current-context"] = doc["current-context"]
    if not found:
        raise KubeconfigError(f"kubeconfig not found: {where}")
    return merged, where


def _entry(config: JSON, section: str, name: str) -> JSON | None:
    for item in config.get(section) or []:
        if item.get("name") == name:
            inner = item.get(section[:-1])
            return inner if isinstance(inner, dict) else {}
    return None


def apply_override(cluster: JSON, override: str) -> None:
    """Point a cluster entry at another address (`host:port` or a URL: a tunnel, the
    local end of a forward) while TLS still verifies the name the certificate was
    issued for: the original host, as tls-server-name, unless the entry names one
    already or the new address has the same host."""
    original = urllib.parse.urlsplit(str(cluster.get("server", "")))
    target = override if "://" in override else f"{original.scheme or 'https'}://{override}"
    new = urllib.parse.urlsplit(target)
    cluster["server"] = urllib.parse.urlunsplit(
        (new.scheme, new.netloc, original.path, original.query, original.fragment)
    )
    if (
        new.scheme == "https"
        and original.hostname
        and original.hostname != new.hostname
        and not cluster.get("tls-server-name")
    ):
        cluster["tls-server-name"] = original.hostname


@dataclass(frozen=True, slots=True)
class ChosenCluster:
    """The merged kubeconfig with the context to use and its cluster's server."""

    config: JSON
    context: str
    server: str
    #: The files, as shown in messages ("~/.kube/config").
    where: str
    signature: Signature
    #: The chosen cluster's and user's entries inside `config` (the same dicts, so
    #: rewriting them rewrites the config the client is built from).
    cluster: JSON
    user: JSON | None


def choose_cluster(settings: Settings) -> ChosenCluster:
    """Load the kubeconfig files and pick the context (`--context`, else the current
    one) and its cluster. Reads files: call it in a thread."""
    paths = kubeconfig_paths(settings)
    signature = kubeconfig_signature(paths)
    config, where = load_kubeconfig(paths)
    context = settings.kube_context or config.get("current-context")
    if not context:
        raise KubeconfigError(f"no current context in {where}; choose one with --context")
    ctx = _entry(config, "contexts", context)
    if ctx is None:
        raise KubeconfigError(f"kube context '{context}' not found in {where}")
    cluster_name = ctx.get("cluster")
    cluster = _entry(config, "clusters", str(cluster_name))
    if cluster is None:
        raise KubeconfigError(
            f"kube context '{context}' names cluster '{cluster_name}', which {where} lacks"
        )
    if not isinstance(cluster.get("server"), str) or not cluster["server"]:
        raise KubeconfigError(f"cluster '{cluster_name}' in {where} has no server address")
    server = str(cluster["server"]).rstrip("/")
    user = _entry(config, "users", str(ctx.get("user")))
    return ChosenCluster(config, str(context), server, where, signature, cluster, user)
