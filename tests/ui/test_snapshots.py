"""Snapshots of the main screen in its characteristic states.

Everything on screen is fixed: conversations are seeded with fixed ids and
times (seed.py), the app's clock is frozen and animations are off. The two
live-loop snapshots hold a loop lock or run a real loop against the fake
model server, and wait for an exact state before the screenshot is taken.

Regenerate after an intended change with
`pytest tests/ui/test_snapshots.py --snapshot-update` and look at the SVGs
before committing them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from convtui.app import ConvtuiApp
from convtui.backend import events as events_module
from convtui.backend import service as service_module
from convtui.backend.events import EventLog as StoredEventLog
from convtui.backend.loop_lock import LoopLock
from convtui.backend.models import AgentState, format_timestamp
from convtui.backend.service import ConversationService, user_message
from convtui.screens.main import MainScreen
from convtui.widgets.conversation_list import ConversationList
from convtui.widgets.event_log import EventLog

from ..fake_llm import FakeLLMServer, Hang, ToolCall
from .seed import NOW, SAMPLES, frozen_clock, seed_store, settle, still_app

NARROW = (80, 24)
WIDE = (160, 48)

RunBefore = Callable[[Pilot], Any]


@pytest.fixture(autouse=True)
def _home_is_the_test_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The detail pane shows the workspace as ~/data/conversations/<id>/workspace:
    the same path in every run."""
    monkeypatch.setenv("HOME", str(tmp_path))


# -- waiting for a state -------------------------------------------------------------


def main_screen(app: ConvtuiApp) -> MainScreen | None:
    return next((s for s in app.screen_stack if isinstance(s, MainScreen)), None)


def listed_ids(app: ConvtuiApp) -> list[str]:
    screen = main_screen(app)
    return list(screen.query_one(ConversationList).ids) if screen is not None else []


def header_text(app: ConvtuiApp) -> str:
    screen = main_screen(app)
    return str(screen.query_one("#detail-header").render()) if screen is not None else ""


def shown_events(app: ConvtuiApp) -> list[dict]:
    screen = main_screen(app)
    return screen.query_one(EventLog).events if screen is not None else []


def ready(app: ConvtuiApp, count: int) -> Callable[[], bool]:
    """The list holds `count` rows and the first one's detail is shown."""
    return lambda: len(listed_ids(app)) == count and main_screen(app).selected_id == listed_ids(app)[0]


def selected(app: ConvtuiApp, conversation_id: str, title: str, events: int) -> Callable[[], bool]:
    """The conversation is selected, its header and its `events` events shown."""

    def check() -> bool:
        screen = main_screen(app)
        return (
            screen is not None
            and screen.selected_id == conversation_id
            and title in header_text(app)
            and len(shown_events(app)) == events
        )

    return check


def wait_for(*conditions: Callable[[ConvtuiApp], Callable[[], bool]], press: tuple[str, ...] = ()) -> RunBefore:
    """A run_before: wait for the main screen, press keys, wait again."""

    async def run_before(pilot: Pilot) -> None:
        await settle(pilot, lambda: main_screen(pilot.app) is not None)
        if conditions:
            await settle(pilot, conditions[0](pilot.app))
        for key in press:
            await pilot.press(key)
        for condition in conditions[1:]:
            await settle(pilot, condition(pilot.app))

    return run_before


VISIBLE_SAMPLES = len([sample for sample in SAMPLES if not sample.get("archived")])


def conversation_directory(data_dir: Path, conversation_id: str) -> Path:
    return data_dir / "conversations" / conversation_id


def at(minutes_before_now: float) -> str:
    """A fixed event timestamp."""
    return format_timestamp(NOW - timedelta(minutes=minutes_before_now))


# -- 1. nothing yet --------------------------------------------------------------------


def test_empty_state(snap_compare, data_dir: Path) -> None:
    """No conversations: the list says what to press."""

    def empty(app: ConvtuiApp) -> Callable[[], bool]:
        return lambda: main_screen(app).query_one("#empty-state").display and "0 of 0" in str(
            main_screen(app).query_one("#list-status").render()
        )

    assert snap_compare(still_app(data_dir), terminal_size=NARROW, run_before=wait_for(empty))


# -- 2. the list -----------------------------------------------------------------------


def test_list_narrow(snap_compare, data_dir: Path) -> None:
    """80×24: the list alone, archived conversation hidden."""
    seed_store(data_dir)
    assert snap_compare(
        still_app(data_dir),
        terminal_size=NARROW,
        run_before=wait_for(lambda app: ready(app, VISIBLE_SAMPLES)),
    )


