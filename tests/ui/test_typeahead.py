"""Keys typed faster than the screen changes: several keys arrive in one
terminal read (a fast typist, a paste, a slow SSH link), and those after a
key that opens the filter or a dialog belong to that filter or dialog."""

from __future__ import annotations

from pathlib import Path

from textual import events
from textual.widgets import Input, TextArea

from convtui.app import ConvtuiApp
from convtui.screens.confirm_delete import ConfirmDeleteScreen
from convtui.screens.main import MainScreen
from convtui.screens.new_conversation import NewConversationScreen

from .seed import settle, still_app
from .test_main_screen import listed, main_screen, ready, titles

NAMED = {" ": "space", "\r": "enter", "/": "slash"}


def burst(app: ConvtuiApp, text: str) -> None:
    """Every key of `text` queued at once, the way one read from the
    terminal delivers them ("\\r" is Enter)."""
    for character in text:
        app.post_message(events.Key(NAMED.get(character, character), character))


async def test_text_typed_with_the_slash_goes_to_the_filter(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        burst(app, "/quick engine")  # q, k, space, g, n... are list and screen keys too
        await settle(pilot, lambda: main_screen(app).query_one("#filter", Input).value == "quick engine")
        assert app.is_running
        assert listed(app).marked == set()


async def test_text_typed_with_n_goes_to_the_new_conversation_message(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        burst(app, "nfix the login page")
        await settle(pilot, lambda: isinstance(app.screen, NewConversationScreen))
        message = app.screen.query_one("#initial_user_msg", TextArea)
        await settle(pilot, lambda: message.text == "fix the login page")
        assert [type(screen) for screen in app.screen_stack[-2:]] == [MainScreen, NewConversationScreen]


async def test_rename_typed_in_one_burst_renames(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        first = titles(app)[0]
        burst(app, "rRenamed in a hurry\r")
        await settle(pilot, lambda: "Renamed in a hurry" in titles(app))
        assert first not in titles(app)


async def test_delete_then_n_cancels(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        before = list(listed(app).ids)
        burst(app, "dn")
        await settle(pilot)
        await settle(pilot, lambda: not isinstance(app.screen, ConfirmDeleteScreen))
        assert list(listed(app).ids) == before
        assert isinstance(app.screen, MainScreen)
