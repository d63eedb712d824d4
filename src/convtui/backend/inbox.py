"""What needs a person: every conversation waiting for one, oldest wait
first, with what it waits on.

A conversation needs you when its loop waits for the confirmation of an
action (APPROVE), for a reply (REPLY), or has finished its task and waits for
what next (FINISHED); or when its loop ended and only you can go on: an error
(ERROR) or a limit it reached, a budget or the steps of one message (LIMIT).
The ended ones stay until started again or dismissed: the stored
`attention` field says why they wait."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel

from .events import EventDict
from .models import AgentState, ConversationInfo, ConversationStatus, UtcDatetime


class InboxKind(str, Enum):
    APPROVE = "approve"
    REPLY = "reply"
    FINISHED = "finished"
    ERROR = "error"
    LIMIT = "limit"


# Why an ended loop waits for a person (ConversationMetadata.attention).
ATTENTION_ERROR = InboxKind.ERROR.value
ATTENTION_LIMIT = InboxKind.LIMIT.value

_LIVE_KINDS = {
    AgentState.AWAITING_USER_CONFIRMATION: InboxKind.APPROVE,
    AgentState.AWAITING_USER_INPUT: InboxKind.REPLY,
    AgentState.FINISHED: InboxKind.FINISHED,
}
_RUNNING = (ConversationStatus.STARTING, ConversationStatus.RUNNING)

# What each kind waits on, in the words of the inbox and `convtui inbox`.
KIND_WORDS = {
    InboxKind.APPROVE: "approve an action",
    InboxKind.REPLY: "reply to the agent",
    InboxKind.FINISHED: "finished: what next?",
    InboxKind.ERROR: "failed: go on or leave it",
    InboxKind.LIMIT: "stopped at a limit",
}


class InboxItem(BaseModel):
    """One conversation that waits for a person."""

    conversation: ConversationInfo
    kind: InboxKind
    since: UtcDatetime  # when it began to wait
    # the action awaiting confirmation (APPROVE; None when its loop runs in
    # a process that cannot be asked, e.g. another --no-server UI)
    action: dict[str, Any] | None = None
    # in words: the agent's last message (REPLY, FINISHED), why the loop ended (ERROR, LIMIT)
    message: str = ""

    @property
    def conversation_id(self) -> str:
        return self.conversation.conversation_id


def inbox_kind(info: ConversationInfo) -> InboxKind | None:
    """Why this conversation waits for a person (None: it does not)."""
    if info.status in _RUNNING:
        return _LIVE_KINDS.get(info.agent_state) if info.agent_state is not None else None
    if info.archived or info.attention is None:
        return None
    return InboxKind.LIMIT if info.attention == ATTENTION_LIMIT else InboxKind.ERROR


def _agent_words(events: list[EventDict]) -> tuple[str, EventDict | None]:
    """The agent's last message (or its finish message) in `events`, newest
    first, and its event."""
    for event in events:
        if event.get("source") != "agent":
            continue
        args = event.get("args") or {}
        if event.get("action") == "message":
            return str(args.get("content") or event.get("message") or ""), event
        if event.get("action") == "finish":
            return str(args.get("final_thought") or event.get("message") or ""), event
    return "", None


def _stamp(event: EventDict | None) -> datetime | None:
    try:
        return datetime.fromisoformat(event["timestamp"]) if event and event.get("timestamp") else None
    except (TypeError, ValueError):
        return None


def inbox_item(
    info: ConversationInfo, kind: InboxKind, action: EventDict | None, recent_events: list[EventDict]
) -> InboxItem:
    """`recent_events`: the conversation's last events, newest first (not
    needed for APPROVE). The wait began with the event it waits on: the
    action, the agent's words, the loop's end (the newest event); the last
    metadata change when that is not at hand."""
    message = ""
    if kind is InboxKind.APPROVE:
        began = _stamp(action)
    elif kind in (InboxKind.REPLY, InboxKind.FINISHED):
        message, said = _agent_words(recent_events)
        began = _stamp(said)
    else:
        message = info.status_message or ""
        began = _stamp(recent_events[0] if recent_events else None)
    since = began or info.last_updated_at
    return InboxItem(conversation=info, kind=kind, since=since, action=action, message=message)


def oldest_first(items: list[InboxItem]) -> list[InboxItem]:
    return sorted(items, key=lambda item: (item.since, item.conversation_id))
