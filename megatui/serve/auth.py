"""Who may talk to `megatui serve`, and what they may do.

- On a loopback bind no token is needed, but the Host header must name the loopback
  (a web page on another site cannot reach the server by DNS rebinding).
- On any other bind every request needs the token: `Authorization: Bearer TOKEN` or
  `X-Megatui-Token: TOKEN`, or the cookie a browser gets when it opens `/?token=TOKEN`
  once. Without it: 401 and nothing else.
- A state-changing request (POST) also needs the token in a header (a cookie alone
  is what a cross-site form would send) and, when it carries an Origin, the server's
  own. The browser terminal's WebSocket needs a matching Origin too.
- Connections over the server's private unix socket (the browser tabs' own `attach`
  processes) are trusted: only this user can open that socket.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import socket
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Middleware

from megatui.loopback import is_loopback

log = logging.getLogger(__name__)

TOKEN_FILE = "serve-token"
COOKIE = "megatui_token"
HEADER = "X-Megatui-Token"
TOKEN_BYTES = 32

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TokenError(Exception):
    """The token file cannot be made or read; one line."""


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """The token stored at `path` (0600), made on first use; and whether it is new."""
    try:
        return _read_token(path), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another server made it at the same moment
        return _read_token(path), False
    except OSError as exc:
        raise TokenError(f"cannot create {path}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(token + "\n")
    return token, True


def _read_token(path: Path) -> str:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise TokenError(f"cannot read {path}: {exc.strerror or exc}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenError(f"{path} is readable by others: chmod 600 it or delete it")
    try:
        token = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenError(f"cannot read {path}: {exc}") from None
    if len(token) < 20 or not token.isprintable() or " " in token:
        raise TokenError(f"{path} does not hold a usable token: delete it to make a new one")
    return token


@dataclass
class Policy:
    """The access rules of one server."""

    token: str | None  # None: loopback bind, no token needed
    tls: bool = False
    loopback: bool = True
    _warned_query: bool = field(default=False, repr=False)

    def token_ok(self, given: str | None) -> bool:
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())


def _header_token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get(HEADER)


def _own_origin(request: web.Request, policy: Policy) -> str:
    scheme = "https" if policy.tls else "http"
    return f"{scheme}://{request.host}"


def _over_unix_socket(request: web.Request) -> bool:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    return sock is not None and sock.family == socket.AF_UNIX


def _unauthorized() -> web.Response:
    return web.Response(
        status=401, text="401: unauthorized\n", headers={"WWW-Authenticate": "Bearer"}
    )


def _host_name(request: web.Request) -> str:
    host = request.host
    if host.startswith("["):
        return host[: host.find("]") + 1]
    return host.rsplit(":", 1)[0]


def middleware(policy: Policy) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _over_unix_socket(request):
            return await handler(request)
        if policy.loopback and not is_loopback(_host_name(request)):
            return web.Response(status=403, text="403: this server answers to localhost only\n")
        header = _header_token(request)
        query = request.query.get("token") if request.path == "/" else None
        given = header or query or request.cookies.get(COOKIE)
        if not policy.token_ok(given):
            return _unauthorized()
        origin = request.headers.get("Origin")
        changing = request.method not in ("GET", "HEAD", "OPTIONS")
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        if (
            (changing or websocket)
            and origin is not None
            and origin != _own_origin(request, policy)
        ):
            return web.Response(status=403, text="403: cross-origin request refused\n")
        if changing and policy.token is not None and not policy.token_ok(header):
            return web.Response(status=403, text=f"403: send the token in the {HEADER} header\n")
        if query is not None and policy.token is not None:
            return _cookie_redirect(request, policy, query)
        return await handler(request)

    return check


def _cookie_redirect(request: web.Request, policy: Policy, token: str) -> web.Response:
    """The browser's one visit with the token in the URL: keep it in a cookie and take
    it out of the address bar (and so out of the history)."""
    if not policy.tls and not policy.loopback and not policy._warned_query:
        policy._warned_query = True
        log.warning(
            "a token was sent in a URL over plain HTTP on a non-loopback address; "
            "anyone on the network path can read it (use --tls-cert/--tls-key)"
        )
    query = {k: v for k, v in request.query.items() if k != "token"}
    location = request.rel_url.with_query(query)
    response = web.Response(status=302, headers={"Location": str(location)})
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="Strict", secure=policy.tls, path="/"
    )
    return response
