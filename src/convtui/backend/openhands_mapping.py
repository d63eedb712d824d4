"""What an OpenHands server's V1 answers mean in convtui's terms: an app
conversation as a ConversationInfo, an agent-SDK event as an event in the
trajectory shape the event log shows. Nothing is invented: a state the
server does not give stays None, and a sandbox that is MISSING is a stopped
conversation, listed like any other (it is not archived)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any

from .errors import InvalidInput
from .events import EventDict
from .models import AgentState, ConversationInfo, ConversationStatus, ConversationTrigger, ProviderType

HEX_ID = re.compile(r"[0-9a-f]{32}")

# sandbox_status -> the conversation's status
SANDBOX_STATUSES = {
    "STARTING": ConversationStatus.STARTING,
    "RUNNING": ConversationStatus.RUNNING,
    "PAUSED": ConversationStatus.STOPPED,
    "MISSING": ConversationStatus.STOPPED,
    "ERROR": ConversationStatus.ERROR,
}
SANDBOX_WORDS = {
    "PAUSED": "sandbox paused",
    "MISSING": "sandbox missing (deleted or not yet recreated)",
    "ERROR": "sandbox in error",
}
# execution_status -> agent state (only while the sandbox runs: else the server does not know)
EXECUTION_STATES = {
    "idle": AgentState.AWAITING_USER_INPUT,
    "running": AgentState.RUNNING,
    "paused": AgentState.PAUSED,
    "waiting_for_confirmation": AgentState.AWAITING_USER_CONFIRMATION,
    "finished": AgentState.FINISHED,
    "error": AgentState.ERROR,
    "stuck": AgentState.ERROR,
}


def conversation_id(text: str) -> str:
    """An OpenHands conversation id (a UUID, with or without dashes) as the
    server writes it: 32 lowercase hex digits. Raises InvalidInput, so no
    malformed id reaches the server (its PATCH answers one with a 500)."""
    try:
        return uuid.UUID(text.strip()).hex
    except (ValueError, AttributeError):
        raise InvalidInput(f"{text!r} is not an OpenHands conversation id (a UUID)") from None


def _time(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _enum(kind: type, value: Any) -> Any:
    try:
        return kind(value) if value is not None else None
    except ValueError:
        return None


def conversation_info(item: dict[str, Any]) -> ConversationInfo:
    """One item of /api/v1/app-conversations (search or get)."""
    identifier = str(item["id"]).replace("-", "")
    sandbox = item.get("sandbox_status")
    execution = item.get("execution_status")
    metrics = item.get("metrics") or {}
    usage = metrics.get("accumulated_token_usage") or {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    completion_tokens = int(usage.get("completion_tokens") or 0)
    message = SANDBOX_WORDS.get(sandbox)
    if execution == "stuck":
        message = "the agent is stuck"
    return ConversationInfo(
        conversation_id=identifier,
        title=item.get("title") or f"Conversation {identifier[:5]}",  # the server's own default
        user_id=item.get("created_by_user_id"),
        created_at=_time(item.get("created_at")),
        last_updated_at=_time(item.get("updated_at") or item.get("created_at")),
        status=SANDBOX_STATUSES.get(sandbox, ConversationStatus.STOPPED),
        agent_state=EXECUTION_STATES.get(execution) if sandbox == "RUNNING" else None,
        status_message=message,
        selected_repository=item.get("selected_repository"),
        selected_branch=item.get("selected_branch"),
        git_provider=_enum(ProviderType, item.get("git_provider")),
        trigger=_enum(ConversationTrigger, item.get("trigger")),
        pr_number=[n for n in item.get("pr_number") or [] if isinstance(n, int)],
        llm_model=item.get("llm_model"),
        accumulated_cost=metrics.get("accumulated_cost") or 0.0,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


# -- events ---------------------------------------------------------------------------

# Agent-SDK action kinds -> the OpenHands trajectory's action names.
ACTIONS = {
    "TerminalAction": "run",
    "ExecuteBashAction": "run",
    "FileEditorAction": "edit",
    "StrReplaceEditorAction": "edit",
    "FinishAction": "finish",
    "ThinkAction": "think",
    "TaskTrackerAction": "task_tracking",
    "BrowserNavigateAction": "browse",
}
# Kept out of the log: the server's own bookkeeping.
SKIPPED_EVENTS = {"ConversationStateUpdateEvent", "SystemPromptEvent", "TokenEvent", "Condensation", "CondensationRequest"}


def _text(content: Any) -> str:
    """The text of an SDK content list (or a plain string)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
    return ""


