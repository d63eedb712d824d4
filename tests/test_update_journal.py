"""The journal behind the live stream: numbered updates, resumption from a
position, a reset when that position is gone, and a slow follower cut off
without holding anyone else back."""

from __future__ import annotations

import asyncio

from convtui.backend.models import AgentState, ConversationStatus, RuntimeStatus
from convtui.backend.update_journal import Entry, StreamReset, UpdateJournal
from convtui.backend.updates import (
    EventAdded,
    MetricsChanged,
    StatusChanged,
    TextStreamed,
    TitleChanged,
    UpdateHub,
    update_from_dict,
    update_to_dict,
)

CONVERSATION = "a" * 32


def text(n: int) -> TextStreamed:
    return TextStreamed(CONVERSATION, f"piece {n}")


async def take(iterator, count: int) -> list:
    return [await asyncio.wait_for(anext(iterator), 2) for _ in range(count)]


def test_every_update_type_survives_the_wire() -> None:
    updates = [
        StatusChanged(CONVERSATION, ConversationStatus.RUNNING, RuntimeStatus.READY, AgentState.AWAITING_USER_INPUT, "hi"),
        StatusChanged(CONVERSATION, ConversationStatus.STOPPED, None, None),
        EventAdded(CONVERSATION, {"id": 3, "source": "agent", "action": "message", "message": "ok"}),
        text(1),
        TitleChanged(CONVERSATION, "A title"),
        MetricsChanged(CONVERSATION, None, 10, 5, 15),
    ]
    for update in updates:
        assert update_from_dict(update_to_dict(update)) == update


async def test_a_follower_resumes_after_the_last_position_it_saw() -> None:
    hub = UpdateHub()
    journal = UpdateJournal(hub)
    for n in range(5):
        hub.publish(text(n))
    start = journal.position(2)
    follower = journal.follow(start)
    replayed = await take(follower, 3)
    assert [entry.update.text for entry in replayed] == ["piece 2", "piece 3", "piece 4"]
    hub.publish(text(5))
    [live] = await take(follower, 1)
    assert isinstance(live, Entry) and live.position == journal.position(6) and live.update.text == "piece 5"
    await follower.aclose()


async def test_a_position_from_another_epoch_or_out_of_the_window_resets() -> None:
    hub = UpdateHub()
    journal = UpdateJournal(hub, keep=3)
    for n in range(10):
        hub.publish(text(n))
    for stale in ("0123456789ab:4", journal.position(2), journal.position(99), "garbage"):
        follower = journal.follow(stale)
        [first] = await take(follower, 1)
        assert isinstance(first, StreamReset) and first.position == journal.position()
        hub.publish(text(100))
        [after] = await take(follower, 1)
        assert after.update.text == "piece 100"  # then it follows from now
        await follower.aclose()


async def test_a_slow_follower_is_cut_off_and_the_others_keep_everything() -> None:
    hub = UpdateHub()
    journal = UpdateJournal(hub, follower_buffer=10)
    slow, fast = journal.follow(), journal.follow()
    fast_seen: list[Entry] = []

    async def keep_up() -> None:
        async for entry in fast:
            fast_seen.append(entry)

    # Register both (a generator starts on its first step).
    slow_first = asyncio.ensure_future(anext(slow))
    reader = asyncio.create_task(keep_up())
    await asyncio.sleep(0)
    for n in range(50):
        hub.publish(text(n))  # never blocks, whoever reads slowly
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert [entry.update.text for entry in fast_seen] == [f"piece {n}" for n in range(50)]
    received = [await slow_first]
    async for entry in slow:
        received.append(entry)
    assert 1 <= len(received) <= 11  # what its buffer held, then the end: it reconnects from there
    last = received[-1].position
    resumed = journal.follow(last)
    rest = await take(resumed, 50 - len(received))
    assert [e.update.text for e in received + rest] == [f"piece {n}" for n in range(50)]
    reader.cancel()
    await resumed.aclose()
