"""Ask why an action is rejected: the reason, optional, goes to the agent
with the rejection, so it can try another way."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from ..backend.models import REJECT_REASON_MAX
from ..terminal_text import inert, one_line
from ..widgets.no_layout import KeysFooter


class RejectReasonScreen(ModalScreen[str | None]):
    """Dismisses with the reason ("" for none) or None when cancelled (Esc)."""

    CSS_PATH = "dialogs.tcss"
    DEFAULT_CLASSES = "dialog"
    AUTO_FOCUS = "#reason"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="reject.cancel"),
        Binding("enter", "reject", "Reject", id="reject.submit", show=True),
    ]

    def __init__(self, title: str) -> None:
        super().__init__()
        self.conversation_title = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog--box") as box:
            box.border_title = "Reject the action"
            yield Label(one_line(inert(self.conversation_title), 70), classes="dialog--text")
            yield Input(placeholder="Why (optional): the agent reads it", max_length=REJECT_REASON_MAX, id="reason")
            yield Label("Enter rejects · Esc cancels (the action keeps waiting)", classes="dialog--hint")
        yield KeysFooter()

    @on(Input.Submitted, "#reason")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_reject()

    def action_reject(self) -> None:
        self.dismiss(self.query_one("#reason", Input).value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)
