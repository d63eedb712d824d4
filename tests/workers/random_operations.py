"""Random-operations worker for the process race test.

    python random_operations.py CONFIG_JSON

CONFIG_JSON: {"data_dir", "go_file", "out_file", "index", "seed", "operations",
"shared": [ids], "replay_json": text, "max_replays": n}.

Prints "ready" once the service is open, waits until GO_FILE exists, then
performs OPERATIONS operations chosen by a random generator seeded with SEED:
on conversations of its own (create, rename, archive, unarchive, delete,
send_message, append_events, replay runs, and a few requests that must be
refused) and on the shared conversations (append events, rename). It writes
to OUT_FILE: {"operations": [...], "created": [ids by creation order],
"unexpected": traceback or null}. Every operation records its outcome
("ok" or the ConvtuiError class name) and what it returned, so that the test
can replay the same list serially (`run_operation` below) and compare.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from convtui.backend.errors import ConvtuiError
from convtui.backend.manager import ConversationManager
from convtui.backend.models import AgentState, format_timestamp
from convtui.backend.service import ConversationService

USER = "racer"
LOOP_WAIT_SECONDS = 60


class Targets:
    """Own conversations by creation index (the label in their titles)."""

    def __init__(self, shared: list[str]) -> None:
        self.shared = shared
        self.created: list[str] = []

    def own(self, number: int) -> str:
        return self.created[number]


def _label(index: int, number: int) -> str:
    return f"p{index}-c{number}"


async def _wait_for(manager: ConversationManager, conversation_id: str, state: AgentState) -> None:
    deadline = time.monotonic() + LOOP_WAIT_SECONDS
    while True:
        live = manager.live_state(conversation_id)
        if live is None:
            raise RuntimeError(f"loop {conversation_id[:8]} ended before reaching {state}")
        if live.agent_state is state:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"loop {conversation_id[:8]} never reached {state} (is {live.agent_state})")
        await asyncio.sleep(0.01)


async def run_operation(
    service: ConversationService, manager: ConversationManager, targets: Targets, operation: dict[str, Any],
    replay_json: str,
) -> dict[str, Any]:
    """Perform one operation; returns {"outcome": "ok" | error class name,
    "value": what it returned (comparable between runs)}. Exceptions that are
    not ConvtuiError propagate."""
    kind = operation["op"]
    value: Any = None
    try:
        if kind in ("create", "create_replay"):
            request = {"replay_json": replay_json} if kind == "create_replay" else {}
            conversation_id = (await service.new_conversation(request)).conversation_id
            targets.created.append(conversation_id)
            # The label in the title survives renames and tells conversations apart.
            await service.rename(conversation_id, operation["title"])
            value = len(targets.created) - 1
        elif kind == "rename":
            info = await service.rename(targets.own(operation["target"]), operation["title"])
            value = info.title
        elif kind == "archive":
            value = (await service.archive(targets.own(operation["target"]))).archived
        elif kind == "unarchive":
            value = (await service.unarchive(targets.own(operation["target"]))).archived
        elif kind == "delete":
            value = await service.delete(targets.own(operation["target"]))
        elif kind == "send_message":
            stored = await manager.send_message(targets.own(operation["target"]), operation["text"])
            value = stored["id"]
        elif kind == "append_events":
            stored = await service.append_events(
                targets.own(operation["target"]),
                [{"source": "agent", "action": "message", "message": text, "args": {"content": text}}
                 for text in operation["texts"]],
            )
            value = [event["id"] for event in stored]
        elif kind == "get":
            info = await service.get(targets.own(operation["target"]))
            value = [info.title, info.archived]
        elif kind == "run_replay":  # start, wait until the loop ends by itself
            conversation_id = targets.own(operation["target"])
            await manager.start(conversation_id, until_idle=True)
            await asyncio.wait_for(manager.wait(conversation_id), LOOP_WAIT_SECONDS)
        elif kind == "start_stop_replay":  # start, let the replay finish, stop the idle loop
            conversation_id = targets.own(operation["target"])
            await manager.start(conversation_id)
            await _wait_for(manager, conversation_id, AgentState.FINISHED)
            value = (await manager.stop(conversation_id)).was_running
        elif kind == "start_stop_now":  # stop at once, wherever the loop is
            conversation_id = targets.own(operation["target"])
            await manager.start(conversation_id)
            await manager.stop(conversation_id)
            value = manager.is_running(conversation_id)
        elif kind == "start_delete":  # delete while the loop runs
            conversation_id = targets.own(operation["target"])
            await manager.start(conversation_id)
            value = await service.delete(conversation_id)
        elif kind == "shared_send":
            # Shared: only the returned id is kept (it depends on the others).
            stored = await manager.send_message(targets.shared[operation["target"]], operation["text"])
            return {"outcome": "ok", "value": None, "event_id": stored["id"]}
        elif kind == "shared_rename":
            info = await service.rename(targets.shared[operation["target"]], operation["title"])
            return {"outcome": "ok", "value": None, "stamp": format_timestamp(info.last_updated_at)}
        elif kind == "search":
            page = await service.search(limit=20, archived=None)
            value = None  # depends on the others; it must only not fail
            assert len(page.results) <= 20
        else:
            raise ValueError(f"unknown operation {operation!r}")
    except ConvtuiError as error:
        return {"outcome": type(error).__name__, "value": None, "message": str(error)}
    return {"outcome": "ok", "value": value}


def choose(rng: random.Random, index: int, state: dict[str, Any], step: int, shared_count: int,
           max_replays: int) -> dict[str, Any]:
    """The next operation, from the worker's own view of its conversations.
    state: {"alive": [numbers], "dead": [numbers], "replays": {number: "new" | "done" | "frozen"},
    "count": n, "replays_made": n}."""
    alive, dead, replays = state["alive"], state["dead"], state["replays"]
    roll = rng.random()
    if not alive or roll < 0.10:
        if state["replays_made"] < max_replays and rng.random() < 0.25:
            state["replays_made"] += 1
            return {"op": "create_replay", "title": _label(index, state["count"]) + " replay"}
        return {"op": "create", "title": _label(index, state["count"])}
    target = rng.choice(alive)
    fresh_replays = [number for number in alive if replays.get(number) == "new"]
    if fresh_replays and rng.random() < 0.15:
        kind = rng.choice(["run_replay", "start_stop_replay", "start_stop_now", "start_delete"])
        return {"op": kind, "target": rng.choice(fresh_replays)}
    if roll < 0.22:
        return {"op": "rename", "target": target, "title": f"{_label(index, target)} r{step}"}
    if roll < 0.30:
        return {"op": "archive", "target": target}
    if roll < 0.36:
        return {"op": "unarchive", "target": target}
    if roll < 0.42:
        return {"op": "delete", "target": target}
    # A replay not run yet gets no events: it replays only into an empty log
    # (else it stops at once, asking for a model, racing with our stop).
    # One stopped at once ("frozen") holds a replay cut anywhere: it is left
    # as it is, so that the test can check it alone.
    writable = [number for number in alive if replays.get(number) not in ("new", "frozen")]
    if roll < 0.54 and writable:
        return {"op": "send_message", "target": rng.choice(writable), "text": f"p{index} s{step}"}
    if roll < 0.62 and writable:
        return {"op": "append_events", "target": rng.choice(writable),
                "texts": [f"p{index} a{step}.{n}" for n in range(rng.randint(1, 3))]}
    if roll < 0.76:
        return {"op": "shared_send", "target": rng.randrange(shared_count), "text": f"p{index} shared {step}"}
    if roll < 0.82:
        return {"op": "shared_rename", "target": rng.randrange(shared_count), "title": f"shared by p{index} at {step}"}
    if roll < 0.86:
        return {"op": "search"}
    if roll < 0.88:
        return {"op": "get", "target": target}
    # Requests that must be refused, each the same way in any order.
    refusals = [
        {"op": "rename", "target": target, "title": "  "},  # InvalidInput
        {"op": "send_message", "target": target, "text": " \n"},  # InvalidInput (checked before the id)
        {"op": "rename", "target": target, "title": "bad\x07title"},  # InvalidInput
    ]
    if dead:
        gone = rng.choice(dead)
        refusals += [
            {"op": "rename", "target": gone, "title": "never"},  # NotFound
            {"op": "send_message", "target": gone, "text": "never"},  # NotFound
            {"op": "archive", "target": gone},  # NotFound
            {"op": "delete", "target": gone},  # False
            {"op": "get", "target": gone},  # NotFound
        ]
    done = [number for number in alive if replays.get(number) == "done"]
    if done:
        refusals.append({"op": "run_replay", "target": rng.choice(done)})  # MissingSettings: nothing left to replay
    return rng.choice(refusals)


def observe(state: dict[str, Any], operation: dict[str, Any], result: dict[str, Any]) -> None:
    """Keep the worker's view of its own conversations up to date."""
    if result["outcome"] != "ok":
        return
    kind = operation["op"]
    if kind in ("create", "create_replay"):
        number = result["value"]
        state["count"] += 1
        state["alive"].append(number)
        if kind == "create_replay":
            state["replays"][number] = "new"
    elif kind == "delete" and result["value"]:
        state["alive"].remove(operation["target"])
        state["dead"].append(operation["target"])
    elif kind in ("run_replay", "start_stop_replay"):
        state["replays"][operation["target"]] = "done"
    elif kind == "start_stop_now":
        state["replays"][operation["target"]] = "frozen"
    elif kind == "start_delete" and result["value"]:
        state["alive"].remove(operation["target"])
        state["dead"].append(operation["target"])


