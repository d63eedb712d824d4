"""The Backend over HTTP: talks to `convtui serve` through its unix socket
(or over TCP with its bearer token) with httpx. Errors come back as the same
ConvtuiError family the in-process backend raises, with the server's
one-line message."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from .errors import ConvtuiError, InvalidInput, MissingSettings, NotFound, PermissionDenied
from .events import EventDict, EventFilter
from .inbox import InboxItem
from .update_journal import StreamReset
from .models import (
    ConversationInfo,
    ConversationInfoResultSet,
    ConversationResponse,
    ConversationStatus,
    ExperimentConfig,
    NewConversationRequest,
    id_prefix,
)
from .sandbox import SandboxStatus
from .settings import Settings
from .trash import TrashedConversation
from .updates import LoopUpdate, update_from_dict

log = logging.getLogger(__name__)

EVENT_PAGE = 100
RECONNECT_DELAY = 0.2


class Conflict(ConvtuiError):
    """The server refused: the conversation runs elsewhere, or a limit was reached."""


class ServerGone(ConvtuiError):
    """The server could not be reached."""


_ERRORS: dict[int, type[ConvtuiError]] = {
    400: InvalidInput,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: InvalidInput,
    422: InvalidInput,
}


def _raise_for(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = (body.get("message") if isinstance(body, dict) else None) or f"the server answered {response.status_code}"
    if isinstance(body, dict) and body.get("msg_id") == "CONFIGURATION$SETTINGS_NOT_FOUND":
        raise MissingSettings(message)
    if response.status_code == 401:
        raise ConvtuiError(f"the server refused the token: {message}")
    raise _ERRORS.get(response.status_code, ConvtuiError)(message)


def socket_transport(path: Path, asynchronous: bool = True) -> httpx.AsyncHTTPTransport | httpx.HTTPTransport:
    """A transport over the server's unix socket. No TLS there, so none is
    set up: httpx's default loads the CA bundle, 40 ms of CPU per client."""
    kind = httpx.AsyncHTTPTransport if asynchronous else httpx.HTTPTransport
    return kind(uds=os.fsdecode(path), verify=False)


def socket_client(path: Path, timeout: float) -> httpx.Client:
    """A blocking client of the server at the socket `path`."""
    return httpx.Client(transport=socket_transport(path, asynchronous=False), base_url="http://convtui", timeout=timeout)


