"""UI tests. `DialogHost` is the tiny app the dialog tests push one dialog into:
it records what the dialog is dismissed with, and turns off cursor blink and
animations so that snapshots are the same on every run."""

from __future__ import annotations

from typing import Any

from textual.app import App
from textual.screen import Screen
from textual.widgets import Input, TextArea


class DialogHost(App[None]):
    """Pushes `dialog` on mount; `results` collects its dismiss values."""

    def __init__(self, dialog: Screen[Any]) -> None:
        super().__init__()
        self.animation_level = "none"
        self.dialog = dialog
        self.results: list[Any] = []

    async def on_mount(self) -> None:
        await self.push_screen(self.dialog, self.results.append)
        for field in self.dialog.query("Input, TextArea"):
            assert isinstance(field, (Input, TextArea))
            field.cursor_blink = False
