"""The inbox: every conversation waiting for a person, oldest wait first,
each with what it waits on, answered without leaving it.

y approves, N rejects (a reason for the agent may be given), Y always
approves for that conversation, Tab goes to the reply field (Enter sends;
a loop that ended is started again), x stops a waiting loop or dismisses one
that ended, Enter opens the conversation in the main screen. Answering one
moves to the next."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from ..backend.errors import ConvtuiError
from ..backend.inbox import KIND_WORDS, InboxItem, InboxKind
from ..backend.interface import UIBackend
from ..backend.updates import LoopUpdate, StatusChanged
from ..formatting import format_duration
from ..terminal_text import inert, one_line
from ..widgets.no_layout import KeysFooter
from .reject_reason import RejectReasonScreen

POLL_SECONDS = 1.0  # ended loops and other processes' changes
_ANSWERED_SECONDS = 10.0  # an answered wait stays hidden while its loop takes the answer in


class InboxScreen(Screen[str | None]):
    """Dismisses with the id of the conversation to open (Enter), or None."""

    CSS_PATH = "inbox.tcss"
    AUTO_FOCUS = "#inbox-items"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "decide('approve')", "Approve", id="inbox.approve"),
        Binding("N", "reject", "Reject…", id="inbox.reject"),
        Binding("Y", "decide('always')", "Always", id="inbox.always"),
        Binding("tab", "reply", "Reply", id="inbox.reply", priority=True),
        Binding("x", "stop", "Stop / dismiss", id="inbox.stop"),
        Binding("enter", "open", "Open", id="inbox.open", show=True),
        Binding("escape,i,q", "close", "Back", id="inbox.close"),  # Esc in the reply field: back to the list
    ]

    def __init__(self, backend: UIBackend, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self.backend = backend
        self.clock = clock
        self.items: list[InboxItem] = []
        self._answered: dict[tuple[str, datetime], float] = {}  # (id, since) -> loop time
        self._unsubscribe: Callable[[], None] | None = None
        self._version = -1
        self._shown_detail: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="inbox-header")
        with Horizontal(id="inbox-body"):
            yield OptionList(id="inbox-items")
            with Vertical(id="inbox-detail"):
                yield Static(id="inbox-what")
                with VerticalScroll(id="inbox-scroll"):
                    yield Static(id="inbox-content")
                yield Input(placeholder="Reply to the agent (Enter sends, Esc goes back to the list)", id="inbox-reply")
        yield Static("Nothing needs you. Esc goes back to the list.", id="inbox-empty")
        yield KeysFooter()

    def on_mount(self) -> None:
        self._unsubscribe = self.backend.subscribe(self._on_loop_update)
        self.set_interval(POLL_SECONDS, self._poll)
        self.reload()

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    # -- what is shown ---------------------------------------------------------------

    @property
    def item_list(self) -> OptionList:
        return self.query_one("#inbox-items", OptionList)

    @property
    def looking_at(self) -> str | None:
        """The conversation the person sees (alerts spare it)."""
        return self.current.conversation_id if self.current is not None else None

    @property
    def current(self) -> InboxItem | None:
        if not self.items:
            return None  # (and before compose: check_action asks then too)
        index = self.item_list.highlighted
        return self.items[index] if index is not None and 0 <= index < len(self.items) else None

    def _on_loop_update(self, update: LoopUpdate) -> None:
        if isinstance(update, StatusChanged):
            self.reload()

    async def _poll(self) -> None:
        if self.backend.data_version() != self._version:
            self.reload()
            return
        # The waited times move on.
        option_list = self.item_list
        for index, item in enumerate(self.items):
            option_list.replace_option_prompt_at_index(index, self._option_text(item))
        self._show_what(self.current)

    @work(exclusive=True, group="inbox")
    async def reload(self) -> None:
        version = self.backend.data_version()
        try:
            items = await self.backend.inbox()
        except ConvtuiError as error:
            self.notify(str(error), severity="error")
            return
        self._version = version
        now = time.monotonic()
        self._answered = {key: at for key, at in self._answered.items() if now - at < _ANSWERED_SECONDS}
        self._show_items([item for item in items if (item.conversation_id, item.since) not in self._answered])

    def _show_items(self, items: list[InboxItem], keep_index: int | None = None) -> None:
        """Show `items`, keeping the highlight on the same conversation (or,
        when it is gone, on the one that took its place: the next)."""
        previous = self.current
        index = self.item_list.highlighted if keep_index is None else keep_index
        if previous is not None and keep_index is None:
            same = next((i for i, item in enumerate(items) if item.conversation_id == previous.conversation_id), None)
            index = same if same is not None else index
        self.items = items
        option_list = self.item_list
        option_list.clear_options()
        option_list.add_options([Option(self._option_text(item), id=item.conversation_id) for item in items])
        if items:
            option_list.highlighted = min(index or 0, len(items) - 1)
        empty = not items
        self.query_one("#inbox-empty").display = empty
        self.query_one("#inbox-body").display = not empty
        if not empty and (self.focused is None or not self.focused.display):
            option_list.focus()  # a hidden list lost the focus: give it back
        self._show_header()
        self._show_detail()

    def _waited(self, item: InboxItem) -> str:
        return format_duration((self.clock() - item.since).total_seconds())

    def _option_text(self, item: InboxItem) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"{item.kind.value:<9}", style="bold")
        text.append(f"{self._waited(item):>7}  ")
        text.append(one_line(inert(item.conversation.title), 60))
        return text

    def _show_header(self) -> None:
        count = len(self.items)
        self.query_one("#inbox-header", Static).update(f"Inbox · {count} need{'s' if count == 1 else ''} you · oldest wait first · Enter opens one")

    @on(OptionList.OptionHighlighted, "#inbox-items")
    def _highlighted(self) -> None:
        self._show_detail()

    def _show_what(self, item: InboxItem | None) -> None:
        """The detail's heading: the title, what it waits on, for how long."""
        what = self.query_one("#inbox-what", Static)
        if item is None:
            what.update("")
            return
        text = Text()
        text.append(one_line(inert(item.conversation.title), 100) + "\n", style="bold")
        text.append(KIND_WORDS[item.kind], style="bold")
        text.append(f" · waiting {self._waited(item)} · {item.conversation_id[:8]}")
        what.update(text)

    def _show_detail(self) -> None:
        """The heading, and what the highlighted conversation waits on when
        it changed (a diff once loaded keeps its scroll position)."""
        item = self.current
        self._show_what(item)
        key = (item.conversation_id, item.since, item.kind) if item is not None else None
        if key == self._shown_detail:
            return
        self._shown_detail = key
        content = self.query_one("#inbox-content", Static)
        reply = self.query_one("#inbox-reply", Input)
        if item is None:
            content.update("")
            return
        reply.display = item.kind is not InboxKind.APPROVE
        if item.kind is InboxKind.APPROVE:
            content.update(_action_text(item))
            if _is_file_write(item):
                self._load_diff(item)
        else:
            content.update(Text(inert(item.message) or "(no message)"))
        self.query_one("#inbox-scroll", VerticalScroll).scroll_home(animate=False)
        self.refresh_bindings()

    @work(exclusive=True, group="diff")
    async def _load_diff(self, item: InboxItem) -> None:
        try:
            diff = await self.backend.pending_diff(item.conversation_id)
        except ConvtuiError as error:
            diff, problem = None, str(error)
        else:
            problem = None
        if self.current is None or self.current.conversation_id != item.conversation_id:
            return
        content = self.query_one("#inbox-content", Static)
        if diff is None:
            content.update(Text.assemble(_action_text(item), "\n\n", (f"(no preview: {problem})" if problem else "", "italic")))
            return
        path = str(((item.action or {}).get("args") or {}).get("path") or "")
        content.update(Text.assemble((f"edit {inert(path)}\n\n", "bold"), diff_text(diff)))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        item = self.current
        if action in ("decide", "reject"):
            return item is not None and item.kind is InboxKind.APPROVE and item.action is not None
        if action in ("stop", "open"):
            return item is not None
        if action == "reply":
            return item is not None and item.kind is not InboxKind.APPROVE
        return True

    # -- answers -----------------------------------------------------------------------

    def _answered_now(self, item: InboxItem) -> None:
        """Take `item` off the list at once and move to the next."""
        self._answered[(item.conversation_id, item.since)] = time.monotonic()
        index = self.items.index(item) if item in self.items else 0
        self._show_items([other for other in self.items if other is not item], keep_index=index)
        self.item_list.focus()

    def _answer(self, item: InboxItem, send: Callable[[], Awaitable[object]]) -> None:
        """Take `item` off the list, move to the next, and send the answer
        (a failure is said, and the list read again)."""
        self._answered_now(item)
        self._send_answer(send)

    @work(group="answers")
    async def _send_answer(self, send: Callable[[], Awaitable[object]]) -> None:
        try:
            await send()
        except ConvtuiError as error:
            self.notify(str(error), severity="error")
            self.reload()

    def action_decide(self, decision: str) -> None:
        item = self.current
        if item is not None and item.kind is InboxKind.APPROVE:
            self._answer(item, lambda: self.backend.approve(item.conversation_id, always=decision == "always"))

    def action_reject(self) -> None:
        item = self.current
        if item is not None and item.kind is InboxKind.APPROVE:
            self.app.push_screen(RejectReasonScreen(item.conversation.title), lambda reason: self._rejected(item, reason))

    def _rejected(self, item: InboxItem, reason: str | None) -> None:
        if reason is not None:  # (None: cancelled)
            self._answer(item, lambda: self.backend.reject(item.conversation_id, reason=reason or None))

    def action_reply(self) -> None:
        reply = self.query_one("#inbox-reply", Input)
        if reply.display:
            reply.focus()

    @on(Input.Submitted, "#inbox-reply")
    def _reply_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        item = self.current
        text = event.value.strip()
        if item is None or not text:
            return
        event.input.value = ""

        async def reply() -> None:
            await self.backend.send_message(item.conversation_id, text)
            if item.kind in (InboxKind.ERROR, InboxKind.LIMIT):
                await self.backend.start(item.conversation_id)  # a loop that ended goes on

        self._answer(item, reply)

    def action_stop(self) -> None:
        item = self.current
        if item is None:
            return
        ended = item.kind in (InboxKind.ERROR, InboxKind.LIMIT)
        self._answer(item, lambda: (self.backend.dismiss if ended else self.backend.stop)(item.conversation_id))

    @on(OptionList.OptionSelected, "#inbox-items")
    def _selected(self) -> None:
        self.action_open()

    def action_open(self) -> None:
        item = self.current
        if item is not None:
            self.dismiss(item.conversation_id)

    def action_close(self) -> None:
        if self.focused is not None and self.focused.id == "inbox-reply":
            self.item_list.focus()
            return
        self.dismiss(None)


