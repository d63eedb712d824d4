"""Whole key sequences that arrive in one terminal read (over SSH they do),
for every form and dialog: Tab and shift+Tab move the focus in order, ctrl+u,
ctrl+w and Backspace edit the field focused at that point of the sequence,
Enter and ctrl+s submit what was typed before them. Each test checks what was
stored, not only what the screen shows."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from textual import events
from textual.screen import Screen
from textual.widgets import Input, TextArea

from convtui.app import ConvtuiApp
from convtui.backend.service import ConversationService
from convtui.keys_in_order import KeysInOrderApp
from convtui.screens.confirm_delete import ConfirmDeleteScreen
from convtui.screens.main import MainScreen
from convtui.screens.new_conversation import NewConversationScreen
from convtui.screens.settings import SettingsScreen

from .seed import settle, still_app
from .test_main_screen import listed, main_screen, ready, titles
from .test_typeahead import BACKSPACE, CTRL_S, CTRL_U, CTRL_W, ENTER, ESCAPE, F2, SHIFT_TAB, TAB, burst


def service(app: ConvtuiApp) -> ConversationService:
    return main_screen(app).backend.service


def on_main_screen(app: ConvtuiApp) -> bool:
    return isinstance(app.screen, MainScreen)


async def test_settings_typed_in_one_burst_are_saved_field_by_field(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        burst(
            app,
            F2, CTRL_U, "openai/fake extra", CTRL_W, BACKSPACE, TAB, "x", TAB, CTRL_U, "http://127.0.0.1:18080/v1",
            TAB, TAB, CTRL_U, "25", SHIFT_TAB, SHIFT_TAB, SHIFT_TAB, "sk-keyz", BACKSPACE, CTRL_S,
        )  # fmt: skip
        await settle(pilot, lambda: "Settings saved" in [n.message for n in app._notifications])
        settings = await service(app).load_settings()
        assert settings.llm_model == "openai/fake"
        assert settings.api_key() == "sk-key"  # back in the field, its text was selected: typing replaced "x"
        assert settings.llm_base_url == "http://127.0.0.1:18080/v1"
        assert settings.max_iterations == 25
        assert on_main_screen(app)


async def test_new_conversation_typed_in_one_burst_fills_every_field(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        before = set(listed(app).ids)
        burst(
            app,
            "n", "fix the login page", TAB, "acme/webapp extra", CTRL_W, BACKSPACE, TAB, "mainx", BACKSPACE,
            TAB, "be brief", SHIFT_TAB, SHIFT_TAB, TAB, TAB, TAB, " ", CTRL_S,
        )  # fmt: skip  (the space unticks "start now")
        await settle(pilot, lambda: len(set(listed(app).ids) - before) == 1 and on_main_screen(app))
        (created,) = set(listed(app).ids) - before
        metadata = await service(app).metadata(created)
        assert metadata.selected_repository == "acme/webapp"
        assert metadata.selected_branch == "main"
        info = service(app).row(created)
        assert info is not None and info.status.value not in ("RUNNING", "STARTING")
        log = await service(app).event_log(created)
        events = [log.get(number) for number in range(len(log))]
        assert [e["message"] for e in events if e and e.get("source") == "user"] == ["fix the login page"]


async def test_enter_in_a_one_line_field_submits_the_form(data_dir: Path, seeded: list[str]) -> None:
    """Enter in the repository field creates (Enter in the message is a new
    line); Enter in a settings field saves."""
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        before = set(listed(app).ids)
        burst(app, "n", "two\rlines", TAB, "acme/webapp", ENTER)
        await settle(pilot, lambda: len(set(listed(app).ids) - before) == 1 and on_main_screen(app))
        (created,) = set(listed(app).ids) - before
        assert (await service(app).metadata(created)).selected_repository == "acme/webapp"
        log = await service(app).event_log(created)
        assert log.get(0)["message"] == "two\nlines"

        burst(app, F2, CTRL_U, "openai/by-enter", ENTER)
        await settle(pilot, lambda: "Settings saved" in [n.message for n in app._notifications])
        assert (await service(app).load_settings()).llm_model == "openai/by-enter"
        assert on_main_screen(app)


async def test_rename_with_ctrl_u_typed_in_one_burst_renames(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        selected = listed(app).ids[0]
        burst(app, "r", CTRL_U, "A fresh title", ENTER, "j")
        await settle(pilot, lambda: service(app).row(selected).title == "A fresh title")
        assert on_main_screen(app)
        # "j" after Enter went to the list, once the dialog had closed
        await settle(pilot, lambda: listed(app).current_id != selected)


async def test_filter_with_ctrl_u_typed_in_one_burst_filters(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        filter_box = main_screen(app).query_one("#filter", Input)
        filter_box.value = "old words"
        burst(app, "/", CTRL_U, "settings loadx", BACKSPACE, ENTER, "j")
        await settle(pilot, lambda: filter_box.value == "settings load")
        await settle(pilot, lambda: titles(app) == ["Refactor the settings loader"])
        assert app.focused is listed(app)  # Enter handed the keys back to the list


async def test_delete_then_enter_does_not_delete(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        before = list(listed(app).ids)
        burst(app, "d", ENTER)
        await settle(pilot, lambda: on_main_screen(app))
        await settle(pilot)
        assert list(listed(app).ids) == before
        assert service(app).row(before[0]) is not None


async def test_delete_then_y_deletes(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        first = listed(app).ids[0]
        burst(app, "d", "y")
        await settle(pilot, lambda: service(app).row(first) is None and on_main_screen(app))
        assert not isinstance(app.screen, ConfirmDeleteScreen)


async def test_settings_escape_with_edits_asks_then_keeps_editing(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        burst(app, F2, CTRL_U, "openai/edited", ESCAPE, ESCAPE, "-more", CTRL_S)  # second Esc: keep editing
        await settle(pilot, lambda: "Settings saved" in [n.message for n in app._notifications])
        assert (await service(app).load_settings()).llm_model == "openai/edited-more"


async def test_settings_escape_with_edits_then_discard_saves_nothing(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        model = (await service(app).load_settings()).llm_model
        burst(app, F2, CTRL_U, "openai/edited", ESCAPE, "y")  # y: discard
        await settle(pilot, lambda: on_main_screen(app))
        await settle(pilot)
        assert not any(isinstance(s, SettingsScreen) for s in app.screen_stack)
        assert (await service(app).load_settings()).llm_model == model


async def test_keys_never_get_stuck_when_a_key_is_not_seen_through(
    data_dir: Path, seeded: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key's marker can be lost with a widget removed before it got there:
    the next key goes anyway, a moment later."""
    monkeypatch.setattr(KeysInOrderApp, "on_key_delivered", lambda self, marker: None)  # every marker lost
    monkeypatch.setattr("convtui.keys_in_order.KEY_IN_FLIGHT_LIMIT", 0.1)
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        burst(app, "/", "settings")
        filter_box = main_screen(app).query_one("#filter", Input)
        await settle(pilot, lambda: filter_box.value == "settings", timeout=5)


