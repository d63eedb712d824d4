"""Real litellm against the fake OpenAI server in ``tests/fake_llm.py``.

These tests pin down how litellm (1.110.x, ``openai/`` provider) behaves against
an OpenAI-compatible endpoint: what it returns, what it raises (exact classes
and messages), where usage shows up when streaming.  Agent code relies on these
facts, so a litellm upgrade that changes them should fail here first.

Nothing is mocked: litellm -> openai SDK -> aiohttp/httpx -> TCP -> FakeLLMServer.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from typing import Any

import httpx
import openai
import pytest

from .fake_llm import (
    Drop,
    DropMidStream,
    Error,
    FakeLLMServer,
    Hang,
    Huge,
    Slow,
    Text,
    ToolCall,
    ToolCalls,
)

MESSAGES = [{"role": "user", "content": "What is the weather in Paris?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "Current time in a timezone",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}},
        },
    },
]
CONTEXT_MESSAGE = (
    "This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens. "
    "Please reduce the length of the messages."
)


@pytest.fixture(scope="session")
def litellm() -> Any:
    """litellm, imported once per session (~2-3 s), without any network fetch."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    import litellm as _litellm
    import litellm.exceptions  # noqa: F401  (MidStreamFallbackError is not re-exported at top level)

    _litellm.suppress_debug_info = True
    return _litellm


@pytest.fixture
async def server() -> Any:
    async with FakeLLMServer() as started:
        yield started


async def complete(litellm: Any, server: FakeLLMServer, **kwargs: Any) -> Any:
    kwargs.setdefault("messages", MESSAGES)
    return await litellm.acompletion(model="openai/fake-model", api_base=server.base_url, api_key="sk-test", **kwargs)


async def collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


