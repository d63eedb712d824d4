"""The rename dialog: one Input holding the current title, all of it selected
so that typing replaces it. Enter validates; a bad title is explained inline
and nothing is dismissed."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from ..backend.models import validate_title
from ..widgets.no_layout import KeysFooter


class RenameScreen(ModalScreen[str | None]):
    """Ask for a new title.

    Dismisses with the cleaned title (stripped, checked by
    `models.validate_title`) or None when cancelled with Esc.
    """

    CSS_PATH = "dialogs.tcss"
    DEFAULT_CLASSES = "dialog"
    AUTO_FOCUS = "#title"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="rename.cancel"),
        # Enter is the Input's own "submit"; listed here so the footer shows it.
        Binding("enter", "rename", "Rename", id="rename.submit", show=True),
    ]

    def __init__(self, current_title: str) -> None:
        super().__init__()
        self.current_title = current_title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog--box") as box:
            box.border_title = "Rename conversation"
            yield Input(
                self.current_title,
                placeholder="New title",
                select_on_focus=True,
                id="title",
            )
            yield Label("", id="error", classes="dialog--status -error")
            yield Label("Enter renames · Esc cancels", classes="dialog--hint")
        yield KeysFooter()

    @on(Input.Submitted, "#title")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_rename()

    @on(Input.Changed, "#title")
    def _edited(self) -> None:
        self._show_error(None)

    def action_rename(self) -> None:
        """Validate the typed title; dismiss with it, or explain what is wrong."""
        try:
            title = validate_title(self.query_one("#title", Input).value)
        except ValueError as error:
            self._show_error(str(error))
            return
        self.dismiss(title)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _show_error(self, message: str | None) -> None:
        self.query_one("#error", Label).update(Content(message or ""))
        self.query_one("#title", Input).set_class(message is not None, "-invalid")
