"""What convtui exports loads with OpenHands' own event deserialisation.

The reference is OpenHands itself: tests/fixtures/openhands-event-fields.json
holds, read from its source (the commit is named in the file), the fields
each action and observation class takes, where event_from_dict looks for
each key, and the fields of its tool call metadata, command metadata and
metrics. `problems` applies those rules as action_from_dict and
observation_from_dict do; real OpenHands trajectories pass it (which checks
the checker), and so must every kind of event convtui writes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from convtui.backend.events import exit_code_of, openhands_event
from convtui.backend.history import tool_call_arguments
from convtui.backend.manager import ConversationManager
from convtui.backend.models import AgentState
from convtui.backend.service import ConversationService

from .conftest import FIXTURES, TRAJECTORIES
from .fake_llm import FakeLLMServer, Hang, Script, Text, ToolCall
from .test_agent import EVERY_KIND, llm, manager  # noqa: F401 (fixtures)

RULES = json.loads((FIXTURES / "openhands-event-fields.json").read_text())


def problems(event: dict[str, Any]) -> list[str]:
    """Why OpenHands' event_from_dict would refuse `event` or lose part of it."""
    found = []
    kind_key = "action" if "action" in event else "observation" if "observation" in event else None
    if kind_key is None:
        return ["neither an action nor an observation"]
    allowed_top = set(RULES["top_keys"]) | set(RULES["event_keys"][kind_key])
    found += [f"top-level key {key!r} is not where OpenHands reads it" for key in set(event) - allowed_top]
    if event.get("source") not in (None, *RULES["sources"]):
        found.append(f"source {event.get('source')!r}")
    table = RULES["actions"] if kind_key == "action" else RULES["observations"]
    kind = event[kind_key]
    if kind not in table:
        return [*found, f"OpenHands has no {kind_key} {kind!r}"]
    if kind_key == "action":
        given = set(event.get("args") or {}) - set(RULES["deprecated_args"])
        found += [f"{kind} args: OpenHands' class has no field {name!r}" for name in sorted(given - set(table[kind]))]
    else:
        extras = dict(event.get("extras") or {})
        if not isinstance(event.get("content", ""), str):
            found.append("content is not text")
        given = set(extras) - set(RULES["deprecated_extras"])
        found += [f"{kind} extras: OpenHands' class has no field {name!r}" for name in sorted(given - set(table[kind]))]
        metadata = extras.get("metadata")
        if kind == "run" and isinstance(metadata, dict):
            unknown = set(metadata) - set(RULES["cmd_output_metadata"])
            found += [f"run metadata: no field {name!r}" for name in sorted(unknown)]
    metadata = event.get("tool_call_metadata")
    if metadata is not None:
        missing = set(RULES["tool_call_metadata"]) - set(metadata) - {"model_response"}
        found += [f"tool_call_metadata lacks {name!r}" for name in sorted(missing)]
        found += [f"tool_call_metadata has {name!r}" for name in sorted(set(metadata) - set(RULES["tool_call_metadata"]))]
    metrics = event.get("llm_metrics")
    if metrics is not None:
        found += [f"llm_metrics has {name!r}" for name in sorted(set(metrics) - set(RULES["llm_metrics"]))]
        usage = metrics.get("accumulated_token_usage") or {}
        found += [f"token usage has {name!r}" for name in sorted(set(usage) - set(RULES["token_usage"]))]
    return found


@pytest.mark.parametrize("path", TRAJECTORIES, ids=lambda path: path.name)
def test_recorded_openhands_events_pass_the_rules(path: Path) -> None:
    """The checker against the real thing: OpenHands' own events pass."""
    for event in json.loads(path.read_text()):
        assert problems(event) == [], event


def test_the_rules_catch_what_openhands_refuses() -> None:
    timeout_in_args = {"action": "run", "source": "agent", "args": {"command": "ls", "timeout": 5}}
    assert problems(timeout_in_args) == ["run args: OpenHands' class has no field 'timeout'"]
    flat = {"observation": "run", "content": "", "extras": {"command": "ls", "exit_code": 0, "timed_out": False}}
    assert problems(flat) == ["run extras: OpenHands' class has no field 'timed_out'"]
    assert problems({"action": "browse_the_web", "args": {}}) == ["OpenHands has no action 'browse_the_web'"]


async def exported(service: ConversationService, conversation_id: str) -> list[dict[str, Any]]:
    return orjson.loads(await service.export_json(conversation_id))


