"""Nodes, Argo CD pods and Applications from the Kubernetes API: list once, then watch.

Per resource the loop is the one docs/facts/kubernetes.md §5.1 recommends: list, remember the
list's resourceVersion, watch from it with `allowWatchBookmarks` and a server-side
`timeoutSeconds`, follow the RV through events and bookmarks, reconnect from it
when a stream ends or breaks, and relist only on 410 (an `ERROR` event inside HTTP
200, or an HTTP 410). Lists are never polled again.

`kube_client` turns the kubeconfig into TLS set-up, credentials and an aiohttp session
(the official `kubernetes` package is not imported: docs/architecture.md "Imports"); a
5,000-pod list is read as bytes and parsed with `json` straight into the `kube_status`
rows, and watch streams are read line by line from the raw response (one
newline-terminated event per line). Building models would cost several times more and
the rows need only a few fields.

Every failure becomes a one-line status for its source ("kubernetes" for nodes and
pods, "applications"); the other resources keep working and the last data stays
(stale) while a failing one backs off with jitter. `refresh()` (the `r` key) forgets
the backoff and retries at once.

Nothing from the API server is trusted before its shape is checked: bodies are
size-capped, every JSON value is type-checked where it is read (`kube_status`), and
a wrong shape fails only its resource with one line such as "pods: unexpected
shape: items[3] is not an object".

A watch is never left waiting on a dead server: it asks for `timeoutSeconds`, so a
healthy server sends an event, a bookmark or the end of the stream at least that
often, and a watch that receives nothing for `timeoutSeconds + watch_grace` is
declared stalled (a frozen API server, a dead tunnel) and its source goes stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno as errno_mod
import json
import logging
import os
import random
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from megatui.backoff import backoff_delay
from megatui.clock import Clock
from megatui.config import Settings
from megatui.model import Application, ArgoSummary, Node, Pod, SourceStatus, StatusKind
from megatui.sources.kube_client import (
    MAX_LINE,
    BadShape,
    KubeClient,
    connect,
    parse_list,
    status_message,
)
from megatui.sources.kube_rows import Resource
from megatui.sources.kube_status import (
    ShapeError,
    application_row,
    argocd_summary,
    node_row,
    object_key,
    pod_row,
    resource_version,
)
from megatui.sources.kubeconfig import (
    KubeError,
    kubeconfig_paths,
    kubeconfig_signature,
)
from megatui.sources.pod_why import pod_clue
from megatui.text import one_line

log = logging.getLogger(__name__)
#: Seconds before a state whose on_change failed is offered again.
CALLBACK_RETRY = 1.0
#: How long the watches must be quiet before a change is published: long enough for
#: the rest of a burst written at once on the server to be read, short enough not to
#: be seen.
BURST_GAP = 0.005

JSON = dict[str, Any]

KUBERNETES = "kubernetes"
APPLICATIONS = "applications"
CRD_MISSING = "ArgoCD Applications CRD not installed"

#: Kinds under which a resource is fine: the missing CRD is a note, not an error.
_CALM_KINDS = (StatusKind.OK, StatusKind.MISSING_CRD)

# Size caps on what the API server may make us hold. A list is parsed whole, and
# json.loads needs several times the body in memory: 5,000 pods with full status list
# as about 30 MB, so 64 MiB leaves twice that room and still bounds a runaway body.
LIST_CAP = 64 * 1024 * 1024
# etcd refuses a request over 1.5 MiB (--max-request-bytes), so no stored object, and no
# watch event carrying one, is bigger; 2 MiB per event line is never hit by real data.
EVENT_CAP = 2 * 1024 * 1024
# Error bodies are Status objects of a few hundred bytes; only the message is shown.
STATUS_CAP = 64 * 1024


@dataclass(frozen=True, slots=True)
class KubeState:
    nodes: tuple[Node, ...] = ()
    pods: tuple[Pod, ...] = ()
    applications: tuple[Application, ...] = ()
    argocd: ArgoSummary | None = None
    context: str | None = None
    #: "kubernetes" (nodes and pods) and "applications"; absent until first known.
    statuses: dict[str, SourceStatus] = field(default_factory=dict)
    #: Every resource (nodes, pods, Applications) has answered at least once, with
    #: data or an error; until then the state is partial.
    answered: bool = False


class _Expired(Exception):
    """410: the resourceVersion is too old; relist."""


class _CrdMissing(Exception):
    """404 on the Applications path: Argo CD's CRD is not installed."""


