"""The main screen driven the way a person drives it: keys in, screen out."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.cells import cell_len
from textual.app import App
from textual.geometry import Region
from textual.widgets._footer import FooterKey

from convtui.app import ConvtuiApp
from convtui.backend.models import AgentState, ConversationStatus
from convtui.backend.query import parse_query
from convtui.screens.main import MainScreen
from convtui.widgets.conversation_list import ConversationList
from convtui.widgets.event_log import EventLog
from convtui.widgets.filter_box import FilterBox

from ..fake_llm import FakeLLMServer, Hang, Text, ToolCall
from ..conftest import FIXTURES
from .seed import SAMPLES, seed_store, settle, still_app


def main_screen(app: ConvtuiApp) -> MainScreen:
    screen = next(s for s in app.screen_stack if isinstance(s, MainScreen))
    return screen


async def main_screen_with_model(pilot, app: ConvtuiApp, llm: FakeLLMServer) -> MainScreen:  # noqa: ANN001
    """The main screen once it is up, with the fake model configured."""
    await settle(pilot, lambda: any(isinstance(s, MainScreen) for s in app.screen_stack))
    screen = main_screen(app)
    await screen.backend.service.update_settings(
        {"llm_model": "openai/fake-model", "llm_api_key": "sk-ui-test-123456789", "llm_base_url": llm.base_url}
    )
    return screen


def listed(app: ConvtuiApp) -> ConversationList:
    return main_screen(app).query_one(ConversationList)


def titles(app: ConvtuiApp) -> list[str]:
    service = main_screen(app).backend.service
    return [service.row(i).title for i in listed(app).ids]


def status_line(app: ConvtuiApp) -> str:
    return str(main_screen(app).query_one("#list-status").render())


def ready(app: ConvtuiApp) -> Callable[[], bool]:
    return lambda: any(isinstance(s, MainScreen) for s in app.screen_stack) and bool(listed(app).ids)


async def test_moving_through_the_list_updates_the_detail(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        visible = [s["title"] for s in SAMPLES if not s.get("archived")]
        assert titles(app) == visible  # newest activity first, archived hidden
        assert status_line(app).startswith("5 of 6")
        conversation_list = listed(app)
        header = lambda: str(main_screen(app).query_one("#detail-header").render())  # noqa: E731
        assert "Fix the flaky payments test" in header()
        await pilot.press("j")
        await settle(pilot, lambda: "Refactor the settings loader" in header())
        await pilot.press("down", "down")
        assert conversation_list.cursor == 3
        await pilot.press("k")
        assert conversation_list.cursor == 2
        await pilot.press("G")
        assert conversation_list.cursor == 4
        await pilot.press("g")
        assert conversation_list.cursor == 0
        await pilot.press("end")
        assert conversation_list.cursor == 4
        await pilot.press("home", "pagedown")
        assert conversation_list.cursor == 4
        await pilot.press("pageup")
        assert conversation_list.cursor == 0


async def test_filter_narrows_highlights_and_escape_clears(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        await pilot.press("slash")
        for key in "engine":
            await pilot.press(key)
        await settle(pilot, lambda: len(listed(app).ids) == 2)
        assert titles(app) == ["Investigate slow CI on the engine", "Port the parser to Rust"]
        assert status_line(app).startswith("2 of 6")
        assert listed(app).highlight_words == ("engine",)
        await pilot.press("escape")
        await settle(pilot, lambda: len(listed(app).ids) == 5)
        assert app.focused is listed(app)

        await pilot.press("slash", *"status:error")
        await settle(pilot, lambda: len(listed(app).ids) == 1)
        assert titles(app) == ["Refactor the settings loader"]
        await pilot.press("escape")
        await pilot.press("slash", *"is:archived")
        await settle(pilot, lambda: titles(app) == ["Old experiment"])
        await pilot.press("escape")
        await pilot.press("slash", *"repo:acme/engine rust")
        await settle(pilot, lambda: titles(app) == ["Port the parser to Rust"])
        await pilot.press("enter")
        assert app.focused is listed(app)


async def test_sort_cycles(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        await pilot.press("o", "o")  # created, then title
        await settle(pilot, lambda: "sort: title" in status_line(app))
        await settle(pilot, lambda: titles(app)[0] == "Fix the flaky payments test")
        assert titles(app) == sorted(titles(app), key=str.casefold)
        await pilot.press("o", "o")  # status, then cost
        await settle(pilot, lambda: "sort: cost" in status_line(app))
        await settle(pilot, lambda: titles(app)[0] == "Port the parser to Rust")


async def test_new_conversation_dialog_creates_it(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        await pilot.press("n")
        await settle(pilot, lambda: type(app.screen).__name__ == "NewConversationScreen")
        await pilot.press(*"Add a health check")
        app.screen.query_one("Checkbox").value = False  # not start now: no model in this test
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, MainScreen) and len(listed(app).ids) == 6)
        service = main_screen(app).backend.service
        [new_id] = set(listed(app).ids) - set(seeded)
        events = await service.search_events(new_id)
        assert events[0]["message"] == "Add a health check"
        assert (await service.get(new_id)).trigger.value == "gui"
        # The new conversation is the selected row: the cursor is on it, its detail shown.
        screen = main_screen(app)
        await settle(pilot, lambda: listed(app).current_id == new_id and screen.selected_id == new_id)
        await settle(pilot, lambda: [e.get("message") for e in screen.query_one(EventLog).events] == ["Add a health check"])


async def test_a_created_conversation_is_selected_wherever_the_cursor_was(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, ready(app))
        await pilot.press("j", "j")
        await settle(pilot, lambda: listed(app).current_id == seeded[2])
        await pilot.press("n")
        await settle(pilot, lambda: type(app.screen).__name__ == "NewConversationScreen")
        await pilot.press(*"Count the tests")
        app.screen.query_one("Checkbox").value = False
        await pilot.press("ctrl+s")
        await settle(pilot, lambda: isinstance(app.screen, MainScreen) and len(listed(app).ids) == 6)
        [new_id] = set(listed(app).ids) - set(seeded)
        screen = main_screen(app)
        await settle(pilot, lambda: listed(app).current_id == new_id and screen.selected_id == new_id)
        await pilot.press("enter")  # opens the new one, not the row the cursor was on
        await settle(pilot, lambda: screen.query_one("#detail").display)
        await settle(pilot, lambda: [e.get("message") for e in screen.query_one(EventLog).events] == ["Count the tests"])


async def test_rename_delete_archive_and_marks(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        service = main_screen(app).backend.service
        first = listed(app).ids[0]
        await pilot.press("r")
        await settle(pilot, lambda: type(app.screen).__name__ == "RenameScreen")
        await pilot.press(*"Renamed by keys", "enter")
        await settle(pilot, lambda: service.row(first).title == "Renamed by keys")
        expected = await service.list_ids(parse_query("").filter)
        await settle(pilot, lambda: listed(app).ids == expected)  # the renamed row moved

        # Mark two rows, archive both at once.
        await pilot.press("g", "space", "space")
        marked = set(listed(app).ids[:2])
        assert listed(app).marked == marked
        assert "2 marked" in status_line(app)
        await pilot.press("a")
        await settle(pilot, lambda: len(listed(app).ids) == 3)
        assert all([(await service.get(conversation_id)).archived for conversation_id in marked])
        assert not listed(app).marked

        # Delete asks first; n keeps it, y deletes it.
        doomed = listed(app).ids[0]
        await pilot.press("g", "d")
        await settle(pilot, lambda: type(app.screen).__name__ == "ConfirmDeleteScreen")
        await pilot.press("n")
        await settle(pilot, lambda: isinstance(app.screen, MainScreen))
        assert service.row(doomed) is not None
        await pilot.press("d")
        await settle(pilot, lambda: type(app.screen).__name__ == "ConfirmDeleteScreen")
        await pilot.press("y")
        await settle(pilot, lambda: service.row(doomed) is None and len(listed(app).ids) == 2)


async def test_copy_export_help_and_settings(
    data_dir: Path, seeded: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        first = listed(app).ids[0]
        await pilot.press("c")
        assert app.clipboard == first
        await pilot.press("e")
        await settle(pilot, lambda: (tmp_path / f"convtui-{first[:8]}.json").exists())
        await pilot.press("question_mark")
        await settle(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        await pilot.press("escape")
        await pilot.press("f2")
        await settle(pilot, lambda: type(app.screen).__name__ == "SettingsScreen")
        await pilot.press("escape")
        await settle(pilot, lambda: isinstance(app.screen, MainScreen))


async def test_empty_state_tells_what_to_press(data_dir: Path) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, lambda: any(isinstance(s, MainScreen) for s in app.screen_stack))
        await settle(pilot, lambda: main_screen(app).query_one("#empty-state").display)
        assert "Press n" in str(main_screen(app).query_one("#empty-state").render())


async def test_narrow_terminals_open_the_detail_over_the_list(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, ready(app))
        screen = main_screen(app)
        assert screen.narrow and not screen.query_one("#detail").display
        await pilot.press("enter")
        await settle(pilot, lambda: screen.query_one("#detail").display)
        assert not screen.query_one("#list-column").display
        assert isinstance(app.focused, EventLog)
        await pilot.press("escape")
        await settle(pilot, lambda: screen.query_one("#list-column").display)
        assert app.focused is listed(app)


async def test_a_running_loop_updates_its_row_and_detail_live(data_dir: Path) -> None:
    async with FakeLLMServer() as llm:
        llm.responder = lambda body: (
            Text("Live title") if body["messages"][0]["content"].startswith("Write a short title")
            else ToolCall("execute_bash", {"command": "echo hello"}) if len(body["messages"]) < 4 else Hang()
        )
        app = still_app(data_dir)
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await main_screen_with_model(pilot, app, llm)
            created = await screen.backend.service.new_conversation({"initial_user_msg": "say hello"})
            await settle(pilot, lambda: len(listed(app).ids) == 1)  # found by polling
            await pilot.press("s")
            conversation_id = created.conversation_id
            # Confirmation mode is on: the row shows it waits, the approval bar appears.
            await settle(pilot, lambda: screen.backend.manager.pending_action(conversation_id) is not None, timeout=15)
            await settle(pilot, lambda: screen.query_one("#approval-bar").display)
            assert screen.backend.service.row(conversation_id).agent_state is AgentState.AWAITING_USER_CONFIRMATION
            await pilot.press("y")
            log = screen.query_one(EventLog)
            await settle(pilot, lambda: any(e.get("observation") == "run" for e in log.events), timeout=15)
            run = next(e for e in log.events if e.get("observation") == "run")
            assert run["content"].strip() == "hello"
            await settle(pilot, lambda: screen.backend.service.row(conversation_id).title == "Live title", timeout=15)
            assert screen.backend.service.row(conversation_id).status is ConversationStatus.RUNNING

            # q asks first while a loop runs; answering no keeps it running.
            await pilot.press("q")
            await settle(pilot, lambda: type(app.screen).__name__ == "ConfirmScreen")
            await pilot.press("n")
            await settle(pilot, lambda: isinstance(app.screen, MainScreen))
            assert screen.backend.manager.is_running(conversation_id)
            await pilot.press("x")
            await settle(pilot, lambda: not screen.backend.manager.is_running(conversation_id), timeout=5)
            assert (await screen.backend.service.get(conversation_id)).status is ConversationStatus.STOPPED


async def test_another_process_change_appears_within_a_second(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        first = listed(app).ids[0]
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "convtui", "--data-dir", str(data_dir), "rename", first, "Renamed elsewhere"],
            capture_output=True,
            text=True,
            env={**os.environ, "CONVTUI_USER": "tester"},
        )
        assert result.returncode == 0, result.stderr
        changed = time.monotonic()
        header = main_screen(app).query_one("#detail-header")
        await settle(pilot, lambda: "Renamed elsewhere" in titles(app) and "Renamed elsewhere" in str(header.render()), timeout=3)
        assert time.monotonic() - changed < 1.0


async def test_start_without_a_model_explains_how_to_set_one(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        await pilot.press("j", "j", "s")
        await settle(pilot, lambda: any("llm_model" in str(n.message) for n in app._notifications))


async def test_marked_conversations_start_together_and_a_refusal_is_said_once(
    data_dir: Path, seeded: list[str], llm: FakeLLMServer
) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        screen = await main_screen_with_model(pilot, app, llm)
        await screen.backend.service.update_settings({"max_concurrent_loops": 1})
        llm.default = Hang()
        await pilot.press("g", "space", "space", "space", "s")
        await settle(pilot, lambda: any("Cannot start" in str(n.title) for n in app._notifications), timeout=10)
        refusals = [n for n in app._notifications if n.title == "Cannot start"]
        # One started, the two others were refused together (the limit held though they started side by side).
        assert len(refusals) == 1 and "limit is 1" in refusals[0].message and "(2 conversations)" in refusals[0].message
        await screen.backend.stop_all()


async def test_demo_seeds_conversations_whose_replays_run(tmp_path: Path) -> None:
    from convtui.demo import seed

    data_dir = tmp_path / "demo"
    replays = await seed(data_dir)
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        screen = main_screen(app)
        assert len(listed(app).ids) == 5  # one sample is archived
        for conversation_id in replays:
            await screen.backend.manager.start(conversation_id)
        await settle(pilot, lambda: all(
            screen.backend.service.row(i).agent_state is AgentState.FINISHED for i in replays
        ), timeout=20)
        game = screen.backend.service.data_dir.workspace(replays[0]) / "game_2048.py"
        assert game.exists()


async def test_remember_prompt_for_the_selected_event(data_dir: Path) -> None:
    async with FakeLLMServer() as llm:
        llm.default = Text("<update_prompt>Run the engine tests with -x.</update_prompt>")
        app = still_app(data_dir)
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await main_screen_with_model(pilot, app, llm)
            await screen.backend.service.new_conversation({"initial_user_msg": "How do I run the engine tests?"})
            await settle(pilot, lambda: len(listed(app).ids) == 1)
            await pilot.press("tab")
            assert isinstance(app.focused, EventLog)
            await settle(pilot, lambda: app.focused.selected_event_id == 0)
            await pilot.press("R")
            await settle(pilot, lambda: type(app.screen).__name__ == "RememberPromptScreen")
            await settle(pilot, lambda: "Run the engine tests with -x." in app.screen.query_one("TextArea").text)
            await pilot.press("escape")


async def test_command_palette_reaches_the_actions(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        await pilot.press("ctrl+p")
        await settle(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
        await pilot.press(*"every key")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot, lambda: type(app.screen).__name__ == "HelpScreen")


def footer_keys(app: ConvtuiApp) -> list[str]:
    return [key.key for key in main_screen(app).query(FooterKey)]


async def test_filter_box_hands_over_its_text_at_once() -> None:
    """The list is filtered while the key is handled, not a message later,
    so the typed character and the narrowed list share one frame."""
    seen: list[str] = []
    box = FilterBox(seen.append)
    app = App()
    async with app.run_test() as pilot:
        await app.mount(box)
        box.value = "eng"
        assert seen == ["eng"]
        box.focus()
        await pilot.press("end", "x")
        assert seen == ["eng", "engx"]


async def test_filter_longer_than_its_box_scrolls_without_a_layout_pass(
    data_dir: Path, seeded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first character typed and the last one erased (the placeholder,
    wider than the box, comes and goes) repaint the box alone; a text wider
    than the box keeps its cursor in view, and Home shows its start."""
    app = still_app(data_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, ready(app))
        await pilot.press("slash")
        await pilot.pause()
        layouts: list[object] = []
        original = MainScreen._refresh_layout
        monkeypatch.setattr(MainScreen, "_refresh_layout", lambda screen, *a, **k: layouts.append(a) or original(screen, *a, **k))
        box = main_screen(app).query_one(FilterBox)
        await pilot.press("e", "backspace", "e", "backspace")
        await pilot.pause()
        assert layouts == []
        text = "abcdefghij" * 15 + "xyz"  # wider than the box at any layout of 100 columns
        await pilot.press(*text)
        await settle(pilot, lambda: box.value == text)
        shown = "".join(segment.text for segment in box.render_line(0)).rstrip()
        assert shown.endswith("xyz") and shown != text and box.scroll_x > 0
        await pilot.press("home")
        await settle(pilot, lambda: box.scroll_x == 0)
        assert "".join(segment.text for segment in box.render_line(0)).startswith("abcdefghij")


