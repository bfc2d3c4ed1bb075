"""Go `encoding/json` output as the Orchard controller writes it (docs/facts/orchard.md §1.2, §3).

The controller marshals Go structs: keys come in struct-field order (embedded structs
flattened in place), `omitempty` drops empty strings, zero numbers, false, nil and
empty maps and slices but never a `time.Time`, so unset times read
`"0001-01-01T00:00:00Z"`. Output is compact, and `<`, `>`, `&`, U+2028 and U+2029
are escaped as `\\u003c` and friends, as Go's HTML-safe encoder does.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any, Literal

#: How a field is encoded: omitempty, a time (always present), or always present.
Kind = Literal["omit", "time", "always"]

ZERO_TIME = "0001-01-01T00:00:00Z"

#: The VM object's keys in Go field order (pkg/resource/v1/v1.go: VM with VMSpec,
#: VMSpecReadOnly and VMState embedded after `nested`, Meta last).
VM_FIELDS: tuple[tuple[str, Kind], ...] = (
    ("image", "omit"),
    ("imagePullPolicy", "omit"),
    ("cpu", "omit"),
    ("memory", "omit"),
    ("diskSize", "omit"),
    ("net-bridged", "omit"),
    ("headless", "omit"),
    ("nested", "omit"),
    ("os", "omit"),
    ("arch", "omit"),
    ("runtime", "omit"),
    ("net-softnet", "omit"),
    ("netSoftnet", "omit"),
    ("netSoftnetAllow", "omit"),
    ("netSoftnetBlock", "omit"),
    ("suspendable", "omit"),
    ("powerState", "omit"),
    ("localName", "omit"),
    ("tartName", "omit"),
    ("observedGeneration", "always"),
    ("conditions", "omit"),
    ("status", "omit"),
    ("status_message", "omit"),
    ("worker", "omit"),
    ("assignedCPU", "omit"),
    ("assignedMemory", "omit"),
    ("username", "omit"),
    ("password", "omit"),
    ("startup_script", "omit"),
    ("restart_policy", "omit"),
    ("restarted_at", "time"),
    ("restart_count", "omit"),
    ("randomSerial", "omit"),
    ("uid", "omit"),
    ("resources", "omit"),
    ("labels", "omit"),
    ("hostDirs", "omit"),
    ("image_fqn", "omit"),
    ("scheduled_at", "time"),
    ("started_at", "time"),
    ("generation", "always"),
    ("name", "omit"),
    ("createdAt", "time"),
    ("version", "omit"),
)

#: The Worker object's keys in Go field order (pkg/resource/v1/worker.go).
WORKER_FIELDS: tuple[tuple[str, Kind], ...] = (
    ("last_seen", "time"),
    ("machine_id", "omit"),
    ("scheduling_paused", "omit"),
    ("resources", "omit"),
    ("labels", "omit"),
    ("defaultCPU", "omit"),
    ("defaultMemory", "omit"),
    ("arch", "omit"),
    ("runtime", "omit"),
    ("name", "omit"),
    ("createdAt", "time"),
    ("version", "omit"),
)

#: ServiceAccount (pkg/resource/v1/service_account.go): name, token, roles, createdAt.
SERVICE_ACCOUNT_FIELDS: tuple[tuple[str, Kind], ...] = (
    ("name", "omit"),
    ("token", "omit"),
    ("roles", "omit"),
    ("createdAt", "time"),
)


def go_time(epoch: float | None, utc_offset_minutes: int = 0) -> str:
    """RFC 3339 with nanoseconds, trailing zeros trimmed (Go's time.RFC3339Nano).

    `None` is Go's zero time. A non-zero offset is written `+02:00` as a worker on
    a Mac in another timezone sends its `last_seen`."""
    if epoch is None:
        return ZERO_TIME
    whole = int(epoch // 1)
    nanos = round((epoch - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, 0
    tz = datetime.timezone(datetime.timedelta(minutes=utc_offset_minutes))
    stamp = datetime.datetime.fromtimestamp(whole, tz)
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    if utc_offset_minutes == 0:
        return text + "Z"
    sign = "+" if utc_offset_minutes > 0 else "-"
    hours, minutes = divmod(abs(utc_offset_minutes), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def encode(fields: tuple[tuple[str, Kind], ...], values: Mapping[str, Any]) -> dict[str, Any]:
    """The ordered JSON object Go would marshal from a struct with these fields.

    Times in `values` are epoch floats or None; a key absent from `values` is zero."""
    out: dict[str, Any] = {}
    for key, kind in fields:
        value = values.get(key)
        if kind == "time":
            out[key] = value if isinstance(value, str) else go_time(value)
        elif kind == "always":
            out[key] = value if value is not None else 0
        elif value not in (None, "", 0, False, [], {}):
            out[key] = value
    return out


def dumps(value: object) -> str:
    """Compact JSON with Go's HTML-safe escapes. Those characters can only occur
    inside strings, so escaping them everywhere is exact."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escape in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text