def streamed_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def merge_tool_deltas(chunks: list[Any]) -> dict[int, dict[str, str]]:
    """What an agent does with streamed tool-call deltas: merge them by index."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        if not chunk.choices:
            continue
        for delta in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            if delta.id:
                call["id"] = delta.id
            if delta.function.name:
                call["name"] += delta.function.name
            call["arguments"] += delta.function.arguments or ""
    return calls


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# --------------------------------------------------------------------------- text


async def test_plain_text_non_streaming(litellm: Any, server: FakeLLMServer) -> None:
    server.script(Text("Sunny, 21 degrees.", usage=(42, 7)))
    response = await complete(litellm, server)

    assert type(response) is litellm.ModelResponse
    assert response.choices[0].message.content == "Sunny, 21 degrees."
    assert response.choices[0].message.role == "assistant"
    assert response.choices[0].message.tool_calls is None
    assert response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (42, 7, 49)
    # The provider prefix is stripped from the model sent to the server and echoed back.
    assert response.model == "fake-model"
    assert server.requests == [{"model": "fake-model", "messages": MESSAGES}]
    assert server.request_count == 1


async def test_streamed_text_arrives_in_several_chunks(litellm: Any, server: FakeLLMServer) -> None:
    text = "The weather in Paris is sunny with a light breeze."
    server.script(Text(text))
    stream = await complete(litellm, server, stream=True)
    assert type(stream).__name__ == "CustomStreamWrapper"
    chunks = await collect(stream)

    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == len(text.split()) > 1
    assert streamed_text(chunks) == text
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    assert server.requests[0]["stream"] is True
    assert "stream_options" not in server.requests[0]  # litellm does not add it on its own

    # Without stream_options no chunk carries usage; stream_chunk_builder then *estimates*
    # usage with a local tokenizer (it is not the server's (10, 5)).
    assert not any(getattr(c, "usage", None) for c in chunks)
    rebuilt = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    assert rebuilt.choices[0].message.content == text
    assert (rebuilt.usage.prompt_tokens, rebuilt.usage.completion_tokens) != (10, 5)


async def test_streamed_usage_arrives_in_a_final_chunk_without_choices(litellm: Any, server: FakeLLMServer) -> None:
    server.script(Text("one two three", usage=(30, 3)))
    chunks = await collect(await complete(litellm, server, stream=True, stream_options={"include_usage": True}))

    assert server.requests[0]["stream_options"] == {"include_usage": True}
    assert streamed_text(chunks) == "one two three"
    # Usage is only on the very last chunk, whose choices list is empty; the chunk before it
    # holds finish_reason.
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens, chunks[-1].usage.total_tokens) == (30, 3, 33)
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert not any(getattr(c, "usage", None) for c in chunks[:-1])
    rebuilt = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    assert (rebuilt.usage.prompt_tokens, rebuilt.usage.completion_tokens) == (30, 3)


async def test_huge_answer(litellm: Any, server: FakeLLMServer) -> None:
    size = 2_000_000
    server.script(Huge(size), Huge(size))
    response = await complete(litellm, server)
    assert len(response.choices[0].message.content) == size
    chunks = await collect(await complete(litellm, server, stream=True))
    assert len(streamed_text(chunks)) == size
    assert len(chunks) > 10


# --------------------------------------------------------------------------- tool calls


async def test_tool_call_non_streaming(litellm: Any, server: FakeLLMServer) -> None:
    server.script(ToolCall("get_weather", {"city": "Paris"}, call_id="call_abc"))
    response = await complete(litellm, server, tools=TOOLS)

    message = response.choices[0].message
    assert response.choices[0].finish_reason == "tool_calls"
    assert message.content is None
    assert len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert (call.id, call.type, call.function.name) == ("call_abc", "function", "get_weather")
    assert isinstance(call.function.arguments, str)
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    assert server.requests[0]["tools"] == TOOLS


async def test_several_tool_calls_and_malformed_arguments_non_streaming(litellm: Any, server: FakeLLMServer) -> None:
    server.script(
        ToolCalls(
            [
                ToolCall("get_weather", {"city": "Paris"}, call_id="call_1"),
                ToolCall("get_time", '{"tz": "Europe/Par', call_id="call_2"),  # truncated JSON
            ],
            content="Let me look that up.",
        )
    )
    response = await complete(litellm, server, tools=TOOLS)

    message = response.choices[0].message
    assert message.content == "Let me look that up."
    assert [(c.id, c.function.name) for c in message.tool_calls] == [("call_1", "get_weather"), ("call_2", "get_time")]
    assert json.loads(message.tool_calls[0].function.arguments) == {"city": "Paris"}
    # litellm does not validate or repair arguments: the raw string comes through.
    assert message.tool_calls[1].function.arguments == '{"tz": "Europe/Par'


async def test_tool_calls_streaming(litellm: Any, server: FakeLLMServer) -> None:
    server.script(
        ToolCalls(
            [
                ToolCall("get_weather", {"city": "Paris"}, call_id="call_1"),
                ToolCall("get_time", "{not json", call_id="call_2"),
            ],
            content="Checking both.",
        )
    )
    chunks = await collect(await complete(litellm, server, tools=TOOLS, stream=True))

    assert streamed_text(chunks) == "Checking both."
    # Arguments really arrive in pieces, and every delta carries its index.
    argument_deltas = [
        d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or []) if d.function.arguments
    ]
    assert len(argument_deltas) > 2
    calls = merge_tool_deltas(chunks)
    assert calls == {
        0: {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        1: {"id": "call_2", "name": "get_time", "arguments": "{not json"},
    }
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    rebuilt = litellm.stream_chunk_builder(chunks, messages=MESSAGES)
    message = rebuilt.choices[0].message
    assert [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls] == [
        ("call_1", "get_weather", '{"city": "Paris"}'),
        ("call_2", "get_time", "{not json"),
    ]
    assert rebuilt.choices[0].finish_reason == "tool_calls"


async def test_single_tool_call_streaming_without_text(litellm: Any, server: FakeLLMServer) -> None:
    server.script(ToolCall("get_weather", {"city": "Paris"}, call_id="call_x"))
    chunks = await collect(await complete(litellm, server, tools=TOOLS, stream=True))
    assert streamed_text(chunks) == ""
    assert chunks[0].choices[0].delta.content is None  # role chunk: content null, like OpenAI
    assert merge_tool_deltas(chunks) == {0: {"id": "call_x", "name": "get_weather", "arguments": '{"city": "Paris"}'}}


# --------------------------------------------------------------------------- HTTP errors


@pytest.mark.parametrize(
    ("response", "exception_name", "message"),
    [
        pytest.param(
            Error(401),
            "AuthenticationError",
            "litellm.AuthenticationError: AuthenticationError: OpenAIException - Incorrect API key provided: sk-test.",
            id="401",
        ),
        pytest.param(
            Error(429),
            "RateLimitError",
            "litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for fake-model. Please try again in 0s.",
            id="429",
        ),
        pytest.param(
            Error(500),
            "InternalServerError",
            "litellm.InternalServerError: InternalServerError: OpenAIException - The server had an error while processing your request.",
            id="500",
        ),
        pytest.param(
            Error(400, CONTEXT_MESSAGE, error_type="invalid_request_error", code="context_length_exceeded"),
            "ContextWindowExceededError",
            "litellm.ContextWindowExceededError: litellm.BadRequestError: ContextWindowExceededError: OpenAIException - "
            + CONTEXT_MESSAGE,
            id="400-context-window",
        ),
        pytest.param(Error(400, "Bad tool schema"), "BadRequestError", "litellm.BadRequestError: OpenAIException - Bad tool schema", id="400"),
        pytest.param(
            Error(404),
            "NotFoundError",
            "litellm.NotFoundError: NotFoundError: OpenAIException - The model `fake-model` does not exist.",
            id="404",
        ),
        pytest.param(
            Error(503),
            "ServiceUnavailableError",
            "litellm.ServiceUnavailableError: ServiceUnavailableError: OpenAIException - "
            "The engine is currently overloaded, please try again later.",
            id="503",
        ),
        # Surprises: 403 is not PermissionDeniedError, and 504 becomes a Timeout.
        pytest.param(
            Error(403), "APIError", "litellm.APIError: APIError: OpenAIException - You are not allowed to use this model.", id="403"
        ),
        pytest.param(Error(504, "upstream timed out"), "Timeout", "litellm.Timeout: Timeout Error: OpenAIException - upstream timed out", id="504"),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_http_errors_map_to_exact_litellm_exceptions(
    litellm: Any, server: FakeLLMServer, response: Error, exception_name: str, message: str, stream: bool
) -> None:
    expected = getattr(litellm.exceptions, exception_name)
    server.script(response)
    with pytest.raises(expected) as caught:
        # For streams the error surfaces from acompletion() itself, not from iteration.
        await complete(litellm, server, max_retries=0, stream=stream)
    assert type(caught.value) is expected
    assert str(caught.value) == message
    assert caught.value.status_code == response.status  # even for 504 -> Timeout
    assert caught.value.llm_provider == "openai"
    assert server.request_count == 1


async def test_context_window_error_is_recognised_by_message_not_code(litellm: Any, server: FakeLLMServer) -> None:
    server.script(Error(400, "too many tokens", code="context_length_exceeded"), Error(400, "prompt is too long: 9000 tokens > 8192 maximum"))
    with pytest.raises(litellm.BadRequestError) as caught:
        await complete(litellm, server, max_retries=0)
    assert type(caught.value) is litellm.BadRequestError
    with pytest.raises(litellm.ContextWindowExceededError):
        await complete(litellm, server, max_retries=0)
    assert issubclass(litellm.ContextWindowExceededError, litellm.BadRequestError)


async def test_rate_limit_response_carries_retry_after_zero(server: FakeLLMServer) -> None:
    server.script(Error(429))
    async with httpx.AsyncClient() as client:
        reply = await client.post(f"{server.base_url}/chat/completions", json={"model": "m", "messages": []})
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "0"
    assert reply.json() == {
        "error": {
            "message": "Rate limit reached for fake-model. Please try again in 0s.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


async def test_retries_without_max_retries(litellm: Any, server: FakeLLMServer) -> None:
    """The openai SDK retries twice by default; ``num_retries`` overrides ``max_retries``.

    ``retry-after: 0`` does *not* make SDK retries immediate (only 0 < value <= 60 is
    honoured; otherwise it backs off ~0.5 s, ~1 s ...), so this test uses
    ``retry-after-ms: 1``.
    """
    fast = {"retry-after-ms": "1"}
    server.default = Error(500, headers=fast)
    with pytest.raises(litellm.InternalServerError):
        await complete(litellm, server)
    assert server.request_count == 3

    with pytest.raises(litellm.InternalServerError):
        await complete(litellm, server, max_retries=0, num_retries=1)
    assert server.request_count == 3 + 2

    server.script(Error(500, headers=fast), Text("recovered"))
    response = await complete(litellm, server, max_retries=1)
    assert response.choices[0].message.content == "recovered"
    assert server.request_count == 5 + 2

    server.script(Error(401))  # 4xx other than 408/409/429 are not retried
    with pytest.raises(litellm.AuthenticationError):
        await complete(litellm, server)
    assert server.request_count == 7 + 1


# --------------------------------------------------------------------------- connection failures


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_connection_refused(litellm: Any, stream: bool) -> None:
    with pytest.raises(litellm.InternalServerError) as caught:
        await litellm.acompletion(
            model="openai/fake-model",
            api_base=f"http://127.0.0.1:{closed_port()}/v1",
            api_key="sk-test",
            messages=MESSAGES,
            max_retries=0,
            stream=stream,
        )
    assert type(caught.value) is litellm.InternalServerError
    assert str(caught.value) == "litellm.InternalServerError: InternalServerError: OpenAIException - Connection error."
    assert caught.value.status_code == 500
    # Not litellm.APIConnectionError, even though the openai SDK raised openai.APIConnectionError.
    assert not isinstance(caught.value, litellm.APIConnectionError)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_drop_without_answer(litellm: Any, server: FakeLLMServer, stream: bool) -> None:
    server.script(Drop())
    with pytest.raises(litellm.InternalServerError) as caught:
        await complete(litellm, server, max_retries=0, stream=stream)
    assert type(caught.value) is litellm.InternalServerError
    assert str(caught.value) == "litellm.InternalServerError: InternalServerError: OpenAIException - Connection error."
    assert server.request_count == 1
    # The server still works afterwards (a fresh connection is opened).
    response = await complete(litellm, server, max_retries=0)
    assert response.choices[0].message.content == "ok"


async def test_drop_mid_stream(litellm: Any, server: FakeLLMServer) -> None:
    server.script(DropMidStream(after_chunks=2, content="partial answer that never ends"))
    stream = await complete(litellm, server, max_retries=0, stream=True)  # the stream opens fine
    seen: list[str | None] = []
    with pytest.raises(litellm.exceptions.MidStreamFallbackError) as caught:
        async for chunk in stream:
            seen.append(chunk.choices[0].delta.content)
    # The consumer first receives the chunks that made it, then the exception.
    assert seen == ["", "partial ", "answer "]
    error = caught.value
    assert type(error) is litellm.exceptions.MidStreamFallbackError
    assert str(error) == (
        "litellm.MidStreamFallbackError: litellm.APIConnectionError: APIConnectionError: OpenAIException - "
        "Connection error. Original exception: APIConnectionError: litellm.APIConnectionError: "
        "APIConnectionError: OpenAIException - Connection error."
    )
    assert error.generated_content == "partial answer "
    assert error.is_pre_first_chunk is False
    assert error.status_code == 500
    assert type(error.original_exception) is litellm.APIConnectionError
    assert isinstance(error, litellm.ServiceUnavailableError)
    assert not isinstance(error, litellm.APIConnectionError)


async def test_drop_mid_body_non_streaming(litellm: Any, server: FakeLLMServer) -> None:
    server.script(DropMidStream())
    with pytest.raises(litellm.InternalServerError) as caught:
        await complete(litellm, server, max_retries=0)
    assert str(caught.value) == "litellm.InternalServerError: InternalServerError: OpenAIException - Connection error."


# --------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("response", [Slow(5, Text("too late")), Hang()], ids=["slow", "hang"])
async def test_timeout(litellm: Any, server: FakeLLMServer, response: Any, stream: bool) -> None:
    server.script(response)
    started = time.monotonic()
    with pytest.raises(litellm.Timeout) as caught:
        await complete(litellm, server, max_retries=0, timeout=0.5, stream=stream)
    elapsed = time.monotonic() - started
    assert 0.45 < elapsed < 2
    assert type(caught.value) is litellm.Timeout
    assert str(caught.value).startswith("litellm.Timeout: APITimeoutError - Request timed out. Error_str: Request timed out.")
    assert caught.value.status_code == 408
    assert isinstance(caught.value, openai.APITimeoutError)
    assert not isinstance(caught.value, litellm.APIConnectionError)
    # The server notices the client hanging up and gives up on the answer.
    for _ in range(100):
        if not server._tasks:
            break
        await asyncio.sleep(0.02)
    assert not server._tasks


async def test_slow_answer_within_timeout(litellm: Any, server: FakeLLMServer) -> None:
    server.script(Slow(0.2, ToolCall("get_weather", {"city": "Oslo"})))
    started = time.monotonic()
    response = await complete(litellm, server, max_retries=0, timeout=5, tools=TOOLS)
    assert time.monotonic() - started >= 0.2
    assert response.choices[0].message.tool_calls[0].function.name == "get_weather"


async def test_shutdown_with_requests_in_flight_is_prompt(litellm: Any) -> None:
    server = await FakeLLMServer().start()
    server.script(Hang(), Slow(30))
    calls = [asyncio.create_task(complete(litellm, server, max_retries=0, timeout=20)) for _ in range(2)]
    while server.request_count < 2:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    await server.aclose()
    assert time.monotonic() - started < 1
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [type(r) for r in results] == [litellm.InternalServerError] * 2


# --------------------------------------------------------------------------- cost


async def test_completion_cost_for_unknown_model_raises(litellm: Any, server: FakeLLMServer) -> None:
    response = await complete(litellm, server)
    assert response._hidden_params["response_cost"] is None  # litellm swallowed it during the call
    with pytest.raises(litellm.exceptions.ModelNotMappedError) as caught:
        litellm.completion_cost(completion_response=response)
    assert type(caught.value) is litellm.exceptions.ModelNotMappedError
    assert type(caught.value).__mro__[1] is Exception  # not an openai/litellm API error
    assert str(caught.value) == (
        "This model isn't mapped yet. model=fake-model, custom_llm_provider=openai. Add it here - "
        "https://github.com/BerriAI/litellm/blob/main/model_prices_and_context_window.json."
    )


# --------------------------------------------------------------------------- server behaviour


async def test_responder_default_and_queue_precedence(litellm: Any, server: FakeLLMServer) -> None:
    def responder(body: dict[str, Any]) -> Any:
        last = body["messages"][-1]["content"]
        return None if last == "fall through" else Text(f"echo: {last}")

    server.default = Text("the default")
    server.responder = responder
    server.script(Text("scripted"))

    async def ask(text: str) -> str:
        response = await complete(litellm, server, messages=[{"role": "user", "content": text}])
        return response.choices[0].message.content

    assert await ask("a") == "scripted"
    assert await ask("b") == "echo: b"
    assert await ask("fall through") == "the default"
    assert [r["messages"][-1]["content"] for r in server.requests] == ["a", "b", "fall through"]


async def test_concurrent_requests_are_served_concurrently(litellm: Any, server: FakeLLMServer) -> None:
    server.responder = lambda body: Slow(0.3, ToolCall("get_weather", {"city": "Paris"}))
    started = time.monotonic()
    responses = await asyncio.gather(*(complete(litellm, server, tools=TOOLS, max_retries=0) for _ in range(20)))
    assert time.monotonic() - started < 2
    assert all(r.choices[0].message.tool_calls[0].function.name == "get_weather" for r in responses)
    assert server.request_count == 20


async def test_raw_http(server: FakeLLMServer) -> None:
    """Keep-alive, /v1/models, 404s and the exact SSE wire format."""
    server.script(Text("a b"))
    async with httpx.AsyncClient() as client:
        models = await client.get(f"{server.base_url}/models")
        assert models.status_code == 200
        assert [m["id"] for m in models.json()["data"]] == ["fake-model", "fake-model-large"]

        missing = await client.get(f"http://127.0.0.1:{server.port}/v1/embeddings")
        assert missing.status_code == 404
        assert "error" in missing.json()

        body = {"model": "fake-model", "messages": [], "stream": True, "stream_options": {"include_usage": True}}
        async with client.stream("POST", f"{server.base_url}/chat/completions", json=body) as reply:
            assert reply.headers["content-type"].startswith("text/event-stream")
            lines = [line async for line in reply.aiter_lines() if line]
        assert lines[-1] == "data: [DONE]"
        events = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
        assert {e["object"] for e in events} == {"chat.completion.chunk"}
        assert len({e["id"] for e in events}) == 1
        assert [e["choices"][0]["delta"] for e in events[:-2]] == [
            {"role": "assistant", "content": "", "refusal": None},
            {"content": "a "},
            {"content": "b"},
        ]
        assert events[-2]["choices"][0]["finish_reason"] == "stop"
        assert events[-1]["choices"] == []
        assert events[-1]["usage"] == {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}

        plain = await client.post(f"{server.base_url}/chat/completions", json={"model": "fake-model", "messages": []})
        assert plain.json()["object"] == "chat.completion"
        assert plain.headers["content-length"] == str(len(plain.content))

        bad = await client.post(f"{server.base_url}/chat/completions", content=b"{nope")
        assert bad.status_code == 400
    assert server.connection_count == 1  # everything above went over one kept-alive connection
    assert server.request_count == 2  # only valid chat-completion bodies are recorded


# --------------------------------------------------------------------------- thread mode


def test_thread_mode_with_synchronous_litellm(litellm: Any) -> None:
    with FakeLLMServer.in_thread() as server:
        server.script(Text("sync hello"), Error(429), ToolCall("get_weather", {"city": "Rome"}))
        kwargs = {"model": "openai/fake-model", "api_base": server.base_url, "api_key": "sk-test", "messages": MESSAGES}

        response = litellm.completion(**kwargs, max_retries=0)
        assert response.choices[0].message.content == "sync hello"

        with pytest.raises(litellm.RateLimitError) as caught:
            litellm.completion(**kwargs, max_retries=0)
        assert type(caught.value) is litellm.RateLimitError
        # The sync path (httpx) reuses one keep-alive connection.
        assert server.connection_count == 1

        # (The sync openai SDK closes a stream's response after [DONE] without draining it,
        # so the connection used by a sync stream is not reused; the async SDK drains it.)
        chunks = list(litellm.completion(**kwargs, tools=TOOLS, stream=True, max_retries=0))
        assert merge_tool_deltas(chunks)[0]["name"] == "get_weather"

        # script() from several threads at once.
        threads = [threading.Thread(target=lambda: server.script(*[Text("t")] * 50)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert server.pending == 200
        assert server.request_count == 3


def test_thread_mode_serves_a_plain_http_client() -> None:
    """What a subprocess/CLI test would do: talk to base_url from outside the loop."""
    with FakeLLMServer.in_thread() as server:
        server.script(Hang())  # must not block shutdown
        with httpx.Client() as client:
            with pytest.raises(httpx.ReadTimeout):
                client.post(f"{server.base_url}/chat/completions", json={"messages": []}, timeout=0.2)
            reply = client.post(f"{server.base_url}/chat/completions", json={"messages": []})
        assert reply.json()["choices"][0]["message"]["content"] == "ok"
