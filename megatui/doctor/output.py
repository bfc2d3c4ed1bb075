"""The doctor report: text for people, JSON for scripts, JUnit XML for CI."""

from __future__ import annotations

import platform
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from megatui import __version__, report
from megatui.doctor.outcome import MARK, CheckResult, Status


def totals(results: Sequence[CheckResult]) -> dict[str, int]:
    return {s.value: sum(1 for r in results if r.status is s) for s in Status}


def to_json(
    results: Sequence[CheckResult], started: float, duration: float, host: str = "local"
) -> dict[str, object]:
    return {
        "timestamp": report.iso(started),
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
            "python": platform.python_version(),
            "megatui": __version__,
            "host": host,
        },
        "totals": totals(results),
        "duration": round(duration, 3),
        "checks": [
            {
                "name": r.name,
                "status": r.status.value,
                "reason": r.reason,
                "hint": r.hint,
                "duration": round(r.duration, 3),
            }
            for r in results
        ],
    }


def to_junit(results: Sequence[CheckResult], duration: float, started: float | None = None) -> str:
    count = totals(results)
    suite = ET.Element(
        "testsuite",
        name="megatui doctor",
        tests=str(len(results)),
        failures=str(count["fail"]),
        errors="0",
        skipped=str(count["skipped"]),
        time=f"{duration:.3f}",
    )
    if started is not None:
        stamp = report.iso(started)
        assert stamp is not None
        suite.set("timestamp", stamp.removesuffix("Z"))
    for r in results:
        group, _, name = r.name.partition(".")
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"megatui.doctor.{group}",
            name=name,
            time=f"{r.duration:.3f}",
        )
        if r.status is Status.FAIL:
            failure = ET.SubElement(case, "failure", message=r.reason, type="fail")
            failure.text = r.reason + (f"\nhint: {r.hint}" if r.hint else "")
        elif r.status is Status.SKIPPED:
            ET.SubElement(case, "skipped", message=r.reason)
        elif r.status is Status.WARN:
            out = ET.SubElement(case, "system-out")
            out.text = f"warning: {r.reason}" + (f"\nhint: {r.hint}" if r.hint else "")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, "unicode") + "\n"


def render_text(results: Sequence[CheckResult], duration: float) -> str:
    """Every check in a fixed order, grouped, with hints under failures and warnings."""
    count = totals(results)
    width = max((len(r.name) for r in results), default=0)
    lines: list[str] = []
    group = None
    for r in results:
        this_group = r.name.partition(".")[0]
        if group is not None and this_group != group:
            lines.append("")
        group = this_group
        lines.append(f"{MARK[r.status]} {r.name:<{width}}  {r.reason}")
        if r.hint and r.status in (Status.FAIL, Status.WARN):
            lines.append(f"  {'':<{width}}  hint: {r.hint}")
    summary = (
        f"{count['pass']} passed, {count['warn']} warned, {count['fail']} failed, "
        f"{count['skipped']} skipped in {duration:.1f} s"
    )
    return "\n".join([*lines, "", summary])
