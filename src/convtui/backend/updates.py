"""What a running loop tells its subscribers, the moment it happens.

Subscribe with `manager.subscribe(callback)` (called on the event loop, must
not block) or iterate `manager.updates()` (an async iterator). Every update
names its conversation; the UI routes them to rows and panes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

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


LoopUpdate = StatusChanged | EventAdded | TextStreamed | TitleChanged | MetricsChanged
Subscriber = Callable[[LoopUpdate], None]


class UpdateHub:
    """A callback registry; a failing subscriber is logged and kept away from
    the loop that published."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

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

    async def stream(self, max_queued: int = 10_000) -> AsyncIterator[LoopUpdate]:
        """Every update from now on, in order. A consumer that falls more than
        `max_queued` behind loses the oldest TextStreamed pieces first."""
        queue: asyncio.Queue[LoopUpdate] = asyncio.Queue()

        def enqueue(update: LoopUpdate) -> None:
            if queue.qsize() >= max_queued and isinstance(update, TextStreamed):
                return
            queue.put_nowait(update)

        unsubscribe = self.subscribe(enqueue)
        try:
            while True:
                yield await queue.get()
        finally:
            unsubscribe()
