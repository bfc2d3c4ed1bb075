"""The terminal driver: a lone escape reaches the app at the parser's deadline
(megatui/ui/driver.py), and ESCDELAY defaults to 25 ms unless the user set it."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from textual import events
from textual._time import get_time
from textual._xterm_parser import XTermParser
from textual.drivers.linux_driver import LinuxDriver

from megatui.ui.driver import IDLE_WAIT, PromptEscapeDriver, select_timeout, terminal_driver


def test_nothing_pending_waits_as_long_as_textual_does() -> None:
    assert select_timeout(XTermParser()) == IDLE_WAIT


def test_a_lone_escape_wakes_the_thread_at_the_parsers_deadline() -> None:
    parser = XTermParser()
    assert list(parser.feed("\x1b")) == []  # it may be the start of a sequence
    wait = select_timeout(parser)
    assert 0.0 < wait < IDLE_WAIT  # Textual's thread would sleep the whole 0.1 s
    deadline = get_time() + wait
    while get_time() < deadline:
        pass  # spin to the deadline: tick() compares against the same clock
    keys = [e for e in parser.tick() if isinstance(e, events.Key)]
    assert [k.key for k in keys] == ["escape"]
    assert select_timeout(parser) == IDLE_WAIT


def test_a_past_deadline_does_not_wait_at_all() -> None:
    parser = XTermParser()
    list(parser.feed("\x1b"))
    parser._timeout_time = get_time() - 1.0  # the private field select_timeout reads
    assert select_timeout(parser) == 0.0


def test_our_driver_replaces_only_textuals_terminal_driver() -> None:
    assert terminal_driver(LinuxDriver) is PromptEscapeDriver
    from textual.drivers.headless_driver import HeadlessDriver

    assert terminal_driver(HeadlessDriver) is HeadlessDriver


@pytest.mark.parametrize(("environ", "expected"), [(None, 0.025), ("80", 0.08)])
def test_escdelay_defaults_to_25_ms_and_the_users_own_wins(
    environ: str | None, expected: float
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ESCDELAY"}
    if environ is not None:
        env["ESCDELAY"] = environ
    code = "import megatui.ui.app, textual.constants as c; print(c.ESCAPE_DELAY)"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == expected
