"""The megatui control room: `MegatuiApp(monitor, settings).run()`.

The app polls nothing itself. It subscribes to the monitor's snapshots and redraws
from them; its only timer ticks once a second to age the "updated N s ago" and
"stale N s" counters and the running phase times, and that tick writes a table cell
only when the text in it changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from textual import events, on, work
from textual.actions import SkipAction
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.driver import Driver
from textual.message import Message
from textual.screen import Screen
from textual.theme import Theme
from textual.timer import Timer
from textual.widgets import Footer

from megatui import actions
from megatui.api import ActionError, MonitorAPI
from megatui.backends.base import NewVMSpec
from megatui.clock import Clock, SystemClock
from megatui.config import Settings, state_dir
from megatui.key_bindings import DEFAULT_KEYS
from megatui.model import BOOT_PHASES, SOURCE_HOST, Phase, Snapshot, TartState
from megatui.ui import drill_keys
from megatui.ui.commands import MegatuiCommands, PaletteCommand
from megatui.ui.driver import terminal_driver
from megatui.ui.footer import StableFooter
from megatui.ui.main_screen import MainScreen
from megatui.ui.panels import (
    ArgoPanel,
    ClusterPanel,
    EventsPanel,
    HeaderBar,
    Panel,
    View,
    VMPanel,
    panel_of,
)
from megatui.ui.paths import stylesheet
from megatui.ui.screens import (
    ConfirmStopScreen,
    DetailScreen,
    HelpScreen,
    LiveScreen,
    SSHCommandScreen,
    WaitScreen,
)
from megatui.ui.themes import canonical, load_theme, save_theme
from megatui.ui.vm_dialogs import ConfirmDeleteScreen, CreateVMScreen

#: The help screen's line for each action; the footer has room for one word only.
ACTION_HELP: dict[str, str] = {
    "start_vm": "start the selected VM (tart run --no-graphics)",
    "stop_vm": "stop the selected VM, after a confirmation",
    "suspend_vm": "suspend the selected VM (Orchard, created suspendable); start resumes it",
    "create_vm": "create a VM: name, image, CPU, memory, restart policy",
    "delete_vm": "delete the selected VM for good, after a confirmation",
    "ssh": "interactive ssh to the selected VM; offers to wait while it boots",
    "copy_ssh": "copy the ssh command to the clipboard (OSC 52, works over SSH)",
    "detail": "the selected VM: phase timeline, tart get, log tail",
    "logs": "the selected pod's logs (d or enter on a pod, app or node: its detail)",
    "filter": "filter the focused panel by name; enter keeps it, escape drops it",
    "refresh": "poll every source now",
    "help": "this help",
    "quit": "quit megatui",
}

#: Keys that are not actions of their own but belong in the help screen.
EXTRA_HELP: tuple[tuple[str, str], ...] = (
    ("tab / shift+tab", "next / previous table"),
    ("1 2 3 4", "focus VMs (and workers), Cluster, ArgoCD, Events"),
    ("↑ ↓ j k", "move the cursor"),
    ("pgup pgdn home end", "a page, the first or the last row"),
    ("← →", "scroll a wide table sideways"),
    ("ctrl+p", "command palette: per-VM commands, theme, keys"),
    ("escape", "close a dialog, or clear the filter"),
)


def is_readonly(settings: Settings, snapshot: Snapshot) -> bool:
    """Asked for, or imposed: the monitor's own read-only, or a reason it gave (a
    controller account without compute:write)."""
    return settings.readonly or snapshot.readonly or snapshot.readonly_reason is not None


class SnapshotArrived(Message):
    """A new snapshot. Only the newest queued one matters, so older ones are dropped."""

    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotArrived)


class MegatuiApp(App[None]):
    TITLE = "megatui"
    #: Called (from a thread) when a hangup cannot be handled cleanly in time.
    hangup_cleanup: Callable[[], None] | None = None
    #: Shown once the screen is up (the demo's logins).
    startup_notice: str | None = None
    COMMANDS = App.COMMANDS | {MegatuiCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (40, "-tall"), (64, "-huge")]

    # The ids are the names of the [keys] table of the config, so a user's keymap
    # applies to them through set_keymap().
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(DEFAULT_KEYS["start"], "start_vm", "start", id="start"),
        Binding(DEFAULT_KEYS["stop"], "stop_vm", "stop", id="stop"),
        Binding(DEFAULT_KEYS["suspend"], "suspend_vm", "suspend", id="suspend", show=False),
        Binding(DEFAULT_KEYS["create"], "create_vm", "create", id="create", show=False),
        Binding(DEFAULT_KEYS["delete"], "delete_vm", "delete", id="delete", show=False),
        Binding(DEFAULT_KEYS["ssh"], "ssh", "ssh", id="ssh"),
        Binding(DEFAULT_KEYS["copy"], "copy_ssh", "copy", id="copy"),
        Binding(DEFAULT_KEYS["detail"], "detail", "info", id="detail"),
        Binding(DEFAULT_KEYS["logs"], "logs", "logs", id="logs", show=False),
        # priority: handled as the key arrives, before the keys typed after it are
        # passed on; otherwise those reach the panel before the filter is open, and
        # are lost when the app is busy (a user typing "/web" fast).
        Binding(
            DEFAULT_KEYS["filter"], "filter", "filter", id="filter", key_display="/", priority=True
        ),
        Binding(DEFAULT_KEYS["refresh"], "refresh", "refresh", id="refresh"),
        Binding(DEFAULT_KEYS["help"], "help", "help", id="help", key_display="?"),
        Binding(DEFAULT_KEYS["quit"], "quit", "quit", id="quit"),
        Binding("1", "focus_panel(1)", "VMs", show=False),
        Binding("2", "focus_panel(2)", "Cluster", show=False),
        Binding("3", "focus_panel(3)", "ArgoCD", show=False),
        Binding("4", "focus_panel(4)", "Events", show=False),
    ]

    def get_driver_class(self) -> type[Driver]:
        return terminal_driver(super().get_driver_class())

    def __init__(
        self,
        monitor: MonitorAPI,
        settings: Settings,
        *,
        clock: Clock | None = None,
        theme_store: Path | None = None,
    ) -> None:
        super().__init__(css_path=[stylesheet()])
        self.monitor = monitor
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.theme_store = theme_store
        self.snapshot: Snapshot = monitor.snapshot
        self._view = View(
            snapshot=self.snapshot,
            events=(),
            now=self.clock.now(),
            retry_in=monitor.retry_in,
            readonly=is_readonly(settings, self.snapshot),
        )
        self._unsubscribe: Callable[[], None] | None = None
        self._saved_theme: str | None = None
        self.age_timer: Timer | None = None
        self._header: HeaderBar | None = None
        self._panels: tuple[Panel, ...] = ()
        self._told_readonly: str | None = None

    # --- layout and lifecycle ------------------------------------------------------

    def get_default_screen(self) -> Screen[None]:
        return MainScreen(id="_default")

    def compose(self) -> ComposeResult:
        yield HeaderBar(id="header")
        with VerticalScroll(id="body", can_focus=False):
            yield VMPanel(id="vms")
            yield ClusterPanel(id="cluster")
            yield ArgoPanel(id="argocd")
            yield EventsPanel(id="events")
        yield StableFooter()

    @property
    def panels(self) -> list[Panel]:
        return list(self._panels)

    @property
    def header(self) -> HeaderBar:
        assert self._header is not None, "the app is not mounted"
        return self._header

    def _drawable(self) -> bool:
        # While the app shuts down its screens go first, and a late tick or snapshot
        # would find no widgets; there is nothing left to draw then.
        return self._header is not None and self._header.is_attached

    @property
    def readonly(self) -> bool:
        return self._view.readonly

    def _install_hangup_handlers(self) -> None:
        """The SSH session that runs megatui may end at any moment (a closed laptop
        lid, a killed client): exit cleanly instead of dying of SIGHUP, so that
        whatever megatui started (the demo's lab) is stopped."""
        try:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGHUP, signal.SIGTERM):
                # Exit as the signal would have: 129 for a hangup, 143 for SIGTERM.
                loop.add_signal_handler(sig, self._hangup, 128 + sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or a platform without signals

    def _hangup(self, code: int = 129) -> None:
        threading.Thread(
            target=_hard_exit_after,
            args=(HANGUP_GRACE, self.hangup_cleanup, code),
            name="megatui-hangup",
            daemon=True,
        ).start()
        self.exit(return_code=code)

    def on_mount(self) -> None:
        self._header = self.query_one(HeaderBar)
        self._panels = (
            self.query_one(VMPanel),
            self.query_one(ClusterPanel),
            self.query_one(ArgoPanel),
            self.query_one(EventsPanel),
        )
        if self.settings.keys:
            # The config loader has checked these: bindable, and no key taken twice.
            self.set_keymap(dict(self.settings.keys))
        self._restore_theme()
        self._unsubscribe = self.monitor.subscribe(self._on_monitor_snapshot)
        self.apply_snapshot(self.monitor.snapshot)
        self.query_one(VMPanel).focus_first()
        if self.startup_notice:
            self.notify(self.startup_notice, title="demo", timeout=20, markup=False)
        self.age_timer = self.set_interval(1.0, self.tick, name="age")
        self._install_hangup_handlers()
        # After the first paint: the sources' first moves import their clients in
        # threads (aiohttp, the docker SDK, asyncssh), which would take the GIL from
        # the first frame (docs/architecture.md "Imports").
        self.call_after_refresh(self._start_monitor)

    @work(group="monitor", exit_on_error=False)
    async def _start_monitor(self) -> None:
        try:
            await self.monitor.start()
        except Exception as exc:  # the sources report their own failures; this is the rest
            self.notify(f"monitor failed to start: {exc}", severity="error", markup=False)

    async def on_unmount(self) -> None:
        unsubscribe = self._unsubscribe
        self._unsubscribe = None
        if unsubscribe is not None:
            unsubscribe()
        try:
            await self.monitor.stop()
        except Exception as exc:  # quitting must not fail because a source hangs up badly
            self.log.error(f"monitor.stop failed: {exc!r}")

    def on_resize(self, event: events.Resize) -> None:
        # The event's size: this runs before App._on_resize updates self.size, so
        # after a 160 → 80 resize self.size still said 160 and the footer, left wide,
        # cut off `q quit`.
        self.query_one(Footer).compact = event.size.width < 120

    # --- snapshots -----------------------------------------------------------------

    def _on_monitor_snapshot(self, snapshot: Snapshot) -> None:
        # Runs on the app's loop (MonitorAPI.subscribe); a message lets a burst of
        # snapshots collapse into the newest one instead of drawing each.
        self.post_message(SnapshotArrived(snapshot))

    @on(SnapshotArrived)
    def _snapshot_arrived(self, message: SnapshotArrived) -> None:
        self.apply_snapshot(message.snapshot)

    def apply_snapshot(self, snapshot: Snapshot) -> None:
        was_readonly = self.readonly
        self.snapshot = snapshot
        self._view = View(
            snapshot=snapshot,
            events=list(self.monitor.events),
            now=self.clock.now(),
            retry_in=self.monitor.retry_in,
            readonly=is_readonly(self.settings, snapshot),
        )
        if not self._drawable():
            return
        with self.batch_update():
            self.header.show_view(self._view)
            for panel in self._panels:
                panel.apply(self._view)
        if self.readonly != was_readonly:
            self.refresh_bindings()
        reason = snapshot.readonly_reason
        if reason and reason != self._told_readonly:
            # Once per reason: a narrow header has no room for it.
            self.notify(f"read-only: {reason}", severity="warning", timeout=10, markup=False)
        self._told_readonly = reason
        for screen in self.screen_stack:
            if isinstance(screen, LiveScreen):
                screen.show_snapshot(snapshot, self._view.now)

    def tick(self) -> None:
        """Once a second: age the counters. Repaints only text that changed."""
        now = self.clock.now()
        self._view = replace(self._view, now=now)
        if not self._drawable():
            return
        with self.batch_update():
            self.header.show_view(self._view)
            for panel in self._panels:
                panel.tick(now)
        for screen in self.screen_stack:
            if isinstance(screen, LiveScreen):
                screen.tick(now)

    # --- bindings ------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # False hides the binding from the footer and makes its key do nothing: what
        # changes the platform (actions.MUTATING) is hidden and refused when read-only.
        return not (actions.is_mutating(action) and self.readonly)

    def key_help(self) -> list[tuple[str, str]]:
        """(keys, description) of the app's own bindings as currently mapped."""
        keys: dict[str, list[str]] = {action: [] for action in ACTION_HELP}
        for active in self.screen.active_bindings.values():
            binding = active.binding
            if active.node is self and binding.action in keys:
                keys[binding.action].append(self.get_key_display(binding))
        rows = [
            (" ".join(keys[action]), what)
            for action, what in ACTION_HELP.items()
            if keys[action] and self.check_action(action, ())
        ]
        if self.readonly:
            reason = self.snapshot.readonly_reason
            what = "start, stop, create and delete are disabled"
            rows.append(("", f"read-only ({reason}): {what}" if reason else f"read-only: {what}"))
        return [*rows, *EXTRA_HELP]

    # --- selection -----------------------------------------------------------------

    @property
    def selected_vm(self) -> str | None:
        return self.query_one(VMPanel).selected

    def _vm_or_warn(self, name: str | None) -> str | None:
        name = name if name is not None else self.selected_vm
        if name is None:
            host = self.snapshot.sources.get(SOURCE_HOST)
            if host is not None and not host.ok:
                # No VM to act on because the host is out of reach: the whole reason
                # and the fix, which the one-line status has no room for.
                text = host.detail or host.error or "the host is not connected"
                self.notify(text, severity="error", timeout=30, markup=False)
                return None
            self.notify("No VM selected", severity="warning")
            return None
        if self.snapshot.vm(name) is None:
            self.notify(f"VM {name} is not in tart list", severity="warning", markup=False)
            return None
        return name

    def _refuse_if_readonly(self, verb: str) -> bool:
        try:
            actions.check_allowed(verb, self.readonly)
        except ActionError as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return True
        return False

    # --- actions: VMs --------------------------------------------------------------

    def _pointless(self, name: str, verb: str) -> bool:
        """Starting a running VM or stopping a stopped one does nothing useful; say so
        instead of calling tart. Only while tart's data is fresh: with a failing source
        the phase may be out of date, and tart itself is the better judge."""
        vm = self.snapshot.vm(name)
        tart = self.snapshot.vm_status()
        if vm is None or (tart is not None and not tart.ok):
            return False
        idle = vm.phase in (Phase.STOPPED, Phase.SUSPENDED)
        if verb == "start" and not idle and vm.phase is not Phase.ERROR:
            self.notify(f"{name} is already {vm.phase}", severity="warning", markup=False)
            return True
        if verb in ("stop", "suspend") and (idle or vm.phase is Phase.STOPPING):
            self.notify(f"{name} is already {vm.phase}", severity="warning", markup=False)
            return True
        return False

    def action_start_vm(self, name: str | None = None) -> None:
        if self._refuse_if_readonly("start"):
            return
        vm = self._vm_or_warn(name)
        if vm is not None and not self._pointless(vm, "start"):
            self._vm_action("start", vm)

    def action_stop_vm(self, name: str | None = None) -> None:
        if self._refuse_if_readonly("stop"):
            return
        vm = self._vm_or_warn(name)
        if vm is None or self._pointless(vm, "stop"):
            return

        def confirmed(yes: bool | None) -> None:
            # Read-only may have switched on while the dialog was open.
            if yes and not self._refuse_if_readonly("stop"):
                self._vm_action("stop", vm)

        self.push_screen(ConfirmStopScreen(vm), confirmed)

    def action_suspend_vm(self, name: str | None = None) -> None:
        if self._refuse_if_readonly("suspend"):
            return
        vm = self._vm_or_warn(name)
        if vm is not None and not self._pointless(vm, "suspend"):
            self._vm_action("suspend", vm)

    def action_create_vm(self) -> None:
        if self._refuse_if_readonly("create"):
            return

        def submitted(spec: NewVMSpec | None) -> None:
            if spec is not None and not self._refuse_if_readonly("create"):
                self._create_vm(spec)

        self.push_screen(CreateVMScreen(), submitted)

    @work(group="vm-create", exit_on_error=False)
    async def _create_vm(self, spec: NewVMSpec) -> None:
        try:
            note = await self.monitor.create_vm(spec)
        except Exception as exc:  # the controller's refusal (409 name taken, 412 rules)
            self._action_failed(f"create {spec.name} failed", exc)
        else:
            self.notify(note or f"create requested for {spec.name}", markup=False)

    def action_delete_vm(self, name: str | None = None) -> None:
        if self._refuse_if_readonly("delete"):
            return
        vm_name = self._vm_or_warn(name)
        vm = self.snapshot.vm(vm_name) if vm_name is not None else None
        if vm_name is None or vm is None:
            return

        def confirmed(yes: bool | None) -> None:
            if yes and not self._refuse_if_readonly("delete"):
                self._vm_action("delete", vm_name)

        self.push_screen(ConfirmDeleteScreen(vm_name, vm.worker, vm.backend), confirmed)

    @work(group="vm-action", exit_on_error=False)
    async def _vm_action(self, verb: str, name: str) -> None:
        try:
            note = await self._call_action(verb, name)
        except Exception as exc:
            self._action_failed(f"{verb} {name} failed", exc)
        else:
            # Starting may have meant more than it says (Orchard re-creates a stopped
            # VM from its spec): the monitor's note says what was done.
            self.notify(note or f"{verb} requested for {name}", markup=False)

    def _action_failed(self, title: str, exc: Exception) -> None:
        """An action the core refused (ActionError: its line verbatim) or that hit a bug
        or an I/O failure in the core (named by its type): said, and the app runs on."""
        text = str(exc) if isinstance(exc, ActionError) else f"{type(exc).__name__}: {exc}"
        self.notify(text, title=title, severity="error", markup=False)

    async def _call_action(self, verb: str, name: str) -> str | None:
        if verb == "start":
            return await self.monitor.start_vm(name)
        if verb == "stop":
            await self.monitor.stop_vm(name)
        elif verb == "suspend":
            await self.monitor.suspend_vm(name)
        else:
            await self.monitor.delete_vm(name)
        return None

    def action_ssh(self, name: str | None = None) -> None:
        if name is None and drill_keys.open_detail(self):
            return
        vm_name = self._vm_or_warn(name)
        if vm_name is None:
            return
        vm = self.snapshot.vm(vm_name)
        assert vm is not None
        if vm.phase is Phase.READY:
            self.connect(vm_name)
        elif vm.phase in BOOT_PHASES:
            self.push_screen(
                WaitScreen(vm_name, self.snapshot, self.clock.now(), connect=True, waiting=False),
                functools.partial(self._connect_when_ready, vm_name),
            )
        else:
            reason = vm.error or f"{vm_name} is {vm.phase}"
            self.notify(f"cannot ssh: {reason}", severity="warning", markup=False)

    def action_wait(self, name: str | None = None) -> None:
        vm_name = self._vm_or_warn(name)
        if vm_name is None:
            return
        vm = self.snapshot.vm(vm_name)
        if vm is not None and vm.phase is Phase.READY:
            self.notify(f"{vm_name} is ready", markup=False)
            return
        self.push_screen(
            WaitScreen(vm_name, self.snapshot, self.clock.now(), connect=False, waiting=True),
            functools.partial(self._tell_ready, vm_name),
        )

    def _connect_when_ready(self, name: str, ready: bool | None) -> None:
        if ready:
            self.connect(name)

    def _tell_ready(self, name: str, ready: bool | None) -> None:
        if ready:
            self.bell()
            self.notify(f"{name} is ready", markup=False)

    def connect(self, name: str) -> None:
        """Hand the terminal to an interactive ssh and take it back afterwards.

        Synchronous on purpose: the event loop is blocked while ssh runs, so nothing
        repaints into a suspended terminal (the deadlock of terok#1186)."""
        try:
            argv = self.monitor.ssh_argv(name)
        except ActionError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        status: int | None = None
        failure: str | None = None
        try:
            with self.suspend():
                # Nothing may escape this block: Textual 8.2.8 does not resume the
                # terminal when it raises (textual#6692) and the app would hang.
                try:
                    status = subprocess.call(argv)
                except KeyboardInterrupt:
                    failure = "ssh interrupted"
                except Exception as exc:
                    failure = f"cannot run {argv[0]}: {exc}"
        except SuspendNotSupported:
            self.push_screen(SSHCommandScreen(name, argv))
            return
        if failure is not None:
            self.notify(failure, severity="error", markup=False)
        elif status:
            self.notify(
                f"ssh to {name} exited with status {status}", severity="warning", markup=False
            )

    def action_copy_ssh(self) -> None:
        name = self._vm_or_warn(None)
        if name is None:
            return
        try:
            argv = self.monitor.ssh_argv(name)
        except ActionError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        command = shlex.join(argv)
        self.copy_to_clipboard(command)
        self.notify(f"copied: {command}", markup=False)

    def action_detail(self) -> None:
        if drill_keys.open_detail(self):
            return
        name = self._vm_or_warn(None)
        if name is not None:
            self.push_screen(DetailScreen(name, self.monitor, self.snapshot, self.clock.now()))

    def action_logs(self) -> None:
        drill_keys.open_logs(self)

    # --- actions: navigation -------------------------------------------------------

    def active_panel(self) -> Panel:
        return panel_of(self.focused) or self.query_one(VMPanel)

    def action_filter(self) -> None:
        panel = self.active_panel()
        if not isinstance(self.screen, MainScreen) or panel.editing_filter:
            # A dialog's or the palette's "/", or one typed into the open filter: text.
            raise SkipAction
        panel.open_filter()

    def action_focus_panel(self, number: int) -> None:
        self.panels[number - 1].focus_first()

    def action_refresh(self) -> None:
        self.monitor.refresh()
        self.notify("refreshing every source", timeout=2)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_help()))

    # --- palette -------------------------------------------------------------------

    def palette_commands(self) -> list[PaletteCommand]:
        """The per-VM commands that make sense in each VM's current phase: no "Start"
        for a running VM, no "Wait" for a ready one. Help texts are markup, so they
        carry no outside text (VM names are in the titles, which are literal)."""
        commands: list[PaletteCommand] = []
        for vm in self.snapshot.vms:
            phase = f"phase: {vm.phase}"
            moving = vm.phase in BOOT_PHASES
            if not self.readonly and vm.phase in (Phase.STOPPED, Phase.SUSPENDED, Phase.ERROR):
                commands.append(
                    PaletteCommand(
                        f"Start VM {vm.name}",
                        f"tart run --no-graphics · {phase}",
                        functools.partial(self.action_start_vm, vm.name),
                    )
                )
            if not self.readonly and (
                vm.state is TartState.RUNNING and vm.phase is not Phase.STOPPING
            ):
                commands.append(
                    PaletteCommand(
                        f"Stop VM {vm.name}",
                        f"tart stop, after a confirmation · {phase}",
                        functools.partial(self.action_stop_vm, vm.name),
                    )
                )
            if moving or vm.phase is Phase.READY:
                commands.append(
                    PaletteCommand(
                        f"SSH to VM {vm.name}",
                        f"interactive ssh{', once it is ready' if moving else ''} · {phase}",
                        functools.partial(self.action_ssh, vm.name),
                    )
                )
            if moving:
                commands.append(
                    PaletteCommand(
                        f"Wait for VM {vm.name}",
                        f"tell me when it is ready · {phase}",
                        functools.partial(self.action_wait, vm.name),
                    )
                )
        return commands

    # --- themes --------------------------------------------------------------------

    def _restore_theme(self) -> None:
        configured = canonical(self.settings.theme) if self.settings.theme else None
        wanted = configured or load_theme(self.theme_store)
        if wanted is not None:
            if wanted in self.available_themes:
                self.theme = wanted
            elif configured is not None:
                self.notify(
                    f"unknown theme {configured!r}; using {self.theme}",
                    severity="warning",
                    markup=False,
                )
        self._saved_theme = self.theme
        self.theme_changed_signal.subscribe(self, self._theme_changed)

    def _theme_changed(self, theme: Theme) -> None:
        if self.theme_store is None or theme.name == self._saved_theme:
            return
        try:
            save_theme(self.theme_store, theme.name)
        except OSError as exc:
            self.notify(f"cannot save the theme: {exc}", severity="warning", markup=False)
            return
        self._saved_theme = theme.name


