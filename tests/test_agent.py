"""Agent loops end to end: real litellm against the fake server on 127.0.0.1,
real files and real subprocesses in the conversation's workspace."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from convtui.backend import agent
from convtui.backend.errors import ConvtuiError, InvalidInput, MissingSettings
from convtui.backend.events import event_kind, exit_code_of
from convtui.backend.manager import ConversationManager, LoopLimitReached
from convtui.backend.models import AgentState, ConversationStatus, RuntimeStatus
from convtui.backend.remember import NoPromptFound, remember_prompt
from convtui.backend.llm import LLMConfig
from convtui.backend.service import ConversationService
from convtui.backend.store import display_state
from convtui.backend.updates import (
    EventAdded,
    LoopUpdate,
    MetricsChanged,
    ProcessesChanged,
    StatusChanged,
    TextStreamed,
    UpdateHub,
    TitleChanged,
)

from .conftest import TRAJECTORIES
from .processes import processes_running
from .fake_llm import (
    Drop,
    DropMidStream,
    Error,
    FakeLLMServer,
    Hang,
    Response,
    Script,
    Slow,
    Text,
    ToolCall,
    ToolCalls,
    assert_calls_answered,
)

API_KEY = "sk-test-0123456789abcdef"


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


@pytest.fixture
async def configured(service: ConversationService, llm: FakeLLMServer) -> ConversationService:
    await service.update_settings(
        {"llm_model": "openai/fake-model", "llm_api_key": API_KEY, "llm_base_url": llm.base_url, "llm_timeout": 5}
    )
    return service


@pytest.fixture
async def manager(service: ConversationService) -> AsyncIterator[ConversationManager]:
    created = ConversationManager(service, retry_delay=0.01)
    yield created
    await created.shutdown()


class Recorder:
    def __init__(self, manager: ConversationManager) -> None:
        self.updates: list[LoopUpdate] = []
        manager.subscribe(self.updates.append)

    def of(self, kind: type) -> list[Any]:
        return [update for update in self.updates if isinstance(update, kind)]

    def states(self) -> list[AgentState | None]:
        return [update.agent_state for update in self.of(StatusChanged)]

    def runtime(self) -> list[RuntimeStatus | None]:
        return [update.runtime_status for update in self.of(StatusChanged)]


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def new(service: ConversationService, message: str = "Write hello.py that prints hi", **fields: Any) -> str:
    return (await service.new_conversation({"initial_user_msg": message, **fields})).conversation_id


async def run_to_idle(manager: ConversationManager, conversation_id: str, **options: Any) -> None:
    await manager.start(conversation_id, until_idle=True, **options)
    await asyncio.wait_for(manager.wait(conversation_id), 30)


def kinds(events: list[dict]) -> list[str]:
    return [f"{'a' if e.get('action') else 'o'}:{e.get('action') or e.get('observation')}" for e in events]


# -- a full run ----------------------------------------------------------------------


async def test_a_tool_using_run_edits_a_file_and_finishes(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    script = Script(
        ToolCall("str_replace_editor", {"command": "create", "path": "/workspace/hello.py", "file_text": "print('hi')\n"}),
        ToolCall("execute_bash", {"command": "python3 hello.py"}, content="Let me run it."),
        ToolCall("finish", {"message": "hello.py prints hi"}),
    )
    llm.responder = script
    conversation_id = await new(configured)
    recorder = Recorder(manager)
    await run_to_idle(manager, conversation_id, confirm=False)

    workspace = configured.data_dir.workspace(conversation_id)
    assert (workspace / "hello.py").read_text() == "print('hi')\n"
    events = await configured.search_events(conversation_id)
    assert kinds(events) == ["a:message", "a:edit", "o:edit", "a:run", "o:run", "a:finish"]
    run_observation = events[4]
    assert run_observation["content"].strip() == "hi"
    assert exit_code_of(run_observation) == 0 and run_observation["cause"] == events[3]["id"]
    assert events[3]["args"]["thought"] == "Let me run it."
    assert events[1]["tool_call_metadata"]["function_name"] == "str_replace_editor"

    # The model saw the tool results, paired with its calls.
    last_request = script.agent_requests[-1]["messages"]
    tool_messages = [m for m in last_request if m["role"] == "tool"]
    assert len(tool_messages) == 2 and "hi" in tool_messages[1]["content"]

    info = await configured.get(conversation_id)
    assert info.agent_state is AgentState.FINISHED
    assert info.title == "Scripted title"
    assert (info.prompt_tokens, info.completion_tokens, info.total_tokens) == (40, 20, 60)  # 3 steps + title
    assert info.accumulated_cost is None  # the fake model has no price: cost unknown, tokens counted
    assert info.llm_model == "openai/fake-model"
    assert RuntimeStatus.READY in recorder.runtime()
    assert AgentState.FINISHED in recorder.states()
    assert [u.title for u in recorder.of(TitleChanged)] == ["Scripted title"]
    assert len(recorder.of(EventAdded)) == 5  # the first message was logged by `new`


async def test_streamed_text_reaches_subscribers_before_the_event(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    llm.responder = Script(Text("Here is a fairly long answer that arrives in many pieces"))
    conversation_id = await new(configured, "Explain")
    recorder = Recorder(manager)
    await manager.watch_text(conversation_id)  # as a UI showing it does
    await run_to_idle(manager, conversation_id)
    assert sorted(map(bool, (request.get("stream") for request in llm.requests))) == [False, True]  # the title is never streamed
    pieces = [u.text for u in recorder.of(TextStreamed)]
    assert len(pieces) > 3 and "".join(pieces) == "Here is a fairly long answer that arrives in many pieces"
    first_piece = next(i for i, u in enumerate(recorder.updates) if isinstance(u, TextStreamed))
    message_event = next(
        i for i, u in enumerate(recorder.updates) if isinstance(u, EventAdded) and u.event.get("source") == "agent"
    )
    assert first_piece < message_event
    assert (await configured.get(conversation_id)).agent_state is AgentState.AWAITING_USER_INPUT


async def test_a_reply_nobody_watches_is_asked_whole(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    """Streaming costs litellm about three times the CPU: only a watched
    conversation's replies are streamed, and a watch runs out."""
    clock = [1000.0]
    manager.hub = UpdateHub(clock=lambda: clock[0])
    llm.responder = Script(Text("first answer"), Text("second answer"))
    conversation_id = await new(configured, "Explain")
    recorder = Recorder(manager)
    await run_to_idle(manager, conversation_id)
    assert recorder.of(TextStreamed) == []
    assert all(request.get("stream") is None for request in llm.requests)
    event = next(e for e in await configured.search_events(conversation_id) if e.get("source") == "agent")
    assert event["message"] == "first answer"  # the whole reply, as a streamed one would have been

    manager.hub.watch_text(conversation_id, seconds=60)
    clock[0] += 61  # the watch ran out
    await manager.send_message(conversation_id, "and again")
    await run_to_idle(manager, conversation_id)
    assert recorder.of(TextStreamed) == []
    assert manager.hub.wants_text(conversation_id) is False


