"""Replaying a recorded OpenHands trajectory: which of its events become
actions to carry out again, and in what form."""

from __future__ import annotations

import orjson

from .events import EventDict
from .history import tool_call_arguments

REPLAYED_ACTIONS = frozenset({"message", "run", "run_ipython", "read", "write", "edit", "think", "finish"})
# Bookkeeping of OpenHands' own: nothing to carry out, nothing to log.
NO_OP_ACTIONS = frozenset(
    {
        "recall", "condensation", "condensation_request", "system", "null", "change_agent_state",
        "pause", "resume", "stop", "start", "task_tracking", "loop_recovery", "reject",
    }
)  # fmt: skip
# Every other kind (browse, browse_interactive, call_tool_mcp, delegate, push,
# send_pr, ...) is logged with an observation saying it was skipped.
SKIPPED_ERROR_ID = "REPLAY_SKIPPED"
_STEP_IDENTITY = ("source", "action", "message")
_EDIT_FIELDS = ("command", "path", "file_text", "old_str", "new_str", "insert_line")


def replay_steps(trajectory: list[EventDict]) -> list[EventDict]:
    """The actions to replay, in order, as fresh events (no id, timestamp or
    cause). Observations are dropped: replaying produces new ones."""
    steps = []
    for event in trajectory:
        kind = event.get("action")
        if not isinstance(kind, str) or kind in NO_OP_ACTIONS:
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
    # An LLM-based edit (impl_source llm_based_edit): lines start..end
    # (1-based, inclusive; end -1: to the end) become its content.
    start, end = args.get("start", 1), args.get("end", -1)
    return {
        "command": "write",
        "path": args.get("path", ""),
        "content": args.get("content", ""),
        "start": max(0, start - 1) if isinstance(start, int) else 0,
        "end": end if isinstance(end, int) else -1,
        "thought": args.get("thought", ""),
    }


def skipped_kinds(steps: list[EventDict]) -> list[str]:
    """The kinds of the steps a replay cannot carry out, in order."""
    return [step["action"] for step in steps if step["action"] not in REPLAYED_ACTIONS]


def describe_skipped(kinds: list[str]) -> str:
    """"3 actions skipped (browse ×2, delegate)", or "" for none."""
    if not kinds:
        return ""
    counts: dict[str, int] = {}
    for kind in kinds:
        counts[kind] = counts.get(kind, 0) + 1
    listed = ", ".join(f"{kind} ×{count}" if count > 1 else kind for kind, count in counts.items())
    return f"{len(kinds)} action{'s' if len(kinds) != 1 else ''} skipped ({listed})"
