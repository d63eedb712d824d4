"""Agent loops against a model that misbehaves: a 10 MB reply, bodies that are
not chat completions, tool calls that are wrong forever, tools called
forever, no answer at all; and one misbehaving loop must not hold up another
loop of the same manager.

Real litellm (in the model worker process) talks to the fake server on
127.0.0.1. Every wait is bounded, so a loop that never ends fails its test
instead of hanging the run."""

from __future__ import annotations

import asyncio
import resource
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from convtui.backend.manager import ConversationManager
from convtui.backend.models import AgentState, ConversationInfo, ConversationStatus, RuntimeStatus
from convtui.backend.service import ConversationService

from .fake_llm import (
    DropMidStream,
    Error,
    FakeLLMServer,
    Hang,
    Huge,
    Response,
    Text,
    ToolCall,
    ToolCalls,
    _head,
    assert_calls_answered,
)

API_KEY = "sk-test-0123456789abcdef"
MAX_ITERATIONS = 5
TRANSIENT_ATTEMPTS = 3  # one call and agent.TRANSIENT_RETRIES (2) retries
LLM_ERRORS = {
    RuntimeStatus.ERROR,
    RuntimeStatus.ERROR_LLM_SERVICE_UNAVAILABLE,
    RuntimeStatus.ERROR_LLM_INTERNAL_SERVER_ERROR,
}


# -- a server that can also send what no OpenAI server would -------------------------


@dataclass
class Raw:
    """Send these bytes as the body (after a status line and headers of our
    choosing), then close the connection."""

    body: bytes
    content_type: str = "text/event-stream"
    status: int = 200


class MisbehavingServer(FakeLLMServer):
    async def _answer(self, response: Any, body: dict[str, Any], reader: Any, writer: Any) -> bool:
        if isinstance(response, Raw):
            headers = {
                "content-type": response.content_type,
                "content-length": str(len(response.body)),
                "connection": "close",
            }
            writer.write(_head(response.status, headers) + response.body)
            await writer.drain()
            return False
        return await super()._answer(response, body, reader, writer)


# -- helpers (after tests/test_agent.py) ------------------------------------------------


def is_title_request(body: dict[str, Any]) -> bool:
    return str(body["messages"][0].get("content") or "").startswith("Write a short title")


def first_user_message(body: dict[str, Any]) -> str:
    return next(str(m.get("content")) for m in body["messages"] if m["role"] == "user")


class Router:
    """Answers title requests with a fixed title and each agent request by
    the first route whose key is in the conversation's first user message."""

    def __init__(self, **routes: Callable[[], Response]) -> None:
        self.routes = routes
        self.agent_requests: dict[str, list[dict[str, Any]]] = {key: [] for key in routes}

    def __call__(self, body: dict[str, Any]) -> Response:
        if is_title_request(body):
            return Text("A title")
        message = first_user_message(body)
        for key, make in self.routes.items():
            if key in message:
                self.agent_requests[key].append(body)
                return make()
        raise AssertionError(f"no route for {message!r}")


def forever(response: Response) -> Router:
    return Router(go=lambda: response)


@pytest.fixture
async def llm() -> AsyncIterator[MisbehavingServer]:
    async with MisbehavingServer() as server:
        yield server


@pytest.fixture
async def configured(service: ConversationService, llm: MisbehavingServer) -> ConversationService:
    await service.update_settings(
        {
            "llm_model": "openai/fake-model",
            "llm_api_key": API_KEY,
            "llm_base_url": llm.base_url,
            "llm_timeout": 5,
            "max_iterations": MAX_ITERATIONS,
        }
    )
    return service


@pytest.fixture
async def manager(service: ConversationService) -> AsyncIterator[ConversationManager]:
    created = ConversationManager(service, retry_delay=0.01)
    yield created
    await asyncio.wait_for(created.shutdown(), 10)