def _source(raw: dict[str, Any]) -> str:
    return {"user": "user", "agent": "agent"}.get(raw.get("source"), "environment")


def event_from_sdk(raw: dict[str, Any], number: int) -> EventDict | None:
    """An agent-SDK event (/api/v1/conversation/{id}/events) as a trajectory
    event numbered `number`, its own id kept as `openhands_id`; None for
    the server's bookkeeping (state updates, the system prompt)."""
    kind = raw.get("kind")
    if kind in SKIPPED_EVENTS:
        return None
    moment = raw.get("timestamp")
    if isinstance(moment, str) and moment[10:11] == "T" and not moment.endswith("Z") and "+" not in moment[10:]:
        moment += "+00:00"  # the agent SDK writes UTC without saying so
    event: EventDict = {"id": number, "timestamp": moment, "source": _source(raw), "openhands_id": raw.get("id")}
    answers = {"action_openhands_id": raw["action_id"]} if raw.get("action_id") else {}
    if kind == "MessageEvent":
        text = _text((raw.get("llm_message") or {}).get("content"))
        return {**event, "action": "message", "message": text, "args": {"content": text}}
    if kind == "ActionEvent":
        action = dict(raw.get("action") or {})
        name = ACTIONS.get(action.pop("kind", None), raw.get("tool_name") or "action")
        args = {key: value for key, value in action.items() if value is not None}
        thought = _text(raw.get("thought"))
        if thought:
            args.setdefault("thought", thought)
        message = action.get("message") if name == "finish" else raw.get("summary")
        return {**event, "action": name, "message": message or "", "args": args, "security_risk": raw.get("security_risk")}
    if kind == "ObservationEvent":
        observation = raw.get("observation") or {}
        name = ACTIONS.get(str(observation.get("kind", "")).replace("Observation", "Action"), raw.get("tool_name") or "observation")
        content = _text(observation.get("content"))
        if observation.get("is_error"):
            return {**event, **answers, "observation": "error", "content": content, "extras": {"tool": raw.get("tool_name")}}
        extras: dict[str, Any] = {}
        if name == "run":
            extras = {"command": observation.get("command") or "", "metadata": {"exit_code": observation.get("exit_code")}}
        elif observation.get("path"):
            extras = {"path": observation.get("path")}
        return {**event, **answers, "observation": name, "content": content, "extras": extras}
    if kind == "AgentErrorEvent":
        return {**event, **answers, "observation": "error", "content": str(raw.get("error") or "")}
    if kind == "UserRejectObservation":
        return {**event, **answers, "observation": "user_rejected", "content": str(raw.get("rejection_reason") or "")}
    if kind == "PauseEvent":
        return {**event, "observation": "agent_state_changed", "content": "paused", "extras": {"agent_state": "paused"}}
    return {**event, "observation": str(kind or "unknown"), "content": _text(raw.get("content")) or ""}


def pending_action(events: list[EventDict]) -> EventDict | None:
    """The newest action nothing has answered yet (what a conversation
    waiting for confirmation waits on)."""
    answered = {event.get("action_openhands_id") for event in events if event.get("observation")}
    for event in reversed(events):
        if event.get("action") not in (None, "message") and event.get("openhands_id") not in answered:
            return event
    return None
