"""The REST API of `convtui serve`: the reference's conversation routes (same
paths, JSON shapes and error codes), OpenHands' event listing, and what
convtui adds (archive, trash, messages, approvals, settings, a live stream).

Every route validates with the models and answers errors in OpenHands' shape,
`{"status": "error", "message": ..., "msg_id": ...}`: 400 invalid input, 401
bad token, 403 not the owner, 404 unknown id, 409 conflict, 413 body too big,
422 malformed request. Ids in paths are full 32-hex ids; `/api/resolve/{prefix}`
turns a prefix into one. Nothing answers with a traceback, and the API key is
never in a response: settings come back with it masked."""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import orjson
from fastapi import Body, FastAPI, Header, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

from .. import __version__
from ..terminal_text import one_line
from .errors import (
    AmbiguousId,
    ConvtuiError,
    InvalidInput,
    MissingSettings,
    NotFound,
    PermissionDenied,
    first_validation_error,
)
from .events import EventFilter
from .inbox import InboxItem
from .interface import LocalBackend
from .manager import LoopLimitReached, RunningElsewhere
from .models import (
    ConversationInfo,
    ConversationInfoResultSet,
    ConversationResponse,
    ExperimentConfig,
    NewConversationRequest,
    ProviderType,
)
from .service import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from .settings import masked
from .update_journal import StreamReset
from .updates import TEXT_WATCH_SECONDS, update_to_dict

log = logging.getLogger(__name__)

BODY_LIMIT_DEFAULT = 8 * 1024 * 1024  # a replayed trajectory is the biggest body
ConversationId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="a full conversation id (32 hex digits)")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProvidersSet(_Strict):
    providers_set: list[ProviderType] | None = None


class UpdateConversation(_Strict):
    title: str = Field(max_length=1000)  # the backend's title rules say what is wrong with one


class Message(_Strict):
    content: str


class Decision(_Strict):
    """approve (`always`: every later action of this conversation too) or
    reject (`reason`: what the agent reads with the rejection)."""

    approve: bool
    always: bool = False
    reason: str | None = None


class Seen(_Strict):
    event_id: int


class AlwaysApprove(_Strict):
    on: bool


class Archived(_Strict):
    archived: bool


class EmptyTrash(_Strict):
    conversation_ids: list[Annotated[str, Field(pattern=r"^[0-9a-fA-F]{1,32}$")]] | None = Field(None, max_length=10_000)


class ServerInfo(BaseModel):
    pid: int
    version: str
    data_dir: str
    running: list[str]
    position: str


def _error(status: int, message: str, msg_id: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"status": "error", "message": message, "msg_id": msg_id, **extra}, status_code=status)


def _convtui_error(error: ConvtuiError) -> JSONResponse:
    """Each error family to its HTTP code and msg_id."""
    message = str(error)
    if isinstance(error, NotFound):
        return _error(404, message, "CONVERSATION$NOT_FOUND")
    if isinstance(error, PermissionDenied):
        return _error(403, message, "AUTHORIZATION$PERMISSION_DENIED")
    if isinstance(error, MissingSettings):
        return _error(400, message, "CONFIGURATION$SETTINGS_NOT_FOUND")
    if isinstance(error, (RunningElsewhere, LoopLimitReached)):
        return _error(409, message, "CONVERSATION$CONFLICT")
    if isinstance(error, (InvalidInput, AmbiguousId)):
        return _error(400, message, "CONVERSATION$INVALID_INPUT")
    return _error(500, message, "SERVER$STORAGE_ERROR")


class BearerToken:
    """Requests over TCP must carry `Authorization: Bearer <token>`. Requests
    over the unix socket (0600: only its owner can connect) need none."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A unix-socket connection has no port (uvicorn: (path, None)).
        server = scope.get("server")
        if scope["type"] == "http" and server is not None and server[1] is not None:
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if self.expected is None or not hmac.compare_digest(given, self.expected):
                response = _error(401, "a valid bearer token is required", "AUTHORIZATION$BAD_TOKEN")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """Bodies over `limit` bytes get 413 before anything reads them whole."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = _error(413, f"the request body is over {self.limit:,} bytes", "REQUEST$TOO_LARGE")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await too_big(scope, receive, send)
            return
        received = 0

        async def counted() -> ASGIMessage:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise _BodyTooBig
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooBig:
            await too_big(scope, receive, send)


class _BodyTooBig(Exception):
    pass


