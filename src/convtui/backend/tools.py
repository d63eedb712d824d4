"""The agent's tools: their definitions for the model, the validation of the
arguments the model sends, and their execution in the workspace.

A tool call becomes an action event; executing it gives an observation
event, both in the OpenHands trajectory shape."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConvtuiError, first_validation_error
from .events import EventDict
from .runtime import Workspace

TOOL_DEFINITIONS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "execute_bash",
            "description": (
                "Run a bash command in the workspace (/workspace). Commands do not keep state "
                "between calls except through files. Long output is cut in the middle."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The bash command to run."},
                    "timeout": {"type": "number", "description": "Seconds before the command is killed."},
                },
                "required": ["command"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "str_replace_editor",
            "description": (
                "View, create and edit files in /workspace. `view` shows a file with line numbers "
                "(or lists a directory); `create` writes a new file; `str_replace` replaces one "
                "exact, unique occurrence of old_str; `insert` adds new_str after line insert_line."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "enum": ["view", "create", "str_replace", "insert"]},
                    "path": {"type": "string", "description": "Path under /workspace."},
                    "file_text": {"type": "string", "description": "For create: the whole file."},
                    "old_str": {"type": "string", "description": "For str_replace: the exact text to replace."},
                    "new_str": {"type": "string", "description": "For str_replace and insert: the new text."},
                    "insert_line": {"type": "integer", "description": "For insert: the line to insert after."},
                    "view_range": {
                        "type": "array",
                        "items": {"type": "integer"},
                        "description": "For view: [first, last] line, last -1 for the end.",
                    },
                },
                "required": ["command", "path"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "think",
            "description": "Think something through; the thought is logged, nothing else happens.",
            "parameters": {
                "type": "object",
                "properties": {"thought": {"type": "string"}},
                "required": ["thought"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "finish",
            "description": "Say the task is done, with a short summary for the user.",
            "parameters": {
                "type": "object",
                "properties": {"message": {"type": "string", "description": "What was done."}},
                "required": ["message"],
            },
        },
    },
]

TOOL_NAMES = tuple(tool["function"]["name"] for tool in TOOL_DEFINITIONS)
# A read is logged as an event: a 10 MB file must not become a 10 MB event.
MAX_READ_CHARACTERS = 100_000
# Actions that change the workspace: they wait for approval in confirmation mode.
CONFIRMED_ACTIONS = frozenset({"run", "edit"})


class _Arguments(BaseModel):
    model_config = ConfigDict(extra="ignore")


class BashArguments(_Arguments):
    command: str = Field(min_length=1, max_length=100_000)
    timeout: float | None = Field(default=None, gt=0, le=86_400)


class EditorArguments(_Arguments):
    command: Literal["view", "create", "str_replace", "insert"]
    path: str = Field(min_length=1, max_length=4096)
    file_text: str | None = None
    old_str: str | None = None
    new_str: str | None = None
    insert_line: int | None = Field(default=None, ge=0)
    view_range: list[int] | None = Field(default=None, min_length=2, max_length=2)


class ThinkArguments(_Arguments):
    thought: str = ""


class FinishArguments(_Arguments):
    message: str = ""


class ToolCallError(ConvtuiError):
    """The model asked for a tool that does not exist or sent bad arguments."""


def action_from_tool_call(name: str, raw_arguments: str, thought: str = "") -> EventDict:
    """The action event (without id) for one tool call. Raises ToolCallError
    with a message the model can learn from."""
    try:
        arguments = orjson.loads(raw_arguments or "{}")
    except orjson.JSONDecodeError as error:
        raise ToolCallError(f"the arguments for {name} are not valid JSON ({error})") from None
    if not isinstance(arguments, dict):
        raise ToolCallError(f"the arguments for {name} must be a JSON object")
    try:
        if name == "execute_bash":
            bash = BashArguments.model_validate(arguments)
            args: dict[str, Any] = {"command": bash.command, "thought": thought, "is_input": False}
            if bash.timeout is not None:
                args["timeout"] = bash.timeout
            return {"source": "agent", "action": "run", "message": f"Running command: {bash.command}", "args": args}
        if name == "str_replace_editor":
            editor = EditorArguments.model_validate(arguments)
            if editor.command == "view":
                return {
                    "source": "agent",
                    "action": "read",
                    "message": f"Reading file: {editor.path}",
                    "args": {"path": editor.path, "view_range": editor.view_range, "thought": thought},
                }
            _require_editor_fields(editor)
            args = editor.model_dump(exclude_none=True)
            args["thought"] = thought
            return {"source": "agent", "action": "edit", "message": f"Editing {editor.path}", "args": args}
        if name == "think":
            think = ThinkArguments.model_validate(arguments)
            return {"source": "agent", "action": "think", "message": think.thought, "args": {"thought": think.thought}}
        if name == "finish":
            finish = FinishArguments.model_validate(arguments)
            return {
                "source": "agent",
                "action": "finish",
                "message": finish.message,
                "args": {"final_thought": finish.message, "outputs": {}, "thought": thought},
            }
    except ValidationError as error:
        raise ToolCallError(f"invalid arguments for {name}: {first_validation_error(error)}") from None
    raise ToolCallError(f"there is no tool named {name!r}; the tools are {', '.join(TOOL_NAMES)}")


def _require_editor_fields(editor: EditorArguments) -> None:
    needed = {"create": ("file_text",), "str_replace": ("old_str",), "insert": ("insert_line", "new_str")}
    for field_name in needed.get(editor.command, ()):
        if getattr(editor, field_name) is None:
            raise ToolCallError(f"str_replace_editor {editor.command} needs {field_name}")


def observation(kind: str, content: str, cause: int | None, **extras: Any) -> EventDict:
    event: EventDict = {"source": "agent", "observation": kind, "content": content, "extras": extras}
    if cause is not None:
        event["cause"] = cause
    return event


def error_observation(message: str, cause: int | None = None) -> EventDict:
    return observation("error", message, cause, error_id="")


async def execute(workspace: Workspace, action: EventDict, command_timeout: float) -> EventDict:
    """Carry out an action event (with its id) and return its observation.
    Failures the model should see (a bad path, no match) become an error
    observation; cancellation propagates (and kills a running command)."""
    kind = action.get("action")
    args = action.get("args") or {}
    cause = action.get("id")
    try:
        if kind == "run":
            timeout = min(float(args.get("timeout") or command_timeout), command_timeout)
            result = await workspace.run(args["command"], timeout=timeout)
            content = result.output
            if result.timed_out:
                content += f"\n[the command was killed after {timeout:g} s]"
            return observation(
                "run",
                content,
                cause,
                command=args["command"],
                exit_code=result.exit_code if result.exit_code is not None else -1,
                timed_out=result.timed_out,
                truncated=result.truncated,
            )
        if kind == "read":
            view_range = args.get("view_range")
            text = await asyncio.to_thread(
                workspace.read, args["path"], tuple(view_range) if view_range else None
            )
            if len(text) > MAX_READ_CHARACTERS:
                cut = len(text) - MAX_READ_CHARACTERS
                text = text[:MAX_READ_CHARACTERS] + f"\n[... {cut} more characters: view a line range ...]"
            return observation("read", text, cause, path=args["path"])
        if kind == "edit":
            return observation("edit", await asyncio.to_thread(_edit, workspace, args), cause, path=args["path"])
        if kind == "think":
            return observation("think", "Your thought has been logged.", cause)
    except ConvtuiError as error:
        return error_observation(str(error), cause)
    except (KeyError, TypeError, ValueError) as error:
        return error_observation(f"could not carry out {kind}: {error}", cause)
    return error_observation(f"{kind} is not an action this agent can carry out", cause)


def _edit(workspace: Workspace, args: dict[str, Any]) -> str:
    command = args.get("command")
    if command == "create":
        return workspace.create(args["path"], args.get("file_text") or "")
    if command == "str_replace":
        return workspace.str_replace(args["path"], args["old_str"], args.get("new_str") or "")
    if command == "insert":
        return workspace.insert(args["path"], int(args["insert_line"]), args.get("new_str") or "")
    raise ValueError(f"unknown edit command {command!r}")
