"""The main screen: the conversation list beside (or, when narrow, under) the
detail pane of the selected conversation, with every action on a key."""

from __future__ import annotations

import asyncio
import importlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Static

from .. import clipboard
from ..backend.errors import ConvtuiError
from ..backend.interface import NOT_RUNNING, UIBackend, save_file
from ..backend.query import ParsedQuery, parse_query
from ..backend.updates import TEXT_WATCH_SECONDS, EventAdded, LoopUpdate, StatusChanged, TextStreamed
from ..terminal_text import one_line
from ..widgets.conversation_list import ConversationList
from ..widgets.detail_pane import ApprovalBar, DetailPane
from ..widgets.event_log import EventLog
from ..widgets.filter_box import FilterBox
from ..widgets.no_layout import KeysFooter

if TYPE_CHECKING:
    from .new_conversation import NewConversationResult

# Each dialog's module is imported when it first opens, or by import_dialogs
# once the list is up: ~40 ms less before the first paint.
DIALOG_MODULES = ("confirm", "confirm_delete", "digest", "help", "inbox", "new_conversation", "remember", "rename", "settings")


def import_dialogs() -> None:
    """Import every dialog's module (a worker thread's job after the first
    paint, so that the first `n` or `?` does not wait for it)."""
    for name in DIALOG_MODULES:
        importlib.import_module(f"{__package__}.{name}")

SORTS = ("updated", "created", "title", "status", "cost")
# How each sort reads, in its usual direction and reversed (O).
SORT_DIRECTIONS = {
    "updated": ("newest first", "oldest first"),
    "created": ("newest first", "oldest first"),
    "title": ("A→Z", "Z→A"),
    "status": ("active first", "active last"),
    "cost": ("highest first", "lowest first"),
}
UNDO_SECONDS = 30.0
FILTER_PLACEHOLDER = "/ filter: words is:all status:waiting|running|error|finished repo:owner/name trigger:cli is:archived"


@dataclass(frozen=True)
class _Undoable:
    """The last delete or archive, which `u` takes back until `until`."""

    kind: str  # "trash", "archive" or "unarchive"
    ids: tuple[str, ...]
    until: float  # time.monotonic()
WIDE_LAYOUT_COLUMNS = 110
SEEN_AFTER_SECONDS = 0.8  # a conversation's events on screen this long are seen
POLL_SECONDS = 0.5


