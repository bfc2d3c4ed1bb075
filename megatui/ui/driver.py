"""The terminal driver: Textual's Linux/macOS driver with a prompt lone escape.

A lone ESC is ambiguous: it may start an escape sequence (an arrow key is `ESC [ A`),
so the input parser waits `ESCDELAY` for a following byte before it calls it the
escape key. Textual 8.2.8's input thread only checks that wait when its
`select(0.1)` returns, so a lone escape reached the app 100 to 200 ms after the key
(measured through a pty: median 148 ms, p95 210 ms; benchmarks/notes/keys.md), twice
the parser's own wait. This driver's input thread sleeps only until the parser's
deadline while a sequence is pending, and `ESCDELAY` defaults to 25 ms (megatui/ui/
__init__.py; ncurses' usual advice, and a user's own `ESCDELAY` wins). Everything
else is Textual's driver.
"""

from __future__ import annotations

import os
import selectors
from codecs import getincrementaldecoder
from collections.abc import Callable

from textual._parser import ParseError, Parser
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.driver import Driver
from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message

#: How long the input thread sleeps when nothing is pending: Textual's own value,
#: which bounds how late it notices `exit_event`.
IDLE_WAIT = 0.1


def select_timeout(parser: Parser[Message]) -> float:
    """How long to wait for input: until the parser's pending deadline, if any."""
    deadline = parser._timeout_time  # Textual private: set by feed(), cleared by tick()
    if deadline is None:
        return IDLE_WAIT
    return min(IDLE_WAIT, max(0.0, deadline - get_time()))


class PromptEscapeDriver(LinuxDriver):
    """LinuxDriver whose input thread wakes at the escape deadline, not 100 ms later."""

    def run_input_thread(self) -> None:
        selector = selectors.SelectSelector()
        selector.register(self.fileno, selectors.EVENT_READ)
        parser = XTermParser(self._debug)
        decode = getincrementaldecoder("utf-8")().decode
        try:
            while not self.exit_event.is_set():
                self._pump(selector, parser, decode, final=False)
            selector.unregister(self.fileno)
            self._pump(selector, parser, decode, final=True)
        finally:
            selector.close()
            try:
                for _event in parser.feed(""):
                    pass
            except (EOFError, ParseError):
                pass

    def _pump(
        self,
        selector: selectors.BaseSelector,
        parser: XTermParser,
        decode: Callable[..., str],
        *,
        final: bool,
    ) -> None:
        """Read what is ready, hand the parsed events on, then let timeouts fire."""
        ready = selector.select(select_timeout(parser) if not final else IDLE_WAIT)
        for index, (_key, mask) in enumerate(ready):
            if not mask & selectors.EVENT_READ:
                continue
            data = decode(os.read(self.fileno, 4096), final=final and index == len(ready) - 1)
            if not data:
                break  # stdin is a pipe that closed
            for event in parser.feed(data):
                self.process_message(event)
        for event in parser.tick():
            self.process_message(event)


def terminal_driver(default: type[Driver]) -> type[Driver]:
    """Our driver where Textual would use its Linux/macOS one; else Textual's choice
    (the web driver of a browser tab, the headless driver of tests)."""
    return PromptEscapeDriver if default is LinuxDriver else default
