"""The Kubernetes API client a kubeconfig describes, and the outer shape of its answers.

`connect` builds the client for the chosen context (kubeconfig.py holds kubectl's rules
for choosing it); `parse_list` and `status_message` read a list body and an error body
without trusting their shape. The list-and-watch engine that uses them is kube.py.

The client is our own thin layer on aiohttp, not the official `kubernetes` package: that
package costs about 0.3 s of CPU to import (its sync half, pydantic, requests, yaml,
websocket, oauthlib), more than half of `megatui status`'s cold-start budget, and megatui
only ever sends GETs and reads raw JSON (docs/architecture.md "Imports"). What it took
from the package is done here the package's way (kubernetes/aio/config/kube_config.py,
37.0.2): the cluster's CA (file or data), the client certificate and key, `token` or
`tokenFile` as a bearer token, `username`/`password` as basic auth, an `exec` plugin's
ExecCredential, `insecure-skip-tls-verify`, `tls-server-name` and `proxy-url`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from megatui import __version__
from megatui.config import Settings
from megatui.sources.kube_files import private_credentials
from megatui.sources.kube_status import ShapeError, resource_version
from megatui.sources.kubeconfig import (
    ChosenCluster,
    KubeconfigError,
    KubeError,
    Signature,
    choose_cluster,
)
from megatui.text import one_line

#: An error line is cut to this many characters.
MAX_LINE = 300
#: How long an exec credential plugin may run.
EXEC_TIMEOUT = 30.0
#: Parallel connections to the API server (the official async client's default).
POOL_SIZE = 100
USER_AGENT = f"megatui/{__version__}"


class BadShape(KubeError):
    """The API server sent data of an unexpected shape: fail the resource, back off,
    and start it over with a fresh list."""

    def __init__(self, resource: str, detail: str) -> None:
        super().__init__(f"{resource}: unexpected shape: {detail}")


@dataclass(slots=True)
class Credentials:
    """What a request carries, read from the kubeconfig's cluster and user entries."""

    ssl_context: ssl.SSLContext | None
    headers: dict[str, str] = field(default_factory=dict)
    server_hostname: str | None = None
    proxy: str | None = None