async def test_every_kind_of_event_convtui_writes_loads_in_openhands(
    service: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    await service.update_settings(
        {"llm_model": "openai/fake-model", "llm_api_key": "sk-events-0123456789", "llm_base_url": llm.base_url}
    )
    await service.update_settings({"command_soft_timeout": 0.5, "llm_timeout": 5})
    llm.responder = Script(
        ToolCall("str_replace_editor", {"command": "create", "path": "/workspace/a.py", "file_text": "print(1)\n"}),
        ToolCall("str_replace_editor", {"command": "view", "path": "/workspace/a.py"}),
        ToolCall("str_replace_editor", {"command": "str_replace", "path": "a.py", "old_str": "1", "new_str": "2"}),
        ToolCall("str_replace_editor", {"command": "insert", "path": "a.py", "insert_line": 1, "new_str": "x = 3"}),
        ToolCall("execute_bash", {"command": "python3 a.py", "timeout": 20}),
        ToolCall("execute_bash", {"command": "sleep 30"}),
        ToolCall("execute_bash", {"command": "C-c", "is_input": "true"}),
        ToolCall("execute_bash", {"command": "sleep 31", "background": True}),
        ToolCall("execute_bash", {"command": "rm a.py"}),  # rejected below
        ToolCall("think", {"thought": "all done"}),
        ToolCall("no_such_tool", {}),
        Text("Done; anything else?"),
    )
    conversation_id = (await service.new_conversation({"initial_user_msg": "go"})).conversation_id
    await manager.start(conversation_id, until_idle=True, confirm=True)
    decided = -1
    while manager.is_running(conversation_id):  # approve each action but one, rejected
        pending, state = manager.pending_action(conversation_id), manager.live_state(conversation_id)
        if pending and pending["id"] != decided and state and state.agent_state is AgentState.AWAITING_USER_CONFIRMATION:
            decided = pending["id"]
            if (pending.get("args") or {}).get("command") == "rm a.py":
                await manager.reject(conversation_id, reason="keep it")
            else:
                await manager.approve(conversation_id)
        await asyncio.sleep(0.01)
    live = await exported(service, conversation_id)
    replayed_id = (await service.new_conversation({"replay_json": orjson.dumps(EVERY_KIND).decode()})).conversation_id
    await manager.start(replayed_id, until_idle=True)
    await asyncio.wait_for(manager.wait(replayed_id), 60)
    imported_id = (await service.import_trajectory(TRAJECTORIES[0].read_bytes())).conversation_id
    await manager.start(imported_id, until_idle=True)
    await asyncio.wait_for(manager.wait(imported_id), 60)
    llm.responder = Script(Hang())
    stopped_id = (await service.new_conversation({"initial_user_msg": "think long"})).conversation_id
    await manager.start(stopped_id)
    while manager.live_state(stopped_id).agent_state is not AgentState.RUNNING:
        await asyncio.sleep(0.01)
    await manager.stop(stopped_id)  # logs agent_state_changed
    events = live + await exported(service, replayed_id) + await exported(service, imported_id)
    events += await exported(service, stopped_id)

    written = {event.get("action") or f"o:{event.get('observation')}" for event in events}
    assert written >= {
        "message", "edit", "read", "run", "think", "finish", "write", "run_ipython", "browse", "delegate",
        "call_tool_mcp", "o:edit", "o:read", "o:run", "o:think", "o:error", "o:user_rejected", "o:write",
        "o:run_ipython", "o:agent_state_changed", "o:null",
    }  # fmt: skip
    for event in events:
        assert problems(event) == [], event
    # Where OpenHands keeps what the model passed, and what a tool call's observation carries.
    timed = next(event for event in live if (event.get("args") or {}).get("command") == "python3 a.py")
    assert timed["timeout"] == 20 and "timeout" not in timed["args"]
    answered = [event for event in live if event.get("observation") in ("run", "edit", "read", "think", "user_rejected")]
    assert answered and all(event["tool_call_metadata"]["tool_call_id"] for event in answered)
    background = next(event for event in live if (event.get("args") or {}).get("command", "").startswith("sleep 31"))
    assert background["args"]["command"] == "sleep 31 &"


def test_events_older_versions_logged_are_exported_in_openhands_shape() -> None:
    old_action = {
        "id": 1, "source": "agent", "action": "run", "message": "m", "args": {"command": "ls", "timeout": 5.0, "thought": ""},
        "tool_call_metadata": {
            "function_name": "execute_bash", "tool_call_id": "call_1", "arguments": '{"command": "ls"}',
            "model_response": {"id": "r1"}, "total_calls_in_response": 1,
        },
    }  # fmt: skip
    old_observation = {
        "id": 2, "source": "agent", "observation": "run", "content": "x", "cause": 1,
        "extras": {"command": "ls", "exit_code": 2, "timed_out": False, "truncated": False},
    }  # fmt: skip
    action, observation = openhands_event(old_action), openhands_event(old_observation)
    assert problems(action) == [] and problems(observation) == []
    assert action["timeout"] == 5.0 and exit_code_of(observation) == 2 == exit_code_of(old_observation)
    assert tool_call_arguments(action) == '{"command": "ls"}' == tool_call_arguments(old_action)
