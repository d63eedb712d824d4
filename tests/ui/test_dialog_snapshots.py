"""Snapshots of every dialog at 80×24 (the smallest terminal we support).

Regenerate after an intended change with
`pytest tests/ui/test_dialog_snapshots.py --snapshot-update` and look at the
SVGs before committing them."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Input

from convtui.backend.settings import Settings
from convtui.screens.confirm_delete import ConfirmDeleteScreen
from convtui.screens.help import HelpScreen
from convtui.screens.new_conversation import NewConversationScreen
from convtui.screens.rename import RenameScreen
from convtui.screens.settings import SettingsScreen

from . import DialogHost

SIZE = (80, 24)


async def never_called(values: dict) -> str:
    raise AssertionError("the snapshot does not test the connection")


def test_rename_with_validation_error(snap_compare) -> None:
    host = DialogHost(RenameScreen("[bold]Fix[/] the flaky test"))

    async def run_before(pilot: Pilot) -> None:
        title = host.dialog.query_one("#title", Input)
        title.value = "x" * 201
        title.cursor_position = len(title.value)  # as if typed: no selection left

    assert snap_compare(host, press=["enter"], terminal_size=SIZE, run_before=run_before)


def test_new_conversation(snap_compare) -> None:
    host = DialogHost(NewConversationScreen())
    assert snap_compare(host, terminal_size=SIZE)


def test_delete_three_conversations(snap_compare) -> None:
    titles = ["Fix the flaky test", "[bold]Refactor[/] the store", "Write the README"]
    host = DialogHost(ConfirmDeleteScreen(titles))
    assert snap_compare(host, terminal_size=SIZE)


def test_settings(snap_compare) -> None:
    settings = Settings(
        llm_model="openai/gpt-4o",
        llm_api_key="sk-test-0123456789abcd",
        llm_base_url="http://127.0.0.1:8000/v1",
        max_budget_per_conversation=5,
    )
    host = DialogHost(SettingsScreen(settings, never_called))
    assert snap_compare(host, terminal_size=SIZE)


def test_help(snap_compare) -> None:
    sections = [
        (
            "Conversations",
            [
                ("n", "New conversation"),
                ("r", "Rename"),
                ("d", "Delete"),
                ("a", "Archive"),
                ("s", "Start / stop the agent"),
                ("/", "Filter"),
            ],
        ),
        ("Anywhere", [("ctrl+p", "Command palette"), ("?", "This help"), ("ctrl+q", "Quit")]),
    ]
    host = DialogHost(HelpScreen(sections))
    assert snap_compare(host, terminal_size=SIZE)