# How a unified diff's lines read: by their first characters, as git shows
# them (the +/- stay, so the diff reads without colour too).
_DIFF_STYLES = (("+++", "bold"), ("---", "bold"), ("@@", "bold cyan"), ("+", "green"), ("-", "red"))


def diff_text(lines: list[str]) -> Text:
    text = Text()
    for line in lines:
        line = inert(line.expandtabs(4), keep_newlines=False)
        style = next((style for prefix, style in _DIFF_STYLES if line.startswith(prefix)), "")
        if line.startswith(" "):
            line = "\u00a0" + line[1:]  # a context line's leading space: wrapping would drop it
        text.append(line + "\n", style=style)
    text.rstrip()
    return text


def _is_file_write(item: InboxItem) -> bool:
    return (item.action or {}).get("action") in ("edit", "write")


def _action_text(item: InboxItem) -> Text:
    """The action awaiting approval, whole: a command, code, a file write."""
    action = item.action
    if action is None:
        return Text("The action waits in a loop this process cannot answer (another process runs it).", style="italic")
    args = action.get("args") or {}
    kind = action.get("action")
    thought = str(args.get("thought") or "").strip()
    text = Text()
    if thought:
        text.append(inert(thought) + "\n\n", style="italic")
    if kind == "run":
        text.append("run\n", style="bold")
        text.append("$ " + inert(str(args.get("command") or "")))
    elif kind == "run_ipython":
        text.append("run Python\n", style="bold")
        text.append(inert(str(args.get("code") or "")))
    elif kind in ("edit", "write"):
        text.append(f"{kind} {inert(str(args.get('path') or ''))}\n", style="bold")
        text.append("(loading the diff…)", style="italic")
    else:
        text.append(f"{inert(str(kind))}\n", style="bold")
        text.append(inert(str({key: value for key, value in args.items() if key != 'thought'})))
    return text
