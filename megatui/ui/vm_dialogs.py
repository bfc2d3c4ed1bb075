"""Create and delete a VM (a controller's fleet: Orchard).

The create dialog checks what the controller would refuse anyway (an empty name or
image, a name outside Orchard's characters, a number that is not one) before
anything is sent, and says what is wrong in one line. The delete confirmation has
Cancel focused, so a stray enter deletes nothing.
"""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from megatui.backends.base import NewVMSpec
from megatui.sources.orchard_model import name_problem
from megatui.ui import render
from megatui.ui.panels import TextLine
from megatui.ui.render import literal
from megatui.ui.screens import ConfirmScreen

RESTART_POLICIES: tuple[Literal["Never", "OnFailure"], ...] = ("Never", "OnFailure")


def _positive(text: str, what: str) -> tuple[int | None, str | None]:
    text = text.strip()
    if not text:
        return None, None  # the controller's default
    if not text.isdigit() or int(text) <= 0:
        return None, f"{what} must be a whole number above 0, or empty for the default"
    return int(text), None


def parse_spec(
    name: str, image: str, cpu: str, memory: str, restart_policy: str
) -> NewVMSpec | str:
    """The VM to create, or one line saying what is wrong with the form."""
    name = name.strip()
    problem = name_problem(name)
    if problem:
        return problem
    image = image.strip()
    if not image:
        return "the image is empty"
    cpus, problem = _positive(cpu, "CPU")
    if problem:
        return problem
    mib, problem = _positive(memory, "memory (MiB)")
    if problem:
        return problem
    if restart_policy not in RESTART_POLICIES:
        return f"unknown restart policy {restart_policy!r}"
    return NewVMSpec(
        name=name, image=image, cpu=cpus, memory_mib=mib, restart_policy=restart_policy
    )


class CreateVMScreen(ModalScreen[NewVMSpec | None]):
    """Name, image, CPU, memory and restart policy. Dismisses with the spec, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    IMAGE_HINT = "e.g. ghcr.io/cirruslabs/macos-sequoia-base:latest"

    def __init__(self, image: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self._image = image

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="create-vm"):
            yield Static(Text("Create a VM", end=""), classes="dialog-title")
            with Horizontal(classes="form-row"):
                yield Label("Name", classes="form-label")
                yield Input(placeholder="letters, digits, : - _ .", id="vm-name", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("Image", classes="form-label")
                yield Input(self._image, placeholder=self.IMAGE_HINT, id="vm-image", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("CPU", classes="form-label")
                yield Input(placeholder="default", id="vm-cpu", type="integer", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("Memory MiB", classes="form-label")
                yield Input(placeholder="default", id="vm-memory", type="integer", compact=True)
            with Horizontal(classes="form-row"):
                yield Label("Restart", classes="form-label")
                yield Select(
                    [(policy, policy) for policy in RESTART_POLICIES],
                    value="Never",
                    allow_blank=False,
                    id="vm-restart",
                    compact=True,
                )
            yield TextLine(id="create-problem")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Create", id="create", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#vm-name", Input).focus()

    def _value(self, selector: str) -> str:
        return self.query_one(selector, Input).value

    def _show_problem(self, problem: str | None) -> None:
        self.query_one("#create-problem", TextLine).show(
            literal(f"✗ {problem}", render.BAD) if problem else literal("")
        )

    @on(Input.Changed, "#vm-name")
    def _name_changed(self, event: Input.Changed) -> None:
        # At once, as it is typed: the one rule a user cannot guess.
        self._show_problem(name_problem(event.value.strip()) if event.value else None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#create")
    def _create(self) -> None:
        policy = self.query_one("#vm-restart", Select).value
        spec = parse_spec(
            self._value("#vm-name"),
            self._value("#vm-image"),
            self._value("#vm-cpu"),
            self._value("#vm-memory"),
            str(policy),
        )
        if isinstance(spec, str):
            self._show_problem(spec)
            return
        self.dismiss(spec)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDeleteScreen(ConfirmScreen):
    """Delete a VM? Nothing is deleted without the confirm button."""

    def __init__(self, vm_name: str, worker: str | None = None, backend: str = "tart") -> None:
        where = f" on {worker}" if worker else ""
        who = "tart delete" if backend == "tart" else "The controller"
        super().__init__(
            "confirm-delete",
            Text.assemble("Delete VM ", (vm_name, "bold"), f"{where}?", end=""),
            f"{who} stops it and removes it for good: its disk and everything on it "
            "are lost. This cannot be undone.",
            "Delete VM",
        )
        self.vm_name = vm_name
        self.worker = worker
        self.backend = backend
