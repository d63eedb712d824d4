"""A fake OpenAI-compatible chat-completions server for tests and benchmarks.

Stdlib only: ``asyncio.start_server`` plus a small hand-written HTTP/1.1
implementation.  Real clients (litellm -> openai SDK -> httpx) talk to it over
TCP on 127.0.0.1, so nothing in the client stack is mocked.

Typical use::

    async with FakeLLMServer() as server:
        server.script(Text("hello"), ToolCall("read_file", {"path": "a.py"}))
        response = await litellm.acompletion(
            model="openai/fake-model", api_base=server.base_url, api_key="sk-test",
            messages=[{"role": "user", "content": "hi"}],
        )
        assert server.requests[0]["messages"][0]["content"] == "hi"

Synchronous tests, or tests that run a CLI in a subprocess, use the thread mode::

    with FakeLLMServer.in_thread() as server:
        server.script(Text("hello"))
        ...

HTTP details:

* Requests: ``Content-Length`` bodies (``Transfer-Encoding: chunked`` request
  bodies are decoded as well), keep-alive by default, ``Connection: close``
  honoured.
* Non-streaming responses carry ``Content-Length``; the connection stays open.
* Streaming (``"stream": true``) responses are ``text/event-stream`` sent with
  ``Transfer-Encoding: chunked`` so the connection can be kept alive *and* a
  connection dropped mid-stream (:class:`DropMidStream`) is detectable by the
  client as an incomplete body rather than looking like a normal end of stream.
* ``GET /v1/models`` answers a small model list; any other path is a 404 with
  an OpenAI-style error body.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import re
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Union

__all__ = [
    "Drop",
    "DropMidStream",
    "Error",
    "FakeLLMServer",
    "Hang",
    "Huge",
    "Response",
    "Slow",
    "Text",
    "ToolCall",
    "ToolCalls",
]

MODELS = ("fake-model", "fake-model-large")

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

# Default (message, type, code) per status, modelled on what api.openai.com sends.
_ERROR_DEFAULTS: dict[int, tuple[str, str, str | None]] = {
    400: ("Invalid request.", "invalid_request_error", None),
    401: ("Incorrect API key provided: sk-test.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to use this model.", "invalid_request_error", "model_not_found"),
    404: ("The model `fake-model` does not exist.", "invalid_request_error", "model_not_found"),
    429: ("Rate limit reached for fake-model. Please try again in 0s.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request.", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


# --------------------------------------------------------------------------- responses


@dataclass
class Text:
    """A plain assistant text answer.

    ``usage`` is ``(prompt_tokens, completion_tokens)``.
    """

    content: str
    usage: tuple[int, int] = (10, 5)


@dataclass
class ToolCall:
    """An assistant message with a single tool call.

    ``arguments`` given as a dict is JSON-encoded; a str is sent verbatim, so a
    test can send malformed JSON.  ``call_id`` defaults to a fresh ``call_...``
    id.  ``content`` is optional assistant text sent alongside the call.
    """

    name: str
    arguments: str | dict[str, Any]
    call_id: str | None = None
    content: str = ""
    usage: tuple[int, int] = (10, 5)


@dataclass
class ToolCalls:
    """Several tool calls in one assistant message (parallel tool calls)."""

    calls: list[ToolCall]
    content: str = ""
    usage: tuple[int, int] = (10, 5)


@dataclass
class Error:
    """An HTTP error with an OpenAI error body.

    The body is ``{"error": {"message": ..., "type": ..., "param": null, "code": ...}}``.
    ``message``, ``error_type`` and ``code`` default to what OpenAI sends for
    ``status``.  A 429 carries ``retry-after: 0`` (so SDK retries do not sleep);
    ``headers`` adds or overrides response headers.
    """

    status: int
    message: str | None = None
    error_type: str | None = None
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Slow:
    """Wait ``seconds`` before answering with ``then``.

    Cancel-safe: shutting the server down (or the client disconnecting and the
    server closing) while waiting just abandons the answer.
    """

    seconds: float
    then: Response = field(default_factory=lambda: Text("ok"))


@dataclass
class Hang:
    """Never answer; hold the connection until the client disconnects."""


@dataclass
class Drop:
    """Read the request, then close the connection without answering."""


@dataclass
class DropMidStream:
    """Start answering, then close the connection part way through.

    Streaming requests get the role chunk plus ``after_chunks`` content chunks
    of ``content`` (split by words), then the connection is closed without the
    terminating chunk (no finish_reason, no ``[DONE]``).  Non-streaming requests
    get the headers (with the full ``Content-Length``) and half of the body.
    """

    after_chunks: int = 1
    content: str = "partial answer that never finishes because the server goes away"


@dataclass
class Huge:
    """A text answer whose content is exactly ``size_bytes`` bytes (ASCII)."""

    size_bytes: int


Response = Union[Text, ToolCall, ToolCalls, Error, Slow, Hang, Drop, DropMidStream, Huge]
Responder = Callable[[dict[str, Any]], Union[Response, None, Awaitable[Union[Response, None]]]]


class Script:
    """A responder: title requests get a fixed title, everything else comes
    from a queue, so the order of the two kinds of request does not matter.
    `server.responder = Script(ToolCall(...), Text(...))`."""

    def __init__(self, *responses: Response, title: str = "Scripted title") -> None:
        self.responses = list(responses)
        self.title = title
        self.agent_requests: list[dict[str, Any]] = []

    def add(self, *responses: Response) -> None:
        self.responses.extend(responses)

    def __call__(self, body: dict[str, Any]) -> Response:
        if body["messages"][0]["content"].startswith("Write a short title"):
            return Text(self.title)
        self.agent_requests.append(body)
        return self.responses.pop(0) if self.responses else Text("(script exhausted)")


# --------------------------------------------------------------------------- HTTP plumbing


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class _Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        return self.headers.get("connection", "").lower() != "close"


_MAX_HEADER_BYTES = 64 * 1024


async def _read_request(reader: asyncio.StreamReader) -> _Request | None:
    """Read one HTTP/1.1 request; ``None`` on a clean EOF between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise _BadRequest(400, "incomplete request head") from exc
    except asyncio.LimitOverrunError as exc:
        raise _BadRequest(431, "request head too large") from exc
    if len(head) > _MAX_HEADER_BYTES:
        raise _BadRequest(431, "request head too large")
    lines = head[:-4].decode("latin-1").split("\r\n")
    try:
        method, target, _version = lines[0].split(" ", 2)
    except ValueError as exc:
        raise _BadRequest(400, f"bad request line {lines[0]!r}") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            raise _BadRequest(400, f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        try:
            length = int(headers.get("content-length", "0") or 0)
        except ValueError as exc:
            raise _BadRequest(400, "bad Content-Length") from exc
        body = await reader.readexactly(length) if length else b""
    path = target.split("?", 1)[0]
    return _Request(method.upper(), path, headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            # Trailers, terminated by an empty line.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunked-transfer chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _sse(obj: Any) -> bytes:
    payload = obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


# --------------------------------------------------------------------------- OpenAI payloads

_WORDS = re.compile(r"\s*\S+\s*|\s+")


def _split_text(text: str, max_pieces: int = 64) -> list[str]:
    """Split ``text`` into word-ish pieces (at most ``max_pieces``) that concatenate back."""
    if not text:
        return []
    words = _WORDS.findall(text)
    if len(words) <= max_pieces:
        return words
    size = -(-len(text) // max_pieces)
    return [text[i : i + size] for i in range(0, len(text), size)]


def _split_even(text: str, pieces: int = 3) -> list[str]:
    """Split ``text`` into up to ``pieces`` non-empty slices (for tool-call arguments)."""
    if not text:
        return []
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _huge_content(size_bytes: int) -> str:
    unit = "lorem ipsum dolor sit amet "
    return (unit * (size_bytes // len(unit) + 1))[:size_bytes]


def _usage(usage: tuple[int, int]) -> dict[str, int]:
    prompt, completion = usage
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


@dataclass
class _Message:
    """A normalised assistant message: text and/or tool calls."""

    content: str
    tool_calls: list[dict[str, Any]]
    usage: tuple[int, int]

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"


def _tool_call_dict(call: ToolCall) -> dict[str, Any]:
    arguments = call.arguments if isinstance(call.arguments, str) else json.dumps(call.arguments)
    return {
        "id": call.call_id or f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def _message_for(response: Text | ToolCall | ToolCalls | Huge) -> _Message:
    if isinstance(response, Text):
        return _Message(response.content, [], response.usage)
    if isinstance(response, Huge):
        return _Message(_huge_content(response.size_bytes), [], (10, max(1, response.size_bytes // 4)))
    if isinstance(response, ToolCall):
        return _Message(response.content, [_tool_call_dict(response)], response.usage)
    return _Message(response.content, [_tool_call_dict(c) for c in response.calls], response.usage)


# --------------------------------------------------------------------------- server


class FakeLLMServer:
    """A fake OpenAI chat-completions endpoint on 127.0.0.1 (free port).

    Which answer a ``POST /v1/chat/completions`` gets, in order of precedence:

    1. the next entry of the FIFO queue filled by :meth:`script`;
    2. ``responder(body)`` if a responder is set (it may return ``None`` to fall
       through, or an awaitable);
    3. :attr:`default` (``Text("ok")`` unless changed).

    Every parsed request body is appended to :attr:`requests` (before the
    answer is produced, so a request that gets Hang/Drop is recorded too).
    """

    def __init__(self, *, default: Response | None = None, responder: Responder | None = None) -> None:
        self.default: Response = default if default is not None else Text("ok")
        self.responder: Responder | None = responder
        self.requests: list[dict[str, Any]] = []
        #: Exceptions raised by ``responder`` (each was answered with a 500).
        self.errors: list[BaseException] = []
        #: Number of TCP connections accepted (useful to observe keep-alive).
        self.connection_count = 0
        self.host = "127.0.0.1"
        self.port: int | None = None
        self._queue: deque[Response] = deque()
        self._lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._ids = itertools.count(1)

    # ----------------------------------------------------------------- public API

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (pass as litellm's ``api_base``)."""
        if self.port is None:
            raise RuntimeError("FakeLLMServer is not started")
        return f"http://{self.host}:{self.port}/v1"

    @property
    def request_count(self) -> int:
        """Number of chat-completion requests received so far."""
        with self._lock:
            return len(self.requests)

    @property
    def pending(self) -> int:
        """Number of scripted responses not consumed yet."""
        with self._lock:
            return len(self._queue)

    def script(self, *responses: Response) -> FakeLLMServer:
        """Append responses to the FIFO queue (thread-safe); returns ``self``."""
        with self._lock:
            self._queue.extend(responses)
        return self

    async def start(self) -> FakeLLMServer:
        """Bind 127.0.0.1 on a free port and start serving."""
        self._server = await asyncio.start_server(self._handle_connection, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        """Stop listening and end every open connection (including hung ones)."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.close()
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> FakeLLMServer:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @classmethod
    @contextlib.contextmanager
    def in_thread(cls, **kwargs: Any) -> Iterator[FakeLLMServer]:
        """Run a server on its own event loop in a daemon thread.

        Same API as the async form; for synchronous tests (``litellm.completion``)
        and for tests that point a subprocess at ``server.base_url``.
        """
        server = cls(**kwargs)
        loop = asyncio.new_event_loop()
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(server.start())
            except BaseException as exc:  # pragma: no cover - bind failure
                failure.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name=f"FakeLLMServer-{id(server):x}", daemon=True)
        thread.start()
        started.wait()
        if failure:
            loop.close()
            raise failure[0]
        try:
            yield server
        finally:
            asyncio.run_coroutine_threadsafe(server.aclose(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=10)
            loop.close()

    # ----------------------------------------------------------------- connection handling

    async def _handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        self.connection_count += 1
        try:
            while True:
                try:
                    request = await _read_request(reader)
                except _BadRequest as exc:
                    await self._send_json(writer, exc.status, self._error_body(exc.status, exc.message), close=True)
                    return
                if request is None:
                    return
                keep_open = await self._dispatch(request, reader, writer)
                if not (keep_open and request.keep_alive):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-request or mid-answer
        except asyncio.CancelledError:
            # Server shutdown (aclose cancels connection tasks).  Swallowed on purpose:
            # asyncio 3.11's start_server callback calls task.exception() on the
            # finished task, which logs a spurious traceback for a cancelled task.
            pass
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(writer.wait_closed(), 1)

    async def _dispatch(self, request: _Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Answer one request; return False if the connection must be closed."""
        path = request.path.rstrip("/")
        if path in ("/v1/models", "/models"):
            if request.method != "GET":
                return await self._send_json(writer, 405, self._error_body(405, "Method not allowed"))
            created = int(time.time())
            models = [{"id": m, "object": "model", "created": created, "owned_by": "fake-llm"} for m in MODELS]
            return await self._send_json(writer, 200, {"object": "list", "data": models})
        if path not in ("/v1/chat/completions", "/chat/completions"):
            return await self._send_json(writer, 404, self._error_body(404, f"Unknown path {request.path}"))
        if request.method != "POST":
            return await self._send_json(writer, 405, self._error_body(405, "Method not allowed"))
        try:
            body = json.loads(request.body or b"null")
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as exc:
            return await self._send_json(writer, 400, self._error_body(400, f"Invalid JSON body: {exc}"))
        with self._lock:
            self.requests.append(body)
            scripted = self._queue.popleft() if self._queue else None
        response = scripted if scripted is not None else await self._dynamic_response(body)
        return await self._answer(response, body, reader, writer)

    async def _dynamic_response(self, body: dict[str, Any]) -> Response:
        responder = self.responder
        if responder is not None:
            try:
                result = responder(body)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:  # a broken responder is reported as a 500
                self.errors.append(exc)
                return Error(500, f"responder raised: {''.join(traceback.format_exception_only(exc)).strip()}")
            if result is not None:
                return result
        return self.default

    async def _answer(
        self, response: Response, body: dict[str, Any], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        stream = bool(body.get("stream"))
        model = str(body.get("model") or MODELS[0])
        while isinstance(response, Slow):
            if not await self._sleep_unless_disconnected(response.seconds, reader, writer):
                return False  # the client gave up (e.g. its timeout fired): nobody to answer
            response = response.then
        if isinstance(response, Hang):
            while await reader.read(65536):  # discard anything until EOF
                pass
            return False
        if isinstance(response, Drop):
            return False
        if isinstance(response, Error):
            return await self._send_error(writer, response)
        if isinstance(response, DropMidStream):
            await self._send_partial(writer, response, model, stream)
            return False
        if isinstance(response, (Text, ToolCall, ToolCalls, Huge)):
            message = _message_for(response)
            if stream:
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return await self._send_stream(writer, message, model, include_usage)
            return await self._send_json(writer, 200, self._completion(message, model))
        raise TypeError(f"not a fake LLM response: {response!r}")

    @staticmethod
    async def _sleep_unless_disconnected(seconds: float, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Sleep ``seconds``; return False early if the client closes the connection.

        Polls ``reader.at_eof()`` (set by the protocol when the peer closes) rather
        than reading, so bytes of a pipelined next request are never consumed.
        Cancellation (server shutdown) simply propagates.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (remaining := deadline - loop.time()) > 0:
            if reader.at_eof() or writer.is_closing():
                return False
            await asyncio.sleep(min(remaining, 0.05))
        return not (reader.at_eof() or writer.is_closing())

    # ----------------------------------------------------------------- writers

    async def _send_json(
        self, writer: asyncio.StreamWriter, status: int, obj: Any, *, headers: dict[str, str] | None = None, close: bool = False
    ) -> bool:
        data = json.dumps(obj).encode()
        all_headers = {
            "content-type": "application/json",
            "content-length": str(len(data)),
            "connection": "close" if close else "keep-alive",
            **(headers or {}),
        }
        writer.write(_head(status, all_headers) + data)
        await writer.drain()
        return not close

    async def _send_error(self, writer: asyncio.StreamWriter, error: Error) -> bool:
        headers = {"retry-after": "0"} if error.status == 429 else {}
        headers.update({k.lower(): v for k, v in error.headers.items()})
        body = self._error_body(error.status, error.message, error.error_type, error.code)
        return await self._send_json(writer, error.status, body, headers=headers)

    @staticmethod
    def _error_body(status: int, message: str | None = None, error_type: str | None = None, code: str | None = None) -> dict[str, Any]:
        d_message, d_type, d_code = _ERROR_DEFAULTS.get(status, (f"Error {status}", "invalid_request_error", None))
        return {
            "error": {
                "message": message if message is not None else d_message,
                "type": error_type if error_type is not None else d_type,
                "param": None,
                "code": code if code is not None else (d_code if error_type is None else None),
            }
        }

    def _completion(self, message: _Message, model: str) -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": message.content or None, "refusal": None}
        if message.tool_calls:
            msg["tool_calls"] = message.tool_calls
        elif msg["content"] is None:
            msg["content"] = ""
        return {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": message.finish_reason}],
            "usage": _usage(message.usage),
        }

    def _chunk_factory(self, model: str, include_usage: bool) -> Callable[..., dict[str, Any]]:
        cid = f"chatcmpl-fake{next(self._ids)}"
        created = int(time.time())

        def make(delta: dict[str, Any] | None = None, finish_reason: str | None = None, *, usage: dict[str, int] | None = None) -> dict[str, Any]:
            chunk: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": "fp_fake",
                "choices": [] if usage is not None else [{"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                chunk["usage"] = usage
            return chunk

        return make

    @staticmethod
    def _stream_head() -> bytes:
        return _head(
            200,
            {
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
                "transfer-encoding": "chunked",
                "connection": "keep-alive",
            },
        )

    async def _send_stream(self, writer: asyncio.StreamWriter, message: _Message, model: str, include_usage: bool) -> bool:
        make = self._chunk_factory(model, include_usage)
        events: list[dict[str, Any]] = []
        # Like OpenAI: a role chunk first (content null when the message is only tool calls).
        first_content = None if message.tool_calls and not message.content else ""
        events.append(make({"role": "assistant", "content": first_content, "refusal": None}))
        for piece in _split_text(message.content):
            events.append(make({"content": piece}))
        for index, call in enumerate(message.tool_calls):
            head = {"index": index, "id": call["id"], "type": "function", "function": {"name": call["function"]["name"], "arguments": ""}}
            events.append(make({"tool_calls": [head]}))
            for part in _split_even(call["function"]["arguments"]):
                events.append(make({"tool_calls": [{"index": index, "function": {"arguments": part}}]}))
        events.append(make({}, message.finish_reason))
        if include_usage:
            events.append(make(usage=_usage(message.usage)))
        writer.write(self._stream_head())
        for event in events:
            writer.write(_chunk(_sse(event)))
            await writer.drain()
        writer.write(_chunk(_sse("[DONE]")) + b"0\r\n\r\n")
        await writer.drain()
        return True

    async def _send_partial(self, writer: asyncio.StreamWriter, drop: DropMidStream, model: str, stream: bool) -> None:
        if stream:
            make = self._chunk_factory(model, include_usage=False)
            writer.write(self._stream_head() + _chunk(_sse(make({"role": "assistant", "content": "", "refusal": None}))))
            for piece in _split_text(drop.content)[: max(0, drop.after_chunks)]:
                writer.write(_chunk(_sse(make({"content": piece}))))
                await writer.drain()
        else:
            data = json.dumps(self._completion(_Message(drop.content, [], (10, 5)), model)).encode()
            headers = {"content-type": "application/json", "content-length": str(len(data)), "connection": "keep-alive"}
            writer.write(_head(200, headers) + data[: len(data) // 2])
        await writer.drain()


def assert_calls_answered(requests: list[dict[str, Any]]) -> None:
    """Every tool call the model made got exactly one answer, in order, in
    each chat request the server received."""
    for request in requests:
        calls = [c["id"] for m in request["messages"] if m["role"] == "assistant" for c in m.get("tool_calls") or []]
        answers = [m["tool_call_id"] for m in request["messages"] if m["role"] == "tool"]
        assert calls == answers
