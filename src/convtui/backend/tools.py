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
from .events import EventDict, command_metadata
from .command_process import CommandResult
from .runtime import Workspace, wants_background

TOOL_DEFINITIONS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "execute_bash",
            "description": (
                "Run a bash command in the workspace (/workspace, the working directory). Commands do not "
                "keep state between calls except through files. Long output is cut in the middle.\n"
                "* A command that prints nothing new for a while returns what it printed so far and keeps "
                "running: then send is_input true with an empty command to wait for more output, with text "
                "to type into it, or with C-c to interrupt it (C-d ends its input). No other command runs "
                "until it has finished.\n"
                "* For servers and other long-running processes, end the command with & or set background "
                "true: it runs detached, its output goes to a log file, and it runs until stopped.\n"
                "* timeout: seconds to wait for the command, for a command known to run long without output."
            ),
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The bash command to run, or the input (is_input)."},
                    "is_input": {
                        "type": "string",
                        "enum": ["true", "false"],
                        "description": "true: the command is input for the command still running.",
                    },
                    "background": {"type": "boolean", "description": "Run detached (a server, a watcher)."},
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
    command: str = Field(max_length=100_000)
    is_input: bool = False  # OpenHands sends "true"/"false"; pydantic reads both
    background: bool = False
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
            if not bash.command.strip() and not bash.is_input:
                raise ToolCallError("execute_bash needs a command (an empty one only with is_input, to wait)")
            command = bash.command
            if bash.background and not bash.is_input and not wants_background(command):
                command = f"{command.rstrip()} &"  # OpenHands has no such field: a trailing & says it
            args: dict[str, Any] = {"command": command, "thought": thought, "is_input": bash.is_input}
            action = {"source": "agent", "action": "run", "message": f"Running command: {command}", "args": args}
            if bash.timeout is not None:
                action["timeout"] = bash.timeout  # where OpenHands keeps it: on the action, not in args
            return action
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


async def execute(
    workspace: Workspace, action: EventDict, command_timeout: float, soft_timeout: float | None = None
) -> EventDict:
    """Carry out an action event (with its id) and return its observation.
    Failures the model should see (a bad path, no match) become an error
    observation; cancellation propagates (and kills a running command).
    `soft_timeout`: a command quiet that long returns and keeps running."""
    kind = action.get("action")
    args = action.get("args") or {}
    cause = action.get("id")
    try:
        if kind == "run":
            return await _run(workspace, action, command_timeout, soft_timeout)
        if kind == "read" or (kind == "edit" and args.get("command") == "view"):  # (an OpenHands editor view)
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
        if kind == "write":
            written = await asyncio.to_thread(
                workspace.write, args["path"], args.get("content", ""), args.get("start", 0), args.get("end", -1)
            )
            return observation("write", written, cause, path=args["path"])
        if kind == "run_ipython":
            return await _run_python(workspace, action, command_timeout)
        if kind == "think":
            return observation("think", "Your thought has been logged.", cause)
    except ConvtuiError as error:
        return error_observation(str(error), cause)
    except (KeyError, TypeError, ValueError) as error:
        return error_observation(f"could not carry out {kind}: {error}", cause)
    return error_observation(f"{kind} is not an action this agent can carry out", cause)


def command_timeout_of(action: EventDict, command_timeout: float) -> tuple[float, bool]:
    """(the hard timeout of a run action, whether one was asked for): its
    own (on the action as OpenHands has it, or in args as older convtui
    logs have it), at most the setting."""
    asked = action.get("timeout") or (action.get("args") or {}).get("timeout")
    try:
        seconds = float(asked) if asked is not None else None
    except (TypeError, ValueError):
        seconds = None
    if seconds is None or not seconds > 0:
        return command_timeout, False
    return min(seconds, command_timeout), True