async def new(service: ConversationService, message: str = "go") -> str:
    return (await service.new_conversation({"initial_user_msg": message})).conversation_id


async def run_to_idle(manager: ConversationManager, conversation_id: str, timeout: float = 20, **options: Any) -> None:
    await manager.start(conversation_id, until_idle=True, **options)
    await asyncio.wait_for(manager.wait(conversation_id), timeout)


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def run_unconfirmed(
    configured: ConversationService, manager: ConversationManager, llm: MisbehavingServer, router: Router
) -> tuple[str, ConversationInfo]:
    """A new conversation answered by `router`, run without confirmations
    until it is idle; its id and how it ended."""
    llm.responder = router
    conversation_id = await new(configured)
    await run_to_idle(manager, conversation_id, confirm=False)
    return conversation_id, await configured.get(conversation_id)


def assert_labelled(message: str | None) -> str:
    assert message, "no reason recorded"
    assert "\n" not in message and "Traceback" not in message and API_KEY not in message
    return message


async def assert_ended_in_error(service: ConversationService, conversation_id: str) -> None:
    info = await service.get(conversation_id)
    assert (info.status, info.agent_state) == (ConversationStatus.ERROR, AgentState.ERROR)
    assert info.runtime_status in LLM_ERRORS
    message = assert_labelled(info.status_message)
    last = (await service.search_events(conversation_id))[-1]
    assert last["observation"] == "agent_state_changed" and last["content"] == message


# -- a huge reply -----------------------------------------------------------------------


async def test_a_10_mb_reply_is_stored_or_labelled_without_ballooning(
    configured: ConversationService, manager: ConversationManager, llm: MisbehavingServer
) -> None:
    await configured.set_setting("llm_timeout", "30")
    size = 10_000_000
    router = forever(Huge(size))
    llm.responder = router
    conversation_id = await new(configured)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    started = time.monotonic()
    await run_to_idle(manager, conversation_id, timeout=40)
    elapsed = time.monotonic() - started
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 300, f"peak memory grew by {grown_mib:.0f} MiB for a 10 MB reply"
    assert elapsed < 30

    info = await configured.get(conversation_id)
    events = await configured.search_events(conversation_id)
    answers = [e for e in events if e.get("source") == "agent" and e.get("action") == "message"]
    if answers:
        assert len(answers) == 1 and len(answers[0]["message"]) == size
        assert info.agent_state is AgentState.AWAITING_USER_INPUT
    else:
        await assert_ended_in_error(configured, conversation_id)
    assert len(router.agent_requests["go"]) == 1


# -- bodies that are not chat completions ------------------------------------------------

MALFORMED: dict[str, Response | Raw] = {
    "sse-invalid-json": Raw(
        b'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"hel\n\n'
        b"data: [DONE]\n\n"
    ),
    "sse-wrong-shape": Raw(b'data: {"choices": "nonsense"}\n\ndata: [DONE]\n\n'),
    "sse-no-choices": Raw(b'data: {"id":"c1","object":"chat.completion.chunk","choices":[]}\n\ndata: [DONE]\n\n'),
    "cut-mid-stream": DropMidStream(after_chunks=1),
    "cut-before-content": DropMidStream(after_chunks=0),
    "html-503": Raw(b"<html><body>Service Unavailable</body></html>", "text/html", 503),
}
# Bodies that litellm turns into an empty answer: a labelled, retried failure.
NOT_A_COMPLETION: dict[str, Raw] = {
    "json-body-not-json": Raw(b"this is not JSON at all", "application/json"),
    "json-body-truncated": Raw(b'{"id": "x", "choices": [', "application/json"),
    "empty-200": Raw(b""),
}


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_a_malformed_reply_ends_in_a_labelled_error_after_bounded_retries(
    configured: ConversationService, manager: ConversationManager, llm: MisbehavingServer, name: str
) -> None:
    router = forever(MALFORMED[name])  # type: ignore[arg-type]
    llm.responder = router
    conversation_id = await new(configured)
    await run_to_idle(manager, conversation_id)
    await assert_ended_in_error(configured, conversation_id)
    assert 1 <= len(router.agent_requests["go"]) <= TRANSIENT_ATTEMPTS
    events = await configured.search_events(conversation_id)
    assert not [e for e in events if e.get("source") == "agent" and e.get("action") == "message"]


