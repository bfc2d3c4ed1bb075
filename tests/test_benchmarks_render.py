"""docs/performance.md is rendered from benchmark results only (benchmarks/render.py)."""

from __future__ import annotations

from pathlib import Path

from benchmarks import render, results
from benchmarks.results import Result, Row


def sample_result() -> Result:
    result = Result(bench="demo", title="Demo bench", command="python -m benchmarks.bench_demo")
    result.add(
        Row.from_samples(
            "keys",
            "down -> repaint",
            "ms",
            "posted Key event",
            [10.0, 20.0, 70.0],
            budget=50,
            judged="p95",
        )
    )
    result.add(
        Row.from_samples(
            "keys", "shell loop", "s", "exec -> exit", [3.0, 4.0], alternative="sleep 5", ratio=8.5
        )
    )
    result.add(Row("idle", "CPU", "%", "process CPU", value=0.5, budget=2, judged="value"))
    result.notes.append("a note from the run")
    return result


def test_results_round_trip_and_verdicts(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    sample_result().write(path)
    back = results.read(path)
    assert back.command == "python -m benchmarks.bench_demo"
    assert [r.met for r in back.rows] == [False, None, True]
    assert back.rows[1].ratio == 8.5
    assert back.load_end is not None and back.finished


def test_page_shows_budgets_verdicts_ratio_and_notes(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    (tmp_path / "notes").mkdir()
    sample_result().write(tmp_path / "results" / "demo.json")
    (tmp_path / "notes" / "demo.md").write_text("History: tried X, measured Y.\n")
    (tmp_path / "notes" / "other.md").write_text("Earlier figures of a bench without JSON.\n")
    page = render.render(tmp_path / "results", tmp_path / "notes")
    assert "`python -m benchmarks.bench_demo`" in page
    row = "| down -> repaint | posted Key event | ≤ 50.0 ms (p95) | median 20.0 ms, p95 70.0 ms"
    assert row in page
    assert "**MISSED**" in page
    assert f"| sleep 5 | 8.5{render.TIMES}" in page
    assert "* a note from the run" in page
    assert page.index("History: tried X") > page.index("| CPU |")
    assert "No results file (`benchmarks/results/other.json`)" in page
    assert "Earlier figures of a bench without JSON." in page


def test_readme_block_is_rewritten_between_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{render.BEGIN}\nstale\n{render.END}\noutro\n")
    result = Result(bench="kube", title="k", command="c")
    result.add(
        Row.from_samples(
            "s", "one pod change -> state", "ms", "c", [5.0, 6.0], budget=50, judged="p95"
        )
    )
    assert render.write_readme({"kube": result}, readme)
    text = readme.read_text()
    assert "stale" not in text
    assert "megatui's state: median 5.5 ms" in text and "met" in text
    assert text.startswith("intro\n") and text.endswith("outro\n")
