"""Per-conversation event logs: append-only JSON lines in the OpenHands
trajectory shape, fsynced before an append returns, safe for several
processes, and tolerant of the torn last line a crash can leave."""

from __future__ import annotations

import bisect
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .durable_files import InterProcessLock
from .errors import InvalidInput, StorageError, describe_os_error, first_validation_error
from .models import format_timestamp, utc_now

log = logging.getLogger(__name__)

EventDict = dict[str, Any]

# Kinds that are bookkeeping, not something the agent saw or did.
STATE_KINDS = frozenset({"null", "change_agent_state", "agent_state_changed"})


class Event(BaseModel):
    """Validates one event at the edges (import, append). Unknown keys are kept
    as they are so that an OpenHands trajectory round-trips unchanged."""

    model_config = ConfigDict(extra="allow")

    # Bounded well inside 64 bits: ids are stored as JSON integers and the
    # next event's id is the last one plus one.
    id: int | None = Field(default=None, ge=0, le=2**62)
    timestamp: str | None = None
    source: Literal["user", "agent", "environment"] | None = None
    message: str | None = None
    action: str | None = None
    observation: str | None = None
    args: dict[str, Any] | None = None
    content: str | None = None
    extras: dict[str, Any] | None = None
    cause: int | None = Field(default=None, ge=-1, le=2**62)
    hidden: bool | None = None

    @field_validator("timestamp")
    @classmethod
    def _timestamp(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f"timestamp {value[:40]!r} is not ISO 8601") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Event:
        if (self.action is None) == (self.observation is None):
            raise ValueError("an event has exactly one of 'action' and 'observation'")
        return self


def event_kind(event: EventDict) -> str:
    """'message', 'run', ...: the action or observation name."""
    return event.get("action") or event.get("observation") or "null"


def qualified_kind(event: EventDict) -> str:
    """'action:run' or 'observation:run'."""
    if event.get("action") is not None:
        return f"action:{event['action']}"
    return f"observation:{event.get('observation')}"


def event_text(event: EventDict) -> str:
    """The words of an event a person would search for."""
    parts = [event.get("message") or "", event.get("content") or ""]
    args = event.get("args") or {}
    for key in ("content", "command", "path", "thought", "code", "file_text", "new_str", "old_str"):
        value = args.get(key)
        if isinstance(value, str):
            parts.append(value)
    return "\n".join(part for part in parts if part)


def exit_code_of(event: EventDict) -> int | None:
    """A run observation's exit code: in `extras.metadata` as OpenHands
    writes it (and convtui since), or flat in `extras` as older logs have it."""
    extras = event.get("extras") or {}
    metadata = extras.get("metadata")
    code = metadata.get("exit_code") if isinstance(metadata, dict) else extras.get("exit_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def openhands_event(event: EventDict) -> EventDict:
    """`event` in the shape OpenHands' event_from_dict reads, for events
    older convtui versions logged: a run action's timeout on the action, not
    in its args; a run observation's exit code in `metadata`, without the
    extras OpenHands has no field for."""
    metadata = event.get("tool_call_metadata")
    if isinstance(metadata, dict) and "arguments" in metadata:
        event = {**event, "tool_call_metadata": _arguments_in_response(metadata)}
    if event.get("action") == "run":
        args = dict(event.get("args") or {})
        timeout = args.pop("timeout", None)
        if args.pop("background", False) and not str(args.get("command", "")).rstrip().endswith("&"):
            args["command"] = f"{args.get('command', '')} &"
        event = {**event, "args": args}
        if timeout is not None and "timeout" not in event:
            event["timeout"] = timeout
    elif event.get("observation") == "run":
        extras = dict(event.get("extras") or {})
        if not isinstance(extras.get("metadata"), dict):
            code = extras.pop("exit_code", None)
            extras["metadata"] = command_metadata(code if isinstance(code, int) else -1)
        for name in ("exit_code", "timed_out", "truncated", "background"):
            extras.pop(name, None)
        extras.setdefault("command", "")
        extras.setdefault("hidden", False)
        event = {**event, "extras": extras}
    return event


def _arguments_in_response(metadata: dict[str, Any]) -> dict[str, Any]:
    """Tool call metadata as older convtui versions kept it (the arguments
    beside it) in OpenHands' shape (the call inside model_response)."""
    metadata = dict(metadata)
    arguments = metadata.pop("arguments")
    response = dict(metadata.get("model_response") or {})
    if not response.get("choices"):
        call = {
            "id": metadata.get("tool_call_id"),
            "type": "function",
            "function": {"name": metadata.get("function_name"), "arguments": arguments},
        }
        response["choices"] = [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]}}]
    metadata["model_response"] = response
    return metadata


