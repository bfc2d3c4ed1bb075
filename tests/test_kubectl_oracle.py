"""The kubectl-faithfulness check's oracle, independent of the lab: Kubernetes' own
TestPrintPod cases (tests/fixtures/kubectl_oracle, source in SOURCE.txt there), each
a Pod and the row the printer kubectl shows must give for it. Both transcriptions of
printPod in this repo are held to it: megatui's (sources/kube_status.pod_row) and the
lab's server-side printing (lab/kube_api.pod_cells), which test_kubectl_fake then
compares with real kubectl."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from megatui.lab.kube_api import pod_cells
from megatui.sources.kube_status import age, parse_time, pod_row

ORACLE = Path(__file__).parent / "fixtures" / "kubectl_oracle"
DOC: dict[str, Any] = json.loads((ORACLE / "printpod_cases.json").read_text(encoding="utf-8"))
NOW = parse_time(DOC["now"])
CASES = DOC["cases"]


def test_the_oracle_names_its_source_and_its_cases() -> None:
    source = (ORACLE / "SOURCE.txt").read_text(encoding="utf-8")
    assert "1004454c11238190097e92059ade092d8f489128" in source
    assert "pkg/printers/internalversion/printers_test.go" in source
    assert len(CASES) >= 10
    assert {c["row"][2] for c in CASES} >= {"Init:0/1", "NotReady", "SchedulingGated"}


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_megatui_prints_each_pod_as_kubernetes_says(case: dict[str, Any]) -> None:
    assert NOW is not None
    row = pod_row(case["pod"], NOW)
    got = [row.name, row.ready, row.status, row.restarts, age(row.created, NOW)]
    assert got == case["row"], case["what"]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_the_lab_prints_each_pod_as_kubernetes_says(case: dict[str, Any]) -> None:
    assert NOW is not None
    cells = [str(cell) for cell in pod_cells(case["pod"], NOW)[:5]]
    assert cells == case["row"], case["what"]
