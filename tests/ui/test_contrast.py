"""Every text reads in every theme offered, in truecolor, 256 colours,
16 colours and NO_COLOR: no cell's foreground is (nearly) its background.

The main screen is rendered with a row in every state (each status, marked,
matched by the filter) under the cursor in turn, focused and not, with an
event log of every kind and the approval bar; then each dialog. Each
rendering is read through each colour system (contrast.py) and every
visible character must have at least MINIMUM_CONTRAST against its cell."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from rich.color import ColorSystem
from textual.pilot import Pilot

from convtui.app import ConvtuiApp
from convtui.backend.events import EventLog as StoredEventLog
from convtui.backend.models import AgentState, ConversationInfo, ConversationStatus, format_timestamp
from convtui.backend.service import user_message
from convtui.backend.settings import THEME_NAMES
from convtui.screens.main import MainScreen
from convtui.widgets.conversation_list import ConversationList
from convtui.widgets.detail_pane import DetailPane

from .contrast import COLOUR_SYSTEMS, TERMINAL_BACKGROUND, poor_contrast, screen_strips, shown_colour
from .seed import NOW, SAMPLES, seed_store, settle, still_app

# WCAG 2's floor for large text and interface parts in truecolor. With 256
# or 16 colours the theme's colours snap to a coarse palette (and in 16 the
# terminal's own palette shows them; Rich's VGA one only stands for it):
# pairs that read well lose some contrast on the way, white on cyan is 2.9:1.
# "Near-equal" is well under 2.5.
MINIMUM_CONTRAST = {"truecolor": 3.0, "256": 2.5, "16": 2.5}
SIZE = (120, 34)

# Each listed row is painted in one of these states (status, agent state).
ROW_STATES: list[tuple[ConversationStatus, AgentState | None]] = [
    (ConversationStatus.RUNNING, AgentState.RUNNING),
    (ConversationStatus.RUNNING, AgentState.AWAITING_USER_CONFIRMATION),
    (ConversationStatus.RUNNING, AgentState.AWAITING_USER_INPUT),
    (ConversationStatus.ERROR, AgentState.ERROR),
    (ConversationStatus.STOPPED, AgentState.FINISHED),
    (ConversationStatus.STOPPED, None),
    (ConversationStatus.ARCHIVED, None),
]


def at(minutes_before_now: float) -> str:
    return format_timestamp(NOW - timedelta(minutes=minutes_before_now))


EVENTS = [
    {**user_message("Run the unit tests of the engine."), "timestamp": at(3)},
    {"source": "agent", "action": "message", "args": {"content": "I will run them now.", "wait_for_response": False},
     "message": "I will run them now.", "timestamp": at(2.5)},
    {"source": "agent", "action": "run", "message": "Running command: pytest -q",
     "args": {"command": "pytest -q", "thought": "Run the tests.", "is_input": False}, "timestamp": at(2)},
    {"source": "agent", "observation": "run", "content": "1 failed, 9 passed", "cause": 2,
     "extras": {"command": "pytest -q", "exit_code": 1, "timed_out": False}, "timestamp": at(1.5)},
    {"source": "agent", "observation": "error", "content": "the model provider refused the API key",
     "extras": {}, "timestamp": at(1)},
]


def in_state(info: ConversationInfo, state: tuple[ConversationStatus, AgentState | None]) -> ConversationInfo:
    status, agent_state = state
    return info.model_copy(update={"status": status, "agent_state": agent_state})


def main_screen(app: ConvtuiApp) -> MainScreen:
    return next(screen for screen in app.screen_stack if isinstance(screen, MainScreen))


async def open_main_screen(pilot: Pilot, data_dir: Path, ids: list[str]) -> ConversationList:
    """The list with a row in every state, every other row marked, every row
    matching a filter word, and the first conversation's log shown."""
    app = pilot.app
    await settle(pilot, lambda: any(isinstance(screen, MainScreen) for screen in app.screen_stack))
    screen = main_screen(app)
    listed = screen.query_one(ConversationList)
    await settle(pilot, lambda: len(listed.ids) == len(ids) - 1 and screen.selected_id is not None)  # one is archived
    states = {conversation_id: ROW_STATES[index % len(ROW_STATES)] for index, conversation_id in enumerate(ids)}
    row = listed.row_source
    listed.row_source = lambda conversation_id: (
        None if (info := row(conversation_id)) is None else in_state(info, states[conversation_id])
    )
    listed.set_ids(ids, highlight_words=("the", "acme", "notes", "old"))
    listed.marked = set(ids[::2])
    screen.query_one(DetailPane).show_pending(EVENTS[2])
    await pilot.pause()
    return listed


