"""The one interface the UI and the CLI use to manage conversations, and its
in-process implementation.

Implementations: LocalBackend (the store and the loops in this process: what
`convtui serve` runs, and `--no-server` mode) and client.RemoteBackend (a
`convtui serve` over its socket or TCP). Both take an id or a unique prefix
wherever an id is asked for, and raise the ConvtuiError family with one-line
messages; one shared test suite (tests/test_backend_contract.py) runs against
both."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

from .events import EventDict, EventFilter
from .manager import ConversationManager
from .models import (
    ConversationInfo,
    ConversationInfoResultSet,
    ConversationResponse,
    ConversationStatus,
    ExperimentConfig,
    NewConversationRequest,
)
from .service import ConversationService
from .settings import Settings
from .update_journal import StreamReset, UpdateJournal
from .updates import LoopUpdate


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
    ) -> ConversationInfoResultSet: ...

    async def get(self, conversation_id: str) -> ConversationInfo: ...

    async def new_conversation(self, request: NewConversationRequest) -> ConversationResponse: ...

    async def rename(self, conversation_id: str, title: str) -> ConversationInfo: ...

    async def delete(self, conversation_id: str) -> bool: ...

    async def change_archived(self, conversation_id: str, archived: bool) -> tuple[ConversationInfo, str | None]: ...

    async def trash(self, conversation_id: str) -> str: ...

    async def set_experiment_config(self, conversation_id: str, config: ExperimentConfig | dict[str, Any]) -> bool: ...

    async def start(self, conversation_id: str, confirm: bool | None = None, until_idle: bool = False) -> ConversationStatus: ...

    async def stop(self, conversation_id: str) -> ConversationResponse: ...

    async def send_message(self, conversation_id: str, text: str) -> EventDict: ...

    async def pending_action(self, conversation_id: str) -> EventDict | None: ...

    async def pending_diff(self, conversation_id: str) -> list[str] | None:
        """The unified diff the file write awaiting approval would make (None:
        no file write awaits). Raises ConvtuiError when it cannot be made."""
        ...

    async def approve(self, conversation_id: str, always: bool = False) -> None: ...

    async def reject(self, conversation_id: str) -> None: ...

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

    async def load_settings(self) -> Settings:
        """The settings in force; over a server the API key is masked."""
        ...

    async def update_settings(self, values: dict[str, Any]) -> Settings: ...

    async def position(self) -> str:
        """Where the live stream is now: pass it to `updates` to miss nothing
        that happens from here on."""
        ...

    def updates(self, position: str | None = None) -> AsyncIterator[LoopUpdate | StreamReset]:
        """Every update after `position` (None: from when iteration starts)."""
        ...

    async def close(self) -> None: ...


def stop_response(conversation_id: str, was_running: bool, status: ConversationStatus) -> ConversationResponse:
    """The reference's answer to a stop."""
    message = "Conversation stopped successfully" if was_running else "Conversation was not running"
    return ConversationResponse(status="ok", conversation_id=conversation_id, message=message, conversation_status=status)


class LocalBackend:
    """The conversations of a data directory, with their loops in this process."""

    def __init__(self, service: ConversationService, manager: ConversationManager) -> None:
        self.service = service
        self.manager = manager
        self.journal = UpdateJournal(manager.hub)

    @classmethod
    async def open(cls, root: Path, user_id: str | None = None) -> LocalBackend:
        service = await ConversationService.open(root, user_id=user_id)
        return cls(service, ConversationManager(service))

    async def close(self) -> None:
        await self.manager.shutdown()
        self.journal.unsubscribe()
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
        )

    async def get(self, conversation_id: str) -> ConversationInfo:
        return await self.service.get(conversation_id)

    async def new_conversation(self, request: NewConversationRequest) -> ConversationResponse:
        return await self.service.new_conversation(request)

    async def rename(self, conversation_id: str, title: str) -> ConversationInfo:
        return await self.service.rename(conversation_id, title)

    async def delete(self, conversation_id: str) -> bool:
        return await self.service.delete(conversation_id)

    async def change_archived(self, conversation_id: str, archived: bool) -> tuple[ConversationInfo, str | None]:
        return await self.service.change_archived(conversation_id, archived)

    async def trash(self, conversation_id: str) -> str:
        return await self.service.trash(conversation_id)

    async def set_experiment_config(self, conversation_id: str, config: ExperimentConfig | dict[str, Any]) -> bool:
        return await self.service.set_experiment_config(conversation_id, config)

    async def start(self, conversation_id: str, confirm: bool | None = None, until_idle: bool = False) -> ConversationStatus:
        return (await self.manager.start(conversation_id, until_idle=until_idle, confirm=confirm)).status

    async def stop(self, conversation_id: str) -> ConversationResponse:
        result = await self.manager.stop(conversation_id)
        return stop_response(result.conversation_id, result.was_running, result.status)

    async def send_message(self, conversation_id: str, text: str) -> EventDict:
        return await self.manager.send_message(conversation_id, text)

    async def pending_action(self, conversation_id: str) -> EventDict | None:
        return self.manager.pending_action(await self.service.resolve(conversation_id))

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

    async def reject(self, conversation_id: str) -> None:
        await self.manager.reject(conversation_id)

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

    async def load_settings(self) -> Settings:
        return await self.service.load_settings()

    async def update_settings(self, values: dict[str, Any]) -> Settings:
        return await self.service.update_settings(values)

    async def position(self) -> str:
        return self.journal.position()

    async def updates(self, position: str | None = None) -> AsyncIterator[LoopUpdate | StreamReset]:
        """Every update of this process's loops after `position`."""
        async for item in self.journal.follow(position):
            yield item if isinstance(item, StreamReset) else item.update
