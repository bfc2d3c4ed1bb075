"""Routes of the lab's API server that live outside `kube_api`: events.k8s.io/v1
(kube_events) and pods/log (kube_logs). `FakeKubeAPI` asks `dispatch` first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from megatui.lab.kube_api import JSON
from megatui.lab.kube_events import EVENTS_GROUP, EVENTS_GROUP_VERSION, serve_events_v1
from megatui.lab.kube_logs import LogBook, serve_pod_log

if TYPE_CHECKING:
    from megatui.lab.kube_api import FakeKubeAPI


class Extensions:
    def __init__(self, api: FakeKubeAPI) -> None:
        self._api = api
        self.logs = LogBook(api._clock)

    def groups(self) -> list[JSON]:
        """API groups for `/apis` besides argoproj.io."""
        gv = EVENTS_GROUP_VERSION
        return [{"name": EVENTS_GROUP, "versions": [gv], "preferredVersion": gv}]

    async def dispatch(self, request: web.Request, path: str) -> web.StreamResponse | None:
        if path.startswith("/apis/events.k8s.io"):
            return await serve_events_v1(self._api, request, path)
        if path.endswith("/log") and request.method == "GET":
            return await serve_pod_log(self._api, self.logs, request, path)
        return None
