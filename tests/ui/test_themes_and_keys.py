"""Themes and keys as a user of Posting, oterm or Toad expects them: a theme
picked in the command palette is kept in settings.json; keys remapped in
settings.json (`keymap`) show everywhere a key is shown, and a bad entry is
a one-line error; the help, the palette and the footer read cleanly."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from textual.command import Command, CommandList
from textual.widgets._footer import FooterKey

from convtui import cli
from convtui.app import ConvtuiApp
from convtui.backend.settings import THEME_NAMES, SettingsStore
from convtui.keymap import remappable_bindings, shown_keys
from convtui.screens.main import MainScreen, help_sections

from .contrast import screen_strips, screen_text
from .seed import settle, still_app


def settings_of(data_dir: Path) -> SettingsStore:
    return SettingsStore(data_dir / "settings.json", environ={})


async def open_main(pilot, app: ConvtuiApp) -> MainScreen:  # noqa: ANN001 (Pilot)
    await settle(pilot, lambda: isinstance(app.screen, MainScreen) and app.screen.selected_id is not None)
    return app.screen


def shown_text(app: ConvtuiApp) -> list[str]:
    return screen_text(screen_strips(app))


def palette_options(app: ConvtuiApp) -> list[str]:
    """Each option of the command palette: its words, then its help line."""
    command_list = app.screen.query_one(CommandList)
    options = [command_list.get_option_at_index(index) for index in range(command_list.option_count)]
    hits = [option.hit for option in options if isinstance(option, Command)]
    return [f"{hit.text} | {hit.help or ''}" for hit in hits]


async def test_a_theme_picked_in_the_palette_is_kept(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(120, 34)) as pilot:
        await open_main(pilot, app)
        assert app.theme == "textual-dark"
        await pilot.press("ctrl+p")
        await settle(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
        await pilot.press(*"theme")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot, lambda: type(app.screen).__name__ == "CommandPalette" and len(palette_options(app)) >= len(THEME_NAMES))
        await pilot.pause(0.3)
        # Only the themes that passed the contrast test are offered.
        assert sorted(option.split(" | ")[0] for option in palette_options(app)) == sorted(THEME_NAMES)
        await pilot.press(*"rose-pine-dawn")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await settle(pilot, lambda: app.theme == "rose-pine-dawn")
        await settle(pilot, lambda: settings_of(data_dir).load_file().theme == "rose-pine-dawn")
    reopened = still_app(data_dir)
    async with reopened.run_test(size=(120, 34)) as pilot:
        await open_main(pilot, reopened)
        assert reopened.theme == "rose-pine-dawn"
    shown = subprocess.run(
        [sys.executable, "-m", "convtui", "--data-dir", str(data_dir), "config", "show"],
        capture_output=True, text=True, check=True, timeout=60,
    )
    assert "theme = rose-pine-dawn" in shown.stdout.splitlines()


async def test_remapped_keys_work_and_show_in_footer_help_and_palette(data_dir: Path, seeded: list[str]) -> None:
    settings_of(data_dir).update({"keymap": {"new": "ctrl+n", "help": "f1", "rename": "ctrl+e"}})
    app = still_app(data_dir)
    async with app.run_test(size=(120, 34)) as pilot:
        screen = await open_main(pilot, app)
        footer = {key.description: key.key_display for key in screen.query(FooterKey) if key.display}
        assert footer["New"] == "^n" and footer["Help"] == "f1"
        await pilot.press("n")
        await pilot.pause(0.2)
        assert app.screen is screen  # n is no longer "new"
        await pilot.press("ctrl+n")
        await settle(pilot, lambda: type(app.screen).__name__ == "NewConversationScreen")
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is screen)

        await pilot.press("f1")
        await settle(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        await pilot.pause(0.2)
        lines = shown_text(app)
        assert any(re.search(r"\^n +new conversation", line) for line in lines), lines
        assert any(re.search(r"\^e +rename", line) for line in lines), lines
        await pilot.press("escape")
        await settle(pilot, lambda: app.screen is screen)

        await pilot.press("ctrl+p")
        await settle(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
        await pilot.press(*"rename conv")
        await settle(pilot, lambda: any("Rename conversation" in option for option in palette_options(app)))
        [option] = [option for option in palette_options(app) if "Rename conversation" in option]
        # The key once, as remapped: not "Rename conversation (r)" and "key: r" both.
        assert option.count("^e") == 1 and "(r)" not in option and "key: r" not in option, option


async def test_bad_keymap_entries_are_one_line_errors_and_the_rest_applies(data_dir: Path, seeded: list[str]) -> None:
    settings_of(data_dir).update({"keymap": {"nwe": "ctrl+n", "quit": "ctrl+bogus", "filter": "f3"}})
    app = still_app(data_dir)
    async with app.run_test(size=(120, 34)) as pilot:
        screen = await open_main(pilot, app)
        await settle(pilot, lambda: len(list(app._notifications)) >= 2)
        messages = sorted(str(notification.message) for notification in app._notifications)
        assert messages == [
            "keymap: 'quit': 'ctrl+bogus' is not a key Textual knows",
            "keymap: no binding has the id 'nwe'; did you mean 'new'?",
        ]
        await pilot.press("f3")
        await settle(pilot, lambda: screen.query_one("#filter").has_focus)


def test_the_keymap_setting_refuses_what_is_not_a_keymap(data_dir: Path, capsys) -> None:  # noqa: ANN001
    assert cli.main(["--data-dir", str(data_dir), "config", "set", "keymap", "new=ctrl+n"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("convtui: keymap: expected JSON like") and error.count("\n") == 1


async def test_help_keys_never_run_into_their_descriptions(data_dir: Path, seeded: list[str]) -> None:
    """'Enter in the input' is as wide as the old key column was: its
    description ran straight on ("Enter in the inputsend the message")."""
    app = still_app(data_dir)
    async with app.run_test(size=(120, 70)) as pilot:
        await open_main(pilot, app)
        await pilot.press("question_mark")
        await settle(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        await pilot.pause(0.2)
        text = "\n".join(shown_text(app))
        for _, rows in help_sections(lambda binding_id: shown_keys(app, binding_id)):
            for key, description in rows:
                first_words = " ".join(description.split()[:2])
                assert re.search(re.escape(key) + r"  +" + re.escape(first_words), text), (key, description)


@pytest.mark.parametrize("width", [60, 80])
async def test_the_footer_shows_whole_keys_and_the_palette_at_any_width(data_dir: Path, seeded: list[str], width: int) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(width, 24)) as pilot:
        screen = await open_main(pilot, app)
        await pilot.press("space")  # a marked row: Back joins the keys
        await settle(pilot, lambda: any(key.description == "Back" for key in screen.query(FooterKey)))
        await pilot.pause(0.3)
        footer = shown_text(app)[-1]
        shown = [key for key in screen.query(FooterKey) if key.display]
        assert footer.rstrip().endswith("^p palette"), footer
        for key in shown:
            assert key.region.right <= width, (key.description, key.region)
            assert f"{key.key_display} {key.description}" in footer, (key.description, footer)
        assert [key.description for key in shown][:2] == ["New", "Start"]


def test_the_readme_lists_every_remappable_binding_id() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    listed = readme.split("\nIds: ", 1)[1].split(".\n", 1)[0]
    ids = {word.strip(" ,\n") for word in re.sub(r"\([^)]*\)|and in the dialogs", " ", listed).split()}
    assert ids - {""} == set(remappable_bindings())