def test_list_wide(snap_compare, data_dir: Path) -> None:
    """160×48: the list beside the detail of the first conversation."""
    ids = seed_store(data_dir)
    assert snap_compare(
        still_app(data_dir),
        terminal_size=WIDE,
        run_before=wait_for(lambda app: selected(app, ids[0], SAMPLES[0]["title"], 0)),
    )


# -- 3. filtering --------------------------------------------------------------------


def test_filter_highlights_matches(snap_compare, data_dir: Path) -> None:
    """/engine: two rows left, the word highlighted, the filter in the status line."""
    ids = seed_store(data_dir)

    def filtered(app: ConvtuiApp) -> Callable[[], bool]:
        return lambda: (
            listed_ids(app) == [ids[3], ids[4]]
            and main_screen(app).selected_id == ids[3]
            and SAMPLES[3]["title"] in header_text(app)
            and "filter: engine" in str(main_screen(app).query_one("#list-status").render())
        )

    assert snap_compare(
        still_app(data_dir),
        terminal_size=WIDE,
        run_before=wait_for(lambda app: ready(app, VISIBLE_SAMPLES), filtered, press=("slash", *"engine")),
    )


# -- 4. a running conversation --------------------------------------------------------

RUNNING = {
    "title": "Run the engine's unit tests",
    "selected_repository": "acme/engine",
    "selected_branch": "main",
    "trigger": "gui",
    "hours": 0.02,
    "status": "RUNNING",
    "runtime_status": "STATUS$READY",
    "agent_state": "running",
    "accumulated_cost": 0.0712,
    "prompt_tokens": 3120,
    "completion_tokens": 410,
    "total_tokens": 3530,
}

RUNNING_EVENTS = [
    {**user_message("Run the unit tests of the engine and tell me what fails."), "timestamp": at(2)},
    {
        "source": "agent",
        "action": "run",
        "message": "Running command: python -m pytest -q tests/engine",
        "args": {"command": "python -m pytest -q tests/engine", "thought": "Run the engine tests first.", "is_input": False},
        "timestamp": at(1.9),
    },
    {
        "source": "agent",
        "observation": "run",
        "content": "........F.\nFAILED tests/engine/test_cache.py::test_eviction - assert 3 == 2\n1 failed, 9 passed in 0.42s",
        "extras": {"command": "python -m pytest -q tests/engine", "exit_code": 1, "timed_out": False},
        "cause": 1,
        "timestamp": at(1.5),
    },
    {
        "source": "agent",
        "action": "read",
        "message": "Reading file: engine/cache.py",
        "args": {"path": "engine/cache.py", "view_range": None, "thought": "Look at the eviction code."},
        "timestamp": at(1.2),
    },
]


def test_running_conversation_with_its_log(snap_compare, data_dir: Path) -> None:
    """A conversation whose loop runs (this process holds its loop lock, as a
    runner in another process would): RUNNING badge, its live log."""
    ids = seed_store(data_dir, [*SAMPLES, RUNNING])
    running_id = ids[-1]
    directory = conversation_directory(data_dir, running_id)
    StoredEventLog(directory).append(RUNNING_EVENTS)
    lock = LoopLock(directory)
    assert lock.acquire() is None
    try:

        def shown(app: ConvtuiApp) -> Callable[[], bool]:
            check = selected(app, running_id, RUNNING["title"], len(RUNNING_EVENTS))
            return lambda: check() and "▶ working" in header_text(app)

        assert snap_compare(
            still_app(data_dir),
            terminal_size=WIDE,
            run_before=wait_for(lambda app: ready(app, VISIBLE_SAMPLES + 1), shown),
        )
    finally:
        lock.release()


# -- 5. awaiting confirmation ----------------------------------------------------------

WAITING = {
    "title": "List the workspace files",
    "trigger": "gui",
    "hours": 0.01,
}


