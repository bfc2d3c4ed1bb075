"""Where an Orchard controller is and how to log in to it (docs/facts/orchard.md §Config).

Sources, weakest first, as the `orchard` CLI reads them (`internal/config`):

1. the contexts file `$ORCHARD_HOME/.orchard/orchard.yml` (`~/.orchard/orchard.yml`
   without ORCHARD_HOME): `default-context` and `contexts.NAME.{url, certificate,
   serviceAccountName, serviceAccountToken}`, the certificate a base64 of its PEM;
2. the environment: ORCHARD_URL, ORCHARD_SERVICE_ACCOUNT_NAME,
   ORCHARD_SERVICE_ACCOUNT_TOKEN (they override the chosen context's fields);
3. what megatui was told (a flag or its own config file).

HTTPS is checked against the context's pinned certificate when there is one (its
first DNS name is the server name: `orchard-controller`), else against the system's
CAs. Plain HTTP is accepted only for a loopback controller (`orchard dev`), so a
token never crosses a network in clear. The token is never part of a repr.
"""

from __future__ import annotations

import base64
import binascii
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from megatui.loopback import is_loopback

ENV_URL = "ORCHARD_URL"
ENV_NAME = "ORCHARD_SERVICE_ACCOUNT_NAME"
ENV_TOKEN = "ORCHARD_SERVICE_ACCOUNT_TOKEN"
ENV_HOME = "ORCHARD_HOME"


class OrchardConfigError(Exception):
    """A one-line reason the controller cannot be used as configured."""


@dataclass(frozen=True)
class OrchardContext:
    """One entry of the Orchard CLI's contexts file."""

    url: str | None = None
    certificate_pem: bytes | None = field(default=None, repr=False)
    service_account: str | None = None
    token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ContextsFile:
    path: Path
    default_context: str | None = None
    contexts: Mapping[str, OrchardContext] = field(default_factory=dict)


@dataclass(frozen=True)
class OrchardConfig:
    """A controller to talk to. Build it with `resolve()`."""

    url: str
    service_account: str | None = None
    token: str | None = field(default=None, repr=False)
    certificate_pem: bytes | None = field(default=None, repr=False)
    #: The context it came from, for messages ("context 'prod'").
    context: str | None = None

    @property
    def base(self) -> str:
        """The URL without a trailing slash; requests go to `base + /v1/...`."""
        return self.url.rstrip("/")


def orchard_dir(env: Mapping[str, str] | None = None) -> Path:
    """`$ORCHARD_HOME/.orchard`, else `~/.orchard` (internal/orchardhome: ORCHARD_HOME
    replaces the home directory, `.orchard` is still appended)."""
    env = os.environ if env is None else env
    home = env.get(ENV_HOME) or str(Path.home())
    return Path(home) / ".orchard"


def contexts_path(env: Mapping[str, str] | None = None) -> Path:
    return orchard_dir(env) / "orchard.yml"


def _text(entry: Mapping[str, Any], key: str, where: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise OrchardConfigError(f"{where}: '{key}' is not a string")
    return value


def _context(name: str, entry: object, path: Path) -> OrchardContext:
    where = f"{path}: context '{name}'"
    if not isinstance(entry, dict):
        raise OrchardConfigError(f"{where} is not a mapping")
    cert_b64 = _text(entry, "certificate", where)
    cert: bytes | None = None
    if cert_b64:
        try:
            cert = base64.b64decode(cert_b64, validate=True)
        except (binascii.Error, ValueError):
            raise OrchardConfigError(f"{where}: 'certificate' is not base64") from None
        if b"-----BEGIN CERTIFICATE-----" not in cert:
            raise OrchardConfigError(f"{where}: 'certificate' holds no PEM certificate")
    return OrchardContext(
        url=_text(entry, "url", where),
        certificate_pem=cert,
        service_account=_text(entry, "serviceAccountName", where),
        token=_text(entry, "serviceAccountToken", where),
    )


def read_contexts(path: Path) -> ContextsFile:
    """The contexts file; a missing file is an empty one, as for the CLI."""
    import yaml  # type: ignore[import-untyped]  # PyYAML ships no stubs; kubernetes depends on it

    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return ContextsFile(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise OrchardConfigError(f"cannot read {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise OrchardConfigError(f"{path}: invalid YAML: {reason}") from None
    if data is None:
        return ContextsFile(path)
    if not isinstance(data, dict):
        raise OrchardConfigError(f"{path}: not a mapping of settings")
    default = data.get("default-context")
    if default is not None and not isinstance(default, str):
        raise OrchardConfigError(f"{path}: 'default-context' is not a string")
    raw = data.get("contexts") or {}
    if not isinstance(raw, dict):
        raise OrchardConfigError(f"{path}: 'contexts' is not a mapping")
    contexts = {str(name): _context(str(name), entry, path) for name, entry in raw.items()}
    return ContextsFile(path, default or None, contexts)


def check_url(url: str) -> str:
    """The URL if megatui may send credentials to it; else a one-line refusal."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OrchardConfigError(f"Orchard URL '{url}' is not an http:// or https:// URL")
    if parts.username or parts.password:
        raise OrchardConfigError(
            "Orchard URL must not carry credentials; use the service account settings"
        )
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise OrchardConfigError(
            f"plain HTTP to {parts.hostname} would send the token in clear: "
            "only a loopback controller may use http://; use https://"
        )
    return url


def resolve(
    *,
    url: str | None = None,
    context: str | None = None,
    service_account: str | None = None,
    token: str | None = None,
    env: Mapping[str, str] | None = None,
) -> OrchardConfig:
    """The controller to use: the named (else default) context, then the environment,
    then the explicit arguments on top."""
    env = os.environ if env is None else env
    file = read_contexts(contexts_path(env))
    name = context or file.default_context
    chosen = OrchardContext()
    if name is not None:
        found = file.contexts.get(name)
        if found is None:
            if context is not None:
                known = ", ".join(sorted(file.contexts)) or "none"
                raise OrchardConfigError(
                    f"no Orchard context '{context}' in {file.path} (known: {known})"
                )
        else:
            chosen = found
    final_url = url or env.get(ENV_URL) or chosen.url
    if not final_url:
        raise OrchardConfigError(
            f"no Orchard controller configured: give its URL, or run `orchard context create` "
            f"(looked in {file.path})"
        )
    # A pinned certificate belongs to its context's controller only.
    cert = chosen.certificate_pem if chosen.url and chosen.url == final_url else None
    return OrchardConfig(
        url=check_url(final_url),
        service_account=service_account or env.get(ENV_NAME) or chosen.service_account,
        token=token or env.get(ENV_TOKEN) or chosen.token,
        certificate_pem=cert,
        context=name if chosen.url else None,
    )
