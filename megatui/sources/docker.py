"""The Docker daemon as megatui sees it: reachable or not, its Kind node containers and
whether the `kind` network exists.

The docker SDK is blocking, so every poll runs in a worker thread under one overall
deadline. One `DockerClient` is kept while it works and dropped after any failure, so a
restarted daemon or a re-forwarded socket gets a fresh connection pool on the next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import socket
import ssl
import stat
import time
import traceback
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
import docker.utils
import requests.exceptions
import urllib3.exceptions

from megatui.model import DockerStatus, KindCluster, KindNodeContainer
from megatui.text import one_line

#: Labels Kind puts on every node container (docs/facts/kubernetes.md §11.2).
CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ROLE_LABEL = "io.x-k8s.kind.role"
#: Kind's fixed network name (docs/facts/kubernetes.md §11.3).
KIND_NETWORK = "kind"

DEFAULT_SOCKET_URL = "unix:///var/run/docker.sock"

# The worker enforces the deadline itself through per-request socket timeouts; the
# coroutine waits a little longer so that a worker that is about to report its own
# (more precise) error normally gets to do so.
_GRACE = 0.5
# A request is never sent with less than this, so a nearly spent deadline still gets a
# real attempt instead of an instant failure.
_MIN_REQUEST_TIMEOUT = 0.05
_MAX_ERROR_CHARS = 240


class DockerReplyError(Exception):
    """The other side answered, but not the way the Docker Engine API does."""


class _DeadlineExceeded(Exception):
    """The poll's overall time ran out between two requests."""


@dataclass(frozen=True, slots=True)
class _Outcome:
    client: Any  # docker.DockerClient | None: the client the worker used, to keep or close
    status: DockerStatus


def normalize_url(base_url: str) -> str:
    """A bare socket path (what an SSH socket forward gives) becomes a unix:// URL."""
    if base_url.startswith("/"):
        return "unix://" + base_url
    return base_url


def _resolve_default() -> tuple[str, dict[str, Any]]:
    """What `docker.from_env()` would connect to, and the client arguments for it.

    Done by hand rather than with from_env so that error lines can name the address.
    """
    params: dict[str, Any] = dict(docker.utils.kwargs_from_env())
    if "base_url" not in params:
        # docker>=7.2 also honours the CLI's current context (Docker Desktop sockets);
        # older SDKs do not have this and use the default socket.
        from_context = getattr(docker.ContextAPI, "kwargs_from_context", None)
        if from_context is not None:
            try:
                for key, value in from_context().items():
                    params.setdefault(key, value)
            except Exception:
                pass  # an unreadable CLI config must not stop us from trying the default
    url = normalize_url(str(params.get("base_url") or DEFAULT_SOCKET_URL))
    if url.startswith("http+unix://"):
        url = "unix://" + url.removeprefix("http+unix://")
    params["base_url"] = url
    return url, params


# ---- parsing: pure functions over the Engine API's JSON ---------------------------------


