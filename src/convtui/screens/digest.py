"""While you were away: opened a while after the last UI closed, the UI
lists per conversation what happened meanwhile (events, commands run, files
changed, cost) and what each waits on now. Enter jumps to one; Esc goes on
to the list."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from ..backend.digest import DigestEntry
from ..backend.inbox import KIND_WORDS
from ..formatting import format_cost, format_duration
from ..terminal_text import inert, one_line
from ..widgets.no_layout import KeysFooter

_COMMANDS_SHOWN = 3
_FILES_SHOWN = 4


def entry_text(entry: DigestEntry) -> Text:
    """Two lines: the title and what waits; then what happened."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(one_line(inert(entry.conversation.title), 70), style="bold")
    if entry.waits is not None:
        text.append(f"  · {KIND_WORDS[entry.waits]}", style="bold")
    facts = [f"{entry.events} event{'s' if entry.events != 1 else ''}"]
    if entry.commands:
        shown = ", ".join(one_line(inert(command), 40) for command in entry.commands[:_COMMANDS_SHOWN])
        more = f" +{len(entry.commands) - _COMMANDS_SHOWN}" if len(entry.commands) > _COMMANDS_SHOWN else ""
        facts.append(f"{len(entry.commands)} command{'s' if len(entry.commands) != 1 else ''} ({shown}{more})")
    if entry.files:
        shown = ", ".join(one_line(inert(path.removeprefix("/workspace/")), 40) for path in entry.files[:_FILES_SHOWN])
        more = f" +{len(entry.files) - _FILES_SHOWN}" if len(entry.files) > _FILES_SHOWN else ""
        facts.append(f"{len(entry.files)} file{'s' if len(entry.files) != 1 else ''} changed ({shown}{more})")
    if entry.cost is not None:
        facts.append(f"{format_cost(entry.cost)} spent")
    text.append("\n  " + " · ".join(facts))
    return text


class DigestScreen(Screen[str | None]):
    """Dismisses with the id of the conversation to show (Enter), or None."""

    CSS_PATH = "inbox.tcss"
    AUTO_FOCUS = "#digest-entries"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q", "close", "To the list", id="digest.close"),
    ]

    def __init__(self, entries: list[DigestEntry], since: datetime, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.entries = entries
        self.since = since
        self.clock = clock

    def compose(self) -> ComposeResult:
        away = format_duration((self.clock() - self.since).total_seconds())
        count = len(self.entries)
        yield Static(
            f"While you were away ({away}): {count} conversation{'s' if count != 1 else ''} moved on"
            " · Enter shows one · Esc goes on to the list",
            id="digest-header",
        )
        yield OptionList(
            *[Option(entry_text(entry), id=entry.conversation.conversation_id) for entry in self.entries],
            id="digest-entries",
        )
        yield KeysFooter()

    @on(OptionList.OptionSelected, "#digest-entries")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def action_close(self) -> None:
        self.dismiss(None)
