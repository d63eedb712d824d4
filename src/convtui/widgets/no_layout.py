"""Textual widgets without the whole-screen layout passes they do not need.

A layout pass re-arranges and repaints every widget on the screen: about
14 ms at 120×40, more than half the budget of a keystroke. Textual asks for
one whenever a scrolling widget's content size changes (each character typed
in an Input, each filter of the list) and rebuilds the footer whenever the
bindings are refreshed, even when it would show the same keys.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.reactive import Reactive
from textual.screen import Screen
from textual.widgets import Footer, Input
from textual.widgets._footer import FooterKey


class ContentSized:
    """For a ScrollView: a new content size updates its own scrollbars and
    repaints it, without a layout pass. The scrollbars still ask for one when
    they appear or disappear, which changes the space left for the content."""

    virtual_size = Reactive(Size(0, 0), layout=False)

    def watch_virtual_size(self, size: Size) -> None:
        self._scroll_update(size)  # type: ignore[attr-defined]  # the scrollbars and scroll limits


class LineInput(ContentSized, Input):
    """A one-line Input whose typing repaints the input alone. Its
    horizontal scrollbar is hidden for good (Input gives it no height
    anyway): left on auto, it "appeared" whenever the text or the placeholder
    outgrew the box and vanished again when it fit, and each change asked
    for a layout pass of the whole screen (6-11 ms) on the first character
    typed and on erasing the last. The cursor still scrolls the text:
    Input scrolls to it with force."""

    DEFAULT_CSS = """
    LineInput { overflow-x: hidden; }
    """


class KeysFooter(Footer):
    """Textual's footer, rebuilt only when the keys it shows change, showing
    as many keys as fit its width, in their order, and always the command
    palette's key (everything is there): never a key cut in half."""

    _composed: tuple | None = None  # the keys the footer was last built with

    def bindings_changed(self, screen: Screen) -> None:
        if _keys_shown(screen) != self._composed:
            super().bindings_changed(screen)  # (queues a rebuild)

    async def recompose(self) -> None:
        # Queued rebuilds run after the next refresh: when the keys changed
        # twice meanwhile, the first one already shows the last keys.
        if not self.is_attached or self._pruning:
            return  # (gone meanwhile, with its screen)
        shown = _keys_shown(self.screen)
        if shown == self._composed:
            return
        self._composed = shown
        await super().recompose()
        self._fit()

    def on_resize(self) -> None:
        self._fit()

    def _fit(self) -> None:
        keys = list(self.query_children(FooterKey))
        palette = [key for key in keys if key.has_class("-command-palette")]
        room = self.size.width - sum(_width(key) for key in palette)
        for key in keys:
            if key not in palette:
                room -= _width(key)
                if key.display != (room >= 0):
                    key.display = room >= 0


def _keys_shown(screen: Screen) -> tuple:
    """What the footer shows of the screen's bindings, as comparable values."""
    palette_key = screen.app.COMMAND_PALETTE_BINDING
    return tuple(
        (key, binding.action, binding.description, enabled, tooltip)
        for key, (_, binding, enabled, tooltip) in screen.active_bindings.items()
        if binding.show or key == palette_key
    )


def _width(key: FooterKey) -> int:
    """The cells a footer key takes (its text, padding and border)."""
    return key.get_content_width(Size(0, 0), Size(0, 0)) + key.styles.gutter.width
