"""The Backend over an OpenHands server's own API (its V1 routes, as
openhands-ai 1.7 and later serve them): `convtui --remote NAME` and every
subcommand's `--remote NAME`. OpenHands 1.6 serves them too, less three:
renaming (its V1 PATCH ignores a title), deleting and sending a message,
which go to its V0 routes (/api/conversations) and to the conversation's
agent server instead, as its own web UI does.

What the server keeps is the server's: its settings, secrets, sandboxes and
agent. What it cannot do (archive, a trash, searching what conversations
did, convtui's own settings) raises Unsupported, naming what to do instead.
Where it cannot filter (repository, trigger, status), the pages it gives are
filtered here, page by page, and a listing says so."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, Self

from .data_dir import DataDirectory
from .errors import AmbiguousId, ConvtuiError, InvalidInput, NotFound
from .events import EventDict, EventFilter
from .inbox import InboxItem, InboxKind, inbox_item, inbox_kind, oldest_first
from .models import (
    ConversationInfo,
    ConversationInfoResultSet,
    ConversationResponse,
    ConversationStatus,
    ConversationTrigger,
    ExperimentConfig,
    NewConversationRequest,
    validate_title,
)
from .openhands_http import SESSION_KEY_HEADER, NoSuchRoute, OpenHandsHTTP, ServerFailed
from .openhands_mapping import HEX_ID, conversation_id, conversation_info, event_from_sdk, pending_action
from .remote_rows import matches
from .remotes import Remote
from .sandbox import SandboxStatus
from .settings import Settings, SettingsStore
from .store import ConversationFilter
from .trash import TrashedConversation
from .update_journal import StreamReset
from .updates import LoopUpdate, StatusChanged

CONVERSATIONS = "/api/v1/app-conversations"
EXPORT_TIMEOUT = 120.0  # the server zips every event before it answers
V0_CONVERSATIONS = "/api/conversations"  # OpenHands 1.6 and older (removed in 1.7)
PAGE_MAX = 100  # the server's limit per page
SCAN_PAGES = 10  # server pages read to fill one filtered page, at most
RESOLVE_PAGES = 20  # an id prefix is looked for among the newest 2,000
BATCH_MAX = 99  # ids the server's batch get takes at once
FOLLOW_SECONDS = 2.0  # the server is asked what changed this often (`updates`, the UI)
EVENTS_MAX = 10_000  # events read for one conversation, at most
INBOX_EVENTS_LOOKED_AT = 20  # the newest events searched for the agent's last words
PREVIEW_BYTES = 1024 * 1024  # a file edited larger than this gets no diff before approval
START_TIMEOUT = 180.0  # a new conversation's sandbox may take minutes to start
START_POLL = 1.0
# The start task's steps, in words.
START_STEPS = {
    "WORKING": "starting",
    "WAITING_FOR_SANDBOX": "waiting for its sandbox",
    "PREPARING_REPOSITORY": "preparing the repository",
    "RUNNING_SETUP_SCRIPT": "running the setup script",
    "SETTING_UP_GIT_HOOKS": "setting up git hooks",
    "SETTING_UP_SKILLS": "setting up skills",
    "STARTING_CONVERSATION": "starting the conversation",
}
# The triggers OpenHands knows (convtui's cli and replay are its own).
SERVER_TRIGGERS = {trigger.value for trigger in ConversationTrigger} - {"cli", "replay"}


@dataclass
class EventTrail:
    """What has been read of one conversation's events. Each is numbered by
    its place among all the server's events, oldest first (stable while the
    server appends); a later read asks only from the newest timestamp on."""

    events: list[EventDict] = field(default_factory=list)
    raw_count: int = 0
    last_timestamp: str | None = None
    at_last: set[str] = field(default_factory=set)  # the ids read with that timestamp
    read_at: float = float("-inf")
    reading: asyncio.Lock = field(default_factory=asyncio.Lock)  # one read at a time

    def take(self, raw: dict[str, Any]) -> EventDict | None:
        """The next raw event as shown (None: bookkeeping, or read already)."""
        moment, identifier = raw.get("timestamp"), raw.get("id")
        if moment == self.last_timestamp and identifier in self.at_last:
            return None
        if moment != self.last_timestamp:
            self.last_timestamp, self.at_last = moment, set()
        self.at_last.add(identifier)
        self.raw_count += 1
        return event_from_sdk(raw, self.raw_count - 1)


class Unsupported(ConvtuiError):
    """The OpenHands server has no such operation."""


def unsupported(what: str, instead: str = "") -> Unsupported:
    return Unsupported(f"{what} is not available on an OpenHands server{f': {instead}' if instead else ''}")


class OpenHandsBackend:
    """One OpenHands server's conversations. `on_wait` hears why a call is
    waiting ("server unreachable, retrying in 4 s"). `root`: this machine's
    data directory, whose settings are convtui's own here (its theme, keys,
    alerts, and the model that writes remember prompts; the server's are its
    own). None: there are none."""

    def __init__(self, http: OpenHandsHTTP, name: str, root: Path | None = None) -> None:
        self.http = http
        self.name = name
        self.root = root
        self.settings_store = None if root is None else SettingsStore(DataDirectory(root).settings)
        self.where = http.url
        self.v0_only: set[str] = set()  # what this server's V1 API lacks (1.6): "rename", "delete", "send", "events_since"

    @classmethod
    def for_remote(
        cls, remote: Remote, *, transport: Any = None, on_wait: Callable[[str], None] | None = None, **more: Any
    ) -> Self:
        """`more`: what a subclass takes beyond the client and the name."""
        http = OpenHandsHTTP(remote.url, remote.key(), insecure=remote.insecure, transport=transport, on_wait=on_wait)
        return cls(http, remote.name, **more)

    async def close(self) -> None:
        await self.http.close()

    async def count(self) -> int:
        """How many conversations the server holds (what `remote test` asks)."""
        try:
            answer = await self.http.json("GET", f"{CONVERSATIONS}/count")
        except NotFound:
            raise ConvtuiError(
                f"{self.where} has no {CONVERSATIONS}: not an OpenHands server, or one without its V1 API "
                "(too old, or ENABLE_V1=0; convtui speaks the V1 routes)"
            ) from None
        if not isinstance(answer, int):
            raise ConvtuiError(f"{self.where} answered the count with {type(answer).__name__}: is it an OpenHands server?")
        return answer

    # -- ids ----------------------------------------------------------------------------

    async def resolve(self, id_or_prefix: str) -> str:
        text = id_or_prefix.strip().lower()
        if len(text.replace("-", "")) == 32:
            return conversation_id(text)
        if not text or not HEX_ID.fullmatch(text.ljust(32, "0")):
            raise InvalidInput(f"{id_or_prefix!r} is not an OpenHands conversation id or a prefix of one")
        found: list[str] = []
        page_id = None
        for _ in range(RESOLVE_PAGES):
            page = await self._page(page_id, PAGE_MAX)
            found += [item["id"] for item in page["items"] if str(item["id"]).startswith(text)]
            page_id = page.get("next_page_id")
            if len(found) > 1 or not page_id:
                break
        if not found:
            where = "" if not page_id else f" among the newest {RESOLVE_PAGES * PAGE_MAX} (give the whole id)"
            raise NotFound(f"no conversation's id starts with {text!r}{where}")
        if len(found) > 1:
            raise AmbiguousId(f"{text!r} is the start of several ids ({found[0][:12]}, {found[1][:12]}…): give more of it")
        return found[0]

    # -- listing --------------------------------------------------------------------------

    async def _page(self, page_id: str | None, limit: int, title: str | None = None) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if page_id:
            params["page_id"] = page_id
        if title:
            params["title__contains"] = title
        page = await self.http.json("GET", f"{CONVERSATIONS}/search", params=params)
        if not isinstance(page, dict) or not isinstance(page.get("items"), list):
            raise ConvtuiError(f"{self.where} answered a search with something else than a page: is it an OpenHands server?")
        return page

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
        """A page, newest activity first (the server's order). The title words
        are the server's filter; repository, trigger and status are applied
        here to the server's pages: a page may then hold fewer than `limit`
        while `next_page_id` says more may follow."""
        if not 1 <= limit <= PAGE_MAX:
            raise InvalidInput(f"limit must be 1-{PAGE_MAX}, not {limit}")
        if event_words or event_path or event_command:
            raise unsupported("searching what conversations did (--text, --file, --cmd)", "filter by title words instead")
        if archived:
            raise unsupported("the archive", "it keeps every conversation in one list")
        if status is not None and status.strip().lower() == "unread":
            raise unsupported("unread markers")
        wanted = None
        if selected_repository is not None or conversation_trigger is not None or status is not None:
            from .service import enum_value, status_value  # (the local store's rules, read when filtering)

            trigger = enum_value(ConversationTrigger, conversation_trigger, "trigger")
            wanted = ConversationFilter(repository=selected_repository, trigger=trigger, status=status_value(status))
        results: list[ConversationInfo] = []
        for _ in range(SCAN_PAGES if wanted is not None else 1):
            page = await self._page(page_id, limit, (query or "").strip() or None)
            infos = [conversation_info(item) for item in page["items"]]
            results += [info for info in infos if wanted is None or matches(info, wanted, ())]
            page_id = page.get("next_page_id")
            if not page_id or len(results) >= limit:
                break
        return ConversationInfoResultSet(results=results[:limit], next_page_id=page_id)

    async def get(self, conversation_id: str) -> ConversationInfo:
        full_id = await self.resolve(conversation_id)
        return conversation_info(await self._item(full_id))

    async def followed(self, running: Sequence[str]) -> tuple[list[ConversationInfo], set[str]]:
        """What to follow the server by: the newest page and, beyond it, the
        conversations in `running` (each one's end must be seen, however old
        it is); and which of `running` the server no longer has."""
        page = await self._page(None, PAGE_MAX)
        infos = [conversation_info(item) for item in page["items"]]
        on_page = {info.conversation_id for info in infos}
        beyond = [running_id for running_id in running if running_id not in on_page]
        gone: set[str] = set()
        for start in range(0, len(beyond), BATCH_MAX):
            chunk = beyond[start : start + BATCH_MAX]
            answer = await self.http.json("GET", CONVERSATIONS, params={"ids": chunk})
            if not isinstance(answer, list) or len(answer) != len(chunk):
                raise ServerFailed(f"{self.where} answered a batch get with something else than a list of {len(chunk)}")
            for asked, item in zip(chunk, answer):
                if isinstance(item, dict):
                    infos.append(conversation_info(item))
                else:
                    gone.add(asked)
        return infos, gone

    async def _item(self, full_id: str) -> dict[str, Any]:
        answer = await self.http.json("GET", CONVERSATIONS, params={"ids": full_id})
        item = answer[0] if isinstance(answer, list) and answer else None
        if not isinstance(item, dict):
            raise NotFound(f"no conversation {full_id} on {self.where}")
        return item

    # -- changes ------------------------------------------------------------------------

    async def new_conversation(self, request: NewConversationRequest) -> ConversationResponse:
        """Asks the server to start one and follows its start task until the
        conversation exists (its sandbox may take a minute or more)."""
        if request.replay_json:
            raise unsupported("replaying a trajectory")
        if request.create_microagent is not None:
            raise unsupported("creating a microagent conversation")
        body: dict[str, Any] = {
            "selected_repository": request.repository,
            "selected_branch": request.selected_branch,
            "git_provider": request.git_provider.value if request.git_provider else None,
            "system_message_suffix": request.conversation_instructions,
            "trigger": request.trigger.value if request.trigger.value in SERVER_TRIGGERS else None,
            "suggested_task": _suggested_task(request),
        }
        if request.initial_user_msg or request.image_urls:
            content: list[dict[str, Any]] = [{"type": "text", "text": request.initial_user_msg or ""}]
            if request.image_urls:
                content.append({"type": "image", "image_urls": list(request.image_urls)})
            body["initial_message"] = {"role": "user", "content": content, "run": True}
        task = await self.http.json("POST", CONVERSATIONS, json={k: v for k, v in body.items() if v is not None})
        full_id = await self._follow_start(task)
        info = conversation_info(await self._item(full_id))
        return ConversationResponse(status="ok", conversation_id=full_id, conversation_status=info.status)

    async def _follow_start(self, task: dict[str, Any]) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            status = task.get("status")
            if status == "READY" and task.get("app_conversation_id"):
                return str(task["app_conversation_id"]).replace("-", "")
            if status == "ERROR":
                raise ConvtuiError(f"{self.where} could not start the conversation: {task.get('detail') or 'no reason given'}")
            if time.monotonic() > deadline:
                step = START_STEPS.get(str(status), str(status))
                raise ConvtuiError(f"the conversation is still {step} after {START_TIMEOUT:g} s (start task {task.get('id')}); it may appear later")
            await asyncio.sleep(START_POLL)
            answer = await self.http.json("GET", f"{CONVERSATIONS}/start-tasks", params={"ids": task["id"]})
            if isinstance(answer, list) and answer and isinstance(answer[0], dict):
                task = answer[0]

    async def rename(self, conversation_id: str, title: str) -> ConversationInfo:
        try:
            title = validate_title(title)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        full_id = await self.resolve(conversation_id)
        if "rename" not in self.v0_only:
            answer = await self.http.json("PATCH", f"{CONVERSATIONS}/{full_id}", json={"title": title})
            if not isinstance(answer, dict) or answer.get("title") == title:
                return conversation_info(answer)
            self.v0_only.add("rename")  # answered unchanged: a V1 PATCH without titles (1.6)
        await self.http.request("PATCH", f"{V0_CONVERSATIONS}/{full_id}", json={"title": title})
        return conversation_info(await self._item(full_id))

    async def delete(self, conversation_id: str) -> bool:
        full_id = await self.resolve(conversation_id)
        if "delete" not in self.v0_only:
            try:
                await self.http.request("DELETE", f"{CONVERSATIONS}/{full_id}")
            except NoSuchRoute:
                self.v0_only.add("delete")  # 1.6: only its V0 route deletes
            except NotFound:
                return False
            else:
                return True
        try:
            return await self.http.json("DELETE", f"{V0_CONVERSATIONS}/{full_id}") is True  # false: no such conversation
        except NotFound:
            return False

    async def start(self, conversation_id: str, confirm: bool | None = None, until_idle: bool = False) -> ConversationStatus:
        """Resumes the conversation's sandbox (the agent goes on where it was)."""
        item = await self._item(await self.resolve(conversation_id))
        if item.get("sandbox_status") == "MISSING":
            raise ConvtuiError("its sandbox is gone (deleted on the server): send a message in the OpenHands web UI to recreate it")
        if item.get("sandbox_status") in ("PAUSED", "ERROR"):
            await self.http.request("POST", f"/api/v1/sandboxes/{item['sandbox_id']}/resume")
            return ConversationStatus.STARTING
        return conversation_info(item).status

    async def stop(self, conversation_id: str) -> ConversationResponse:
        """Pauses the conversation's sandbox, as the OpenHands web UI does."""
        item = await self._item(await self.resolve(conversation_id))
        running = item.get("sandbox_status") in ("RUNNING", "STARTING")
        if running:
            await self.http.request("POST", f"/api/v1/sandboxes/{item['sandbox_id']}/pause")
        from .interface import stop_response

        return stop_response(str(item["id"]), running, ConversationStatus.STOPPED if running else conversation_info(item).status)

    async def stop_explained(self, conversation_id: str) -> ConversationResponse:
        return await self.stop(conversation_id)

    async def send_message(self, conversation_id: str, text: str) -> EventDict:
        if not text.strip():
            raise InvalidInput("the message is empty")
        full_id = await self.resolve(conversation_id)
        body = {"role": "user", "content": [{"type": "text", "text": text}], "run": True}
        answer = None
        if "send" not in self.v0_only:
            try:
                answer = await self.http.json("POST", f"{CONVERSATIONS}/{full_id}/send-message", json=body, idempotent=False)
            except NoSuchRoute:
                self.v0_only.add("send")  # 1.6: messages go to the agent server
        if "send" in self.v0_only:
            answer = await self._send_to_agent_server(full_id, body)
        if isinstance(answer, dict) and answer.get("success") is False:
            raise ConvtuiError(f"{self.where} did not take the message: {answer.get('message') or 'no reason given'}")
        return {"source": "user", "action": "message", "message": text, "args": {"content": text}}

    async def _send_to_agent_server(self, full_id: str, body: dict[str, Any]) -> Any:
        """`body` posted to the conversation's agent server (what the V1
        send-message route does for 1.7 and later), with its own key."""
        item = await self._item(full_id)
        sandbox = str(item.get("sandbox_status")).lower()
        url, headers = _agent_server(item, f"{self.where} refused it: its sandbox is {sandbox}: start the conversation first")
        return await self.http.json("POST", f"{url}/events", json=body, headers=headers, idempotent=False)

    # -- events ---------------------------------------------------------------------------

    async def run_updates(self, full_id: str, history: int) -> AsyncIterator[tuple[list[EventDict], ConversationInfo]]:
        """What `run --remote` shows: the conversation's last `history`
        events and its state, then every FOLLOW_SECONDS its new events and
        its state again (the server keeps no stream a client can follow)."""
        trail = EventTrail()
        events = await self._read_events(full_id, trail)
        yield events[-history:] if history else [], await self.get(full_id)
        while True:
            await asyncio.sleep(FOLLOW_SECONDS)
            new = await self._read_events(full_id, trail)
            yield new, await self.get(full_id)

    async def _events(self, full_id: str) -> list[EventDict]:
        """Every event, oldest first (see EventTrail)."""
        trail = EventTrail()
        await self._read_events(full_id, trail)
        return trail.events

    async def _read_events(self, full_id: str, trail: EventTrail) -> list[EventDict]:
        """The events after those `trail` holds, added to it; returns them.
        Asked from the newest timestamp held on; where the server fails
        that (1.6, for a running conversation), every event again, the
        ones held skipped."""
        new: list[EventDict] = []
        page_id = None
        since = trail.last_timestamp if "events_since" not in self.v0_only else None
        skip = trail.raw_count if since is None else 0
        while trail.raw_count < EVENTS_MAX:
            params: dict[str, Any] = {"limit": PAGE_MAX, "sort_order": "TIMESTAMP"}
            if since is not None:
                params["timestamp__gte"] = since
            if page_id:
                params["page_id"] = page_id
            try:
                page = await self.http.json("GET", f"/api/v1/conversation/{full_id}/events/search", params=params)
            except ServerFailed:
                if since is None or page_id:
                    raise
                self.v0_only.add("events_since")
                return await self._read_events(full_id, trail)
            for raw in page.get("items") or []:
                if skip:
                    skip -= 1
                    continue
                event = trail.take(raw) if isinstance(raw, dict) else None
                if event is not None:
                    new.append(event)
            page_id = page.get("next_page_id")
            if not page_id:
                break
        trail.events += new
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
        return select_events(await self._events(await self.resolve(conversation_id)), start_id, end_id, reverse, filter, limit)

    async def export_json(self, conversation_id: str) -> bytes:
        from .trajectory import to_json

        return to_json(await self._events(await self.resolve(conversation_id)))

    async def export_markdown(self, conversation_id: str) -> str:
        from .trajectory import to_markdown

        full_id = await self.resolve(conversation_id)
        return to_markdown(await self.get(full_id), await self._events(full_id))

    async def export_zip(self, conversation_id: str) -> bytes:
        """The server's own export, as its web UI downloads it: a zip of the
        conversation's metadata and every event as the server keeps them."""
        full_id = await self.resolve(conversation_id)
        try:
            response = await self.http.request("GET", f"{CONVERSATIONS}/{full_id}/download", read_timeout=EXPORT_TIMEOUT)
        except NoSuchRoute:
            await self._item(full_id)  # (an id it does not have is said as such)
            raise unsupported("the server's zip export (OpenHands 1.7 and later have it)", "export as json or md") from None
        if not response.content.startswith(b"PK"):
            raise ServerFailed(f"{self.where} answered the export with something that is not a zip")
        return response.content

    async def workspace(self, conversation_id: str) -> str:
        item = await self._item(await self.resolve(conversation_id))
        return f"sandbox {item.get('sandbox_id')} on {self.where}"

    async def sandbox_status(self) -> SandboxStatus:
        return SandboxStatus(sandboxed=True, description=f"in the sandboxes of {self.where} (its runtime)")

    # -- what only convtui's own store has ------------------------------------------------

    async def change_archived(self, conversation_id: str, archived: bool) -> tuple[ConversationInfo, str | None]:
        raise unsupported("archiving", "delete it, or leave it in the list")

    async def trash(self, conversation_id: str) -> str:
        raise unsupported("the trash", "`convtui --remote NAME delete` deletes for good")

    async def list_trash(self) -> list[TrashedConversation]:
        raise unsupported("the trash")

    async def restore(self, conversation_id: str) -> ConversationInfo:
        raise unsupported("the trash")

    async def empty_trash(self, conversation_ids: Sequence[str] | None = None) -> int:
        raise unsupported("the trash")

    async def import_trajectory(self, raw: bytes) -> ConversationResponse:
        raise unsupported("importing a trajectory")

    async def set_experiment_config(self, conversation_id: str, config: ExperimentConfig | dict[str, Any]) -> bool:
        raise unsupported("an experiment config")

    async def processes(self, conversation_id: str) -> list[str]:
        raise unsupported("listing a workspace's background processes")

    async def stop_processes(self, conversation_id: str) -> int:
        raise unsupported("stopping a workspace's background processes")

    async def pending_action(self, conversation_id: str) -> EventDict | None:
        """The action a conversation in confirmation mode waits on (None: it waits on none)."""
        full_id = await self.resolve(conversation_id)
        return await self._waited_on(full_id, await self._item(full_id))

    async def _waited_on(self, full_id: str, item: dict[str, Any]) -> EventDict | None:
        if item.get("execution_status") != "waiting_for_confirmation":
            return None
        return pending_action(await self.search_events(full_id))

    async def pending_diff(self, conversation_id: str) -> list[str] | None:
        """The diff of the file edit waited on, from the file as the
        conversation's agent server has it and the rules of OpenHands'
        editor (see openhands_edit)."""
        from .edit_preview import diff_lines
        from .events import event_kind
        from .openhands_edit import EDITS, planned_text
        from .redaction import Redactor, provider_keys_in_environment

        full_id = await self.resolve(conversation_id)
        item = await self._item(full_id)
        action = await self._waited_on(full_id, item)
        args = (action or {}).get("args") or {}
        if action is None or event_kind(action) != "edit" or args.get("command") not in EDITS:
            return None
        path = args.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidInput(f"the edit names no absolute path ({str(path)[:80]!r})")
        before = await self._agent_file(item, path)
        redact = Redactor([self.http.api_key, item.get("session_api_key"), *provider_keys_in_environment()])
        return diff_lines(path, before, planned_text(args, before), redact)

    async def _agent_file(self, item: dict[str, Any], path: str) -> str | None:
        """The text of the file at `path` in the conversation's sandbox, as
        its agent server gives it (None: no such file)."""
        url, headers = _agent_server(item)
        response = await self.http.request(
            "GET", f"{url.split('/api/conversations/')[0]}/api/file/download", params={"path": path},
            headers={**headers, "Range": f"bytes=0-{PREVIEW_BYTES}"}, allow=(404, 416),
        )  # fmt: skip
        if response.status_code == 404:
            return None
        if response.status_code == 416:  # (a range of an empty file)
            return ""
        total = response.headers.get("content-range", "").rpartition("/")[2]
        if len(response.content) > PREVIEW_BYTES or (total.isdigit() and int(total) > PREVIEW_BYTES):
            raise InvalidInput(f"{path} is larger than {PREVIEW_BYTES // 1024:,} KiB: no preview of the edit")
        try:
            return response.content.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{path} is not UTF-8 text: no preview of the edit") from None

    async def _respond(self, conversation_id: str, answer: dict[str, Any]) -> tuple[str, dict[str, str]]:
        """`answer` to the action waited on, sent to the conversation's agent
        server (where confirmations go) with its own key; that server's
        address and headers."""
        full_id = await self.resolve(conversation_id)
        item = await self._item(full_id)
        if await self._waited_on(full_id, item) is None:
            raise InvalidInput("no action waits for approval in this conversation")
        url, headers = _agent_server(item)
        await self.http.request("POST", f"{url}/events/respond_to_confirmation", json=answer, headers=headers, idempotent=False)
        return url, headers

    async def approve(self, conversation_id: str, always: bool = False) -> None:
        """Runs the action; `always` also stops asking in this conversation
        (the agent server's NeverConfirm policy)."""
        url, headers = await self._respond(conversation_id, {"accept": True})
        if always:
            body = {"policy": {"kind": "NeverConfirm"}}
            await self.http.request("POST", f"{url}/confirmation_policy", json=body, headers=headers)

    async def reject(self, conversation_id: str, reason: str | None = None) -> None:
        await self._respond(conversation_id, {"accept": False, **({"reason": reason} if reason else {})})

    async def inbox(self) -> list[InboxItem]:
        """The conversations of the newest pages that wait for a person."""
        infos: list[ConversationInfo] = []
        page_id = None
        for _ in range(SCAN_PAGES):
            page = await self._page(page_id, PAGE_MAX)
            infos += [conversation_info(item) for item in page["items"]]
            page_id = page.get("next_page_id")
            if not page_id:
                break
        return await self._inbox_of(infos)

    async def _inbox_of(self, infos: Sequence[ConversationInfo]) -> list[InboxItem]:
        items = []
        for info in infos:
            kind = inbox_kind(info)
            if kind is None:
                continue
            recent = await self.search_events(info.conversation_id, reverse=True, limit=INBOX_EVENTS_LOOKED_AT)
            action = pending_action(list(reversed(recent))) if kind is InboxKind.APPROVE else None
            items.append(inbox_item(info, kind, action, recent))
        return oldest_first(items)

    async def dismiss(self, conversation_id: str) -> ConversationInfo:
        raise unsupported("dismissing", "a conversation leaves the inbox when it runs again or is stopped")

    async def mark_seen(self, conversation_id: str, event_id: int) -> ConversationInfo:
        raise unsupported("unread markers yet")

    async def set_always_approve(self, conversation_id: str, on: bool) -> ConversationInfo:
        raise unsupported("always approve", "set the confirmation mode in the server's settings")

    async def remember_prompt(self, conversation_id: str, event_id: int) -> str:
        """From the events around `event_id` on the server, by this
        machine's model (convtui's settings: the server's model is its own)."""
        from .llm import LLMConfig
        from .remember import remember_prompt

        full_id = await self.resolve(conversation_id)
        config = LLMConfig.from_settings(await self.load_settings())
        return await remember_prompt(LoadedEvents(await self._events(full_id)), event_id, config)

    def _settings(self) -> SettingsStore:
        if self.settings_store is None:
            raise unsupported("convtui's settings", "the server's settings are changed in its own web UI")
        return self.settings_store

    async def load_settings(self) -> Settings:
        """convtui's own settings, this machine's (`root`)."""
        return await asyncio.to_thread(self._settings().load)

    async def update_settings(self, values: dict[str, Any]) -> Settings:
        return await asyncio.to_thread(self._settings().update, values)

    async def settings_overrides(self) -> dict[str, str]:
        return {} if self.settings_store is None else self.settings_store.overridden()

    async def position(self) -> str:
        return ""  # (the server keeps no stream: following starts when `updates` is)

    async def updates(self, position: str | None = None) -> AsyncIterator[LoopUpdate | StreamReset]:
        """Each change of a conversation's state from when this starts: the
        server asked every FOLLOW_SECONDS (`followed`). A server that stops
        answering is said to `on_wait`, and asked again."""
        known: dict[str, ConversationInfo] = {}
        first = True
        while True:
            running = [i for i, info in known.items() if info.status in (ConversationStatus.RUNNING, ConversationStatus.STARTING)]
            try:
                infos, gone = await self.followed(running)
            except ConvtuiError as error:
                if self.http.on_wait is not None:
                    self.http.on_wait(f"{error}; asking again in {FOLLOW_SECONDS:g} s")
                await asyncio.sleep(FOLLOW_SECONDS)
                continue
            for gone_id in gone:
                known.pop(gone_id, None)
            for info in infos:
                before = known.get(info.conversation_id)
                known[info.conversation_id] = info
                update = status_changed(info)
                if not first and (before is None or status_changed(before) != update):
                    yield update
            first = False
            await asyncio.sleep(FOLLOW_SECONDS)

    async def wait(self, conversation_id: str) -> None:
        return None

    async def watch_text(self, conversation_id: str) -> None:
        return None  # the server's replies are read as events, whole


class LoadedEvents:
    """An event log's reads (those remember_prompt makes) over events in memory."""

    def __init__(self, events: list[EventDict]) -> None:
        self.events = events

    def get(self, event_id: int) -> EventDict | None:
        return next((event for event in self.events if event.get("id") == event_id), None)

    def search_events(
        self, start_id: int = 0, end_id: int | None = None, reverse: bool = False, filter: EventFilter | None = None, limit: int | None = None
    ) -> list[EventDict]:
        return select_events(self.events, start_id, end_id, reverse, filter, limit)


def status_changed(info: ConversationInfo) -> StatusChanged:
    """A conversation's state as a loop's update says it."""
    return StatusChanged(info.conversation_id, info.status, info.runtime_status, info.agent_state, info.status_message)


def select_events(
    events: list[EventDict], start_id: int, end_id: int | None, reverse: bool, filter: EventFilter | None, limit: int | None
) -> list[EventDict]:
    """What search_events answers from every event read."""
    chosen = [
        event
        for event in events
        if event["id"] >= start_id and (end_id is None or event["id"] <= end_id) and (filter is None or filter.include(event))
    ]
    if reverse:
        chosen.reverse()
    return chosen if limit is None else chosen[:limit]


def _suggested_task(request: NewConversationRequest) -> dict[str, Any] | None:
    """The task as OpenHands takes it (its provider is required there: GitHub, as convtui assumes)."""
    if request.suggested_task is None:
        return None
    task = request.suggested_task.model_dump(mode="json")
    return {**task, "git_provider": task["git_provider"] or "github"}


def _agent_server(
    item: dict[str, Any], refusal: str = "its sandbox is not running, so nothing waits for approval there"
) -> tuple[str, dict[str, str]]:
    """The address of a conversation's agent server (where confirmations,
    its files and, on 1.6, messages go) and the headers with its own key.
    Raises InvalidInput(`refusal`) when its sandbox does not run."""
    url, key = item.get("conversation_url"), item.get("session_api_key")
    if item.get("sandbox_status") != "RUNNING" or not url:
        raise InvalidInput(refusal)
    return str(url), ({SESSION_KEY_HEADER: key} if key else {})
