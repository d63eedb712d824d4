"""The filter box above the conversation list."""

from __future__ import annotations

from collections.abc import Callable

from .no_layout import LineInput


class FilterBox(LineInput):
    """An Input that hands its text to `on_text` the moment it changes,
    while the keystroke is still being handled, so that the typed character
    and the list it filters are painted in the same frame. (Input.Changed
    reaches the screen only after the frame echoing the key: the list then
    waits for the next frame, 10-20 ms later.) `on_text` must be quick."""

    def __init__(self, on_text: Callable[[str], None], *, placeholder: str = "", id: str | None = None) -> None:
        super().__init__(placeholder=placeholder, id=id)
        self._on_text = on_text

    def watch_value(self, value: str) -> None:
        self._on_text(value)