def create_app(
    backend: LocalBackend,
    *,
    token: str | None = None,
    shutdown: Callable[[], None] | None = None,
    body_limit: int = BODY_LIMIT_DEFAULT,
    docs: bool = False,
) -> ASGIApp:
    """The API over one data directory's backend. `token`: what
    TCP requests must present (None: TCP refused). `shutdown`: what
    POST /api/server/shutdown calls."""
    journal = backend.journal
    app = FastAPI(
        title="convtui",
        version=__version__,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )

    @app.exception_handler(ConvtuiError)
    async def convtui_error(_: Request, error: ConvtuiError) -> JSONResponse:
        return _convtui_error(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        # Without each error's "input": it may be a value nobody should see echoed.
        details = [{key: item[key] for key in ("loc", "msg", "type") if key in item} for item in error.errors()]
        if any(tuple(item["loc"][:2]) == ("path", "conversation_id") for item in details):
            # The reference's validate_conversation_id: a malformed id is a 400.
            given = one_line(str(request.path_params.get("conversation_id", "")), 40)
            return _error(400, f"{given!r} is not a conversation id (32 hex digits)", "CONVERSATION$INVALID_ID")
        return _error(422, first_validation_error(error), "REQUEST$VALIDATION_ERROR", detail=jsonable_encoder(details))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        message = error.detail if isinstance(error.detail, str) else "request refused"
        return _error(error.status_code, message, f"HTTP${error.status_code}")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("a request failed")
        return _error(500, f"internal error ({type(error).__name__}); see server.log", "SERVER$INTERNAL_ERROR")

    # -- the reference's routes -------------------------------------------------------

    @app.post("/api/conversations")
    async def new_conversation(data: NewConversationRequest) -> ConversationResponse:
        return await backend.new_conversation(data)

    @app.get("/api/conversations")
    async def search_conversations(
        page_id: str | None = None,
        # limit (1-100) and the trigger are checked by the backend: one wording in and out of the server
        limit: Annotated[int, Query(description=f"1-{PAGE_SIZE_MAX}")] = PAGE_SIZE_DEFAULT,
        selected_repository: str | None = None,
        conversation_trigger: Annotated[str | None, Query(max_length=100)] = None,
        status: str | None = None,
        q: Annotated[str | None, Query(max_length=1000, description="words in the title, repository or id")] = None,
        archived: Annotated[
            str, Query(pattern="^(false|true|all)$", description="false: hide archived (default); true: only them; all")
        ] = "false",
        all_ages: Annotated[bool, Query(description="also conversations older than conversation_max_age_days")] = False,
        text: Annotated[str | None, Query(max_length=10_000, description="words in any of its events")] = None,
        file: Annotated[str | None, Query(max_length=10_000, description="a path it viewed or edited")] = None,
        cmd: Annotated[str | None, Query(max_length=10_000, description="a command it ran")] = None,
    ) -> ConversationInfoResultSet:
        return await backend.search(
            page_id=page_id,
            limit=limit,
            selected_repository=selected_repository,
            conversation_trigger=conversation_trigger,
            status=status,
            query=q,
            archived={"false": False, "true": True, "all": None}[archived],
            all_ages=all_ages,
            event_words=text,
            event_path=file,
            event_command=cmd,
        )

    @app.get("/api/conversations/{conversation_id}")
    async def get_conversation(conversation_id: ConversationId) -> ConversationInfo | None:
        """null for an unknown id, as the reference answers."""
        try:
            return await backend.get(conversation_id)
        except NotFound:
            return None

    @app.patch("/api/conversations/{conversation_id}")
    async def update_conversation(conversation_id: ConversationId, data: UpdateConversation) -> bool:
        await backend.rename(conversation_id, data.title)
        return True

    @app.delete("/api/conversations/{conversation_id}")
    async def delete_conversation(conversation_id: ConversationId) -> bool:
        """false for an unknown id, as the reference answers; a running loop
        is stopped first."""
        return await backend.delete(conversation_id)

    @app.post("/api/conversations/{conversation_id}/start")
    async def start_conversation(
        conversation_id: ConversationId,
        providers: ProvidersSet | None = None,
        confirm: Annotated[bool | None, Query(description="override confirmation_mode for this run")] = None,
        until_idle: Annotated[bool, Query(description="end the loop once the agent waits for the user")] = False,
    ) -> ConversationResponse:
        try:
            status = await backend.start(conversation_id, confirm=confirm, until_idle=until_idle)
        except NotFound:
            return JSONResponse({"status": "error", "conversation_id": conversation_id}, status_code=404)
        return ConversationResponse(status="ok", conversation_id=conversation_id, conversation_status=status)

    @app.post("/api/conversations/{conversation_id}/stop")
    async def stop_conversation(conversation_id: ConversationId) -> ConversationResponse:
        return await backend.stop(conversation_id)

    @app.get("/api/conversations/{conversation_id}/remember-prompt")
    async def remember_prompt(conversation_id: ConversationId, event_id: Annotated[int, Query(ge=0)]) -> dict[str, str]:
        return {"status": "success", "prompt": await backend.remember_prompt(conversation_id, event_id)}

    @app.post("/api/conversations/{conversation_id}/exp-config")
    async def add_experiment_config(conversation_id: ConversationId, exp_config: ExperimentConfig) -> bool:
        return await backend.set_experiment_config(conversation_id, exp_config)

    @app.get("/api/conversations/{conversation_id}/events")
    async def search_events(
        conversation_id: ConversationId,
        start_id: Annotated[int, Query(ge=0)] = 0,
        end_id: Annotated[int | None, Query(ge=0)] = None,
        reverse: bool = False,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        filter: Annotated[str | None, Query(description="an EventFilter as JSON")] = None,
    ) -> dict[str, Any]:
        """OpenHands' event listing: `events` and `has_more`."""
        event_filter = None
        if filter:
            try:
                event_filter = EventFilter.model_validate_json(filter)
            except ValueError as error:
                raise InvalidInput(f"filter: {first_validation_error(error)}") from None
        events = await backend.search_events(conversation_id, start_id, end_id, reverse, event_filter, limit + 1)
        return {"events": events[:limit], "has_more": len(events) > limit}

    # -- what convtui adds ------------------------------------------------------------

    @app.get("/api/resolve/{prefix}")
    async def resolve(prefix: Annotated[str, Path(pattern=r"^[0-9a-fA-F]{1,32}$")]) -> dict[str, str]:
        return {"conversation_id": await backend.resolve(prefix)}

    @app.post("/api/conversations/{conversation_id}/archived")
    async def set_archived(conversation_id: ConversationId, data: Archived) -> dict[str, Any]:
        """Archive (a running loop is stopped first; `stopped` says so) or unarchive."""
        info, stopped = await backend.change_archived(conversation_id, data.archived)
        return {"conversation": info.model_dump(mode="json"), "stopped": stopped}

    @app.post("/api/conversations/{conversation_id}/trash")
    async def trash(conversation_id: ConversationId) -> dict[str, str]:
        """Move to the trash (restorable); a running loop is stopped first."""
        return {"conversation_id": await backend.trash(conversation_id)}

    @app.get("/api/trash")
    async def list_trash() -> list[dict[str, Any]]:
        """What the trash holds, most recently trashed first."""
        return [
            {"conversation_id": item.conversation_id, "title": item.title, "trashed_at": item.trashed_at}
            for item in await backend.list_trash()
        ]

    @app.post("/api/trash/{conversation_id}/restore")
    async def restore(conversation_id: Annotated[str, Path(pattern=r"^[0-9a-fA-F]{1,32}$")]) -> ConversationInfo:
        """Bring a trashed conversation (an id or a prefix) back as it was."""
        return await backend.restore(conversation_id)

    @app.post("/api/trash/empty")
    async def empty_trash(data: EmptyTrash) -> dict[str, int]:
        """Delete trashed conversations for good: those given, or all (null)."""
        return {"deleted": await backend.empty_trash(data.conversation_ids)}

    @app.post("/api/conversations/import")
    async def import_trajectory(request: Request) -> ConversationResponse:
        """A new conversation holding an OpenHands trajectory (the body, as JSON)."""
        return await backend.import_trajectory(await request.body())

    @app.get("/api/sandbox")
    async def sandbox() -> dict[str, Any]:
        """Whether the commands of loops started now run sandboxed, and how."""
        status = await backend.sandbox_status()
        return {"sandboxed": status.sandboxed, "description": status.description}

    @app.get("/api/conversations/{conversation_id}/workspace")
    async def workspace(conversation_id: ConversationId) -> dict[str, str]:
        return {"path": await backend.workspace(conversation_id)}

    @app.post("/api/conversations/{conversation_id}/messages")
    async def send_message(conversation_id: ConversationId, message: Message) -> dict[str, Any]:
        return await backend.send_message(conversation_id, message.content)

    @app.post("/api/conversations/{conversation_id}/watch")
    async def watch_text(conversation_id: ConversationId) -> dict[str, Any]:
        """Someone shows this conversation: its replies stream (`text`
        updates) for the next `seconds`; post again to go on."""
        await backend.watch_text(conversation_id)
        return {"conversation_id": conversation_id, "seconds": TEXT_WATCH_SECONDS}

    @app.get("/api/conversations/{conversation_id}/pending-action")
    async def pending_action(conversation_id: ConversationId) -> dict[str, Any] | None:
        return await backend.pending_action(conversation_id)

    @app.get("/api/conversations/{conversation_id}/processes")
    async def processes(conversation_id: ConversationId) -> dict[str, list[str]]:
        """The commands of the background processes running in its workspace."""
        return {"processes": await backend.processes(conversation_id)}

    @app.post("/api/conversations/{conversation_id}/processes/stop")
    async def stop_processes(conversation_id: ConversationId) -> dict[str, int]:
        """Stop the background processes of its workspace; the loop runs on."""
        return {"stopped": await backend.stop_processes(conversation_id)}

    @app.get("/api/conversations/{conversation_id}/pending-diff")
    async def pending_diff(conversation_id: ConversationId) -> dict[str, list[str] | None]:
        """The unified diff of the file write awaiting approval (null: none awaits)."""
        return {"diff": await backend.pending_diff(conversation_id)}

    @app.post("/api/conversations/{conversation_id}/decision")
    async def decide(conversation_id: ConversationId, decision: Decision) -> bool:
        if decision.approve:
            await backend.approve(conversation_id, always=decision.always)
        else:
            await backend.reject(conversation_id, reason=decision.reason)
        return True

    @app.get("/api/inbox")
    async def inbox() -> list[InboxItem]:
        """Every conversation waiting for a person, oldest wait first."""
        return await backend.inbox()

    @app.post("/api/conversations/{conversation_id}/seen")
    async def seen(conversation_id: ConversationId, seen: Seen) -> ConversationInfo:
        """The caller's OS user has seen the events up to `event_id`."""
        return await backend.mark_seen(conversation_id, seen.event_id)

    @app.post("/api/conversations/{conversation_id}/dismiss")
    async def dismiss(conversation_id: ConversationId) -> ConversationInfo:
        """Take a conversation whose loop ended out of the inbox."""
        return await backend.dismiss(conversation_id)

    @app.put("/api/conversations/{conversation_id}/always-approve")
    async def always_approve(conversation_id: ConversationId, data: AlwaysApprove) -> ConversationInfo:
        return await backend.set_always_approve(conversation_id, data.on)

    @app.get("/api/conversations/{conversation_id}/export")
    async def export(conversation_id: ConversationId, format: Annotated[str, Query(pattern="^(json|markdown|zip)$")] = "json") -> Response:
        if format == "markdown":
            return Response(await backend.export_markdown(conversation_id), media_type="text/markdown")
        if format == "zip":
            return Response(await backend.export_zip(conversation_id), media_type="application/zip")
        return Response(await backend.export_json(conversation_id), media_type="application/json")

    @app.get("/api/settings")
    async def get_settings() -> dict[str, Any]:
        return masked(await backend.load_settings())

    @app.patch("/api/settings")
    async def update_settings(values: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return masked(await backend.update_settings(values))

    @app.get("/api/settings/overrides")
    async def settings_overrides() -> dict[str, str]:
        """Setting name -> the environment variable of the server that overrides it."""
        return await backend.settings_overrides()

    @app.get("/api/updates", response_class=EventSourceResponse)
    async def updates(
        position: Annotated[str | None, Query(max_length=64)] = None,
        last_event_id: Annotated[str | None, Header(max_length=64)] = None,
    ) -> AsyncIterator[ServerSentEvent]:
        """Every loop update as it happens. Reconnect with the last `id` seen
        (Last-Event-ID or `position`) to miss nothing; an `reset` event means
        that position is gone: reload, then follow."""
        yield ServerSentEvent(event="hello", raw_data=orjson.dumps({"position": journal.position()}).decode())
        async for item in journal.follow(last_event_id or position):
            if isinstance(item, StreamReset):
                yield ServerSentEvent(event="reset", id=item.position, raw_data="{}")
            else:
                data = orjson.dumps(update_to_dict(item.update)).decode()
                yield ServerSentEvent(event="update", id=item.position, raw_data=data)

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        """Does nothing: the round trip of a request (bench/api.py's baseline)."""
        return {"status": "ok"}

    @app.get("/api/server")
    async def server_info() -> ServerInfo:
        return ServerInfo(
            pid=os.getpid(),
            version=__version__,
            data_dir=str(backend.service.data_dir.root),
            running=backend.manager.running_ids(),
            position=journal.position(),
        )

    @app.post("/api/server/shutdown")
    async def shutdown_server() -> dict[str, Any]:
        running = backend.manager.running_ids()
        if shutdown is not None:
            shutdown()  # the server stops taking requests once this answer is sent
        return {"status": "ok", "stopping": running}

    return BodyLimit(BearerToken(app, token), body_limit)

