"""The conversation list: one row per conversation, drawn with Textual's Line
API so that only the visible rows are ever rendered — 100,000 rows cost what
40 do. The list holds ids in display order; each visible row asks the
service for its conversation as it paints."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..backend.models import ConversationInfo
from ..formatting import format_cost, relative_time
from ..terminal_text import one_line
from .component_styles import CachedComponentStyles
from .no_layout import ContentSized
from .status_badge import badge_for

RowSource = Callable[[str], ConversationInfo | None]


class ConversationList(CachedComponentStyles, ContentSized, ScrollView, can_focus=True):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("home,g", "first", "First", show=False),
        Binding("end,G", "last", "Last", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("space", "toggle_mark", "Mark", id="mark", show=False),
        Binding("enter", "open", "Open", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "conversation-list--cursor",
        "conversation-list--marked",
        "conversation-list--match",
        "conversation-list--dim",
        "conversation-list--running",
        "conversation-list--waiting",
        "conversation-list--error",
        "conversation-list--done",
        "conversation-list--unread",
    }

    COMPONENT_PREFIX = "conversation-list"
    SCOPED_CSS = False  # the App:nocolor rules below start outside the widget
    DEFAULT_CSS = """
    ConversationList {
        background: $surface;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;  /* rows are cut to the width: never a horizontal scrollbar */
    }
    ConversationList > .conversation-list--cursor { background: $panel-lighten-2; text-style: bold; }
    ConversationList:focus > .conversation-list--cursor { background: $accent 40%; text-style: bold; }
    ConversationList > .conversation-list--marked { color: $warning; text-style: bold; }
    ConversationList > .conversation-list--match { color: $accent; text-style: bold underline; }
    ConversationList > .conversation-list--dim { color: $text-muted; }
    ConversationList > .conversation-list--running { color: $success; text-style: bold; }
    ConversationList > .conversation-list--waiting { color: $warning; text-style: bold; }
    ConversationList > .conversation-list--error { color: $error; text-style: bold; }
    ConversationList > .conversation-list--done { color: $text-muted; }
    ConversationList > .conversation-list--unread { text-style: bold; }
    /* NO_COLOR: greys alone cannot mark the cursor; reverse video can. */
    App:nocolor ConversationList > .conversation-list--cursor { background: transparent; text-style: reverse bold; }
    App:nocolor ConversationList:focus > .conversation-list--cursor { background: transparent; text-style: reverse bold; }
    """

    cursor: reactive[int] = reactive(0, always_update=True, init=False)

    class _ListMessage(Message):
        def __init__(self, conversation_list: ConversationList) -> None:
            super().__init__()
            self.conversation_list = conversation_list

        @property
        def control(self) -> ConversationList:
            return self.conversation_list

    class Highlighted(_ListMessage):
        """The cursor moved to another conversation (None: the list is empty)."""

        def __init__(self, conversation_list: ConversationList, conversation_id: str | None) -> None:
            super().__init__(conversation_list)
            self.conversation_id = conversation_id

    class Opened(_ListMessage):
        """Enter on a row."""

        def __init__(self, conversation_list: ConversationList, conversation_id: str) -> None:
            super().__init__(conversation_list)
            self.conversation_id = conversation_id

    class MarksChanged(_ListMessage):
        """Rows were marked or unmarked; `count` are marked now."""

        def __init__(self, conversation_list: ConversationList, count: int) -> None:
            super().__init__(conversation_list)
            self.count = count

    def __init__(
        self,
        row_source: RowSource,
        clock: Callable[[], datetime],
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.row_source = row_source
        self.clock = clock
        self.ids: Sequence[str] = ()
        self.marked: set[str] = set()
        self.highlight_words: tuple[str, ...] = ()
        self.spinner_frame = 0
        self.animate = True  # False: running rows show a still ▶ (reduced motion)
        self.date_field = "last_updated_at"  # the date column: or "created_at" (follows the sort)
        self._animated_rows: set[int] = set()
        self._highlighted_id: str | None = None
        self._paint_top = self._paint_width = 0  # set by render_lines for its render_line calls

    # -- data ------------------------------------------------------------------------

    @property
    def current_id(self) -> str | None:
        return self.ids[self.cursor] if 0 <= self.cursor < len(self.ids) else None

    def set_ids(
        self,
        ids: Sequence[str],
        highlight_words: tuple[str, ...] = (),
        locate: Callable[[Sequence[str], str], int | None] | None = None,
    ) -> None:
        """Show these conversations, in this order, keeping the cursor on the
        same conversation when it is still there. `locate(ids, id)` finds it
        faster than a scan of `ids` when the caller knows how they are ordered."""
        keep = self.current_id
        self.ids = ids
        self.highlight_words = highlight_words
        if self.marked:
            self.marked &= set(ids)
        self.virtual_size = Size(self.size.width, len(ids))
        position = (locate or _scan)(ids, keep) if keep is not None else None
        self.cursor = position if position is not None else min(self.cursor, max(0, len(ids) - 1))
        self.refresh()

    def refresh_conversation(self, conversation_id: str) -> None:
        """Repaint one row if it is on screen (no rebuild of the list)."""
        top = int(self.scroll_offset.y)
        visible = self.ids[top : top + self.size.height]
        if conversation_id in visible:
            self.refresh_line(top + visible.index(conversation_id))

    def marked_or_current(self) -> list[str]:
        """The marked conversations in display order, else the current one."""
        if self.marked:
            return [conversation_id for conversation_id in self.ids if conversation_id in self.marked]
        return [self.current_id] if self.current_id else []

    def clear_marks(self) -> None:
        if self.marked:
            self.marked.clear()
            self.post_message(self.MarksChanged(self, 0))
            self.refresh()

    # -- cursor --------------------------------------------------------------------

    def validate_cursor(self, cursor: int) -> int:
        return max(0, min(cursor, len(self.ids) - 1)) if self.ids else 0

    def watch_cursor(self, old: int, new: int) -> None:
        self.refresh_line(old)
        self.refresh_line(new)
        self.scroll_to_region_of_cursor()
        current = self.current_id
        if current != self._highlighted_id:
            self._highlighted_id = current
            self.post_message(self.Highlighted(self, current))

    def scroll_to_region_of_cursor(self) -> None:
        height = max(1, self.scrollable_content_region.height)
        top = int(self.scroll_offset.y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self.cursor -= 1

    def action_cursor_down(self) -> None:
        self.cursor += 1

    def action_first(self) -> None:
        self.cursor = 0

    def action_last(self) -> None:
        self.cursor = len(self.ids) - 1

    def action_page_up(self) -> None:
        self.cursor -= max(1, self.scrollable_content_region.height - 1)

    def action_page_down(self) -> None:
        self.cursor += max(1, self.scrollable_content_region.height - 1)

    def action_toggle_mark(self) -> None:
        current = self.current_id
        if current is None:
            return
        self.marked ^= {current}
        self.post_message(self.MarksChanged(self, len(self.marked)))
        self.cursor += 1
        self.refresh_line(self.cursor - 1)

    def action_open(self) -> None:
        if self.current_id is not None:
            self.post_message(self.Opened(self, self.current_id))

    def on_click(self, event) -> None:  # noqa: ANN001 (textual.events.Click)
        row = int(self.scroll_offset.y) + event.y
        if 0 <= row < len(self.ids):
            if row == self.cursor and event.chain >= 2:
                self.action_open()
            self.cursor = row

    # -- painting ------------------------------------------------------------------

    def advance_spinner(self) -> None:
        """Next animation frame for running rows (only their lines repaint)."""
        self.spinner_frame += 1
        top = int(self.scroll_offset.y)
        for row in list(self._animated_rows):
            if top <= row < top + self.size.height:
                self.refresh_line(row)
            else:
                self._animated_rows.discard(row)

    def render_lines(self, crop: Region) -> list[Strip]:
        # Once per paint, not per line: Textual computes both afresh each time.
        self._paint_top = int(self.scroll_offset.y)
        self._paint_width = self.scrollable_content_region.width
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        row = self._paint_top + y
        width = self._paint_width
        if row >= len(self.ids):
            return Strip.blank(width, self._style(False))
        cursor = row == self.cursor  # its style is part of the base: every piece carries its background
        base = self._style(cursor)
        conversation_id = self.ids[row]
        info = self.row_source(conversation_id)
        if info is None:
            return Strip([Segment(" " + conversation_id[:8] + " (deleted)", base)]).crop_extend(0, width, base)
        segments, cells = self._row_segments(info, width, cursor, row)
        # Told its exact width, Textual need not measure the row again (twice).
        strip = Strip(segments, cells)
        return strip if cells == width else strip.crop_extend(0, width, base)

    def _style(self, cursor: bool, *components: str) -> Style:
        """Every piece of the cursor's row carries the cursor's style, laid last: its colours win."""
        return self.component_style(*components, "cursor") if cursor else self.component_style(*components)

    def _row_segments(self, info: ConversationInfo, width: int, cursor: bool, row: int) -> tuple[list[Segment], int]:
        """The pieces of a row and their width in cells (`width` unless the
        title's wide characters overflow it)."""
        badge = badge_for(info, self.spinner_frame if self.animate else None)
        if badge.animated:
            self._animated_rows.add(row)
        base = self._style(cursor)
        if info.conversation_id in self.marked:
            mark = Segment("●", self._style(cursor, "marked"))
        else:  # events you have not seen: a dot, and the title in bold
            mark = Segment("•" if info.unread else " ", self._style(cursor, "unread"))
        updated = relative_time(getattr(info, self.date_field), self.clock())
        cost = format_cost(info.accumulated_cost)
        repository = info.selected_repository or ""
        if repository and info.selected_branch:
            repository += f"@{info.selected_branch}"
        trigger = info.trigger.value if info.trigger else ""
        repository = one_line(repository, 28) if width >= 70 else ""
        rest = f"{trigger:<9} " if width >= 100 else ""
        rest += f"{updated:>9} {cost:>7}"
        right_width = cell_len(rest) + (cell_len(repository) + 1 if repository else 0)
        title_width = max(8, width - 4 - right_width - 1)
        title = one_line(info.title, title_width)
        dim = self._style(cursor, "dim")
        segments = [mark, Segment(badge.glyph, self._style(cursor, badge.style)), Segment(" ", base)]
        segments.extend(self._highlighted(title, cursor, *(("unread",) if info.unread else ())))
        used = cell_len(mark.text) + cell_len(badge.glyph) + 1 + cell_len(title) + right_width
        padding = max(1, width - used)
        segments.append(Segment(" " * padding, base))
        if repository:
            segments.extend(self._highlighted(repository, cursor, "dim"))
            segments.append(Segment(" ", dim))
        segments.append(Segment(rest, dim))
        return segments, used + padding

    def _highlighted(self, text: str, cursor: bool, *components: str) -> list[Segment]:
        """`text` with the filter's words marked wherever they occur."""
        base = self._style(cursor, *components)
        if not self.highlight_words:
            return [Segment(text, base)]
        lowered = text.lower()
        marks = [False] * len(text)
        for word in self.highlight_words:
            start = lowered.find(word)
            while word and start != -1:
                for index in range(start, min(len(text), start + len(word))):
                    marks[index] = True
                start = lowered.find(word, start + 1)
        segments: list[Segment] = []
        match_style = self._style(cursor, *components, "match")
        run_start = 0
        for index in range(1, len(text) + 1):
            if index == len(text) or marks[index] != marks[run_start]:
                segments.append(Segment(text[run_start:index], match_style if marks[run_start] else base))
                run_start = index
        return segments

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self.ids))


def _scan(ids: Sequence[str], conversation_id: str) -> int | None:
    """Where a conversation is in `ids`, in any order (a C-speed scan)."""
    try:
        return ids.index(conversation_id)
    except ValueError:
        return None