def command_metadata(exit_code: int) -> dict[str, Any]:
    """OpenHands' CmdOutputMetadata for a command convtui ran."""
    return {
        "exit_code": exit_code,
        "pid": -1,
        "username": None,
        "hostname": None,
        "working_dir": "/workspace",
        "py_interpreter_path": None,
        "prefix": "",
        "suffix": "",
    }


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


class EventFilter(BaseModel):
    """Which events a search keeps. Kinds may be plain ('run': both the action
    and the observation) or qualified ('action:run')."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exclude_hidden: bool = False
    include_kinds: frozenset[str] | None = None
    exclude_kinds: frozenset[str] | None = None
    query: str | None = None
    source: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None

    def include(self, event: EventDict) -> bool:
        if self.exclude_hidden and event.get("hidden"):
            return False
        kinds = (event_kind(event), qualified_kind(event))
        if self.include_kinds is not None and not any(k in self.include_kinds for k in kinds):
            return False
        if self.exclude_kinds is not None and any(k in self.exclude_kinds for k in kinds):
            return False
        if self.source is not None and event.get("source") != self.source:
            return False
        if self.start_date is not None or self.end_date is not None:
            try:
                moment = _parse_time(event.get("timestamp") or "")
            except ValueError:
                return False
            if self.start_date is not None and moment < _parse_time(self.start_date.isoformat()):
                return False
            if self.end_date is not None and moment > _parse_time(self.end_date.isoformat()):
                return False
        if self.query and self.query.lower() not in orjson.dumps(event).decode().lower():
            return False
        return True


def validate_event(raw: object) -> EventDict:
    """An event as it will be stored. Raises InvalidInput naming the problem:
    a missing kind, a wrong type, text that is not UTF-8, a number JSON
    cannot hold."""
    try:
        event = Event.model_validate(raw).model_dump(mode="json", exclude_unset=True)
    except ValueError as error:
        raise InvalidInput(f"invalid event: {first_validation_error(error)}") from None
    try:
        orjson.dumps(event)
    except TypeError as error:  # lone surrogates, integers beyond 64 bits
        raise InvalidInput(f"invalid event: {str(error).splitlines()[0]}") from None
    return event


AGENT_VISIBLE = EventFilter(exclude_hidden=True, exclude_kinds=STATE_KINDS)


class EventLog:
    """The event log of one conversation (`events.jsonl` in its directory).

    Reads are incremental: only bytes appended since the last read are
    parsed. A line without its newline at the end of the file is an append in
    progress or one torn by a crash; readers skip it, the next writer
    truncates it away (with a warning) before appending."""

    def __init__(
        self,
        directory: Path,
        redact: Callable[[EventDict], EventDict] | None = None,
        appended: Callable[[list[EventDict]], None] | None = None,
    ) -> None:
        """`redact`, if given, cleans every event before it is written (the
        service passes one that removes the API keys in force); `appended`
        is told what each append stored, once it is durable (the search
        index follows it)."""
        self.directory = Path(directory)
        self._redact = redact
        self._appended = appended
        self.path = self.directory / "events.jsonl"
        self._lock = InterProcessLock(self.directory / "events.lock")
        self._read_lock = threading.Lock()
        self._events: list[EventDict] = []
        self._ids: list[int] = []
        self._offset = 0
        self._inode: int | None = None
        self._warned_torn_at: int | None = None

    # -- reading -----------------------------------------------------------------

    def _catch_up(self) -> int:
        """Parse what was appended since the last read; returns the file size."""
        with self._read_lock:
            try:
                with open(self.path, "rb") as handle:
                    stat = os.fstat(handle.fileno())
                    if stat.st_ino != self._inode or stat.st_size < self._offset:
                        self._events, self._ids, self._offset = [], [], 0
                        self._inode = stat.st_ino
                    if stat.st_size == self._offset:
                        return stat.st_size
                    handle.seek(self._offset)
                    chunk = handle.read()
            except FileNotFoundError:
                self._events, self._ids, self._offset, self._inode = [], [], 0, None
                return 0
            except OSError as error:
                raise StorageError(describe_os_error(error, "read")) from error
            complete = chunk.rfind(b"\n") + 1
            if complete < len(chunk) and self._warned_torn_at != self._offset + complete:
                self._warned_torn_at = self._offset + complete
                log.warning("%s: skipping an incomplete last line (%d bytes)", self.path, len(chunk) - complete)
            for number, line in enumerate(chunk[:complete].splitlines()):
                if not line.strip():
                    continue
                try:
                    event = orjson.loads(line)
                    event_id = int(event["id"])
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    log.warning("%s: skipping an unreadable line at byte %d", self.path, self._offset)
                    continue
                if self._ids and event_id <= self._ids[-1]:
                    log.warning("%s: skipping event %d, out of order", self.path, event_id)
                    continue
                self._events.append(event)
                self._ids.append(event_id)
            self._offset += complete
            return self._offset + (len(chunk) - complete)

    def __len__(self) -> int:
        self._catch_up()
        return len(self._events)

    def latest_id(self) -> int:
        """The highest event id, or -1 for an empty log."""
        self._catch_up()
        return self._ids[-1] if self._ids else -1

    def get(self, event_id: int) -> EventDict | None:
        self._catch_up()
        index = bisect.bisect_left(self._ids, event_id)
        if index < len(self._ids) and self._ids[index] == event_id:
            return dict(self._events[index])
        return None

    def search_events(
        self,
        start_id: int = 0,
        end_id: int | None = None,
        reverse: bool = False,
        filter: EventFilter | None = None,
        limit: int | None = None,
    ) -> list[EventDict]:
        """Events with start_id <= id <= end_id (end_id None: to the last),
        oldest first, or newest first with `reverse`, keeping those `filter`
        accepts, at most `limit` of them. So `search_events(end_id=n - 1,
        reverse=True, limit=4)` gives the 4 nearest events before n."""
        self._catch_up()
        low = bisect.bisect_left(self._ids, start_id)
        high = len(self._ids) if end_id is None else bisect.bisect_right(self._ids, end_id)
        positions: Iterable[int] = range(high - 1, low - 1, -1) if reverse else range(low, high)
        found: list[EventDict] = []
        for position in positions:
            event = self._events[position]
            if filter is None or filter.include(event):
                found.append(dict(event))
                if limit is not None and len(found) >= limit:
                    break
        return found

    def __iter__(self) -> Iterator[EventDict]:
        return iter(self.search_events())

    # -- writing -----------------------------------------------------------------

    def append(self, events: Iterable[EventDict], keep_ids: bool = False) -> list[EventDict]:
        """Append events durably and return them as stored (with `id` and
        `timestamp`). Ids continue from the last one unless `keep_ids`, for an
        import, where the events' own ids must each exceed the last."""
        validated = [validate_event(raw) for raw in events]
        if not validated:
            return []
        if self._redact is not None:
            validated = [self._redact(event) for event in validated]
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(describe_os_error(error, "create")) from error
        with self._lock:
            size = self._catch_up()
            next_id = (self._ids[-1] + 1) if self._ids else 0
            stored = []
            for event in validated:
                if keep_ids:
                    if event.get("id") is None or event["id"] < next_id:
                        raise InvalidInput(f"event ids must increase; {event.get('id')} follows {next_id - 1}")
                else:
                    event["id"] = next_id
                if not event.get("timestamp"):
                    event["timestamp"] = format_timestamp(utc_now())
                next_id = event["id"] + 1
                stored.append(event)
            payload = b"".join(orjson.dumps(event) + b"\n" for event in stored)
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o644)
            except OSError as error:
                raise StorageError(describe_os_error(error, "append to", self.path)) from error
            try:
                if size > self._offset:
                    log.warning("%s: removing a torn last line left by a crash", self.path)
                    os.ftruncate(fd, self._offset)
                os.lseek(fd, self._offset, os.SEEK_SET)
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            except OSError as error:
                # The append did not happen: take back what was written, so
                # neither a torn line nor an unconfirmed event stays behind.
                try:
                    os.ftruncate(fd, self._offset)
                except OSError:
                    pass
                raise StorageError(describe_os_error(error, "append to", self.path)) from error
            finally:
                os.close(fd)
            self._catch_up()
            if self._appended is not None:
                try:
                    self._appended(stored)
                except Exception:  # the events are stored: a follower's failure must not undo that
                    log.exception("%s: a follower of the appended events failed", self.path)
            return [dict(event) for event in stored]

