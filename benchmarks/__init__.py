"""Benchmarks: scripts that measure megatui's budgets as a user feels them (never tests).

Run them from the repository root as modules (`python -m benchmarks.bench_ui`), or all of
them with `python -m benchmarks`, which writes docs/performance.md from their results.
"""
