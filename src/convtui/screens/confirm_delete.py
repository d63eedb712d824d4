"""The delete confirmation: says exactly which conversations go, that their
events and workspaces go with them, and that they go to the trash."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from ..terminal_text import one_line
from ..widgets.no_layout import KeysFooter

# How many titles a multi-delete lists before "… and N more".
TITLES_SHOWN = 5
TITLE_WIDTH = 62


FOR_GOOD = "For good: the OpenHands server has no trash."


def describe_deletion(titles: list[str], to_trash: bool = True) -> tuple[str, Content, str]:
    """The question, the titles (as literal text) and the consequence line."""
    if len(titles) == 1:
        return (
            "Delete this conversation?",
            Content(one_line(titles[0])),
            "With its events and workspace, to the trash: u undoes (30 s), convtui trash restores." if to_trash else FOR_GOOD,
        )
    lines = [f"• {one_line(title, TITLE_WIDTH)}" for title in titles[:TITLES_SHOWN]]
    if len(titles) > TITLES_SHOWN:
        lines.append(f"… and {len(titles) - TITLES_SHOWN} more")
    return (
        f"Delete {len(titles)} conversations?",
        Content("\n".join(lines)),
        "With their events and workspaces, to the trash: u undoes (30 s), convtui trash restores." if to_trash else FOR_GOOD,
    )


class ConfirmDeleteScreen(ModalScreen[bool]):
    """Ask before deleting one or more conversations.

    Dismisses with True (`y`, or Enter once Tab has moved the focus to
    Delete) or False (Esc, `n`, Enter on Cancel, which has the focus at first:
    an Enter typed ahead never deletes). Titles are shown literally: markup in
    a title is never interpreted.
    """

    CSS_PATH = "dialogs.tcss"
    DEFAULT_CLASSES = "dialog"
    AUTO_FOCUS = "#cancel"
    BINDINGS = [
        Binding("y", "confirm", "Delete", id="confirm_delete.yes"),
        # Enter on a focused button presses that button; this covers no focus.
        Binding("enter", "cancel", "Cancel", show=False),
        Binding("n,escape", "cancel", "Cancel", id="confirm_delete.no"),
    ]

    def __init__(self, titles: list[str], to_trash: bool = True) -> None:
        if not titles:
            raise ValueError("ConfirmDeleteScreen needs at least one title")
        super().__init__()
        self.titles = list(titles)
        self.to_trash = to_trash

    def compose(self) -> ComposeResult:
        question, titles, consequence = describe_deletion(self.titles, self.to_trash)
        with Vertical(classes="dialog--box") as box:
            box.border_title = "Delete"
            yield Label(question, id="question", classes="dialog--text")
            yield Label(titles, id="titles", classes="dialog--titles")
            yield Label(consequence, id="consequence", classes="dialog--text")
            with Horizontal(classes="dialog--buttons"):
                yield Button("Delete", variant="error", id="delete")
                yield Button("Cancel", id="cancel")
        yield KeysFooter()

    @on(Button.Pressed, "#delete")
    def action_confirm(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)
