"""The help dialog: every key binding, grouped in sections, in a scrollable
two-column table (key, what it does)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label

from ..widgets.no_layout import KeysFooter

HelpSections = list[tuple[str, list[tuple[str, str]]]]


class HelpScreen(ModalScreen[None]):
    """Show key bindings: `sections` is [(section title, [(key, description)])].

    Esc, q or ? closes it (dismissed with None). Arrow keys and PageUp/Down
    scroll. All text is shown literally.
    """

    CSS_PATH = "dialogs.tcss"
    DEFAULT_CLASSES = "dialog"
    AUTO_FOCUS = "VerticalScroll"
    BINDINGS = [
        Binding("escape,q,question_mark", "close", "Close", id="help.close"),
    ]

    def __init__(self, sections: HelpSections) -> None:
        super().__init__()
        self.sections = sections

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog--box") as box:
            box.border_title = "Keys"
            with VerticalScroll():
                for title, rows in self.sections:
                    yield Label(Content(title), classes="help--section")
                    for key, description in rows:
                        with Horizontal(classes="help--row"):
                            yield Label(Content(key), classes="help--key")
                            yield Label(Content(description), classes="help--description")
        yield KeysFooter()

    def action_close(self) -> None:
        self.dismiss(None)
