"""An async client for the Orchard controller's REST API (docs/orchard.md).

Every call has a timeout and can be cancelled; every object is shape-checked
(`orchard_model`), so a proxy's HTML page, garbage or a watch cut mid-line becomes
one `OrchardError` line naming what was wrong. The token is sent only in the Basic
auth header: it is in no repr and is scrubbed from every message.

A VM backend wraps one `OrchardClient`: `list_vms()` (one GET for the whole fleet:
there is no collection watch in Orchard), `watch_vm()` for VMs in transition,
`set_power_state()`, `create_vm()`, `delete_vm()`, and `ssh_tunnel()` to reach a
VM's sshd through the controller with asyncssh (`tunnel=`, host = the VM name).
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from megatui import __version__
from megatui.sources.orchard_config import OrchardConfig
from megatui.sources.orchard_model import (
    ControllerInfo,
    OrchardBadResponse,
    OrchardError,
    OrchardVM,
    OrchardWorker,
    WatchEvent,
    parse_event,
    parse_info,
    parse_list,
    parse_vm,
    parse_worker,
)
from megatui.sources.orchard_ws import WebSocketTransport, open_streams
from megatui.text import one_line

__all__ = [
    "USER_AGENT",
    "ControllerInfo",
    "NewVM",
    "OrchardAPIError",
    "OrchardBadResponse",
    "OrchardClient",
    "OrchardError",
    "OrchardNotFound",
    "OrchardPortClosed",
    "OrchardPortForwardError",
    "OrchardTLSError",
    "OrchardTunnel",
    "OrchardUnreachable",
    "OrchardVM",
    "OrchardWorker",
    "WatchEvent",
]

#: Orchard's port-forward switches to text frames for a client without one (§5.3).
USER_AGENT = f"megatui/{__version__}"
#: Seconds to set up a connection to the controller (a call as a whole has `timeout`).
CONNECT_TIMEOUT = 10.0
#: Keys of a VM a PUT must not send back: read-only in the OpenAPI description.
_READ_ONLY = ("localName", "tartName", "generation")
PowerState = Literal["running", "stopped", "suspended"]


class OrchardUnreachable(OrchardError):
    """No answer: refused, DNS, reset, or too slow."""


class OrchardTLSError(OrchardError):
    """The controller's certificate is not the pinned (or a trusted) one."""


class OrchardAPIError(OrchardError):
    """A refusal by the controller: its status and its own message, verbatim."""

    def __init__(self, text: str, status: int, message: str | None) -> None:
        super().__init__(text)
        self.status = status
        self.message = message


class OrchardNotFound(OrchardAPIError):
    pass


class OrchardPortForwardError(OrchardError, ConnectionError):
    """The port-forward could not be opened. An OSError too, so an SSH prober that
    treats connection failures as "not yet" needs no Orchard-specific code."""

    def __init__(self, text: str, status: int | None = None) -> None:
        super().__init__(text)
        self.status = status


class OrchardPortClosed(OrchardPortForwardError, ConnectionRefusedError):
    """Nothing listens on that port of the VM yet (the controller's 500)."""


@dataclass(frozen=True)
class NewVM:
    """What `create_vm` sends; None leaves the controller's default."""

    name: str
    image: str
    cpu: int | None = None
    memory: int | None = None
    disk_size: int | None = None
    restart_policy: Literal["Never", "OnFailure"] | None = None
    image_pull_policy: Literal["IfNotPresent", "Always"] | None = None
    headless: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    labels: Mapping[str, str] | None = None
    resources: Mapping[str, int] | None = None
    suspendable: bool = False  # only such a VM can be suspended, and never un-made so

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "image": self.image}
        for key, value in (
            ("cpu", self.cpu),
            ("memory", self.memory),
            ("diskSize", self.disk_size),
            ("restart_policy", self.restart_policy),
            ("imagePullPolicy", self.image_pull_policy),
            ("username", self.username),
            ("password", self.password),
        ):
            if value is not None:
                body[key] = value
        if self.headless:
            body["headless"] = True
        if self.suspendable:
            body["suspendable"] = True
        if self.labels:
            body["labels"] = dict(self.labels)
        if self.resources:
            body["resources"] = dict(self.resources)
        return body


