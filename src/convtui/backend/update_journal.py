"""The numbered record of loop updates behind the server's live stream.

Every update a loop publishes gets the next position in this server's epoch
and is kept among the newest `keep`. A client that reconnects says the last
position it saw ("<epoch>:<n>") and gets everything after it, so a dropped
link misses nothing. When that position is gone (another server since, or it
fell out of the window) the client is told to reset: reload what it shows,
then follow from now. Each follower has a bounded queue; one that falls
behind is cut off (never slowing loops or other followers) and resumes from
its last position like any reconnecting client."""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from .updates import LoopUpdate, UpdateHub

KEEP_DEFAULT = 10_000
FOLLOWER_BUFFER_DEFAULT = 2_000


@dataclass(frozen=True)
class Entry:
    position: str
    update: LoopUpdate


@dataclass(frozen=True)
class StreamReset:
    """The position asked for is gone (another server since, or out of the
    window): updates may have been missed. Reload, then keep following."""

    position: str


class _Follower:
    def __init__(self, capacity: int) -> None:
        self.queue: asyncio.Queue[tuple[int, LoopUpdate]] = asyncio.Queue(capacity)
        self.overflowed = False

    def offer(self, number: int, update: LoopUpdate) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait((number, update))
        except asyncio.QueueFull:
            self.overflowed = True


class UpdateJournal:
    def __init__(self, hub: UpdateHub, keep: int = KEEP_DEFAULT, follower_buffer: int = FOLLOWER_BUFFER_DEFAULT) -> None:
        self.epoch = uuid.uuid4().hex[:12]
        self._entries: deque[tuple[int, LoopUpdate]] = deque(maxlen=keep)
        self._last = 0
        self._follower_buffer = follower_buffer
        self._followers: set[_Follower] = set()
        self.unsubscribe = hub.subscribe(self.record)

    @property
    def followers(self) -> int:
        """How many clients follow the stream now."""
        return len(self._followers)

    def position(self, number: int | None = None) -> str:
        return f"{self.epoch}:{self._last if number is None else number}"

    def record(self, update: LoopUpdate) -> None:
        self._last += 1
        self._entries.append((self._last, update))
        for follower in list(self._followers):
            follower.offer(self._last, update)

    def _after(self, position: str | None) -> int | None:
        """The number after which to replay, or None when that is not possible."""
        if position is None:
            return self._last
        epoch, _, number = position.partition(":")
        if epoch != self.epoch or not number.isdigit():
            return None
        after = int(number)
        oldest = self._entries[0][0] if self._entries else self._last + 1
        if after > self._last or after < oldest - 1:
            return None
        return after

    async def follow(self, position: str | None = None) -> AsyncIterator[Entry | StreamReset]:
        """Every update after `position` (None: from now), then each new one
        as it comes. Ends when this follower falls behind its buffer."""
        follower = _Follower(self._follower_buffer)
        self._followers.add(follower)
        try:
            after = self._after(position)
            if after is None:
                after = self._last
                yield StreamReset(self.position())
            for number, update in [entry for entry in self._entries if entry[0] > after]:
                yield Entry(self.position(number), update)
                after = number
            while not follower.overflowed or not follower.queue.empty():
                number, update = await follower.queue.get()
                if number > after:
                    yield Entry(self.position(number), update)
                    after = number
        finally:
            self._followers.discard(follower)
