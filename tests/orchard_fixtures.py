"""The fake Orchard controller for tests, and checks against Orchard's own OpenAPI
description (tests/fixtures/orchard/orchard-openapi.yaml, see SOURCE.txt there).

Every test that uses `orchard_lab` has every exchange the fake saw checked at the
end: the request against the operation's parameters and body schema, the answer
against the declared response (or, for the statuses the description leaves out,
against Orchard's error shape: an empty body or exactly `{"message": "..."}`).

Validator: openapi-core (maintained by the python-openapi organisation, OpenAPI
3.0/3.1 request and response validation on top of jsonschema and
openapi-schema-validator), so the parameters, read-only rules and media types are
checked as the description states them, not only the body schemas.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from megatui.clock import FakeClock
from megatui.lab.orchard import FakeOrchard, Timings
from megatui.lab.orchard.record import Exchange

SPEC_PATH = Path(__file__).parent / "fixtures" / "orchard" / "orchard-openapi.yaml"
ADMIN = ("bootstrap-admin", "lab-admin-token")
#: Fast lab timings on a fake clock: the test moves time, nothing sleeps.
FAST = Timings(schedule=1.0, pull=10.0, clone=4.0, configure=1.0, boot=3.0, stop=2.0, restart=2.0)
#: A test sending a request the description forbids, on purpose, marks it so.
INVALID_ON_PURPOSE = "X-Test-Invalid"
#: Worker-internal or framework routes that the OpenAPI description does not cover.
_UNDESCRIBED = ("/", "/nope")


@functools.cache
def openapi() -> OpenAPI:
    # One ndjson line is one JSON document: that is how the watch is checked.
    config = Config(extra_media_type_deserializers={"application/x-ndjson": json.loads})
    return OpenAPI.from_file_path(str(SPEC_PATH), config=config)


def _request(ex: Exchange, path: str) -> MockRequest:
    headers = {k: v for k, v in ex.headers.items() if k.lower() != "authorization"}
    return MockRequest(
        "http://orchard",
        ex.method.lower(),
        path,
        args=ex.query,
        headers=headers,
        data=ex.body or None,
        content_type=ex.headers.get("Content-Type", "application/json"),
    )


def _declared(path: str, method: str, status: int) -> bool:
    spec = openapi().spec
    for template, item in (spec / "paths").items():
        pattern = template.replace("{name}", "[^/]+")
        if re.fullmatch(pattern, path):
            op = item / method.lower() if method.lower() in item else None
            return op is not None and str(status) in (op / "responses")
    return False


def check_error_shape(ex: Exchange) -> None:
    body = ex.response or b""
    if not body:
        return
    assert ex.content_type == "application/json", ex
    decoded = json.loads(body)
    assert list(decoded) == ["message"] and isinstance(decoded["message"], str), body


def validate_exchange(ex: Exchange) -> None:
    path = ex.path.removeprefix("/v1")
    if path in _UNDESCRIBED or ex.path.endswith("/events"):
        # /events: the description types `Events` as an object while the controller
        # returns a list (docs/orchard.md, "Known gaps of the OpenAPI description").
        return
    request = _request(ex, path)
    if INVALID_ON_PURPOSE not in ex.headers:
        openapi().validate_request(request)
    if ex.response is None or ex.injected:
        return  # a stream (watch lines: validate_watch_line), or a fault a test injected
    if _declared(path, ex.method, ex.status):
        response = MockResponse(
            ex.response, status_code=ex.status, content_type=ex.content_type or "text/plain"
        )
        openapi().validate_response(request, response)
        if ex.status != 200:
            check_error_shape(ex)
    else:
        check_error_shape(ex)


def validate_watch_line(name: str, line: bytes) -> dict[str, Any]:
    """One ndjson event against the `application/x-ndjson` schema of GET /vms/{name}."""
    request = MockRequest("http://orchard", "get", f"/vms/{name}", args={"watch": "true"})
    response = MockResponse(line, status_code=200, content_type="application/x-ndjson")
    openapi().validate_response(request, response)
    decoded: dict[str, Any] = json.loads(line)
    return decoded


@pytest.fixture(name="orchard_lab")
async def orchard_lab_fixture(tmp_path: Path) -> AsyncIterator[FakeOrchard]:
    lab = FakeOrchard(
        tmp_path / "orchard-lab",
        clock=FakeClock(),
        timings=Timings(**vars(FAST)),
        poll_interval=0.05,
    )
    await lab.start()
    try:
        yield lab
    finally:
        await lab.stop()
    for ex in lab.exchanges:
        validate_exchange(ex)


def advance(lab: FakeOrchard, seconds: float, step: float = 0.5) -> None:
    """Move the fake clock in small steps, letting the fleet act at each."""
    clock = lab.clock
    assert isinstance(clock, FakeClock)
    moved = 0.0
    while moved < seconds:
        delta = min(step, seconds - moved)
        clock.advance(delta)
        lab.step()
        moved += delta