@dataclass(slots=True)
class KubeClient:
    session: aiohttp.ClientSession
    context: str
    server: str
    signature: Signature
    credentials: Credentials

    async def get(
        self,
        path: str,
        query: list[tuple[str, Any]],
        timeout: aiohttp.ClientTimeout,
        headers: Mapping[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """A GET of `path` with `query`; the response once its headers are in."""
        url = self.server + path
        if query:
            url += "?" + encode_query(query)
        creds = self.credentials
        return await self.session.get(
            URL(url, encoded=True),
            headers={**creds.headers, **(headers or {})},
            timeout=timeout,
            server_hostname=creds.server_hostname,
            proxy=creds.proxy,
        )

    async def close(self) -> None:
        await self.session.close()


def encode_query(query: list[tuple[str, Any]]) -> str:
    """The query string as the official client writes it: booleans as true/false."""
    parts = []
    for key, value in query:
        text = str(value).lower() if isinstance(value, bool) else str(value)
        parts.append(f"{key}={urllib.parse.quote(text)}")
    return "&".join(parts)


async def connect(settings: Settings) -> KubeClient:
    """A client for the chosen context of the merged kubeconfig."""
    chosen = await asyncio.to_thread(choose_cluster, settings)
    where = chosen.where
    user = chosen.user or {}
    if not isinstance(user, dict):
        raise KubeconfigError(f"invalid kubeconfig {where}: the user is not a mapping")
    exec_result: dict[str, Any] | None = None
    if "auth-provider" in user:
        provider = user["auth-provider"]
        name = provider.get("name") if isinstance(provider, dict) else provider
        raise KubeconfigError(
            f"kubeconfig {where}: auth-provider '{name}' is not supported "
            "(kubectl dropped the gcp and azure providers in 1.26): use an exec plugin"
        )
    if "exec" in user:
        exec_result = await _run_exec_plugin(user["exec"], where)
    try:
        # Building the TLS context reads the system's CA bundle: in a thread too.
        creds = await asyncio.to_thread(_credentials, chosen, exec_result)
    except KubeconfigError as exc:
        raise KubeconfigError(f"invalid kubeconfig {where}: {exc}") from None
    except (OSError, ValueError) as exc:
        # ssl.SSLError is an OSError: unreadable or mismatched certificate data.
        raise KubeconfigError(f"invalid credentials in kubeconfig {where}: {exc}") from None
    except Exception as exc:
        # Entries of the wrong type (a `certificate-authority` that is a list...).
        detail = one_line(f"{type(exc).__name__}: {exc}", MAX_LINE)
        raise KubeconfigError(f"invalid kubeconfig {where}: {detail}") from None
    connector = aiohttp.TCPConnector(limit=POOL_SIZE, ssl=creds.ssl_context or True)
    session = aiohttp.ClientSession(connector=connector)
    return KubeClient(
        session=session,
        context=chosen.context,
        server=chosen.server,
        signature=chosen.signature,
        credentials=creds,
    )


def _credentials(chosen: ChosenCluster, exec_result: dict[str, Any] | None) -> Credentials:
    cluster = chosen.cluster
    user = dict(chosen.user or {})
    headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
    if exec_result is not None:
        # The plugin's answer wins over the static entries (client-go's order).
        if exec_result.get("token"):
            user["token"] = exec_result["token"]
            user.pop("tokenFile", None)
        if exec_result.get("clientCertificateData"):
            user["client-certificate-data"] = _b64(exec_result["clientCertificateData"])
            user["client-key-data"] = _b64(exec_result.get("clientKeyData", ""))
            user.pop("client-certificate", None)
            user.pop("client-key", None)
    token = _token(user)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    elif "username" in user and "password" in user:
        basic = f"{user['username']}:{user['password']}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(basic).decode()
    creds = Credentials(ssl_context=None, headers=headers)
    if "tls-server-name" in cluster:
        creds.server_hostname = _text(cluster, "tls-server-name")
    if "proxy-url" in cluster:
        creds.proxy = _text(cluster, "proxy-url")
    if chosen.server.startswith("https"):
        creds.ssl_context = _ssl_context(cluster, user)
    return creds


def _ssl_context(cluster: dict[str, Any], user: dict[str, Any]) -> ssl.SSLContext:
    # Certificates as files in megatui's own temp dir, gone once the context has read them.
    cluster, user = dict(cluster), dict(user)
    with private_credentials(cluster, user):
        ca = cluster.get("certificate-authority") or None
        context = ssl.create_default_context(cafile=_path(ca))
        cert = _path(user.get("client-certificate") or None)
        if cert:
            context.load_cert_chain(cert, keyfile=_path(user.get("client-key") or None))
    if cluster.get("insecure-skip-tls-verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _path(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise KubeconfigError(f"a certificate path is not a string: {value!r}")


def _text(entry: dict[str, Any], key: str) -> str:
    value = entry[key]
    if not isinstance(value, str):
        raise KubeconfigError(f"{key} is not a string")
    return value


def _token(user: dict[str, Any]) -> str | None:
    """`token`, else the content of `tokenFile` (as the official client: `token` first)."""
    token = user.get("token")
    if token:
        return str(token)
    path = user.get("tokenFile")
    if path:
        with open(_path(path) or "", encoding="utf-8") as f:
            return f.read().strip() or None
    return None


def _b64(text: str) -> str:
    return base64.standard_b64encode(str(text).encode()).decode()


async def _run_exec_plugin(spec: Any, where: str) -> dict[str, Any]:
    """Run an `exec` credential plugin (client.authentication.k8s.io) and return its
    ExecCredential's status: token, or clientCertificateData and clientKeyData."""
    if not isinstance(spec, dict) or not isinstance(spec.get("command"), str):
        raise KubeconfigError(f"invalid kubeconfig {where}: exec has no command")
    args = spec.get("args") or []
    env = dict(os.environ)
    for item in spec.get("env") or []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            env[item["name"]] = str(item.get("value", ""))
    api_version = str(spec.get("apiVersion") or "client.authentication.k8s.io/v1beta1")
    info = {"apiVersion": api_version, "kind": "ExecCredential", "spec": {"interactive": False}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(info)
    command = spec["command"]
    try:
        proc = await asyncio.create_subprocess_exec(
            command,
            *map(str, args),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise KubeconfigError(f"exec plugin {command} in {where}: {reason}") from None
    try:
        async with asyncio.timeout(EXEC_TIMEOUT):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise KubeconfigError(
            f"exec plugin {command} in {where} gave no answer within {EXEC_TIMEOUT:g} s"
        ) from None
    except BaseException:
        # Cancelled: leave no plugin process behind.
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    if proc.returncode != 0:
        line = one_line(err.decode("utf-8", "replace"), MAX_LINE) or f"exit {proc.returncode}"
        raise KubeconfigError(f"exec plugin {command} in {where} failed: {line}")
    try:
        status = json.loads(out).get("status")
    except (ValueError, AttributeError):
        status = None
    if not isinstance(status, dict) or not (
        isinstance(status.get("token"), str) or isinstance(status.get("clientCertificateData"), str)
    ):
        raise KubeconfigError(f"exec plugin {command} in {where} gave no credential")
    return status


def status_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text.splitlines()[0][:200] if text else ""
    if isinstance(data, dict):
        return str(data.get("message") or data.get("reason") or "")
    return ""


def parse_list(name: str, body: bytes) -> tuple[list[Any], str]:
    """A list body's items and resourceVersion, its outer shape checked."""
    try:
        data = json.loads(body)
    except ValueError:
        raise BadShape(name, "the list is not valid JSON") from None
    if type(data) is not dict:
        raise BadShape(name, "the list is not an object")
    items = data.get("items")
    if items is None:
        items = []
    elif type(items) is not list:
        raise BadShape(name, "items is not a list")
    try:
        rv = resource_version(data)
    except ShapeError as exc:
        raise BadShape(name, str(exc)) from None
    if not rv:
        raise BadShape(name, "the list has no metadata.resourceVersion")
    return items, rv
