"""Background processes in the detail pane: listed while they run, stopped
with K, gone when the loop stops. A real loop and the fake model server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from convtui.app import ConvtuiApp
from convtui.backend.models import NewConversationRequest
from convtui.backend.settings import SettingsStore
from convtui.screens.main import MainScreen

from ..fake_llm import FakeLLMServer, Hang, Script, ToolCall
from ..processes import processes_running
from .seed import settle, still_app


@pytest.fixture
def configured(data_dir: Path, llm: FakeLLMServer) -> Path:
    data_dir.mkdir(parents=True)
    SettingsStore(data_dir / "settings.json").update(
        {
            "llm_model": "openai/fake-model",
            "llm_api_key": "sk-processes-0123456789",
            "llm_base_url": llm.base_url,
            "confirmation_mode": False,
        }
    )
    return data_dir


def header(app: ConvtuiApp) -> str:
    screen = next(s for s in app.screen_stack if isinstance(s, MainScreen))
    return str(screen.query_one("#detail-header").render())


async def test_the_pane_lists_background_processes_and_k_stops_them(configured: Path, llm: FakeLLMServer) -> None:
    marker = f"{time.time_ns() % 10**6 + 1000}.625"
    llm.responder = Script(ToolCall("execute_bash", {"command": f"sleep {marker} &"}), *[Hang()] * 3)
    app = still_app(configured)
    async with app.run_test(size=(140, 36)) as pilot:
        await settle(pilot, lambda: app.backend is not None and isinstance(app.screen, MainScreen))
        request = NewConversationRequest(initial_user_msg="serve it")
        conversation_id = (await app.backend.new_conversation(request)).conversation_id
        await app.backend.start(conversation_id)
        await settle(pilot, lambda: "1 process running in this workspace (K stops them)" in header(app), timeout=20)
        assert f"sleep {marker}" in header(app)
        await settle(pilot, lambda: bool(processes_running(f"sleep {marker}")))
        await pilot.press("K")
        await settle(pilot, lambda: "process running" not in header(app), timeout=10)
        await settle(pilot, lambda: not processes_running(f"sleep {marker}"), timeout=5)
        assert app.backend.is_running(conversation_id)  # the loop runs on
        await app.backend.stop(conversation_id)


async def test_the_pane_says_when_commands_are_not_sandboxed(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    SettingsStore(data_dir / "settings.json").update({"sandbox": False})
    app = still_app(data_dir)
    async with app.run_test(size=(140, 36)) as pilot:
        await settle(pilot, lambda: app.backend is not None and isinstance(app.screen, MainScreen))
        await app.backend.new_conversation(NewConversationRequest(initial_user_msg="hello"))
        await settle(pilot, lambda: "commands NOT sandboxed: turned off (setting sandbox)" in header(app), timeout=10)
        assert any("NOT sandboxed" in notification.message for notification in app._notifications)
