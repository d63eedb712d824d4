"""Opening the UI a while after the last one closed lists what happened
meanwhile; Enter shows that conversation; a short gap shows nothing."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from convtui.backend.models import NewConversationRequest, format_timestamp
from convtui.backend.service import ConversationService
from convtui.screens.digest import DigestScreen
from convtui.screens.main import MainScreen

from .seed import NOW, settle, still_app


async def seed(data_dir: Path, closed_minutes_ago: float) -> str:
    service = await ConversationService.open(data_dir, user_id="tester")
    try:
        busy = (await service.new_conversation(NewConversationRequest(initial_user_msg="Run the tests"))).conversation_id
        service._event_log(busy).append(
            [
                {"source": "agent", "action": "run", "args": {"command": "pytest -q"}, "llm_metrics": {"accumulated_cost": 0.12}},
                {"source": "agent", "observation": "run", "content": "3 passed", "extras": {"command": "pytest -q"}},
            ]
        )
    finally:
        service.close()
    users = data_dir / "users"
    users.mkdir(exist_ok=True)
    # The app's clock is frozen at NOW; the events are stamped with today's time (later).
    closed = NOW - timedelta(minutes=closed_minutes_ago)
    (users / "tester.json").write_bytes(orjson.dumps({"ui_closed_at": format_timestamp(closed)}))
    return busy


async def test_after_a_while_away_the_ui_says_what_happened_and_enter_shows_it(data_dir: Path) -> None:
    busy = await seed(data_dir, closed_minutes_ago=60)
    app = still_app(data_dir)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, DigestScreen))
        header = str(app.screen.query_one("#digest-header").render())
        assert header.startswith("While you were away (1h): 1 conversation moved on")
        [entry] = app.screen.entries
        assert (entry.conversation.conversation_id, entry.events, entry.commands) == (busy, 3, ["pytest -q"])
        assert round(entry.cost, 2) == 0.12
        await pilot.press("enter")
        await settle(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.selected_id == busy)
    assert (data_dir / "users" / "tester.json").exists()  # closing noted for the next time


@pytest.mark.parametrize("minutes", [5, None], ids=["a short gap", "never closed"])
async def test_a_short_gap_or_a_first_start_shows_no_digest(data_dir: Path, minutes: float | None) -> None:
    await seed(data_dir, closed_minutes_ago=minutes or 0)
    if minutes is None:
        (data_dir / "users" / "tester.json").unlink()
    app = still_app(data_dir)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.pause(0.5)
        assert isinstance(app.screen, MainScreen)
