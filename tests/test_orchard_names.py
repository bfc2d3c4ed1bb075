"""Orchard's VM name rule, one copy (megatui.sources.orchard_model): the create
dialog checks it before sending, and the lab's controller refuses what it refuses.

Facts (docs/orchard.md, "Names", from Orchard's internal/simplename): names outside
`[A-Za-z0-9:-_.]` get 412 "VM name name contains restricted characters, please only
use [A-Za-z0-9:-_.]"; an empty name gets 412 "VM name is empty". The set is the
characters it lists, not a regex range: `:-_` is ':', '-' and '_', not ';'..'@'..'['.
Names the CLI only warns about (upper case, over 63 characters, not starting with an
alphanumeric) are accepted by the controller."""

from __future__ import annotations

import pytest
from orchard_fixtures import orchard_lab_fixture  # noqa: F401

from megatui.lab.orchard import FakeOrchard
from megatui.sources.orchard_model import name_problem, restricted_chars

_IMAGE = "ghcr.io/cirruslabs/macos-tahoe-base:latest"
_RESTRICTED = (
    b'{"message":"VM name name contains restricted characters, please only use [A-Za-z0-9:-_.]"}'
)

ACCEPTED = [
    "a",
    "0",
    "ci-vm_1.2:x",
    ":",
    "-",
    "_",
    ".",
    "-leading-dash",
    "trailing.",
    "UPPER",
    "x" * 64,  # the CLI warns above 63; the controller takes it
]
# The characters between ':' and '_' in ASCII (what a regex range would let in),
# and others people type.
REFUSED = [
    ";",
    "<",
    "=",
    ">",
    "?",
    "@",
    "[",
    "\\",
    "]",
    "^",
    " ",
    "/",
    "é",
    "ab\n",
    "a,b",
    "a+b",
]


@pytest.mark.parametrize("name", ACCEPTED)
def test_accepted_names(name: str) -> None:
    assert restricted_chars(name) == []
    assert name_problem(name) is None


@pytest.mark.parametrize("name", REFUSED)
def test_refused_names(name: str) -> None:
    assert restricted_chars(name) != []
    problem = name_problem(name)
    assert problem is not None and "letters, digits and : - _ ." in problem
    assert "\n" not in problem


def test_the_problem_names_each_bad_character_once_at_most_five() -> None:
    assert restricted_chars("a@b@c d") == [" ", "@"]
    problem = name_problem("!#$%&*()")
    assert problem is not None and problem.count("'") == 10  # five shown, quoted


def test_an_empty_name() -> None:
    assert name_problem("") == "the name is empty"


async def test_the_lab_controller_follows_the_same_rule(orchard_lab: FakeOrchard) -> None:
    from test_orchard_lab import _call

    for i, name in enumerate(ACCEPTED):
        body = {"name": name, "image": _IMAGE}
        status, _type, answer = await _call(orchard_lab, "POST", "/v1/vms", body)
        assert status == 200, (name, answer, i)
    for name in REFUSED:
        body = {"name": f"vm{name}", "image": _IMAGE}
        assert (await _call(orchard_lab, "POST", "/v1/vms", body))[::2] == (412, _RESTRICTED)
    empty = {"name": "", "image": _IMAGE}
    assert (await _call(orchard_lab, "POST", "/v1/vms", empty))[::2] == (
        412,
        b'{"message":"VM name is empty"}',
    )
