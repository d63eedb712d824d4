"""Alerts in the UI: a conversation the person is not looking at starts
waiting, finishes or fails; the terminal gets the bell and the notification
escapes, the UI a notification. Nothing for the conversation in view."""

from __future__ import annotations

from pathlib import Path

import pytest

from convtui.app import ConvtuiApp
from convtui.backend.models import AgentState, NewConversationRequest
from convtui.backend.settings import SettingsStore
from convtui.screens.main import MainScreen

from ..fake_llm import FakeLLMServer, Hang, Script, Text, ToolCall
from .seed import settle, still_app


@pytest.fixture
def configured(data_dir: Path, llm: FakeLLMServer) -> Path:
    data_dir.mkdir(parents=True)
    SettingsStore(data_dir / "settings.json").update(
        {"llm_model": "openai/fake-model", "llm_api_key": "sk-alerts-0123456789", "llm_base_url": llm.base_url}
    )
    return data_dir


async def opened(pilot, app: ConvtuiApp, *messages: str) -> tuple[list[str], list[str], list[tuple[str, str]]]:  # noqa: ANN001
    """The app up with a conversation per message (the first listed last),
    the bytes it writes to the terminal and its notifications recorded."""
    await settle(pilot, lambda: app.backend is not None and isinstance(app.screen, MainScreen))
    ids = []
    for message in messages:
        response = await app.backend.new_conversation(NewConversationRequest(initial_user_msg=message))
        ids.append(response.conversation_id)
    await settle(pilot, lambda: len(app.screen.conversation_list.ids) == len(messages))
    written: list[str] = []
    notified: list[tuple[str, str]] = []
    app.alerts.write = written.append
    app.alerts.notify = lambda text, title: notified.append((title, text))
    return ids, written, notified


async def test_a_conversation_out_of_view_alerts_and_the_one_in_view_does_not(configured: Path, llm: FakeLLMServer) -> None:
    app = still_app(configured)
    async with app.run_test(size=(120, 30)) as pilot:
        (in_view, elsewhere), written, notified = await opened(pilot, app, "look at me", "run in the background")
        await pilot.press("j")  # the first one (listed second)
        await settle(pilot, lambda: app.screen.selected_id == in_view)

        llm.responder = Script(ToolCall("execute_bash", {"command": "echo seen"}), Hang())
        await app.backend.start(in_view)
        await settle(pilot, lambda: app.backend.pending_action_now(in_view) is not None, timeout=20)
        await pilot.pause(0.2)
        assert written == [] and notified == []

        llm.responder = Script(ToolCall("execute_bash", {"command": "make deploy"}), Hang())
        await app.backend.rename(elsewhere, "Deploy the app")  # (a model's title could land after the alert)
        await app.backend.start(elsewhere)
        await settle(pilot, lambda: bool(written), timeout=20)
        [sent] = written
        assert "\x1b]9;convtui waiting: Deploy the app (approve: make deploy)\x07" in sent
        assert "\x1b]777;notify;convtui;waiting: Deploy the app (approve: make deploy)\x07" in sent
        assert sent.endswith("\a")
        assert notified == [("needs you", "waiting: Deploy the app (approve: make deploy)")]
        await app.backend.stop(elsewhere)
        await app.backend.stop(in_view)


async def test_the_settings_choose_which_kinds_and_how(configured: Path, llm: FakeLLMServer) -> None:
    SettingsStore(configured / "settings.json").update({"notify_on": "finished", "notify_method": "bell"})
    app = still_app(configured)
    async with app.run_test(size=(120, 30)) as pilot:
        (asks, finishes, looked_at), written, notified = await opened(pilot, app, "ask", "finish", "watched")
        assert app.screen.selected_id == looked_at
        llm.responder = Script(Text("A question?"), Hang())
        await app.backend.start(asks)  # waiting: not asked for
        await settle(pilot, lambda: app.backend.row(asks).agent_state is AgentState.AWAITING_USER_INPUT, timeout=20)
        llm.responder = Script(ToolCall("finish", {"message": "All done."}), Hang())
        await app.backend.rename(finishes, "Finish the job")
        await app.backend.start(finishes)
        await settle(pilot, lambda: bool(written), timeout=20)
        assert written == ["\a"]  # the bell only
        assert notified == [("finished", "finished: Finish the job")]
        for conversation_id in (asks, finishes):
            await app.backend.stop(conversation_id)