def _container_name(entry: Mapping[str, Any]) -> str:
    names = entry.get("Names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DockerReplyError("unexpected reply to /containers/json: a container has no Names")
    # Legacy --link aliases show up as "/other/alias"; the own name has a single slash.
    bare_names = [str(name).removeprefix("/") for name in names]
    return next((name for name in bare_names if "/" not in name), bare_names[0])


def _exact_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_inspect(inspected: Any) -> tuple[int | None, int | None]:
    """(State.ExitCode, RestartCount) of a GET /containers/{id}/json reply.

    A field of the wrong type is left unknown (None) rather than failing the poll: the
    list already told us the container exists and its state.
    """
    if not isinstance(inspected, dict):
        return None, None
    state = inspected.get("State")
    exit_code = _exact_int(state.get("ExitCode")) if isinstance(state, dict) else None
    return exit_code, _exact_int(inspected.get("RestartCount"))


def kind_container_ids(containers: Any) -> list[str]:
    """The Ids of the Kind node containers in a GET /containers/json reply (to inspect)."""
    if not isinstance(containers, list):
        return []
    ids = []
    for entry in containers:
        if not isinstance(entry, dict):
            continue
        labels = entry.get("Labels")
        cluster = labels.get(CLUSTER_LABEL) if isinstance(labels, dict) else None
        cid = entry.get("Id")
        if isinstance(cluster, str) and cluster and isinstance(cid, str) and cid:
            ids.append(cid)
    return ids


def parse_kind_clusters(
    containers: Any, inspected: Mapping[str, Any] | None = None
) -> tuple[KindCluster, ...]:
    """Group the containers of GET /containers/json into Kind clusters, sorted by name.

    Containers without a (non-empty) cluster label are ignored, so the result is right
    even if the daemon did not apply the label filter. `inspected` maps a container's
    Id to its GET /containers/{id}/json reply, for the exit code and restart count.
    """
    inspected = inspected or {}
    if not isinstance(containers, list):
        raise DockerReplyError("unexpected reply to /containers/json: not a list")
    by_cluster: dict[str, list[KindNodeContainer]] = {}
    for entry in containers:
        if not isinstance(entry, dict):
            raise DockerReplyError(
                "unexpected reply to /containers/json: an entry is not an object"
            )
        labels = entry.get("Labels") or {}
        if not isinstance(labels, dict):
            raise DockerReplyError("unexpected reply to /containers/json: Labels is not an object")
        cluster = labels.get(CLUSTER_LABEL)
        if not isinstance(cluster, str) or not cluster:
            continue
        role = labels.get(ROLE_LABEL)
        state = entry.get("State")
        cid = entry.get("Id")
        exit_code, restarts = parse_inspect(inspected.get(cid) if isinstance(cid, str) else None)
        by_cluster.setdefault(cluster, []).append(
            KindNodeContainer(
                name=_container_name(entry),
                role=role if isinstance(role, str) else "",
                state=state if isinstance(state, str) and state else "unknown",
                cluster=cluster,
                exit_code=exit_code,
                restart_count=restarts,
            )
        )
    return tuple(
        KindCluster(name=name, nodes=tuple(sorted(nodes, key=lambda n: n.name)))
        for name, nodes in sorted(by_cluster.items())
    )


def has_network(networks: Any, name: str = KIND_NETWORK) -> bool:
    """Whether GET /networks lists a network called exactly `name`.

    The daemon's name filter matches substrings ("kind" finds "kind-old"), hence the
    exact comparison here.
    """
    if not isinstance(networks, list):
        raise DockerReplyError("unexpected reply to /networks: not a list")
    for entry in networks:
        if not isinstance(entry, dict):
            raise DockerReplyError("unexpected reply to /networks: an entry is not an object")
        if entry.get("Name") == name:
            return True
    return False


def _server_version(version: Any) -> str:
    if not isinstance(version, dict) or not isinstance(version.get("Version"), str):
        raise DockerReplyError("unexpected reply to /version: no Version")
    return str(version["Version"])


# ---- error lines ------------------------------------------------------------------------


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """exc and everything it wraps: the SDK, requests and urllib3 nest the real cause in
    __cause__, __context__, `reason` or args."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        nested: list[object] = [
            current.__cause__,
            current.__context__,
            getattr(current, "reason", None),
        ]
        nested.extend(current.args)
        todo.extend(e for e in nested if isinstance(e, BaseException))


def _unix_path(url: str) -> str | None:
    for prefix in ("unix://", "http+unix://"):
        if url.startswith(prefix):
            return url.removeprefix(prefix)
    return None


def _refused_reason(url: str) -> str:
    # connect() to a path that exists but is no socket also fails with ECONNREFUSED.
    path = _unix_path(url)
    if path is not None:
        try:
            if not stat.S_ISSOCK(os.stat(path).st_mode):
                return "not a socket"
        except OSError:
            pass
    return "connection refused"


def describe_failure(exc: BaseException, url: str, timeout: float) -> str:
    """The one line a user sees for a failed poll."""
    chain = list(_causes(exc))

    def find(kind: type[BaseException] | tuple[type[BaseException], ...]) -> BaseException | None:
        return next((e for e in chain if isinstance(e, kind)), None)

    unreachable = f"cannot reach the Docker daemon at {url}"
    # The OS's own reasons first: urllib3's NewConnectionError (wrapping a refused TCP
    # connect) is, for historical reasons, a subclass of its ConnectTimeoutError.
    if find(FileNotFoundError):
        return f"{unreachable}: no such socket"
    if find(ConnectionRefusedError):
        return f"{unreachable}: {_refused_reason(url)}"
    if find(PermissionError):
        return f"{unreachable}: permission denied"
    timeouts = (
        _DeadlineExceeded,
        requests.exceptions.Timeout,
        urllib3.exceptions.TimeoutError,
        TimeoutError,
        socket.timeout,
    )
    if any(
        isinstance(e, timeouts) and not isinstance(e, urllib3.exceptions.NewConnectionError)
        for e in chain
    ):
        return f"{unreachable}: timed out after {timeout:g} s"
    if find(http.client.RemoteDisconnected):
        return f"{unreachable}: the connection closed without a reply"
    if find((ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return f"{unreachable}: the connection was reset"
    if found := find(socket.gaierror):
        return one_line(f"{unreachable}: cannot resolve the host name ({found})", _MAX_ERROR_CHARS)
    if found := find(ssl.SSLError):
        return one_line(f"{unreachable}: TLS error ({found})", _MAX_ERROR_CHARS)
    if find(http.client.HTTPException):
        return f"no Docker API at {url}: the reply is not HTTP"
    if found := find(docker.errors.APIError):
        code = getattr(found, "status_code", None)
        explanation = getattr(found, "explanation", None) or str(found)
        return one_line(
            f"the Docker daemon at {url} answered HTTP {code}: {explanation}", _MAX_ERROR_CHARS
        )
    if find(json.JSONDecodeError):
        return f"no Docker API at {url}: the reply is not JSON"
    if found := find(DockerReplyError):
        return one_line(f"no Docker API at {url}: {found}", _MAX_ERROR_CHARS)
    # The SDK's version handshake wraps a JSON reply of the wrong shape (TypeError,
    # KeyError) in one of these messages.
    if find((TypeError, KeyError)) and str(exc).startswith(
        ("Error while fetching server API version", "Invalid response from docker daemon")
    ):
        return f"no Docker API at {url}: unexpected reply to /version"
    for e in chain:
        if isinstance(e, OSError) and e.errno is not None and e.strerror:
            return one_line(
                f"{unreachable}: {e.strerror[0].lower()}{e.strerror[1:]}", _MAX_ERROR_CHARS
            )
    if found := find(docker.errors.DockerException):
        return one_line(f"Docker client error for {url}: {found}", _MAX_ERROR_CHARS)
    return one_line(f"{unreachable}: {type(exc).__name__}: {exc}", _MAX_ERROR_CHARS)


# ---- the source ----------------------------------------------------------------------


class DockerSource:
    """Polls one Docker daemon. `poll()` never raises for failures outside megatui."""

    def __init__(self, base_url: str | None, *, timeout: float = 5.0) -> None:
        if base_url is None:
            self.url, self._client_args = _resolve_default()
        else:
            self.url = normalize_url(base_url)
            self._client_args = {"base_url": self.url}
        self.timeout = timeout
        self._client: Any = None  # docker.DockerClient, kept while polls succeed
        # A worker that outlived its poll's deadline. Threads cannot be cancelled, so it
        # is left to finish against its own socket timeouts; until it has, no second
        # worker is started, so hung requests can never pile up.
        self._straggler: asyncio.Task[_Outcome] | None = None

    async def poll(self) -> DockerStatus:
        if self._straggler is not None:
            if not self._straggler.done():
                return self._timed_out()
            self._reap_straggler()
        client, self._client = self._client, None
        deadline = time.monotonic() + self.timeout
        task = asyncio.ensure_future(asyncio.to_thread(self._poll_blocking, client, deadline))
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout + _GRACE)
        except asyncio.CancelledError:
            self._straggler = task
            raise
        if not done:
            self._straggler = task
            return self._timed_out()
        outcome = task.result()
        if outcome.status.reachable:
            self._client = outcome.client
        else:
            _close_client(outcome.client)
        return outcome.status

    async def close(self) -> None:
        if self._straggler is not None:
            # Bounded: the worker's requests time out on their own by its deadline.
            await asyncio.wait({self._straggler}, timeout=self.timeout + _GRACE)
            if self._straggler.done():
                self._reap_straggler()
        client, self._client = self._client, None
        _close_client(client)

    def _timed_out(self) -> DockerStatus:
        line = f"cannot reach the Docker daemon at {self.url}: timed out after {self.timeout:g} s"
        return DockerStatus(reachable=False, error=line)

    def _reap_straggler(self) -> None:
        task, self._straggler = self._straggler, None
        if task is not None and not task.cancelled() and task.exception() is None:
            _close_client(task.result().client)

    # Runs in a worker thread.
    def _poll_blocking(self, client: Any, deadline: float) -> _Outcome:
        try:
            if client is None:
                client = docker.DockerClient(
                    **self._client_args, version="auto", timeout=_remaining(deadline)
                )
            api = client.api
            # The SDK applies `timeout` to every request; shrinking it before each call
            # makes the requests (version, list, one inspect per Kind node, networks)
            # share one deadline.
            api.timeout = _remaining(deadline)
            version = api.version()
            api.timeout = _remaining(deadline)
            containers = api.containers(all=True, filters={"label": CLUSTER_LABEL})
            inspected = self._inspect_all(api, kind_container_ids(containers), deadline)
            api.timeout = _remaining(deadline)
            networks = api.networks(names=[KIND_NETWORK])
            status = DockerStatus(
                reachable=True,
                server_version=_server_version(version),
                kind_network=has_network(networks),
                clusters=parse_kind_clusters(containers, inspected),
            )
        except Exception as exc:
            status = DockerStatus(
                reachable=False, error=describe_failure(exc, self.url, self.timeout)
            )
            _release_sockets(exc)
        return _Outcome(client=client, status=status)

    @staticmethod
    def _inspect_all(api: Any, ids: list[str], deadline: float) -> dict[str, Any]:
        """Each Kind container's inspect reply (a cluster has a handful of nodes).

        A container removed between the list and its inspect (404) is simply left
        uninspected; any other failure fails the poll like the other requests.
        """
        out: dict[str, Any] = {}
        for cid in ids:
            api.timeout = _remaining(deadline)
            try:
                out[cid] = api.inspect_container(cid)
            except docker.errors.NotFound:
                continue
        return out


def _release_sockets(exc: BaseException) -> None:
    """Close the sockets a failed request left in its traceback's frames.

    The SDK's unix connect (docker/transport/unixconn.py) does not close its new socket
    when connect() fails; the socket then lives in a frame of the traceback, inside a
    reference cycle, and is only freed (unclosed: a ResourceWarning) when something
    clears the frames or a later cyclic GC runs. The client of a failed poll is
    discarded, so every socket in these frames is ours to close."""
    for cause in _causes(exc):
        tb = cause.__traceback__
        while tb is not None:
            for value in list(tb.tb_frame.f_locals.values()):
                if isinstance(value, socket.socket):
                    value.close()
            tb = tb.tb_next
        traceback.clear_frames(cause.__traceback__)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _DeadlineExceeded()
    return max(left, _MIN_REQUEST_TIMEOUT)


def _close_client(client: Any) -> None:
    if client is None:
        return
    # Closing only drops pooled sockets; if that fails there is nothing left to clean.
    with contextlib.suppress(Exception):
        client.close()
