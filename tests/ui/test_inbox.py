"""The inbox (`i`): every conversation waiting for a person, answered from
there with each key, against real loops and the fake model server."""

from __future__ import annotations

from pathlib import Path

import pytest

from convtui.app import ConvtuiApp
from convtui.backend.models import AgentState, ConversationStatus, NewConversationRequest
from convtui.backend.settings import SettingsStore
from convtui.screens.inbox import InboxScreen
from convtui.screens.main import MainScreen
from convtui.screens.reject_reason import RejectReasonScreen

from ..fake_llm import FakeLLMServer, Hang, Script, Text, ToolCall
from .seed import settle, still_app

API_KEY = "sk-inbox-0123456789"


@pytest.fixture
def configured(data_dir: Path, llm: FakeLLMServer) -> Path:
    data_dir.mkdir(parents=True)
    SettingsStore(data_dir / "settings.json").update(
        {"llm_model": "openai/fake-model", "llm_api_key": API_KEY, "llm_base_url": llm.base_url}
    )
    return data_dir


async def up(pilot, app: ConvtuiApp) -> None:  # noqa: ANN001
    await settle(pilot, lambda: app.backend is not None and isinstance(app.screen, MainScreen))


async def waiting(pilot, app: ConvtuiApp, llm: FakeLLMServer, message: str, *responses, state: AgentState) -> str:  # noqa: ANN001
    """A conversation whose loop runs until its agent is in `state`."""
    await up(pilot, app)
    llm.responder = Script(*responses, *[Hang()] * 5)  # the loops answered meanwhile think on
    conversation_id = (await app.backend.new_conversation(NewConversationRequest(initial_user_msg=message))).conversation_id
    await app.backend.start(conversation_id)

    def arrived() -> bool:
        info = app.backend.row(conversation_id)
        return info is not None and info.agent_state is state

    await settle(pilot, arrived, timeout=20)
    return conversation_id


async def ended_at_the_limit(pilot, app: ConvtuiApp, llm: FakeLLMServer, message: str) -> str:  # noqa: ANN001
    await up(pilot, app)
    await app.backend.update_settings({"max_iterations": 1, "confirmation_mode": False})
    llm.responder = Script(ToolCall("think", {"thought": "a step"}))
    conversation_id = (await app.backend.new_conversation(NewConversationRequest(initial_user_msg=message))).conversation_id
    await app.backend.start(conversation_id)
    await settle(pilot, lambda: (app.backend.row(conversation_id) or None) and app.backend.row(conversation_id).attention == "limit", timeout=20)
    await app.backend.update_settings({"max_iterations": 50, "confirmation_mode": True})
    return conversation_id


def inbox(app: ConvtuiApp) -> InboxScreen:
    assert isinstance(app.screen, InboxScreen)
    return app.screen


def listed(app: ConvtuiApp) -> list[str]:
    return [item.conversation_id for item in inbox(app).items] if isinstance(app.screen, InboxScreen) else []


def status_line(app: ConvtuiApp) -> str:
    screen = next(s for s in app.screen_stack if isinstance(s, MainScreen))
    return str(screen.query_one("#list-status").render())


async def test_approve_reject_with_a_reason_and_always_each_move_to_the_next(
    configured: Path, llm: FakeLLMServer
) -> None:
    app = still_app(configured)
    async with app.run_test(size=(120, 36)) as pilot:
        first = await waiting(pilot, app, llm, "make a file", ToolCall("execute_bash", {"command": "echo yes > approved.txt"}),
                              state=AgentState.AWAITING_USER_CONFIRMATION)  # fmt: skip
        second = await waiting(pilot, app, llm, "remove a file", ToolCall("execute_bash", {"command": "rm -f keep.txt"}),
                               state=AgentState.AWAITING_USER_CONFIRMATION)  # fmt: skip
        third = await waiting(pilot, app, llm, "run tests", ToolCall("execute_bash", {"command": "echo tests > ran.txt"}),
                              state=AgentState.AWAITING_USER_CONFIRMATION)  # fmt: skip
        await settle(pilot, lambda: status_line(app).startswith("3 need you (i)"))
        await pilot.press("i")
        await settle(pilot, lambda: listed(app) == [first, second, third])
        assert "$ echo yes > approved.txt" in str(inbox(app).query_one("#inbox-content").render())

        await pilot.press("y")  # approve the first: the second is highlighted
        await settle(pilot, lambda: listed(app) == [second, third] and inbox(app).current.conversation_id == second)
        workspace = configured / "conversations" / first / "workspace"
        await settle(pilot, lambda: (workspace / "approved.txt").exists(), timeout=10)

        await pilot.press("N", *"not that file", "enter")  # one burst: the dialog takes the reason
        await settle(pilot, lambda: listed(app) == [third])
        events = await app.backend.search_events(second)
        [rejected] = [e for e in events if e.get("observation") == "user_rejected"]
        assert rejected["content"].endswith("Their reason: not that file")

        await pilot.press("Y")  # always: approved, and so will the next ones be
        await settle(pilot, lambda: not listed(app) and inbox(app).query_one("#inbox-empty").display)
        assert (await app.backend.get(third)).always_approve is True
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_esc_in_the_reject_dialog_leaves_the_action_waiting(configured: Path, llm: FakeLLMServer) -> None:
    app = still_app(configured)
    async with app.run_test(size=(120, 36)) as pilot:
        asking = await waiting(pilot, app, llm, "make a file", ToolCall("execute_bash", {"command": "true"}),
                               state=AgentState.AWAITING_USER_CONFIRMATION)  # fmt: skip
        await pilot.press("i")
        await settle(pilot, lambda: listed(app) == [asking])
        await pilot.press("N")
        await settle(pilot, lambda: isinstance(app.screen, RejectReasonScreen))
        await pilot.press(*"changed my mind", "escape")
        await settle(pilot, lambda: isinstance(app.screen, InboxScreen))
        assert listed(app) == [asking] and app.backend.pending_action_now(asking) is not None


