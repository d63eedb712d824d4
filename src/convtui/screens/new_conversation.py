"""The new-conversation dialog: first message, repository, branch,
instructions and whether to start the agent right away. The form is checked
by `NewConversationRequest` itself, so the dialog and `convtui new` refuse
the same inputs with the same words."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, TextArea

from ..backend.errors import first_validation_error
from ..backend.models import ConversationTrigger, NewConversationRequest
from ..widgets.no_layout import KeysFooter
from .invalid_field import mark_invalid_field


@dataclass(frozen=True)
class NewConversationResult:
    """What the dialog asks for: a validated request, and whether to start
    its agent loop now."""

    request: NewConversationRequest
    start_now: bool


# The checkbox says its state in words: its X differs only by colour, which
# NO_COLOR and some 16-colour themes do not show.
START_NOW = {True: "Start now: yes", False: "Start now: no (s starts it later)"}


class NewConversationScreen(ModalScreen[NewConversationResult | None]):
    """Create a conversation.

    Dismisses with a NewConversationResult (ctrl+s, Enter in a one-line
    field, or Create) once the form validates, or None on Esc. Widget ids are the request's field names, so a
    validation error can point at its field.
    """

    CSS_PATH = "dialogs.tcss"
    DEFAULT_CLASSES = "dialog"
    AUTO_FOCUS = "#initial_user_msg"
    BINDINGS = [
        Binding("ctrl+s", "create", "Create", id="new_conversation.create"),
        Binding("escape", "cancel", "Cancel", id="new_conversation.cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog--box") as box:
            box.border_title = "New conversation"
            with Grid(classes="dialog--form"):
                yield Label("Message")
                yield TextArea(
                    id="initial_user_msg",
                    compact=True,
                    placeholder="What should the agent do? (optional)",
                )
                yield Label("Repository")
                yield Input(
                    placeholder="owner/name, git URL or local path",
                    id="repository",
                    compact=True,
                )
                yield Label("Branch")
                yield Input(placeholder="default branch", id="selected_branch", compact=True)
                yield Label("Instructions")
                yield Input(
                    placeholder="extra instructions for the agent (optional)",
                    id="conversation_instructions",
                    compact=True,
                )
                yield Label("")
                yield Checkbox(START_NOW[True], value=True, id="start_now", compact=True)
            yield Label("", id="error", classes="dialog--status -error")
            with Horizontal(classes="dialog--buttons"):
                yield Button("Create", variant="primary", id="create")
                yield Button("Cancel", id="cancel")
        yield KeysFooter()

    def form_values(self) -> dict[str, str]:
        """The request as typed: empty fields are left out, trigger is gui."""
        typed = {
            "initial_user_msg": self.query_one("#initial_user_msg", TextArea).text,
            "repository": self.query_one("#repository", Input).value,
            "selected_branch": self.query_one("#selected_branch", Input).value,
            "conversation_instructions": self.query_one(
                "#conversation_instructions", Input
            ).value,
        }
        values = {name: value for name, value in typed.items() if value.strip()}
        values["trigger"] = ConversationTrigger.GUI.value
        return values

    @on(Button.Pressed, "#create")
    @on(Input.Submitted)
    def action_create(self) -> None:
        """Validate the form; dismiss with the result or show the first error."""
        try:
            request = NewConversationRequest.model_validate(self.form_values())
        except ValidationError as error:
            self._show_error(first_validation_error(error), error.errors()[0]["loc"])
            return
        start_now = self.query_one("#start_now", Checkbox).value
        self.dismiss(NewConversationResult(request=request, start_now=start_now))

    @on(Checkbox.Changed, "#start_now")
    def _start_now_changed(self, event: Checkbox.Changed) -> None:
        event.checkbox.label = START_NOW[event.value]

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def _show_error(self, message: str, location: tuple[object, ...]) -> None:
        """One line under the form; the field at fault is marked and focused."""
        self.query_one("#error", Label).update(Content(message))
        mark_invalid_field(self, location)