async def test_the_first_layout_holds_the_list_and_the_footer_is_built_once(
    data_dir: Path, seeded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The main screen is laid out the first time with its rows already in
    the list (no frame of an empty list, no second layout pass for them),
    and its footer is built once, with the keys that apply to a row."""
    from convtui.widgets.no_layout import KeysFooter

    rows_at_layout: list[int] = []
    original_layout = MainScreen._refresh_layout

    def layout(screen: MainScreen, *args: object, **kwargs: object) -> None:
        rows_at_layout.append(len(screen.query_one(ConversationList).ids))
        return original_layout(screen, *args, **kwargs)

    builds: list[list[str]] = []
    original_compose = KeysFooter.compose

    def compose(footer: KeysFooter):  # noqa: ANN202
        widgets = list(original_compose(footer))
        if widgets:
            builds.append([widget.key for widget in widgets if isinstance(widget, FooterKey)])
        return iter(widgets)

    monkeypatch.setattr(MainScreen, "_refresh_layout", layout)
    monkeypatch.setattr(KeysFooter, "compose", compose)
    app = still_app(data_dir)
    async with app.run_test(size=(140, 30)) as pilot:
        await settle(pilot, ready(app))
        await settle(pilot, lambda: "s" in footer_keys(app))
        await pilot.pause(0.2)
        assert rows_at_layout and rows_at_layout[0] == 5, rows_at_layout  # (one of the six is archived)
        assert len(builds) == 1 and "s" in builds[0], builds


async def test_scrollbar_and_footer_follow_the_list_and_keys(data_dir: Path) -> None:
    seed_store(data_dir, count=60)
    app = still_app(data_dir)
    async with app.run_test(size=(140, 30)) as pilot:
        await settle(pilot, ready(app))
        conversations = listed(app)
        assert conversations.show_vertical_scrollbar
        assert "escape" not in footer_keys(app)
        await pilot.press("slash", *"number 42")
        await settle(pilot, lambda: len(conversations.ids) == 1 and not conversations.show_vertical_scrollbar)
        assert "escape" in footer_keys(app)  # the footer was rebuilt: Back applies now
        await pilot.press("escape")
        await settle(pilot, lambda: len(conversations.ids) == 60 and conversations.show_vertical_scrollbar)
        await settle(pilot, lambda: "escape" not in footer_keys(app))
        await pilot.press("G")  # the scrollbar's range is the whole list
        await settle(pilot, lambda: conversations.scroll_offset.y == 60 - conversations.size.height)
        assert not conversations.show_horizontal_scrollbar  # rows are cut to the width


async def test_rows_know_their_width_in_cells(data_dir: Path) -> None:
    """Rows tell Textual their width; it must be right, wide characters included."""
    seed_store(data_dir, samples=[{"title": "Plain title"}, {"title": "修复登录页面的错误 " * 6}])
    app = still_app(data_dir)
    async with app.run_test(size=(140, 30)) as pilot:
        await settle(pilot, ready(app))
        conversations = listed(app)
        for width in (30, 60, 100):
            for row, conversation_id in enumerate(conversations.ids):
                info = main_screen(app).backend.service.row(conversation_id)
                segments, cells = conversations._row_segments(info, width, False, row)
                assert cells == sum(cell_len(segment.text) for segment in segments)
                assert cells >= width
                if info.title == "Plain title":
                    assert cells == width
        strips = conversations.render_lines(Region(0, 0, conversations.size.width, 2))
        assert all(strip.cell_length == conversations.size.width for strip in strips)


async def test_always_approve_is_shown_and_turned_off_with_a_key(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        screen = main_screen(app)
        conversation_id = listed(app).current_id
        header = lambda: str(screen.query_one("#detail-header").render())  # noqa: E731
        assert "always approve" not in header()
        await pilot.press("A")
        await settle(pilot, lambda: "always approve on (A turns it off)" in header())
        assert (await screen.backend.service.metadata(conversation_id)).always_approve
        await pilot.press("A")
        await settle(pilot, lambda: "always approve" not in header())
        assert not (await screen.backend.service.metadata(conversation_id)).always_approve
        # The palette reaches it too.
        await pilot.press("ctrl+p")
        await settle(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
        await pilot.press(*"Always approve on")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot, lambda: "always approve on" in header())


async def test_at_80_columns_approval_needs_the_action_in_view_and_keys_work_after_sending(data_dir: Path) -> None:
    async with FakeLLMServer() as llm:
        def respond(body: dict) -> object:
            if body["messages"][0]["content"].startswith("Write a short title"):
                return Text("A title")
            results = [m for m in body["messages"] if m["role"] == "tool"]
            users = [m for m in body["messages"] if m["role"] == "user"]
            if len(results) < len(users):
                return ToolCall("execute_bash", {"command": f"echo step {len(users)}"})
            return Text(f"done {len(users)}")

        llm.responder = respond
        app = still_app(data_dir)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await main_screen_with_model(pilot, app, llm)
            created = await screen.backend.service.new_conversation({"initial_user_msg": "first"})
            conversation_id = created.conversation_id
            await settle(pilot, lambda: listed(app).current_id == conversation_id)
            await pilot.press("s")
            await settle(pilot, lambda: screen.backend.manager.pending_action(conversation_id) is not None, timeout=15)
            # From the list, the action is not on screen: y does nothing.
            assert not screen.query_one("#detail").display
            await pilot.press("y")
            await pilot.pause(0.2)
            assert screen.backend.manager.pending_action(conversation_id) is not None
            # Opened, the action is the last thing in the log, above the approval bar.
            await pilot.press("enter")
            log = screen.query_one(EventLog)
            await settle(pilot, lambda: screen.query_one("#approval-bar").display and log.events[-1].get("action") == "run")
            await pilot.pause(0.1)
            assert int(log.scroll_offset.y) + log.scrollable_content_region.height >= log.line_count
            await pilot.press("y")
            await settle(pilot, lambda: any(e.get("message") == "done 1" for e in log.events), timeout=15)
            await settle(pilot, lambda: int(log.scroll_offset.y) + log.scrollable_content_region.height >= log.line_count)
            # A message sent from the input: focus goes back where y works.
            await pilot.click("#message-input")
            await pilot.press(*"second", "enter")
            await settle(pilot, lambda: screen.backend.manager.pending_action(conversation_id) is not None, timeout=15)
            assert app.focused is log
            await pilot.press("y")
            await settle(pilot, lambda: any(e.get("message") == "done 2" for e in log.events), timeout=15)
            await pilot.press("x")
            await settle(pilot, lambda: not screen.backend.manager.is_running(conversation_id), timeout=5)


async def test_the_detail_gives_the_workspace_without_pushing_out_other_lines(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot, ready(app))
        await pilot.press("enter")
        screen = main_screen(app)
        header = screen.query_one("#detail-header")
        await settle(pilot, lambda: header.display and "created" in str(header.render()))
        lines = str(header.render()).splitlines()
        [workspace] = [line for line in lines if line.startswith("workspace")]
        assert workspace.endswith(f"{seeded[0]}/workspace") and len(workspace) <= header.content_region.width
        assert lines[-1].startswith("created") and len(lines) == 5
        assert header.size.height == 5  # no line wrapped


async def test_the_log_shows_the_last_selected_conversation_however_selections_interleave(
    data_dir: Path, seeded: list[str]
) -> None:
    """Selections faster than the event log loads (a reload moving the cursor
    while a new conversation is selected): the log ends on the conversation
    selected last, never on one selected before it."""
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        screen = main_screen(app)
        first, second = seeded[0], seeded[1]
        await screen.backend.manager.send_message(second, "events of the second")
        for _ in range(20):
            screen._select(second)
            await asyncio.sleep(0)  # its loading has started, not finished
            screen._select(first)
            screen._select(second)
            await settle(
                pilot,
                lambda: [e.get("message") for e in screen.query_one(EventLog).events] == ["events of the second"],
            )
            screen._select(first)
            await settle(pilot, lambda: screen.query_one(EventLog).events == [])


@pytest.mark.parametrize("rows", [0, 3], ids=["empty", "listed"])
async def test_a_key_after_a_dialog_closes_acts_and_never_lands_in_the_filter(data_dir: Path, rows: int) -> None:
    """Back from a dialog, nothing was focused: Textual focused the first
    focusable widget, the filter box, which took the next key (`n`) as text."""
    if rows:
        seed_store(data_dir, count=rows)
    app = still_app(data_dir)
    async with app.run_test(size=(120, 32)) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, MainScreen))
        for dialog in ("f2", "question_mark"):
            await pilot.press(dialog)
            await settle(pilot, lambda: not isinstance(app.screen, MainScreen))
            await pilot.press("escape")
            await settle(pilot, lambda: isinstance(app.screen, MainScreen))
            assert app.screen.query_one(FilterBox).value == "" and not app.screen.query_one(FilterBox).has_focus
        await pilot.press("n")
        await settle(pilot, lambda: type(app.screen).__name__ == "NewConversationScreen")


async def test_the_filter_finds_conversations_by_what_they_did(data_dir: Path) -> None:
    """text:, file:, cmd: search the events (real OpenHands trajectories),
    typed in one burst; a date that is none is named, the rest still filters."""
    app = still_app(data_dir)
    async with app.run_test(size=(120, 32)) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, MainScreen))
        trajectories = FIXTURES / "openhands-trajectories"
        game = (await app.backend.import_trajectory((trajectories / "basic.json").read_bytes())).conversation_id
        chat = (await app.backend.import_trajectory((trajectories / "basic_interactions.json").read_bytes())).conversation_id
        listed = app.screen.query_one(ConversationList)
        await settle(pilot, lambda: set(listed.ids) == {game, chat})
        await pilot.press("slash", *"text:goldbach", "enter")
        await settle(pilot, lambda: list(listed.ids) == [chat])
        await pilot.press("escape", "slash", *"file:game_2048.py since:yesterday", "enter")
        await settle(pilot, lambda: list(listed.ids) == [game])
        assert "since:yesterday: not a date" in str(app.screen.query_one("#list-status").render())


async def test_events_missed_while_the_stream_was_down_are_fetched_when_a_later_one_arrives(
    data_dir: Path, seeded: list[str]
) -> None:
    """A server killed and started again: events appended meanwhile never
    came down the stream. The next event that does shows the gap, and the
    log fetches what it lacks instead of skipping it."""
    from convtui.backend.updates import EventAdded

    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        first = listed(app).ids[0]
        log = main_screen(app).query_one(EventLog)
        await settle(pilot, lambda: main_screen(app)._shown_events_for == first)
        event_log = await app.backend.service.event_log(first)
        missed, arrived = event_log.append(
            [
                {"source": "agent", "action": "message", "message": "missed while down", "args": {"content": "missed while down"}},
                {"source": "agent", "action": "message", "message": "arrived after", "args": {"content": "arrived after"}},
            ]
        )
        app.backend.manager.hub.publish(EventAdded(first, arrived))
        await settle(pilot, lambda: [event.get("id") for event in log.events][-2:] == [missed["id"], arrived["id"]], timeout=3)
