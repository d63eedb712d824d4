"""Reading a rendered screen the way a terminal would show it: each cell's
character with the foreground and background colours it ends up in, after
the colour system of the terminal (truecolor, 256 or 16 colours) has turned
Textual's colours into its own, and the contrast between the two.

The downgrade is Rich's own (`Color.downgrade`, which the driver's console
uses when it writes the screen); a 256- or 16-colour cell is then shown with
Rich's palettes (`EIGHT_BIT_PALETTE`, `STANDARD_PALETTE`: the same the
downgrade matched against). NO_COLOR needs no step here: Textual's own line
filter (Monochrome) has already turned the rendered colours grey."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from rich.color import Color, ColorSystem, ColorType
from rich.color_triplet import ColorTriplet
from rich._palettes import EIGHT_BIT_PALETTE, STANDARD_PALETTE
from rich.segment import Segment
from rich.style import Style
from textual.app import App
from textual.errors import NoWidget
from textual.strip import Strip

COLOUR_SYSTEMS = {
    "truecolor": ColorSystem.TRUECOLOR,
    "256": ColorSystem.EIGHT_BIT,
    "16": ColorSystem.STANDARD,
}

# What a cell with no colour of its own shows (a dark terminal).
TERMINAL_FOREGROUND = ColorTriplet(229, 229, 229)
TERMINAL_BACKGROUND = ColorTriplet(0, 0, 0)


@dataclass(frozen=True)
class Cell:
    x: int
    y: int
    character: str
    foreground: ColorTriplet
    background: ColorTriplet
    style: Style

    @property
    def contrast(self) -> float:
        return contrast_ratio(self.foreground, self.background)


def shown_colour(color: Color | None, system: ColorSystem, default: ColorTriplet) -> ColorTriplet:
    """The colour a terminal of `system` shows for `color`."""
    if color is None or color.type is ColorType.DEFAULT:
        return default
    color = color.downgrade(system)
    if color.type is ColorType.TRUECOLOR:
        assert color.triplet is not None
        return color.triplet
    assert color.number is not None
    if color.number < 16:
        return ColorTriplet(*STANDARD_PALETTE[color.number])
    return ColorTriplet(*EIGHT_BIT_PALETTE[color.number])


def relative_luminance(colour: ColorTriplet) -> float:
    """WCAG 2 relative luminance, 0 (black) to 1 (white)."""

    def channel(value: int) -> float:
        value_01 = value / 255
        return value_01 / 12.92 if value_01 <= 0.04045 else ((value_01 + 0.055) / 1.055) ** 2.4

    red, green, blue = colour
    return 0.2126 * channel(red) + 0.7152 * channel(green) + 0.0722 * channel(blue)


def contrast_ratio(first: ColorTriplet, second: ColorTriplet) -> float:
    """WCAG 2 contrast ratio: 1 (the same) to 21 (black on white)."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def screen_strips(app: App) -> list[Strip]:
    """The screen in front as the compositor renders it (line filters,
    NO_COLOR's among them, already applied)."""
    return app.screen._compositor.render_strips()


def cells(strips: list[Strip], system: ColorSystem) -> Iterator[Cell]:
    """Every visible character (not spaces) with the colours it is shown in."""
    for y, strip in enumerate(strips):
        x = 0
        for text, style, control in strip:
            if control:
                continue
            style = style or Style()
            foreground = shown_colour(style.color, system, TERMINAL_FOREGROUND)
            background = shown_colour(style.bgcolor, system, TERMINAL_BACKGROUND)
            if style.reverse:
                foreground, background = background, foreground
            if style.dim:  # terminals draw dim text halfway to its background
                foreground = ColorTriplet(*(round((f + b) / 2) for f, b in zip(foreground, background)))
            for character in text:
                if not character.isspace() and not is_decoration(character):
                    yield Cell(x, y, character, foreground, background, style)
                x += Segment(character).cell_length


def is_decoration(character: str) -> bool:
    """Box-drawing and block characters (frames, rules, scrollbars and the
    tall borders Textual draws in the background colour on purpose), and
    emoji, which terminals draw in their own colours."""
    return "\u2500" <= character <= "\u259f" or character >= "\U0001f000"


def behind_dialog(app: App, cell: Cell) -> bool:
    """Whether the cell is the screen under a dialog, which the dialog dims
    on purpose (no widget of the dialog covers it)."""
    screen = app.screen
    if not screen.is_modal:
        return False
    try:
        widget, _ = screen._compositor.get_widget_at(cell.x, cell.y)
    except NoWidget:
        return True
    return widget is screen


def screen_text(strips: list[Strip]) -> list[str]:
    return ["".join(text for text, _, control in strip if not control) for strip in strips]


def poor_contrast(app: App, system: ColorSystem, minimum: float) -> list[str]:
    """One line per run of cells whose contrast is under `minimum`: where,
    the text, and the colours (empty when every cell reads well)."""
    strips = screen_strips(app)
    lines = screen_text(strips)
    problems: list[str] = []
    previous: Cell | None = None
    run = ""
    for cell in cells(strips, system):
        if cell.contrast >= minimum or behind_dialog(app, cell):
            continue
        if previous and cell.y == previous.y and cell.foreground == previous.foreground and cell.background == previous.background:
            run += cell.character
            previous = cell
            continue
        if previous is not None:
            problems[-1] = problems[-1].replace("{run}", repr(run))
        run = cell.character
        previous = cell
        problems.append(
            f"row {cell.y} col {cell.x} {{run}} ({cell.contrast:.2f}:1, fg {cell.foreground.hex} on bg"
            f" {cell.background.hex}) in {lines[cell.y].strip()[:60]!r}"
        )
    if previous is not None:
        problems[-1] = problems[-1].replace("{run}", repr(run))
    return [problem.replace("{run}", "") for problem in problems]