class MainScreen(Screen[None]):
    CSS_PATH = "main.tcss"
    # Back from a dialog with nothing focused: the list, never the filter box
    # (Textual's default, the first focusable widget, took the next key as
    # filter text; with an empty list nothing is focused and keys act).
    AUTO_FOCUS = "#conversations"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new", "New", id="new"),
        Binding("s", "start", "Start", id="start"),
        Binding("x", "stop", "Stop", id="stop"),
        Binding("K", "stop_processes", "Stop processes", id="stop_processes", show=False),
        Binding("y", "decide('approve')", "Approve", id="approve"),
        Binding("N", "decide('reject')", "Reject", id="reject"),
        Binding("Y", "decide('always')", "Always", id="always"),
        Binding("i", "inbox", "Inbox", id="inbox"),
        Binding("A", "toggle_always_approve", "Always approve on/off", id="always_approve", show=False),
        Binding("slash", "filter", "Filter", id="filter"),
        Binding("escape", "back", "Back", id="back"),
        Binding("question_mark", "help", "Help", id="help"),
        # In the help screen and the palette; the footer keeps to the above.
        Binding("r", "rename", "Rename", id="rename", show=False),
        Binding("d", "delete", "Delete", id="delete", show=False),
        Binding("a", "archive", "Archive", id="archive", show=False),
        Binding("o", "sort", "Sort", id="sort", show=False),
        Binding("O", "reverse_sort", "Reverse sort", id="reverse_sort", show=False),
        Binding("u", "undo", "Undo", id="undo", show=False),
        Binding("e", "export", "Export", id="export", show=False),
        Binding("c", "copy_id", "Copy id", id="copy", show=False),
        Binding("R", "remember", "Remember", id="remember", show=False),
        Binding("M", "load_more", "Load more", id="more", show=False),
        Binding("f2", "settings", "Settings", id="settings", key_display="F2"),
        Binding("q", "quit", "Quit", id="quit"),
        Binding("Q", "stop_all_and_quit", "Stop all loops and quit", id="stop_all_quit", show=False),
    ]

    sort: reactive[str] = reactive("updated", bindings=True)
    sort_reversed = False
    selected_id: str | None = None
    narrow: reactive[bool] = reactive(False)

    def __init__(self, backend: UIBackend, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.backend = backend
        self.clock = clock
        self.query_text = ""
        self._version = -1
        self._streaming: dict[str, str] = {}
        self._watching: tuple[str, float] | None = None  # (the conversation, when) backend.watch_text was last asked
        self._unsubscribe: Callable[[], None] | None = None
        self._shown_events_for: str | None = None
        self._shown_info = None
        self._binding_state: tuple = ()
        self._filtering = False  # the user asked for the filter box
        self._filters_on_status = False  # status changes then change the rows shown
        self._select_when_listed: str | None = None  # a conversation just created: the cursor goes to it
        self._undo: _Undoable | None = None
        self._waiting_count = 0  # what the inbox holds: "3 need you" in the status line
        self._seen_timer: Timer | None = None
        self.listed = asyncio.Event()  # set once the first list is shown

    # -- layout --------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            with Vertical(id="list-column"):
                yield FilterBox(
                    self._filter_typed,
                    placeholder=FILTER_PLACEHOLDER,
                    id="filter",
                )
                yield Static(id="list-status")
                yield ConversationList(self._row, self.clock, id="conversations")
                yield Static(id="empty-state")
            yield DetailPane(self.clock, workspace_of=self.backend.workspace_path, id="detail")
        yield KeysFooter()

    @property
    def conversation_list(self) -> ConversationList:
        return self.query_one(ConversationList)

    @property
    def detail(self) -> DetailPane:
        return self.query_one(DetailPane)

    @property
    def looking_at(self) -> str | None:
        """The conversation the person sees (alerts spare it)."""
        return self.selected_id

    def _row(self, conversation_id: str):  # noqa: ANN202 (ConversationInfo | None)
        return self.backend.row(conversation_id)

    async def on_mount(self) -> None:
        self._unsubscribe = self.backend.subscribe(self._on_loop_update)
        self.set_interval(POLL_SECONDS, self._poll)
        if self.app.animation_level != "none":
            self.set_interval(0.1, self.conversation_list.advance_spinner)
        else:
            self.conversation_list.animate = False
        self.conversation_list.focus()
        # The first list from memory, before the first layout, so the screen
        # is laid out and painted once with it (from a worker it came a
        # frame later: another layout pass and the footer built twice).
        version = self.backend.data_version()  # (as reload does: a change after it is seen next poll)
        await self.backend.refresh()
        self._version = version
        self.reload_now()
        self.call_after_refresh(self._warm_model_worker)

    async def while_away(self) -> None:
        """Opened a while after the last UI closed: what happened meanwhile
        (the app calls this once the list is up)."""
        from .digest import DigestScreen

        closed_at = self.backend.ui_closed_at()
        if closed_at is None:
            return
        try:
            away = (await self.backend.load_settings()).away_minutes
            if not away or (self.clock() - closed_at).total_seconds() < away * 60:
                return
            entries = await self.backend.digest(closed_at)
        except ConvtuiError as error:
            self.notify(str(error), title="While you were away", severity="error")
            return
        if entries:
            self.app.push_screen(DigestScreen(entries, closed_at, self.clock), self._show_chosen)

    async def check_sandbox(self) -> None:
        """Say once, and in the detail pane, when commands would run without
        a sandbox (the app calls this once the list is up)."""
        try:
            status = await self.backend.sandbox_status()
        except ConvtuiError:
            return
        if status.sandboxed:
            return
        self.detail.unsandboxed = status.description
        self.detail.show_info(self.detail.info)
        self.notify(f"Commands are NOT sandboxed: {status.description}", title="No sandbox", severity="warning", timeout=10)

    @work(group="warm-model")
    async def _warm_model_worker(self) -> None:
        """After the first paint: with a model configured, start the model
        worker process now, so the first model call does not wait seconds
        for it (litellm's import)."""
        await self.backend.warm_model()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    def on_resize(self) -> None:
        self.narrow = self.size.width < WIDE_LAYOUT_COLUMNS

    def watch_narrow(self, narrow: bool) -> None:
        self.set_class(narrow, "narrow")
        if not narrow:
            self.remove_class("detail-open")

    # -- loading the list ----------------------------------------------------------

    def reload_now(self, recount: bool = True) -> None:
        """Recompute the list for the current filter and sort on the spot,
        from memory (a keystroke in the filter: no thread hop, the list
        changes in the frame that echoes the key); in a worker when that
        cannot be quick. `recount`: take in the need-you count too."""
        parsed = parse_query(self.query_text)
        ids = self.backend.list_ids_now(parsed.filter, self.sort, self.sort_reversed)
        if ids is None:
            self.reload()
            return
        self.workers.cancel_group(self, "list")  # an older answer must not land after this one
        self._show_ids(parsed, ids, recount)

    @work(exclusive=True, group="list")
    async def reload(self) -> None:
        """Recompute the list for the current filter and sort, taking in
        other processes' changes first."""
        parsed = parse_query(self.query_text)
        version = self.backend.data_version()  # before list_ids refreshes: a change after it is seen next poll
        try:
            ids = await self.backend.list_ids(parsed.filter, self.sort, self.sort_reversed)
        except ConvtuiError as error:
            self.notify(str(error), severity="error")
            return
        self._version = version
        self._show_ids(parsed, ids)

    def _show_ids(self, parsed: ParsedQuery, ids: Sequence[str], recount: bool = True) -> None:
        self._filters_on_status = parsed.filter.status is not None
        self.conversation_list.date_field = "created_at" if self.sort == "created" else "last_updated_at"
        locate = partial(self.backend.position_in, sort=self.sort, reverse=self.sort_reversed)
        self.conversation_list.set_ids(ids, parsed.words, locate)
        wanted = self._select_when_listed
        if wanted is not None:
            position = locate(ids, wanted)
            if position is not None:
                self._select_when_listed = None
                self.conversation_list.cursor = position
        total = self.backend.total()
        if recount:
            self._count_waiting()
        self._show_status(len(ids), total, parsed.problems)
        self._show_empty_state(len(ids), total, parsed)
        self._select(self.conversation_list.current_id)
        if not self.listed.is_set():
            self.call_after_refresh(self.listed.set)

    def _count_waiting(self) -> bool:
        """Take in how many conversations need the person; True if it changed."""
        count = self.backend.waiting_count_now()
        if count is None or count == self._waiting_count:
            return False
        self._waiting_count = count
        return True

    def _keys(self, binding_id: str) -> str:
        """The keys of a binding as they are now (the keymap can change them)."""
        from ..keymap import shown_keys

        return shown_keys(self.app, binding_id)

    def _show_status(self, shown: int, total: int, problems: tuple[str, ...]) -> None:
        # What changes as you type comes first: a narrow list column cuts
        # the end of the line, and the sort is the thing least looked at.
        parts = [f"{shown:,} of {total:,}"]
        note = self.backend.list_note()  # a remote server's: how much is loaded, and trouble reaching it
        if note:
            parts.append(note)
        if self.backend.more_to_load():
            parts.append(f"{self._keys('more')}: load more")
        waiting = self._waiting_count
        if waiting:
            parts.insert(0, f"{waiting} need{'s' if waiting == 1 else ''} you ({self._keys('inbox')})")
        if self.query_text:
            parts.append(f"filter: {one_line(self.query_text, 40)}")
        marked = len(self.conversation_list.marked)
        if marked:
            parts.append(f"{marked} marked")
        parts.append(f"sort: {self.sort}, {SORT_DIRECTIONS[self.sort][self.sort_reversed]}")
        if problems:
            parts.append("; ".join(problems))
        # One line, always: no layout pass needed.
        self.query_one("#list-status", Static).update(" · ".join(parts), layout=False)

    def _show_empty_state(self, shown: int, total: int, parsed: ParsedQuery | None = None) -> None:
        empty = self.query_one("#empty-state", Static)
        empty.display = shown == 0
        self.conversation_list.display = shown != 0
        focused = self.focused
        stray = focused is None or not focused.display or (focused.id == "filter" and not self._filtering)
        if shown and stray:
            # An empty list cannot hold focus; give it back when rows appear.
            self.conversation_list.focus()
        elif not shown and not self._filtering:
            # Nothing to focus: keys go to the screen (n, F2, ?), not to the
            # filter box that Textual would otherwise pick.
            self.set_focus(None)
        if total == 0:
            empty.update(
                "No conversations yet.\n\n"
                "Press n to start one: describe a task, optionally a repository.\n"
                "Press F2 to set the model and API key, ? for every key."
            )
        elif shown == 0:
            empty.update(_no_match_text(self.query_text, parsed or parse_query(self.query_text)))

    async def _poll(self) -> None:
        """Take in changes made by other processes (the CLI, another UI)."""
        if self.backend.data_version() != self._version:
            await self.backend.refresh()
            self.reload()
        self._watch_selected()
        selected = self.selected_id
        if selected is not None and not self.backend.is_running(selected):
            await self._catch_up_events(selected)
            info = self.backend.row(selected)
            if info is not None:
                self._show_info(info)

    # -- the selected conversation -------------------------------------------------

    @on(ConversationList.Highlighted)
    def _highlighted(self, message: ConversationList.Highlighted) -> None:
        self._select(message.conversation_id)

    def _select(self, conversation_id: str | None) -> None:
        self.selected_id = conversation_id
        self._watch_selected()
        info = self.backend.row(conversation_id) if conversation_id else None
        # Set before the header is drawn: one layout pass, not two.
        self.detail.processes = self.backend.processes_now(conversation_id) if conversation_id else ()
        self._show_info(info)
        self.detail.show_pending(self.backend.pending_action_now(conversation_id) if conversation_id else None)
        if conversation_id != self._shown_events_for:
            # Set now, not when the worker starts: a worker that a newer one
            # cancelled before it ran must not leave the log claiming to
            # show the conversation selected after it (the log then stayed
            # on the previous conversation for good).
            self._shown_events_for = conversation_id
            self._load_events(conversation_id)

    def _watch_selected(self) -> None:
        """The selected conversation's replies stream while its loop runs
        (backend.watch_text), asked again before the watch runs out; the
        others' come whole, as cheaper model calls."""
        selected = self.selected_id
        if selected is None or not self.backend.is_running(selected):
            return
        if self._watching is not None and self._watching[0] == selected and time.monotonic() - self._watching[1] < TEXT_WATCH_SECONDS / 2:
            return
        self.run_worker(self._watch(selected), group="watch", exit_on_error=False)

    async def _watch(self, conversation_id: str) -> None:
        self._watching = (conversation_id, time.monotonic())
        await self.backend.watch_text(conversation_id)

    async def _start(self, conversation_id: str) -> None:
        """Start its loop; the selected conversation's replies stream from
        the first (watched before the start, not once it is seen running)."""
        if conversation_id == self.selected_id:
            await self._watch(conversation_id)
        await self.backend.start(conversation_id)

    def _show_info(self, info) -> None:  # noqa: ANN001 (ConversationInfo | None)
        """Update the detail header and the footer only when something they
        show changed: each costs a layout pass."""
        if info != self._shown_info:
            self._shown_info = info
            self.detail.show_info(info)
        selected = self.selected_id
        state = (
            selected is None,
            info.status if info is not None else None,
            bool(selected and self.backend.is_running(selected)),
            bool(selected and self.backend.pending_action_now(selected)),
            bool(self.conversation_list.marked),
        )
        if state != self._binding_state:
            self._binding_state = state
            self.refresh_bindings()

    @work(exclusive=True, group="events")
    async def _load_events(self, conversation_id: str | None) -> None:
        """Show `conversation_id`'s events (_select has set _shown_events_for)."""
        event_log = self.detail.event_log
        if conversation_id is None:
            event_log.set_events([])
            return
        try:
            events = await self.backend.search_events(conversation_id)
        except ConvtuiError as error:
            self.notify(str(error), severity="error")
            return
        if self.selected_id == conversation_id:
            event_log.set_events(events)
            event_log.set_streaming(self._streaming.get(conversation_id, ""))
            self._seen_soon()

    async def _catch_up_events(self, conversation_id: str) -> None:
        event_log = self.detail.event_log
        if self._shown_events_for != conversation_id:
            return
        last = event_log.events[-1].get("id", -1) if event_log.events else -1
        try:
            new = await self.backend.search_events(conversation_id, start_id=last + 1)
        except ConvtuiError:
            return
        if self._shown_events_for != conversation_id:
            return  # another conversation was selected meanwhile
        # The log may have been loaded whole meanwhile: add only what it lacks.
        last = event_log.events[-1].get("id", -1) if event_log.events else -1
        for event in new:
            if event.get("id", -1) > last:
                event_log.add_event(event)

    def _on_loop_update(self, update: LoopUpdate) -> None:
        """From the manager, on this event loop: route to the row and pane."""
        conversation_id = update.conversation_id
        self.conversation_list.refresh_conversation(conversation_id)
        is_selected = conversation_id == self.selected_id
        if isinstance(update, TextStreamed):
            self._streaming[conversation_id] = self._streaming.get(conversation_id, "") + update.text
            if is_selected:
                self.detail.event_log.set_streaming(self._streaming[conversation_id])
            return
        if isinstance(update, EventAdded):
            if update.event.get("source") == "agent":
                self._streaming.pop(conversation_id, None)
            if is_selected and self._shown_events_for == conversation_id:
                shown = self.detail.event_log.events
                last = shown[-1].get("id", -1) if shown else -1
                if update.event.get("id", last + 1) > last + 1:
                    # Events appended while the stream was down (a server
                    # killed and started again): fetched, this one with them.
                    self.run_worker(self._catch_up_events(conversation_id), group="catch-up")
                else:
                    self.detail.event_log.add_event(update.event)
        if isinstance(update, StatusChanged) and self._filters_on_status:
            self.reload_now()
        elif isinstance(update, StatusChanged) and self._count_waiting():
            self._show_status(len(self.conversation_list.ids), self.backend.total(), parse_query(self.query_text).problems)
        if is_selected:
            if isinstance(update, StatusChanged):
                self._watch_selected()
            self._show_info(self.backend.row(conversation_id))
            self.detail.show_pending(self.backend.pending_action_now(conversation_id))
            self.detail.show_processes(self.backend.processes_now(conversation_id))
            if isinstance(update, EventAdded):
                self._seen_soon()

    # -- keys ----------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Hide the keys that cannot apply now (footer and palette follow)."""
        selected = self.selected_id
        if action in (
            "rename", "start", "stop", "stop_processes", "delete", "archive", "export", "copy_id", "remember",
            "toggle_always_approve",
        ) and selected is None:  # fmt: skip
            return False
        if action == "decide":
            # Only with the action in view: on a narrow terminal the detail
            # (its log and approval bar) must be open first (Enter).
            return bool(selected and self.backend.pending_action_now(selected)) and self._detail_shown()
        if action == "load_more":
            return self.backend.more_to_load()
        if action == "archive" and self.backend.remote_name is not None:
            return False  # an OpenHands server keeps every conversation in one list
        if action == "back":
            filter_input = self.query_one("#filter", Input)
            return bool(
                filter_input.has_focus or filter_input.value or self.has_class("detail-open") or self.conversation_list.marked
            )
        if action == "start" and selected and not self.conversation_list.marked:
            info = self.backend.row(selected)
            return info is not None and info.status.value not in ("RUNNING", "STARTING")
        if action == "stop" and selected and not self.conversation_list.marked and not self.backend.is_running(selected):
            info = self.backend.row(selected)
            return info is not None and info.status.value in ("RUNNING", "STARTING")
        return True

    def _detail_shown(self) -> bool:
        return not self.narrow or self.has_class("detail-open")

    def _targets(self) -> list[str]:
        return self.conversation_list.marked_or_current()

    def action_filter(self) -> None:
        # set_focus now, not focus() (which waits a message): keys typed right
        # after "/" must land in the box, not on the list's bindings.
        self._filtering = True
        self.set_focus(self.query_one("#filter", Input))
        self.refresh_bindings()

    def _filter_typed(self, text: str) -> None:
        self.query_text = text
        # The filter's text does not change who needs the person: that count
        # (a pass over every row and a probe of each running loop's lock)
        # is taken again when a status or the data changes, not per key.
        self.reload_now(recount=False)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self) -> None:
        self._filtering = False
        self.conversation_list.focus()

    def action_back(self) -> None:
        filter_input = self.query_one("#filter", Input)
        if filter_input.has_focus or (filter_input.value and not self.has_class("detail-open")):
            self._filtering = False
            filter_input.value = ""  # reloads the list
            self.conversation_list.focus()
        elif self.has_class("detail-open"):
            self.remove_class("detail-open")
            self.conversation_list.focus()
        elif self.conversation_list.marked:
            self.conversation_list.clear_marks()
            self.reload()
        else:
            self.conversation_list.focus()

    @on(ConversationList.Opened)
    def _opened(self, message: ConversationList.Opened) -> None:
        if self.narrow:
            self.add_class("detail-open")
        self.detail.event_log.focus()
        self._seen_soon()

    def _seen_soon(self) -> None:
        """The selected conversation's events are on screen: once they have
        stayed there SEEN_AFTER_SECONDS (not rows passed over on the way
        down), they are seen: its row is no longer unread."""
        if self._seen_timer is not None:
            self._seen_timer.stop()
        self._seen_timer = self.set_timer(SEEN_AFTER_SECONDS, self._mark_seen)

    @work(group="seen", exclusive=True)
    async def _mark_seen(self) -> None:
        conversation_id = self.selected_id
        events = self.detail.event_log.events
        if conversation_id is None or not self._detail_shown() or self._shown_events_for != conversation_id or not events:
            return
        info = self.backend.row(conversation_id)
        if info is None or not info.unread:
            return
        try:
            await self.backend.mark_seen(conversation_id, events[-1].get("id", -1))
        except ConvtuiError:
            return  # (gone meanwhile) the row stays as it was
        self.conversation_list.refresh_conversation(conversation_id)

    @on(ConversationList.MarksChanged)
    def _marks_changed(self) -> None:
        self._show_status(len(self.conversation_list.ids), self.backend.total(), ())
        self._show_info(self._shown_info)  # s/x/d/a now apply to the marks

    def action_sort(self) -> None:
        self.sort_reversed = False
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.reload_now()

    def action_reverse_sort(self) -> None:
        self.sort_reversed = not self.sort_reversed
        self.reload_now()

    @work(group="actions")
    async def action_copy_id(self) -> None:
        """OSC 52 always; the system clipboard too when one is reachable; and
        a message saying which of them was written to."""
        conversation_id = self.selected_id
        if not conversation_id:
            return
        self.app.copy_to_clipboard(conversation_id)

        def system_copy() -> tuple[clipboard.ClipboardPlan, str | None]:
            plan = clipboard.plan_copy()
            error = clipboard.copy_with_command(plan.command, conversation_id) if plan.command else None
            return plan, error

        plan, error = await asyncio.to_thread(system_copy)
        message, severity = clipboard.describe_copy(plan, error)
        self.notify(message, title=f"Copied id {conversation_id[:8]}…", severity=severity, timeout=8)

    @work(group="actions")
    async def action_start(self) -> None:
        """Start the marked conversations side by side (200 one after the
        other took 3.5 s while the first ones already worked), else the
        selected one. Each refusal is said once: the loop limit's, together."""
        refusals: dict[str, list[str]] = {}

        async def start(conversation_id: str) -> None:
            try:
                await self._start(conversation_id)
            except ConvtuiError as error:
                refusals.setdefault(str(error), []).append(conversation_id)
            self.conversation_list.refresh_conversation(conversation_id)

        await asyncio.gather(*(start(conversation_id) for conversation_id in self._targets()))
        for message, conversation_ids in refusals.items():
            more = f" ({len(conversation_ids)} conversations)" if len(conversation_ids) > 1 else ""
            self.notify(message + more, title="Cannot start", severity="error", timeout=8)
        self.refresh_bindings()

    @work(group="actions")
    async def action_stop(self) -> None:
        for conversation_id in self._targets():
            try:
                response = await self.backend.stop(conversation_id)
                if response.message == NOT_RUNNING and len(self._targets()) == 1:
                    self.notify(f"{response.message} ({response.conversation_status.value.lower()})")
            except ConvtuiError as error:
                self.notify(str(error), severity="error")
            self.conversation_list.refresh_conversation(conversation_id)
        self._select(self.selected_id)
        self.refresh_bindings()

    @work(group="actions")
    async def action_stop_processes(self) -> None:
        """Stop the background processes of the selected conversation's
        workspace; its loop runs on."""
        conversation_id = self.selected_id
        if conversation_id is None:
            return
        try:
            stopped = await self.backend.stop_processes(conversation_id)
        except ConvtuiError as error:
            self.notify(str(error), severity="error")
            return
        self.notify(f"stopped {stopped} process{'es' if stopped != 1 else ''}" if stopped else "no process was running")
        self.detail.show_processes(self.backend.processes_now(conversation_id))

    @work(group="actions")
    async def action_archive(self) -> None:
        """Archive the marked rows (or the current one); unarchive when all
        of them are archived. A running loop is stopped first (the service's
        rule) and the message says so."""
        targets = self._targets()
        rows = [self.backend.row(conversation_id) for conversation_id in targets]
        archive = not all(row is not None and row.archived for row in rows)
        changed: list[str] = []
        stopped = 0
        for conversation_id, row in zip(targets, rows):
            try:
                _, stopped_loop = await self.backend.change_archived(conversation_id, archive)
            except ConvtuiError as error:
                self.notify(str(error), title="Not archived" if archive else "Not unarchived", severity="error", timeout=8)
                continue
            stopped += stopped_loop is not None
            if row is not None and row.archived != archive:
                changed.append(conversation_id)
        self.conversation_list.clear_marks()
        self.reload()
        if not changed:
            return
        verb = "Archived" if archive else "Unarchived"
        message = f"{verb} {_count(changed)}"
        if stopped:
            message += f"; stopped {'its loop' if len(targets) == 1 else f'{stopped} running loop(s)'} first"
        self._offer_undo("archive" if archive else "unarchive", changed, message)

    @work(group="actions")
    async def action_export(self) -> None:
        conversation_id = self.selected_id
        if conversation_id is None:
            return
        path = Path.cwd() / f"convtui-{conversation_id[:8]}.json"
        try:
            save_file(path, await self.backend.export_json(conversation_id))
        except ConvtuiError as error:
            self.notify(str(error), severity="error")
            return
        self.notify(f"Exported to {path}")

    def action_decide(self, decision: str) -> None:
        self._decide(decision)

    @on(ApprovalBar.Decided)
    def _approval_clicked(self, message: ApprovalBar.Decided) -> None:
        self._decide(message.decision)

    @work(group="actions")
    async def _decide(self, decision: str) -> None:
        conversation_id = self.selected_id
        if conversation_id is None or not self._detail_shown():
            return
        try:
            if decision == "reject":
                await self.backend.reject(conversation_id)
            else:
                await self.backend.approve(conversation_id, always=decision == "always")
        except ConvtuiError as error:
            self.notify(str(error), severity="error")
        self.detail.show_pending(None)

    @work(group="actions")
    async def action_toggle_always_approve(self) -> None:
        conversation_id = self.selected_id
        info = self.backend.row(conversation_id) if conversation_id else None
        if info is None:
            return
        try:
            info = await self.backend.set_always_approve(info.conversation_id, not info.always_approve)
        except ConvtuiError as error:
            self.notify(str(error), severity="error")
            return
        if info.always_approve:
            self.notify("Always approve is on: actions of this conversation run without asking (A turns it off)")
        else:
            self.notify("Always approve is off: actions wait for approval again")
        if self.selected_id == info.conversation_id:
            self._show_info(self.backend.row(info.conversation_id))

    @on(DetailPane.MessageSubmitted)
    @work(group="actions")
    async def _send(self, message: DetailPane.MessageSubmitted) -> None:
        # Back to the log, where y/N/Y, s and x act (the input would take them as text).
        self.detail.event_log.focus()
        try:
            await self.backend.send_message(message.conversation_id, message.text)
            if not self.backend.is_running(message.conversation_id):
                await self._catch_up_events(message.conversation_id)
                self.notify("Message added; press s to start the conversation")
        except ConvtuiError as error:
            self.notify(str(error), severity="error")

    @on(EventLog.Selected)
    def _event_selected(self) -> None:
        self.refresh_bindings()

    # -- dialogs -------------------------------------------------------------------

    # Dialogs are pushed by the action itself, not from a worker, so that keys
    # typed in the same burst as the one that opened a dialog reach the dialog
    # (ConvtuiApp hands each key over once the one before it has been handled
    # and the screen it opened has mounted). What follows a dialog runs in a
    # worker, given its result.

    def action_new(self) -> None:
        from .new_conversation import NewConversationScreen

        self.app.push_screen(NewConversationScreen(), self._create)

    @work(group="dialogs")
    async def _create(self, result: NewConversationResult | None) -> None:
        if result is None:
            return
        if self.backend.remote_name is not None:
            self.notify(f"Starting it on {self.backend.remote_name}: its sandbox may take a minute…", timeout=10)
        try:
            response = await self.backend.new_conversation(result.request)
        except ConvtuiError as error:
            self.notify(str(error), title="Not created", severity="error")
            return
        # The new row becomes the current one once the list holds it.
        self._select_when_listed = response.conversation_id
        self.query_one("#filter", Input).value = ""  # (sets query_text)
        self.reload()
        self._select(response.conversation_id)
        if result.start_now:
            try:
                await self._start(response.conversation_id)
            except ConvtuiError as error:
                self.notify(str(error), title="Created, not started", severity="warning", timeout=8)
        self.notify("Conversation created")

    def action_rename(self) -> None:
        from .rename import RenameScreen

        conversation_id = self.selected_id
        info = self.backend.row(conversation_id) if conversation_id else None
        if info is not None:
            self.app.push_screen(RenameScreen(info.title), partial(self._rename, info.conversation_id))

    @work(group="dialogs")
    async def _rename(self, conversation_id: str, title: str | None) -> None:
        if title is None:
            return
        try:
            await self.backend.rename(conversation_id, title)
        except ConvtuiError as error:
            self.notify(str(error), title="Not renamed", severity="error")
            return
        self.reload()  # its last activity moved, and so may its place

    def action_delete(self) -> None:
        from .confirm_delete import ConfirmDeleteScreen

        targets = self._targets()
        if targets:
            titles = [(self.backend.row(i).title if self.backend.row(i) else i) for i in targets]
            self.app.push_screen(ConfirmDeleteScreen(titles, to_trash=self.backend.has_trash), partial(self._delete, targets))

    @work(group="dialogs")
    async def _delete(self, targets: list[str], confirmed: bool | None) -> None:
        """Move to the trash (running loops are stopped first): `u` brings
        them back for UNDO_SECONDS, `convtui trash restore` any time."""
        if not confirmed:
            return
        trashed: list[str] = []
        for conversation_id in targets:
            try:
                if self.backend.has_trash:
                    trashed.append(await self.backend.trash(conversation_id))
                elif await self.backend.delete(conversation_id):
                    self.notify(f"Deleted {conversation_id[:8]} for good", timeout=5)
            except ConvtuiError as error:
                self.notify(str(error), title="Not deleted", severity="error", timeout=8)
        self.conversation_list.clear_marks()
        self.reload()
        if trashed:
            self._offer_undo("trash", trashed, f"Moved {_count(trashed)} to the trash")

    def _offer_undo(self, kind: str, ids: Sequence[str], message: str) -> None:
        self._undo = _Undoable(kind, tuple(ids), time.monotonic() + UNDO_SECONDS)
        hint = f"u undoes (for {UNDO_SECONDS:g} s)"
        if kind == "trash":
            hint += "; later: convtui trash restore ID"
        self.notify(f"{message}. {hint}", timeout=UNDO_SECONDS)
        self.refresh_bindings()

    @work(group="actions")
    async def action_undo(self) -> None:
        undo, self._undo = self._undo, None
        self.refresh_bindings()
        if undo is None or time.monotonic() > undo.until:
            self.notify(
                f"Nothing to undo: u undoes a delete or archive for {UNDO_SECONDS:g} s "
                "(deleted conversations stay in the trash: convtui trash restore ID)",
                severity="warning",
            )
            return
        done: list[str] = []
        for conversation_id in undo.ids:
            try:
                if undo.kind == "trash":
                    await self.backend.restore(conversation_id)
                else:
                    await self.backend.change_archived(conversation_id, undo.kind == "unarchive")
                done.append(conversation_id)
            except ConvtuiError as error:
                self.notify(str(error), title="Not undone", severity="error", timeout=8)
        self.reload()
        if done:
            what = {"trash": "Restored", "archive": "Unarchived", "unarchive": "Archived again"}[undo.kind]
            note = " (loops stopped by the archive stay stopped)" if undo.kind == "archive" else ""
            self.notify(f"{what} {_count(done)}{note}")

    def action_remember(self) -> None:
        from .remember import RememberPromptScreen

        conversation_id = self.selected_id
        event_id = self.detail.event_log.selected_event_id
        if conversation_id is None or event_id is None:
            self.notify("Select an event in the log first (Tab, then ↑/↓)", severity="warning")
            return

        self.app.push_screen(RememberPromptScreen(partial(self.backend.remember_prompt, conversation_id, event_id), Path.cwd()))

    def action_inbox(self) -> None:
        from .inbox import InboxScreen

        self.app.push_screen(InboxScreen(self.backend, self.clock), self._show_chosen)

    def _show_chosen(self, conversation_id: str | None) -> None:
        """Enter in the inbox or the digest: show that conversation, its detail open."""
        if conversation_id is None:
            return
        self._select_when_listed = conversation_id  # the cursor goes to it when the list is shown
        if self.query_text:
            self.query_one("#filter", Input).value = ""  # (reloads) it may not match the filter
        else:
            self.reload()
        if self.narrow:
            self.add_class("detail-open")
        self.detail.event_log.focus()

    def action_help(self) -> None:
        from ..keymap import shown_keys
        from .help import HelpScreen

        remote = self.backend.remote_name is not None
        self.app.push_screen(HelpScreen(help_sections(partial(shown_keys, self.app), to_trash=self.backend.has_trash, remote=remote)))

    def action_load_more(self) -> None:
        """An OpenHands server's next rows beyond those loaded (the status line says when there are)."""
        count = self.backend.load_more()
        if count:
            self.notify(f"Loading up to {count:,} more conversations from {self.backend.remote_name} in the background")
            self.reload_now()

    def action_settings(self) -> None:
        from .settings import SettingsScreen

        # The dialog loads the settings itself: pushed now, it gets the keys typed after F2.
        self.app.push_screen(
            SettingsScreen(self.backend.load_settings, self.backend.test_model, self.backend.remotes, self.backend.test_remote),
            self._save_settings,
        )

    @work(group="dialogs")
    async def _save_settings(self, values: dict | None) -> None:
        if not values:
            return
        try:
            await self.backend.update_settings(values)
        except ConvtuiError as error:
            self.notify(str(error), title="Settings not saved", severity="error")
            return
        self.notify("Settings saved")
        if "theme" in values or "keymap" in values:
            await self.app.apply_settings()
        self._warm_model_worker()

    def action_quit(self) -> None:
        """Loops in the server keep running (the terminal is told so on the
        way out); loops in this process would end, so that is asked first."""
        from .confirm import ConfirmScreen

        running = self.backend.running_ids()
        if not running:
            self.app.exit()
            return
        if self.backend.remote_name is not None:
            self.app.exit(message=f"{len(running)} conversation(s) keep running on the OpenHands server {self.backend.remote_name}")
            return
        if self.backend.outlives_the_ui:
            self.app.exit(
                message=f"{len(running)} loop(s) keep running in the convtui server; `convtui serve stop` ends them"
            )
            return
        question = f"{len(running)} loop(s) are running. Stop them and quit?"
        self.app.push_screen(ConfirmScreen(question, "Stop and quit"), self._stop_and_quit)

    def action_stop_all_and_quit(self) -> None:
        from .confirm import ConfirmScreen

        running = self.backend.running_ids()
        if not running:
            self.app.exit()
            return
        question = f"Stop all {len(running)} running loop(s) and quit?"
        self.app.push_screen(ConfirmScreen(question, "Stop and quit"), self._stop_and_quit)

    @work(group="dialogs")
    async def _stop_and_quit(self, confirmed: bool | None) -> None:
        if confirmed:
            self.notify("Stopping loops…")
            await self.backend.stop_all()
            self.app.exit()


