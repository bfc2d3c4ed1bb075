"""`megatui doctor`: the platform's test suite in one command.

The checks read the monitor's snapshot after its first round, the one the TUI shows
(same sources, same code path, locally or with --host), so doctor cannot disagree
with the screen; the few things a snapshot does not hold (`tart --version`, whether
the kubeconfig names a usable context) are asked through the same objects the
sources use. Checks declare what they need; independent ones run concurrently, and
a check whose prerequisite did not pass is skipped with the reason instead of
failing noisily. Running VMs are given until --timeout to become ready.

Exit codes: 0 when every check passed or only warned, 1 when any check failed, 2 for
a usage problem (a bad --timeout, a JUnit file that cannot be written; bad config and
a malformed --host are caught by the CLI, with the same code).

The package: `outcome` (what a check answers), `runner` (the dependency-ordered
runner and the Context checks read), `checks/` (the checks, by area), `output` (text,
JSON, JUnit), `progress` (the terminal progress display), `plan` (which checks
a run makes), `command` (the command).
"""

from __future__ import annotations

from megatui.doctor.checks import CHECKS
from megatui.doctor.command import first_round_timeout, run
from megatui.doctor.outcome import CheckResult, Outcome, Status
from megatui.doctor.output import render_text, to_json, to_junit, totals
from megatui.doctor.plan import plan
from megatui.doctor.progress import Progress
from megatui.doctor.runner import Check, Context, run_checks

__all__ = [
    "CHECKS",
    "Check",
    "CheckResult",
    "Context",
    "Outcome",
    "Progress",
    "Status",
    "first_round_timeout",
    "plan",
    "render_text",
    "run",
    "run_checks",
    "to_json",
    "to_junit",
    "totals",
]
