"""Component-class styles kept between paints."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.style import Style


class CachedComponentStyles:
    """For a widget that paints lines itself: its style plus some of its
    component classes, kept until the CSS, the theme or the focus changes.
    Textual computes them afresh after every refresh, which was a third of
    the cost of painting a row."""

    COMPONENT_PREFIX: ClassVar[str]  # "conversation-list" for .conversation-list--cursor

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._component_styles: dict[tuple, Style] = {}

    def component_style(self, *components: str) -> Style:
        key = (components, self.has_focus, self.app.theme)  # type: ignore[attr-defined]
        style = self._component_styles.get(key)
        if style is None:
            widget: Any = self
            style = widget.rich_style
            for name in components:
                style += widget.get_component_rich_style(f"{self.COMPONENT_PREFIX}--{name}", partial=True)
            self._component_styles[key] = style
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()  # type: ignore[misc]
        self._component_styles.clear()
