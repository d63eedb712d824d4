"""What the remote backend does over what a real OpenHands server answered
(tests/fixtures/openhands), served in any order: following the server
(`watch --remote`, the UI's status updates: the newest page, and every
conversation last seen running however old it is), and remember prompts."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from convtui.backend import openhands_backend
from convtui.backend.data_dir import DataDirectory
from convtui.backend.errors import MissingSettings, NotFound
from convtui.backend.models import AgentState
from convtui.backend.openhands_backend import OpenHandsBackend
from convtui.backend.remotes import Remote
from convtui.backend.settings import SettingsStore

from .fake_llm import FakeLLMServer, Text
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


async def test_a_remember_prompt_is_made_by_this_machines_model(data_dir: Path) -> None:
    """From the server's events (agent_run's), by the model in convtui's own
    settings (the fake one: real litellm on 127.0.0.1)."""
    transport = ServedFromRecording("agent_run")
    running = ran_in_agent_run(transport)
    backend = OpenHandsBackend.for_remote(Remote(name="oh", url="http://127.0.0.1:3000", api_key="k"), transport=transport, root=data_dir)
    try:
        first = (await backend.search_events(running))[0]
        assert first["message"] == "write hello.txt"
        with pytest.raises(MissingSettings, match="no model is configured"):
            await backend.remember_prompt(running, first["id"])
        async with FakeLLMServer() as llm:
            SettingsStore(DataDirectory(data_dir).settings).update({"llm_model": "openai/fake-model", "llm_base_url": llm.base_url, "llm_api_key": "sk-fake-123456"})
            llm.script(Text("<update_prompt>Write greetings to hello.txt.</update_prompt>"))
            assert await backend.remember_prompt(running, first["id"]) == "Write greetings to hello.txt."
            system = llm.requests[-1]["messages"][0]["content"]
            assert f"[{first['id']}] user action message: write hello.txt" in system and "echo hello > hello.txt" in system
            with pytest.raises(NotFound, match="no event 999"):
                await backend.remember_prompt(running, 999)
    finally:
        await backend.close()

