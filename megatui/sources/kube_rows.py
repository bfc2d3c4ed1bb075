"""What the list-and-watch engine keeps per watched collection: its rows sorted by
key (as kubectl lists them), its resourceVersion, its health, and the side indexes
of pod rows (restarts to re-render, Argo CD components for the summary)."""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from megatui.model import ArgoSummary, Pod, StatusKind

JSON = dict[str, Any]

R = TypeVar("R")


class SortedRows(Generic[R]):
    """Rows by key, with a sorted tuple rebuilt cheaply: a change of one row costs a
    bisect and a slot assignment, plus one tuple copy when the state is published."""

    def __init__(self) -> None:
        self._keys: list[str] = []
        self._rows: list[R] = []
        self._tuple: tuple[R, ...] | None = ()

    def __len__(self) -> int:
        return len(self._keys)

    def replace_all(self, pairs: list[tuple[str, R]]) -> None:
        pairs.sort(key=lambda kr: kr[0])
        self._keys = [k for k, _ in pairs]
        self._rows = [r for _, r in pairs]
        self._tuple = None

    def upsert(self, key: str, row: R) -> None:
        i = bisect.bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            self._rows[i] = row
        else:
            self._keys.insert(i, key)
            self._rows.insert(i, row)
        self._tuple = None

    def get(self, key: str) -> R | None:
        i = bisect.bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            return self._rows[i]
        return None

    def remove(self, key: str) -> None:
        i = bisect.bisect_left(self._keys, key)
        if i < len(self._keys) and self._keys[i] == key:
            del self._keys[i]
            del self._rows[i]
            self._tuple = None

    def rows(self) -> tuple[R, ...]:
        if self._tuple is None:
            self._tuple = tuple(self._rows)
        return self._tuple


@dataclass(slots=True)
class Health:
    ok: bool = False
    known: bool = False
    error: str | None = None
    note: str | None = None
    updated_at: float | None = None
    next_retry_at: float | None = None
    kind: StatusKind = StatusKind.OK


class Resource:
    """One watched collection: its path, its rows, its RV and its health."""

    def __init__(self, name: str, path: str, convert: Callable[[JSON, float], tuple[str, Any]]):
        self.name = name
        self.path = path
        self.convert = convert
        self.rows: SortedRows[Any] = SortedRows()
        self.rv: str | None = None
        self.health = Health()
        self.lists = 0  # list requests made (tests and diagnostics)
        self.delivered = False  # the current watch has delivered an event
        # Pods whose RESTARTS reads "N (<age> ago)": kept raw to re-render the age.
        self.aging: dict[str, JSON] = {}
        # Pods of Argo CD components (every name the summary looks at starts with
        # "argocd-"): the summary is recomputed over these few, not all 5,000.
        self.argo: dict[str, Pod] = {}
        self.summary: ArgoSummary | None = None

    def track(self, key: str, row: Any, obj: JSON | None) -> None:
        """Side indexes of a pod row; obj None means the pod is gone."""
        if obj is not None and row.restarts.endswith(" ago)"):
            self.aging[key] = obj
        else:
            self.aging.pop(key, None)
        component = row.component if obj is not None else None
        if component and component.startswith("argocd-"):
            self.argo[key] = row
            self.summary = None
        elif self.argo.pop(key, None) is not None:
            self.summary = None
