"""Keys typed faster than the screen changes: several keys arrive in one
terminal read (a fast typist, a paste, a slow SSH link), and those after a
key that opens the filter or a dialog belong to that filter or dialog."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import pytest
from textual import events
from textual.keys import _character_to_key
from textual.widgets import Input, TextArea

from convtui.app import ConvtuiApp
from convtui.screens.confirm_delete import ConfirmDeleteScreen
from convtui.screens.main import MainScreen
from convtui.screens.new_conversation import NewConversationScreen

from .seed import settle, still_app
from .test_main_screen import listed, main_screen, ready, titles

@dataclass(frozen=True)
class Press:
    """A named key in a burst, as the terminal driver reports it."""

    key: str

    def event(self) -> events.Key:
        return events.Key(self.key, CHARACTERS.get(self.key))


CHARACTERS = {
    "tab": "\t",
    "enter": "\r",
    "escape": "\x1b",
    "backspace": "\x7f",
    "ctrl+u": "\x15",
    "ctrl+w": "\x17",
    "ctrl+s": "\x13",
}
TAB, SHIFT_TAB, ENTER, ESCAPE = Press("tab"), Press("shift+tab"), Press("enter"), Press("escape")
BACKSPACE, CTRL_U, CTRL_W, CTRL_S, F2 = Press("backspace"), Press("ctrl+u"), Press("ctrl+w"), Press("ctrl+s"), Press("f2")


def burst(app: ConvtuiApp, *keys: str | Press) -> None:
    """Every key queued at once, without waiting between them, the way one
    read from the terminal delivers them: text is typed character by
    character ("\\r" is Enter), a Press is that named key."""
    for part in keys:
        if isinstance(part, Press):
            app.post_message(part.event())
            continue
        for character in part:
            key = "enter" if character == "\r" else _character_to_key(character)
            app.post_message(events.Key(key, character))


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


async def test_keys_typed_while_the_list_loads_reach_it_once_it_shows(
    data_dir: Path, seeded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Typed right after launch, before the store is open (a big one takes
    most of a second): held, then handed to the list in order."""
    from convtui.backend import connect

    opened = asyncio.Event()
    open_ui_backend = connect.open_ui_backend

    async def slow_open(*arguments, **options):  # noqa: ANN002, ANN003, ANN202
        await opened.wait()
        return await open_ui_backend(*arguments, **options)

    monkeypatch.setattr(connect, "open_ui_backend", slow_open)
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        burst(app, "/quick", Press("backspace"), "k eng")
        await pilot.pause(0.1)
        assert not any(isinstance(screen, MainScreen) for screen in app.screen_stack)  # still loading
        opened.set()
        shown = lambda: any(isinstance(screen, MainScreen) for screen in app.screen_stack)  # noqa: E731
        await settle(pilot, lambda: shown() and main_screen(app).query_one("#filter", Input).value == "quick eng")
        assert app.is_running  # the q went to the filter, not to quit


async def test_keys_typed_before_the_data_cannot_be_opened_are_dropped(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error is shown, and a q typed before it does not quit unread."""
    from convtui.backend import connect
    from convtui.backend.errors import StorageError

    opened = asyncio.Event()

    async def failing_open(*arguments, **options):  # noqa: ANN002, ANN003, ANN202
        await opened.wait()
        raise StorageError("the disk is gone")

    monkeypatch.setattr(connect, "open_ui_backend", failing_open)
    app = still_app(data_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        burst(app, "/quit")
        await pilot.pause(0.1)
        opened.set()
        await settle(pilot, lambda: "the disk is gone" in str(app.query_one("#loading").render()))
        await pilot.pause(0.2)
        assert app.is_running
        await pilot.press("q")
        await settle(pilot, lambda: not app.is_running)


async def test_ctrl_q_quits_while_the_list_loads_even_behind_keys_held(
    data_dir: Path, seeded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from convtui.backend import connect

    opened = asyncio.Event()
    open_ui_backend = connect.open_ui_backend

    async def slow_open(*arguments, **options):  # noqa: ANN002, ANN003, ANN202
        await opened.wait()
        return await open_ui_backend(*arguments, **options)

    monkeypatch.setattr(connect, "open_ui_backend", slow_open)
    app = still_app(data_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        burst(app, "/abc", Press("ctrl+q"))
        await settle(pilot, lambda: not app.is_running)
        opened.set()
