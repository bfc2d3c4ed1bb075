"""The VM detail screen's recovery line: the policy, and the server's restart count."""

from __future__ import annotations

from ui_fakes import make_app, sample_monitor, screen_text, until

from megatui.clock import FakeClock
from megatui.config import RecoveryPolicy, Settings
from megatui.recovery import RecoveryStatus, describe, status_from_json
from megatui.ui.screens import DetailScreen

NOW = 1_780_000_000.0


async def served_status(name: str) -> RecoveryStatus | None:
    """What a viewer attached to `megatui serve` gets: recovery runs on the server."""
    return RecoveryStatus(RecoveryPolicy("unhealthy", 2, 4), 3, "waiting")


async def open_detail(app: object) -> str:
    async with app.run_test(size=(140, 40)) as pilot:  # type: ignore[attr-defined]
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")  # type: ignore[attr-defined]
        await until(pilot, lambda: bool(app.screen.query("#detail-recovery")), "the recovery line")  # type: ignore[attr-defined]
        return screen_text(app)  # type: ignore[arg-type]


async def test_a_local_tui_shows_the_policy_from_the_config() -> None:
    settings = Settings(recovery={"*": {"restart": "on-exit", "max_restarts": 2}})
    text = await open_detail(make_app(settings=settings, clock=FakeClock(NOW)))
    assert "recovery restart on-exit · at most 2/hour · carried out by megatui serve" in text


async def test_an_attached_viewer_shows_the_servers_restart_count() -> None:
    clock = FakeClock(NOW)
    monitor = sample_monitor(NOW, clock=clock)
    monitor.recovery_status = served_status  # type: ignore[attr-defined]
    text = await open_detail(make_app(monitor, clock=clock))
    assert (
        "recovery restart unhealthy · after 2 failed checks · at most 4/hour · "
        "3 restarts in the last hour · backing off"
    ) in text


async def test_no_policy_no_line() -> None:
    app = make_app(clock=FakeClock(NOW))
    async with app.run_test(size=(140, 40)) as pilot:
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail")
        detail = app.screen
        assert isinstance(detail, DetailScreen)
        await until(pilot, lambda: detail.loaded, "tart get and the log")
        await pilot.pause()
        assert not detail.query("#detail-recovery")
        assert "recovery" not in screen_text(app)


def test_describe_and_the_api_shape() -> None:
    entry = {
        "policy": {
            "restart": "on-exit",
            "unhealthy_after": 3,
            "max_restarts": 3,
            "backoff_seconds": 30.0,
        },
        "state": "user-stopped",
        "restarts_last_hour": 1,
    }
    status = status_from_json(entry)
    assert status == RecoveryStatus(RecoveryPolicy("on-exit"), 1, "user-stopped")
    assert describe(status) == (
        "restart on-exit · at most 3/hour · 1 restart in the last hour · stopped by the user"
    )
    assert status_from_json({"policy": None}) is None
    assert status_from_json({"policy": {"restart": "on-exit"}}) is None
    assert status_from_json("junk") is None
    assert status_from_json({**entry, "restarts_last_hour": True}) == RecoveryStatus(
        RecoveryPolicy("on-exit"), None, "user-stopped"
    )
