"""The remember-prompt dialog: asks the model (through the caller's
`generate`) for a prompt that captures what a conversation learned, then lets
the user copy it (OSC 52, works over SSH) or save it as a Markdown file."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Label, LoadingIndicator, TextArea

from ..backend.errors import describe_os_error
from ..terminal_text import inert, one_line
from ..widgets.no_layout import KeysFooter


def write_prompt_file(directory: Path, text: str, now: datetime | None = None) -> Path:
    """Write `text` to a new `remember-<timestamp>.md` in `directory` (created
    if missing) and return its path. Never overwrites: a name already taken
    gets a -2, -3 ... suffix. Raises OSError."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ""
    for attempt in range(1, 1000):
        path = directory / f"remember-{stamp}{suffix}.md"
        try:
            with path.open("x", encoding="utf-8") as file:
                file.write(text)
            return path
        except FileExistsError:
            suffix = f"-{attempt + 1}"
    raise FileExistsError(f"could not find a free file name in {directory}")


class RememberPromptScreen(ModalScreen[None]):
    """Generate, show, copy and save a remember prompt.

    `generate()` runs in a worker as soon as the dialog opens; its exception
    is shown as one line. `c` copies, `s` saves into `save_directory`, Esc
    closes (dismissed with None).
    """

    CSS_PATH = "dialogs.tcss"
    DEFAULT_CLASSES = "dialog"
    BINDINGS = [
        Binding("c", "copy", "Copy", id="remember.copy"),
        Binding("s", "save", "Save", id="remember.save"),
        Binding("escape", "close", "Close", id="remember.close"),
    ]

    def __init__(self, generate: Callable[[], Awaitable[str]], save_directory: Path) -> None:
        super().__init__()
        self._generate = generate
        self.save_directory = Path(save_directory)
        self.prompt_text: str | None = None

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog--box") as box:
            box.border_title = "Remember prompt"
            with Horizontal(id="generating", classes="dialog--progress"):
                yield LoadingIndicator()
                yield Label("Generating…")
            yield TextArea(id="prompt", read_only=True)
            yield Label("", id="error", classes="dialog--status -error")
            with Horizontal(classes="dialog--buttons"):
                yield Button("Copy", id="copy", disabled=True)
                yield Button("Save", id="save", disabled=True)
                yield Button("Close", id="close")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.query_one("#prompt").display = False
        self._run_generate()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Copy and save are shown dimmed until there is a prompt.
        if action in ("copy", "save") and self.prompt_text is None:
            return None
        return True

    @work(exclusive=True, group="remember-generate")
    async def _run_generate(self) -> None:
        try:
            text = await self._generate()
        except Exception as error:  # shown to the user, never as a traceback
            self.query_one("#generating").display = False
            message = one_line(str(error)) or type(error).__name__
            self.query_one("#error", Label).update(Content(message))
            return
        self._show_prompt(text)

    def _show_prompt(self, text: str) -> None:
        self.prompt_text = text
        self.query_one("#generating").display = False
        prompt = self.query_one("#prompt", TextArea)
        prompt.text = inert(text)
        prompt.display = True
        prompt.focus()
        self.query_one("#copy", Button).disabled = False
        self.query_one("#save", Button).disabled = False
        self.refresh_bindings()

    @on(Button.Pressed, "#copy")
    def action_copy(self) -> None:
        if self.prompt_text is None:
            return
        self.app.copy_to_clipboard(self.prompt_text)
        self.notify("copied")

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        if self.prompt_text is not None:
            self._save(self.prompt_text)

    @work(exclusive=True, group="remember-save")
    async def _save(self, text: str) -> None:
        try:
            path = await asyncio.to_thread(write_prompt_file, self.save_directory, text)
        except OSError as error:
            self.notify(describe_os_error(error, "save the prompt to"), severity="error", markup=False)
        else:
            self.notify(f"saved {path}", markup=False)

    @on(Button.Pressed, "#close")
    def action_close(self) -> None:
        self.dismiss(None)