def _server_name(cert_pem: bytes) -> str | None:
    """The pinned certificate's first DNS name, as Orchard's client uses it."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (ValueError, x509.ExtensionNotFound):
        return None
    dns = names.value.get_values_for_type(x509.DNSName)
    return dns[0] if dns else None


class OrchardClient:
    def __init__(
        self,
        config: OrchardConfig,
        *,
        timeout: float = 30.0,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.connect_timeout = CONNECT_TIMEOUT
        self._session: aiohttp.ClientSession | None = None
        self._ssl: ssl.SSLContext | bool = True
        self._server_name: str | None = None
        if config.certificate_pem:
            try:
                ctx = ssl.create_default_context(cadata=config.certificate_pem.decode("ascii"))
            except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
                raise OrchardTLSError(
                    f"pinned certificate of {self._where} unusable: {exc}"
                ) from None
            # The pinned certificate is self-signed and is itself the trust anchor.
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
            self._ssl = ctx
            self._server_name = _server_name(config.certificate_pem)

    def __repr__(self) -> str:
        return f"OrchardClient(url={self.config.url!r}, account={self.config.service_account!r})"

    @property
    def _where(self) -> str:
        ctx = f" (context '{self.config.context}')" if self.config.context else ""
        return f"Orchard controller {self.config.base}{ctx}"

    async def __aenter__(self) -> OrchardClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT}
        if self.config.service_account and self.config.token is not None:
            pair = f"{self.config.service_account}:{self.config.token}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return headers

    def _scrub(self, text: str) -> str:
        token = self.config.token
        return text.replace(token, "***") if token else text

    def _fail(self, cls: type[OrchardError], text: str) -> OrchardError:
        return cls(self._scrub(one_line(f"{self._where}: {text}")))

    def _url(self, *parts: str) -> str:
        quoted = "/".join(urllib.parse.quote(p, safe="") for p in parts)
        return f"{self.config.base}/v1/{quoted}"

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout),
                # Orchard needs no cookies, and a proxy's must not follow us around.
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    # ------------------------------------------------------------ plumbing

    def _transport_error(self, exc: BaseException) -> OrchardError:
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            cause = exc.certificate_error
            detail = getattr(cause, "verify_message", None) or getattr(cause, "reason", None)
            return self._fail(
                OrchardTLSError,
                f"TLS certificate not trusted ({detail or cause}); "
                "it is not the pinned one: run `orchard context create` again if the "
                "controller was re-installed",
            )
        if isinstance(exc, aiohttp.ClientSSLError | ssl.SSLError):
            return self._fail(OrchardTLSError, f"TLS failed: {exc}")
        if isinstance(exc, TimeoutError):
            return self._fail(OrchardUnreachable, f"no answer within {self.timeout:g} s")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return self._fail(OrchardUnreachable, f"unreachable: {exc.os_error.strerror or exc}")
        return self._fail(OrchardUnreachable, f"connection failed: {exc}")

    def _refusal(
        self, action: str, status: int, reason: str, ctype: str, body: bytes
    ) -> OrchardError:
        if "html" in ctype:
            return self._fail(
                OrchardBadResponse,
                f"{action}: answered an HTML page ({status} {reason}), not the Orchard API; "
                "is the URL that of the controller (a proxy or login page in between?)",
            )
        # Orchard's error body ({"message"}); serve/remote_logs._error_of reads megatui's
        # own server's ({"error", "status"}) alike in shape: two protocols, kept apart.
        message: str | None = None
        if body.strip():
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = None
            if isinstance(decoded, dict) and isinstance(decoded.get("message"), str):
                message = decoded["message"]
            elif status == 404 and body.strip() == b"404 page not found":
                return self._fail(
                    OrchardBadResponse, f"{action}: no such API route (not an Orchard controller?)"
                )
            else:
                message = body[:120].decode("utf-8", "replace")
        text = f"{action}: {status} {reason}" + (f" ({message})" if message else "")
        cls = OrchardNotFound if status == 404 else OrchardAPIError
        return cls(self._scrub(one_line(text)), status, message)

    async def _call(
        self,
        method: str,
        url: str,
        action: str,
        *,
        body: object = None,
        params: Mapping[str, str] | None = None,
        want_json: bool = True,
    ) -> Any:
        session = self._get_session()
        data = json.dumps(body).encode() if body is not None else None
        headers = self._headers()
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with (
                asyncio.timeout(self.timeout),
                session.request(
                    method,
                    url,
                    data=data,
                    params=params,
                    headers=headers,
                    ssl=self._ssl,
                    server_hostname=self._server_name,
                    allow_redirects=False,
                ) as resp,
            ):
                raw = await resp.read()
                status, reason, ctype = resp.status, resp.reason or "", resp.content_type
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as exc:
            raise self._transport_error(exc) from None
        if status != 200:
            raise self._refusal(action, status, reason, ctype, raw)
        if not want_json:
            return None
        if ctype != "application/json":
            what = "an HTML page" if "html" in ctype else f"'{ctype or 'no content type'}'"
            raise self._fail(
                OrchardBadResponse,
                f"{action}: answered {what} instead of JSON; is the URL that of the controller?",
            )
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise self._fail(OrchardBadResponse, f"{action}: invalid JSON ({exc})") from None

    def _shape_error(self, action: str, exc: OrchardBadResponse) -> OrchardError:
        return self._fail(OrchardBadResponse, f"{action}: {exc}")

    # ------------------------------------------------------------ API

    async def check(self) -> None:
        """`GET /v1/`: reachable and speaking HTTP (no credentials needed)."""
        await self._call("GET", f"{self.config.base}/v1/", "health check", want_json=False)

    async def controller_info(self) -> ControllerInfo:
        action = "controller info"
        obj = await self._call("GET", self._url("controller", "info"), action)
        try:
            return parse_info(obj)
        except OrchardBadResponse as exc:
            raise self._shape_error(action, exc) from None

    async def list_workers(self) -> list[OrchardWorker]:
        action = "list workers"
        obj = await self._call("GET", self._url("workers"), action)
        try:
            return [parse_worker(item) for item in parse_list(obj, "worker list")]
        except OrchardBadResponse as exc:
            raise self._shape_error(action, exc) from None

    async def list_vms(self, *, worker: str | None = None) -> list[OrchardVM]:
        action = "list VMs"
        params = {"filter": f"worker={worker}"} if worker is not None else None
        obj = await self._call("GET", self._url("vms"), action, params=params)
        try:
            return [parse_vm(item) for item in parse_list(obj, "VM list")]
        except OrchardBadResponse as exc:
            raise self._shape_error(action, exc) from None

    async def get_vm(self, name: str) -> OrchardVM:
        action = f"get VM '{name}'"
        obj = await self._call("GET", self._url("vms", name), action)
        try:
            return parse_vm(obj)
        except OrchardBadResponse as exc:
            raise self._shape_error(action, exc) from None

    async def create_vm(self, spec: NewVM) -> OrchardVM:
        action = f"create VM '{spec.name}'"
        obj = await self._call("POST", self._url("vms"), action, body=spec.to_json())
        try:
            return parse_vm(obj)
        except OrchardBadResponse as exc:
            raise self._shape_error(action, exc) from None

    async def update_vm(self, vm: OrchardVM, changes: Mapping[str, Any]) -> OrchardVM:
        """PUT replaces the whole spec (§3.5): send back what was read, changed."""
        action = f"update VM '{vm.name}'"
        body = {k: v for k, v in vm.raw.items() if k not in _READ_ONLY}
        body.update(changes)
        obj = await self._call("PUT", self._url("vms", vm.name), action, body=body)
        try:
            return parse_vm(obj)
        except OrchardBadResponse as exc:
            raise self._shape_error(action, exc) from None

    async def set_power_state(self, name: str, state: PowerState) -> OrchardVM:
        """Stop or suspend (one-way in Orchard: a stopped VM never runs again)."""
        return await self.update_vm(await self.get_vm(name), {"powerState": state})

    async def delete_vm(self, name: str) -> None:
        await self._call("DELETE", self._url("vms", name), f"delete VM '{name}'", want_json=False)

    # ------------------------------------------------------------ watch (§4)

    async def watch_vm(self, name: str) -> AsyncIterator[WatchEvent]:
        """Events for one VM: ADDED (its state now, once it exists), MODIFIED, DELETED.

        Ends when the controller ends the stream; the caller decides whether to
        watch again. A line cut in the middle raises OrchardBadResponse. A VM may
        rest in one state for hours: there is no idle limit; cancel to stop (the
        connection itself has CONNECT_TIMEOUT)."""
        action = f"watch VM '{name}'"
        session = self._get_session()
        try:
            resp = await session.get(
                self._url("vms", name),
                params={"watch": "true"},
                headers=self._headers(),
                ssl=self._ssl,
                server_hostname=self._server_name,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as exc:
            raise self._transport_error(exc) from None
        async with resp:
            if resp.status != 200:
                body = await resp.read()
                raise self._refusal(action, resp.status, resp.reason or "", resp.content_type, body)
            if resp.content_type != "application/x-ndjson":
                raise self._fail(
                    OrchardBadResponse,
                    f"{action}: answered '{resp.content_type}' instead of an ndjson stream",
                )
            while True:
                try:
                    line = await resp.content.readline()
                except (aiohttp.ClientError, OSError, ValueError) as exc:
                    raise self._fail(OrchardBadResponse, f"{action}: stream broke: {exc}") from None
                if not line:
                    return
                if not line.endswith(b"\n"):
                    raise self._fail(
                        OrchardBadResponse,
                        f"{action}: stream ended in the middle of an event ({len(line)} bytes)",
                    )
                try:
                    event = parse_event(json.loads(line))
                except ValueError as exc:
                    raise self._fail(
                        OrchardBadResponse, f"{action}: invalid JSON ({exc})"
                    ) from None
                except OrchardBadResponse as exc:
                    raise self._shape_error(action, exc) from None
                yield event

    # ------------------------------------------------------------ port-forward (§5)

    async def _connect_ws(self, vm: str, port: int, wait: int) -> aiohttp.ClientWebSocketResponse:
        session = self._get_session()
        url = self._url("vms", vm, "port-forward")
        params = {"port": str(port), "wait": str(wait)}
        try:
            # The controller may wait `wait` s for the VM, then for the worker.
            async with asyncio.timeout(wait + self.timeout):
                return await session.ws_connect(
                    url,
                    params=params,
                    headers=self._headers(),
                    ssl=self._ssl,
                    server_hostname=self._server_name,
                    autoping=True,  # answers the controller's 30 s pings
                    max_msg_size=0,
                )
        except aiohttp.WSServerHandshakeError as exc:
            raise self._port_forward_error(vm, port, exc.status) from None
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as exc:
            err = self._transport_error(exc)
            raise OrchardPortForwardError(str(err)) from None

    def _port_forward_error(self, vm: str, port: int, status: int) -> OrchardPortForwardError:
        reasons = {
            400: "invalid port",
            401: "unauthorized: needs the role compute:write or compute:connect",
            404: "no such VM",
            408: "the VM is not running yet",
            417: "the VM failed",
            500: f"nothing answers on port {port} of the VM yet",
            503: "the worker running the VM cannot be reached",
        }
        reason = reasons.get(status, "refused")
        text = self._scrub(f"{self._where}: port-forward to {vm}:{port}: {status} {reason}")
        cls = OrchardPortClosed if status == 500 else OrchardPortForwardError
        return cls(text, status)

    async def open_port_forward(
        self, vm: str, port: int, *, wait: int = 10
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A TCP stream to `port` of the VM, through the controller."""
        ws = await self._connect_ws(vm, port, wait)
        return open_streams(ws, (vm, port))

    def ssh_tunnel(self, *, wait: int = 10) -> OrchardTunnel:
        """For `asyncssh.connect(VM_NAME, 22, tunnel=client.ssh_tunnel())`."""
        return OrchardTunnel(self, wait)


class OrchardTunnel:
    """asyncssh's tunnel protocol over the controller: the host it is asked to
    connect to is the VM's name. Each connection is its own WebSocket."""

    def __init__(self, client: OrchardClient, wait: int) -> None:
        self._client = client
        self._wait = wait

    def __repr__(self) -> str:
        return f"OrchardTunnel({self._client!r})"

    async def create_connection(
        self, session_factory: Any, remote_host: str, remote_port: int
    ) -> tuple[WebSocketTransport, Any]:
        ws = await self._client._connect_ws(remote_host, remote_port, self._wait)
        protocol = session_factory()
        transport = WebSocketTransport(ws, protocol, (remote_host, remote_port))
        return transport, protocol

    def close(self) -> None:
        """Nothing to close: every connection owns its WebSocket."""

    async def wait_closed(self) -> None:
        """Nothing to wait for, as above."""
