"""Pilot tests of the dialogs: each is pushed into a tiny host app, driven with
keys (and a few clicks), and judged by what it is dismissed with and what it
shows inline."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import SecretStr
from textual.pilot import Pilot
from textual.widgets import Button, Checkbox, Input, Label, Select, Switch, TextArea

from convtui.backend.models import ConversationTrigger
from convtui.backend.settings import SETTING_NAMES, Settings
from convtui.screens.confirm import ConfirmScreen
from convtui.screens.confirm_delete import ConfirmDeleteScreen
from convtui.screens.help import HelpScreen
from convtui.screens.new_conversation import NewConversationResult, NewConversationScreen
from convtui.screens.remember import RememberPromptScreen, write_prompt_file
from convtui.screens.rename import RenameScreen
from convtui.screens.settings import SettingsScreen

from . import DialogHost

MARKUP_TITLE = "[bold]x[/] and [link=http://e]y[/]"


def label_text(host: DialogHost, selector: str) -> str:
    """The plain text a Label in the dialog renders."""
    return host.dialog.query_one(selector, Label).visual.plain


async def type_text(pilot: Pilot, text: str) -> None:
    await pilot.press(*("space" if character == " " else character for character in text))


# -- rename -------------------------------------------------------------------


async def test_rename_typing_replaces_the_selected_title() -> None:
    host = DialogHost(RenameScreen("Old title"))
    async with host.run_test() as pilot:
        title = host.dialog.query_one("#title", Input)
        assert title.has_focus
        assert title.value == "Old title"
        await type_text(pilot, "Fresh name")
        assert title.value == "Fresh name"
        await pilot.press("enter")
        await pilot.pause()
    assert host.results == ["Fresh name"]


async def test_rename_strips_the_title() -> None:
    host = DialogHost(RenameScreen("Old"))
    async with host.run_test() as pilot:
        host.dialog.query_one("#title", Input).value = "  padded  "
        await pilot.press("enter")
        await pilot.pause()
    assert host.results == ["padded"]


async def test_rename_too_long_shows_the_error_and_stays_open() -> None:
    host = DialogHost(RenameScreen("Old"))
    async with host.run_test() as pilot:
        host.dialog.query_one("#title", Input).value = "x" * 201
        await pilot.press("enter")
        await pilot.pause()
        assert host.results == []
        assert host.screen is host.dialog
        assert label_text(host, "#error") == "title is 201 characters; the limit is 200"
        assert host.dialog.query_one("#title", Input).has_class("-invalid")
        # Editing clears the error; a good title then goes through.
        await pilot.press("end", "backspace")
        assert label_text(host, "#error") == ""
        await pilot.press("enter")
        await pilot.pause()
    assert host.results == ["x" * 200]


async def test_rename_empty_and_control_characters_are_refused() -> None:
    host = DialogHost(RenameScreen("Old"))
    async with host.run_test() as pilot:
        await pilot.press("backspace", "enter")
        await pilot.pause()
        assert label_text(host, "#error") == "title is empty"
        host.dialog.query_one("#title", Input).value = "bell\x07"
        await pilot.press("enter")
        await pilot.pause()
        assert "control character" in label_text(host, "#error")
        assert host.results == []


async def test_rename_escape_cancels() -> None:
    host = DialogHost(RenameScreen("Old"))
    async with host.run_test() as pilot:
        await pilot.press("escape")
        await pilot.pause()
    assert host.results == [None]


async def test_rename_shows_a_markup_title_literally() -> None:
    host = DialogHost(RenameScreen(MARKUP_TITLE))
    async with host.run_test():
        assert host.dialog.query_one("#title", Input).value == MARKUP_TITLE


# -- delete confirmation ------------------------------------------------------


async def test_delete_y_confirms() -> None:
    host = DialogHost(ConfirmDeleteScreen(["Fix the build"]))
    async with host.run_test() as pilot:
        await pilot.press("y")
        await pilot.pause()
    assert host.results == [True]


async def test_delete_enter_cancels_as_do_n_and_escape_but_tab_enter_deletes() -> None:
    for keys, expected in ((["enter"], False), (["n"], False), (["escape"], False), (["tab", "enter"], True)):
        host = DialogHost(ConfirmDeleteScreen(["Fix the build"]))
        async with host.run_test() as pilot:
            assert host.focused is host.dialog.query_one("#cancel")
            await pilot.press(*keys)
            await pilot.pause()
        assert host.results == [expected], keys


async def test_delete_buttons_work_with_the_mouse() -> None:
    for button, expected in (("#delete", True), ("#cancel", False)):
        host = DialogHost(ConfirmDeleteScreen(["a", "b"]))
        async with host.run_test() as pilot:
            await pilot.click(button)
            await pilot.pause()
        assert host.results == [expected], button


async def test_delete_one_names_the_title_and_what_goes_with_it() -> None:
    host = DialogHost(ConfirmDeleteScreen(["Fix the build"]))
    async with host.run_test():
        assert label_text(host, "#question") == "Delete this conversation?"
        assert label_text(host, "#titles") == "Fix the build"
        assert "events and workspace" in label_text(host, "#consequence")


async def test_delete_several_counts_and_lists_the_first_few() -> None:
    titles = [f"Task {number}" for number in range(1, 8)]
    host = DialogHost(ConfirmDeleteScreen(titles))
    async with host.run_test():
        assert label_text(host, "#question") == "Delete 7 conversations?"
        listed = label_text(host, "#titles")
        assert "Task 1" in listed and "Task 5" in listed
        assert "Task 6" not in listed
        assert "… and 2 more" in listed
        assert "events and workspaces" in label_text(host, "#consequence")


async def test_titles_with_markup_are_shown_literally() -> None:
    host = DialogHost(ConfirmDeleteScreen([MARKUP_TITLE, "second"]))
    async with host.run_test():
        titles = host.dialog.query_one("#titles", Label)
        assert MARKUP_TITLE in titles.visual.plain
        # Nothing was interpreted: the line on screen has the brackets, no
        # link, and one style from end to end.
        lines = [titles.render_line(y) for y in range(titles.size.height)]
        [line] = [line for line in lines if "[bold]x[/]" in line.text]
        assert "[link=http://e]y[/]" in line.text
        styles = {segment.style for segment in line if segment.text.strip()}
        assert len(styles) == 1
        assert not any(style.link for style in styles if style is not None)


# -- new conversation ---------------------------------------------------------


async def test_new_conversation_message_has_focus_on_open() -> None:
    host = DialogHost(NewConversationScreen())
    async with host.run_test():
        assert host.focused is host.dialog.query_one("#initial_user_msg", TextArea)
        assert host.dialog.query_one("#start_now", Checkbox).value is True


async def test_new_conversation_bad_branch_is_named_and_not_dismissed() -> None:
    host = DialogHost(NewConversationScreen())
    async with host.run_test() as pilot:
        host.dialog.query_one("#selected_branch", Input).value = "a b"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert host.results == []
        error = label_text(host, "#error")
        assert error.startswith("selected_branch:")
        assert "\n" not in error
        branch = host.dialog.query_one("#selected_branch", Input)
        assert branch.has_class("-invalid") and branch.has_focus


async def test_new_conversation_valid_form_is_dismissed_with_the_request() -> None:
    host = DialogHost(NewConversationScreen())
    async with host.run_test() as pilot:
        await type_text(pilot, "Fix the tests")
        host.dialog.query_one("#repository", Input).value = "octo/hello"
        host.dialog.query_one("#selected_branch", Input).value = "main"
        await pilot.press("ctrl+s")
        await pilot.pause()
    [result] = host.results
    assert isinstance(result, NewConversationResult)
    assert result.start_now is True
    request = result.request
    assert request.trigger is ConversationTrigger.GUI
    assert request.initial_user_msg == "Fix the tests"
    assert request.repository == "octo/hello"
    assert request.selected_branch == "main"
    assert request.conversation_instructions is None


async def test_new_conversation_empty_form_and_start_later() -> None:
    host = DialogHost(NewConversationScreen())
    async with host.run_test() as pilot:
        start_now = host.dialog.query_one("#start_now", Checkbox)
        assert str(start_now.label) == "Start now: yes"
        await pilot.click("#start_now")
        # In words, not only by the colour of its X (NO_COLOR shows none).
        assert str(start_now.label) == "Start now: no (s starts it later)"
        await pilot.click("#create")
        await pilot.pause()
    [result] = host.results
    assert result.start_now is False
    assert result.request.initial_user_msg is None
    assert result.request.repository is None
    assert result.request.trigger is ConversationTrigger.GUI


async def test_new_conversation_escape_cancels() -> None:
    host = DialogHost(NewConversationScreen())
    async with host.run_test() as pilot:
        await type_text(pilot, "draft")
        await pilot.press("escape")
        await pilot.pause()
    assert host.results == [None]


# -- settings -----------------------------------------------------------------


async def answer_ok(values: dict) -> str:
    return f"ok: {values['llm_model']} answered"


def settings_dialog(test_connection=answer_ok) -> DialogHost:
    current = Settings(llm_model="openai/gpt-4o", llm_api_key="sk-current-secret-1234")
    return DialogHost(SettingsScreen(current, test_connection))


async def test_settings_bad_max_iterations_is_named_and_not_dismissed() -> None:
    host = settings_dialog()
    async with host.run_test() as pilot:
        host.dialog.query_one("#max_iterations", Input).value = "0"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert host.results == []
        assert label_text(host, "#status") == "Max iterations: must be 1 or more"
        assert host.dialog.query_one("#status", Label).has_class("-error")
        host.dialog.query_one("#max_iterations", Input).value = "many"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert label_text(host, "#status") == "Max iterations: must be a whole number"
        assert host.results == []


async def test_settings_save_returns_only_the_changed_values() -> None:
    host = settings_dialog()
    async with host.run_test() as pilot:
        api_key = host.dialog.query_one("#llm_api_key", Input)
        assert api_key.password and api_key.value == ""
        assert "sk-...1234" in api_key.placeholder
        host.dialog.query_one("#max_iterations", Input).value = "10"
        host.dialog.query_one("#max_budget_per_conversation", Input).value = "2.5"
        host.dialog.query_one("#confirmation_mode", Switch).value = False
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert host.results == [
        {"max_iterations": 10, "max_budget_per_conversation": 2.5, "confirmation_mode": False}
    ]


async def test_settings_unchanged_form_saves_nothing_and_a_typed_key_is_returned() -> None:
    host = settings_dialog()
    async with host.run_test() as pilot:
        await pilot.click("#save")
        await pilot.pause()
    assert host.results == [{}]

    host = settings_dialog()
    async with host.run_test() as pilot:
        host.dialog.query_one("#llm_api_key", Input).value = "sk-new-key-5678"
        host.dialog.query_one("#llm_model", Input).value = ""
        await pilot.press("ctrl+s")
        await pilot.pause()
    [changed] = host.results
    assert changed["llm_model"] is None
    assert isinstance(changed["llm_api_key"], SecretStr)
    assert changed["llm_api_key"].get_secret_value() == "sk-new-key-5678"
    assert set(changed) == {"llm_model", "llm_api_key"}


async def test_settings_every_setting_config_show_lists_is_editable() -> None:
    host = settings_dialog()
    async with host.run_test() as pilot:
        editable = {widget.id for widget in host.dialog.query("Input, Switch, Select")}
        assert editable == set(SETTING_NAMES)
        host.dialog.query_one("#llm_timeout", Input).value = "30"
        host.dialog.query_one("#conversation_max_age_days", Input).value = "0.5"
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert host.results == [{"llm_timeout": 30.0, "conversation_max_age_days": 0.5}]


async def test_settings_errors_are_in_plain_words_with_the_field_label() -> None:
    cases = {
        "max_budget_per_conversation": ("-1", "Budget (USD): must be 0 or more"),
        "llm_timeout": ("0", "LLM timeout (s): must be more than 0"),
        "conversation_max_age_days": ("a week", "Hide idle (days): must be a number"),
        "max_concurrent_loops": ("5000", "Max loops: must be 1,000 or less"),
    }
    for name, (typed, expected) in cases.items():
        host = settings_dialog()
        async with host.run_test() as pilot:
            host.dialog.query_one(f"#{name}", Input).value = typed
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert label_text(host, "#status") == expected
            assert host.focused is host.dialog.query_one(f"#{name}", Input)
            assert host.results == []


async def test_settings_escape_with_edits_asks_keep_editing_or_discard() -> None:
    host = settings_dialog()
    async with host.run_test() as pilot:
        await pilot.press("x", "escape")
        await pilot.pause()
        assert isinstance(host.screen, ConfirmScreen)
        assert host.focused is host.screen.query_one("#no")  # Enter keeps editing
        await pilot.press("enter")
        await pilot.pause()
        assert host.screen is host.dialog and host.results == []
        assert host.dialog.query_one("#llm_model", Input).value == "x"  # (the text was selected)
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(host.screen, ConfirmScreen)
        await pilot.press("y")  # discard
        await pilot.pause()
    assert host.results == [None]


async def test_settings_escape_after_undoing_an_edit_closes_at_once() -> None:
    host = settings_dialog()
    async with host.run_test() as pilot:
        await pilot.press("end", "x", "backspace", "escape")
        await pilot.pause()
    assert host.results == [None]


async def test_settings_escape_cancels() -> None:
    host = settings_dialog()
    async with host.run_test() as pilot:
        await pilot.press("escape")
        await pilot.pause()
    assert host.results == [None]


async def test_settings_test_connection_shows_the_answer() -> None:
    received: list[dict] = []
    release = asyncio.Event()

    async def answer(values: dict) -> str:
        received.append(values)
        await release.wait()
        return f"ok: {values['llm_model']} answered"

    host = settings_dialog(answer)
    async with host.run_test() as pilot:
        host.dialog.query_one("#llm_model", Input).value = "openai/gpt-4o-mini"
        await pilot.click("#test")
        await pilot.pause()
        assert host.dialog.query_one("#testing").display is True
        release.set()
        await host.dialog.workers.wait_for_complete()
        await pilot.pause()
        assert host.dialog.query_one("#testing").display is False
        assert label_text(host, "#status") == "ok: openai/gpt-4o-mini answered"
        assert not host.dialog.query_one("#status", Label).has_class("-error")
        assert host.results == []
    [values] = received
    assert values["llm_model"] == "openai/gpt-4o-mini"
    assert values["llm_api_key"].get_secret_value() == "sk-current-secret-1234"


async def test_settings_test_connection_shows_an_error_line() -> None:
    async def fail(values: dict) -> str:
        raise RuntimeError("authentication failed: bad key\nTraceback (most recent call last)")

    host = settings_dialog(fail)
    async with host.run_test() as pilot:
        await pilot.press("ctrl+t")
        await host.dialog.workers.wait_for_complete()
        await pilot.pause()
        status = label_text(host, "#status")
        assert status.startswith("authentication failed: bad key")
        assert "\n" not in status
        assert host.dialog.query_one("#status", Label).has_class("-error")


# -- help ---------------------------------------------------------------------

HELP_SECTIONS = [
    ("Conversations", [("n", "new conversation"), ("r", "rename"), ("d", "delete")]),
    ("Dialogs", [("ctrl+s", "save"), ("escape", "close [bold]now[/]")]),
]


async def test_help_shows_every_row_and_escape_closes() -> None:
    host = DialogHost(HelpScreen(HELP_SECTIONS))
    async with host.run_test() as pilot:
        sections = [label.visual.plain for label in host.dialog.query(".help--section").results(Label)]
        keys = [label.visual.plain for label in host.dialog.query(".help--key").results(Label)]
        descriptions = [
            label.visual.plain for label in host.dialog.query(".help--description").results(Label)
        ]
        assert sections == ["Conversations", "Dialogs"]
        assert keys == ["n", "r", "d", "ctrl+s", "escape"]
        assert descriptions[-1] == "close [bold]now[/]"
        await pilot.press("escape")
        await pilot.pause()
    assert host.results == [None]


async def test_help_q_and_question_mark_close() -> None:
    for key in ("q", "question_mark"):
        host = DialogHost(HelpScreen(HELP_SECTIONS))
        async with host.run_test() as pilot:
            await pilot.press(key)
            await pilot.pause()
        assert host.results == [None], key


# -- remember prompt ----------------------------------------------------------


async def test_remember_shows_the_generated_prompt_and_copies_it(tmp_path: Path) -> None:
    async def generate() -> str:
        return "Remember: run `make test` before pushing."

    host = DialogHost(RememberPromptScreen(generate, tmp_path))
    async with host.run_test() as pilot:
        await host.dialog.workers.wait_for_complete()
        await pilot.pause()
        prompt = host.dialog.query_one("#prompt", TextArea)
        assert prompt.display and prompt.read_only
        assert prompt.text == "Remember: run `make test` before pushing."
        assert host.dialog.query_one("#generating").display is False
        await pilot.press("c")
        await pilot.pause()
        assert host.clipboard == "Remember: run `make test` before pushing."
        await pilot.press("escape")
        await pilot.pause()
    assert host.results == [None]


async def test_remember_shows_a_loading_indicator_while_generating(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def generate() -> str:
        await release.wait()
        return "done"

    host = DialogHost(RememberPromptScreen(generate, tmp_path))
    async with host.run_test() as pilot:
        await pilot.pause()
        assert host.dialog.query_one("#generating").display is True
        assert host.dialog.query_one("#prompt").display is False
        await pilot.press("c", "s")  # nothing to copy or save yet
        assert host.clipboard == ""
        release.set()
        await host.dialog.workers.wait_for_complete()
        await pilot.pause()
        assert host.dialog.query_one("#prompt", TextArea).text == "done"
    assert list(tmp_path.iterdir()) == []


async def test_remember_shows_the_generate_error(tmp_path: Path) -> None:
    async def generate() -> str:
        raise RuntimeError("no model is configured")

    host = DialogHost(RememberPromptScreen(generate, tmp_path))
    async with host.run_test() as pilot:
        await host.dialog.workers.wait_for_complete()
        await pilot.pause()
        assert label_text(host, "#error") == "no model is configured"
        assert host.dialog.query_one("#generating").display is False
        assert host.dialog.query_one("#prompt").display is False


async def test_remember_save_writes_the_file(tmp_path: Path) -> None:
    async def generate() -> str:
        return "# Remember\nKeep tests green.\n"

    save_directory = tmp_path / "prompts"
    host = DialogHost(RememberPromptScreen(generate, save_directory))
    async with host.run_test() as pilot:
        await host.dialog.workers.wait_for_complete()
        await pilot.press("s")
        await host.dialog.workers.wait_for_complete()
        await pilot.pause()
    [saved] = list(save_directory.iterdir())
    assert saved.name.startswith("remember-") and saved.suffix == ".md"
    assert saved.read_text(encoding="utf-8") == "# Remember\nKeep tests green.\n"


async def test_remember_save_failure_is_a_notification(tmp_path: Path) -> None:
    async def generate() -> str:
        return "text"

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    host = DialogHost(RememberPromptScreen(generate, blocker))
    async with host.run_test(notifications=True) as pilot:
        await host.dialog.workers.wait_for_complete()
        await pilot.press("s")
        await host.dialog.workers.wait_for_complete()
        await pilot.pause()
        [notification] = list(host._notifications)
        assert notification.severity == "error"
        assert "could not save" in notification.message


def test_write_prompt_file_never_overwrites(tmp_path: Path) -> None:
    from datetime import datetime

    moment = datetime(2025, 1, 2, 3, 4, 5)
    first = write_prompt_file(tmp_path, "one", moment)
    second = write_prompt_file(tmp_path, "two", moment)
    assert first.name == "remember-20250102-030405.md"
    assert second.name == "remember-20250102-030405-2.md"
    assert first.read_text() == "one" and second.read_text() == "two"


async def test_settings_theme_mouse_and_keymap_are_edited_in_the_dialog() -> None:
    host = settings_dialog()
    async with host.run_test(size=(80, 24)) as pilot:
        host.dialog.query_one("#theme", Select).value = "flexoki"
        host.dialog.query_one("#mouse", Switch).value = False
        keymap = host.dialog.query_one("#keymap", Input)
        keymap.value = "not json"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert host.results == []
        assert label_text(host, "#status").startswith("Keymap (JSON): ")
        assert host.dialog.query_one("#save", Button).region.bottom <= 24  # the form scrolls, the buttons stay
        keymap.value = '{"new": "ctrl+n"}'
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert host.results == [{"theme": "flexoki", "mouse": False, "keymap": {"new": "ctrl+n"}}]