class _StreamCut(KubeError):
    """A watch stream broke off in the middle; resume from the last RV."""


class _Stalled(KubeError):
    """A watch received nothing for longer than its heartbeat allows."""


class _Reload(Exception):
    """The kubeconfig changed on disk: rebuild the client."""


# Keys sort as kubectl lists: by name (namespaced ones within their namespace).


def _node_entry(obj: JSON, _now: float) -> tuple[str, Any]:
    row = node_row(obj)
    return row.name, row


def _pod_entry(obj: JSON, now: float) -> tuple[str, Any]:
    row = pod_row(obj, now)
    clue = pod_clue(obj, row.status, row.running_ready)  # the pod's own side of its WHY
    if clue is not None:
        row = dataclasses.replace(row, clue=clue)
    return f"{row.namespace}/{row.name}", row


def _app_entry(obj: JSON, _now: float) -> tuple[str, Any]:
    row = application_row(obj)
    return f"{row.namespace}/{row.name}", row


def _key_of(res: Resource, obj: JSON) -> str:
    return object_key(obj, namespaced=res.name != "nodes")


# --------------------------------------------------------------------------- the source


class KubeSource:
    """List-then-watch of nodes, the Argo CD namespace's pods and its Applications.

    `run()` loops until cancelled and never raises for failures outside; each
    change calls `on_change` with a new `KubeState` (bursts coalesced to one call
    per `[kube] coalesce` seconds, first lists reported at once).
    """

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        on_change: Callable[[KubeState], None],
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.on_change = on_change
        self.timing = settings.kube_timing()
        self._rng = random.Random()
        ns = urllib.parse.quote(settings.namespace, safe="")
        self.nodes = Resource("nodes", "/api/v1/nodes", _node_entry)
        self.pods = Resource("pods", f"/api/v1/namespaces/{ns}/pods", _pod_entry)
        self.apps = Resource(
            "applications",
            f"/apis/argoproj.io/v1alpha1/namespaces/{ns}/applications",
            _app_entry,
        )
        self._resources = (self.nodes, self.pods, self.apps)
        self.state = KubeState(context=settings.kube_context)
        self._client: KubeClient | None = None
        self._context: str | None = settings.kube_context
        self._crd_missing = False
        self._namespace_missing = False
        self._suspect = asyncio.Event()
        self._wake = asyncio.Event()  # set (and replaced) by refresh()
        self._generation = 0  # refresh() calls so far
        self._last_emit = float("-inf")
        self._flush_handle: asyncio.TimerHandle | None = None
        #: When the first change not yet published came (None: all are out).
        self._burst_began: float | None = None
        self._dirty = False
        #: Why on_change last failed: shown in the kubernetes status until it succeeds.
        self._callback_error: str | None = None

    # ----------------------------------------------------------------- state reporting

    def _now(self) -> float:
        return float(self.clock.now())

    def _changed(self, *, urgent: bool = False) -> None:
        """Publish once the watches have been quiet for BURST_GAP, at the latest
        `coalesce` seconds after the first change not yet published, and never
        sooner than `coalesce` after the last publish (at once if urgent).

        The quiet gap, not "the loop's next turn": a change of 5 pods written at once
        on the server may reach us in two reads a millisecond apart, and the second
        then waited a whole window (snapshot p95 57 ms through a terminal against a
        median of 8). The events of one read are applied before the loop turns, so
        with `coalesce` 0 a read is still one publish."""
        self._dirty = True
        if urgent:
            self._flush()
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._burst_began is None:
            self._burst_began = now
        window = self.timing.coalesce
        due = max(self._last_emit + window, min(now + BURST_GAP, self._burst_began + window))
        if self._flush_handle is not None:
            if self._flush_handle.when() >= due:
                return  # a publish is already on its way and will carry this change
            self._flush_handle.cancel()
        self._flush_handle = loop.call_at(max(due, now), self._flush)

    def _flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if not self._dirty:
            return
        self._dirty = False
        self._burst_began = None
        self._last_emit = asyncio.get_running_loop().time()
        self.state = self._build_state()
        try:
            self.on_change(self.state)
        except Exception as exc:  # a bug in the consumer must not stop the watches
            # One line in the status, tried again shortly; the traceback only at debug
            # level, never on the terminal.
            log.debug("KubeSource on_change callback failed", exc_info=True)
            first = (str(exc).splitlines() or [""])[0] or type(exc).__name__
            self._callback_error = f"internal error publishing the cluster state: {first}"
            self._dirty = True
            if self._flush_handle is None:
                loop = asyncio.get_running_loop()
                self._flush_handle = loop.call_later(CALLBACK_RETRY, self._flush)
        else:
            self._callback_error = None

    def _build_state(self) -> KubeState:
        pods = self.pods.rows.rows()
        statuses: dict[str, SourceStatus] = {}
        kube = self._merged_status()
        if self._callback_error is not None:
            since = kube.updated_at if kube is not None else None
            kube = SourceStatus(KUBERNETES, False, self._callback_error, since)
        if kube is not None:
            statuses[KUBERNETES] = kube
        h = self.apps.health
        if h.known:
            statuses[APPLICATIONS] = SourceStatus(
                APPLICATIONS, h.ok, h.error, h.updated_at, h.next_retry_at, h.note, h.kind
            )
        return KubeState(
            nodes=self.nodes.rows.rows(),
            pods=pods,
            applications=self.apps.rows.rows(),
            argocd=self._summary(),
            context=self._context,
            statuses=statuses,
            answered=all(res.health.known for res in self._resources),
        )

    def _summary(self) -> ArgoSummary | None:
        res = self.pods
        if res.health.updated_at is None:
            return None  # never listed: unknown, not "0 of 7"
        if res.summary is None:
            res.summary = argocd_summary(res.argo.values())
        return res.summary

    def _merged_status(self) -> SourceStatus | None:
        a, b = self.nodes.health, self.pods.health
        if not (a.known or b.known):
            return None
        parts = [h for h in (a, b) if h.known]
        # A part not heard from yet (first list in flight) does not count as failing.
        ok = all(h.ok for h in parts)
        failing = next((h for h in parts if not h.ok and h.error), None)
        stamps = [h.updated_at for h in (a, b) if h.updated_at is not None]
        retries = [h.next_retry_at for h in (a, b) if h.next_retry_at is not None]
        return SourceStatus(
            KUBERNETES,
            ok=ok,
            error=failing.error if failing else None,
            kind=failing.kind if failing else StatusKind.OK,
            # As fresh as the stalest part that ever had data.
            updated_at=min(stamps) if stamps else None,
            next_retry_at=min(retries) if retries and not ok else None,
        )

    def _mark(self, res: Resource, kind: StatusKind, text: str, retry_in: float | None) -> None:
        """Set every field of the resource's health at once, so no state keeps a stale
        error, note or retry time. `text` is the error, or the note of a calm kind.
        Only an ERROR keeps the time of the last good data (the source shows stale)."""
        h = res.health
        calm = kind in _CALM_KINDS
        h.known = True
        h.ok = calm
        h.error = None if calm else text
        h.note = (text or None) if calm else None
        h.kind = kind
        h.next_retry_at = self._now() + retry_in if retry_in is not None else None
        if kind is not StatusKind.ERROR:
            h.updated_at = self._now()

    def _ok(self, res: Resource, *, urgent: bool = False) -> None:
        h = res.health
        was_bad = not h.ok or not h.known
        if res is self.apps and self._crd_missing:
            self._crd_missing = False
        if res is self.pods and self._namespace_missing:
            missing = f"namespace '{self.settings.namespace}' not found"
            self._mark(res, StatusKind.MISSING_NAMESPACE, missing, None)
        else:
            self._mark(res, StatusKind.OK, "", None)
        self._changed(urgent=urgent or was_bad)

    def _fail(self, res: Resource, message: str, retry_in: float | None) -> None:
        self._mark(res, StatusKind.ERROR, message, retry_in)
        self._changed(urgent=True)

    def _calm(self, res: Resource, message: str, retry_in: float) -> None:
        """Not an error: nothing to show and nothing broken (the missing CRD)."""
        self._mark(res, StatusKind.MISSING_CRD, message, retry_in)
        self._changed(urgent=True)

    # ----------------------------------------------------------------- running

    def _delay(self, failures: int) -> float:
        t = self.timing
        return backoff_delay(
            failures - 1, t.reconnect_delay, t.reconnect_max_delay, self._rng, t.reconnect_jitter
        )

    def refresh(self) -> None:
        """Retry every failing or waiting resource now and forget its backoff (the
        `r` key). Healthy watches are left alone."""
        self._generation += 1
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def _pause(self, delay: float, since: int | None = None) -> bool:
        """Sleep `delay` seconds, or less if refresh() is called; True if it was. With
        `since` (the generation when the failed attempt began), a refresh during that
        attempt also counts: `r` pressed while a request was failing retries at once."""
        if since is not None and since != self._generation:
            return True
        wake = self._wake
        try:
            async with asyncio.timeout(delay):
                await wake.wait()
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Run until cancelled. Never raises for outside failures."""
        failures = 0
        try:
            while True:
                generation = self._generation
                try:
                    client = await connect(self.settings)
                except KubeError as exc:
                    failures += 1
                    delay = self._delay(failures)
                    for res in self._resources:
                        self._fail(res, str(exc), delay)
                    if await self._pause(delay, generation):
                        failures = 0
                    continue
                self._client = client
                if self._context != client.context:
                    self._context = client.context
                    self._changed()
                unexpected: BaseException | None = None
                try:
                    await self._run_client(client)
                except* _Reload:
                    # Another cluster may sit behind the new kubeconfig: relist all.
                    failures = 0
                    for res in self._resources:
                        res.rv = None
                except* Exception as group:
                    # A bug, not an outside failure: say so in one line (no traceback
                    # on the terminal), start over with backoff, never die.
                    unexpected = group.exceptions[0]
                    log.debug("kube source failed; restarting", exc_info=group)
                    for res in self._resources:
                        res.rv = None
                finally:
                    self._client = None
                    with contextlib.suppress(Exception):
                        await client.close()
                if unexpected is not None:
                    failures += 1
                    delay = self._delay(failures)
                    while isinstance(unexpected, BaseExceptionGroup):
                        unexpected = unexpected.exceptions[0]
                    line = one_line(f"{type(unexpected).__name__}: {unexpected}", MAX_LINE)
                    for res in self._resources:
                        self._fail(res, f"internal error: {line}", delay)
                    if await self._pause(delay):
                        failures = 0
                else:
                    failures = 0
        finally:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
                self._flush_handle = None

    async def _run_client(self, client: KubeClient) -> None:
        self._suspect.clear()
        async with asyncio.TaskGroup() as group:
            for res in self._resources:
                group.create_task(self._run_resource(client, res), name=f"kube-{res.name}")
            group.create_task(self._watch_config(client), name="kube-config")
            group.create_task(self._refresh_restarts(), name="kube-restarts")

    async def _refresh_restarts(self) -> None:
        """RESTARTS reads "3 (5m ago)": re-render those few pods as time passes, since a
        crash-looping pod may not change for minutes."""
        while True:
            await asyncio.sleep(self.timing.restarts_refresh_interval)
            now = self._now()
            changed = False
            for key, obj in list(self.pods.aging.items()):
                _key, row = self.pods.convert(obj, now)
                if self.pods.rows.get(key) != row:
                    self.pods.rows.upsert(key, row)
                    self.pods.track(key, row, obj)
                    changed = True
            if changed:
                self._changed()

    async def _watch_config(self, client: KubeClient) -> None:
        """When requests start failing, see whether the kubeconfig changed (Kind
        recreated the cluster: new port, new certificates) and reconnect if so."""
        paths = kubeconfig_paths(self.settings)
        while True:
            await self._suspect.wait()
            self._suspect.clear()
            if kubeconfig_signature(paths) != client.signature:
                raise _Reload

    async def _run_resource(self, client: KubeClient, res: Resource) -> None:
        failures = 0
        expirations = 0
        while True:
            delay: float | None = None
            generation = self._generation
            try:
                if res.rv is None:
                    await self._list(client, res)
                if await self._watch(client, res):
                    expirations = 0
                failures = 0
            except _Expired:
                # Relist at once; only a 410 right after a fresh list backs off.
                res.rv = None
                expirations += 1
                if expirations > 1:
                    delay = self._delay(expirations - 1)
            except _CrdMissing:
                failures = 0
                res.rv = None
                self._crd_missing = True
                if len(res.rows):
                    res.rows.replace_all([])
                t = self.timing
                delay = t.crd_retry_interval * (1 + t.reconnect_jitter * self._rng.random())
                self._calm(res, CRD_MISSING, delay)
            except _StreamCut as exc:
                # A stream that delivered events before it broke was healthy: reconnect
                # at once. One that breaks again before any event backs off.
                failures = 1 if res.delivered else failures + 1
                if failures > 1:
                    delay = self._delay(failures - 1)
                    self._fail(res, str(exc), delay)
            except _Stalled as exc:
                # Relist on the next attempt: the list proves at once that the server
                # answers again, where a watch from the RV may stay quiet for a while.
                res.rv = None
                failures += 1
                delay = self._delay(failures)
                self._fail(res, str(exc), delay)
            except BadShape as exc:
                # The same bad object would come back on a watch from this RV: start
                # over with a list once the backoff has passed. The rows stay (stale).
                res.rv = None
                failures += 1
                delay = self._delay(failures)
                self._fail(res, str(exc), delay)
            except KubeError as exc:
                failures += 1
                delay = self._delay(failures)
                self._fail(res, str(exc), delay)
                self._suspect.set()
            if delay is not None and await self._pause(delay, generation):
                failures = 0
                expirations = 0

    # ----------------------------------------------------------------- requests

    async def _get(
        self,
        client: KubeClient,
        path: str,
        query: list[tuple[str, Any]],
        timeout: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        """Send a GET (auth, TLS, headers from the kubeconfig) and return the raw
        aiohttp response once its headers are in."""
        server = client.server
        limit = self.settings.kube_request_timeout
        try:
            async with asyncio.timeout(limit):
                response = await client.get(path, query, timeout)
        except TimeoutError:
            raise KubeError(
                f"the API server at {server} did not answer within {limit:g} s"
            ) from None
        except aiohttp.ClientConnectorCertificateError as exc:
            reason = getattr(exc.certificate_error, "verify_message", None) or str(
                exc.certificate_error
            )
            raise KubeError(f"TLS verification of {server} failed: {reason}") from None
        except aiohttp.ClientConnectorSSLError as exc:
            raise KubeError(f"TLS handshake with {server} failed: {exc.os_error}") from None
        except aiohttp.ClientConnectorDNSError:
            host = urllib.parse.urlsplit(server).hostname
            raise KubeError(
                f"cannot reach the API server at {server}: unknown host {host}"
            ) from None
        except aiohttp.ClientConnectorError as exc:
            code = exc.os_error.errno
            why = os.strerror(code).lower() if code else one_line(str(exc.os_error), MAX_LINE)
            if code == errno_mod.ECONNREFUSED:
                why = "connection refused"
            raise KubeError(f"cannot reach the API server at {server}: {why}") from None
        except aiohttp.ServerDisconnectedError:
            raise KubeError(f"the API server at {server} closed the connection") from None
        except aiohttp.ClientError as exc:
            raise KubeError(f"request to {server} failed: {one_line(str(exc), MAX_LINE)}") from None
        return response

    async def _fail_for_status(self, res: Resource, resp: aiohttp.ClientResponse) -> None:
        """Turn a non-200 answer into the right exception."""
        status = resp.status
        body = b""
        try:
            async with asyncio.timeout(self.settings.kube_request_timeout):
                # read(n) returns what has arrived: loop up to the cap or the end.
                while len(body) < STATUS_CAP:
                    chunk = await resp.content.read(STATUS_CAP - len(body))
                    if not chunk:
                        break
                    body += chunk
        except (TimeoutError, aiohttp.ClientError):
            pass  # the status code alone still says what happened
        finally:
            resp.close()
        message = one_line(status_message(body), MAX_LINE)
        server = self._client.server if self._client else "the API server"
        if status == 410:
            raise _Expired
        if status == 404 and res is self.apps:
            raise _CrdMissing
        if status == 401:
            context = self._context or "the current context"
            raise KubeError(
                f"unauthorized (401): {server} rejected the credentials of context '{context}'"
            )
        if status == 403:
            raise KubeError(f"forbidden (403): {message or 'access denied'}")
        if status == 404:
            raise KubeError(f"not found (404): {message or res.path}")
        raise KubeError(f"API server error ({status}): {message or resp.reason or 'no details'}")

    async def _read_list(self, res: Resource, resp: aiohttp.ClientResponse) -> bytes:
        """The whole list body, refused past LIST_CAP (announced or actually sent)."""
        too_big = BadShape(res.name, f"the list is larger than {LIST_CAP // 2**20} MiB")
        try:
            if resp.content_length is not None and resp.content_length > LIST_CAP:
                raise too_big
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_chunked(1 << 20):
                size += len(chunk)
                if size > LIST_CAP:
                    raise too_big
                chunks.append(chunk)
            return b"".join(chunks)
        except TimeoutError:
            raise KubeError(
                f"the API server stopped sending within {self.settings.kube_request_timeout:g} s"
            ) from None
        except aiohttp.ClientError as exc:
            raise KubeError(f"the list was cut off: {one_line(str(exc), MAX_LINE)}") from None
        finally:
            # close, not release: a refused body must not be drained into the pool.
            resp.close()

    async def _list(self, client: KubeClient, res: Resource) -> None:
        limit = self.settings.kube_request_timeout
        # No total limit: a big list may take a while to arrive, as long as bytes flow.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=limit, sock_read=limit)
        res.lists += 1
        resp = await self._get(client, res.path, [], timeout)
        if resp.status != 200:
            await self._fail_for_status(res, resp)
        body = await self._read_list(res, resp)
        items, rv = parse_list(res.name, body)
        now = self._now()
        pairs = []
        objs = []
        for index, obj in enumerate(items):
            if type(obj) is not dict:
                raise BadShape(res.name, f"items[{index}] is not an object")
            try:
                pairs.append(res.convert(obj, now))
            except ShapeError as exc:
                raise BadShape(res.name, str(exc.within(f"items[{index}]"))) from None
            objs.append(obj)
        # Only a list read whole replaces the rows: a bad one leaves the last good data.
        res.aging.clear()
        res.argo.clear()
        res.summary = None
        if res is self.pods:
            for (key, row), obj in zip(pairs, objs, strict=True):
                res.track(key, row, obj)
        res.rows.replace_all(pairs)
        res.rv = rv
        if res is self.pods:
            await self._check_namespace(client, bool(items))
        self._ok(res, urgent=True)

    async def _check_namespace(self, client: KubeClient, has_pods: bool) -> None:
        """An empty pod list may mean the namespace does not exist (the API server
        lists an unknown namespace as empty): ask for the namespace itself."""
        if has_pods:
            self._namespace_missing = False
            return
        ns = urllib.parse.quote(self.settings.namespace, safe="")
        limit = self.settings.kube_request_timeout
        timeout = aiohttp.ClientTimeout(total=limit)
        resp = await self._get(client, f"/api/v1/namespaces/{ns}", [], timeout)
        resp.close()
        # 403 (no right to read namespaces) proves nothing: assume it exists.
        self._namespace_missing = resp.status == 404

    async def _watch(self, client: KubeClient, res: Resource) -> bool:
        """One watch request from res.rv. Returns True if it ended cleanly (the
        server's timeout); raises on errors. Events update the rows and the RV."""
        watch_timeout = max(1, int(self.settings.kube_watch_timeout))
        limit = self.settings.kube_request_timeout
        query: list[tuple[str, Any]] = [
            ("allowWatchBookmarks", True),
            ("resourceVersion", res.rv),
            ("timeoutSeconds", watch_timeout),
            ("watch", True),
        ]
        # The heartbeat: a healthy server sends an event or a bookmark, or ends the
        # stream, within timeoutSeconds. Silence for longer is a frozen server or a
        # dead connection, which TCP alone would not notice for minutes.
        stall = watch_timeout + self.timing.watch_grace
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=limit)
        resp = await self._get(client, res.path, query, timeout)
        if resp.status != 200:
            await self._fail_for_status(res, resp)
        self._ok(res)
        res.delivered = False
        try:
            while True:
                try:
                    async with asyncio.timeout(stall):
                        line = await resp.content.readline(max_line_length=EVENT_CAP)
                except TimeoutError:
                    raise _Stalled(
                        f"the {res.name} watch on {client.server} stalled: "
                        f"nothing received for {stall:g} s"
                    ) from None
                except aiohttp.http_exceptions.LineTooLong:
                    raise BadShape(
                        res.name, f"a watch event is larger than {EVENT_CAP // 2**20} MiB"
                    ) from None
                except aiohttp.ClientPayloadError:
                    raise _StreamCut(f"the {res.name} watch on {client.server} broke off") from None
                except aiohttp.ClientError as exc:
                    raise _StreamCut(
                        f"the {res.name} watch on {client.server} failed: "
                        f"{one_line(str(exc), MAX_LINE)}"
                    ) from None
                if not line:
                    self._ok(res)
                    return True
                if not line.endswith(b"\n"):
                    # A connection closed mid-event: never apply half an object.
                    raise _StreamCut(f"the {res.name} watch on {client.server} broke off")
                if not line.strip():
                    continue
                self._apply(res, line)
                res.delivered = True
        finally:
            resp.close()

    def _apply(self, res: Resource, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            raise BadShape(res.name, "a watch event is not valid JSON") from None
        if type(event) is not dict:
            raise BadShape(res.name, "a watch event is not an object")
        kind = event.get("type")
        obj = event.get("object")
        if type(kind) is not str:
            raise BadShape(res.name, "a watch event has no type")
        if type(obj) is not dict:
            raise BadShape(res.name, f"{kind} event object is not an object")
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise _Expired
            message = one_line(str(obj.get("message") or obj.get("reason") or code), MAX_LINE)
            raise KubeError(f"the {res.name} watch failed ({code}): {message}")
        try:
            rv = resource_version(obj)
            if kind == "BOOKMARK":
                if rv:
                    res.rv = rv
                    res.health.updated_at = self._now()
                return
            if kind == "DELETED":
                key = _key_of(res, obj)
                res.rows.remove(key)
                if res is self.pods:
                    res.track(key, None, None)
            elif kind in ("ADDED", "MODIFIED"):
                key, row = res.convert(obj, self._now())
                res.rows.upsert(key, row)
                if res is self.pods:
                    res.track(key, row, obj)
                    if self._namespace_missing:
                        # A pod exists, so its namespace does.
                        self._namespace_missing = False
                        res.health.ok = True
                        res.health.error = None
            else:
                return  # a type this client does not know: not a change it can apply
        except ShapeError as exc:
            raise BadShape(res.name, f"{kind} event {exc.within('object')}") from None
        if rv:
            res.rv = rv
        res.health.updated_at = self._now()
        self._changed()