# -- confirmation --------------------------------------------------------------------


async def test_confirmation_approve_and_reject(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    script = Script(
        ToolCall("execute_bash", {"command": "echo approved > a.txt"}),
        ToolCall("execute_bash", {"command": "echo rejected > b.txt"}),
        Text("I will not write b.txt then."),
    )
    llm.responder = script
    conversation_id = await new(configured)
    await manager.start(conversation_id, until_idle=True)
    await until(lambda: manager.pending_action(conversation_id) is not None)
    assert (await configured.get(conversation_id)).agent_state is AgentState.AWAITING_USER_CONFIRMATION
    assert manager.pending_action(conversation_id)["args"]["command"] == "echo approved > a.txt"
    await manager.approve(conversation_id)
    await until(lambda: (manager.pending_action(conversation_id) or {}).get("args", {}).get("command", "").endswith("b.txt"))
    await manager.reject(conversation_id)
    await asyncio.wait_for(manager.wait(conversation_id), 10)

    workspace = configured.data_dir.workspace(conversation_id)
    assert (workspace / "a.txt").exists() and not (workspace / "b.txt").exists()
    events = await configured.search_events(conversation_id)
    rejected = [e for e in events if e.get("observation") == "user_rejected"]
    assert len(rejected) == 1
    tool_results = [m["content"] for m in script.agent_requests[-1]["messages"] if m["role"] == "tool"]
    assert "rejected" in tool_results[-1]
    with pytest.raises(InvalidInput, match="no action waiting"):
        await manager.approve(conversation_id)


async def test_always_approves_the_rest_of_the_run(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    llm.responder = Script(
        ToolCall("execute_bash", {"command": "touch one"}),
        ToolCall("execute_bash", {"command": "touch two"}),
        ToolCall("finish", {"message": "ok"}),
    )
    conversation_id = await new(configured)
    await manager.start(conversation_id, until_idle=True)
    await until(lambda: manager.pending_action(conversation_id) is not None)
    await manager.approve(conversation_id, always=True)
    await asyncio.wait_for(manager.wait(conversation_id), 10)
    workspace = configured.data_dir.workspace(conversation_id)
    assert (workspace / "one").exists() and (workspace / "two").exists()


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("responses", "runtime_status", "agent_state"),
    [
        ([Error(401)], RuntimeStatus.ERROR_LLM_AUTHENTICATION, AgentState.ERROR),
        ([Error(500)] * 3, RuntimeStatus.ERROR_LLM_INTERNAL_SERVER_ERROR, AgentState.ERROR),
        ([Error(429)] * 4, RuntimeStatus.AGENT_RATE_LIMITED, AgentState.RATE_LIMITED),
        ([Slow(30)] * 3, RuntimeStatus.ERROR_LLM_SERVICE_UNAVAILABLE, AgentState.ERROR),
        ([DropMidStream(after_chunks=2)] * 3, RuntimeStatus.ERROR_LLM_SERVICE_UNAVAILABLE, AgentState.ERROR),
        ([Drop()] * 3, RuntimeStatus.ERROR_LLM_SERVICE_UNAVAILABLE, AgentState.ERROR),
        (
            [Error(400, "This model's maximum context length is 8192 tokens", "invalid_request_error", "context_length_exceeded")],
            RuntimeStatus.ERROR,
            AgentState.ERROR,
        ),
    ],
    ids=["401", "500", "429", "timeout", "dropped-mid-stream", "dropped", "context-window"],
)
async def test_llm_errors_end_in_a_labelled_state(
    configured: ConversationService,
    manager: ConversationManager,
    llm: FakeLLMServer,
    responses: list[Response],
    runtime_status: RuntimeStatus,
    agent_state: AgentState,
) -> None:
    await configured.set_setting("llm_timeout", "0.5")
    llm.responder = Script(*responses)
    conversation_id = await new(configured)
    await run_to_idle(manager, conversation_id)
    info = await configured.get(conversation_id)
    assert (info.status, info.runtime_status, info.agent_state) == (ConversationStatus.ERROR, runtime_status, agent_state)
    assert info.status_message and "Traceback" not in info.status_message
    assert API_KEY not in info.status_message
    assert info.attention == "error"  # in the inbox until started again or dismissed
    last = (await configured.search_events(conversation_id))[-1]
    assert last["observation"] == "agent_state_changed" and last["content"] == info.status_message


async def test_a_rate_limit_backs_off_and_recovers(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    llm.responder = Script(Error(429), Error(429), Text("made it"))
    conversation_id = await new(configured)
    recorder = Recorder(manager)
    await run_to_idle(manager, conversation_id)
    assert recorder.runtime().count(RuntimeStatus.LLM_RETRY) == 2
    info = await configured.get(conversation_id)
    assert (info.status, info.agent_state) == (ConversationStatus.RUNNING, AgentState.AWAITING_USER_INPUT) or (
        info.agent_state is AgentState.AWAITING_USER_INPUT
    )
    assert (await configured.search_events(conversation_id))[-1]["message"] == "made it"


async def test_a_refused_connection_is_service_unavailable(
    configured: ConversationService, manager: ConversationManager
) -> None:
    await configured.set_setting("llm_base_url", "http://127.0.0.1:9/v1")
    conversation_id = await new(configured)
    await run_to_idle(manager, conversation_id)
    info = await configured.get(conversation_id)
    assert info.runtime_status is RuntimeStatus.ERROR_LLM_SERVICE_UNAVAILABLE
    assert "127.0.0.1:9" in (info.status_message or "")


async def test_bad_tool_calls_are_reported_to_the_model_and_the_loop_goes_on(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    script = Script(
        ToolCall("execute_bash", '{"command": "ls"'),  # malformed JSON
        ToolCall("launch_rockets", {"count": 3}),
        ToolCall("str_replace_editor", {"command": "create", "path": "/etc/evil", "file_text": "x"}),
        ToolCalls([ToolCall("think", {"thought": "hmm"}), ToolCall("finish", {"message": "done"})]),
    )
    llm.responder = script
    conversation_id = await new(configured)
    await run_to_idle(manager, conversation_id, confirm=False)
    events = await configured.search_events(conversation_id)
    errors = [e["content"] for e in events if e.get("observation") == "error"]
    assert "not valid JSON" in errors[0]
    assert "no tool named 'launch_rockets'" in errors[1]
    assert "/etc/evil" in errors[2]
    assert (await configured.get(conversation_id)).agent_state is AgentState.FINISHED
    assert_calls_answered(script.agent_requests)


# -- stop and resume -----------------------------------------------------------------


async def test_stop_in_the_middle_of_an_llm_call(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    llm.responder = Script(Hang())
    conversation_id = await new(configured)
    await manager.start(conversation_id)
    await until(lambda: len(llm.requests) >= 1)
    started = time.monotonic()
    result = await manager.stop(conversation_id)
    assert time.monotonic() - started < 1.0
    assert result.was_running
    info = await configured.get(conversation_id)
    assert (info.status, info.agent_state) == (ConversationStatus.STOPPED, AgentState.STOPPED)
    assert (await configured.search_events(conversation_id))[0]["message"] == "Write hello.py that prints hi"


async def test_stop_in_the_middle_of_a_command_kills_it(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    # In a sandbox $$ is a pid of its own namespace: the sleep is found by its
    # unusual argument among the host's processes instead.
    marker = f"{time.time_ns() % 10**6 + 1000}.25"
    llm.responder = Script(ToolCall("execute_bash", {"command": f"touch started; sleep {marker} & setsid sleep {marker}"}))
    conversation_id = await new(configured)
    await manager.start(conversation_id, confirm=False)
    await until(lambda: len(processes_running(f"sleep {marker}")) == 2)
    started = time.monotonic()
    await manager.stop(conversation_id)
    assert time.monotonic() - started < 1.0
    await until(lambda: not processes_running(f"sleep {marker}"), timeout=1.0)
    events = await configured.search_events(conversation_id)
    assert events[-1]["observation"] == "agent_state_changed"
    assert any(e.get("action") == "run" for e in events)


async def test_a_stopped_conversation_resumes_from_its_history(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    script = Script(ToolCall("execute_bash", {"command": "echo partial output; touch started; sleep 100"}))
    llm.responder = script
    conversation_id = await new(configured)
    await manager.start(conversation_id, confirm=False)
    await until(lambda: (configured.data_dir.workspace(conversation_id) / "started").exists())
    await manager.stop(conversation_id)

    script.add(Text("Resumed; the command was interrupted."))
    await run_to_idle(manager, conversation_id)
    events = await configured.search_events(conversation_id)
    run_action = next(e for e in events if e.get("action") == "run")
    [stopped] = [e for e in events if e.get("cause") == run_action["id"]]
    # What happened: the output so far, and that the stop cut it short.
    assert stopped["observation"] == "run" and exit_code_of(stopped) == -1
    assert stopped["content"] == "partial output\n\n[the command was stopped: its loop was stopped]"
    assert events[-1]["message"] == "Resumed; the command was interrupted."
    messages = script.agent_requests[-1]["messages"]
    assert messages[1] == {"role": "user", "content": "Write hello.py that prints hi"}


async def test_a_message_sent_while_running_is_answered(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    llm.responder = Script(Text("first answer"), Text("second answer"))
    conversation_id = await new(configured)
    recorder = Recorder(manager)
    await manager.start(conversation_id)
    await until(lambda: AgentState.AWAITING_USER_INPUT in recorder.states())
    await manager.send_message(conversation_id, "and then?")
    await until(lambda: any(isinstance(u, EventAdded) and u.event.get("message") == "second answer" for u in recorder.updates))
    with pytest.raises(InvalidInput):
        await manager.send_message(conversation_id, "   ")


# -- limits --------------------------------------------------------------------------


async def test_iteration_and_budget_limits_stop_the_loop(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    await configured.set_setting("max_iterations", "2")
    llm.responder = Script(*[ToolCall("think", {"thought": f"step {i}"}) for i in range(5)])
    conversation_id = await new(configured)
    await run_to_idle(manager, conversation_id)
    info = await configured.get(conversation_id)
    assert info.status is ConversationStatus.STOPPED and "max_iterations" in (info.status_message or "")
    assert info.attention == "limit" and display_state(configured.store.peek(conversation_id)) == "WAITING"

    await configured.set_setting("max_iterations", "50")
    await configured.set_setting("max_budget_per_conversation", "0.5")
    await configured.update_metadata(conversation_id, accumulated_cost=0.75)
    await manager.send_message(conversation_id, "go on")
    await run_to_idle(manager, conversation_id)
    info = await configured.get(conversation_id)
    assert info.status is ConversationStatus.STOPPED and "budget" in (info.status_message or "")
    assert info.attention == "limit"
    before = info.last_updated_at
    info = await configured.dismiss(conversation_id)
    assert info.attention is None and info.last_updated_at == before  # out of the inbox, in its place in the list
    assert display_state(configured.store.peek(conversation_id)) == "STOPPED"


async def test_a_restarted_loop_is_out_of_the_inbox_and_a_user_stop_never_puts_it_there(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    await configured.set_setting("max_iterations", "1")
    llm.responder = Script(ToolCall("think", {"thought": "one"}), Hang())
    conversation_id = await new(configured)
    await run_to_idle(manager, conversation_id)
    assert (await configured.get(conversation_id)).attention == "limit"
    await configured.set_setting("max_iterations", "5")
    await manager.send_message(conversation_id, "go on")
    await manager.start(conversation_id)
    await until(lambda: manager.is_running(conversation_id) and configured.store.peek(conversation_id)["status"] == "RUNNING")
    assert configured.store.peek(conversation_id)["attention"] is None
    await manager.stop(conversation_id)
    info = await configured.get(conversation_id)
    assert info.status is ConversationStatus.STOPPED and info.attention is None


async def test_start_needs_a_model_and_respects_the_loop_limit(
    service: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    conversation_id = await new(service)
    with pytest.raises(MissingSettings, match="configure|no model"):
        await manager.start(conversation_id)
    await service.update_settings(
        {"llm_model": "openai/fake-model", "llm_api_key": API_KEY, "llm_base_url": llm.base_url, "max_concurrent_loops": 1}
    )
    llm.responder = Script(Hang())
    first = await manager.start(conversation_id)
    again = await manager.start(conversation_id[:6])  # idempotent
    assert again.status == first.status
    other = await new(service)
    with pytest.raises(LoopLimitReached, match="limit is 1"):
        await manager.start(other)
    assert manager.running_ids() == [conversation_id]


async def test_starts_side_by_side_keep_the_loop_limit_and_a_failed_start_frees_its_lock(
    service: ConversationService, manager: ConversationManager, llm: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UI starts the marked conversations at once: those still starting
    count against the limit, and a start that fails after taking the loop's
    lock (its sandbox) leaves it to the next start."""
    await service.update_settings(
        {"llm_model": "openai/fake-model", "llm_api_key": API_KEY, "llm_base_url": llm.base_url, "max_concurrent_loops": 3}
    )
    llm.responder = Script(Hang(), Hang(), Hang())
    ids = [await new(service, f"task {number}") for number in range(5)]
    results = await asyncio.gather(*(manager.start(conversation_id) for conversation_id in ids), return_exceptions=True)
    refused = [result for result in results if isinstance(result, LoopLimitReached)]
    assert len(refused) == 2 and len(manager.running_ids()) == 3
    assert all("limit is 3" in str(refusal) for refusal in refused)
    for conversation_id in manager.running_ids():
        await manager.stop(conversation_id)

    import convtui.backend.sandbox as sandbox_module

    def broken(*args: Any) -> None:
        raise ConvtuiError("cannot make the sandbox")

    monkeypatch.setattr(sandbox_module, "for_conversation", broken)
    with pytest.raises(ConvtuiError, match="cannot make the sandbox"):
        await manager.start(ids[0])
    monkeypatch.undo()
    llm.responder = Script(Hang())
    await manager.start(ids[0])  # not "running elsewhere": the failed start let go of the lock
    assert manager.running_ids() == [ids[0]]


# -- replay --------------------------------------------------------------------------


@pytest.mark.parametrize("trajectory", TRAJECTORIES, ids=lambda path: path.name)
async def test_replays_run_to_the_end_without_an_llm(
    service: ConversationService, manager: ConversationManager, trajectory: Path
) -> None:
    conversation_id = (await service.new_conversation({"replay_json": trajectory.read_text()})).conversation_id
    await run_to_idle(manager, conversation_id)
    info = await service.get(conversation_id)
    assert info.agent_state is AgentState.FINISHED and info.status is ConversationStatus.RUNNING or (
        info.agent_state is AgentState.FINISHED
    )
    events = await service.search_events(conversation_id)
    original = [e for e in orjson.loads(trajectory.read_bytes()) if e.get("action")]
    replayed = [e for e in events if e.get("action")]
    assert [(e["action"], e["source"]) for e in replayed] == [(e["action"], e["source"]) for e in original]
    if trajectory.name == "basic.json":
        game = service.data_dir.workspace(conversation_id) / "game_2048.py"
        assert "class Game2048" in game.read_text()
        edit_observation = next(e for e in events if e.get("observation") == "edit")
        assert edit_observation["cause"] == next(e["id"] for e in events if e.get("action") == "edit")
    assert info.title != f"Conversation {conversation_id[:5]}"  # titled from the first message


def _run_step(event_id: int, command: str) -> dict[str, Any]:
    return {
        "id": event_id, "source": "agent", "action": "run", "message": f"Running command: {command}",
        "args": {"command": command, "thought": ""},
    }


async def test_a_replay_cut_short_goes_on_where_it_stopped(
    service: ConversationService, manager: ConversationManager
) -> None:
    """Found by the crash test (tests/test_ui_crash.py): started again, a
    replay that was stopped (or whose process was killed) re-ran every step
    without logging any, then stopped asking for a model. Now it goes on
    after the last step it logged; the step cut short is answered with what
    it printed and that it was stopped, as in any loop."""
    trajectory = [
        {"id": 0, "source": "user", "action": "message", "message": "build it", "args": {"content": "build it"}},
        _run_step(1, "echo one > one.txt"),
        _run_step(3, "echo sleeping; touch sleeping; sleep 30"),
        _run_step(5, "echo three > three.txt"),
        {"id": 7, "source": "agent", "action": "finish", "message": "built", "args": {"outputs": {}, "thought": ""}},
    ]
    created = await service.new_conversation({"replay_json": orjson.dumps(trajectory).decode()})
    conversation_id = created.conversation_id
    await manager.start(conversation_id)
    await until(lambda: (service.data_dir.workspace(conversation_id) / "sleeping").exists(), timeout=30)
    await manager.stop(conversation_id)  # kills the sleep
    await run_to_idle(manager, conversation_id)

    info = await service.get(conversation_id)
    assert (info.agent_state, info.status_message) == (AgentState.FINISHED, "replay finished")
    events = await service.search_events(conversation_id)
    assert kinds(events) == [
        "a:message", "a:run", "o:run", "a:run", "o:run", "o:agent_state_changed", "a:run", "o:run", "a:finish",
    ]
    assert [e["message"] for e in events if e.get("action")] == [e["message"] for e in trajectory]
    assert events[4]["cause"] == 3 and exit_code_of(events[4]) == -1
    assert events[4]["content"] == "sleeping\n\n[the command was stopped: its loop was stopped]"
    workspace = service.data_dir.workspace(conversation_id)
    assert (workspace / "one.txt").read_text() == "one\n" and (workspace / "three.txt").read_text() == "three\n"


async def test_a_message_sent_while_a_replay_runs_is_answered_after_it(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    """Found by the soak's crash test with chatting loops: the replayed
    events that followed the message looked like the agent's answer, so the
    message was never answered."""
    llm.responder = Script(Text("You said hello."))
    trajectory = [
        {"id": 0, "source": "user", "action": "message", "message": "build it", "args": {"content": "build it"}},
        _run_step(1, "until [ -f go ]; do sleep 0.02; done"),
        {"id": 3, "source": "agent", "action": "finish", "message": "built", "args": {"outputs": {}, "thought": ""}},
    ]
    created = await configured.new_conversation({"replay_json": orjson.dumps(trajectory).decode()})
    conversation_id = created.conversation_id
    waiting = asyncio.Event()

    def watch(update: LoopUpdate) -> None:
        if isinstance(update, EventAdded) and update.event.get("action") == "run":
            waiting.set()

    manager.subscribe(watch)
    await manager.start(conversation_id, until_idle=True)
    await asyncio.wait_for(waiting.wait(), 30)
    await manager.send_message(conversation_id, "hello while you replay")
    (configured.data_dir.workspace(conversation_id) / "go").touch()
    await asyncio.wait_for(manager.wait(conversation_id), 30)

    events = await configured.search_events(conversation_id)
    assert [(e["source"], event_kind(e)) for e in events if e.get("action")] == [
        ("user", "message"), ("agent", "run"), ("user", "message"), ("agent", "finish"), ("agent", "message"),
    ]
    assert events[-1]["message"] == "You said hello."
    [request] = llm.responder.agent_requests
    assert {"role": "user", "content": "hello while you replay"} in request["messages"]


async def test_an_imported_conversation_replays_into_its_workspace(
    service: ConversationService, manager: ConversationManager
) -> None:
    conversation_id = (await service.import_trajectory(TRAJECTORIES[0].read_bytes())).conversation_id
    before = await service.export_json(conversation_id)
    await run_to_idle(manager, conversation_id)
    assert (service.data_dir.workspace(conversation_id) / "game_2048.py").exists()
    after = orjson.loads(await service.export_json(conversation_id))
    assert after[: len(orjson.loads(before))] == orjson.loads(before)


# -- remember prompt -----------------------------------------------------------------


async def test_remember_prompt_with_and_without_the_tag(
    configured: ConversationService, llm: FakeLLMServer
) -> None:
    conversation_id = (await configured.import_trajectory(TRAJECTORIES[1].read_bytes())).conversation_id
    log = await configured.event_log(conversation_id)
    config = LLMConfig.from_settings(await configured.load_settings())
    llm.script(Text("Sure.\n<update_prompt>\nRemember: the user likes number theory.\n</update_prompt>"))
    assert await remember_prompt(log, 6, config) == "Remember: the user likes number theory."
    system = llm.requests[-1]["messages"][0]["content"]
    # Nearest 4 before event 6 are 0 and 3 (all there is); 6 and the 4 after it follow.
    assert [line.split("]")[0] for line in system.split("<events>")[1].strip().splitlines() if line.startswith("[")] == [
        "[0", "[3", "[6", "[9", "[12", "[15",
    ]
    llm.script(Text("I have no idea."))
    with pytest.raises(NoPromptFound, match="update_prompt"):
        await remember_prompt(log, 6, config)


async def test_remember_prompt_prints_template_syntax_literally(
    configured: ConversationService, llm: FakeLLMServer
) -> None:
    conversation_id = await new(configured, "What is {{ 7 * 7 }} and {% for x in y %}?")
    log = await configured.event_log(conversation_id)
    llm.script(Text("<update_prompt>ok</update_prompt>"))
    await remember_prompt(log, 0, LLMConfig.from_settings(await configured.load_settings()))
    system = llm.requests[-1]["messages"][0]["content"]
    assert "{{ 7 * 7 }}" in system and "{% for x in y %}" in system and "49" not in system


# -- workspace set-up ------------------------------------------------------------------


def _git_repository(path: Path) -> Path:
    import subprocess

    path.mkdir()
    for command in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "start"],
        ["git", "checkout", "-q", "-b", "feature"],
    ):
        subprocess.run(command, cwd=path, check=True)
    (path / "README.md").write_text("the feature branch\n")
    subprocess.run(["git", "add", "."], cwd=path, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "feature"], cwd=path, check=True)
    return path


@pytest.mark.skipif(not __import__("shutil").which("git"), reason="git is not installed")
async def test_the_repository_is_cloned_before_the_agent_starts(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer, tmp_path: Path
) -> None:
    repository = _git_repository(tmp_path / "origin")
    script = Script(Text("I see the README."))
    llm.responder = script
    conversation_id = await new(configured, repository=str(repository), selected_branch="feature")
    recorder = Recorder(manager)
    await run_to_idle(manager, conversation_id)
    workspace = configured.data_dir.workspace(conversation_id)
    assert (workspace / "README.md").read_text() == "the feature branch\n"
    assert RuntimeStatus.SETTING_UP_WORKSPACE in recorder.runtime()
    system = script.agent_requests[0]["messages"][0]["content"]
    assert str(repository) in system and "feature" in system


@pytest.mark.skipif(not __import__("shutil").which("git"), reason="git is not installed")
async def test_a_failed_clone_is_an_error_with_gits_message(
    configured: ConversationService, manager: ConversationManager, tmp_path: Path
) -> None:
    not_a_repository = tmp_path / "plain"
    not_a_repository.mkdir()
    conversation_id = await new(configured, repository=str(not_a_repository))
    await run_to_idle(manager, conversation_id)
    info = await configured.get(conversation_id)
    assert (info.status, info.runtime_status) == (ConversationStatus.ERROR, RuntimeStatus.ERROR)
    assert "git clone failed" in (info.status_message or "")


async def test_always_approve_holds_across_a_restart_until_turned_off(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    script = Script(ToolCall("execute_bash", {"command": "touch one"}), Text("done one"))
    llm.responder = script
    conversation_id = await new(configured)
    assert not (await configured.get(conversation_id)).always_approve  # off by default
    await manager.start(conversation_id, until_idle=True)
    await until(lambda: manager.pending_action(conversation_id) is not None)
    await manager.approve(conversation_id, always=True)
    await asyncio.wait_for(manager.wait(conversation_id), 10)
    assert (await configured.get(conversation_id)).always_approve

    # A new run of the same conversation asks nothing.
    script.add(ToolCall("execute_bash", {"command": "touch two"}), Text("done two"))
    await manager.send_message(conversation_id, "and two")
    await manager.start(conversation_id, until_idle=True)
    await asyncio.wait_for(manager.wait(conversation_id), 10)
    workspace = configured.data_dir.workspace(conversation_id)
    assert (workspace / "two").exists()

    # Turned off: the next action waits for approval again.
    info = await manager.set_always_approve(conversation_id, False)
    assert not info.always_approve
    script.add(ToolCall("execute_bash", {"command": "touch three"}), Text("done three"))
    await manager.send_message(conversation_id, "and three")
    await manager.start(conversation_id, until_idle=True)
    await until(lambda: manager.pending_action(conversation_id) is not None)
    assert not (workspace / "three").exists()
    await manager.reject(conversation_id)
    await asyncio.wait_for(manager.wait(conversation_id), 10)


async def test_a_message_sent_while_the_model_answers_is_answered_too(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    """The follow-up is logged before the answer the model was writing, yet
    the model never saw it: the loop must ask again, not wait for the user."""
    gate = asyncio.Event()
    calls: list[dict[str, Any]] = []

    async def respond(body: dict[str, Any]) -> Response:
        if body["messages"][0]["content"].startswith("Write a short title"):
            return Text("A title")
        calls.append(body)
        if len(calls) == 1:
            await gate.wait()
            return Text("first answer")
        return Text("second answer")

    llm.responder = respond
    conversation_id = await new(configured, "one")
    await manager.start(conversation_id)
    await until(lambda: len(calls) == 1)
    await manager.send_message(conversation_id, "and again")
    gate.set()
    await until(lambda: len(calls) == 2)
    assert any(message.get("content") == "and again" for message in calls[1]["messages"])
    await until(lambda: manager.live_state(conversation_id).agent_state is AgentState.AWAITING_USER_INPUT)
    events = await configured.search_events(conversation_id)
    assert [e.get("message") for e in events if e.get("action") == "message"][-1] == "second answer"
    await manager.stop(conversation_id)


async def test_metrics_reach_the_stream_and_answers_at_once_and_the_store_within_seconds(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fast model calls are written together (one store write, not one per
    call); a command that runs long after them does not keep them unwritten.
    Meanwhile the process running the loop answers with the newest."""
    monkeypatch.setattr(agent, "METRICS_WRITE_SECONDS", 2.0)
    llm.responder = Script(
        ToolCall("execute_bash", {"command": "true"}),
        ToolCall("execute_bash", {"command": "sleep 6"}),
        ToolCall("finish", {"message": "done"}),
    )
    conversation_id = await new(configured)
    recorder = Recorder(manager)
    await manager.start(conversation_id, confirm=False)
    await until(lambda: len(recorder.of(MetricsChanged)) >= 2 and manager.is_running(conversation_id))
    live = recorder.of(MetricsChanged)[-1]
    assert (await configured.get(conversation_id)).prompt_tokens == live.prompt_tokens
    assert configured.row(conversation_id).total_tokens == live.total_tokens
    stored = 0
    for _ in range(int(2.0 / 0.05) + 40):
        stored = configured.store.peek(conversation_id)["prompt_tokens"]
        if stored >= live.prompt_tokens:
            break
        await asyncio.sleep(0.05)
    assert stored >= live.prompt_tokens and manager.is_running(conversation_id)  # the command still runs
    await manager.stop(conversation_id)


async def test_two_starts_at_once_start_one_loop(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    """A resume beside a key press: the second start finds the first's loop,
    rather than failing on that loop's own lock as running elsewhere."""
    llm.responder = Script(Hang())
    conversation_id = await new(configured)
    first, second = await asyncio.gather(manager.start(conversation_id), manager.start(conversation_id))
    assert manager.running_ids() == [conversation_id] and first.status is second.status
    await manager.stop(conversation_id)


async def test_a_server_the_agent_starts_keeps_running_and_is_interrupted_or_backgrounded(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    """The dev server that used to hold a replay for command_timeout: the
    agent gets its output after a quiet spell, then interrupts it; started
    with & it runs detached, is listed, and dies when the loop stops."""
    await configured.update_settings({"command_soft_timeout": 1})
    port, marker = _free_port(), f"srv{time.time_ns() % 10**6}"
    server = f"python3 -u -m http.server {port} --bind 127.0.0.1"
    llm.responder = Script(
        ToolCall("execute_bash", {"command": server}),
        ToolCall("execute_bash", {"command": "echo refused"}),
        ToolCall("execute_bash", {"command": "C-c", "is_input": "true"}),
        ToolCall("execute_bash", {"command": f"exec -a {marker} {server} &"}),
        Text("The server runs."),
    )
    recorder = Recorder(manager)
    conversation_id = await new(configured)
    await run_to_idle(manager, conversation_id, confirm=False)
    observations = [e for e in await configured.search_events(conversation_id) if e.get("observation") == "run"]
    assert "Serving HTTP" in observations[0]["content"] and "still running" in observations[0]["content"]
    assert exit_code_of(observations[0]) == -1
    assert "Keyboard interrupt received" in observations[1]["content"]
    assert "Started in the background as process 1" in observations[2]["content"]
    errors = [e for e in await configured.search_events(conversation_id) if e.get("observation") == "error"]
    assert "NOT executed" in errors[0]["content"]
    # The loop ended (until_idle) and took its processes with it.
    assert recorder.of(ProcessesChanged)[0].commands == (f"exec -a {marker} {server}",)
    assert recorder.of(ProcessesChanged)[-1].commands == ()
    assert not processes_running(f"{marker} -u -m http.server {port} --bind 127.0.0.1")


async def test_background_processes_are_listed_and_stopped_while_the_loop_runs(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    marker = f"{time.time_ns() % 10**6 + 1000}.375"
    llm.responder = Script(ToolCall("execute_bash", {"command": f"sleep {marker}", "background": True}), Text("ok"))
    conversation_id = await new(configured)
    await manager.start(conversation_id, confirm=False)
    await until(lambda: manager.live_state(conversation_id) is not None and manager.live_state(conversation_id).processes)
    assert manager.live_state(conversation_id).processes == (f"sleep {marker}",)
    await until(lambda: bool(processes_running(f"sleep {marker}")))
    assert await manager.stop_processes(conversation_id) == 1
    assert manager.live_state(conversation_id).processes == ()
    await until(lambda: not processes_running(f"sleep {marker}"), timeout=2)
    await manager.stop(conversation_id)


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _action(event_id: int, kind: str, args: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"id": event_id, "source": "agent", "action": kind, "message": f"{kind} {event_id}", "args": args, **top}


EVERY_KIND = [
    {"id": 0, "source": "user", "action": "message", "message": "do all of it", "args": {"content": "do all of it"}},
    _action(1, "recall", {"recall_type": "workspace_context", "query": "do all of it"}),
    _action(2, "run", {"command": "mkdir -p /workspace/app && echo ran > /workspace/app/ran.txt", "is_input": False}),
    _action(3, "run", {"command": "sleep 30", "is_input": False}, timeout=1),
    _action(4, "run_ipython", {"code": "print(6 * 7)\n!echo from the shell > shell.txt", "include_extra": True}),
    _action(5, "write", {"path": "/workspace/app/notes.txt", "content": "one\ntwo\nthree", "start": 0, "end": -1}),
    _action(6, "write", {"path": "/workspace/app/notes.txt", "content": "TWO", "start": 1, "end": 2}),
    _action(7, "edit", {"command": "str_replace", "path": "/workspace/app/notes.txt", "old_str": "one", "new_str": "ONE"}),
    {
        **_action(8, "edit", {"path": "/workspace/app/notes.txt", "impl_source": "oh_aci"}),
        "tool_call_metadata": {
            "function_name": "str_replace_editor",
            "tool_call_id": "call_8",
            "model_response": {
                "choices": [
                    {
                        "message": {
                            "tool_calls": [
                                {
                                    "id": "call_8",
                                    "function": {
                                        "name": "str_replace_editor",
                                        "arguments": '{"command": "insert", "path": "/workspace/app/notes.txt", '
                                        '"insert_line": 3, "new_str": "four"}',
                                    },
                                }
                            ]
                        }
                    }
                ]
            },
            "total_calls_in_response": 1,
        },
    },
    _action(9, "edit", {"path": "/workspace/app/llm.txt", "content": "drafted\n", "start": 1, "end": -1, "impl_source": "llm_based_edit"}),
    _action(10, "think", {"thought": "thinking"}),
    _action(11, "condensation", {"forgotten_event_ids": [1]}),
    _action(12, "browse", {"url": "https://example.com"}),
    _action(13, "delegate", {"agent": "BrowsingAgent", "inputs": {}}),
    _action(14, "call_tool_mcp", {"name": "fetch", "arguments": {}}),
    _action(15, "finish", {"outputs": {}, "thought": "", "final_thought": "done"}),
]


async def test_a_replay_carries_out_every_kind_it_can_and_names_what_it_skipped(
    service: ConversationService, manager: ConversationManager
) -> None:
    created = await service.new_conversation({"replay_json": orjson.dumps(EVERY_KIND).decode()})
    conversation_id = created.conversation_id
    await run_to_idle(manager, conversation_id)
    workspace = service.data_dir.workspace(conversation_id)
    assert (workspace / "app" / "ran.txt").read_text() == "ran\n"
    assert (workspace / "shell.txt").read_text() == "from the shell\n"
    assert (workspace / "app" / "notes.txt").read_text() == "ONE\nTWO\nthree\nfour\n"
    assert (workspace / "app" / "llm.txt").read_text() == "drafted\n"
    events = await service.search_events(conversation_id)
    observed = {e["cause"]: e for e in events if e.get("observation") and e.get("cause") is not None}
    by_message = {e["message"]: e for e in events if e.get("action")}
    assert "recall 1" not in by_message and "condensation 11" not in by_message  # no-ops: not logged
    timed = observed[by_message["run 3"]["id"]]
    assert exit_code_of(timed) == -1 and "killed after 1 s" in timed["content"]  # its own timeout
    cell = observed[by_message["run_ipython 4"]["id"]]
    assert cell["observation"] == "run_ipython" and cell["content"].startswith("42\n")
    for kind, number in (("browse", 12), ("delegate", 13), ("call_tool_mcp", 14)):
        skipped = observed[by_message[f"{kind} {number}"]["id"]]
        assert skipped["content"] == f"skipped: convtui cannot replay {kind}"
        assert skipped["extras"]["error_id"] == "REPLAY_SKIPPED"
    info = await service.get(conversation_id)
    assert info.status_message == "replay finished; 3 actions skipped (browse, delegate, call_tool_mcp)"
    assert info.agent_state is AgentState.FINISHED


async def test_an_imported_conversation_logs_its_re_run_after_the_recorded_events(
    service: ConversationService, manager: ConversationManager
) -> None:
    trajectory = [
        {"id": 0, "source": "user", "action": "message", "message": "check", "args": {"content": "check"}},
        _action(1, "run", {"command": "test -e missing.txt", "is_input": False}),
        {"id": 2, "source": "agent", "observation": "run", "cause": 1, "content": "", "extras": {"command": "test -e missing.txt", "metadata": {"exit_code": 0}}},
        _action(3, "finish", {"outputs": {}, "thought": "", "final_thought": "ok"}),
    ]
    conversation_id = (await service.import_trajectory(orjson.dumps(trajectory))).conversation_id
    recorded = await service.search_events(conversation_id)
    await run_to_idle(manager, conversation_id)
    events = await service.search_events(conversation_id)
    assert events[: len(recorded)] == recorded
    rerun = events[len(recorded) :]
    assert rerun[0]["content"] == "Running the 3 imported actions again in the workspace."
    assert kinds(rerun[1:]) == ["a:message", "a:run", "o:run", "a:finish"]
    assert exit_code_of(rerun[3]) == 1  # what happened now, beside the recorded 0
    # No model is configured: had the re-run looked like something to answer, the loop would have failed.
    info = await service.get(conversation_id)
    assert (info.agent_state, info.status_message) == (AgentState.FINISHED, "replay finished")


@pytest.mark.parametrize("model, vision", [("openai/gpt-4o", True), ("openai/fake-model", False)])
async def test_images_reach_a_vision_model_as_image_parts_and_others_as_words(
    service: ConversationService, manager: ConversationManager, llm: FakeLLMServer, model: str, vision: bool
) -> None:
    await service.update_settings({"llm_model": model, "llm_api_key": API_KEY, "llm_base_url": llm.base_url, "llm_timeout": 5})
    script = Script(Text("I see it."))
    llm.responder = script
    url = "https://example.com/screenshot.png"
    conversation_id = await new(service, "What is wrong in this screenshot?", image_urls=[url])
    await run_to_idle(manager, conversation_id)
    sent = script.agent_requests[0]["messages"][1]["content"]
    if vision:
        assert sent == [
            {"type": "text", "text": "What is wrong in this screenshot?"},
            {"type": "image_url", "image_url": {"url": url}},
        ]
    else:
        assert sent == f"What is wrong in this screenshot?\n[an image was attached ({url}); this model cannot see images]"


async def test_an_experiment_config_changes_the_settings_of_its_conversation_only(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    llm.responder = Script(*[ToolCall("think", {"thought": f"step {i}"}) for i in range(3)], Text("done"))
    experiment = await new(configured, "with the experiment")
    assert await configured.set_experiment_config(experiment, {"config": {"max_iterations": "2", "no_such_thing": "1"}})
    assert not await configured.set_experiment_config(experiment, {"config": {"max_iterations": "9"}})  # set once
    await run_to_idle(manager, experiment)
    info = await configured.get(experiment)
    assert (info.status_message or "").startswith("reached 2 steps for one message (max_iterations)")
    assert info.attention == "limit"
    llm.responder = Script(*[ToolCall("think", {"thought": f"step {i}"}) for i in range(3)], Text("done"))
    plain = await new(configured, "without")
    await run_to_idle(manager, plain)
    assert (await configured.get(plain)).attention is None  # the setting itself (50) was not changed


async def test_actions_left_without_result_say_whether_the_loop_stopped_or_its_process_died(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    llm.responder = Script(ToolCall("execute_bash", {"command": "echo never"}), Text("after the stop"))
    conversation_id = await new(configured)
    await manager.start(conversation_id, confirm=True)
    await until(lambda: manager.pending_action(conversation_id) is not None)
    await manager.stop(conversation_id)  # while the command waits for approval
    events = await configured.search_events(conversation_id)
    action = next(e for e in events if e.get("action") == "run")
    [answer] = [e for e in events if e.get("cause") == action["id"]]
    assert answer["content"] == agent.STOPPED_BEFORE_IT_RAN  # at the stop, not at the next start
    # A process killed mid-action leaves it unanswered: the next start says so.
    killed = (await configured.event_log(conversation_id)).append([_run_step(0, "sleep 30") | {"id": None}])[0]
    script = Script(Text("resumed"))
    llm.responder = script
    await run_to_idle(manager, conversation_id, confirm=False)
    [answer] = [e for e in await configured.search_events(conversation_id) if e.get("cause") == killed["id"]]
    assert answer["content"] == agent.KILLED_DURING_IT
