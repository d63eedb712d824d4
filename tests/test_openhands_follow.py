"""Following an OpenHands server (`watch --remote`, the UI's status
updates): the newest page, and every conversation last seen running however
old it is, over answers a real server gave (tests/fixtures/openhands)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from convtui.backend import openhands_backend
from convtui.backend.models import AgentState
from convtui.backend.openhands_backend import OpenHandsBackend
from convtui.backend.remotes import Remote

from .openhands.recording import ServedFromRecording

UNKNOWN = "00000000000000000000000000000001"  # (the listing asked for it: the server answered [null])


def backend_on(transport: ServedFromRecording) -> OpenHandsBackend:
    return OpenHandsBackend.for_remote(Remote(name="oh", url="http://127.0.0.1:3000", api_key="k"), transport=transport)


def ran_in_agent_run(transport: ServedFromRecording) -> str:
    """The conversation agent_run created (the first one it got by id)."""
    for key, answers in transport.answers.items():
        request = answers[0]["request"]
        if request["path"] == openhands_backend.CONVERSATIONS and "RUNNING" in (answers[0]["text"] or ""):
            return dict(request["query"])["ids"]
    raise AssertionError("agent_run holds no running conversation")


async def test_a_running_conversation_beyond_the_newest_page_is_followed_to_its_end() -> None:
    transport = ServedFromRecording("listing", "agent_run")
    backend = backend_on(transport)
    running = ran_in_agent_run(transport)
    try:
        states: list[AgentState | None] = []
        while AgentState.FINISHED not in states:  # (the server's answers, in the order it gave them)
            infos, gone = await backend.followed([running])
            assert len(infos) == 101 and not gone  # the newest page (100 seeded ones), and it
            states.append(infos[-1].agent_state)
        assert states[0] is AgentState.RUNNING and len(states) > 1
        infos, gone = await backend.followed([UNKNOWN])
        assert gone == {UNKNOWN} and len(infos) == 100
    finally:
        await backend.close()


async def test_what_stands_still_is_no_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first look is where following starts: the seeded conversations,
    asked again and again unchanged, are never said to have changed."""
    monkeypatch.setattr(openhands_backend, "FOLLOW_SECONDS", 0.01)
    transport = ServedFromRecording("listing")
    backend = backend_on(transport)
    said = []

    async def follow() -> None:
        async for update in backend.updates(await backend.position()):
            said.append(update)

    task = asyncio.create_task(follow())
    try:
        while sum(asked["path"].endswith("/search") for asked in transport.asked) < 5:
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await backend.close()
    assert said == []
