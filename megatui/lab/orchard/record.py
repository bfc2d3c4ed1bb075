"""What the fake controller saw and answered, for tests that check both sides
against the OpenAPI description."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Exchange:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(repr=False)
    body: bytes
    status: int
    content_type: str
    #: The answer's body; None for streams (watches, WebSockets).
    response: bytes | None
    #: The answer was a fault a test injected (an HTML page), not Orchard's.
    injected: bool = False
