"""The one interface the UI and the CLI use to manage conversations, and its
in-process implementation.

Backend is what the CLI uses and `convtui serve` speaks. UIBackend adds what a
screen reads between two frames without a round trip (the list's rows and
order, which loops run and what awaits approval) and what only a terminal
UI does (test a model, warm the model worker, stop every loop on the way out).

Implementations: LocalBackend (the store read in this process, the loops
run here by a ConversationManager: what `convtui serve` runs and
`--no-server` mode; or, for the UI in server mode, run by the server through
server_loops.ServerLoops) and client.RemoteBackend (a `convtui serve` over
its socket or TCP). Both take an id or a unique prefix wherever an id is
asked for, and raise the ConvtuiError family with one-line messages; one
shared test suite (tests/test_backend_contract.py) runs against both."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from .durable_files import atomic_write
from .errors import ConvtuiError
from .digest import DigestEntry
from .events import EventDict, EventFilter
from .inbox import InboxItem, InboxKind, inbox_item, inbox_kind, oldest_first
from .manager import ConversationManager
from .models import (
    ConversationInfo,
    ConversationInfoResultSet,
    ConversationResponse,
    ConversationStatus,
    ExperimentConfig,
    NewConversationRequest,
)
from .remotes import Remote, RemotesStore
from .service import ConversationService
from .sandbox import SandboxPolicy, SandboxStatus
from .sandbox import status as sandbox_status
from .settings import Settings
from .store import WAITING, ConversationFilter
from .trash import TrashedConversation
from .update_journal import StreamReset, UpdateJournal
from .updates import EventAdded, LoopUpdate, Subscriber, TitleChanged


LATEST_EVENTS_SECONDS = 5.0  # how often the UI reads other processes' newest events again
INBOX_EVENTS_LOOKED_AT = 20  # the newest events searched for the agent's last words


class Backend(Protocol):
    async def resolve(self, id_or_prefix: str) -> str: ...

    async def search(
        self,
        page_id: str | None = None,
        limit: int = 20,
        selected_repository: str | None = None,
        conversation_trigger: str | None = None,
        status: str | None = None,
        query: str | None = None,
        archived: bool | None = False,
        all_ages: bool = False,
        event_words: str | None = None,
        event_path: str | None = None,
        event_command: str | None = None,
    ) -> ConversationInfoResultSet: ...

    async def get(self, conversation_id: str) -> ConversationInfo: ...

    async def new_conversation(self, request: NewConversationRequest) -> ConversationResponse: ...

    async def rename(self, conversation_id: str, title: str) -> ConversationInfo: ...

    async def delete(self, conversation_id: str) -> bool: ...

    async def change_archived(self, conversation_id: str, archived: bool) -> tuple[ConversationInfo, str | None]: ...

    async def trash(self, conversation_id: str) -> str: ...

    async def list_trash(self) -> list[TrashedConversation]:
        """What the trash holds, most recently trashed first."""
        ...

    async def restore(self, conversation_id: str) -> ConversationInfo:
        """Bring a conversation back from the trash (an id or prefix of a trashed one)."""
        ...

    async def empty_trash(self, conversation_ids: Sequence[str] | None = None) -> int:
        """Delete trashed conversations for good (all, or those given); how many went."""
        ...

    async def import_trajectory(self, raw: bytes) -> ConversationResponse: ...

    async def workspace(self, conversation_id: str) -> str:
        """The path of the conversation's workspace (on the server's machine)."""
        ...

    async def set_experiment_config(self, conversation_id: str, config: ExperimentConfig | dict[str, Any]) -> bool: ...

    async def sandbox_status(self) -> SandboxStatus:
        """Whether commands started now run sandboxed (where the loops run)."""
        ...

    async def start(self, conversation_id: str, confirm: bool | None = None, until_idle: bool = False) -> ConversationStatus: ...

    async def stop(self, conversation_id: str) -> ConversationResponse: ...

    async def send_message(self, conversation_id: str, text: str) -> EventDict: ...

    async def pending_action(self, conversation_id: str) -> EventDict | None: ...

    async def processes(self, conversation_id: str) -> list[str]:
        """The commands of the background processes running in the
        conversation's workspace, oldest first (none when its loop is not running)."""
        ...

    async def stop_processes(self, conversation_id: str) -> int:
        """Stop those background processes (the loop runs on); how many ran."""
        ...

    async def pending_diff(self, conversation_id: str) -> list[str] | None:
        """The unified diff the file write awaiting approval would make (None:
        no file write awaits). Raises ConvtuiError when it cannot be made."""
        ...

    async def approve(self, conversation_id: str, always: bool = False) -> None: ...

    async def reject(self, conversation_id: str, reason: str | None = None) -> None:
        """Reject the action awaiting approval; the agent reads `reason` with it."""
        ...

    async def inbox(self) -> list[InboxItem]:
        """Every conversation waiting for a person, oldest wait first, with
        what it waits on (see inbox.py)."""
        ...

    async def dismiss(self, conversation_id: str) -> ConversationInfo:
        """Take a conversation whose loop ended out of the inbox. Raises NotFound."""
        ...

    async def mark_seen(self, conversation_id: str, event_id: int) -> ConversationInfo:
        """This OS user has seen the conversation's events up to `event_id`
        (its newer events are unread). Raises NotFound, InvalidInput."""
        ...

    async def set_always_approve(self, conversation_id: str, on: bool) -> ConversationInfo: ...

    async def search_events(
        self,
        conversation_id: str,
        start_id: int = 0,
        end_id: int | None = None,
        reverse: bool = False,
        filter: EventFilter | None = None,
        limit: int | None = None,
    ) -> list[EventDict]: ...

    async def remember_prompt(self, conversation_id: str, event_id: int) -> str: ...

    async def export_json(self, conversation_id: str) -> bytes: ...

    async def export_markdown(self, conversation_id: str) -> str: ...

    async def export_zip(self, conversation_id: str) -> bytes:
        """A zip in the layout of an OpenHands server's export (meta.json, one
        file per event); an OpenHands server's is its own."""
        ...

    async def load_settings(self) -> Settings:
        """The settings in force; over a server the API key is masked."""
        ...

    async def update_settings(self, values: dict[str, Any]) -> Settings: ...

    async def settings_overrides(self) -> dict[str, str]:
        """Setting name -> the environment variable that overrides it where the loops run."""
        ...

    async def position(self) -> str:
        """Where the live stream is now: pass it to `updates` to miss nothing
        that happens from here on."""
        ...

    def updates(self, position: str | None = None) -> AsyncIterator[LoopUpdate | StreamReset]:
        """Every update after `position` (None: from when iteration starts)."""
        ...

    async def close(self) -> None: ...

    async def stop_explained(self, conversation_id: str) -> ConversationResponse:
        """Like `stop`, the message in a person's words where they say more
        than the reference's (which other process ran the loop)."""
        ...

    async def wait(self, conversation_id: str) -> None:
        """Until this process's loop of the conversation (a full id) has
        recorded how it ended: closing the backend would stop it first."""
        ...

    async def watch_text(self, conversation_id: str) -> None:
        """Someone shows this conversation (a full id): stream its replies
        (TextStreamed) for the next minute; ask again to go on. Replies of
        conversations nobody watches are made whole, as cheaper calls."""
        ...