async def main() -> None:
    config = json.loads(sys.argv[1])
    index, go_file, out_file = config["index"], Path(config["go_file"]), Path(config["out_file"])
    service = await ConversationService.open(Path(config["data_dir"]), user_id=USER)
    manager = ConversationManager(service, retry_delay=0.01)
    targets = Targets(config["shared"])
    rng = random.Random(config["seed"])
    state: dict[str, Any] = {"alive": [], "dead": [], "replays": {}, "count": 0, "replays_made": 0}
    operations: list[dict[str, Any]] = []
    unexpected = None
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not go_file.exists():
        if time.monotonic() > deadline:
            raise SystemExit("never told to go")
        await asyncio.sleep(0.001)
    try:
        for step in range(config["operations"]):
            operation = choose(rng, index, state, step, len(targets.shared), config["max_replays"])
            operations.append(operation)
            result = await run_operation(service, manager, targets, operation, config["replay_json"])
            operation["result"] = result
            observe(state, operation, result)
    except Exception:  # noqa: BLE001 - reported to the test, which fails on it
        unexpected = traceback.format_exc()
    finally:
        await manager.shutdown()
        service.close()
    out_file.write_text(json.dumps({"operations": operations, "created": targets.created, "unexpected": unexpected}))


if __name__ == "__main__":
    asyncio.run(main())
