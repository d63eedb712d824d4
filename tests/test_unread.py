"""Unread: each OS user's last seen event per conversation, kept with the
metadata; newer events make the conversation unread for that user."""

from __future__ import annotations

from pathlib import Path

import pytest

from convtui.backend.errors import InvalidInput, NotFound
from convtui.backend.events import EventLog
from convtui.backend.models import NewConversationRequest
from convtui.backend.service import ConversationService
from convtui.backend.store import ConversationFilter

from .conftest import TRAJECTORIES


def agent_says(service: ConversationService, conversation_id: str, text: str) -> None:
    """An agent's message appended as a loop appends it."""
    service._event_log(conversation_id).append([{"source": "agent", "action": "message", "message": text, "args": {"content": text}}])


async def test_new_events_are_unread_until_seen_and_ones_own_message_never_is(service: ConversationService) -> None:
    conversation_id = (await service.new_conversation(NewConversationRequest(initial_user_msg="do it"))).conversation_id
    service.latest_events()
    assert (await service.get(conversation_id)).unread is False  # the creator's own message
    agent_says(service, conversation_id, "done")
    assert (await service.get(conversation_id)).unread is True
    assert await service.list_ids(ConversationFilter(unread=True)) == (conversation_id,)
    before = (await service.get(conversation_id)).last_updated_at
    info = await service.mark_seen(conversation_id, 1)
    assert info.unread is False and info.last_updated_at == before  # its place in the list stays
    await service.mark_seen(conversation_id, 0)  # never moves back
    assert (await service.get(conversation_id)).unread is False
    assert await service.list_ids(ConversationFilter(unread=True)) == ()
    with pytest.raises(InvalidInput, match="an event id is a number 0 or more"):
        await service.mark_seen(conversation_id, -5)
    with pytest.raises(NotFound):
        await service.mark_seen("0" * 32, 1)


async def test_each_os_user_has_their_own_and_a_restart_keeps_them(service: ConversationService, data_dir: Path) -> None:
    conversation_id = (await service.new_conversation(NewConversationRequest(initial_user_msg="do it"))).conversation_id
    bob = await ConversationService.open(data_dir, user_id="bob")
    try:
        await bob.mark_seen(conversation_id, 0)
        agent_says(service, conversation_id, "news")
        bob.reload_latest_events()  # another process appended
        service.latest_events()
        assert (await bob.get(conversation_id)).unread is True
        await bob.mark_seen(conversation_id, 1)
        assert (await bob.get(conversation_id)).unread is False
        assert (await service.get(conversation_id)).unread is True  # alice has not seen it
    finally:
        bob.close()
    service.close()
    assert await unread_for(data_dir, "alice", conversation_id, then_seen=1) is True
    assert await unread_for(data_dir, "alice", conversation_id) is False


async def unread_for(data_dir: Path, user: str, conversation_id: str, then_seen: int | None = None) -> bool:
    """Whether `user`, opening the data directory afresh, sees the
    conversation as unread (then marks event `then_seen` seen, if given)."""
    service = await ConversationService.open(data_dir, user_id=user)
    try:
        service.latest_events()
        unread = (await service.get(conversation_id)).unread
        if then_seen is not None:
            await service.mark_seen(conversation_id, then_seen)
        return unread
    finally:
        service.close()


async def test_an_import_is_seen_and_a_conversation_never_opened_by_a_user_is_not_unread_for_them(
    service: ConversationService, data_dir: Path
) -> None:
    imported = (await service.import_trajectory(TRAJECTORIES[0].read_bytes())).conversation_id
    service.latest_events()
    assert (await service.get(imported)).unread is False
    EventLog(service.data_dir.conversation(imported)).append([{"source": "agent", "action": "message", "message": "more"}])
    assert await unread_for(data_dir, "carol", imported) is False


async def test_list_status_unread_through_the_search(service: ConversationService) -> None:
    conversation_id = (await service.new_conversation(NewConversationRequest(initial_user_msg="do it"))).conversation_id
    service.latest_events()
    assert (await service.search(status="unread")).results == []
    agent_says(service, conversation_id, "done")
    assert [info.conversation_id for info in (await service.search(status="Unread")).results] == [conversation_id]
    with pytest.raises(InvalidInput, match="is not one of: .*unread, waiting"):
        await service.search(status="unseen")