def test_awaiting_confirmation(snap_compare, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real loop asks to run a command: the approval bar is shown."""
    # The loop stamps metadata and events with the backend's clock: freeze it
    # too, or "updated" would depend on the time of day.
    monkeypatch.setattr(service_module, "utc_now", frozen_clock)
    monkeypatch.setattr(events_module, "utc_now", frozen_clock)
    ids = seed_store(data_dir, [*SAMPLES, WAITING])
    waiting_id = ids[-1]
    StoredEventLog(conversation_directory(data_dir, waiting_id)).append(
        [{**user_message("What is in the workspace?"), "timestamp": at(1)}]
    )

    with FakeLLMServer.in_thread() as llm:
        # First call: run a command (waits for approval); any later call never answers.
        llm.responder = lambda body: (
            ToolCall("execute_bash", {"command": "ls -la /workspace"}, call_id="call_snap_1",
                     content="Let me look at the files.")
            if llm.request_count <= 1 else Hang()
        )

        async def configure() -> None:
            service = await ConversationService.open(data_dir, user_id="tester")
            try:
                await service.update_settings(
                    {"llm_model": "openai/fake-model", "llm_api_key": "sk-snap-0123456789", "llm_base_url": llm.base_url}
                )
            finally:
                service.close()

        asyncio.run(configure())

        def asking(app: ConvtuiApp) -> Callable[[], bool]:
            def check() -> bool:
                screen = main_screen(app)
                info = screen.backend.service.row(waiting_id)
                return (
                    screen.backend.manager.pending_action(waiting_id) is not None
                    and screen.query_one("#approval-bar").display
                    and info is not None
                    and info.agent_state is AgentState.AWAITING_USER_CONFIRMATION
                    # The header joins the live state with the stored metadata,
                    # which the loop writes just after it publishes the state:
                    # wait until the stored reason and token counts are shown.
                    and "? needs approval" in header_text(app)
                    and "Running command: ls -la /workspace" in header_text(app)
                    and "tokens 15 (10 in, 5 out)" in header_text(app)
                    and [e.get("id") for e in shown_events(app)] == [0, 1]
                    and screen.query_one(EventLog).streaming == ""
                )

            return check

        async def run_before(pilot: Pilot) -> None:
            app = pilot.app
            await settle(pilot, lambda: main_screen(app) is not None)
            await settle(pilot, selected(app, waiting_id, WAITING["title"], 1))
            await pilot.press("s")
            await settle(pilot, asking(app), timeout=30)

        assert snap_compare(still_app(data_dir), terminal_size=WIDE, run_before=run_before)
        assert llm.request_count == 1


# -- 6. an error -----------------------------------------------------------------------


def test_error_state(snap_compare, data_dir: Path) -> None:
    """The conversation whose loop failed: the header gives the reason."""
    ids = seed_store(data_dir)
    assert snap_compare(
        still_app(data_dir),
        terminal_size=WIDE,
        run_before=wait_for(
            lambda app: ready(app, VISIBLE_SAMPLES),
            lambda app: selected(app, ids[1], SAMPLES[1]["title"], 0),
            press=("j",),
        ),
    )


# -- 7. untrusted text is shown literally ------------------------------------------------

MARKUP_TITLE = "[bold]not bold[/] [link=http://x]no link[/]"
ESCAPES = "\x1b[31mred\x1b[0m \x1b]52;c;ZXZpbA==\x07 bell\x07"


AGENT_MARKDOWN = (
    "## What I found\n\n"
    "1. `parser.py` reads [bold]markup[/bold] as **text**\n"
    "2. escapes stay visible: " + ESCAPES + "\n\n"
    "```python\ndef parse(text):\n    return text.split()\n```\n\n"
    "A long sentence that has to wrap at a word boundary rather than in the middle of a word, "
    "because nobody reads words cut in two halves comfortably."
)


def test_markup_and_escapes_are_literal(snap_compare, data_dir: Path) -> None:
    """Markup in a title and escape sequences in a message are shown, not
    obeyed; the agent's Markdown is rendered, its markup and escapes still literal."""
    ids = seed_store(data_dir, [*SAMPLES, {"title": MARKUP_TITLE, "trigger": "cli", "hours": 0.05}])
    markup_id = ids[-1]
    reply = {"source": "agent", "action": "message", "message": AGENT_MARKDOWN,
             "args": {"content": AGENT_MARKDOWN, "image_urls": None, "wait_for_response": True}}
    StoredEventLog(conversation_directory(data_dir, markup_id)).append(
        [{**user_message(ESCAPES), "timestamp": at(3)}, {**reply, "timestamp": at(2)}]
    )
    assert snap_compare(
        still_app(data_dir),
        terminal_size=WIDE,
        run_before=wait_for(lambda app: selected(app, markup_id, MARKUP_TITLE, 2)),
    )
