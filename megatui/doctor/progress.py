"""The terminal progress display of `megatui doctor` (on stderr, apart from the report)."""

from __future__ import annotations

import shutil
from typing import TextIO

from megatui.doctor.outcome import MARK, CheckResult


class Progress:
    """What doctor is doing while it runs, on stderr.

    On a terminal: one line, rewritten in place and cleared before the report (which
    lists every check), so nothing is shown twice. Elsewhere (CI logs, pipes): a line
    per finished check, and a line whenever the VMs being waited for change phase.
    """

    def __init__(self, out: TextIO, total: int) -> None:
        self.out = out
        self.total = total
        self.done = 0
        self.tty = _isatty(out)
        self._shown = False
        self._last_note = ""
        self._last_key = ""

    def finished(self, result: CheckResult) -> None:
        self.done += 1
        if self.tty:
            self._status(f"{result.name}: {result.status}")
        else:
            self._line(f"{MARK[result.status]} {result.name:<24} {result.reason}")

    def note(self, text: str, key: str | None = None) -> None:
        """A passing state (VMs booting). A terminal shows every new text; a log gets a
        line only when `key` (say, the VMs' phases without their percentages) changes."""
        if self.tty:
            if text != self._last_note:
                self._status(text)
        elif (key if key is not None else text) != self._last_key:
            self._line("  " + text)
        self._last_note = text
        self._last_key = key if key is not None else text

    def clear(self) -> None:
        if self.tty and self._shown:
            self.out.write("\r\033[K")
            self.out.flush()
            self._shown = False

    def _status(self, text: str) -> None:
        width = max(20, shutil.get_terminal_size().columns - 1)
        line = f"[{self.done}/{self.total}] {text}"
        if len(line) > width:
            line = line[: width - 1] + "…"
        self.out.write("\r\033[K" + line)
        self.out.flush()
        self._shown = True

    def _line(self, text: str) -> None:
        print(text, file=self.out, flush=True)


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False
