"""Snapshots of the inbox holding three real loops that wait: one to run a
command, one to edit a file (its diff shown), one for a reply. The backend's
clock is frozen, so every wait began at the same fixed time and the waits
are ordered by id: the same on every run.

Regenerate after an intended change with
`pytest tests/ui/test_inbox_snapshots.py --snapshot-update` and look at the
SVGs before committing them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from convtui.backend import events as events_module
from convtui.backend import service as service_module
from convtui.backend.events import EventLog as StoredEventLog
from convtui.backend.inbox import InboxKind
from convtui.backend.service import ConversationService, user_message
from convtui.screens.inbox import InboxScreen

from ..fake_llm import FakeLLMServer, Hang, Text, ToolCall
from .seed import frozen_clock, seed_store, settle, still_app

SIZE = (120, 30)
CONVERSATIONS = [
    {"title": "Run the test suite", "trigger": "gui", "hours": 0.1},
    {"title": "Bump the version in the notes", "trigger": "cli", "hours": 0.2},
    {"title": "Update the changelog", "trigger": "gui", "hours": 0.3},
]
MESSAGES = ["Run the tests.", "Bump the version in NOTES.md.", "Update the changelog."]


def answer(body: dict[str, Any]) -> Any:
    """Each conversation's first model call gets its answer; later calls never end."""
    said = [m.get("content") for m in body["messages"] if m.get("role") != "system"]
    if len(said) > 1:
        return Hang()
    if said == [MESSAGES[0]]:
        return ToolCall("execute_bash", {"command": "python -m pytest -x tests/ --maxfail=3"}, call_id="call_inbox_1",
                        content="Let me run the tests first.")  # fmt: skip
    if said == [MESSAGES[1]]:
        return ToolCall(
            "str_replace_editor",
            {"command": "str_replace", "path": "/workspace/NOTES.md", "old_str": "Version 2.3", "new_str": "Version 2.4"},
            call_id="call_inbox_2",
        )
    return Text("Should the changelog list the fixes of 2.4 too, or only the features?")


@pytest.mark.parametrize("downs", [0, 1, 2], ids=["first", "second", "third"])
def test_the_inbox_with_a_command_a_diff_and_a_question(
    snap_compare, data_dir: Path, monkeypatch: pytest.MonkeyPatch, downs: int
) -> None:
    monkeypatch.setattr(service_module, "utc_now", frozen_clock)
    monkeypatch.setattr(events_module, "utc_now", frozen_clock)
    ids = seed_store(data_dir, CONVERSATIONS)
    for conversation_id, message in zip(ids, MESSAGES):
        StoredEventLog(data_dir / "conversations" / conversation_id).append([user_message(message)])
    workspace = data_dir / "conversations" / ids[1] / "workspace"
    workspace.mkdir(parents=True)
    (workspace / "NOTES.md").write_text("# Notes\n\nVersion 2.3\n\nNothing else changed.\n")

    with FakeLLMServer.in_thread() as llm:
        llm.responder = answer

        async def configure() -> None:
            service = await ConversationService.open(data_dir, user_id="tester")
            try:
                await service.update_settings(
                    {"llm_model": "openai/fake-model", "llm_api_key": "sk-snap-0123456789", "llm_base_url": llm.base_url,
                     "notify_on": "none"}  # no alert toasts over the inbox
                )
            finally:
                service.close()

        asyncio.run(configure())

        async def run_before(pilot: Pilot) -> None:
            app = pilot.app
            await settle(pilot, lambda: app.backend is not None and app.screen.id != "_default" and app.backend.total() == 3)
            for conversation_id in ids:
                await app.backend.start(conversation_id)
            await pilot.press("i")

            def all_waiting() -> bool:
                screen = app.screen
                return (
                    isinstance(screen, InboxScreen)
                    and sorted(item.kind for item in screen.items) == sorted([InboxKind.APPROVE, InboxKind.APPROVE, InboxKind.REPLY])
                    and all(item.action is not None for item in screen.items if item.kind is InboxKind.APPROVE)
                )

            await settle(pilot, all_waiting, timeout=30)
            await pilot.press("home")
            for _ in range(downs):
                await pilot.press("down")
            screen = app.screen
            current = screen.current

            def shown() -> bool:
                text = str(screen.query_one("#inbox-content").render())
                if current.kind is InboxKind.APPROVE and current.action["action"] == "edit":
                    return "+Version 2.4" in text
                return current.conversation.title in str(screen.query_one("#inbox-what").render())

            await settle(pilot, shown)

        assert snap_compare(still_app(data_dir), terminal_size=SIZE, run_before=run_before)