async def test_a_paste_after_n_in_the_same_read_goes_to_the_message(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready(app))
        burst(app, "n")
        app.post_message(events.Paste("pasted\nmessage"))
        burst(app, TAB, "acme/webapp")
        await settle(pilot, lambda: isinstance(app.screen, NewConversationScreen))
        screen = app.screen
        await settle(pilot, lambda: screen.query_one("#repository", Input).value == "acme/webapp")
        assert screen.query_one("#initial_user_msg", TextArea).text == "pasted\nmessage"


class _SlowScreen(Screen[None]):
    """Mounts the way a dialog does on a loaded machine: the event loop
    busy for longer than a key may be in flight."""

    def compose(self):  # noqa: ANN201
        yield Input(id="typed")

    def on_mount(self) -> None:
        time.sleep(1.2)  # blocks the event loop, as a slow first mount does
        self.query_one(Input).focus()


class _SlowDialogApp(KeysInOrderApp[None]):
    BINDINGS = [("x", "slow", "open the slow screen")]
    AUTO_FOCUS = None  # "x" is a key of the app, not text for the input

    def compose(self):  # noqa: ANN201
        yield Input(id="main")

    def action_slow(self) -> None:
        self.push_screen(_SlowScreen())


async def test_keys_after_a_slowly_mounting_screen_still_land_in_it() -> None:
    """A busy event loop is not a lost key: the keys after the one that
    opened a screen wait for it, however long its mount blocks the loop."""
    app = _SlowDialogApp()
    async with app.run_test() as pilot:
        await pilot.pause()
        burst(app, "x", "abc")
        await settle(pilot, lambda: isinstance(app.screen, _SlowScreen), timeout=10)
        typed = app.screen.query_one("#typed", Input)
        await settle(pilot, lambda: typed.value == "abc", timeout=10)
        assert app.query_one("#main", Input).value == ""