def _count(ids: Sequence[str]) -> str:
    return "1 conversation" if len(ids) == 1 else f"{len(ids)} conversations"


def _no_match_text(query_text: str, parsed: ParsedQuery) -> str:
    """The empty list under a filter: which filter, and how to widen it."""
    lines = [f"No conversation matches “{one_line(query_text.strip(), 60)}”."]
    if parsed.problems:
        lines.append("; ".join(parsed.problems).capitalize() + ".")
    hints = ["Esc clears the filter"]
    if parsed.filter.archived is False:
        hints.append("add is:all to include archived conversations")
    if parsed.filter.status is not None:
        hints.append("drop the status: token for every status")
    lines.append(", ".join(hints) + ".")
    return "\n\n".join(lines)


def help_sections(keys: Callable[[str], str], to_trash: bool = True, remote: bool = False) -> list[tuple[str, list[tuple[str, str]]]]:
    """Every key, for the help screen (kept beside the bindings it describes).
    `keys(binding_id)` shows a binding's keys as they are now (keymap.shown_keys:
    the settings' keymap can change them). `to_trash`: False on an OpenHands
    server, which deletes for good."""
    marked_actions = " ".join(keys(binding_id) for binding_id in ("start", "stop", "delete", *(() if remote else ("archive",))))
    return [
        (
            "Conversations",
            [
                ("↑/↓ j/k", "move"),
                ("g/G Home/End", "first / last"),
                ("PgUp/PgDn", "page"),
                ("Enter", "open the detail (narrow terminals) and focus its log"),
                (keys("mark"), f"mark a row; {marked_actions} then act on every marked row (marked loops start side by side)"),
                (keys("new"), "new conversation (ctrl+s, or Enter in a one-line field, creates)"),
                (keys("rename"), "rename"),
                (f"{keys('start')} / {keys('stop')}", "start / stop the agent loop"),
                (
                    keys("delete"),
                    "delete: to the trash (asks first; convtui trash restores)" if to_trash else "delete for good (asks first)",
                ),
                *(
                    [] if remote else [  # (an OpenHands server has no archive, and deletes for good)
                        (keys("archive"), "archive / unarchive (a running loop is stopped first)"),
                        (keys("undo"), f"undo the last delete or archive (for {UNDO_SECONDS:g} s)"),
                    ]
                ),
                (keys("inbox"), "inbox: every conversation waiting for you, oldest first; answer each there"),
                (keys("filter"), "filter: words, status:waiting|unread|running|error|finished, repo:owner/name, trigger:cli"),
                *([] if remote else [("", "is:archived only archived, is:all archived too (hidden by default)")]),
                ("", 'what it did: text:words file:path cmd:"npm test"; since:3d before:2026-11-30 cost>0.5 cost<2'),
                (f"{keys('sort')} / {keys('reverse_sort')}", "cycle the sort: updated, created, title, status, cost / reverse it"),
                (keys("export"), "export as trajectory JSON into the current directory"),
                (keys("copy"), "copy the id (OSC 52, and the system clipboard when there is one)"),
                (keys("back"), "clear the filter, close the detail, clear marks"),
                *([(keys("more"), "load more from the server when the status line offers it (up to 10,000 load by themselves)")] if remote else []),
            ],
        ),
        (
            "Detail",
            [
                ("Tab", "move between list, event log and message input"),
                ("↑/↓ in the log", "select an event"),
                (f"{keys('expand')} in the log", "expand or collapse a long output"),
                (keys("remember"), "remember prompt for the selected event"),
                (
                    f"{keys('approve')} / {keys('reject')} / {keys('always')}",
                    "approve / reject / always approve a pending action",
                ),
                (keys("always_approve"), "turn always approve on or off for the conversation (kept across stop and start)"),
                (keys("stop_processes"), "stop the background processes running in the workspace (the loop runs on)"),
                ("Enter in the input", "send the message to the agent (the focus returns to the log)"),
            ],
        ),
        (
            "Inbox",
            [
                (f"{keys('inbox.approve')} / {keys('inbox.always')}", "approve the action / always approve this conversation's actions"),
                (keys("inbox.reject"), "reject the action, with a reason for the agent if you like"),
                (keys("inbox.reply"), "to the reply field: Enter sends (a loop that ended starts again)"),
                (keys("inbox.stop"), "stop a waiting loop; dismiss one that ended (an error, a limit)"),
                (keys("inbox.open"), "open the conversation in the list"),
                (keys("inbox.close"), "back to the list"),
            ],
        ),
        (
            "Application",
            [
                (keys("help"), "this help"),
                (keys("settings"), "settings"),
                ("ctrl+p", "command palette; its \"Change theme\" picks and keeps a theme"),
                (keys("quit"), "quit (asks if loops run)"),
                ("--no-mouse", "start with the mouse left to the terminal, to select text"),
                ("settings.json", 'remap keys: "keymap": {"new": "ctrl+n"} (binding ids in the README)'),
            ],
        ),
    ]

