"""Turning a conversation's event log into the messages sent to the model.

Tool calls become an assistant message with `tool_calls`, followed at once
by one `tool` message per call (the API refuses anything in between), even
if the observation was logged later or never (a stopped loop)."""

from __future__ import annotations

from typing import Any

import orjson

from .events import EventDict, exit_code_of

SYSTEM_PROMPT = """You are convtui's coding agent. You work in a workspace mounted at /workspace.
Use the tools to inspect and change files and to run commands; paths outside /workspace are refused.
Work step by step, check your work by running it, and keep the user informed briefly.
When the task is done, call `finish` with a short summary. If you need the user's input, reply with a question and no tool call."""

MAX_OBSERVATION_CHARACTERS = 20_000


def system_prompt(instructions: str | None, repository: str | None, branch: str | None) -> str:
    parts = [SYSTEM_PROMPT]
    if repository:
        parts.append(f"The workspace holds a clone of {repository}" + (f" (branch {branch})." if branch else "."))
    if instructions:
        parts.append(f"Instructions for this conversation:\n{instructions}")
    return "\n\n".join(parts)


def tool_call_arguments(event: EventDict) -> str:
    """The raw arguments of the tool call behind an action: from the model
    response in its tool call metadata (as OpenHands and convtui record it;
    older convtui logs kept them beside it), else rebuilt from its args."""
    metadata = event.get("tool_call_metadata") or {}
    if isinstance(metadata.get("arguments"), str):
        return metadata["arguments"]
    response = metadata.get("model_response") or {}
    for choice in response.get("choices") or []:
        for call in (choice.get("message") or {}).get("tool_calls") or []:
            if call.get("id") == metadata.get("tool_call_id"):
                return (call.get("function") or {}).get("arguments") or "{}"
    args = {k: v for k, v in (event.get("args") or {}).items() if k not in ("thought", "impl_source")}
    return orjson.dumps(args).decode()


def _response_id(event: EventDict) -> str | None:
    metadata = event.get("tool_call_metadata") or {}
    return (metadata.get("model_response") or {}).get("id")


def _clip(text: str) -> str:
    if len(text) <= MAX_OBSERVATION_CHARACTERS:
        return text
    half = MAX_OBSERVATION_CHARACTERS // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


def _tool_result(observation: EventDict | None, action: EventDict) -> str:
    if observation is None:
        if action.get("action") == "finish":
            return "Finished."
        return "(no result: the loop stopped before this action completed)"
    content = observation.get("content") or observation.get("message") or ""
    if observation.get("observation") == "run" and exit_code_of(observation) is not None:
        content = f"{content}\n[exit code {exit_code_of(observation)}]"
    if observation.get("observation") == "user_rejected":
        content = content or "The user rejected this action."
    return _clip(content)


def build_messages(events: list[EventDict], system: str) -> list[dict[str, Any]]:
    """The chat messages for `events` (oldest first)."""
    observations: dict[int, EventDict] = {}
    orphan_errors: list[EventDict] = []
    for event in events:
        if event.get("observation") is None:
            continue
        if event.get("cause") is not None:
            observations.setdefault(event["cause"], event)
        elif (event.get("tool_call_metadata") or {}).get("tool_call_id"):
            orphan_errors.append(event)  # a bad tool call: no action was made
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}]
    pending: list[EventDict] = []  # tool actions of the current assistant turn

    def flush() -> None:
        if not pending:
            return
        thought = next((a.get("args", {}).get("thought") for a in pending if a.get("args", {}).get("thought")), None)
        messages.append(
            {
                "role": "assistant",
                "content": thought or None,
                "tool_calls": [
                    {
                        "id": action["tool_call_metadata"]["tool_call_id"],
                        "type": "function",
                        "function": {
                            "name": action["tool_call_metadata"].get("function_name") or "unknown",
                            "arguments": tool_call_arguments(action),
                        },
                    }
                    for action in pending
                ],
            }
        )
        for action in pending:
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": action["tool_call_metadata"]["tool_call_id"],
                    "content": _tool_result(observations.get(action.get("id", -1)), action),
                }
            )
        pending.clear()

    for event in events:
        if event.get("hidden"):
            continue
        metadata = event.get("tool_call_metadata") or {}
        if event.get("action") is not None:
            if metadata.get("tool_call_id"):
                if pending and _response_id(pending[-1]) != _response_id(event):
                    flush()
                pending.append(event)
                continue
            flush()
            kind, source = event["action"], event.get("source")
            text = (event.get("args") or {}).get("content") or event.get("message") or ""
            if kind == "message" and source == "user":
                images = [url for url in (event.get("args") or {}).get("image_urls") or [] if isinstance(url, str)]
                if images:  # litellm's content parts; llm.py turns them into words for a model without vision
                    parts = [{"type": "text", "text": text}, *({"type": "image_url", "image_url": {"url": url}} for url in images)]
                    messages.append({"role": "user", "content": parts})
                else:
                    messages.append({"role": "user", "content": text})
            elif kind in ("message", "finish") and source == "agent" and text:
                messages.append({"role": "assistant", "content": text})
        elif event in orphan_errors:
            flush()
            call_id = metadata["tool_call_id"]
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call_id,
                            "type": "function",
                            "function": {
                                "name": metadata.get("function_name") or "unknown",
                                "arguments": tool_call_arguments(event),
                            },
                        }
                    ],
                }
            )
            messages.append({"role": "tool", "tool_call_id": call_id, "content": event.get("content") or "error"})
    flush()
    return messages
