"""The TUI in a browser, through textual-serve."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from textual_serve.server import Server


def serve(command: Sequence[str], *, port: int) -> None:
    """Serve `command` (a megatui invocation) until interrupted. localhost only:
    textual-serve has no authentication, and each connection runs the command with
    every action of the app (textual.md §3.9)."""
    Server(shlex.join(command), host="localhost", port=port).serve()
