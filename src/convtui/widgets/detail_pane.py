"""The detail pane of the selected conversation: its metadata and live
status, its event log, the approval bar when an action waits for
confirmation, and the input to message the agent."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, Input, Static

from ..backend.events import EventDict
from ..backend.models import ConversationInfo
from ..formatting import format_cost, format_tokens, relative_time
from ..terminal_text import one_line
from .event_log import EventLog
from .no_layout import LineInput
from .status_badge import badge_for, state_words


def home_relative(path: Path) -> str:
    """`path` with the home directory written as ~ (shorter, and what a
    person would type)."""
    try:
        return str(Path("~") / path.relative_to(Path.home()))
    except (ValueError, RuntimeError):  # not under home, or no home
        return str(path)


def describe_info(
    info: ConversationInfo,
    now: datetime,
    colours: dict[str, str] | None = None,
    workspace: Path | None = None,
    width: int | None = None,
    unsandboxed: str | None = None,
    processes: tuple[str, ...] = (),
) -> Text:
    """The header lines of the pane, built as Text so nothing is markup.
    `colours` maps badge styles (running, waiting, error) to theme colours;
    `workspace` is the directory the agent works in, shortened from the
    left to `width` cells (its end, the conversation's own directory, is
    what tells it apart). `unsandboxed` says why commands run without a
    sandbox, when they do; `processes` are the commands running in the
    background in its workspace."""
    badge = badge_for(info)
    colour = (colours or {}).get(badge.style)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(one_line(info.title), style="bold")
    text.append("\n")
    text.append(f"{badge.glyph} {one_line(state_words(info), 300)}", style=f"bold {colour}" if colour else "bold")
    if info.always_approve:
        text.append(" · always approve on (A turns it off)", style="bold")
    text.append("\n")
    if info.status_message and badge.label != "error":
        text.append(one_line(info.status_message, 300), style=f"italic {colour}" if colour else "italic")
        text.append("\n")
    repository = info.selected_repository or "no repository"
    if info.selected_branch:
        repository += f"@{info.selected_branch}"
    trigger = info.trigger.value if info.trigger else "-"
    text.append(f"{info.conversation_id} · {one_line(repository)} · {trigger}\n")
    if workspace is not None:
        line = f"workspace {one_line(home_relative(workspace))}"
        if width is not None and len(line) > width:
            line = "workspace …" + line[len(line) - max(1, width - len("workspace …")) :]
        text.append(line + "\n")
    if unsandboxed is not None:
        warning = (colours or {}).get("waiting")
        text.append(f"! commands NOT sandboxed: {one_line(unsandboxed, 300)}\n", style=f"bold {warning}" if warning else "bold")
    if processes:
        count = len(processes)
        listed = one_line(", ".join(processes), 200)
        text.append(f"{count} process{'es' if count != 1 else ''} running in this workspace (K stops them): ", style="bold")
        text.append(listed + "\n")
    text.append(
        f"created {relative_time(info.created_at, now)} · updated {relative_time(info.last_updated_at, now)}"
        f" · cost {format_cost(info.accumulated_cost)} · tokens {format_tokens(info.total_tokens)}"
        f" ({format_tokens(info.prompt_tokens)} in, {format_tokens(info.completion_tokens)} out)"
    )
    if info.pr_number:
        text.append(" · PR " + ", ".join(f"#{number}" for number in info.pr_number))
    return text


class ApprovalBar(Horizontal):
    """Shown while an action waits for confirmation."""

    class Decided(Message):
        def __init__(self, decision: str) -> None:
            super().__init__()
            self.decision = decision  # "approve", "reject" or "always"

    def compose(self) -> ComposeResult:
        yield Static(id="approval-text")
        yield Button("Approve (y)", id="approve", variant="success")
        yield Button("Reject (N)", id="reject", variant="error")
        yield Button("Always (Y)", id="always")

    def show_action(self, action: EventDict | None) -> None:
        self.display = action is not None
        if action is not None:
            args = action.get("args") or {}
            if action.get("action") == "run":
                what = f"run  {args.get('command', '')}"
            else:
                what = f"{args.get('command', 'edit')}  {args.get('path', '')}"
            self.query_one("#approval-text", Static).update(Text(f"Waiting for approval — {one_line(what, 200)}"))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.Decided(event.button.id or "reject"))


class DetailPane(Vertical):
    """Attributes down: the screen sets `info`, events and the pending action."""

    class MessageSubmitted(Message):
        def __init__(self, conversation_id: str, text: str) -> None:
            super().__init__()
            self.conversation_id = conversation_id
            self.text = text

    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        workspace_of: Callable[[str], Path] | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.clock = clock
        self.workspace_of = workspace_of  # a conversation's workspace directory, shown in the header
        self.info: ConversationInfo | None = None
        self.unsandboxed: str | None = None  # why commands run without a sandbox, when they do
        self.processes: tuple[str, ...] = ()  # background processes of the shown conversation
        self._header_lines = 0

    def compose(self) -> ComposeResult:
        yield Static(id="detail-header")
        yield EventLog(id="event-log")
        yield ApprovalBar(id="approval-bar")
        yield LineInput(placeholder="Message the agent — Enter sends", id="message-input")

    def on_mount(self) -> None:
        self.query_one(ApprovalBar).display = False
        self.show_info(None)

    @property
    def event_log(self) -> EventLog:
        return self.query_one(EventLog)

    def show_info(self, info: ConversationInfo | None) -> None:
        self.info = info
        if info is None:
            self._show_header(Text("No conversation selected.\nPress n to create one."))
            self.query_one("#message-input", Input).disabled = True
            return
        variables = self.app.get_css_variables()
        colours = {name: variables.get(key, "") for name, key in (("running", "text-success"), ("waiting", "text-warning"), ("error", "text-error"))}
        workspace = self.workspace_of(info.conversation_id) if self.workspace_of is not None else None
        width = self.query_one("#detail-header").content_region.width or None
        self._show_header(
            describe_info(info, self.clock(), colours, workspace, width, self.unsandboxed, self.processes)
        )
        self.query_one("#message-input", Input).disabled = False

    def show_processes(self, commands: tuple[str, ...]) -> None:
        if commands != self.processes:
            self.processes = commands
            if self.info is not None:
                self.show_info(self.info)

    def on_resize(self) -> None:
        if self.info is not None:
            self.show_info(self.info)  # the workspace path is cut to the width

    def _show_header(self, text: Text) -> None:
        # The header is as tall as its lines: a layout pass (the whole screen
        # repainted) only when their number changes, not on every cursor move.
        lines = text.plain.count("\n") + 1
        self.query_one("#detail-header", Static).update(text, layout=lines != self._header_lines)
        self._header_lines = lines

    def show_pending(self, action: EventDict | None) -> None:
        self.query_one(ApprovalBar).show_action(action)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self.info is not None and event.value.strip():
            self.post_message(self.MessageSubmitted(self.info.conversation_id, event.value))
            event.input.value = ""
