"""Every benchmark module imports: they are scripts, run by hand (`python -m
benchmarks`), so a name moved under one of them (bench_compare's start_server did)
would otherwise be found only at the next benchmark run."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
MODULES = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "__init__")


def test_the_benchmarks_are_found() -> None:
    assert {"__main__", "bench_compare", "bench_keys", "results"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_benchmark_module_imports(name: str) -> None:
    importlib.import_module(f"benchmarks.{name}")
