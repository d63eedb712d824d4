"""Replaying a recorded OpenHands trajectory: which of its events become
actions to carry out again, and in what form."""

from __future__ import annotations

import orjson

from .events import EventDict
from .history import tool_call_arguments

REPLAYED_ACTIONS = frozenset({"message", "run", "read", "edit", "think", "finish"})
_STEP_IDENTITY = ("source", "action", "message")
_EDIT_FIELDS = ("command", "path", "file_text", "old_str", "new_str", "insert_line")


def replay_steps(trajectory: list[EventDict]) -> list[EventDict]:
    """The actions to replay, in order, as fresh events (no id, timestamp or
    cause). Observations are dropped: replaying produces new ones."""
    steps = []
    for event in trajectory:
        kind = event.get("action")
        if kind not in REPLAYED_ACTIONS:
            continue
        step = {key: value for key, value in event.items() if key not in ("id", "timestamp", "cause")}
        if kind == "edit":
            step["args"] = _editor_arguments(event)
        steps.append(step)
    return steps


def _matched_steps(steps: list[EventDict], events: list[EventDict]) -> list[EventDict]:
    """The logged actions that are `steps`, from the first: each step is
    looked for, in order, among the actions (by source, kind and message)."""
    matched: list[EventDict] = []
    for event in events:
        if len(matched) == len(steps):
            break
        step = steps[len(matched)]
        if event.get("action") is not None and all(event.get(key) == step.get(key) for key in _STEP_IDENTITY):
            matched.append(event)
    return matched


def steps_recorded(steps: list[EventDict], events: list[EventDict]) -> int:
    """How many of `steps`, from the first, a replay cut short has already
    recorded in `events`."""
    return len(_matched_steps(steps, events))


def replayed_event_ids(steps: list[EventDict], events: list[EventDict]) -> set[int]:
    """The ids of the events a replay recorded (or an import brought): the
    actions that are `steps` and the observations they caused. What else is
    in the log came from the user and the agent live."""
    actions = {event["id"] for event in _matched_steps(steps, events)}
    return actions | {event["id"] for event in events if event.get("observation") and event.get("cause") in actions}


def _editor_arguments(event: EventDict) -> dict:
    """OpenHands' edit actions (impl_source oh_aci) keep the editor call in
    the tool call, not in `args`; take the call's arguments when `args` lack
    a command."""
    args = dict(event.get("args") or {})
    if "command" in args:
        return args
    try:
        called = orjson.loads(tool_call_arguments(event))
    except orjson.JSONDecodeError:
        called = {}
    if isinstance(called, dict) and called.get("command"):
        merged = {key: called[key] for key in _EDIT_FIELDS if key in called}
        merged["thought"] = args.get("thought", "")
        return merged
    # An old-style edit: the whole new content of a file.
    return {"command": "create", "path": args.get("path", ""), "file_text": args.get("content", "")}
