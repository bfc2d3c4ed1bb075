"""The face the monitor shows to its consumers (the TUI, status, wait and doctor).

Kept apart from monitor.py so that a consumer can be tested against a fake that
satisfies this protocol, without starting any source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from megatui.backends.base import NewVMSpec
from megatui.model import Event, KubeEvent, Snapshot
from megatui.sources.kube_logs import LogBuffer, LogLine


class ActionError(Exception):
    """A user action that cannot be done; the message is one line for the user.

    `status` is the HTTP status of the refusal behind it when there is one (the
    Kubernetes API's 400/403/404...), so that a server can pass it on."""

    def __init__(self, message: str = "", *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# Each method's signature stands again in Monitor (monitor.py) and RemoteMonitor
# (serve/client.py), and follow_pod_logs's also in the functions they hand it on to
# (drill.Drill.follow_logs, sources/kube_logs.follow, serve/remote_logs.follow): a
# Protocol's implementations must spell it out, so the duplicates scan lists them on
# purpose. The docstrings here are the reference; the implementations do not restate them.
class MonitorAPI(Protocol):
    @property
    def snapshot(self) -> Snapshot:
        """The newest snapshot. Never None: before the first poll it is empty."""
        ...

    @property
    def events(self) -> Sequence[Event]:
        """The recent timeline, oldest first (bounded)."""
        ...

    def subscribe(self, callback: Callable[[Snapshot], None]) -> Callable[[], None]:
        """Call `callback` on the event loop after every change; returns an unsubscribe."""
        ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def refresh(self) -> None:
        """Poll every source now instead of at its next tick."""
        ...

    def retry_in(self, source: str) -> float | None:
        """Seconds until a failing source's next attempt, or None."""
        ...

    async def start_vm(self, name: str) -> str | None:
        """`tart run --no-graphics NAME`, detached (Orchard: power it on). Returns a
        note for the user when starting meant more than that (Orchard re-creates a
        stopped VM from its spec), else None. Raises ActionError."""
        ...

    async def stop_vm(self, name: str) -> None:
        """`tart stop NAME`. Raises ActionError."""
        ...

    async def suspend_vm(self, name: str) -> None:
        """Orchard: powerState suspended. Tart refuses it (a VM not run
        --suspendable would be powered off). Raises ActionError with the refusal."""
        ...

    async def create_vm(self, spec: NewVMSpec) -> str | None:
        """Create a VM (a controller backend). Returns a note for the user, or None.
        Raises ActionError with the backend's refusal in one line."""
        ...

    async def delete_vm(self, name: str) -> None:
        """Delete the VM for good. Raises ActionError."""
        ...

    def ssh_argv(self, name: str) -> list[str]:
        """The argv of an interactive `ssh` to the VM (with -J for a remote host).
        Raises ActionError when the VM has no address."""
        ...

    def log_path(self, name: str) -> str:
        """Where the VM's `tart run` output goes."""
        ...

    async def vm_details(self, name: str) -> dict[str, object]:
        """`tart get NAME` as a dict. Raises ActionError."""
        ...

    async def read_log_tail(self, name: str, lines: int = 50) -> list[str]:
        """The last lines of the VM's log ([] when there is none)."""
        ...

    # --- drill-down (issue #12) ---------------------------------------------------------

    def pod_events(self, namespace: str, name: str, uid: str = "") -> list[KubeEvent]:
        """The pod's events, newest first, from the namespace's events watch."""
        ...

    def events_problem(self) -> str | None:
        """The events watch's one-line error (e.g. RBAC forbids events), or None."""
        ...

    async def kube_object(self, kind: str, namespace: str, name: str) -> dict[str, Any]:
        """GET a "pod", "node" or "application". Raises ActionError (one line)."""
        ...

    async def follow_pod_logs(
        self,
        namespace: str,
        pod: str,
        container: str,
        buffer: LogBuffer,
        on_lines: Callable[[list[LogLine]], None],
        *,
        previous: bool = False,
    ) -> None:
        """Tail 500 lines then follow (or read the previous run) into `buffer`,
        calling `on_lines` with each batch. Raises ActionError with the API's line."""
        ...
