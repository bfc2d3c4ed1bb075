"""What the pod, Application and node detail screens share: the object they show,
fetched from the API server, and how they open.

A detail screen opens once its object is in, if that takes at most FIRST_DRAW_WAIT:
drawn before the fetch, the screen was laid out and painted in full three times
(empty, then with the object, then once more as its scroll area found its
height), ~150 ms of frames for one key (docs/performance.md, bench_keys). A
slower API server gets the screen at FIRST_DRAW_WAIT, saying "loading…", and the
same fetch carries on into it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen

from megatui.api import ActionError, MonitorAPI
from megatui.ui.heap import forget_closed_widgets
from megatui.ui.screens import LiveScreen

JSON = dict[str, Any]

#: How long a key waits for the object before the screen opens without it: longer
#: than a local or --host API server takes (20-60 ms here), short enough that a
#: slow one still shows the screen at once to the eye.
FIRST_DRAW_WAIT = 0.15


class ObjectScreen(LiveScreen, ModalScreen[None]):
    """A Kubernetes object's detail. Subclasses compose the screen and `draw` it from
    `obj` (None until fetched), `error` and their own state."""

    KIND: ClassVar[str] = ""
    # Each screen adds `r` (reload) where its footer wants it.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "close"),
        Binding("q", "close", "close", show=False),
    ]

    def __init__(self, monitor: MonitorAPI, namespace: str, name: str) -> None:
        super().__init__()
        self.monitor = monitor
        self.namespace = namespace
        self.obj_name = name
        self.obj: JSON | None = None
        self.error: str | None = None
        self.loaded = False
        #: Its widgets exist (from its on_mount, where `is_mounted` is still False).
        self.drawable = False
        #: A fetch begun before the screen opened (open_detail), taken over by load.
        self._begun: asyncio.Task[None] | None = None

    async def fetch(self) -> None:
        """Read the object into `obj`, or the one line why not into `error`."""
        try:
            self.obj = await self.monitor.kube_object(self.KIND, self.namespace, self.obj_name)
            self.error = None
        except ActionError as exc:
            self.error = str(exc)
        except Exception as exc:  # a core bug or I/O failure: one line, keep the screen
            self.error = f"cannot read the {self.KIND}: {exc}"
        self.loaded = True

    def on_mount(self) -> None:
        self.drawable = True
        self.draw()
        if not self.loaded:
            self.load()

    def on_unmount(self) -> None:
        self.drawable = False
        if self._begun is not None:
            self._begun.cancel()
        forget_closed_widgets()

    @work(group="object-load", exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        begun, self._begun = self._begun, None
        # Cancelling this worker (the screen closed, `r` pressed) cancels the fetch
        # it awaits, the one begun before the screen opened included.
        await (begun if begun is not None and not begun.done() else self.fetch())
        self.draw()

    def draw(self) -> None:
        """Show what is known; a no-op until `drawable`."""
        raise NotImplementedError

    def action_reload(self) -> None:
        self.load()

    def action_close(self) -> None:
        self.dismiss(None)


def open_detail(app: App[Any], screen: ObjectScreen) -> None:
    """Open `screen` once its object is fetched, or after FIRST_DRAW_WAIT with the
    fetch going on. A second open cancels one still waiting."""
    app.run_worker(
        _open_when_loaded(app, screen, FIRST_DRAW_WAIT),
        group="open-detail",
        exclusive=True,
        exit_on_error=False,
    )


async def _open_when_loaded(app: App[Any], screen: ObjectScreen, wait: float) -> None:
    begun = asyncio.get_running_loop().create_task(screen.fetch())
    try:
        await asyncio.wait({begun}, timeout=wait)
    except asyncio.CancelledError:
        begun.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await begun
        raise
    if not begun.done():
        screen._begun = begun
    app.push_screen(screen)
