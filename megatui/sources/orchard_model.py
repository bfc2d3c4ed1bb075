"""Typed views of the Orchard controller's objects, built only after their shape is
checked (docs/facts/orchard.md §3). Anything else is `OrchardBadResponse` with one line
naming the object and the field that was wrong.

The checks are on types, not on values: a controller newer than the one documented
may add statuses or keys, and those pass through (`raw` keeps the whole object, so a
PUT can send back what it got).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: Go's zero time.Time: "never".
ZERO_TIME = "0001-01-01T00:00:00Z"
#: The worker resource that counts macOS VMs (2 per Mac: Apple's licence limit).
TART_VMS = "org.cirruslabs.tart-vms"
LOGICAL_CORES = "org.cirruslabs.logical-cores"
MEMORY_MIB = "org.cirruslabs.memory-mib"
#: `--worker-offline-timeout` default: a worker unseen for longer is offline.
WORKER_OFFLINE_AFTER = 180.0

WatchType = Literal["ADDED", "MODIFIED", "DELETED"]

#: Orchard's name rule (simplename.Validate, orchard.md §6): the set `[A-Za-z0-9:-_.]`
#: taken as the literal characters it lists, not as a regex range (`:-_` would
#: also let `;`, `@`, `[` ... through).
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:-_.")


def restricted_chars(name: str) -> list[str]:
    """The characters of `name` the controller refuses, sorted, each once."""
    return sorted({ch for ch in name if ch not in NAME_CHARS})


def name_problem(name: str) -> str | None:
    """Why the controller would refuse `name` (412), in one line for the user, or None."""
    if not name:
        return "the name is empty"
    bad = restricted_chars(name)
    if bad:
        shown = " ".join(repr(ch) for ch in bad[:5])
        return f"the name may only use letters, digits and : - _ . (not {shown})"
    return None


class OrchardError(Exception):
    """Every client failure: `str()` is one line fit for the user."""


class OrchardBadResponse(OrchardError):
    """The controller's answer is not what Orchard sends (HTML, garbage, a cut line)."""


