"""The model worker process: makes litellm calls for the convtui process
that started it (see llm._ModelWorker), so litellm's import and its per-call
Python work never compete with the UI's event loop.

Protocol, JSON lines. In: {"id", "config", "messages", "tools", "max_tokens",
"stream_text"} starts a call, {"cancel": id} abandons one. Out: {"ready":
true} once litellm is imported (calls sent before wait until then); {"id",
"text"} for each streamed piece, then {"id", "done": LLMResponse fields} or
{"id", "error": {"message", "runtime_status", "agent_state", "retryable"}}.
The worker exits when its stdin closes (its parent is gone)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
from typing import Any

import orjson

from .llm import LLMConfig, LLMFailure, complete_here, load_litellm


def _write(message: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(message) + b"\n")
    sys.stdout.buffer.flush()


async def _call(request: dict[str, Any]) -> None:
    call_id = request["id"]
    on_text = (lambda text: _write({"id": call_id, "text": text})) if request.get("stream_text") else None
    try:
        response = await complete_here(
            LLMConfig(**request["config"]), request["messages"], request.get("tools"), on_text, request.get("max_tokens")
        )
        done = dataclasses.asdict(response)
        _write({"id": call_id, "done": done})
    except LLMFailure as failure:
        _write(
            {
                "id": call_id,
                "error": {
                    "message": str(failure),
                    "runtime_status": failure.runtime_status.value,
                    "agent_state": failure.agent_state.value,
                    "retryable": failure.retryable,
                },
            }
        )
    except asyncio.CancelledError:
        pass
    except Exception as error:  # a bug here must not end the worker
        _write(
            {
                "id": call_id,
                "error": {
                    "message": f"model call failed: {type(error).__name__}: {error}"[:300],
                    "runtime_status": "STATUS$ERROR",
                    "agent_state": "error",
                    "retryable": False,
                },
            }
        )


async def main() -> None:
    loop = asyncio.get_running_loop()
    incoming: asyncio.Queue[bytes | None] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin.buffer:
            loop.call_soon_threadsafe(incoming.put_nowait, line)
        loop.call_soon_threadsafe(incoming.put_nowait, None)

    threading.Thread(target=read_stdin, daemon=True).start()
    await load_litellm()
    _write({"ready": True})  # the parent stops saying "starting the model worker…"
    calls: dict[int, asyncio.Task[None]] = {}
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
        task = asyncio.create_task(_call(message))
        calls[message["id"]] = task
        task.add_done_callback(lambda _, call_id=message["id"]: calls.pop(call_id, None))
    for task in calls.values():
        task.cancel()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
