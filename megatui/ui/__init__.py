"""The Textual control room. The only package of megatui that imports Textual's
packages (textual, and textual-serve for the browser tabs of `megatui serve`).

Nothing is imported here: `megatui serve` imports `ui.browser_tabs` alone, without
loading the Textual app into the server process."""

import os

# Textual reads ESCDELAY once, when it is first imported, as the time a lone ESC waits
# for the rest of an escape sequence before it is the escape key (100 ms by default).
# 25 ms is ncurses' usual advice: a sequence's bytes arrive in one read, even over SSH.
# A user's own ESCDELAY wins. See ui/driver.py for the other half of a prompt escape.
os.environ.setdefault("ESCDELAY", "25")