async def test_a_reply_sent_in_one_burst_answers_the_question(configured: Path, llm: FakeLLMServer) -> None:
    app = still_app(configured)
    async with app.run_test(size=(120, 36)) as pilot:
        question = await waiting(pilot, app, llm, "change the branch", Text("Which branch should I use?"),
                                 state=AgentState.AWAITING_USER_INPUT)  # fmt: skip
        await pilot.press("i")
        await settle(pilot, lambda: listed(app) == [question])
        assert "Which branch should I use?" in str(inbox(app).query_one("#inbox-content").render())
        await pilot.press("tab", *"main please", "enter")
        await settle(pilot, lambda: not listed(app))
        events = await app.backend.search_events(question)
        assert [e["message"] for e in events if e.get("source") == "user" and e.get("action") == "message"][-1] == "main please"


async def test_x_stops_a_waiting_loop_and_dismisses_one_that_ended_and_a_reply_starts_it_again(
    configured: Path, llm: FakeLLMServer
) -> None:
    app = still_app(configured)
    async with app.run_test(size=(120, 36)) as pilot:
        limited = await ended_at_the_limit(pilot, app, llm, "take steps")
        again = await ended_at_the_limit(pilot, app, llm, "take more steps")
        asking = await waiting(pilot, app, llm, "ask me", Text("Shall I go on?"), state=AgentState.AWAITING_USER_INPUT)
        await pilot.press("i")
        await settle(pilot, lambda: listed(app) == [limited, again, asking])
        assert "max_iterations" in str(inbox(app).query_one("#inbox-content").render())
        await pilot.press("x")  # the ended one: dismissed, not started, still there
        await settle(pilot, lambda: listed(app) == [again, asking])
        info = await app.backend.get(limited)
        assert info.attention is None and info.status is ConversationStatus.STOPPED

        llm.responder = Script(Text("Went on."))
        await pilot.press("tab", *"go on", "enter")  # a loop that ended: the reply starts it again
        await settle(pilot, lambda: listed(app) == [asking] or listed(app)[:1] == [asking])
        await settle(pilot, lambda: (app.backend.row(again).agent_state is AgentState.AWAITING_USER_INPUT), timeout=20)

        llm.responder = Script(Hang())
        await settle(pilot, lambda: inbox(app).current is not None and inbox(app).current.conversation_id == asking)
        await pilot.press("x")  # a waiting loop: stopped
        await settle(pilot, lambda: not app.backend.is_running(asking), timeout=10)
        assert asking not in listed(app)


async def test_enter_opens_the_conversation_in_the_list(configured: Path, llm: FakeLLMServer) -> None:
    app = still_app(configured)
    async with app.run_test(size=(80, 30)) as pilot:  # narrow: the detail opens over the list
        question = await waiting(pilot, app, llm, "ask me", Text("Shall I?"), state=AgentState.AWAITING_USER_INPUT)
        main = app.screen
        await pilot.press("slash", *"nothing matches this", "enter")
        await pilot.press("i", "enter")
        await settle(pilot, lambda: app.screen is main and main.selected_id == question)
        assert main.has_class("detail-open") and main.query_text == ""
