"""A fake Orchard controller for the lab and the tests (docs/orchard.md)."""

from megatui.lab.orchard.controller import BOOTSTRAP_ADMIN, FakeOrchard
from megatui.lab.orchard.store import ApiError, LabWorker, Timings

__all__ = ["BOOTSTRAP_ADMIN", "ApiError", "FakeOrchard", "LabWorker", "Timings"]
