"""A conversation's event log, drawn with the Line API: each event is laid
out into lines (word-wrapped; agent messages as Markdown) only when it comes
into view, and kept until the width changes, so a long conversation opens
and scrolls as fast as a short one; events not yet laid out count with an
estimate of their height. Long outputs are collapsed to a few lines (Enter
expands the selected event). The newest event stays in view while following
(the log was at its end) whatever changes its size. All text is shown
literally: markup and escape sequences are made inert first, and Markdown
renders agent text without ever reading it as console markup."""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from functools import cache
from typing import Any, ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.scrollbar import ScrollTo
from textual.strip import Strip

from ..backend.events import EventDict, event_kind, exit_code_of
from ..terminal_text import inert
from .component_styles import CachedComponentStyles
from .no_layout import ContentSized

COLLAPSED_LINES = 6
INDENT = "     "
# Code blocks in the terminal's own 16 colours, readable on any theme.
CODE_THEME = "ansi_dark"

# One laid-out line: its segments (styled only where Markdown styled them)
# and the component style drawn under them.
Line = tuple[list[Segment], str]


@cache
def _literal_markdown() -> type:
    """Rich's Markdown with raw HTML read as text: Rich drops HTML tags and
    blocks, and an agent's "add a <script> tag" must not lose its words.
    Imported on first use: rich.markdown (with pygments) costs ~25 ms."""
    from markdown_it import MarkdownIt
    from rich.markdown import Markdown

    parser = MarkdownIt("commonmark", {"html": False}).enable("strikethrough").enable("table")

    class LiteralMarkdown(Markdown):
        def __init__(self, markup: str, **options: Any) -> None:
            super().__init__("", **options)  # parsed again below, without HTML
            self.markup = markup
            self.parsed = parser.parse(markup)

    return LiteralMarkdown


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
        text = args.get("content") or event.get("message") or args.get("thought") or ""
        images = [url for url in args.get("image_urls") or [] if isinstance(url, str)] if kind == "message" else []
        return "\n".join([text, *(f"[image] {url[:200]}" for url in images)]) if images else text
    content = event.get("content") or event.get("message") or ""
    if event.get("observation") == "run" and exit_code_of(event) is not None:
        content = f"{content.rstrip()}\n[exit {exit_code_of(event)}]"
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


def _is_markdown(event: EventDict) -> bool:
    """Agent prose (its messages and its final word) is Markdown."""
    return event.get("source") == "agent" and event_kind(event) in ("message", "finish")