@pytest.mark.parametrize("name", [*NOT_A_COMPLETION, "tool-call-without-a-name"])
async def test_a_reply_with_nothing_in_it_is_not_taken_for_an_empty_answer(
    configured: ConversationService, manager: ConversationManager, llm: MisbehavingServer, name: str
) -> None:
    response = NOT_A_COMPLETION.get(name) or ToolCall("", {"command": "ls"})
    router = forever(response)  # type: ignore[arg-type]
    llm.responder = router
    conversation_id = await new(configured)
    await run_to_idle(manager, conversation_id)
    events = await configured.search_events(conversation_id)
    assert not [e for e in events if e.get("source") == "agent" and e.get("action") == "message"]
    info = await configured.get(conversation_id)
    # A labelled error, or (for the nameless call) an error observation per step up to max_iterations.
    assert info.status in (ConversationStatus.ERROR, ConversationStatus.STOPPED)
    assert info.agent_state is not AgentState.AWAITING_USER_INPUT
    assert_labelled(info.status_message)
    assert 1 <= len(router.agent_requests["go"]) <= MAX_ITERATIONS


@pytest.mark.parametrize("body", ["json", "html"])
async def test_a_bad_gateway_is_retried_like_other_transient_errors(
    configured: ConversationService, manager: ConversationManager, llm: MisbehavingServer, body: str
) -> None:
    first = Error(502) if body == "json" else Raw(b"<html>502 Bad Gateway</html>", "text/html", 502)
    answers: list[Any] = [first, Text("through the gateway at last")]
    router = Router(go=lambda: answers.pop(0) if answers else Text("extra"))
    llm.responder = router
    conversation_id = await new(configured)
    await run_to_idle(manager, conversation_id)
    events = await configured.search_events(conversation_id)
    assert events[-1].get("message") == "through the gateway at last"
    assert len(router.agent_requests["go"]) == 2


# -- tool calls that are wrong forever, tools called forever ----------------------------------

