"""A conversation's event log, drawn with the Line API: events are laid out
into wrapped lines once per width, and only visible lines are painted. Long
outputs are collapsed to a few lines (Enter expands the selected event). New
events are followed unless the user scrolled up. All text is shown
literally: markup and escape sequences are made inert first."""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..backend.events import EventDict, event_kind
from ..terminal_text import inert
from .component_styles import CachedComponentStyles
from .no_layout import ContentSized

COLLAPSED_LINES = 6


def _body(event: EventDict) -> str:
    args = event.get("args") or {}
    if event.get("action"):
        kind = event_kind(event)
        if kind == "run":
            return f"$ {args.get('command', '')}"
        if kind == "edit":
            text = args.get("file_text") or args.get("new_str") or args.get("content") or ""
            return f"{args.get('command', 'edit')} {args.get('path', '')}\n{text}".rstrip()
        if kind == "read":
            return f"view {args.get('path', '')}"
        if kind == "finish":
            return event.get("message") or args.get("final_thought") or ""
        return args.get("content") or event.get("message") or args.get("thought") or ""
    content = event.get("content") or event.get("message") or ""
    extras = event.get("extras") or {}
    if event.get("observation") == "run" and "exit_code" in extras:
        content = f"{content.rstrip()}\n[exit {extras['exit_code']}]"
    return content


def _heading(event: EventDict) -> tuple[str, str]:
    """(text, style name) of an event's first line."""
    source = event.get("source", "?")
    kind = event_kind(event)
    args = event.get("args") or {}
    if event.get("action"):
        if kind == "message":
            return (f"{'You' if source == 'user' else 'Agent'}", "user" if source == "user" else "agent")
        label = {"run": "Run", "edit": "Edit", "read": "Read", "think": "Think", "finish": "Finish"}.get(kind, kind)
        thought = (args.get("thought") or "").strip()
        if thought and kind in ("run", "edit", "read"):
            return (f"{label} — {thought.splitlines()[0]}", "action")
        return (label, "action")
    if kind == "error":
        return ("Error", "error")
    if kind == "user_rejected":
        return ("Rejected", "error")
    if kind == "agent_state_changed":
        return (f"State: {(event.get('extras') or {}).get('agent_state', '')}", "dim")
    return (f"→ {kind}", "observation")


