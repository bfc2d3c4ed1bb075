"""The snapshot JSON decoder is the exact inverse of the encoder, and checks shapes."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest
from ui_fakes import sample_snapshot

from megatui import report
from megatui.model import ArgoSummary, KubeEvent, Snapshot, Worker
from megatui.snapshot_json import (
    SnapshotFormatError,
    decode,
    decode_kube_event,
    encode,
    encode_kube_event,
)

WORKERS = (
    Worker("mac-mini-1", True, 1_800_000_000.0, False, 2, 2, 8, 8, 16384, 24576),
    Worker("mac-mini-2", False, 1_799_999_000.0, True, 0, 2, 0, 8, 0, 24576, "disk full"),
)


def rich() -> Snapshot:
    snap = sample_snapshot()
    vms = (
        replace(
            snap.vms[0],
            backend="orchard",
            worker="mac-mini-1",
            restart_policy="OnFailure",
            restart_count=3,
            stale=True,
        ),
        *snap.vms[1:],
    )
    return replace(
        snap,
        vms=vms,
        argocd=ArgoSummary(True, 6, 7, ("argocd-dex-server",)),
        kube_context="kind-megalopolis",
        readonly=True,
        workers=WORKERS,
        readonly_reason="the account lacks compute:write",
    )


def test_round_trip_of_a_rich_snapshot() -> None:
    retry = {"docker": 8.0}
    doc = json.loads(json.dumps(encode(rich(), retry.get)))
    snap, got_retry = decode(doc)
    assert encode(snap, got_retry.get) == doc
    assert got_retry == retry
    # Everything but sub-second times survives.
    original = rich()
    assert [vm.name for vm in snap.vms] == [vm.name for vm in original.vms]
    assert [len(vm.history) for vm in snap.vms] == [len(vm.history) for vm in original.vms]
    assert snap.argocd == original.argocd and snap.readonly and snap.docker is not None
    assert {p.component for p in snap.pods} == {p.component for p in original.pods}
    # The Orchard fields: workers, why read-only, each VM's backend and recovery.
    assert snap.workers == WORKERS
    assert snap.readonly_reason == "the account lacks compute:write"
    vm = snap.vms[0]
    assert (vm.backend, vm.worker, vm.restart_policy, vm.restart_count, vm.stale) == (
        "orchard",
        "mac-mini-1",
        "OnFailure",
        3,
        True,
    )
    assert snap.vms[1].backend == "tart" and not snap.vms[1].stale


def test_the_vm_source_round_trips_and_defaults_to_tart() -> None:
    orchard = replace(rich(), vm_source="orchard")
    doc = json.loads(json.dumps(encode(orchard)))
    assert doc["vm_source"] == "orchard"
    assert decode(doc)[0].vm_source == "orchard"
    # A document from before the key: its VMs were listed by tart.
    del doc["vm_source"]
    assert decode(doc)[0].vm_source == "tart"


def test_kube_events_round_trip_and_are_shape_checked() -> None:
    ev = KubeEvent(
        "argocd", "repo.1", "Warning", "BackOff", "Back-off restarting failed container",
        "Pod", "repo", "uid-1", "spec.containers{repo}", 2, 1_800_000_000.0, None, "kubelet",
    )  # fmt: skip
    doc = json.loads(json.dumps(encode_kube_event(ev)))
    assert decode_kube_event(doc) == ev
    doc["count"] = "2"
    with pytest.raises(SnapshotFormatError, match=r"event.count: expected int"):
        decode_kube_event(doc)


def test_the_document_extends_status_json_without_changing_it() -> None:
    snap = rich()
    status = report.snapshot_json(snap)
    doc = encode(snap)

    def contains(big: Any, small: Any) -> bool:
        if isinstance(small, dict):
            return all(k in big and contains(big[k], v) for k, v in small.items())
        if isinstance(small, list):
            return len(big) == len(small) and all(
                contains(b, s) for b, s in zip(big, small, strict=True)
            )
        return bool(big == small)

    assert contains(doc, status)


def test_a_status_json_document_decodes_too() -> None:
    doc = report.snapshot_json(rich())
    snap, _ = decode(json.loads(json.dumps(doc)))
    assert report.snapshot_json(snap) == doc


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("vms", 0, "phase"), "flying", "vms[0].phase: unknown value 'flying'"),
        (("vms", 0, "progress"), "half", "vms[0].progress: expected float"),
        (("vms", 0, "progress"), True, "vms[0].progress: expected float"),
        (("vms", 0, "phase_since"), "yesterday", "vms[0].phase_since: not an ISO 8601 UTC time"),
        (("pods", 1, "ready"), 1, "pods[1].ready: expected str"),
        (("sources", "docker", "ok"), "yes", "sources.docker.ok: expected bool"),
        (("docker", "clusters"), {}, "docker.clusters: expected list"),
        (("argocd", "missing"), [1], "argocd.missing: expected a list of strings"),
        (("vms",), [3], "vms[0]: expected an object"),
        (("host",), None, "host: expected str"),
        (("workers", 1, "online"), "no", "workers[1].online: expected bool"),
        (("workers", 0, "vms_running"), 2.5, "workers[0].vms_running: expected int"),
    ],
)
def test_bad_shapes_are_one_line_naming_the_field(
    path: tuple[Any, ...], value: object, message: str
) -> None:
    doc = copy.deepcopy(encode(rich()))
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SnapshotFormatError) as caught:
        decode(doc)
    assert str(caught.value) == message


@pytest.mark.parametrize("doc", [None, [], "snapshot", {"host": "x"}])
def test_not_a_snapshot_at_all(doc: object) -> None:
    with pytest.raises(SnapshotFormatError):
        decode(doc)
