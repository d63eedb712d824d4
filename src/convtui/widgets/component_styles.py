"""Component-class styles kept between paints."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.style import Style
from textual.color import Color


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
        """The widget's style with these components laid over it in order.

        A component's colours are blended onto the background beneath them as
        Textual blends a widget's own: `background: $accent 40%` tints what
        is under it, `color: $text-muted` (a translucent `auto`) is a text
        colour that reads on that background. Rich styles have no alpha, so
        the colours are resolved here, once, rather than cut to opaque."""
        key = (components, self.has_focus, self.app.theme)  # type: ignore[attr-defined]
        style = self._component_styles.get(key)
        if style is None:
            style = self._resolve(components)
            self._component_styles[key] = style
        return style

    def _resolve(self, components: tuple[str, ...]) -> Style:
        widget: Any = self
        base: Style = widget.rich_style
        background = Color.from_rich_color(base.bgcolor) if base.bgcolor else Color(0, 0, 0)
        foreground = Color.from_rich_color(base.color) if base.color else background.get_contrast_text()
        text_style = Style()
        for name in components:
            styles = widget.get_component_styles(f"{self.COMPONENT_PREFIX}--{name}")
            if styles.has_rule("background"):
                background += styles.background.tint(styles.background_tint)
            if styles.has_rule("color"):
                foreground = styles.color.multiply_alpha(styles.text_opacity)
                if styles.has_rule("auto_color") and styles.auto_color:
                    foreground = background.get_contrast_text(foreground.a)
            text_style += styles.text_style
        colours = Style.from_color((background + foreground).rich_color, background.rich_color)
        return base + text_style + colours

    def notify_style_update(self) -> None:
        super().notify_style_update()  # type: ignore[misc]
        self._component_styles.clear()
