"""A tiny fake Docker Engine API on a unix socket, for the demo and for fast tests.

It serves only what `megatui.sources.docker.DockerSource` reads: /_ping, /version,
/containers/json, /containers/{id}/json (inspect) and /networks, with or without the
/v1.NN prefix the SDK adds. Filters
behave like the real daemon's: container label filters match exactly (`key` or
`key=value`), while network and container name filters match substrings, which is why
the source must compare the `kind` network's name itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from megatui.clock import Clock, SystemClock

CLUSTER_LABEL = "io.x-k8s.kind.cluster"
ROLE_LABEL = "io.x-k8s.kind.role"
NODE_IMAGE = "kindest/node:v1.31.0"

#: States docker reports in State.Status.
CONTAINER_STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")

_CONTAINER_FILTERS = ("label", "name", "status")
_NETWORK_FILTERS = ("name", "id", "driver")


@dataclass(slots=True)
class FakeContainer:
    name: str
    labels: dict[str, str]
    state: str
    created: float
    state_since: float
    image: str = NODE_IMAGE
    command: str = "/usr/local/bin/entrypoint /sbin/init"
    exit_code: int = 0
    restart_count: int = 0  # restarts by the restart policy (Kind: on-failure:1)

    @property
    def id(self) -> str:
        return hashlib.sha256(f"container:{self.name}".encode()).hexdigest()


@dataclass(slots=True)
class FakeNetwork:
    name: str
    created: float
    driver: str = "bridge"
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return hashlib.sha256(f"network:{self.name}".encode()).hexdigest()


def human_duration(seconds: float) -> str:
    """docker's (go-units) HumanDuration, as used in `docker ps` STATUS."""
    if seconds < 1:
        return "Less than a second"
    if int(seconds) == 1:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600 / 24 / 365)} years"