def problems_now(app: ConvtuiApp, where: str, systems: dict[str, ColorSystem]) -> list[str]:
    return [
        f"{app.theme} {system_name} {where}: {problem}"
        for system_name, system in systems.items()
        for problem in poor_contrast(app, system, MINIMUM_CONTRAST[system_name])
    ]


def cursor_unseen(app: ConvtuiApp, listed: ConversationList, where: str, systems: dict[str, ColorSystem]) -> list[str]:
    """The cursor row must stand out from the row beside it (its background,
    or reverse video under NO_COLOR), focused or not."""
    strips = screen_strips(app)
    region = listed.region
    cursor_y = region.y + listed.cursor - int(listed.scroll_offset.y)
    other_y = cursor_y + 1 if listed.cursor == 0 else cursor_y - 1

    def look(y: int, system: ColorSystem) -> tuple:
        [segment] = list(strips[y].crop(region.x + 4, region.x + 5))
        return shown_colour(segment.style.bgcolor, system, TERMINAL_BACKGROUND), bool(segment.style.reverse)

    return [
        f"{app.theme} {system_name} {where}: row {cursor_y} the cursor row looks like row {other_y}"
        for system_name, system in systems.items()
        if look(cursor_y, system) == look(other_y, system)
    ]


async def every_state(pilot: Pilot, data_dir: Path, ids: list[str], systems: dict[str, ColorSystem]) -> list[str]:
    """The contrast problems of every screen state in the current theme."""
    app = pilot.app
    listed = main_screen(app).query_one(ConversationList)
    problems: list[str] = []
    for focused in (listed, main_screen(app).query_one("#filter"), main_screen(app).query_one("#event-log")):
        focused.focus()
        for row in range(len(ids)):
            listed.cursor = row
            await pilot.pause()
            where = f"cursor on row {row}, {focused.id} focused"
            problems += problems_now(app, where, systems)
            problems += cursor_unseen(app, listed, where, systems)
    for key in ("n", "r", "d", "f2", "question_mark", "ctrl+p", "i"):
        listed.focus()
        await pilot.pause()
        await pilot.press(key)
        await settle(pilot, lambda: not isinstance(app.screen, MainScreen))
        await pilot.pause()
        problems += problems_now(app, f"dialog {type(app.screen).__name__}", systems)
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, MainScreen))
    return problems


def unique(problems: list[str]) -> list[str]:
    """One report per poor cell and colour system, whatever state showed it."""
    seen: dict[str, str] = {}
    for problem in problems:
        theme, system, rest = problem.split(" ", 2)
        seen.setdefault(system + rest.split(": ", 1)[1], problem)
    return list(seen.values())


def seed(data_dir: Path) -> list[str]:
    # The conversation that failed waits in the inbox (`i` shows it).
    ids = seed_store(data_dir, [{**sample, "attention": "error"} if sample.get("status") == "ERROR" else sample for sample in SAMPLES])
    StoredEventLog(data_dir / "conversations" / ids[0]).append(EVENTS)
    return ids


@pytest.mark.parametrize("theme", THEME_NAMES)
async def test_every_text_reads_in_every_colour_system(theme: str, data_dir: Path) -> None:
    ids = seed(data_dir)
    app = still_app(data_dir)
    async with app.run_test(size=SIZE) as pilot:
        await open_main_screen(pilot, data_dir, ids)
        app.theme = theme
        problems = await every_state(pilot, data_dir, ids, COLOUR_SYSTEMS)
    assert not problems, "\n".join(unique(problems)[:40])


async def test_no_color_keeps_the_cursor_and_every_state_apart(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NO_COLOR: Textual turns every colour grey. The greys still read, and
    the cursor row is told from the others by reverse video, not by a shade."""
    monkeypatch.setenv("NO_COLOR", "1")
    ids = seed(data_dir)
    app = still_app(data_dir)
    async with app.run_test(size=SIZE) as pilot:
        listed = await open_main_screen(pilot, data_dir, ids)
        assert app.no_color
        problems = await every_state(pilot, data_dir, ids, {"truecolor": ColorSystem.TRUECOLOR})
        assert not problems, "\n".join(unique(problems)[:40])
        region = listed.region
        for focused in (listed, main_screen(app).query_one("#filter")):
            focused.focus()
            for cursor in range(len(ids)):
                listed.cursor = cursor
                await pilot.pause()
                strips = screen_strips(app)
                for row in range(len(ids)):
                    styles = {
                        bool(style.reverse)
                        for text, style, _ in strips[region.y + row].crop(region.x, region.right)
                        if text.strip()
                    }
                    assert styles == {row == cursor}, (focused.id, cursor, row, styles)
