"""A yes/no question (quitting with loops running, discarding edits)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True (y, or Enter when yes is the default) or False (n,
    Esc, or Enter when no is). The default answer's button has the focus."""

    CSS_PATH = "dialogs.tcss"
    DEFAULT_CLASSES = "dialog"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
        # Enter on a focused button presses that button; this covers no focus.
        Binding("enter", "answer_default", show=False),
    ]

    def __init__(self, question: str, yes_label: str = "Yes", no_label: str = "Cancel", default_yes: bool = True) -> None:
        super().__init__()
        self.question = question
        self.yes_label = yes_label
        self.no_label = no_label
        self.default_yes = default_yes
        self.AUTO_FOCUS = "#yes" if default_yes else "#no"

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog--box") as box:
            box.border_title = "Confirm"
            yield Static(Text(self.question), classes="dialog--text")
            with Horizontal(classes="dialog--buttons"):
                yield Button(f"{self.yes_label} (y)", id="yes", variant="warning")
                yield Button(f"{self.no_label} (n)", id="no")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def action_answer_default(self) -> None:
        self.dismiss(self.default_yes)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
