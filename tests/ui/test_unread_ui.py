"""Unread rows: a dot and a bold title until the conversation's events have
been on screen a moment; the same across two UIs of one user and after a
restart; `status:unread` lists them."""

from __future__ import annotations

import asyncio
from pathlib import Path

from convtui.backend.models import NewConversationRequest
from convtui.backend.service import ConversationService
from convtui.screens.main import SEEN_AFTER_SECONDS, MainScreen
from convtui.widgets.conversation_list import ConversationList

from .seed import settle, still_app


async def seed(data_dir: Path) -> tuple[str, str]:
    """Two conversations of the UI's user; the older one has an answer its user has not seen."""
    service = await ConversationService.open(data_dir, user_id="tester")
    try:
        answered = (await service.new_conversation(NewConversationRequest(initial_user_msg="Explain the cache"))).conversation_id
        service._event_log(answered).append(
            [{"source": "agent", "action": "message", "message": "It is an LRU.", "args": {"content": "It is an LRU."}}]
        )
        await asyncio.sleep(0.01)
        newest = (await service.new_conversation(NewConversationRequest(initial_user_msg="Fix the build"))).conversation_id
    finally:
        service.close()
    return answered, newest


def row_text(app, conversation_id: str) -> str:  # noqa: ANN001
    listed = app.screen.query_one(ConversationList)
    y = list(listed.ids).index(conversation_id)
    return listed.render_line(y).text


async def opened(pilot, app) -> None:  # noqa: ANN001
    await settle(pilot, lambda: isinstance(app.screen, MainScreen) and len(app.screen.query_one(ConversationList).ids) == 2)
    await app.backend.warm()


async def test_an_unseen_answer_is_marked_until_it_has_been_on_screen(data_dir: Path) -> None:
    answered, newest = await seed(data_dir)
    app = still_app(data_dir)
    async with app.run_test(size=(120, 30)) as pilot:
        await opened(pilot, app)
        await settle(pilot, lambda: app.backend.row(answered).unread)
        app.screen.query_one(ConversationList).refresh()
        await pilot.pause()
        assert row_text(app, answered).startswith("•") and not row_text(app, newest).startswith("•")
        await pilot.press("slash", *"status:unread", "enter")
        await settle(pilot, lambda: list(app.screen.query_one(ConversationList).ids) == [answered])
        await pilot.press("escape")
        await settle(pilot, lambda: len(app.screen.query_one(ConversationList).ids) == 2)

        await pilot.press("j", "k", "j")  # passing over a row does not see it...
        assert app.backend.row(answered).unread
        await pilot.pause(SEEN_AFTER_SECONDS + 0.3)  # ...staying on it does
        await settle(pilot, lambda: not app.backend.row(answered).unread)

    for again in (still_app(data_dir), still_app(data_dir)):  # a restart, and a second UI
        async with again.run_test(size=(120, 30)) as pilot:
            await opened(pilot, again)
            assert not again.backend.row(answered).unread


async def test_on_a_narrow_terminal_the_detail_must_be_open(data_dir: Path) -> None:
    answered, _ = await seed(data_dir)
    app = still_app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await opened(pilot, app)
        await pilot.press("j")
        await pilot.pause(SEEN_AFTER_SECONDS + 0.3)
        assert app.backend.row(answered).unread  # only the list is on screen
        await pilot.press("enter")
        await settle(pilot, lambda: not app.backend.row(answered).unread)
