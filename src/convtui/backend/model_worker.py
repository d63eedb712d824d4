"""The model worker process: makes litellm calls for the convtui process
that started it (see llm._ModelWorker), so litellm's import and its per-call
Python work never compete with the UI's event loop.

Protocol, JSON lines. In: {"id", "config", "messages", "tools", "max_tokens",
"stream_text"} starts a call, {"cancel": id} abandons one. Out: {"ready":
true} once litellm is imported (calls sent before wait until then); {"id",
"text"} for each streamed piece, then {"id", "done": LLMResponse fields,
"cpu"} or {"id", "error": {"message", "runtime_status", "agent_state",
"retryable"}, "cpu"}, "cpu" being this process's CPU time so far (the
parent starts another worker when this one is busy). With `--idle
SECONDS`, {"idle": true} once it has had no call that long (the parent
may then end it). The worker exits when its stdin closes (its parent
ended it, or is gone)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import sys
import threading
import time
from typing import Any

import orjson

from .collector import made_to_last
from .llm import LLMConfig, LLMFailure, complete_here, load_litellm
from .redaction import Redactor, provider_keys_in_environment

# Every key this worker has been given: whatever it writes (error messages,
# litellm's log lines on stderr) is redacted with all of them.
_keys: set[str] = set(provider_keys_in_environment())
NICENESS = 10
_redact = Redactor(_keys)


def _learn_key(key: str | None) -> None:
    global _redact
    if key and key not in _keys:
        _keys.add(key)
        _redact = Redactor(_keys)


class _RedactedStream:
    """sys.stderr for this process: log lines pass through the redactor
    before they reach wherever the parent sent the worker's stderr."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(_redact(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _write(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(message) + b"\n")
    sys.stdout.buffer.flush()


async def _call(request: dict[str, Any]) -> None:
    call_id = request["id"]
    key = request["config"].get("api_key")
    _learn_key(key)
    # The reply is redacted too, with this call's keys: a provider or a model
    # may echo one. The streamed pieces go through a stream redactor, so a
    # key cut in two is caught.
    redact = Redactor([key, *provider_keys_in_environment()])
    stream = redact.stream()

    def send_text(text: str) -> None:
        if text := stream.feed(text):
            _write({"id": call_id, "text": text})

    on_text = send_text if request.get("stream_text") else None
    try:
        response = await complete_here(
            LLMConfig(**request["config"]), request["messages"], request.get("tools"), on_text, request.get("max_tokens")
        )
        if on_text is not None and (rest := stream.flush()):
            _write({"id": call_id, "text": rest})
        done = redact.json(dataclasses.asdict(response))
        _finish(call_id, done=done)
    except LLMFailure as failure:
        _finish(
            call_id,
            error={
                "message": redact(str(failure)),
                "runtime_status": failure.runtime_status.value,
                "agent_state": failure.agent_state.value,
                "retryable": failure.retryable,
            },
        )
    except asyncio.CancelledError:
        pass
    except Exception as error:  # a bug here must not end the worker
        _finish(
            call_id,
            error={
                "message": redact(f"model call failed: {type(error).__name__}: {error}")[:300],
                "runtime_status": "STATUS$ERROR",
                "agent_state": "error",
                "retryable": False,
            },
        )


def _finish(call_id: int, **reply: Any) -> None:
    """A call's last reply, with this process's CPU time so far."""
    _write({"id": call_id, **reply, "cpu": time.process_time()})


class _Quiet:
    """Since when this worker has had no call in flight."""

    def __init__(self) -> None:
        self.since = time.monotonic()

    def restart(self) -> None:
        self.since = time.monotonic()

    async def say_when_idle(self, calls: dict[int, asyncio.Task[None]], seconds: float) -> None:
        """Write {"idle": true} each time `seconds` pass without a call."""
        while True:
            await asyncio.sleep(seconds / 4)
            if not calls and time.monotonic() - self.since >= seconds:
                _write({"idle": True})
                self.restart()


async def main(idle: float | None = None) -> None:
    loop = asyncio.get_running_loop()
    incoming: asyncio.Queue[bytes | None] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin.buffer:
            loop.call_soon_threadsafe(incoming.put_nowait, line)
        loop.call_soon_threadsafe(incoming.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()
    # litellm's import leaves ~380,000 long-lived objects that every full
    # collection walks again (~220 ms each, a stall of every call in flight):
    # under 200 loops that was 1.9 s of this process's CPU in 8 gen-2
    # collections; frozen, 0.4 s.
    with made_to_last():
        await load_litellm()
    _write({"ready": True})  # the parent stops saying "starting the model worker…"
    calls: dict[int, asyncio.Task[None]] = {}
    quiet = _Quiet()

    def ended(call_id: int) -> None:
        calls.pop(call_id, None)
        quiet.restart()

    watch = asyncio.create_task(quiet.say_when_idle(calls, idle)) if idle is not None else None
    while (line := await incoming.get()) is not None:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if "cancel" in message:
            task = calls.pop(message["cancel"], None)
            if task is not None:
                task.cancel()
            continue
        quiet.restart()
        task = asyncio.create_task(_call(message))
        calls[message["id"]] = task
        task.add_done_callback(lambda _, call_id=message["id"]: ended(call_id))
    for task in [*calls.values(), watch]:
        if task is not None:
            task.cancel()


if __name__ == "__main__":
    sys.stderr = _RedactedStream(sys.stderr)  # before litellm sets up its log handlers
    with contextlib.suppress(OSError):
        # Throughput work: where cores are short, the UI's keys and the
        # loops' event loop should go first.
        os.nice(NICENESS)
    parser = argparse.ArgumentParser(description="convtui's model worker (started by convtui)")
    parser.add_argument("--idle", type=float, default=None, help="say {'idle': true} after SECONDS without a call")
    try:
        asyncio.run(main(parser.parse_args().idle))
    except KeyboardInterrupt:
        pass
