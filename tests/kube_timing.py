"""Shrunk pacing for the Kubernetes sources, handed to them as the [kube] settings a
config file would set (the sources take their pacing from Settings only)."""

from __future__ import annotations

import dataclasses
from typing import Any

from megatui.config import KubeTiming, Settings


def pacing(timing: KubeTiming) -> dict[str, float]:
    """The Settings fields (`kube_` + the [kube] key) that carry `timing`."""
    return {f"kube_{f.name}": getattr(timing, f.name) for f in dataclasses.fields(timing)}


def timed_settings(timing: KubeTiming, **values: Any) -> Settings:
    """Settings with `values` and the [kube] pacing of `timing`."""
    return Settings(**pacing(timing), **values)