BAD_CALLS: dict[str, Callable[[], Response]] = {
    "unknown-tool": lambda: ToolCall("launch_rockets", {"count": 3}),
    "arguments-not-json": lambda: ToolCall("execute_bash", '{"command": "ls"'),
    "arguments-a-list": lambda: ToolCall("execute_bash", '["ls"]'),
    "arguments-wrong-type": lambda: ToolCall("execute_bash", {"command": 42}),
    "arguments-missing": lambda: ToolCall("str_replace_editor", {"command": "create"}),
    "several-bad-at-once": lambda: ToolCalls(
        [ToolCall("launch_rockets", {}), ToolCall("think", "{oops"), ToolCall("finish", {"message": 7})]
    ),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
async def test_bad_tool_calls_forever_stop_at_max_iterations(
    configured: ConversationService, manager: ConversationManager, llm: MisbehavingServer, name: str
) -> None:
    router = Router(go=BAD_CALLS[name])
    conversation_id, info = await run_unconfirmed(configured, manager, llm, router)
    assert info.status is ConversationStatus.STOPPED and info.agent_state is AgentState.STOPPED
    reason = assert_labelled(info.status_message)
    assert "max_iterations" in reason and str(MAX_ITERATIONS) in reason
    requests = router.agent_requests["go"]
    assert len(requests) == MAX_ITERATIONS
    events = await configured.search_events(conversation_id)
    assert events[-1]["observation"] == "agent_state_changed" and events[-1]["content"] == reason
    calls_per_reply = 3 if name == "several-bad-at-once" else 1
    errors = [e for e in events if e.get("observation") == "error"]
    assert len(errors) == MAX_ITERATIONS * calls_per_reply
    assert all(e["content"] and "Traceback" not in e["content"] for e in errors)
    assert_calls_answered(requests)


TOOLS_FOREVER: dict[str, Callable[[], Response]] = {
    "think": lambda: ToolCall("think", {"thought": "still thinking"}),
    "parallel-thinks": lambda: ToolCalls([ToolCall("think", {"thought": f"idea {n}"}) for n in range(3)]),
    "view-a-missing-file": lambda: ToolCall("str_replace_editor", {"command": "view", "path": "/workspace/nope.txt"}),
    "run-a-command": lambda: ToolCall("execute_bash", {"command": "true"}),
}


@pytest.mark.parametrize("name", list(TOOLS_FOREVER))
async def test_a_model_that_calls_tools_forever_stops_at_max_iterations(
    configured: ConversationService, manager: ConversationManager, llm: MisbehavingServer, name: str
) -> None:
    router = Router(go=TOOLS_FOREVER[name])
    conversation_id, info = await run_unconfirmed(configured, manager, llm, router)
    assert info.status is ConversationStatus.STOPPED
    assert "max_iterations" in assert_labelled(info.status_message)
    assert len(router.agent_requests["go"]) == MAX_ITERATIONS
    assert_calls_answered(router.agent_requests["go"])
    # A new message is a new budget of steps.
    await manager.send_message(conversation_id, "go on")
    await run_to_idle(manager, conversation_id, confirm=False)
    assert len(router.agent_requests["go"]) == 2 * MAX_ITERATIONS


# -- no answer at all ----------------------------------------------------------------------


async def test_a_model_that_never_answers_is_service_unavailable_after_retries(
    configured: ConversationService, manager: ConversationManager, llm: MisbehavingServer
) -> None:
    await configured.set_setting("llm_timeout", "0.5")
    router = forever(Hang())
    llm.responder = router
    conversation_id = await new(configured)
    started = time.monotonic()
    await run_to_idle(manager, conversation_id, timeout=15)
    assert time.monotonic() - started < 10
    info = await configured.get(conversation_id)
    assert (info.status, info.runtime_status, info.agent_state) == (
        ConversationStatus.ERROR,
        RuntimeStatus.ERROR_LLM_SERVICE_UNAVAILABLE,
        AgentState.ERROR,
    )
    assert "0.5 s" in assert_labelled(info.status_message)
    assert len(router.agent_requests["go"]) == TRANSIENT_ATTEMPTS


# -- one misbehaving loop does not hold up another ---------------------------------------------


async def test_a_loop_runs_to_completion_while_another_hangs_on_the_model(
    configured: ConversationService, manager: ConversationManager, llm: MisbehavingServer
) -> None:
    await configured.set_setting("llm_timeout", "60")  # the stuck one stays stuck for the whole test
    router = Router(
        stuck=Hang,
        healthy=lambda: (
            ToolCall("think", {"thought": "one step"})
            if len(router.agent_requests["healthy"]) == 1
            else Text("all done")
        ),
    )
    llm.responder = router
    stuck = await new(configured, "stuck forever")
    healthy = await new(configured, "healthy please")

    await manager.start(stuck)
    await until(lambda: len(router.agent_requests["stuck"]) == 1)
    started = time.monotonic()
    await run_to_idle(manager, healthy, timeout=15)
    assert time.monotonic() - started < 10

    events = await configured.search_events(healthy)
    assert events[-1]["message"] == "all done"
    assert (await configured.get(healthy)).agent_state is AgentState.AWAITING_USER_INPUT
    # The stuck loop is still waiting, the service still answers at once.
    assert manager.is_running(stuck)
    assert (await configured.get(stuck)).status is ConversationStatus.RUNNING
    assert len((await asyncio.wait_for(configured.search(), 2)).results) == 2
    await asyncio.wait_for(configured.rename(stuck, "Renamed while stuck"), 2)

    result = await asyncio.wait_for(manager.stop(stuck), 5)
    assert result.was_running
    info = await configured.get(stuck)
    assert (info.status, info.agent_state) == (ConversationStatus.STOPPED, AgentState.STOPPED)
    assert info.title == "Renamed while stuck"


async def test_a_loop_runs_to_completion_while_another_keeps_erroring(
    configured: ConversationService, llm: MisbehavingServer
) -> None:
    manager = ConversationManager(configured, retry_delay=0.4)  # rate-limit back-off: ~2.8 s of errors
    try:
        router = Router(
            erroring=lambda: Error(429),
            broken=lambda: Raw(b'data: {"choices": "nonsense"}\n\n'),
            healthy=lambda: (
                ToolCall("think", {"thought": "one step"})
                if len(router.agent_requests["healthy"]) == 1
                else Text("all done")
            ),
        )
        llm.responder = router
        erroring = await new(configured, "erroring forever")
        broken = await new(configured, "broken forever")
        healthy = await new(configured, "healthy please")
        await manager.start(erroring, until_idle=True)
        await manager.start(broken, until_idle=True)
        await until(lambda: router.agent_requests["erroring"] and router.agent_requests["broken"])

        await run_to_idle(manager, healthy, timeout=15)
        assert (await configured.search_events(healthy))[-1]["message"] == "all done"
        assert manager.is_running(erroring), "the healthy loop should have finished during the back-off"

        await asyncio.wait_for(asyncio.gather(manager.wait(erroring), manager.wait(broken)), 20)
        info = await configured.get(erroring)
        assert (info.status, info.runtime_status) == (ConversationStatus.ERROR, RuntimeStatus.AGENT_RATE_LIMITED)
        assert_labelled(info.status_message)
        assert len(router.agent_requests["erroring"]) == 4  # one call and three rate-limit retries
        await assert_ended_in_error(configured, broken)
        assert (await configured.get(healthy)).agent_state is AgentState.AWAITING_USER_INPUT
    finally:
        await asyncio.wait_for(manager.shutdown(), 10)


async def test_many_loops_misbehaving_at_once_all_end_and_a_healthy_one_finishes(
    configured: ConversationService, manager: ConversationManager, llm: MisbehavingServer
) -> None:
    """Bad tool calls, tools forever, a cut stream and a 1 MB reply at once,
    next to a healthy loop: each ends in its own labelled state."""
    router = Router(
        bad_tools=lambda: ToolCall("launch_rockets", {}),
        busy=lambda: ToolCall("think", {"thought": "again"}),
        cut=lambda: DropMidStream(after_chunks=2),
        large=lambda: Huge(1_000_000),
        healthy=lambda: Text("fine"),
    )
    llm.responder = router
    ids = {key: await new(configured, f"{key} conversation") for key in router.routes}
    for conversation_id in ids.values():
        await manager.start(conversation_id, until_idle=True, confirm=False)
    await asyncio.wait_for(asyncio.gather(*(manager.wait(i) for i in ids.values())), 30)

    infos = {key: await configured.get(conversation_id) for key, conversation_id in ids.items()}
    assert "max_iterations" in (infos["bad_tools"].status_message or "")
    assert "max_iterations" in (infos["busy"].status_message or "")
    await assert_ended_in_error(configured, ids["cut"])
    assert infos["large"].agent_state is AgentState.AWAITING_USER_INPUT
    assert len((await configured.search_events(ids["large"]))[-1]["message"]) == 1_000_000
    assert (await configured.search_events(ids["healthy"]))[-1]["message"] == "fine"
    assert len(router.agent_requests["bad_tools"]) == len(router.agent_requests["busy"]) == MAX_ITERATIONS