class EventLog(CachedComponentStyles, ContentSized, ScrollView, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "select(-1)", "Previous event", show=False),
        Binding("down,j", "select(1)", "Next event", show=False),
        Binding("home,g", "first", "First event", show=False),
        Binding("end,G", "last", "Last event", show=False),
        Binding("pageup", "page(-1)", show=False),
        Binding("pagedown", "page(1)", show=False),
        Binding("enter", "toggle_expand", "Expand", id="expand"),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "event-log--user",
        "event-log--agent",
        "event-log--action",
        "event-log--observation",
        "event-log--error",
        "event-log--dim",
        "event-log--selected",
        "event-log--streaming",
    }

    COMPONENT_PREFIX = "event-log"
    SCOPED_CSS = False  # the App:nocolor rules below start outside the widget
    DEFAULT_CSS = """
    EventLog { background: $surface; scrollbar-size-vertical: 1; overflow-x: hidden; }
    EventLog > .event-log--user { color: $accent; text-style: bold; }
    EventLog > .event-log--agent { color: $success; text-style: bold; }
    EventLog > .event-log--action { color: $primary; text-style: bold; }
    EventLog > .event-log--observation { color: $text-muted; }
    EventLog > .event-log--error { color: $error; text-style: bold; }
    EventLog > .event-log--dim { color: $text-muted; }
    EventLog > .event-log--selected { background: $panel-lighten-2; }
    EventLog:focus > .event-log--selected { background: $accent-darken-3; }
    EventLog > .event-log--streaming { color: $text-muted; text-style: italic; }
    App:nocolor EventLog > .event-log--selected { background: transparent; text-style: reverse; }
    App:nocolor EventLog:focus > .event-log--selected { background: transparent; text-style: reverse; }
    """

    class Selected(Message):
        def __init__(self, event_log: EventLog, event_id: int | None) -> None:
            super().__init__()
            self.event_log = event_log
            self.event_id = event_id

        @property
        def control(self) -> EventLog:
            return self.event_log

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.events: list[EventDict] = []
        self.expanded: set[int] = set()
        self.selected: int | None = None  # index into events
        self.streaming = ""
        self.follow = True
        self._lines: list[tuple[int, str, str]] = []  # (event index, text, style name)
        self._starts: list[int] = []  # first line of each event
        self._layout_width = 0
        self._paint_top = self._paint_width = 0  # set by render_lines for its render_line calls

    # -- data ------------------------------------------------------------------------

    @property
    def selected_event_id(self) -> int | None:
        if self.selected is None or not 0 <= self.selected < len(self.events):
            return None
        return self.events[self.selected].get("id")

    def set_events(self, events: list[EventDict]) -> None:
        self.events = list(events)
        self.expanded.clear()
        self.streaming = ""
        self.selected = len(self.events) - 1 if self.events else None
        self.follow = True
        self._relayout()

    def add_event(self, event: EventDict) -> None:
        if self.events and event.get("id") is not None and event["id"] <= (self.events[-1].get("id") or -1):
            return  # already shown (the poll and a live update both saw it)
        follow = self.follow or self._at_bottom()
        self.events.append(event)
        if event.get("source") == "agent":
            self.streaming = ""
        if follow:
            self.selected = len(self.events) - 1
        self._relayout(follow)

    def set_streaming(self, text: str) -> None:
        self.streaming = text
        self._relayout(self.follow or self._at_bottom())

    # -- layout --------------------------------------------------------------------

    def _at_bottom(self) -> bool:
        return self.scroll_offset.y >= self.max_scroll_y - 1

    def _relayout(self, follow: bool | None = None) -> None:
        width = max(10, self.scrollable_content_region.width - 1)
        self._layout_width = width
        lines: list[tuple[int, str, str]] = []
        starts: list[int] = []
        for index, event in enumerate(self.events):
            starts.append(len(lines))
            heading, style = _heading(event)
            number = event.get("id", "")
            heading_line = f"{number:>4} {inert(heading)}"
            if len(heading_line) > width:
                heading_line = heading_line[: width - 1] + "…"
            lines.append((index, heading_line, style))
            body = _wrap_block(inert(_body(event)), width - 5)
            if len(body) > COLLAPSED_LINES + 1 and index not in self.expanded:
                hidden = len(body) - COLLAPSED_LINES
                body = body[:COLLAPSED_LINES] + [f"… {hidden} more lines (Enter expands)"]
            body_style = "observation" if event.get("observation") else "plain"
            lines.extend((index, "     " + text, body_style) for text in body)
        if self.streaming:
            lines.extend((-1, "     " + text, "streaming") for text in _wrap_block(inert(self.streaming), width - 5))
        self._lines, self._starts = lines, starts
        self.virtual_size = Size(width, len(lines))
        if follow if follow is not None else self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        self.refresh()

    def on_resize(self) -> None:
        if self.scrollable_content_region.width - 1 != self._layout_width:
            self._relayout()

    # -- selection -----------------------------------------------------------------

    def _show_selected(self) -> None:
        if self.selected is None:
            return
        start = self._starts[self.selected]
        end = self._starts[self.selected + 1] if self.selected + 1 < len(self._starts) else len(self._lines)
        height = self.scrollable_content_region.height
        top = int(self.scroll_offset.y)
        if start < top:
            self.scroll_to(y=start, animate=False, immediate=True)
        elif end > top + height:
            self.scroll_to(y=max(start, end - height), animate=False, immediate=True)
        self.follow = self.selected == len(self.events) - 1
        self.post_message(self.Selected(self, self.selected_event_id))
        self.refresh()

    def action_select(self, delta: int) -> None:
        if not self.events:
            return
        current = len(self.events) - 1 if self.selected is None else self.selected
        self.selected = max(0, min(len(self.events) - 1, current + delta))
        self._show_selected()

    def action_first(self) -> None:
        if self.events:
            self.selected = 0
            self._show_selected()

    def action_last(self) -> None:
        if self.events:
            self.selected = len(self.events) - 1
            self.follow = True
            self._show_selected()

    def action_page(self, direction: int) -> None:
        self.scroll_to(y=self.scroll_offset.y + direction * max(1, self.size.height - 1), animate=False)
        self.follow = direction > 0 and self._at_bottom()

    def action_toggle_expand(self) -> None:
        if self.selected is not None:
            self.expanded ^= {self.selected}
            self._relayout(follow=False)
            self._show_selected()

    def on_mouse_scroll_up(self) -> None:
        self.follow = False

    def on_click(self, event) -> None:  # noqa: ANN001 (textual.events.Click)
        line = int(self.scroll_offset.y) + event.y
        if 0 <= line < len(self._lines) and self._lines[line][0] >= 0:
            self.selected = self._lines[line][0]
            if event.chain >= 2:
                self.action_toggle_expand()
            self._show_selected()

    # -- painting ------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        # Once per paint, not per line: Textual computes both afresh each time.
        self._paint_top = int(self.scroll_offset.y)
        self._paint_width = self.scrollable_content_region.width
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        line = self._paint_top + y
        width = self._paint_width
        if not self._lines and y == 0:
            base = self._style(False, "plain")
            return Strip([Segment("  No events yet.", base)]).crop_extend(0, width, base)
        if line >= len(self._lines):
            return Strip.blank(width, self._style(False, "plain"))
        index, text, style_name = self._lines[line]
        selected = index == self.selected and index >= 0
        base = self._style(selected, "plain")
        return Strip([Segment(text, self._style(selected, style_name))]).crop_extend(0, width, base)

    def _style(self, selected: bool, name: str) -> Style:
        components = ("selected",) if selected else ()
        return self.component_style(*components) if name == "plain" else self.component_style(name, *components)


def _wrap(text: str, width: int) -> list[str]:
    """Hard-wrap one line of plain text to `width` cells."""
    if cell_len(text) <= width:
        return [text]
    pieces, current, used = [], [], 0
    for character in text:
        size = cell_len(character)
        if used + size > width:
            pieces.append("".join(current))
            current, used = [], 0
        current.append(character)
        used += size
    pieces.append("".join(current))
    return pieces


def _wrap_block(text: str, width: int) -> list[str]:
    if not text:
        return []
    lines: list[str] = []
    for raw in text.expandtabs(4).split("\n"):
        lines.extend(_wrap(raw, max(10, width)))
    return lines