class _Shape:
    """Typed reads from one untrusted JSON object, naming it in every complaint."""

    def __init__(self, what: str, obj: object) -> None:
        if not isinstance(obj, dict):
            raise OrchardBadResponse(f"{what} is {_kind(obj)}, expected a JSON object")
        self.what = what
        self.obj: dict[str, Any] = obj

    def _bad(self, key: str, expected: str) -> OrchardBadResponse:
        got = _kind(self.obj[key])
        return OrchardBadResponse(f"{self.what}: field '{key}' is {got}, expected {expected}")

    def named(self, label: str) -> str:
        """The object's `name`, which every Orchard object must have; from here on the
        complaints name the object (`label 'name'`)."""
        name = self.text("name")
        if not name:
            raise OrchardBadResponse(f"{self.what}: field 'name' is missing")
        self.what = f"{label} '{name}'"
        return name

    def text(self, key: str) -> str:
        value = self.obj.get(key, "")
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        return value

    def uint(self, key: str) -> int:
        value = self.obj.get(key, 0)
        # JSON numbers may come as 4.0 from other encoders; Go never sends those.
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self._bad(key, "a non-negative integer")
        if value != int(value):
            raise self._bad(key, "a non-negative integer")
        return int(value)

    def flag(self, key: str) -> bool:
        value = self.obj.get(key, False)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def time(self, key: str) -> float | None:
        """Epoch seconds; None for Go's zero time or a missing key."""
        text = self.text(key)
        if not text or text == ZERO_TIME:
            return None
        try:
            return parse_go_time(text)
        except ValueError:
            raise self._bad(key, "an RFC 3339 time") from None

    def counts(self, key: str) -> dict[str, int]:
        value = self.obj.get(key) or {}
        if not isinstance(value, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value.values()
        ):
            raise self._bad(key, "a map of names to integers")
        return {str(k): int(v) for k, v in value.items()}

    def labels(self, key: str) -> dict[str, str]:
        value = self.obj.get(key) or {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._bad(key, "a map of names to strings")
        return {str(k): v for k, v in value.items()}

    def items(self, key: str) -> list[Any]:
        value = self.obj.get(key) or []
        if not isinstance(value, list):
            raise self._bad(key, "a list")
        return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def parse_go_time(text: str) -> float:
    """RFC 3339 with up to nanoseconds and any offset (Go's RFC3339Nano)."""
    main, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        fraction, zone = rest[:digits], rest[digits:]
        text = f"{main}.{fraction[:6].ljust(6, '0')}{zone}"
    stamp = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        raise ValueError(text)
    return stamp.timestamp()


@dataclass(frozen=True)
class Condition:
    type: str
    state: bool


@dataclass(frozen=True)
class OrchardVM:
    """A VM resource as the controller last reported it."""

    name: str
    uid: str
    image: str
    #: pending | running | failed (Orchard's `running` means `tart run` started).
    status: str
    status_message: str
    #: The assigned worker, "" while unscheduled.
    worker: str
    power_state: str
    restart_policy: str
    restart_count: int
    cpu: int
    memory: int
    assigned_cpu: int
    assigned_memory: int
    resources: Mapping[str, int]
    labels: Mapping[str, str]
    conditions: tuple[Condition, ...]
    local_name: str
    image_pull_policy: str
    os: str
    suspendable: bool
    generation: int
    observed_generation: int
    version: int
    created_at: float | None
    scheduled_at: float | None
    started_at: float | None
    restarted_at: float | None
    username: str
    password: str = field(repr=False)
    #: The whole object as received, for a GET-modify-PUT round trip.
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    def condition(self, kind: str) -> bool | None:
        for cond in self.conditions:
            if cond.type == kind:
                return cond.state
        return None

    @property
    def first_message_line(self) -> str:
        return self.status_message.splitlines()[0] if self.status_message else ""


@dataclass(frozen=True)
class OrchardWorker:
    name: str
    last_seen: float | None
    machine_id: str
    scheduling_paused: bool
    resources: Mapping[str, int]
    labels: Mapping[str, str]
    default_cpu: int
    default_memory: int
    created_at: float | None

    def online(self, now: float, offline_after: float = WORKER_OFFLINE_AFTER) -> bool:
        """The controller's rule: offline once unseen for more than the timeout."""
        return self.last_seen is not None and now - self.last_seen <= offline_after

    @property
    def tart_vm_capacity(self) -> int:
        return self.resources.get(TART_VMS, 0)


@dataclass(frozen=True)
class ControllerInfo:
    version: str
    commit: str
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class WatchEvent:
    type: WatchType
    #: None for DELETED: Orchard sends a zero-value object then.
    vm: OrchardVM | None


def parse_vm(obj: object, what: str = "VM object") -> OrchardVM:
    s = _Shape(what, obj)
    name = s.named("VM")
    conditions = []
    for item in s.items("conditions"):
        c = _Shape(f"VM '{name}' condition", item)
        conditions.append(Condition(c.text("type"), c.text("state") == "true"))
    return OrchardVM(
        name=name,
        uid=s.text("uid"),
        image=s.text("image"),
        status=s.text("status"),
        status_message=s.text("status_message"),
        worker=s.text("worker"),
        power_state=s.text("powerState") or "running",
        restart_policy=s.text("restart_policy") or "Never",
        restart_count=s.uint("restart_count"),
        cpu=s.uint("cpu"),
        memory=s.uint("memory"),
        assigned_cpu=s.uint("assignedCPU"),
        assigned_memory=s.uint("assignedMemory"),
        resources=s.counts("resources"),
        labels=s.labels("labels"),
        conditions=tuple(conditions),
        local_name=s.text("localName") or s.text("tartName"),
        image_pull_policy=s.text("imagePullPolicy"),
        os=s.text("os"),
        suspendable=s.flag("suspendable"),
        generation=s.uint("generation"),
        observed_generation=s.uint("observedGeneration"),
        version=s.uint("version"),
        created_at=s.time("createdAt"),
        scheduled_at=s.time("scheduled_at"),
        started_at=s.time("started_at"),
        restarted_at=s.time("restarted_at"),
        username=s.text("username"),
        password=s.text("password"),
        raw=dict(s.obj),
    )


def parse_worker(obj: object) -> OrchardWorker:
    s = _Shape("worker object", obj)
    name = s.named("worker")
    # (Read field by field like parse_vm's VM: alike in shape, other fields.)
    return OrchardWorker(
        name=name,
        last_seen=s.time("last_seen"),
        machine_id=s.text("machine_id"),
        scheduling_paused=s.flag("scheduling_paused"),
        resources=s.counts("resources"),
        labels=s.labels("labels"),
        default_cpu=s.uint("defaultCPU"),
        default_memory=s.uint("defaultMemory"),
        created_at=s.time("createdAt"),
    )


def parse_info(obj: object) -> ControllerInfo:
    s = _Shape("controller info", obj)
    caps = s.items("capabilities")
    if not all(isinstance(c, str) for c in caps):
        raise OrchardBadResponse("controller info: 'capabilities' holds a non-string")
    return ControllerInfo(s.text("version"), s.text("commit"), tuple(caps))


def parse_event(obj: object) -> WatchEvent:
    s = _Shape("watch event", obj)
    kind = s.text("type")
    if kind == "DELETED":
        return WatchEvent("DELETED", None)
    if kind not in ("ADDED", "MODIFIED"):
        raise OrchardBadResponse(f"watch event: unknown type '{kind}'")
    return WatchEvent("ADDED" if kind == "ADDED" else "MODIFIED", parse_vm(s.obj.get("object")))


def parse_list(obj: object, what: str) -> list[Any]:
    if not isinstance(obj, list):
        raise OrchardBadResponse(f"{what} is {_kind(obj)}, expected a JSON list")
    return obj
