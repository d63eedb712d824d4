"""The help dialog: every key binding, grouped in sections, in a scrollable
two-column table (key, what it does)."""

from __future__ import annotations

from rich.cells import cell_len
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
        # The key column is as wide as its longest key, and two cells more:
        # a key never runs into its description ("Enter in the inputsend").
        key_width = max((cell_len(key) for _, rows in self.sections for key, _ in rows), default=0) + 2
        with Vertical(classes="dialog--box") as box:
            box.border_title = "Keys"
            with VerticalScroll():
                for title, rows in self.sections:
                    yield Label(Content(title), classes="help--section")
                    for key, description in rows:
                        with Horizontal(classes="help--row"):
                            key_label = Label(Content(key), classes="help--key")
                            key_label.styles.width = key_width
                            yield key_label
                            yield Label(Content(description), classes="help--description")
        yield KeysFooter()

    def action_close(self) -> None:
        self.dismiss(None)
