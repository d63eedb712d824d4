"""The list says what is true: archive of a running loop, undo of a delete or
archive, the sort and its dates, the empty filtered list, and `c`."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from textual.geometry import Region

from convtui import clipboard
from convtui.app import ConvtuiApp
from convtui.screens import main as main_module

from ..fake_llm import FakeLLMServer, ToolCall
from ..test_agent import Script
from .seed import SAMPLES, settle, still_app
from .test_main_screen import listed, main_screen, main_screen_with_model, ready, status_line, titles


def notes(app: ConvtuiApp) -> list[str]:
    return [str(notification.message) for notification in app._notifications]


def row_texts(app: ConvtuiApp, rows: int) -> list[str]:
    conversation_list = listed(app)
    return [strip.text for strip in conversation_list.render_lines(Region(0, 0, conversation_list.size.width, rows))]


async def test_undo_brings_back_a_delete_and_an_archive(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        service = main_screen(app).backend.service
        before = list(listed(app).ids)
        doomed = before[0]
        await pilot.press("g", "d")
        await settle(pilot, lambda: type(app.screen).__name__ == "ConfirmDeleteScreen")
        await pilot.press("y")
        await settle(pilot, lambda: doomed not in listed(app).ids)
        assert any("to the trash" in note and "u undoes" in note for note in notes(app))
        assert [t.conversation_id for t in await service.list_trash()] == [doomed]
        await pilot.press("u")
        await settle(pilot, lambda: list(listed(app).ids) == before)
        assert (await service.get(doomed)).title == SAMPLES[0]["title"]
        assert await service.list_trash() == []

        # Two marked rows archived, then unarchived by u.
        await pilot.press("g", "space", "space", "a")
        await settle(pilot, lambda: len(listed(app).ids) == len(before) - 2)
        await pilot.press("u")
        await settle(pilot, lambda: list(listed(app).ids) == before)
        assert not any([(await service.get(i)).archived for i in before])

        # Nothing left to undo: said so, nothing changes.
        await pilot.press("u")
        await settle(pilot, lambda: any(note.startswith("Nothing to undo") for note in notes(app)))


async def test_undo_lasts_only_its_window(data_dir: Path, seeded: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(main_module, "UNDO_SECONDS", 0.0)
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        doomed = listed(app).ids[0]
        await pilot.press("g", "d")
        await settle(pilot, lambda: type(app.screen).__name__ == "ConfirmDeleteScreen")
        await pilot.press("y")
        await settle(pilot, lambda: doomed not in listed(app).ids)
        await pilot.press("u")
        await settle(pilot, lambda: any(note.startswith("Nothing to undo") for note in notes(app)))
        assert doomed not in listed(app).ids
        assert [t.conversation_id for t in await main_screen(app).backend.service.list_trash()] == [doomed]


async def test_archiving_a_loop_awaiting_confirmation_stops_it_and_says_so(data_dir: Path) -> None:
    async with FakeLLMServer() as llm:
        llm.responder = Script(ToolCall("execute_bash", {"command": "echo hi"}))
        app = still_app(data_dir)
        async with app.run_test(size=(140, 40)) as pilot:
            screen = await main_screen_with_model(pilot, app, llm)
            conversation_id = (await screen.backend.service.new_conversation({"initial_user_msg": "say hi"})).conversation_id
            await screen.backend.manager.start(conversation_id, until_idle=True)
            await settle(pilot, lambda: screen.backend.manager.pending_action(conversation_id) is not None, timeout=30)
            await settle(pilot, lambda: listed(app).current_id == conversation_id, timeout=30)
            await pilot.press("a")
            await settle(pilot, lambda: any("stopped its loop first" in note for note in notes(app)), timeout=30)
            assert not screen.backend.manager.is_running(conversation_id)
            assert (await screen.backend.service.get(conversation_id)).archived


async def test_o_reverses_the_sort_and_the_dates_follow_it(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        newest_first = titles(app)
        assert "sort: updated, newest first" in status_line(app)
        # The sample updated 6 minutes ago was created 5 minutes before that.
        assert "6m ago" in row_texts(app, 1)[0]
        await pilot.press("O")
        await settle(pilot, lambda: "sort: updated, oldest first" in status_line(app))
        assert titles(app) == newest_first[::-1]
        assert listed(app).current_id == listed(app).ids[-1]  # the cursor stays on its conversation
        await pilot.press("o")  # created: the usual direction again, dates of creation
        await settle(pilot, lambda: "sort: created, newest first" in status_line(app))
        await settle(pilot, lambda: "11m ago" in row_texts(app, 1)[0])
        await pilot.press("o", "O")
        await settle(pilot, lambda: "sort: title, Z→A" in status_line(app))
        assert titles(app) == sorted(newest_first, key=str.casefold, reverse=True)


async def test_an_empty_filtered_list_names_the_filter_and_how_to_widen_it(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        empty = main_screen(app).query_one("#empty-state")
        await pilot.press("slash", *"experiment")
        await settle(pilot, lambda: empty.display)
        text = str(empty.render())
        assert "No conversation matches “experiment”" in text
        assert "is:all" in text and "Esc" in text
        await pilot.press(*" is:all")
        await settle(pilot, lambda: titles(app) == ["Old experiment"])
        placeholder = main_screen(app).query_one("#filter").placeholder
        assert "is:all" in placeholder and "status:waiting" in placeholder
        help_keys = [description for _, rows in main_module.help_sections(str) for _, description in rows]
        assert any("is:all" in description for description in help_keys)


async def test_status_waiting_filter_in_the_list(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        await pilot.press("slash", *"status:finished")
        await settle(pilot, lambda: titles(app) == ["Fix the flaky payments test"])
        await pilot.press("escape", "slash", *"status:error")
        await settle(pilot, lambda: titles(app) == ["Refactor the settings loader"])
        await pilot.press("escape", "slash", *"status:waiting")
        await settle(pilot, lambda: main_screen(app).query_one("#empty-state").display)
        assert "drop the status: token" in str(main_screen(app).query_one("#empty-state").render())


# -- c: what was copied where ---------------------------------------------------------


def _fake_tool(directory: Path, name: str, target: Path) -> None:
    tool = directory / name
    tool.write_text(f"#!/bin/sh\ncat > {target}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


async def test_c_copies_to_the_system_clipboard_when_there_is_one(
    data_dir: Path, seeded: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    copied = tmp_path / "copied.txt"
    _fake_tool(tools, "xclip", copied)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DISPLAY", ":42")
    for name in ("WAYLAND_DISPLAY", "TMUX", "SSH_CONNECTION", "SSH_TTY"):
        monkeypatch.delenv(name, raising=False)
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        first = listed(app).ids[0]
        await pilot.press("c")
        await settle(pilot, lambda: any("system clipboard (xclip)" in note for note in notes(app)))
        assert app.clipboard == first  # OSC 52 too
        assert copied.read_text() == first


async def test_c_over_ssh_says_there_is_no_system_clipboard(
    data_dir: Path, seeded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "TMUX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSH_CONNECTION", "10.0.0.1 5000 10.0.0.2 22")
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        await pilot.press("c")
        await settle(pilot, lambda: any("over SSH there is no system clipboard" in note for note in notes(app)))
        assert any("OSC 52" in note for note in notes(app))


def test_inside_tmux_without_set_clipboard_the_copy_says_how_to_enable_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "tmux").write_text("#!/bin/sh\necho off\n")
    (tools / "tmux").chmod(0o755)
    monkeypatch.setenv("PATH", str(tools))
    plan = clipboard.plan_copy({"TMUX": "/tmp/tmux-0/default,1,0", "PATH": str(tools)})
    assert plan.tmux_clipboard == "off" and plan.command is None
    message, severity = clipboard.describe_copy(plan, None)
    assert "set -g set-clipboard on" in message and severity == "warning"
    on = clipboard.ClipboardPlan(command=None, tmux_clipboard="on", over_ssh=False)
    assert "set-clipboard" not in clipboard.describe_copy(on, None)[0]


def test_the_system_clipboard_tool_needs_its_display() -> None:
    everywhere = {"xclip": "/usr/bin/xclip", "wl-copy": "/usr/bin/wl-copy", "pbcopy": "/usr/bin/pbcopy"}.get
    assert clipboard.system_clipboard_command({}, everywhere, "linux") is None
    assert clipboard.system_clipboard_command({"DISPLAY": ":0"}, everywhere, "linux")[0] == "xclip"
    assert clipboard.system_clipboard_command({"WAYLAND_DISPLAY": "w-0", "DISPLAY": ":0"}, everywhere, "linux") == ["wl-copy"]
    assert clipboard.system_clipboard_command({}, everywhere, "darwin") == ["pbcopy"]
    assert clipboard.system_clipboard_command({"SSH_CONNECTION": "x"}, everywhere, "darwin") is None