def run_observation(command: str, result: CommandResult, cause: int | None, note: str = "") -> EventDict:
    """A run observation in OpenHands' shape (CmdOutputObservation): the exit
    code in `metadata`, -1 for a command killed or still running."""
    exit_code = result.exit_code if result.exit_code is not None else -1
    return observation("run", _with_note(result.output, note), cause, command=command, metadata=command_metadata(exit_code), hidden=False)


def _with_note(output: str, note: str) -> str:
    """A command's output and convtui's note on it (on a line of its own,
    but no empty line first when there was no output)."""
    return output + note if output else note.lstrip("\n")


async def _run(workspace: Workspace, action: EventDict, command_timeout: float, soft_timeout: float | None) -> EventDict:
    args = action.get("args") or {}
    cause = action.get("id")
    command = args["command"]
    timeout, asked = command_timeout_of(action, command_timeout)
    if asked:
        soft_timeout = None  # a timeout asked for means: wait that long
    if _truthy(args.get("is_input")):
        result = await workspace.send_input(command, soft_timeout or command_timeout)
    elif _truthy(args.get("background")) or wants_background(command):  # background: older logs
        started = await workspace.start_background(command)
        message = (
            f"Started in the background as process {started.number}; its output goes to {started.log}. "
            "It runs until it ends or is stopped."
        )
        return run_observation(command, CommandResult(0, message, False, False), cause)
    else:
        result = await workspace.run(command, timeout=timeout, soft_timeout=soft_timeout)
    note = ""
    if result.timed_out:
        note = f"\n[the command was killed after {timeout:g} s]"
    elif result.still_running:
        note = (
            f"\n[The command has no new output after {soft_timeout:g} seconds and is still running. Send "
            "is_input true with an empty command to wait for more output, with text to type into it, or "
            "with C-c to interrupt it.]"
        )
    return run_observation(command, result, cause, note)


async def _run_python(workspace: Workspace, action: EventDict, command_timeout: float) -> EventDict:
    """OpenHands' run_ipython as a Python process in the workspace (the
    sandbox when there is one): each cell on its own, no kernel state kept
    between cells. `!command` and `%pip` lines run as shell commands."""
    args = action.get("args") or {}
    code = args.get("code", "")
    if not isinstance(code, str) or not code.strip():
        return error_observation("run_ipython needs code", action.get("id"))
    timeout, _ = command_timeout_of(action, command_timeout)
    script = python_cell_script(code)
    result = await workspace.run(f"python3 - <<'CONVTUI_CELL'\n{script}\nCONVTUI_CELL", timeout=timeout)
    note = f"\n[the cell was killed after {timeout:g} s]" if result.timed_out else ""
    return observation("run_ipython", _with_note(result.output, note), action.get("id"), code=code, image_urls=None)


def python_cell_script(code: str) -> str:
    """A notebook cell as a plain Python script: `!cmd` and `%pip ...`
    lines become subprocess calls; a line equal to the heredoc end is
    escaped by a trailing space."""
    lines = []
    for line in code.split("\n"):
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith("%pip "):
            stripped = "!pip " + stripped[len("%pip ") :]
        if stripped.startswith("!"):
            line = f"{indent}__import__('subprocess').run({stripped[1:]!r}, shell=True)"
        lines.append(line + " " if line == "CONVTUI_CELL" else line)
    return "\n".join(lines)


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _edit(workspace: Workspace, args: dict[str, Any]) -> str:
    command = args.get("command")
    if command == "create":
        return workspace.create(args["path"], args.get("file_text") or "")
    if command == "str_replace":
        return workspace.str_replace(args["path"], args["old_str"], args.get("new_str") or "")
    if command == "insert":
        return workspace.insert(args["path"], int(args["insert_line"]), args.get("new_str") or "")
    if command == "write":  # an LLM-based edit, as replay.py reads it
        return workspace.write(args["path"], args.get("content") or "", args.get("start", 0), args.get("end", -1))
    if command == "undo_edit":
        raise ValueError("undo_edit cannot be carried out: convtui keeps no edit history")
    raise ValueError(f"unknown edit command {command!r}")
