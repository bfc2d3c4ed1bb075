"""A failing on_change callback (a consumer's bug) is one status line, never a
traceback on the terminal, and the source goes on (issue 10)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from test_kube_watch import Recorder, make_source, running

from megatui.sources.kube import KubeState


class FailsOnce(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __call__(self, state: KubeState) -> None:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("consumer broke\nsecond line of the message")
        super().__call__(state)


async def test_a_failing_callback_is_one_status_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)  # what a user's terminal would get
    rec = FailsOnce()
    missing = tmp_path / "config"
    async with running(make_source(missing, rec)) as task:
        await rec.wait_for(lambda s: "kubernetes" in s.statuses, timeout=10.0)
        # The next state the consumer takes says what went wrong, in one line...
        status = rec.states[0].statuses["kubernetes"]
        assert (status.ok, status.error) == (
            False,
            "internal error publishing the cluster state: consumer broke",
        )
        # ...and once it got through, the source's own status again.
        last = await rec.wait_for(lambda s: "not found" in (s.statuses["kubernetes"].error or ""))
        assert last.statuses["kubernetes"].error == f"kubeconfig not found: {missing}"
        assert not task.done()
    assert caplog.records == []
    captured = capfd.readouterr()
    assert captured.err == ""
