"""Trajectories: a conversation's events as OpenHands-compatible JSON (a list
of event objects) to export and import, and as Markdown to read."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import orjson

from .errors import InvalidInput
from .events import EventDict, event_kind, exit_code_of, validate_event
from .models import ConversationInfo

MAX_TRAJECTORY_BYTES = 200 * 1024 * 1024


def parse_trajectory(raw: bytes | str) -> list[EventDict]:
    """Validate a trajectory: a non-empty JSON list of events (or an object
    with a `trajectory` list). Raises InvalidInput naming the first bad event."""
    if len(raw) > MAX_TRAJECTORY_BYTES:
        raise InvalidInput(f"trajectory is larger than {MAX_TRAJECTORY_BYTES // 2**20} MiB")
    try:
        data: Any = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise InvalidInput(f"trajectory is not valid JSON: {error}") from None
    if isinstance(data, dict) and isinstance(data.get("trajectory"), list):
        data = data["trajectory"]
    if not isinstance(data, list):
        raise InvalidInput("trajectory must be a JSON list of events")
    if not data:
        raise InvalidInput("trajectory is empty: it holds no events")
    events = []
    previous_id = -1
    for position, item in enumerate(data):
        try:
            event = validate_event(item)
        except InvalidInput as error:
            raise InvalidInput(f"event {position}: {str(error).removeprefix('invalid event: ')}") from None
        if event.get("id") is None:
            event["id"] = previous_id + 1
        if event["id"] <= previous_id:
            raise InvalidInput(f"event {position}: id {event['id']} does not follow {previous_id}")
        previous_id = event["id"]
        events.append(event)
    return events


def to_json(events: list[EventDict]) -> bytes:
    return orjson.dumps(events, option=orjson.OPT_INDENT_2)


def to_zip(info: ConversationInfo, events: list[EventDict]) -> bytes:
    """The conversation in the layout of an OpenHands server's export (its
    web UI's download): meta.json, then event_NNNNNN_ID.json for each event."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("meta.json", info.model_dump_json(indent=2))
        for number, event in enumerate(events):
            archive.writestr(f"event_{number:06d}_{event.get('id')}.json", orjson.dumps(event, option=orjson.OPT_INDENT_2))
    return buffer.getvalue()


def _fence(text: str, language: str = "") -> str:
    """A fenced block longer than any backtick run inside `text`."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def _event_markdown(event: EventDict) -> str:
    args = event.get("args") or {}
    kind = event_kind(event)
    heading = f"### {event.get('id')} · {event.get('source', '?')} · "
    heading += f"{'action' if event.get('action') else 'observation'} `{kind}`"
    parts = [heading, f"*{event.get('timestamp', '')}*"]
    thought = args.get("thought")
    if thought:
        parts.append(f"> {thought}".replace("\n", "\n> "))
    if event.get("action"):
        if kind == "run" and args.get("command"):
            parts.append(_fence(args["command"], "bash"))
        elif kind == "edit":
            parts.append(f"`{args.get('command', 'edit')}` {args.get('path', '')}")
            body = args.get("file_text") or args.get("new_str") or args.get("content")
            if body:
                parts.append(_fence(body))
        elif kind in ("read",):
            parts.append(f"read {args.get('path', '')}")
        elif event.get("message"):
            parts.append(event["message"])
        elif args.get("content"):
            parts.append(args["content"])
    else:
        if exit_code_of(event) is not None:
            parts.append(f"exit code {exit_code_of(event)}")
        content = event.get("content") or ""
        if content:
            parts.append(_fence(content))
        elif event.get("message"):
            parts.append(event["message"])
    return "\n\n".join(part for part in parts if part)


def to_markdown(info: ConversationInfo, events: list[EventDict]) -> str:
    lines = [
        f"# {info.title}",
        "",
        f"- id: `{info.conversation_id}`",
        f"- status: {info.status.value}",
        f"- repository: {info.selected_repository or '-'} ({info.selected_branch or 'default branch'})",
        f"- trigger: {info.trigger.value if info.trigger else '-'}",
        f"- created: {info.created_at.isoformat()}",
        f"- updated: {info.last_updated_at.isoformat()}",
        f"- model: {info.llm_model or '-'}",
        f"- cost: {'unknown' if info.accumulated_cost is None else f'${info.accumulated_cost:.4f}'}",
        f"- tokens: {info.total_tokens} ({info.prompt_tokens} prompt, {info.completion_tokens} completion)",
        "",
        "---",
        "",
    ]
    body = "\n\n".join(_event_markdown(event) for event in events)
    return "\n".join(lines) + body + "\n"