class RemoteBackend:
    """One server's conversations. Open with `RemoteBackend.over_socket(path)`
    or `RemoteBackend.over_tcp(url, token)`; close with `await close()`."""

    def __init__(self, client: httpx.AsyncClient, where: str, revive: Callable[[], object] | None = None) -> None:
        """`revive()` (run in a thread) starts a server when none answers: a
        request that found nobody listening is then sent once more."""
        self._client = client
        self.where = where
        self._revive = revive

    @classmethod
    def over_socket(cls, path: Path, revive: Callable[[], object] | None = None) -> RemoteBackend:
        client = httpx.AsyncClient(transport=socket_transport(path), base_url="http://convtui", timeout=60.0)
        return cls(client, str(path), revive)

    @classmethod
    def over_tcp(cls, url: str, token: str | None) -> RemoteBackend:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return cls(httpx.AsyncClient(base_url=url.rstrip("/"), headers=headers, timeout=60.0), url)

    async def close(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, raw: bool = False, revive: bool = True, **kwargs: Any) -> Any:
        """The answer's JSON (`raw`: its bytes); errors as ConvtuiError."""
        try:
            try:
                response = await self._client.request(method, path, **kwargs)
            except httpx.ConnectError:  # nobody listens: the request was not received
                if self._revive is None or not revive:
                    raise
                await asyncio.to_thread(self._revive)
                response = await self._client.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise ServerGone(f"the convtui server at {self.where} did not answer: {error or type(error).__name__}") from None
        _raise_for(response)
        return response.content if raw else orjson.loads(response.content)

    # -- conversations ---------------------------------------------------------------

    async def resolve(self, id_or_prefix: str) -> str:
        return (await self._call("GET", f"/api/resolve/{id_prefix(id_or_prefix)}"))["conversation_id"]

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
        params: dict[str, Any] = {"limit": limit, "all_ages": all_ages}
        optional = {
            "page_id": page_id,
            "selected_repository": selected_repository,
            "conversation_trigger": getattr(conversation_trigger, "value", conversation_trigger),
            "status": status,
            "q": query,
            "text": event_words,
            "file": event_path,
            "cmd": event_command,
        }
        params.update({name: value for name, value in optional.items() if value is not None})
        params["archived"] = "all" if archived is None else str(archived).lower()
        return ConversationInfoResultSet.model_validate(await self._call("GET", "/api/conversations", params=params))

    async def get(self, conversation_id: str) -> ConversationInfo:
        full_id = await self.resolve(conversation_id)
        found = await self._call("GET", f"/api/conversations/{full_id}")
        if found is None:
            raise NotFound(f"no conversation with id {full_id}")
        return ConversationInfo.model_validate(found)

    async def new_conversation(self, request: NewConversationRequest) -> ConversationResponse:
        body = request.model_dump(mode="json", exclude_unset=True)
        return ConversationResponse.model_validate(await self._call("POST", "/api/conversations", json=body))

    async def rename(self, conversation_id: str, title: str) -> ConversationInfo:
        full_id = await self.resolve(conversation_id)
        await self._call("PATCH", f"/api/conversations/{full_id}", json={"title": title})
        return await self.get(full_id)

    async def delete(self, conversation_id: str) -> bool:
        try:
            full_id = await self.resolve(conversation_id)
        except NotFound:
            return False
        return bool(await self._call("DELETE", f"/api/conversations/{full_id}"))

    async def change_archived(self, conversation_id: str, archived: bool) -> tuple[ConversationInfo, str | None]:
        full_id = await self.resolve(conversation_id)
        answer = await self._call("POST", f"/api/conversations/{full_id}/archived", json={"archived": archived})
        return ConversationInfo.model_validate(answer["conversation"]), answer["stopped"]

    async def trash(self, conversation_id: str) -> str:
        full_id = await self.resolve(conversation_id)
        return (await self._call("POST", f"/api/conversations/{full_id}/trash"))["conversation_id"]

    async def list_trash(self) -> list[TrashedConversation]:
        return [TrashedConversation(**item, document={}) for item in await self._call("GET", "/api/trash")]

    async def restore(self, conversation_id: str) -> ConversationInfo:
        answer = await self._call("POST", f"/api/trash/{id_prefix(conversation_id)}/restore")
        return ConversationInfo.model_validate(answer)

    async def empty_trash(self, conversation_ids: Sequence[str] | None = None) -> int:
        given = None if conversation_ids is None else [id_prefix(given) for given in conversation_ids]
        return (await self._call("POST", "/api/trash/empty", json={"conversation_ids": given}))["deleted"]

    async def import_trajectory(self, raw: bytes) -> ConversationResponse:
        answer = await self._call(
            "POST", "/api/conversations/import", content=raw, headers={"Content-Type": "application/json"}
        )
        return ConversationResponse.model_validate(answer)

    async def workspace(self, conversation_id: str) -> str:
        full_id = await self.resolve(conversation_id)
        return (await self._call("GET", f"/api/conversations/{full_id}/workspace"))["path"]

    async def sandbox_status(self) -> SandboxStatus:
        answer = await self._call("GET", "/api/sandbox")
        return SandboxStatus(bool(answer["sandboxed"]), str(answer["description"]))

    async def set_experiment_config(self, conversation_id: str, config: ExperimentConfig | dict[str, Any]) -> bool:
        full_id = await self.resolve(conversation_id)
        body = config.model_dump(mode="json") if isinstance(config, ExperimentConfig) else config
        return bool(await self._call("POST", f"/api/conversations/{full_id}/exp-config", json=body))

    # -- loops -----------------------------------------------------------------------

    async def start(self, conversation_id: str, confirm: bool | None = None, until_idle: bool = False) -> ConversationStatus:
        full_id = await self.resolve(conversation_id)
        params: dict[str, Any] = {"until_idle": until_idle}
        if confirm is not None:
            params["confirm"] = confirm
        answer = await self._call("POST", f"/api/conversations/{full_id}/start", params=params, json={})
        return ConversationStatus(answer["conversation_status"])

    async def stop(self, conversation_id: str) -> ConversationResponse:
        full_id = await self.resolve(conversation_id)
        return ConversationResponse.model_validate(await self._call("POST", f"/api/conversations/{full_id}/stop"))

    async def stop_explained(self, conversation_id: str) -> ConversationResponse:
        """The server answers in the reference's words."""
        return await self.stop(conversation_id)

    async def wait(self, conversation_id: str) -> None:
        """Nothing to wait for: the server's loop records its own end."""

    async def watch_text(self, conversation_id: str) -> None:
        await self._call("POST", f"/api/conversations/{conversation_id}/watch")

    async def send_message(self, conversation_id: str, text: str) -> EventDict:
        full_id = await self.resolve(conversation_id)
        return await self._call("POST", f"/api/conversations/{full_id}/messages", json={"content": text})

    async def pending_action(self, conversation_id: str) -> EventDict | None:
        full_id = await self.resolve(conversation_id)
        return await self._call("GET", f"/api/conversations/{full_id}/pending-action")

    async def processes(self, conversation_id: str) -> list[str]:
        full_id = await self.resolve(conversation_id)
        return (await self._call("GET", f"/api/conversations/{full_id}/processes"))["processes"]

    async def stop_processes(self, conversation_id: str) -> int:
        full_id = await self.resolve(conversation_id)
        return (await self._call("POST", f"/api/conversations/{full_id}/processes/stop"))["stopped"]

    async def pending_diff(self, conversation_id: str) -> list[str] | None:
        full_id = await self.resolve(conversation_id)
        return (await self._call("GET", f"/api/conversations/{full_id}/pending-diff"))["diff"]

    async def approve(self, conversation_id: str, always: bool = False) -> None:
        full_id = await self.resolve(conversation_id)
        await self._call("POST", f"/api/conversations/{full_id}/decision", json={"approve": True, "always": always})

    async def reject(self, conversation_id: str, reason: str | None = None) -> None:
        full_id = await self.resolve(conversation_id)
        await self._call("POST", f"/api/conversations/{full_id}/decision", json={"approve": False, "reason": reason})

    async def inbox(self) -> list[InboxItem]:
        return [InboxItem.model_validate(item) for item in await self._call("GET", "/api/inbox")]

    async def mark_seen(self, conversation_id: str, event_id: int) -> ConversationInfo:
        full_id = await self.resolve(conversation_id)
        answer = await self._call("POST", f"/api/conversations/{full_id}/seen", json={"event_id": event_id})
        return ConversationInfo.model_validate(answer)

    async def dismiss(self, conversation_id: str) -> ConversationInfo:
        full_id = await self.resolve(conversation_id)
        return ConversationInfo.model_validate(await self._call("POST", f"/api/conversations/{full_id}/dismiss"))

    async def set_always_approve(self, conversation_id: str, on: bool) -> ConversationInfo:
        full_id = await self.resolve(conversation_id)
        answer = await self._call("PUT", f"/api/conversations/{full_id}/always-approve", json={"on": on})
        return ConversationInfo.model_validate(answer)

    # -- events ----------------------------------------------------------------------

    async def search_events(
        self,
        conversation_id: str,
        start_id: int = 0,
        end_id: int | None = None,
        reverse: bool = False,
        filter: EventFilter | None = None,
        limit: int | None = None,
    ) -> list[EventDict]:
        """Like ConversationService.search_events; pages of EVENT_PAGE until
        `limit` (None: all)."""
        full_id = await self.resolve(conversation_id)
        events: list[EventDict] = []
        while limit is None or len(events) < limit:
            page = EVENT_PAGE if limit is None else min(EVENT_PAGE, limit - len(events))
            params: dict[str, Any] = {"start_id": start_id, "reverse": reverse, "limit": page}
            if end_id is not None:
                params["end_id"] = end_id
            if filter is not None:
                params["filter"] = filter.model_dump_json(exclude_defaults=True)
            answer = await self._call("GET", f"/api/conversations/{full_id}/events", params=params)
            events.extend(answer["events"])
            if not answer["has_more"] or not answer["events"]:
                break
            last = answer["events"][-1]["id"]
            if reverse:
                end_id = last - 1
            else:
                start_id = last + 1
        return events

    async def remember_prompt(self, conversation_id: str, event_id: int) -> str:
        full_id = await self.resolve(conversation_id)
        answer = await self._call("GET", f"/api/conversations/{full_id}/remember-prompt", params={"event_id": event_id})
        return answer["prompt"]

    async def export_json(self, conversation_id: str) -> bytes:
        full_id = await self.resolve(conversation_id)
        return await self._call("GET", f"/api/conversations/{full_id}/export", raw=True, params={"format": "json"})

    async def export_markdown(self, conversation_id: str) -> str:
        full_id = await self.resolve(conversation_id)
        answer = await self._call("GET", f"/api/conversations/{full_id}/export", raw=True, params={"format": "markdown"})
        return answer.decode()

    async def export_zip(self, conversation_id: str) -> bytes:
        full_id = await self.resolve(conversation_id)
        return await self._call("GET", f"/api/conversations/{full_id}/export", raw=True, params={"format": "zip"})

    # -- settings --------------------------------------------------------------------

    async def load_settings(self) -> Settings:
        """The settings in force at the server, the API key masked (the
        server never sends it): show it, never use it."""
        return Settings.model_validate(await self._call("GET", "/api/settings"))

    async def update_settings(self, values: dict[str, Any]) -> Settings:
        return Settings.model_validate(await self._call("PATCH", "/api/settings", json=values))

    async def settings_overrides(self) -> dict[str, str]:
        return await self._call("GET", "/api/settings/overrides")

    async def server_info(self, revive: bool = True) -> dict[str, Any]:
        """`revive` False: ask without starting a server when none answers."""
        return await self._call("GET", "/api/server", revive=revive)

    async def position(self) -> str:
        return (await self.server_info())["position"]

    # -- the live stream -------------------------------------------------------------

    async def updates(self, position: str | None = None) -> AsyncIterator[LoopUpdate | StreamReset]:
        """Every loop update from now (or after `position`) on, reconnecting
        after a dropped link from the last one seen. A StreamReset means
        updates may have been missed: reload, then keep reading."""
        from httpx_sse import aconnect_sse

        connected = False
        while True:
            headers = {"Last-Event-ID": position} if position else {}
            try:
                async with aconnect_sse(self._client, "GET", "/api/updates", headers=headers, timeout=None) as source:
                    _raise_for(source.response)
                    connected = True
                    async for message in source.aiter_sse():
                        if message.event == "update":
                            position = message.id
                            yield update_from_dict(orjson.loads(message.data))
                        elif message.event == "reset":
                            position = message.id
                            yield StreamReset(position)
                        elif message.event == "hello" and position is None:
                            position = orjson.loads(message.data)["position"]
            except httpx.TransportError as error:
                log.info("live stream dropped (%s); reconnecting", error)
                if connected and position is not None:
                    connected = False
                    yield StreamReset(position)  # the server may be gone, its loops with it: look again
            await asyncio.sleep(RECONNECT_DELAY)

