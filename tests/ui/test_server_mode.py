"""The UI with loops in the data directory's server (the default): two UIs
see and answer the same loop; quitting leaves loops running and says so; a
terminal that hangs up loses nothing (tmux)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from convtui.backend.models import AgentState
from convtui.backend.server import server_status
from convtui.backend.server_loops import ServerLoops
from convtui.backend.settings import SettingsStore
from convtui.backend.store import ConversationStore
from convtui.backend.updates import MetricsChanged, TextStreamed
from convtui.screens.confirm import ConfirmScreen
from convtui.screens.main import MainScreen

from ..fake_llm import FakeLLMServer, Hang, Script, Text, ToolCall
from ..server_process import kill_hard, spawn_server, stop_if_running, wait_gone, wait_until_serving
from .seed import settle, still_app
from .test_tmux import TMUX, TmuxSession

API_KEY = "sk-ui-server-0123456789"


@pytest.fixture
def served(data_dir: Path, llm: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[subprocess.Popen]:
    """The model configured and a server running, as `convtui serve` starts it."""
    monkeypatch.delenv("CONVTUI_SERVER")
    data_dir.mkdir(parents=True)
    SettingsStore(data_dir / "settings.json").update(
        {"llm_model": "openai/fake-model", "llm_api_key": API_KEY, "llm_base_url": llm.base_url}
    )
    process = spawn_server(data_dir)
    wait_until_serving(data_dir, process)
    yield process
    stop_if_running(data_dir)
    process.wait(timeout=30)


def main_screen(app) -> MainScreen:  # noqa: ANN001
    return next(screen for screen in app.screen_stack if isinstance(screen, MainScreen))


async def up_with(pilot, app, conversation_id: str) -> None:  # noqa: ANN001
    """The UI connected to the server, the conversation selected."""
    await settle(pilot, lambda: isinstance(app.backend.manager, ServerLoops) and app.backend.manager.connected)
    await settle(pilot, lambda: main_screen(app).selected_id == conversation_id)


async def started_in_the_ui(pilot, app, conversation_id: str) -> None:  # noqa: ANN001
    """`s` on the selected conversation, until its loop runs."""
    await up_with(pilot, app, conversation_id)
    await pilot.press("s")
    await settle(pilot, lambda: app.backend.manager.is_running(conversation_id), timeout=20)


def stored_total_tokens(data_dir: Path, conversation_id: str) -> int:
    store = ConversationStore(data_dir / "store")
    try:
        return store.get(conversation_id)["total_tokens"]
    finally:
        store.close()


def new_conversation(data_dir: Path, message: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "convtui", "--data-dir", str(data_dir), "new", message],
        capture_output=True, text=True, timeout=60, check=True,
    )
    return result.stdout.split()[-1]


async def test_two_uis_answer_the_same_loop(data_dir: Path, llm: FakeLLMServer, served: subprocess.Popen) -> None:
    llm.responder = Script(ToolCall("execute_bash", {"command": "echo from-first > proof.txt"}), Text("done"))
    conversation_id = new_conversation(data_dir, "write the proof")
    first, second = still_app(data_dir), still_app(data_dir)
    async with first.run_test(size=(120, 36)) as one, second.run_test(size=(120, 36)) as two:
        await up_with(two, second, conversation_id)
        await started_in_the_ui(one, first, conversation_id)
        await settle(two, lambda: second.backend.manager.pending_action(conversation_id) is not None, timeout=20)
        screen_two = main_screen(second)
        await settle(two, lambda: screen_two.detail.query_one("#approval-bar").display)
        assert first.backend.manager.pending_action(conversation_id) is not None
        approved_at = time.monotonic()
        await two.press("y")
        await settle(one, lambda: first.backend.manager.pending_action(conversation_id) is None, timeout=10)
        seen_after = time.monotonic() - approved_at
        assert seen_after < 1.0  # the goal is 100 ms; bench/api.py measures the stream's latency
        def waiting_for_user() -> bool:
            state = first.backend.manager.live_state(conversation_id)
            return state is not None and state.agent_state is AgentState.AWAITING_USER_INPUT

        await settle(one, waiting_for_user, timeout=20)
        workspace = data_dir / "conversations" / conversation_id / "workspace"
        assert (workspace / "proof.txt").read_text() == "from-first\n"
        await one.press("q")
        await settle(one, lambda: not first.is_running)
    assert server_status(data_dir)["running"] == [conversation_id]  # quitting left it running


async def test_a_killed_server_shows_its_loop_stopped_and_the_next_action_brings_one_back(
    data_dir: Path, llm: FakeLLMServer, served: subprocess.Popen
) -> None:
    """SIGKILL the server while its loop waits for approval: the UI stops
    offering to approve a loop that no longer runs; `s` starts a server
    again (like tmux), which resumes the loop, and the approval comes back."""
    llm.responder = Script(
        ToolCall("execute_bash", {"command": "echo first"}),
        ToolCall("execute_bash", {"command": "echo after > resumed.txt"}),
        Text("done"),
    )
    conversation_id = new_conversation(data_dir, "survive the kill")
    app = still_app(data_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await started_in_the_ui(pilot, app, conversation_id)
        screen = main_screen(app)
        bar = screen.detail.query_one("#approval-bar")
        await settle(pilot, lambda: bar.display, timeout=20)
        kill_hard(served.pid)
        await settle(pilot, lambda: not app.backend.is_running(conversation_id) and not bar.display, timeout=10)
        assert screen.check_action("decide", ("approve",)) is False
        await pilot.press("s")
        await settle(pilot, lambda: server_status(data_dir) is not None, timeout=30)
        await settle(pilot, lambda: bar.display, timeout=30)  # the resumed loop asks (the model's next step)
        await pilot.press("y")
        workspace = data_dir / "conversations" / conversation_id / "workspace"
        await settle(pilot, lambda: (workspace / "resumed.txt").exists(), timeout=20)


async def test_a_rows_cost_and_tokens_follow_each_model_call_before_the_store_has_them(
    data_dir: Path, llm: FakeLLMServer, served: subprocess.Popen
) -> None:
    """The server writes metrics to the store at most every 10 s; the UI's
    row shows the newest from the stream (the title and a second step within
    10 s of the first, then a long command: the store is behind)."""
    SettingsStore(data_dir / "settings.json").update({"confirmation_mode": False})
    llm.responder = Script(
        ToolCall("execute_bash", {"command": "true"}, usage=(100, 10)),
        ToolCall("execute_bash", {"command": "sleep 30"}, usage=(200, 20)),
    )
    conversation_id = new_conversation(data_dir, "count the tokens")
    app = still_app(data_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await up_with(pilot, app, conversation_id)
        seen: list[MetricsChanged] = []
        app.backend.subscribe(lambda update: seen.append(update) if isinstance(update, MetricsChanged) else None)
        await started_in_the_ui(pilot, app, conversation_id)
        await settle(pilot, lambda: len(seen) == 3, timeout=20)  # two steps and the title
        row = app.backend.row(conversation_id)
        assert (row.prompt_tokens, row.completion_tokens, row.total_tokens) == (310, 35, 345)
        assert stored_total_tokens(data_dir, conversation_id) < 345  # not written yet
        await pilot.press("x")
        await settle(pilot, lambda: not app.backend.is_running(conversation_id), timeout=20)
    assert stored_total_tokens(data_dir, conversation_id) == 345  # written at the stop


async def test_quitting_leaves_loops_running_and_says_so(
    data_dir: Path, llm: FakeLLMServer, served: subprocess.Popen, capsys: pytest.CaptureFixture[str]
) -> None:
    llm.responder = Script(Hang())
    conversation_id = new_conversation(data_dir, "think for a long time")
    app = still_app(data_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await started_in_the_ui(pilot, app, conversation_id)
        await pilot.press("q")
        await settle(pilot, lambda: not app.is_running)
    assert app.return_code == 0
    assert "1 loop(s) keep running in the convtui server; `convtui serve stop` ends them" in capsys.readouterr().err
    assert server_status(data_dir)["running"] == [conversation_id]


async def test_stop_all_and_quit_stops_the_servers_loops(data_dir: Path, llm: FakeLLMServer, served: subprocess.Popen) -> None:
    llm.responder = Script(Hang())
    conversation_id = new_conversation(data_dir, "think for a long time")
    app = still_app(data_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await started_in_the_ui(pilot, app, conversation_id)
        await pilot.press("Q")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert app.screen.question == "Stop all 1 running loop(s) and quit?"
        await pilot.press("y")
        await settle(pilot, lambda: not app.is_running, timeout=20)
    assert server_status(data_dir)["running"] == []


@pytest.mark.skipif(TMUX is None, reason="tmux is not installed")
def test_a_terminal_that_hangs_up_loses_nothing(tmp_path: Path, data_dir: Path, llm: FakeLLMServer, monkeypatch) -> None:
    """Start a loop from a UI in tmux, hang up that terminal, open a new UI:
    the loop still runs there, with what it did meanwhile, and its pending
    action can be approved."""
    monkeypatch.delenv("CONVTUI_SERVER")
    data_dir.mkdir(parents=True)
    SettingsStore(data_dir / "settings.json").update(
        {"llm_model": "openai/fake-model", "llm_api_key": API_KEY, "llm_base_url": llm.base_url}
    )
    release = __import__("threading").Event()

    def slow_then_ask(body: dict) -> object:
        if body["messages"][0]["content"].startswith("Write a short title"):
            return Text("Hangup proof")
        if not any(m.get("role") == "tool" for m in body["messages"]):
            release.wait(30)  # the first answer comes after the hangup
            return ToolCall("execute_bash", {"command": "echo survived > hangup.txt"})
        return Text("all done")

    llm.responder = slow_then_ask
    conversation_id = new_conversation(data_dir, "survive the hangup")
    environment = {name: value for name, value in os.environ.items() if name not in ("TMUX", "TMUX_PANE", "CONVTUI_SERVER")}
    app = f"{shlex.quote(sys.executable)} -m convtui --data-dir {shlex.quote(str(data_dir))}"
    first = TmuxSession(app, 120, 36, environment)
    try:
        first.wait_for("survive the hangup", timeout=30)
        first.press("s")
        first.wait_for("working", timeout=30)
        ui_pid = int(first.tmux("list-panes", "-t", first.name, "-F", "#{pane_pid}").strip())
    finally:
        first.close()  # kill-session: the pane's processes get SIGHUP
    wait_gone(ui_pid)
    release.set()
    second = TmuxSession(app, 120, 36, environment)
    try:
        second.wait_for("needs approval", timeout=30)
        second.wait_for("echo survived", timeout=10)
        # y acts once the UI holds the action waited on (the server's stream
        # brings it, a moment after the row's state): the footer offers it then.
        second.wait_for("y Approve", timeout=10)
        second.press("y")
        deadline = time.monotonic() + 20
        proof = data_dir / "conversations" / conversation_id / "workspace" / "hangup.txt"
        while not proof.exists():
            assert time.monotonic() < deadline, second.screen()
            time.sleep(0.05)
        second.wait_for("all done", timeout=20)
    finally:
        second.close()
        stop_if_running(data_dir)


async def test_the_shown_conversations_reply_streams_and_the_others_come_whole(
    data_dir: Path, llm: FakeLLMServer, served: subprocess.Popen
) -> None:
    """A streamed model call costs litellm about three times the CPU of a
    whole one: the server streams a reply only while a UI shows its
    conversation, and the UI shows the pieces as they come."""
    script = Script(ToolCall("execute_bash", {"command": "echo shown"}), Text("the shown one is done"), Text("the other is done"))
    llm.responder = script
    other = new_conversation(data_dir, "the other one")
    shown = new_conversation(data_dir, "the shown one")  # the newest: selected at launch
    app = still_app(data_dir)
    async with app.run_test(size=(120, 36)) as pilot:
        await up_with(pilot, app, shown)
        streamed: list[TextStreamed] = []
        app.backend.subscribe(lambda update: isinstance(update, TextStreamed) and streamed.append(update))
        await started_in_the_ui(pilot, app, shown)
        await settle(pilot, lambda: app.backend.manager.pending_action(shown) is not None, timeout=20)
        await pilot.press("y")  # the reply after the command is asked for while the UI shows it
        await settle(pilot, lambda: "".join(u.text for u in streamed) == "the shown one is done", timeout=20)
        assert {u.conversation_id for u in streamed} == {shown}

        ran = subprocess.run(
            [sys.executable, "-m", "convtui", "--data-dir", str(data_dir), "run", other],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        assert "the other is done" in ran.stdout
        assert {u.conversation_id for u in streamed} == {shown}  # nobody showed the other
        # Started in the UI, the shown one streams from its first reply (watched before the start).
        assert [bool(body.get("stream")) for body in script.agent_requests] == [True, True, False]
        await pilot.press("q")