HANGUP_GRACE = 3.0


def _hard_exit_after(grace: float, cleanup: Callable[[], None] | None, code: int = 129) -> None:
    """Runs in a thread: if the app has not exited `grace` s after a hangup (its
    terminal is gone, and restoring it can block on the dead tty), clean up and go."""
    time.sleep(grace)
    if cleanup is not None:
        with contextlib.suppress(Exception):
            cleanup()
    os._exit(code)


def tune_gc() -> None:
    """Fewer and shorter garbage-collector pauses in a long-running screen.

    With thousands of rows the process holds a few hundred thousand objects, and with
    CPython's default thresholds (a young collection every 700 allocations) scrolling
    and snapshots set off a full collection every few seconds: 0.2 to 0.5 s frozen on
    the project's machine (benchmarks/bench_ui.py). Everything alive now (the imported
    modules, the demo's lab) is moved out of the collector's sight, and young
    collections run every 10,000 allocations. Reference counting still frees all
    garbage that has no cycles, as before."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def run_app(
    monitor: MonitorAPI,
    settings: Settings,
    *,
    clock: Clock | None = None,
    theme_store: Path | None = None,
    on_hangup: Callable[[], None] | None = None,
    notice: str | None = None,
) -> int:
    """Run the control room until the user quits; the process exit code.

    The theme is remembered in the state directory unless `theme_store` says where.
    `on_hangup` runs if the terminal goes away (SIGHUP: the SSH session ended) and
    the app cannot finish cleanly in time, e.g. to stop the demo's lab. `notice` is
    shown once at the start (the demo's logins)."""
    store = theme_store if theme_store is not None else state_dir() / "theme"
    tune_gc()
    app = MegatuiApp(monitor, settings, clock=clock, theme_store=store)
    app.hangup_cleanup = on_hangup
    app.startup_notice = notice
    app.run()
    return app.return_code or 0
