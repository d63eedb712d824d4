"""ConversationService: the one object the UI and the CLI talk to.

Every public method is async and does its disk work in a worker thread, so
the UI's event loop never waits on the store. Errors are the ConvtuiError
family, each with a one-line message for a person.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import getpass
import logging
import os
import shutil
import socket
import sqlite3
import stat
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import orjson
from pydantic import ValidationError

from .data_dir import DataDirectory
from .durable_files import atomic_write, create_exclusive
from .errors import (
    AmbiguousId,
    ConvtuiError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    StorageError,
    describe_os_error,
    first_validation_error,
)
from .events import EventDict, EventFilter, EventLog, openhands_event
from .loop_lock import runner_pid
from .models import (
    CONVERSATION_ID_PATTERN,
    AgentState,
    ConversationInfo,
    ConversationInfoResultSet,
    ConversationMetadata,
    ConversationResponse,
    ConversationStatus,
    ConversationTrigger,
    ExperimentConfig,
    NewConversationRequest,
    RuntimeStatus,
    default_title,
    derived_title,
    format_timestamp,
    id_prefix,
    utc_now,
    validate_title,
)
from .redaction import Redactor, provider_keys_in_environment
from .digest import DIGEST_MAX, DigestEntry, digest_entry
from .inbox import inbox_kind
from .search_index import INDEX_FILE, SearchIndex
from .settings import Settings, SettingsStore
from .store import STATE_FILTERS, ConversationFilter, ConversationStore, Document, display_state, display_status
from .trajectory import parse_trajectory, to_json, to_markdown, to_zip
from .trash import TRASH_RECORD, TrashedConversation, read_trash_record, trash_directory, trash_record, trashed_ids

log = logging.getLogger(__name__)

PAGE_SIZE_DEFAULT = 20
PAGE_SIZE_MAX = 100
_EVENT_LOG_CACHE = 64
_ROWS_KEPT = 4096  # rows made for painting, kept until they change (a few screens' worth many times over)
_HOST = socket.gethostname()
_ACTIVE_STATUSES = ("STARTING", "RUNNING")
UNREAD = "unread"  # the status filter of conversations with events this user has not seen


@dataclass(frozen=True)
class LiveState:
    """What a running loop knows that the store may not have yet."""

    status: ConversationStatus
    runtime_status: RuntimeStatus | None = None
    agent_state: AgentState | None = None
    num_connections: int = 0
    status_message: str | None = None
    # cost and tokens after the loop's last model call (written to the store
    # at most every few seconds): rows and answers show these at once
    metrics: dict[str, Any] | None = None
    # the commands of the background processes running in its workspace
    processes: tuple[str, ...] = ()


class LiveLoops(Protocol):
    """Implemented by the loop manager; the service asks it about loops
    running in this process and to stop one before a delete."""

    def live_states(self) -> dict[str, LiveState]: ...

    def live_state(self, conversation_id: str) -> LiveState | None: ...

    async def stop(self, conversation_id: str) -> object: ...


def _runner_is_gone(data_dir: DataDirectory, document: Document) -> bool:
    """True if the document says a loop runs on this host but no process
    holds its loop lock any more (the runner died)."""
    if document.get("runner_host") not in (None, _HOST):
        return False  # another machine sharing the directory: cannot tell
    return runner_pid(data_dir.conversation(document["conversation_id"])) is None


def _encode_page(key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def _decode_page(token: str) -> tuple[str, str]:
    try:
        key = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if isinstance(key, list) and len(key) == 2 and all(isinstance(part, str) for part in key):
            return key[0], key[1]
    except (ValueError, orjson.JSONDecodeError):
        pass
    raise InvalidInput(f"page token {token[:40]!r} is not one this program gave out")


def first_user_message(events: Sequence[EventDict]) -> str | None:
    """The text of the first user message among `events` that has visible
    text (what a derived title is made from), or None."""
    for event in events:
        if event.get("source") == "user" and event.get("action") == "message":
            content = str((event.get("args") or {}).get("content") or event.get("message") or "")
            if derived_title(content) is not None:
                return content
    return None


class ConversationService:
    """Open with `await ConversationService.open(data_dir)`."""

    def __init__(self, data_dir: DataDirectory, store: ConversationStore, user_id: str) -> None:
        self.data_dir = data_dir
        self.store = store
        self.user_id = user_id
        self.settings_store = SettingsStore(data_dir.settings)
        self.loops: LiveLoops | None = None
        self._event_logs: OrderedDict[str, EventLog] = OrderedDict()
        self._search_index: SearchIndex | None = None
        self._latest_events: dict[str, int] | None = None  # conversation -> newest event id
        self._search_index_lock = threading.Lock()
        self._listeners: list[Callable[[str], None]] = []
        self._redactor: tuple[object, Redactor] | None = None
        # row(): conversation -> (the store's revision, the live state, its newest event, the row made of them)
        self._rows: dict[str, tuple[object, LiveState | None, int | None, ConversationInfo]] = {}

    @classmethod
    async def open(cls, root: Path, user_id: str | None = None) -> ConversationService:
        """Open (creating if needed) the data directory at `root`. The owner of
        new conversations is `user_id`, else $CONVTUI_USER, else the OS user."""
        data_dir = DataDirectory(root)
        store = await asyncio.to_thread(ConversationStore, data_dir.store)
        owner = user_id or os.environ.get("CONVTUI_USER") or _os_user()
        return cls(data_dir, store, owner)

    def close(self) -> None:
        self.store.close()
        if self._search_index is not None:
            self._search_index.close()

    # -- the search index (what conversations did) ---------------------------------

    @property
    def search_index(self) -> SearchIndex:
        """Opened on first use (blocking: call from a worker thread)."""
        with self._search_index_lock:
            if self._search_index is None:
                self._search_index = SearchIndex(self.data_dir.root / INDEX_FILE)
            return self._search_index

    # -- while you were away ---------------------------------------------------------

    def _user_file(self) -> Path:
        name = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in self.user_id)[:64] or "_"
        return self.data_dir.root / "users" / f"{name}.json"

    def ui_closed_at(self) -> datetime | None:
        """When this OS user last closed a UI on this data directory (None: never)."""
        try:
            return datetime.fromisoformat(orjson.loads(self._user_file().read_bytes())["ui_closed_at"])
        except (OSError, ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return None

    def note_ui_closed(self) -> None:
        path = self._user_file()
        try:
            path.parent.mkdir(exist_ok=True)
            atomic_write(path, orjson.dumps({"ui_closed_at": format_timestamp(utc_now())}))
        except (OSError, StorageError) as error:
            log.warning("could not note when the UI closed: %s", error)

    async def digest(self, since: datetime) -> list[DigestEntry]:
        """What happened in each conversation since `since`, the most recent
        activity first (at most DIGEST_MAX)."""

        def run() -> list[DigestEntry]:
            self.store.refresh()
            self.latest_events()
            ids = self.store.matching_ids(ConversationFilter(updated_since=format_timestamp(since)))[:DIGEST_MAX]
            entries = []
            for conversation_id in ids:
                info = self.row(conversation_id)
                if info is None:
                    continue
                events = self._event_log(conversation_id).search_events()
                entry = digest_entry(info, events, since, inbox_kind(info))
                if entry is not None:
                    entries.append(entry)
            return entries

        return await asyncio.to_thread(run)

    def latest_events(self) -> dict[str, int]:
        """Each conversation's newest event id, as far as this process knows
        (kept current by this process's appends and `note_event`; read again
        by `reload_latest_events`). Blocking the first time."""
        if self._latest_events is None:
            self._latest_events = self.search_index.latest_event_ids()
        return self._latest_events

    def reload_latest_events(self) -> None:
        """Take in other processes' appends. Blocking."""
        self._latest_events = self.search_index.latest_event_ids()

    def refresh_latest_events(self) -> None:
        """reload_latest_events once they were read (latest_events reads
        them when first wanted): a refresh before that, as the UI's before
        its first paint, does not read the whole index. Blocking."""
        if self._latest_events is not None:
            self.reload_latest_events()

    def note_event(self, conversation_id: str, event_id: int) -> None:
        """An event another process appended (the server's stream)."""
        latest = self._latest_events
        if latest is not None and event_id > latest.get(conversation_id, -1):
            latest[conversation_id] = event_id

    def _unread(self, document: Document) -> bool:
        seen = (document.get("seen") or {}).get(self.user_id)
        latest = self._latest_events
        return seen is not None and latest is not None and latest.get(document["conversation_id"], -1) > seen

    async def mark_seen(self, conversation_id: str, event_id: int) -> ConversationInfo:
        """This OS user has seen the conversation's events up to `event_id`
        (never moves back; its place in the list stays). Raises NotFound."""
        if not isinstance(event_id, int) or isinstance(event_id, bool) or event_id < -1:
            raise InvalidInput(f"an event id is a number 0 or more, got {event_id!r}")

        def change(document: Document) -> Document | None:
            seen = dict(document.get("seen") or {})
            if seen.get(self.user_id, -1) >= event_id:
                return None
            seen[self.user_id] = event_id
            return {**document, "seen": seen}

        return await self._update(conversation_id, change)

    def _index_events(self, conversation_id: str, events: list[EventDict]) -> None:
        if events:
            self.note_event(conversation_id, events[-1]["id"])
        try:
            self.search_index.add(conversation_id, events)
        except sqlite3.Error as error:  # the events are stored; `doctor --repair` rebuilds the index
            log.warning("the search index missed events of %s: %s", conversation_id[:8], error)

    def fill_search_index(self) -> int:
        """Index every conversation's events the index lacks, once per index
        (an index made after its conversations, e.g. by an upgrade); then
        appends keep it current. How many events were added. Blocking."""
        index = self.search_index
        if index.is_built():
            return 0
        logs = (
            (document["conversation_id"], EventLog(self.data_dir.conversation(document["conversation_id"])))
            for document in self.store.iter_documents()
        )
        return index.fill(logs)

    def _with_events_found(self, query: ConversationFilter) -> ConversationFilter:
        """`query` with what the conversations did (event_words, event_path,
        event_command) turned into the ids the search index finds."""
        if not query.searches_events:
            return query
        within = query.within
        try:
            if query.event_words is not None or query.event_path is not None or query.event_command is not None:
                found = frozenset(self.search_index.matching(query.event_words, query.event_path, query.event_command))
                within = found if within is None else within & found
            if query.unread:
                self.latest_events()
                unread = frozenset(d["conversation_id"] for d in self.store.iter_documents() if self._unread(d))
                within = unread if within is None else within & unread
        except sqlite3.Error as error:
            raise StorageError(f"the search index cannot be read ({error}): convtui doctor --repair rebuilds it") from None
        return dataclasses.replace(query, within=within, unread=False, event_words=None, event_path=None, event_command=None)

    # -- change signals ----------------------------------------------------------

    def add_change_listener(self, listener: Callable[[str], None]) -> None:
        """Call `listener(conversation_id)` after this process changes a
        conversation's metadata (rename, archive, delete...)."""
        self._listeners.append(listener)

    def remove_change_listener(self, listener: Callable[[str], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _changed(self, conversation_id: str) -> None:
        for listener in list(self._listeners):
            try:
                listener(conversation_id)
            except Exception:  # a broken listener must not break a write
                log.exception("change listener failed")

    def data_version(self) -> int:
        """Changes whenever any process changes any metadata: poll it (it is
        one 8-byte read) and call `refresh()` when it moved."""
        return self.store.version()

    async def refresh(self) -> bool:
        """Take in other processes' changes. True if anything changed."""
        return await asyncio.to_thread(self.store.refresh)

    # -- ids -----------------------------------------------------------------------

    def resolve_id(self, id_or_prefix: str) -> str:
        """The full id for an id or a unique prefix of one. Raises NotFound,
        AmbiguousId or InvalidInput."""
        candidate = id_prefix(id_or_prefix)
        self.store.refresh()
        matches = self.store.ids_with_prefix(candidate, limit=3)
        if not matches:
            raise NotFound(f"no conversation with id {candidate}")
        if len(matches) > 1:
            raise AmbiguousId(
                f"id prefix {candidate} matches several conversations "
                f"({', '.join(m[:8] for m in matches[:2])}, ...); give more characters"
            )
        return matches[0]

    async def resolve(self, id_or_prefix: str) -> str:
        return await asyncio.to_thread(self.resolve_id, id_or_prefix)

    # -- reading -------------------------------------------------------------------

    async def loops_left_running(self) -> list[str]:
        """Conversations recorded as running whose runner on this host is
        gone (killed before it could record STOPPED)."""

        def run() -> list[str]:
            self.store.refresh()
            return [
                document["conversation_id"]
                for document in self.store.active_documents()
                if _runner_is_gone(self.data_dir, document)  # False for another host's loops
            ]

        return await asyncio.to_thread(run)

    def _live_states(self) -> dict[str, LiveState]:
        return self.loops.live_states() if self.loops is not None else {}

    def _live_state(self, conversation_id: str) -> LiveState | None:
        return self.loops.live_state(conversation_id) if self.loops is not None else None

    def _status_overrides(self, live: dict[str, LiveState], fine: bool = False) -> dict[str, str]:
        """Statuses that differ from the stored ones: loops running here, and
        loops recorded as running by a process that is gone (STOPPED).
        `fine`: as display_state tells them (WAITING, FINISHED...), for the
        filters that look at it; else as display_status."""
        shown = display_state if fine else display_status
        overrides: dict[str, str] = {}
        for conversation_id, state in live.items():
            if not fine:
                overrides[conversation_id] = state.status.value
                continue
            document = self.store.peek(conversation_id) or {}
            agent_state = state.agent_state.value if state.agent_state is not None else None
            overrides[conversation_id] = shown({**document, "status": state.status.value, "agent_state": agent_state})
        for document in self.store.active_documents():
            conversation_id = document["conversation_id"]
            if conversation_id not in overrides and _runner_is_gone(self.data_dir, document):
                stopped = {**document, "status": ConversationStatus.STOPPED.value}
                overrides[conversation_id] = shown(stopped)
        return overrides

    def _info(self, document: Document, live: dict[str, LiveState] | LiveState | None) -> ConversationInfo:
        state = live.get(document["conversation_id"]) if isinstance(live, dict) else live
        info = dict(document)
        info["title"] = info.get("title") or default_title(document["conversation_id"])
        info["unread"] = self._unread(document)
        if state is not None:
            info.update(
                status=state.status,
                runtime_status=state.runtime_status,
                agent_state=state.agent_state,
                num_connections=state.num_connections,
                status_message=state.status_message,
            )
            if state.metrics:
                info.update(state.metrics)
        else:
            if document.get("status") in ("STARTING", "RUNNING") and _runner_is_gone(self.data_dir, document):
                info.update(status="STOPPED", runtime_status=RuntimeStatus.STOPPED, agent_state=AgentState.STOPPED)
            info["status"] = display_status(info)
        return ConversationInfo.model_validate(info)

    async def search(
        self,
        page_id: str | None = None,
        limit: int = PAGE_SIZE_DEFAULT,
        selected_repository: str | None = None,
        conversation_trigger: ConversationTrigger | str | None = None,
        status: ConversationStatus | str | None = None,
        query: str | None = None,
        archived: bool | None = False,
        max_age: timedelta | None = None,
        event_words: str | None = None,
        event_path: str | None = None,
        event_command: str | None = None,
    ) -> ConversationInfoResultSet:
        """A page of conversations, newest activity first. Filters apply
        before paging, so every page but the last is full and `next_page_id`
        is None exactly on the last. `max_age` limits by last activity
        (default: the conversation_max_age_days setting; pass
        `timedelta.max` for all). `archived`: False hides archived ones,
        True shows only them, None shows both. `event_words`, `event_path`,
        `event_command`: what the conversation did (see ConversationFilter)."""
        if not isinstance(limit, int) or not 1 <= limit <= PAGE_SIZE_MAX:
            raise InvalidInput(f"limit must be 1-{PAGE_SIZE_MAX}, got {limit}")
        after = _decode_page(page_id) if page_id else None
        trigger = enum_value(ConversationTrigger, conversation_trigger, "trigger")
        unread = status is not None and str(status).strip().lower() == UNREAD
        wanted_status = None if unread else status_value(status)

        def run() -> ConversationInfoResultSet:
            # One thread hop for the settings and the search (the server's
            # first page is a round trip or two more than a no-op, no more).
            age = max_age
            if age is None:
                age = timedelta(days=self.settings_store.load().conversation_max_age_days)
            conversation_filter = ConversationFilter(
                repository=selected_repository,
                trigger=trigger,
                status=wanted_status,
                text=query or None,
                archived=archived,
                updated_since=None if age == timedelta.max else format_timestamp(utc_now() - age),
                unread=unread,
                event_words=event_words,
                event_path=event_path,
                event_command=event_command,
            )
            self.store.refresh()
            conversation_filter = self._with_events_found(conversation_filter)
            live = self._live_states()
            overrides = self._status_overrides(live, fine=wanted_status in STATE_FILTERS) if wanted_status else {}
            documents, next_key = self.store.search(conversation_filter, limit, after, overrides)
            return ConversationInfoResultSet(
                results=[self._info(document, live) for document in documents],
                next_page_id=_encode_page(next_key) if next_key else None,
            )

        return await asyncio.to_thread(run)

    async def list_ids(self, query: ConversationFilter, sort: str = "updated", reverse: bool = False) -> tuple[str, ...]:
        """Every matching conversation id in display order (no paging, no
        max age): what a list view holds. See ConversationStore.matching_ids;
        `reverse` turns the order around (oldest first...)."""

        def run() -> tuple[str, ...]:
            self.store.refresh()
            found = self._with_events_found(query)
            ids = self.store.matching_ids(found, self._overrides_for(found, sort), sort)
            return ids[::-1] if reverse else ids

        return await asyncio.to_thread(run)

    def list_ids_now(
        self, query: ConversationFilter, sort: str = "updated", reverse: bool = False
    ) -> tuple[str, ...] | None:
        """list_ids from memory, at once, for a keystroke: without looking for
        other processes' changes (the UI's poll does) and None when that
        cannot be quick (see ConversationStore.matching_ids_now; a search of
        what conversations did never is): then call list_ids."""
        if query.searches_events:
            return None
        ids = self.store.matching_ids_now(query, self._overrides_for(query, sort), sort)
        return ids[::-1] if reverse and ids is not None else ids

    def _overrides_for(self, query: ConversationFilter, sort: str) -> dict[str, str] | None:
        """The live statuses, only when the filter or the order looks at
        statuses (finding them probes the loop lock of every active row)."""
        if query.status is None and sort != "status":
            return None
        return self._status_overrides(self._live_states(), fine=query.status in STATE_FILTERS)

    def position_in(
        self, ids: Sequence[str], conversation_id: str, sort: str = "updated", reverse: bool = False
    ) -> int | None:
        """Where a conversation is in an answer of list_ids (None: not there)."""
        return self.store.locate(ids, conversation_id, sort, reverse)


    def row(self, conversation_id: str) -> ConversationInfo | None:
        """One conversation from memory, joined with its live loop: cheap
        enough to call for each visible row at each paint (a row is made
        again only when its document or live state changed). None if gone."""
        revision = self.store.revision(conversation_id)
        if revision is None:
            return None
        live = self._live_state(conversation_id)
        newest = self._latest_events.get(conversation_id) if self._latest_events is not None else None  # (unread)
        made = self._rows.get(conversation_id)
        if made is not None and made[0] is revision and made[1] is live and made[2] == newest:
            return made[3]
        document = self.store.peek(conversation_id)
        if document is None:
            return None
        info = self._info(document, live)
        # Stored as running with no loop here: whether its runner is gone is
        # asked at each paint (another process may end meanwhile).
        if live is not None or document.get("status") not in _ACTIVE_STATUSES:
            if len(self._rows) >= _ROWS_KEPT:
                self._rows.clear()
            self._rows[conversation_id] = (revision, live, newest, info)
        return info

    async def get(self, conversation_id: str) -> ConversationInfo:
        """One conversation by id or unique prefix. Raises NotFound."""

        def run() -> ConversationInfo:
            full_id = self.resolve_id(conversation_id)
            document = self.store.get(full_id)
            if document is None:
                raise NotFound(f"no conversation with id {full_id}")
            return self._info(document, self._live_state(full_id))

        return await asyncio.to_thread(run)

    async def metadata(self, conversation_id: str) -> ConversationMetadata:
        """The stored metadata (no live state joined). Raises NotFound."""
        full_id = await self.resolve(conversation_id)
        document = self.store.get(full_id)
        if document is None:
            raise NotFound(f"no conversation with id {full_id}")
        return ConversationMetadata.model_validate(document)

    # -- creating ------------------------------------------------------------------

    async def new_conversation(
        self, request: NewConversationRequest | dict[str, Any], user_id: str | None = None
    ) -> ConversationResponse:
        """Create a conversation (not started). Raises InvalidInput naming the
        field at fault; nothing is stored then."""
        if not isinstance(request, NewConversationRequest):
            try:
                request = NewConversationRequest.model_validate(request)
            except ValidationError as error:
                raise InvalidInput(first_validation_error(error)) from None
        replay = None
        if request.replay_json is not None:
            try:
                replay = parse_trajectory(request.replay_json)
            except InvalidInput as error:
                raise InvalidInput(f"replay_json: {error}") from None

        def run() -> ConversationResponse:
            conversation_id = uuid.uuid4().hex
            now = utc_now()
            # A replayed trajectory's first user message titles it as well.
            first_message = request.initial_user_msg or first_user_message(replay or [])
            first_title = self._derived_title(first_message) if first_message else None
            metadata = ConversationMetadata(
                conversation_id=conversation_id,
                title=first_title or default_title(conversation_id),
                title_derived=first_title is not None,
                user_id=user_id or self.user_id,
                selected_repository=request.repository,
                selected_branch=request.selected_branch,
                git_provider=request.git_provider,
                trigger=request.trigger,
                created_at=now,
                last_updated_at=now,
                seen={user_id or self.user_id: 0 if request.initial_user_msg else -1},  # their own message
            )
            directory = self.data_dir.conversation(conversation_id)
            try:
                directory.mkdir(parents=True)
            except OSError as error:
                raise StorageError(describe_os_error(error, "create")) from error
            try:
                init = request.model_dump(
                    mode="json",
                    exclude_none=True,
                    include={"conversation_instructions", "image_urls", "suggested_task", "create_microagent"},
                )
                redact = self.redactor().json
                if init:
                    atomic_write(directory / "init.json", orjson.dumps(redact(init)))
                if replay is not None:
                    atomic_write(directory / "replay.json", to_json(redact(replay)))
                if request.initial_user_msg:
                    self._event_log(conversation_id).append([user_message(request.initial_user_msg, request.image_urls)])
                # Metadata last: a crash before it leaves only a directory that
                # `convtui doctor` reports, never a conversation without its files.
                self.store.insert(metadata.to_document())
            except BaseException:
                # Refused: leave nothing behind that doctor would revive.
                self._event_logs.pop(conversation_id, None)
                try:
                    remove_conversation_directory(directory)
                except StorageError:
                    pass
                raise
            return ConversationResponse(
                conversation_id=conversation_id, conversation_status=ConversationStatus.STOPPED
            )

        response = await asyncio.to_thread(run)
        self._changed(response.conversation_id)
        return response

    async def import_trajectory(self, raw: bytes | str, user_id: str | None = None) -> ConversationResponse:
        """Create a conversation holding the events of an OpenHands trajectory
        (ids and contents kept). The trajectory is also kept as its replay
        script, so the conversation can be replayed."""
        events = parse_trajectory(raw)
        response = await self.new_conversation(
            NewConversationRequest(replay_json=to_json(events).decode()), user_id=user_id
        )
        conversation_id = response.conversation_id
        try:
            await asyncio.to_thread(self._event_log(conversation_id).append, events, True)
        except Exception:
            await self.delete(conversation_id)
            raise
        if not await self._title_from_first_message(conversation_id, events):
            await self.touch(conversation_id)
        await self.mark_seen(conversation_id, events[-1]["id"])  # what one imports, one has seen
        return response

    # -- changing ------------------------------------------------------------------

    async def update_metadata(self, conversation_id: str, **changes: Any) -> ConversationInfo:
        """Validate and store changes to a conversation's metadata, e.g. from
        the loop manager: status=..., accumulated_cost=.... Raises NotFound or
        InvalidInput; `last_updated_at` moves to now unless given."""

        def change(document: Document) -> Document:
            merged = {**document, "last_updated_at": utc_now(), **changes}
            try:
                return ConversationMetadata.model_validate(merged).to_document()
            except ValidationError as error:
                raise InvalidInput(first_validation_error(error)) from None

        return await self._update(conversation_id, change)

    async def _update(self, conversation_id: str, change: Callable[[Document], Document | None]) -> ConversationInfo:
        def run() -> ConversationInfo:
            # A full id needs no lookup: the update itself finds it or not.
            full_id = conversation_id if CONVERSATION_ID_PATTERN.match(conversation_id) else self.resolve_id(conversation_id)
            stored = self.store.update(full_id, change)
            if stored is None:
                self.store.refresh()  # gone meanwhile (another process, a deleted directory)?
                document = self.store.get(full_id)
                if document is None:
                    raise NotFound(f"no conversation with id {full_id}")
                stored = document
            return self._info(stored, self._live_state(full_id))

        info = await asyncio.to_thread(run)
        self._changed(info.conversation_id)
        return info

    async def set_title_if_default(self, conversation_id: str, title: str) -> bool:
        """Set an automatic title, only while the title is still the default
        one (a person's rename wins). False if it was not set."""
        try:
            clean = validate_title(title)
        except ValueError:
            return False
        applied = False

        def change(document: Document) -> Document | None:
            nonlocal applied
            if not _title_is_automatic(document):
                return None
            applied = True
            return {**document, "title": clean, "title_derived": False}

        await self._update(conversation_id, change)
        return applied

    def _derived_title(self, message: str) -> str | None:
        """derived_title, with every key the redactor knows (the configured
        one, the providers' in the environment) never copied into the title
        that lists and exports show. Redacted before the cut: no half key
        either. Blocking."""
        return derived_title(self.redactor()(message))

    async def _title_from_first_message(self, conversation_id: str, events: Sequence[EventDict]) -> bool:
        """Title a conversation still under its default title after the
        start of its first user message in `events`. True if it did."""
        document = self.store.peek(conversation_id)
        if document is None or document.get("title") not in (None, "", default_title(conversation_id)):
            return False
        content = first_user_message(events)
        title = await asyncio.to_thread(self._derived_title, content) if content else None
        if title is None:
            return False

        def change(document: Document) -> Document | None:
            if document.get("title") not in (None, "", default_title(document["conversation_id"])):
                return None  # renamed or titled meanwhile
            return {**document, "title": title, "title_derived": True, "last_updated_at": format_timestamp(utc_now())}

        await self._update(conversation_id, change)
        return True

    async def touch(self, conversation_id: str) -> ConversationInfo:
        return await self.update_metadata(conversation_id)

    async def rename(self, conversation_id: str, title: str, user_id: str | None = None) -> ConversationInfo:
        """Set the title: 1-200 characters after stripping, no control
        characters, only by its owner. Raises InvalidInput, NotFound or
        PermissionDenied; nothing is stored then."""
        try:
            clean = validate_title(title)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        requester = user_id or self.user_id

        def change(document: Document) -> Document:
            owner = document.get("user_id")
            if owner and owner != requester:
                raise PermissionDenied(
                    f"conversation {document['conversation_id'][:8]} belongs to {owner}; only its owner may rename it"
                )
            if not owner and requester != (data_owner := directory_owner(self.data_dir.root)):
                raise PermissionDenied(
                    f"conversation {document['conversation_id'][:8]} has no known owner (doctor --repair re-created it); "
                    f"only the data directory's owner ({data_owner or 'unknown'}) may rename it"
                )
            return {**document, "title": clean, "title_derived": False, "last_updated_at": format_timestamp(utc_now())}

        return await self._update(conversation_id, change)

    async def set_archived(self, conversation_id: str, archived: bool) -> ConversationInfo:
        """Archive (hide from the default list, keep on disk) or unarchive.
        See change_archived for a conversation whose loop runs."""
        info, _ = await self.change_archived(conversation_id, archived)
        return info

    async def change_archived(self, conversation_id: str, archived: bool) -> tuple[ConversationInfo, str | None]:
        """Archive or unarchive. An archived conversation never hides a
        running loop (one that might be waiting for an approval nobody sees):
        archiving one whose loop runs stops the loop first, here or in another
        process of this machine (through the loop manager), and the second
        value says so ("stopped ..."; None when no loop ran). Refused with
        InvalidInput when the loop cannot be stopped from here (no loop
        manager, or it runs on another host); nothing changes then."""
        full_id = await self.resolve(conversation_id)
        stopped = None
        if archived:
            stopped = await self._stop_loop_before(full_id, "archive")

        def change(document: Document) -> Document | None:
            if bool(document.get("archived")) == archived:
                return None
            return {**document, "archived": archived}

        return await self._update(full_id, change), stopped

    async def _stop_loop_before(self, full_id: str, verb: str) -> str | None:
        """Stop the conversation's loop, here or in another process of this
        host, before it is archived or trashed: "its loop was stopped first"
        or None (no loop ran). Raises InvalidInput when it cannot be."""
        live = self._live_state(full_id)
        document = await asyncio.to_thread(self.store.get, full_id)
        if document is None:
            raise NotFound(f"no conversation with id {full_id}")
        here = live is not None and live.status.value in _ACTIVE_STATUSES
        elsewhere = (
            not here
            and document.get("status") in _ACTIVE_STATUSES
            and not _runner_is_gone(self.data_dir, document)
        )
        if not here and not elsewhere:
            return None
        host = document.get("runner_host")
        if self.loops is None or (elsewhere and host not in (None, _HOST)):
            where = f" on host {host}" if host not in (None, _HOST) else ""
            raise InvalidInput(
                f"conversation {full_id[:8]} is running{where}; stop its loop first "
                f"(x in the list, or convtui stop {full_id[:8]}), then {verb} it"
            )
        result = await self.loops.stop(full_id)
        detail = str(getattr(result, "message", "")).removeprefix("stopped").strip()
        return "its loop was stopped first" + (f" {detail}" if detail else "")

    async def dismiss(self, conversation_id: str) -> ConversationInfo:
        """Take a conversation whose loop ended out of the inbox: nobody
        has to decide anything about it any more (its place in the list
        stays). Raises NotFound."""

        def change(document: Document) -> Document | None:
            return {**document, "attention": None} if document.get("attention") else None

        return await self._update(conversation_id, change)

    async def archive(self, conversation_id: str) -> ConversationInfo:
        return await self.set_archived(conversation_id, True)

    async def unarchive(self, conversation_id: str) -> ConversationInfo:
        return await self.set_archived(conversation_id, False)

    async def delete(self, conversation_id: str) -> bool:
        """Stop the loop if it runs (here or in another process; refused when
        it cannot be), then remove the metadata, events and
        workspace of this conversation and nothing else. False if there was
        no such conversation."""
        try:
            full_id = await self.resolve(conversation_id)
        except NotFound:
            return False
        await self._stop_loop_before(full_id, "delete")

        def run() -> bool:
            removed = self.store.remove(full_id)
            self.search_index.remove(full_id)
            self._event_logs.pop(full_id, None)
            remove_conversation_directory(self.data_dir.conversation(full_id))
            return removed

        removed = await asyncio.to_thread(run)
        self._changed(full_id)
        return removed

    # -- the trash -----------------------------------------------------------------

    async def trash(self, conversation_id: str) -> str:
        """Move a conversation to the trash (what `d` and `convtui trash`
        use): stop its loop if it runs (here or in another process; refused
        when it cannot be), then take it out of the store and
        its directory into `conversations/.trash-<id>/` with its metadata in
        `trashed.json`. `restore` brings it back whole; `empty_trash` deletes
        it for good. Returns the full id. Raises NotFound.

        Crash-safe in this order: the record is written inside the still-live
        directory, the metadata is removed, the directory is renamed. A crash
        after the first step leaves an unused file; after the second, a
        directory holding `trashed.json` without metadata, which `doctor
        --repair` moves on into the trash (never revives)."""
        full_id = await self.resolve(conversation_id)
        await self._stop_loop_before(full_id, "delete")

        def run() -> str:
            document = self.store.get(full_id)
            if document is None:
                raise NotFound(f"no conversation with id {full_id}")
            record = trash_record(document, format_timestamp(utc_now()))
            directory = self.data_dir.conversation(full_id)
            target = trash_directory(directory)
            try:
                if target.exists():  # a trashed copy cut short earlier: this one replaces it
                    remove_conversation_directory(target)
                if directory.is_dir() and not directory.is_symlink():
                    atomic_write(directory / TRASH_RECORD, record)
                    self.store.remove(full_id)
                    os.rename(directory, target)
                else:
                    if directory.is_symlink():
                        directory.unlink()
                    target.mkdir(parents=True)
                    atomic_write(target / TRASH_RECORD, record)
                    self.store.remove(full_id)
            except OSError as error:
                raise StorageError(describe_os_error(error, "move to the trash")) from error
            self._event_logs.pop(full_id, None)
            return full_id

        trashed = await asyncio.to_thread(run)
        self._changed(trashed)
        return trashed

    async def list_trash(self) -> list[TrashedConversation]:
        """What the trash holds, most recently trashed first."""

        def run() -> list[TrashedConversation]:
            conversations = self.data_dir.conversations
            records = [read_trash_record(conversations, conversation_id) for conversation_id in trashed_ids(conversations)]
            return sorted(
                (record for record in records if record is not None),
                key=lambda record: (record.trashed_at, record.conversation_id),
                reverse=True,
            )

        return await asyncio.to_thread(run)

    def _resolve_trashed(self, id_or_prefix: str) -> str:
        candidate = id_prefix(id_or_prefix)
        matches = sorted(i for i in trashed_ids(self.data_dir.conversations) if i.startswith(candidate))
        if not matches:
            raise NotFound(f"no conversation with id {candidate} in the trash")
        if len(matches) > 1:
            raise AmbiguousId(f"id prefix {candidate} matches several conversations in the trash; give more characters")
        return matches[0]

    async def restore(self, conversation_id: str) -> ConversationInfo:
        """Bring a conversation back from the trash as it was (title, flags,
        events, workspace). Raises NotFound, or InvalidInput when one with
        its id exists again. A crash midway leaves it in the trash, or
        restored without the record (both whole)."""

        def run() -> ConversationInfo:
            full_id = self._resolve_trashed(conversation_id)
            record = read_trash_record(self.data_dir.conversations, full_id)
            if record is None:
                raise StorageError(f"the trash record of conversation {full_id[:8]} is missing or damaged")
            self.store.refresh()
            if self.store.get(full_id) is not None:
                raise InvalidInput(f"conversation {full_id[:8]} exists outside the trash; not restored")
            directory = self.data_dir.conversation(full_id)
            try:
                # Renamed back first: a crash before the metadata is stored
                # leaves a directory holding its record, which doctor returns
                # to the trash.
                os.rename(trash_directory(directory), directory)
                self.store.insert(record.document)
                (directory / TRASH_RECORD).unlink(missing_ok=True)
            except OSError as error:
                raise StorageError(describe_os_error(error, "restore")) from error
            return self._info(record.document, self._live_state(full_id))

        info = await asyncio.to_thread(run)
        self._changed(info.conversation_id)
        return info

    async def empty_trash(self, conversation_ids: Sequence[str] | None = None) -> int:
        """Delete trashed conversations for good (all, or those given by id or
        prefix). Returns how many went."""

        def run() -> int:
            targets = trashed_ids(self.data_dir.conversations) if conversation_ids is None else [
                self._resolve_trashed(given) for given in conversation_ids
            ]
            for full_id in targets:
                remove_conversation_directory(trash_directory(self.data_dir.conversation(full_id)))
            return len(targets)

        return await asyncio.to_thread(run)

    async def set_experiment_config(self, conversation_id: str, config: ExperimentConfig | dict[str, Any]) -> bool:
        """Store the experiment config once. A second call returns False and
        changes nothing."""
        if not isinstance(config, ExperimentConfig):
            try:
                config = ExperimentConfig.model_validate(config)
            except ValidationError as error:
                raise InvalidInput(first_validation_error(error)) from None
        full_id = await self.resolve(conversation_id)
        path = self.data_dir.conversation(full_id) / "experiment_config.json"
        return await asyncio.to_thread(create_exclusive, path, config.model_dump_json().encode())

    async def get_experiment_config(self, conversation_id: str) -> ExperimentConfig | None:
        full_id = await self.resolve(conversation_id)
        path = self.data_dir.conversation(full_id) / "experiment_config.json"
        try:
            return ExperimentConfig.model_validate_json(await asyncio.to_thread(path.read_bytes))
        except FileNotFoundError:
            return None

    # -- events --------------------------------------------------------------------

    def _event_log(self, conversation_id: str) -> EventLog:
        log_ = self._event_logs.get(conversation_id)
        if log_ is None:
            log_ = EventLog(
                self.data_dir.conversation(conversation_id),
                redact=self._redact_event,
                appended=partial(self._index_events, conversation_id),
            )
            self._event_logs[conversation_id] = log_
            while len(self._event_logs) > _EVENT_LOG_CACHE:
                self._event_logs.popitem(last=False)
        else:
            self._event_logs.move_to_end(conversation_id)
        return log_

    async def event_log(self, conversation_id: str) -> EventLog:
        """The event log object (blocking methods: use from a worker thread)."""
        return self._event_log(await self.resolve(conversation_id))

    async def search_events(
        self,
        conversation_id: str,
        start_id: int = 0,
        end_id: int | None = None,
        reverse: bool = False,
        filter: EventFilter | None = None,
        limit: int | None = None,
    ) -> list[EventDict]:
        """See EventLog.search_events. Raises NotFound for an unknown id."""
        full_id = await self.resolve(conversation_id)
        event_log = self._event_log(full_id)
        return await asyncio.to_thread(event_log.search_events, start_id, end_id, reverse, filter, limit)

    async def append_events(self, conversation_id: str, events: list[EventDict]) -> list[EventDict]:
        """Append events (ids assigned) durably; returns them as stored."""
        full_id = await self.resolve(conversation_id)
        stored = await asyncio.to_thread(self._event_log(full_id).append, events)
        await self._title_from_first_message(full_id, stored)
        return stored

    # -- export --------------------------------------------------------------------

    async def _redacted_events(self, conversation_id: str) -> list[EventDict]:
        """The events, redacted again with the keys in force now (the log
        may predate the key)."""
        events = await self.search_events(conversation_id)
        return await asyncio.to_thread(self.redactor().json, events)

    async def export_json(self, conversation_id: str) -> bytes:
        """The conversation as an OpenHands trajectory (a JSON list of events
        that OpenHands' event_from_dict reads, older convtui events included)."""
        return to_json([openhands_event(event) for event in await self._redacted_events(conversation_id)])

    async def export_markdown(self, conversation_id: str) -> str:
        info = await self.get(conversation_id)
        return to_markdown(info, await self._redacted_events(info.conversation_id))

    async def export_zip(self, conversation_id: str) -> bytes:
        """The conversation as an OpenHands server exports one: a zip of
        meta.json and one JSON file per event (in the trajectory's shape)."""
        info = await self.get(conversation_id)
        events = [openhands_event(event) for event in await self._redacted_events(info.conversation_id)]
        return await asyncio.to_thread(to_zip, info, events)

    # -- secrets -------------------------------------------------------------------

    def redactor(self) -> Redactor:
        """A Redactor for the keys in force now: the settings' API key and the
        provider keys in the environment. Rebuilt only when the settings file
        or those variables change. Blocking (it may read the settings)."""
        try:
            status = self.settings_store.path.stat()
            file_state: object = (status.st_ino, status.st_mtime_ns, status.st_size)
        except OSError:
            file_state = None
        environment = provider_keys_in_environment()
        state = (file_state, tuple(environment))
        cached = self._redactor
        if cached is not None and cached[0] == state:
            return cached[1]
        try:
            api_key = self.settings_store.load().api_key()
        except ConvtuiError:  # damaged settings: the environment's keys still count
            api_key = None
        redactor = Redactor([api_key, *environment])
        self._redactor = (state, redactor)
        return redactor

    def _redact_event(self, event: EventDict) -> EventDict:
        return self.redactor().json(event)

    # -- settings ------------------------------------------------------------------

    async def load_settings(self) -> Settings:
        return await asyncio.to_thread(self.settings_store.load)

    async def set_setting(self, name: str, raw: str) -> Settings:
        return await asyncio.to_thread(self.settings_store.set, name, raw)

    async def update_settings(self, values: dict[str, Any]) -> Settings:
        return await asyncio.to_thread(self.settings_store.update, values)


def user_message(content: str, image_urls: list[str] | None = None) -> EventDict:
    """A user's message event, as OpenHands writes it."""
    return {
        "source": "user",
        "message": content,
        "action": "message",
        "args": {"content": content, "image_urls": image_urls, "wait_for_response": False},
    }


DELETED_PREFIX = ".deleted-"


def remove_conversation_directory(directory: Path) -> None:
    """Delete one conversation's directory. It is renamed aside first (one
    atomic step), then removed: a crash midway leaves `.deleted-<id>`, which
    `doctor --repair` removes, never a half-deleted conversation that doctor
    would revive. A directory that is itself a symlink is unlinked."""
    try:
        if directory.is_symlink():
            directory.unlink()
            return
        if not directory.exists():
            return
        doomed = directory.with_name(DELETED_PREFIX + directory.name)
        if doomed.exists():  # an earlier deletion of it was cut short
            remove_tree(doomed)
        os.rename(directory, doomed)
        remove_tree(doomed)
    except OSError as error:
        raise StorageError(describe_os_error(error, "delete")) from error


def remove_tree(directory: Path) -> None:
    """Remove a directory and everything in it. Symlinks inside are
    removed, never followed. Raises OSError."""

    def retry_writable(function: Callable[..., Any], path: str, _: object) -> None:
        # A read-only file or directory (e.g. git objects) stops rmtree;
        # make its parent writable and try once more.
        parent = os.path.dirname(path)
        os.chmod(parent, os.stat(parent).st_mode | stat.S_IWUSR | stat.S_IXUSR)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, os.stat(path).st_mode | stat.S_IWUSR | stat.S_IXUSR | stat.S_IRUSR)
        function(path)

    shutil.rmtree(directory, onerror=retry_writable)


def _title_is_automatic(document: Document) -> bool:
    """Whether the title is one a model's title may replace: the default
    one, or one taken from the first message (never a person's)."""
    if document.get("title_derived"):
        return True
    return document.get("title") in (None, "", default_title(document["conversation_id"]))


def status_value(value: Any) -> str | None:
    """A ConversationStatus, or one of the finer filter statuses (waiting,
    finished: see store.display_state)."""
    if value is not None and str(value).strip().upper() in STATE_FILTERS:
        return str(value).strip().upper()
    try:
        return enum_value(ConversationStatus, value, "status")
    except InvalidInput:
        finer = sorted([*(s.lower() for s in STATE_FILTERS), UNREAD])
        allowed = ", ".join([member.name.lower() for member in ConversationStatus] + finer)
        raise InvalidInput(f"status {str(value).strip()!r} is not one of: {allowed}") from None


def enum_value(enum: type, value: Any, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, enum):
        return value.value
    text = str(value).strip()
    for member in enum:
        if text.lower() in (member.value.lower(), member.name.lower()):
            return member.value
    allowed = ", ".join(member.name.lower() for member in enum)
    raise InvalidInput(f"{name} {text!r} is not one of: {allowed}")


def directory_owner(path: Path) -> str | None:
    """The name of the OS user owning `path` (its uid where it has no name);
    None when it cannot be read."""
    try:
        uid = path.stat().st_uid
    except OSError:
        return None
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