class UIBackend(Backend, Protocol):
    """A Backend as a terminal UI holds it: what a screen reads without
    waiting is kept current by the backend (`subscribe` says when a loop
    changed; `data_version` when another process changed the store)."""

    @property
    def outlives_the_ui(self) -> bool:
        """True when the loops go on after the UI quits (they run in a server)."""
        ...

    @property
    def has_trash(self) -> bool:
        """True when a delete moves to a trash (False: an OpenHands server deletes for good)."""
        ...

    def list_note(self) -> str | None:
        """What the list's status line adds (a remote: how much is loaded, and trouble reaching it)."""
        ...

    def more_to_load(self) -> bool:
        """True when a remote server holds more rows than are loaded, and none are loading."""
        ...

    def load_more(self) -> int:
        """Loads the next rows in the background: how many (at most; 0 when there are none)."""
        ...

    @property
    def remote_name(self) -> str | None:
        """The OpenHands server's name (`--remote NAME`); None for this machine's conversations."""
        ...

    async def connect(self) -> None:
        """Reach whatever runs the loops; raises ConvtuiError when nothing can."""
        ...

    def row(self, conversation_id: str) -> ConversationInfo | None: ...

    def list_ids_now(self, query: ConversationFilter, sort: str, reverse: bool) -> Sequence[str] | None:
        """The ids in display order from memory, at once; None when that
        cannot be quick (then await list_ids)."""
        ...

    async def list_ids(self, query: ConversationFilter, sort: str, reverse: bool) -> Sequence[str]: ...

    def position_in(self, ids: Sequence[str], conversation_id: str, sort: str, reverse: bool) -> int | None: ...

    def total(self) -> int:
        """How many conversations there are (archived and old ones too)."""
        ...

    def data_version(self) -> int: ...

    async def refresh(self) -> None:
        """Take in what other processes changed."""
        ...

    async def warm(self) -> None:
        """Build the search columns now, so the first filter does not pay for
        it, and keep the store's snapshot for the next open."""
        ...

    def workspace_path(self, conversation_id: str) -> Path: ...

    def is_running(self, conversation_id: str) -> bool: ...

    def running_ids(self) -> list[str]: ...

    def pending_action_now(self, conversation_id: str) -> EventDict | None: ...

    def processes_now(self, conversation_id: str) -> tuple[str, ...]:
        """The background processes' commands, from memory."""
        ...

    def waiting_count_now(self) -> int | None:
        """How many conversations the inbox holds, from memory (None: that
        cannot be quick now; ask again later)."""
        ...

    def ui_closed_at(self) -> datetime | None:
        """When this OS user last closed a UI here (None: never)."""
        ...

    def note_ui_closed(self) -> None: ...

    async def digest(self, since: datetime) -> list[DigestEntry]:
        """What happened in each conversation since `since` (see digest.py)."""
        ...

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` on this event loop with every loop update; returns the unsubscribe."""
        ...

    async def stop_all(self) -> int:
        """Stop every loop; how many were running."""
        ...

    async def test_model(self, values: dict[str, Any]) -> str:
        """One tiny model call with the settings as edited (not saved); what it answered."""
        ...

    async def warm_model(self) -> None:
        """With a model configured, start the model worker now (its first call then does not wait)."""
        ...

    async def remotes(self) -> list[Remote]:
        """The OpenHands servers added with `convtui remote add`."""
        ...

    async def test_remote(self, name: str) -> str:
        """Reach one with its key; what it answered (raises ConvtuiError)."""
        ...


def save_file(path: Path, data: bytes) -> None:
    """Write an export where the user asked (whole or not at all)."""
    atomic_write(path, data)


# The reference's answers to a stop.
STOPPED = "Conversation stopped successfully"
NOT_RUNNING = "Conversation was not running"


def stop_response(conversation_id: str, was_running: bool, status: ConversationStatus) -> ConversationResponse:
    """The reference's answer to a stop."""
    message = STOPPED if was_running else NOT_RUNNING
    return ConversationResponse(status="ok", conversation_id=conversation_id, message=message, conversation_status=status)


class LocalBackend:
    """The conversations of a data directory read in this process, with their
    loops run by `manager`: here (a ConversationManager), or in the server
    (a server_loops.ServerLoops, for a UI in server mode)."""

    def __init__(self, service: ConversationService, manager: ConversationManager | Any) -> None:
        self.service = service
        self.manager = manager
        self._journal: UpdateJournal | None = None
        self._latest_read_at = float("-inf")
        manager.subscribe(self._note_event)

    def _note_event(self, update: LoopUpdate) -> None:
        """The server's appends reach this process's idea of the newest events (unread rows)."""
        if isinstance(update, EventAdded) and isinstance(update.event.get("id"), int):
            self.service.note_event(update.conversation_id, update.event["id"])

    @property
    def journal(self) -> UpdateJournal:
        """The numbered record behind `updates`, kept from its first use on
        (a UI never asks for it: its updates come from `subscribe`)."""
        if self._journal is None:
            self._journal = UpdateJournal(self.manager.hub)
        return self._journal

    @classmethod
    async def open(cls, root: Path, user_id: str | None = None) -> LocalBackend:
        service = await ConversationService.open(root, user_id=user_id)
        return cls(service, ConversationManager(service))

    async def close(self) -> None:
        await self.manager.shutdown()
        if self._journal is not None:
            self._journal.unsubscribe()
        self.service.close()

    async def resolve(self, id_or_prefix: str) -> str:
        return await self.service.resolve(id_or_prefix)

    async def search(
        self,
        page_id: str | None = None,
        limit: int = 20,
        selected_repository: str | None = None,
        conversation_trigger: str | None = None,
        status: str | None = None,
        query: str | None = None,
        archived: bool | None = False,
        all_ages: bool = False,
        event_words: str | None = None,
        event_path: str | None = None,
        event_command: str | None = None,
    ) -> ConversationInfoResultSet:
        return await self.service.search(
            page_id=page_id,
            limit=limit,
            selected_repository=selected_repository,
            conversation_trigger=conversation_trigger,
            status=status,
            query=query,
            archived=archived,
            max_age=timedelta.max if all_ages else None,
            event_words=event_words,
            event_path=event_path,
            event_command=event_command,
        )

    async def get(self, conversation_id: str) -> ConversationInfo:
        return await self.service.get(conversation_id)

    async def new_conversation(self, request: NewConversationRequest) -> ConversationResponse:
        return await self.service.new_conversation(request)

    async def rename(self, conversation_id: str, title: str) -> ConversationInfo:
        """Renamed, and said on the live stream (as the reference emits the new title)."""
        info = await self.service.rename(conversation_id, title)
        self.manager.hub.publish(TitleChanged(info.conversation_id, info.title))
        return info

    async def delete(self, conversation_id: str) -> bool:
        return await self.service.delete(conversation_id)

    async def change_archived(self, conversation_id: str, archived: bool) -> tuple[ConversationInfo, str | None]:
        return await self.service.change_archived(conversation_id, archived)

    async def trash(self, conversation_id: str) -> str:
        return await self.service.trash(conversation_id)

    async def list_trash(self) -> list[TrashedConversation]:
        return await self.service.list_trash()

    async def restore(self, conversation_id: str) -> ConversationInfo:
        return await self.service.restore(conversation_id)

    async def empty_trash(self, conversation_ids: Sequence[str] | None = None) -> int:
        return await self.service.empty_trash(conversation_ids)

    async def import_trajectory(self, raw: bytes) -> ConversationResponse:
        return await self.service.import_trajectory(raw)

    async def workspace(self, conversation_id: str) -> str:
        return str(self.service.data_dir.workspace(await self.service.resolve(conversation_id)))

    async def set_experiment_config(self, conversation_id: str, config: ExperimentConfig | dict[str, Any]) -> bool:
        return await self.service.set_experiment_config(conversation_id, config)

    async def sandbox_status(self) -> SandboxStatus:
        settings = await self.service.load_settings()
        return await asyncio.to_thread(sandbox_status, SandboxPolicy.from_settings(settings), self.service.data_dir.root)

    async def start(self, conversation_id: str, confirm: bool | None = None, until_idle: bool = False) -> ConversationStatus:
        return (await self.manager.start(conversation_id, until_idle=until_idle, confirm=confirm)).status

    async def stop(self, conversation_id: str) -> ConversationResponse:
        result = await self.manager.stop(conversation_id)
        return stop_response(result.conversation_id, result.was_running, result.status)

    async def send_message(self, conversation_id: str, text: str) -> EventDict:
        return await self.manager.send_message(conversation_id, text)

    async def pending_action(self, conversation_id: str) -> EventDict | None:
        return self.manager.pending_action(await self.service.resolve(conversation_id))

    async def processes(self, conversation_id: str) -> list[str]:
        return list(self.processes_now(await self.service.resolve(conversation_id)))

    async def stop_processes(self, conversation_id: str) -> int:
        return await self.manager.stop_processes(conversation_id)

    async def pending_diff(self, conversation_id: str) -> list[str] | None:
        from .edit_preview import edit_diff
        from .events import event_kind
        from .runtime import Workspace

        full_id = await self.service.resolve(conversation_id)
        action = self.manager.pending_action(full_id)
        args = (action or {}).get("args") or {}
        if action is None or event_kind(action) != "edit" or args.get("command") not in ("create", "str_replace", "insert"):
            return None
        redact = await asyncio.to_thread(self.service.redactor)
        workspace = Workspace(self.service.data_dir.workspace(full_id), hidden_secrets=redact.secrets)
        return await asyncio.to_thread(edit_diff, workspace, args, redact)

    async def approve(self, conversation_id: str, always: bool = False) -> None:
        await self.manager.approve(conversation_id, always=always)

    async def reject(self, conversation_id: str, reason: str | None = None) -> None:
        await self.manager.reject(conversation_id, reason=reason)

    async def inbox(self) -> list[InboxItem]:
        ids = await self.service.list_ids(ConversationFilter(status=WAITING), "updated", False)
        items = []
        for conversation_id in ids:
            info = self.service.row(conversation_id)
            kind = inbox_kind(info) if info is not None else None
            if kind is None:
                continue
            action = self.manager.pending_action(conversation_id) if kind is InboxKind.APPROVE else None
            recent = []
            if kind is not InboxKind.APPROVE:
                recent = await self.search_events(conversation_id, reverse=True, limit=INBOX_EVENTS_LOOKED_AT)
            items.append(inbox_item(info, kind, action, recent))
        return oldest_first(items)

    async def dismiss(self, conversation_id: str) -> ConversationInfo:
        return await self.service.dismiss(conversation_id)

    async def mark_seen(self, conversation_id: str, event_id: int) -> ConversationInfo:
        return await self.service.mark_seen(conversation_id, event_id)

    async def set_always_approve(self, conversation_id: str, on: bool) -> ConversationInfo:
        return await self.manager.set_always_approve(conversation_id, on)

    async def search_events(
        self,
        conversation_id: str,
        start_id: int = 0,
        end_id: int | None = None,
        reverse: bool = False,
        filter: EventFilter | None = None,
        limit: int | None = None,
    ) -> list[EventDict]:
        return await self.service.search_events(conversation_id, start_id, end_id, reverse, filter, limit)

    async def remember_prompt(self, conversation_id: str, event_id: int) -> str:
        from .llm import LLMConfig
        from .remember import remember_prompt

        config = LLMConfig.from_settings(await self.service.load_settings())
        return await remember_prompt(await self.service.event_log(conversation_id), event_id, config)

    async def export_json(self, conversation_id: str) -> bytes:
        return await self.service.export_json(conversation_id)

    async def export_markdown(self, conversation_id: str) -> str:
        return await self.service.export_markdown(conversation_id)

    async def export_zip(self, conversation_id: str) -> bytes:
        return await self.service.export_zip(conversation_id)

    async def load_settings(self) -> Settings:
        return await self.service.load_settings()

    async def update_settings(self, values: dict[str, Any]) -> Settings:
        return await self.service.update_settings(values)

    async def settings_overrides(self) -> dict[str, str]:
        return self.service.settings_store.overridden()

    async def position(self) -> str:
        return self.journal.position()

    async def updates(self, position: str | None = None) -> AsyncIterator[LoopUpdate | StreamReset]:
        """Every update of this process's loops after `position`."""
        async for item in self.journal.follow(position):
            yield item if isinstance(item, StreamReset) else item.update

    # -- what a screen reads without waiting (UIBackend) ----------------------------

    @property
    def outlives_the_ui(self) -> bool:
        return self.manager.outlives_the_ui

    has_trash = True
    remote_name = None

    def list_note(self) -> str | None:
        return None

    def more_to_load(self) -> bool:
        return False  # (every row is in the store)

    def load_more(self) -> int:
        return 0

    async def connect(self) -> None:
        await self.manager.connect()

    def row(self, conversation_id: str) -> ConversationInfo | None:
        return self.service.row(conversation_id)

    def list_ids_now(self, query: ConversationFilter, sort: str, reverse: bool) -> Sequence[str] | None:
        return self.service.list_ids_now(query, sort, reverse)

    async def list_ids(self, query: ConversationFilter, sort: str, reverse: bool) -> Sequence[str]:
        return await self.service.list_ids(query, sort, reverse)

    def position_in(self, ids: Sequence[str], conversation_id: str, sort: str, reverse: bool) -> int | None:
        return self.service.position_in(ids, conversation_id, sort, reverse)

    def total(self) -> int:
        return len(self.service.store)

    def data_version(self) -> int:
        return self.service.data_version()

    async def refresh(self) -> None:
        await self.service.refresh()
        # Other processes' appends, for the unread rows (the server's come on
        # its stream): read again at most every LATEST_EVENTS_SECONDS.
        now = time.monotonic()
        if now - self._latest_read_at >= LATEST_EVENTS_SECONDS:
            self._latest_read_at = now
            await asyncio.to_thread(self.service.refresh_latest_events)

    async def warm(self) -> None:
        await asyncio.to_thread(self.service.store.warm)
        await asyncio.to_thread(self.service.store.save_snapshot)  # the next open reads it
        await asyncio.to_thread(self.service.latest_events)  # which rows have unread events
        if not self.outlives_the_ui:  # (a server fills its own)
            await asyncio.to_thread(self.service.fill_search_index)

    def workspace_path(self, conversation_id: str) -> Path:
        return self.service.data_dir.workspace(conversation_id)

    def is_running(self, conversation_id: str) -> bool:
        return self.manager.is_running(conversation_id)

    def running_ids(self) -> list[str]:
        return self.manager.running_ids()

    def pending_action_now(self, conversation_id: str) -> EventDict | None:
        return self.manager.pending_action(conversation_id)

    def processes_now(self, conversation_id: str) -> tuple[str, ...]:
        state = self.manager.live_state(conversation_id)
        return state.processes if state is not None else ()

    def waiting_count_now(self) -> int | None:
        ids = self.service.list_ids_now(ConversationFilter(status=WAITING), "updated", False)
        return None if ids is None else len(ids)

    def ui_closed_at(self) -> datetime | None:
        return self.service.ui_closed_at()

    def note_ui_closed(self) -> None:
        self.service.note_ui_closed()

    async def digest(self, since: datetime) -> list[DigestEntry]:
        return await self.service.digest(since)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        return self.manager.subscribe(subscriber)

    async def stop_all(self) -> int:
        return await self.manager.stop_all()

    async def test_model(self, values: dict[str, Any]) -> str:
        from ..terminal_text import one_line
        from .llm import LLMConfig, complete

        current = await self.service.load_settings()
        merged = Settings.model_validate({**current.model_dump(), **values})
        config = LLMConfig.from_settings(merged)
        response = await complete(config, [{"role": "user", "content": "Reply with the word ok."}], max_tokens=5)
        return f"ok: {config.model} answered {one_line(response.content, 40)!r}"

    async def warm_model(self) -> None:
        try:
            settings = await self.service.load_settings()
        except ConvtuiError:
            return  # the settings dialog and the first start say what is wrong
        if settings.llm_model:
            from .llm import start_model_worker

            await asyncio.to_thread(start_model_worker)

    async def remotes(self) -> list[Remote]:
        return list((await asyncio.to_thread(RemotesStore(self.service.data_dir.root).load)).values())

    async def test_remote(self, name: str) -> str:
        from .connect import reach_remote

        return await reach_remote(self.service.data_dir.root, name)

    # -- what the CLI also asks (Backend) -----------------------------------------------

    async def stop_explained(self, conversation_id: str) -> ConversationResponse:
        result = await self.manager.stop(conversation_id)
        return ConversationResponse(
            status="ok", conversation_id=result.conversation_id, message=result.message, conversation_status=result.status
        )

    async def wait(self, conversation_id: str) -> None:
        if not self.manager.outlives_the_ui:  # else the server's loop records its own end
            await self.manager.wait(conversation_id)

    async def watch_text(self, conversation_id: str) -> None:
        info = await self.service.get(conversation_id)  # an unknown id is refused here
        await self.manager.watch_text(info.conversation_id)
