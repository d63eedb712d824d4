"""What a running loop tells its subscribers, the moment it happens.

Subscribe with `manager.subscribe(callback)` (called on the event loop, must
not block), or follow a Backend's `updates()` (numbered and resumable: see
update_journal.py). Every update names its conversation; the UI routes them
to rows and panes."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .events import EventDict
from .models import AgentState, ConversationStatus, RuntimeStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatusChanged:
    """The loop's status, runtime status or agent state moved."""

    conversation_id: str
    status: ConversationStatus
    runtime_status: RuntimeStatus | None
    agent_state: AgentState | None
    message: str | None = None
    attention: str | None = None  # a loop that ended waits for a person: "error", "limit"


@dataclass(frozen=True)
class EventAdded:
    """An event was appended to the conversation's log (already durable)."""

    conversation_id: str
    event: EventDict


@dataclass(frozen=True)
class TextStreamed:
    """A piece of the assistant's reply as the model streams it. The whole
    reply follows as an EventAdded once complete."""

    conversation_id: str
    text: str


@dataclass(frozen=True)
class TitleChanged:
    conversation_id: str
    title: str


@dataclass(frozen=True)
class MetricsChanged:
    """Cost (None: unknown for this model) and tokens after an LLM call."""

    conversation_id: str
    accumulated_cost: float | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True)
class ProcessesChanged:
    """The background processes running in the conversation's workspace
    (their commands, oldest first) changed: one started, ended or was stopped."""

    conversation_id: str
    commands: tuple[str, ...]


LoopUpdate = StatusChanged | EventAdded | TextStreamed | TitleChanged | MetricsChanged | ProcessesChanged
Subscriber = Callable[[LoopUpdate], None]

# The names updates go by on the wire (the live stream of `convtui serve`).
UPDATE_TYPES: dict[str, type[LoopUpdate]] = {
    "status": StatusChanged,
    "event": EventAdded,
    "text": TextStreamed,
    "title": TitleChanged,
    "metrics": MetricsChanged,
    "processes": ProcessesChanged,
}
_TYPE_NAMES = {kind: name for name, kind in UPDATE_TYPES.items()}
_ENUM_FIELDS = {"status": ConversationStatus, "runtime_status": RuntimeStatus, "agent_state": AgentState}


def update_to_dict(update: LoopUpdate) -> dict[str, Any]:
    """The update as JSON-ready data: its fields and `type`."""
    data = {field.name: getattr(update, field.name) for field in dataclasses.fields(update)}
    for name, value in data.items():
        if isinstance(value, Enum):
            data[name] = value.value
    return {"type": _TYPE_NAMES[type(update)], **data}


def update_from_dict(data: dict[str, Any]) -> LoopUpdate:
    """The inverse of update_to_dict. Raises ValueError for anything else."""
    kind = UPDATE_TYPES.get(data.get("type", ""))
    if kind is None:
        raise ValueError(f"unknown update type {data.get('type')!r}")
    names = {field.name for field in dataclasses.fields(kind)}
    values = {name: value for name, value in data.items() if name in names}
    for name, enum in _ENUM_FIELDS.items():
        if values.get(name) is not None:
            values[name] = enum(values[name])
    if isinstance(values.get("commands"), list):
        values["commands"] = tuple(values["commands"])
    try:
        return kind(**values)
    except TypeError as error:
        raise ValueError(f"malformed {data['type']} update: {error}") from None


# How long a conversation's reply is streamed after someone asked to watch
# it (see UpdateHub.watch_text); a UI asks again before this runs out.
TEXT_WATCH_SECONDS = 60.0


class UpdateHub:
    """A callback registry; a failing subscriber is logged and kept away from
    the loop that published. It also knows which conversations someone is
    watching: only their replies are streamed (TextStreamed), since a
    streamed model call costs litellm about three times the CPU of a whole
    one, and with many loops that CPU is what bounds them."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._subscribers: list[Subscriber] = []
        self._clock = clock
        self._watched_until: dict[str, float] = {}

    def watch_text(self, conversation_id: str, seconds: float = TEXT_WATCH_SECONDS) -> None:
        """Stream this conversation's replies as they come, for the next
        `seconds` (a call already under way stays as it started)."""
        now = self._clock()
        self._watched_until = {cid: until for cid, until in self._watched_until.items() if until > now}
        self._watched_until[conversation_id] = now + seconds

    def wants_text(self, conversation_id: str) -> bool:
        return self._watched_until.get(conversation_id, float("-inf")) > self._clock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Register `subscriber`; returns a function that unregisters it."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, update: LoopUpdate) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(update)
            except Exception:
                log.exception("a subscriber failed on %s", type(update).__name__)