def _is_collapsible(event: EventDict) -> bool:
    """Outputs and file contents fold; what the user and the agent say does not."""
    return event_kind(event) != "message" and not _is_markdown(event)


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
        self._blocks: list[list[Line] | None] = []  # each event's lines, None until it is laid out
        self._heights: list[int] = []  # exact once laid out, estimated before
        self._starts: list[int] = [0]  # first line of each event; the last entry is where streaming starts
        self._streaming_lines: list[Line] = []
        self._layout_width = 0
        self._paint_top = self._paint_width = 0  # set by render_lines for its render_line calls

    # -- data ------------------------------------------------------------------------

    @property
    def selected_event_id(self) -> int | None:
        if self.selected is None or not 0 <= self.selected < len(self.events):
            return None
        return self.events[self.selected].get("id")

    @property
    def line_count(self) -> int:
        return self._starts[-1] + len(self._streaming_lines)

    def set_events(self, events: list[EventDict]) -> None:
        self.events = list(events)
        self.expanded.clear()
        self.streaming = ""
        self._streaming_lines = []
        self.selected = len(self.events) - 1 if self.events else None
        self.follow = True
        self._layout_width = self._width()
        self._estimate_all()
        self._update_size()

    def add_event(self, event: EventDict) -> None:
        if self.events and event.get("id") is not None and event["id"] <= (self.events[-1].get("id") or -1):
            return  # already shown (the poll and a live update both saw it)
        follow = self.follow or self._at_bottom()
        self.events.append(event)
        self._blocks.append(None)
        self._heights.append(self._estimate(event))
        if event.get("source") == "agent" and self.streaming:
            self.streaming = ""
            self._streaming_lines = []
        if follow:
            self.selected = len(self.events) - 1
            self.follow = True
        self._update_size()

    def set_streaming(self, text: str) -> None:
        follow = self.follow or self._at_bottom()
        self.streaming = text
        self._streaming_lines = [
            ([Segment(INDENT + line)], "streaming") for line in self._wrap(inert(text), self._layout_width - len(INDENT))
        ]
        if follow:
            self.follow = True
        self._update_size()

    # -- layout --------------------------------------------------------------------

    def _width(self) -> int:
        return max(20, self.scrollable_content_region.width - 1)

    def _at_bottom(self) -> bool:
        return self.scroll_offset.y >= self.max_scroll_y - 1

    def _estimate(self, event: EventDict, expanded: bool = False) -> int:
        """An event's height before it is laid out: exact for short plain
        text, near enough for the rest (corrected once it comes into view)."""
        body = _body(event)
        if not body:
            return 1
        lines = body.count("\n") + 1 + len(body) // max(1, self._layout_width - len(INDENT))
        if _is_collapsible(event) and not expanded:
            lines = min(lines, COLLAPSED_LINES + 1)
        return 1 + lines

    def _estimate_all(self) -> None:
        self._blocks = [None] * len(self.events)
        self._heights = [self._estimate(event, index in self.expanded) for index, event in enumerate(self.events)]

    def _lay_out(self, index: int) -> int:
        """Lay out event `index` at the current width; returns how much its
        height changed."""
        event = self.events[index]
        width = self._layout_width
        heading, style = _heading(event)
        heading_line = f"{event.get('id', ''):>4} {inert(heading)}"
        if len(heading_line) > width:
            heading_line = heading_line[: width - 1] + "…"
        lines: list[Line] = [([Segment(heading_line)], style)]
        body = inert(_body(event))
        if _is_markdown(event):
            lines.extend(self._markdown(body, width - len(INDENT)))
        else:
            body_style = "observation" if event.get("observation") else "plain"
            collapse = _is_collapsible(event) and index not in self.expanded
            wrapped = self._wrap(body, width - len(INDENT), COLLAPSED_LINES + 2 if collapse else None)
            if collapse and len(wrapped) > COLLAPSED_LINES + 1:
                hidden = len(wrapped) - COLLAPSED_LINES
                wrapped = wrapped[:COLLAPSED_LINES] + [f"… {hidden} more lines (Enter expands)"]
            lines.extend(([Segment(INDENT + text)], body_style) for text in wrapped)
        self._blocks[index] = lines
        change = len(lines) - self._heights[index]
        self._heights[index] = len(lines)
        return change

    def _wrap(self, text: str, width: int, enough: int | None = None) -> list[str]:
        """`text` wrapped at word boundaries (a word longer than the line is
        folded). With `enough`, stops wrapping once that many lines are made;
        each source line left then counts as one (blank) line, so that the
        caller can still say how many lines it hides."""
        if not text:
            return []
        console = self.app.console
        width = max(10, width)
        lines: list[str] = []
        raw_lines = text.expandtabs(4).split("\n")
        for number, raw in enumerate(raw_lines):
            if len(raw) <= width and raw.isascii():
                lines.append(raw)
            else:
                lines.extend(line.plain.rstrip() for line in Text(raw).wrap(console, width, overflow="fold"))
            if enough is not None and len(lines) >= enough and number + 1 < len(raw_lines):
                lines.extend([""] * (len(raw_lines) - number - 1))
                break
        return lines

    def _markdown(self, text: str, width: int) -> list[Line]:
        console = self.app.console
        markdown = _literal_markdown()(text, code_theme=CODE_THEME, inline_code_theme=CODE_THEME, hyperlinks=False)
        rendered = console.render_lines(markdown, console.options.update(width=max(10, width), height=None), pad=False)
        while rendered and not "".join(segment.text for segment in rendered[-1]).strip():
            rendered.pop()
        indent = Segment(INDENT)
        return [([indent, *line], "plain") for line in rendered]

    def _update_size(self, follow: bool | None = None) -> None:
        """Recompute where each event starts, the scrollable size and, when
        following, show the end."""
        self._starts = [0, *accumulate(self._heights)]
        self.virtual_size = Size(self._layout_width, self.line_count)
        if self.follow if follow is None else follow:
            self._show_end()
        self.refresh()

    def _show_end(self) -> None:
        """Lay out the last screenful exactly, then scroll to its end."""
        height = max(1, self.scrollable_content_region.height)
        covered = len(self._streaming_lines)
        changed = 0
        for index in range(len(self.events) - 1, -1, -1):
            if covered >= height:
                break
            if self._blocks[index] is None:
                changed += abs(self._lay_out(index))
            covered += self._heights[index]
        if changed:
            self._starts = [0, *accumulate(self._heights)]
            self.virtual_size = Size(self._layout_width, self.line_count)
        self.scroll_to(y=max(0, self.line_count - height), animate=False, immediate=True)

    def _lay_out_window(self) -> None:
        """Lay out the events in view; events above keep their heights, so
        the top line stays put while the total may change."""
        top = int(self.scroll_offset.y)
        bottom = top + max(1, self.scrollable_content_region.height)
        index = max(0, bisect_right(self._starts, top) - 1)
        changed = False
        while index < len(self.events) and self._starts[index] < bottom:
            if self._blocks[index] is None:
                change = self._lay_out(index)
                if change:
                    changed = True
                    self._starts = [0, *accumulate(self._heights)]
            index += 1
        if changed:
            self.virtual_size = Size(self._layout_width, self.line_count)
            if self.follow:
                self._show_end()

    def on_resize(self) -> None:
        width = self._width()
        if width != self._layout_width:
            self._layout_width = width
            self._estimate_all()
            if self.streaming:
                self.set_streaming(self.streaming)
            self._update_size()
        elif self.follow:
            self._show_end()

    # -- selection -----------------------------------------------------------------

    def _show_selected(self) -> None:
        if self.selected is None:
            return
        if self._blocks[self.selected] is None and self._lay_out(self.selected):
            self._update_size(follow=False)
        start = self._starts[self.selected]
        end = self._starts[self.selected + 1]
        height = self.scrollable_content_region.height
        top = int(self.scroll_offset.y)
        if start < top:
            self.scroll_to(y=start, animate=False, immediate=True)
        elif end > top + height:
            self.scroll_to(y=max(start, end - height), animate=False, immediate=True)
        self.follow = self.selected == len(self.events) - 1
        if self.follow:
            self._show_end()
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
            self._show_selected()

    def action_page(self, direction: int) -> None:
        self.scroll_to(y=self.scroll_offset.y + direction * max(1, self.size.height - 1), animate=False, immediate=True)
        self.follow = direction > 0 and self._at_bottom()

    def action_toggle_expand(self) -> None:
        if self.selected is not None:
            self.expanded ^= {self.selected}
            self._lay_out(self.selected)
            self._update_size(follow=False)
            self._show_selected()

    # The user scrolling (wheel, scrollbar) decides whether the log follows:
    # up stops following, back down to the end follows again.

    def on_mouse_scroll_up(self) -> None:
        self.follow = False

    def on_mouse_scroll_down(self) -> None:
        self.call_after_refresh(self._follow_if_at_end)

    def on_scroll_up(self) -> None:  # a click on the scrollbar above its handle
        self.follow = False

    def on_scroll_down(self) -> None:
        self.call_after_refresh(self._follow_if_at_end)

    def on_scroll_to(self, message: ScrollTo) -> None:  # the scrollbar's handle dragged
        if message.y is not None:
            self.follow = message.y >= self.max_scroll_y - 1

    def _follow_if_at_end(self) -> None:
        self.follow = self._at_bottom()

    def on_click(self, event) -> None:  # noqa: ANN001 (textual.events.Click)
        line = int(self.scroll_offset.y) + event.y
        if 0 <= line < self._starts[-1]:
            self.selected = bisect_right(self._starts, line) - 1
            if event.chain >= 2:
                self.action_toggle_expand()
            self._show_selected()

    # -- painting ------------------------------------------------------------------

    def render_lines(self, crop: Region) -> list[Strip]:
        self._lay_out_window()
        # Once per paint, not per line: Textual computes both afresh each time.
        self._paint_top = int(self.scroll_offset.y)
        self._paint_width = self.scrollable_content_region.width
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        line = self._paint_top + y
        width = self._paint_width
        if not self.events and not self._streaming_lines and y == 0:
            base = self._style(False, "plain")
            return Strip([Segment("  No events yet.", base)]).crop_extend(0, width, base)
        if line >= self.line_count:
            return Strip.blank(width, self._style(False, "plain"))
        if line >= self._starts[-1]:
            index = -1
            segments, style_name = self._streaming_lines[line - self._starts[-1]]
        else:
            index = bisect_right(self._starts, line) - 1
            block = self._blocks[index]
            if block is None:  # painted before _lay_out_window saw it (a scroll mid-paint)
                self._lay_out(index)
                block = self._blocks[index]
                assert block is not None
            offset = line - self._starts[index]
            if offset >= len(block):  # the estimate was taller: blank until the next paint
                return Strip.blank(width, self._style(index == self.selected, "plain"))
            segments, style_name = block[offset]
        selected = index == self.selected and index >= 0
        base = self._style(selected, "plain")
        styled = Segment.apply_style(segments, self._style(selected, style_name))
        return Strip(styled).crop_extend(0, width, base)

    def _style(self, selected: bool, name: str) -> Style:
        components = ("selected",) if selected else ()
        return self.component_style(*components) if name == "plain" else self.component_style(name, *components)
