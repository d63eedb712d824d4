"""A terminal UI on an OpenHands server (`convtui --remote NAME`): the
UIBackend over OpenHandsBackend.

The first page is read before the list shows; the rest load in the
background, a page at a time within the client's pace, up to AUTO_LOAD rows
(each `load_more` asks for AUTO_LOAD more), and the list filters and sorts
what is loaded (the status line says how much). While the UI runs
it follows the server: the newest page again every FOLLOW_SECONDS, and the
running conversations beyond it (changed rows are published like a local
loop's updates), and the new events of the conversations being looked at. A server that stops answering is said on the
status line; the UI never waits on it. convtui's own settings (theme, keys)
stay in the local data directory."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .digest import DigestEntry
from .errors import ConvtuiError
from .events import EventDict, EventFilter
from .inbox import InboxItem
from .models import AgentState, ConversationInfo, ConversationResponse, ConversationStatus, NewConversationRequest
from .openhands_backend import FOLLOW_SECONDS, PAGE_MAX, EventTrail, OpenHandsBackend, select_events, status_changed, unsupported
from .openhands_http import OpenHandsHTTP
from .openhands_mapping import conversation_info, pending_action
from .remote_rows import RemoteRows
from .remotes import Remote, RemotesStore
from .store import ConversationFilter
from .updates import EventAdded, Subscriber, UpdateHub

log = logging.getLogger(__name__)

AUTO_LOAD = 10_000  # conversations loaded without being asked, and each "more" then
EVENTS_FRESH_SECONDS = 2.0  # events read again at most this often
WATCHED_SECONDS = 30.0  # a conversation whose events were asked for within this is followed


class OpenHandsUIBackend(OpenHandsBackend):
    outlives_the_ui = True  # the server's agents go on after the UI quits
    has_trash = False

    def __init__(self, http: OpenHandsHTTP, name: str, root: Path) -> None:
        super().__init__(http, name, root)
        self.listing = RemoteRows()
        self.hub = UpdateHub()
        self._total = 0
        self._version = 0
        self._next_page: str | None = None
        self._wanted = AUTO_LOAD  # the rows the background load goes up to ("more" raises it)
        self._loader: asyncio.Task[None] | None = None
        self._trails: dict[str, EventTrail] = {}
        self._watched: dict[str, float] = {}
        self._tasks: list[asyncio.Task[Any]] = []
        self._trouble: str | None = None  # why the server is being waited for, while it is
        http.on_wait = self._waiting

    @property
    def remote_name(self) -> str:
        return self.name

    def _waiting(self, why: str) -> None:
        self._trouble = why
        self._changed()

    def _changed(self) -> None:
        self._version += 1  # the screen's next poll reloads the list and its status line

    async def open(self, on_wait: Callable[[str], None] | None = None) -> None:
        """The first page and the count (before the list shows); `on_wait`
        hears why it waits meanwhile."""
        self.http.on_wait = on_wait
        try:
            self._total = await self.count()  # (first: it says when the server is not OpenHands)
            await self._load_page()
        finally:
            self.http.on_wait = self._waiting

    async def _load_page(self) -> None:
        page = await self._page(self._next_page, PAGE_MAX)
        self.listing.merge(conversation_info(item) for item in page["items"])
        self._next_page = page.get("next_page_id")

    async def connect(self) -> None:
        if not self._tasks:
            self._loader = asyncio.create_task(self._load_rest())
            self._tasks = [self._loader, asyncio.create_task(self._follow())]

    def _loading(self) -> bool:
        return self._loader is not None and not self._loader.done()

    def more_to_load(self) -> bool:
        """The server holds pages beyond those loaded, and none is loading."""
        return bool(self._next_page) and self._loader is not None and self._loader.done()

    def load_more(self) -> int:
        """The next AUTO_LOAD rows, loaded in the background: how many that
        is (at most; 0: nothing more to load)."""
        if not self.more_to_load():
            return 0
        self._wanted = len(self.listing) + AUTO_LOAD
        self._loader = asyncio.create_task(self._load_rest())
        self._tasks.append(self._loader)
        self._changed()
        left = self._total - len(self.listing)
        return min(AUTO_LOAD, left) if left > 0 else AUTO_LOAD

    async def _load_rest(self) -> None:
        while self._next_page and len(self.listing) < self._wanted:
            try:
                await self._load_page()
                self._trouble = None
            except ConvtuiError as error:
                self._trouble = f"{self.name}: {error}"
                await asyncio.sleep(FOLLOW_SECONDS)
            self._changed()
        self._changed()  # (done: the status line may offer more)

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            try:
                await self._follow_once()
                if self._trouble is not None:
                    self._trouble = None
                    self._changed()
            except ConvtuiError as error:
                self._trouble = f"{self.name}: {error}"
                self._changed()

    async def _follow_once(self) -> None:
        infos, gone = await self.followed(self.running_ids())
        for conversation_id in gone:
            self.listing.drop(conversation_id)
        changed = self._take(infos)
        total = await self.count()
        if changed or gone or total != self._total:
            self._total = total
            self._changed()
        now = time.monotonic()
        for conversation_id, asked_at in list(self._watched.items()):
            if now - asked_at > WATCHED_SECONDS:
                del self._watched[conversation_id]
            elif self.is_running(conversation_id) and conversation_id in self._trails:
                for event in await self._fresh_events(conversation_id):
                    self.hub.publish(EventAdded(conversation_id, event))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().close()

    # -- what a screen reads between two frames --------------------------------------

    def list_note(self) -> str | None:
        """What the status line adds: how much is loaded, and any trouble."""
        parts = []
        if len(self.listing) < self._total:
            parts.append(f"{len(self.listing):,} loaded{', loading more' if self._loading() else ''}")
        if self._trouble:
            parts.append(self._trouble)
        return " · ".join(parts) or None

    def row(self, conversation_id: str) -> ConversationInfo | None:
        return self.listing.rows.get(conversation_id)

    def list_ids_now(self, query: ConversationFilter, sort: str, reverse: bool) -> Sequence[str] | None:
        return None if query.searches_events else self.listing.ids(query, sort, reverse)

    async def list_ids(self, query: ConversationFilter, sort: str, reverse: bool) -> Sequence[str]:
        if query.searches_events:
            raise unsupported("searching what conversations did (text:, file:, cmd:, status:unread)", "filter by their titles")
        return self.listing.ids(query, sort, reverse)

    def position_in(self, ids: Sequence[str], conversation_id: str, sort: str, reverse: bool) -> int | None:
        try:
            return ids.index(conversation_id)
        except ValueError:
            return None

    def total(self) -> int:
        return max(self._total, len(self.listing))

    def data_version(self) -> int:
        return self._version

    async def refresh(self) -> None:
        return None  # followed in the background

    async def warm(self) -> None:
        return None

    def workspace_path(self, conversation_id: str) -> Path | None:
        return None  # on the server's sandbox

    def is_running(self, conversation_id: str) -> bool:
        info = self.row(conversation_id)
        return info is not None and info.status in (ConversationStatus.RUNNING, ConversationStatus.STARTING)

    def running_ids(self) -> list[str]:
        return [i for i in self.listing.rows if self.is_running(i)]

    def pending_action_now(self, conversation_id: str) -> EventDict | None:
        info, trail = self.row(conversation_id), self._trails.get(conversation_id)
        if info is None or trail is None or info.agent_state is not AgentState.AWAITING_USER_CONFIRMATION:
            return None
        return pending_action(trail.events)

    def processes_now(self, conversation_id: str) -> tuple[str, ...]:
        return ()

    def waiting_count_now(self) -> int | None:
        return self.listing.waiting_count()

    def ui_closed_at(self) -> datetime | None:
        return None

    def note_ui_closed(self) -> None:
        return None

    async def digest(self, since: datetime) -> list[DigestEntry]:
        return []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        return self.hub.subscribe(subscriber)

    async def stop_all(self) -> int:
        """Pause every running conversation loaded (Q, after asking)."""
        running = self.running_ids()
        for conversation_id in running:
            try:
                await self.stop(conversation_id)
            except ConvtuiError as error:
                log.warning("could not stop %s: %s", conversation_id, error)
        return len(running)

    async def test_model(self, values: dict[str, Any]) -> str:
        raise unsupported("testing convtui's model", "the server's agents use the model in its own settings")

    async def warm_model(self) -> None:
        return None

    # -- convtui's own settings: this machine's ---------------------------------------

    async def remotes(self) -> list[Remote]:
        return list((await asyncio.to_thread(RemotesStore(self.root).load)).values())

    async def test_remote(self, name: str) -> str:
        from .connect import reach_remote

        return await reach_remote(self.root, name)

    # -- changes, taken into the rows at once -------------------------------------------

    def _take(self, infos: Iterable[ConversationInfo]) -> list[ConversationInfo]:
        """Into the rows; each that changed is said as a loop's status would be."""
        changed = self.listing.merge(infos)
        for info in changed:
            self.hub.publish(status_changed(info))
        return changed

    async def _reread(self, conversation_id: str) -> None:
        try:
            info = await super().get(conversation_id)
        except ConvtuiError:
            return
        if self._take([info]):
            self._changed()

    async def rename(self, conversation_id: str, title: str) -> ConversationInfo:
        info = await super().rename(conversation_id, title)
        if self._take([info]):
            self._changed()
        return info

    async def delete(self, conversation_id: str) -> bool:
        full_id = await self.resolve(conversation_id)
        deleted = await super().delete(full_id)
        self.listing.drop(full_id)
        self._total = max(0, self._total - 1) if deleted else self._total
        self._changed()
        return deleted

    async def new_conversation(self, request: NewConversationRequest) -> ConversationResponse:
        response = await super().new_conversation(request)
        self._total += 1
        await self._reread(response.conversation_id)
        return response

    async def start(self, conversation_id: str, confirm: bool | None = None, until_idle: bool = False) -> ConversationStatus:
        status = await super().start(conversation_id, confirm, until_idle)
        await self._reread(await self.resolve(conversation_id))
        return status

    async def stop(self, conversation_id: str) -> ConversationResponse:
        response = await super().stop(conversation_id)
        await self._reread(response.conversation_id)
        return response

    async def approve(self, conversation_id: str, always: bool = False) -> None:
        await super().approve(conversation_id, always)
        await self._reread(await self.resolve(conversation_id))

    async def reject(self, conversation_id: str, reason: str | None = None) -> None:
        await super().reject(conversation_id, reason)
        await self._reread(await self.resolve(conversation_id))

    async def inbox(self) -> list[InboxItem]:
        """The loaded conversations that wait for a person."""
        return await self._inbox_of([self.listing.rows[i] for i in self.listing.waiting()])

    async def send_message(self, conversation_id: str, text: str) -> EventDict:
        sent = await super().send_message(conversation_id, text)
        self._watched[await self.resolve(conversation_id)] = time.monotonic()
        return sent

    # -- events: read once, then only what is new -----------------------------------------

    async def _fresh_events(self, full_id: str) -> list[EventDict]:
        trail = self._trails.setdefault(full_id, EventTrail())
        async with trail.reading:
            if time.monotonic() - trail.read_at < EVENTS_FRESH_SECONDS:
                return []
            new = await self._read_events(full_id, trail)
            trail.read_at = time.monotonic()
            return new

    async def search_events(
        self,
        conversation_id: str,
        start_id: int = 0,
        end_id: int | None = None,
        reverse: bool = False,
        filter: EventFilter | None = None,
        limit: int | None = None,
    ) -> list[EventDict]:
        full_id = await self.resolve(conversation_id)
        self._watched[full_id] = time.monotonic()
        await self._fresh_events(full_id)
        return select_events(self._trails[full_id].events, start_id, end_id, reverse, filter, limit)
