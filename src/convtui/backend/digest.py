"""While you were away: per conversation, what happened since a moment
(the last time this OS user closed a UI): how many events, which commands
ran, which files changed, what it cost, and what it waits on now."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from .events import EventDict
from .inbox import InboxKind
from .models import ConversationInfo

DIGEST_MAX = 100  # conversations listed (the most recent activity first)
_FILE_WRITES = ("create", "str_replace", "insert", "undo_edit")


class DigestEntry(BaseModel):
    conversation: ConversationInfo
    events: int
    commands: list[str] = Field(default_factory=list)  # in the order they ran
    files: list[str] = Field(default_factory=list)  # changed, each once
    cost: float | None = None  # spent meanwhile (None: unknown)
    waits: InboxKind | None = None  # what it waits on now


def _stamp(event: EventDict) -> datetime | None:
    try:
        return datetime.fromisoformat(event["timestamp"])
    except (KeyError, TypeError, ValueError):
        return None


def _accumulated(event: EventDict) -> float | None:
    metrics = event.get("llm_metrics")
    cost = metrics.get("accumulated_cost") if isinstance(metrics, dict) else None
    return cost if isinstance(cost, (int, float)) else None


def digest_entry(info: ConversationInfo, events: list[EventDict], since: datetime, waits: InboxKind | None) -> DigestEntry | None:
    """What `events` (the whole log) say happened after `since`; None when nothing did."""
    recent = [event for event in events if (stamp := _stamp(event)) is not None and stamp > since]
    if not recent:
        return None
    commands = [
        str(event["args"]["command"])
        for event in recent
        if event.get("action") == "run" and isinstance((event.get("args") or {}).get("command"), str)
    ]
    files = list(
        dict.fromkeys(
            str(event["args"]["path"])
            for event in recent
            if event.get("action") == "edit"
            and (event.get("args") or {}).get("command") in _FILE_WRITES
            and isinstance(event["args"].get("path"), str)
        )
    )
    # Accumulated costs only grow: spent = the highest since - the highest before.
    recent_ids = {id(event) for event in recent}
    costs_after = [cost for event in recent if (cost := _accumulated(event)) is not None]
    costs_before = [cost for event in events if id(event) not in recent_ids and (cost := _accumulated(event)) is not None]
    cost = max(costs_after) - max(costs_before, default=0.0) if costs_after else None
    return DigestEntry(conversation=info, events=len(recent), commands=commands, files=files, cost=cost, waits=waits)