class FakeDocker:
    """The fake daemon's state and its HTTP handlers. Start one with `start_fake_docker`."""

    def __init__(
        self,
        socket_path: Path,
        *,
        clock: Clock | None = None,
        server_version: str = "27.3.1",
        api_version: str = "1.47",
    ) -> None:
        self.socket_path = socket_path
        self.clock: Clock = clock or SystemClock()
        self.server_version = server_version
        self.api_version = api_version
        self.containers: dict[str, FakeContainer] = {}
        self.networks: dict[str, FakeNetwork] = {}
        #: (path, query) of every request served, in order, so tests can count them.
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    # ---- state the demo and tests change --------------------------------------------

    def add_container(
        self,
        name: str,
        *,
        labels: Mapping[str, str] | None = None,
        state: str = "running",
        image: str = NODE_IMAGE,
    ) -> FakeContainer:
        _check_state(state)
        now = self.clock.now()
        container = FakeContainer(
            name=name, labels=dict(labels or {}), state=state, created=now, state_since=now
        )
        container.image = image
        self.containers[name] = container
        return container

    def add_kind_node(self, name: str, *, cluster: str, role: str, state: str = "running") -> None:
        self.add_container(name, labels={CLUSTER_LABEL: cluster, ROLE_LABEL: role}, state=state)

    def remove_container(self, name: str) -> None:
        self.containers.pop(name, None)

    def set_node_state(
        self,
        name: str,
        state: str,
        *,
        exit_code: int | None = None,
        restart_count: int | None = None,
    ) -> None:
        """Change a container's State.Status, e.g. to "exited" to show a stopped node."""
        _check_state(state)
        container = self.containers.get(name)
        if container is None:
            raise KeyError(f"no container named {name!r}")
        if state != container.state:
            container.state = state
            container.state_since = self.clock.now()
        if exit_code is not None:
            container.exit_code = exit_code
        elif state == "exited" and container.exit_code == 0:
            container.exit_code = 137  # what `docker stop` of a Kind node leaves behind
        if restart_count is not None:
            container.restart_count = restart_count

    def add_network(self, name: str, *, driver: str = "bridge") -> None:
        self.networks[name] = FakeNetwork(name=name, created=self.clock.now(), driver=driver)

    def remove_network(self, name: str) -> None:
        self.networks.pop(name, None)

    # ---- serving ------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        for path, handler in (
            ("/_ping", self._ping),
            ("/version", self._version),
            ("/containers/json", self._containers),
            ("/containers/{ref}/json", self._inspect),
            ("/networks", self._networks),
        ):
            app.router.add_route("*", path, handler)
            app.router.add_route("*", r"/{api_version:v[0-9]+\.[0-9]+}" + path, handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.UnixSite(runner, str(self.socket_path)).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        # Python 3.11's unix servers leave the socket file behind; a stale file would
        # look like a daemon that refuses connections rather than one that is gone.
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests.append((request.path, dict(request.query)))
        if request.method not in ("GET", "HEAD"):
            response: web.StreamResponse = _error(405, "only GET is served by the fake daemon")
        else:
            try:
                response = await handler(request)
            except web.HTTPNotFound:
                response = _error(404, "page not found")
        # The headers a real daemon puts on every reply.
        response.headers["Api-Version"] = self.api_version
        response.headers["Docker-Experimental"] = "false"
        response.headers["Ostype"] = "linux"
        response.headers["Server"] = f"Docker/{self.server_version} (linux)"
        return response

    async def _ping(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="OK", headers={"Cache-Control": "no-cache, no-store"})

    async def _version(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(
            {
                "Platform": {"Name": "Docker Engine - Community"},
                "Version": self.server_version,
                "ApiVersion": self.api_version,
                "MinAPIVersion": "1.24",
                "Os": "linux",
                "Arch": "arm64",
                "KernelVersion": "6.10.14-linuxkit",
                "GoVersion": "go1.22.7",
            }
        )

    async def _containers(self, request: web.Request) -> web.StreamResponse:
        try:
            filters = _parse_filters(request.query.get("filters"), _CONTAINER_FILTERS)
        except ValueError as exc:
            return _error(400, str(exc))
        show_all = request.query.get("all", "") in ("1", "true", "True")
        out = []
        for container in sorted(self.containers.values(), key=lambda c: -c.created):
            if not show_all and container.state != "running" and "status" not in filters:
                continue
            if not _match_labels(container.labels, filters.get("label", [])):
                continue
            names = filters.get("name", [])
            if names and not any(n in container.name for n in names):
                continue
            statuses = filters.get("status", [])
            if statuses and container.state not in statuses:
                continue
            out.append(self._container_json(container))
        return web.json_response(out)

    async def _inspect(self, request: web.Request) -> web.StreamResponse:
        ref = request.match_info["ref"]
        # The daemon takes a full Id, a unique Id prefix or the name.
        found = [c for c in self.containers.values() if c.name == ref or c.id.startswith(ref)]
        if len(found) != 1:
            return _error(404, f"No such container: {ref}")
        return web.json_response(self._inspect_json(found[0]))

    def _inspect_json(self, c: FakeContainer) -> dict[str, Any]:
        """The part of GET /containers/{id}/json a Kind node shows (Engine API v1.47)."""
        running = c.state in ("running", "paused", "restarting")
        never = "0001-01-01T00:00:00Z"  # Go's zero time, what the daemon sends for "never"
        return {
            "Id": c.id,
            "Created": _rfc3339(c.created),
            "Path": c.command.split()[0],
            "Args": c.command.split()[1:],
            "State": {
                "Status": c.state,
                "Running": running,
                "Paused": c.state == "paused",
                "Restarting": c.state == "restarting",
                "OOMKilled": False,
                "Dead": c.state == "dead",
                "Pid": 4242 if running else 0,
                "ExitCode": 0 if c.state == "running" else c.exit_code,
                "Error": "",
                "StartedAt": _rfc3339(c.state_since if running else c.created)
                if c.state != "created"
                else never,
                "FinishedAt": _rfc3339(c.state_since) if c.state == "exited" else never,
            },
            "Image": "sha256:" + hashlib.sha256(c.image.encode()).hexdigest(),
            "Name": f"/{c.name}",
            "RestartCount": c.restart_count,
            "HostConfig": {
                "NetworkMode": "kind",
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 1},
            },
            "Config": {"Image": c.image, "Labels": dict(c.labels)},
        }

    def _container_json(self, c: FakeContainer) -> dict[str, Any]:
        ago = human_duration(max(0.0, self.clock.now() - c.state_since))
        status = {
            "running": f"Up {ago}",
            "paused": f"Up {ago} (Paused)",
            "restarting": f"Restarting ({c.exit_code}) {ago} ago",
            "exited": f"Exited ({c.exit_code}) {ago} ago",
            "created": "Created",
            "dead": "Dead",
            "removing": "Removal In Progress",
        }[c.state]
        return {
            "Id": c.id,
            "Names": [f"/{c.name}"],
            "Image": c.image,
            "ImageID": "sha256:" + hashlib.sha256(c.image.encode()).hexdigest(),
            "Command": c.command,
            "Created": int(c.created),
            "Ports": [],
            "Labels": dict(c.labels),
            "State": c.state,
            "Status": status,
            "HostConfig": {"NetworkMode": "kind"},
            "NetworkSettings": {"Networks": {}},
            "Mounts": [],
        }

    async def _networks(self, request: web.Request) -> web.StreamResponse:
        try:
            filters = _parse_filters(request.query.get("filters"), _NETWORK_FILTERS)
        except ValueError as exc:
            return _error(400, str(exc))
        out = []
        for network in sorted(self.networks.values(), key=lambda n: n.name):
            # Like the daemon: names match as substrings, ids as prefixes.
            if filters.get("name") and not any(n in network.name for n in filters["name"]):
                continue
            if filters.get("id") and not any(network.id.startswith(i) for i in filters["id"]):
                continue
            if filters.get("driver") and network.driver not in filters["driver"]:
                continue
            out.append(
                {
                    "Name": network.name,
                    "Id": network.id,
                    "Scope": "local",
                    "Driver": network.driver,
                    "EnableIPv6": False,
                    "Internal": False,
                    "Attachable": False,
                    "Labels": dict(network.labels),
                }
            )
        return web.json_response(out)


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_state(state: str) -> None:
    if state not in CONTAINER_STATES:
        raise ValueError(f"unknown container state {state!r}; use one of {CONTAINER_STATES}")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _parse_filters(raw: str | None, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    """The `filters` query parameter: {"key": ["v", ...]} or the older {"key": {"v": true}}."""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise ValueError("invalid filter: not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("invalid filter: not an object")
    out: dict[str, list[str]] = {}
    for key, values in data.items():
        if key not in allowed:
            raise ValueError(f"invalid filter '{key}'")
        if isinstance(values, dict):
            out[key] = [str(v) for v, on in values.items() if on]
        elif isinstance(values, list):
            out[key] = [str(v) for v in values]
        else:
            raise ValueError(f"invalid filter '{key}': bad values")
    return out


def _match_labels(labels: Mapping[str, str], wanted: list[str]) -> bool:
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


async def start_fake_docker(
    socket_path: Path,
    *,
    cluster: str = "kind",
    workers: int = 3,
    clock: Clock | None = None,
) -> FakeDocker:
    """A fake daemon with a running Kind cluster (`<cluster>-control-plane` and `workers`
    workers named like Kind's) and the `kind` network, listening on socket_path."""
    fake = FakeDocker(socket_path, clock=clock)
    fake.add_kind_node(f"{cluster}-control-plane", cluster=cluster, role="control-plane")
    for n in range(1, workers + 1):
        suffix = "" if n == 1 else str(n)
        fake.add_kind_node(f"{cluster}-worker{suffix}", cluster=cluster, role="worker")
    fake.add_network("kind")
    await fake.start()
    return fake
