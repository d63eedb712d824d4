"""Four processes doing random operations on one data directory end in the
state a serial run of the same operations gives.

Each worker (tests/workers/random_operations.py) mutates only conversations
it created, chosen by a seeded random generator, and appends events to and
renames a few shared conversations. The test then replays every worker's
recorded operations serially, in a fresh data directory, through the same
service API (`run_operation`) and compares: per worker, the conversations
by creation order (titles, archived flags, loop states, events) and every
operation's outcome (refusals included); for the shared conversations, the
commutative results (every appended event once, the title of the last
rename by stored timestamp)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from convtui.backend.doctor import run_doctor
from convtui.backend.manager import ConversationManager
from convtui.backend.models import AgentState, ConversationStatus
from convtui.backend.service import ConversationService

from .conftest import FIXTURES
from .worker_processes import start_together
from .workers.random_operations import USER, Targets, run_operation

WORKER = Path(__file__).parent / "workers" / "random_operations.py"
REPLAY = FIXTURES / "openhands-trajectories" / "basic_interactions.json"
PROCESSES = 4
OPERATIONS = int(os.environ.get("CONVTUI_RACE_OPERATIONS", "500"))  # per process; bench/soak.py runs more
MAX_REPLAYS = int(os.environ.get("CONVTUI_RACE_REPLAYS", "4"))  # per process: a replay costs ~10 writes and a few loop steps
SHARED = 3
GIVE_UP_SECONDS = 120 * max(1, OPERATIONS // 500)
# Fixed, so that a failure repeats; set CONVTUI_RACE_SEED to explore others.
SEED = int(os.environ.get("CONVTUI_RACE_SEED", "7919"))


def _finish(processes: list[subprocess.Popen], out_files: list[Path]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + GIVE_UP_SECONDS
    results = []
    try:
        for process, out_file in zip(processes, out_files):
            _, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert process.returncode == 0, err
            results.append(json.loads(out_file.read_text()))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return results


LOOP_FIELDS = ("status", "runtime_status", "agent_state", "status_message", "replay_done", "events")


def _check_stopped_at_once(snapshot: dict[str, Any], replay_json: str) -> None:
    """A replay stopped right after its start: cut anywhere, but stopped. Its
    events are the first replayed steps, then the record of the stop (none if
    the loop was stopped before it ran at all)."""
    assert snapshot["status"] == ConversationStatus.STOPPED.value
    events = snapshot["events"]
    if snapshot["agent_state"] is None:  # cancelled before its first step
        assert events == [] and not snapshot["replay_done"]
        return
    assert snapshot["agent_state"] == AgentState.STOPPED.value and snapshot["status_message"] == "stopped"
    *replayed, last = events
    assert (last.get("observation"), last.get("content")) == ("agent_state_changed", "stopped")
    steps = [(event["source"], event["action"], event["message"]) for event in json.loads(replay_json)]
    assert [(event["source"], event["action"], event["message"]) for event in replayed] == steps[: len(replayed)]
    assert [event["id"] for event in events] == list(range(len(events)))
    if snapshot["replay_done"]:
        assert len(replayed) == len(steps)


def _normal_event(event: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key != "timestamp"}


async def _snapshot(service: ConversationService, conversation_id: str) -> dict[str, Any] | None:
    document = service.store.get(conversation_id)
    if document is None:
        return None
    events = await service.search_events(conversation_id)
    return {
        "title": document["title"],
        "archived": document["archived"],
        "status": document["status"],
        "runtime_status": document["runtime_status"],
        "agent_state": document["agent_state"],
        "status_message": document["status_message"],
        "trigger": document["trigger"],
        "user_id": document["user_id"],
        "replay_done": (service.data_dir.conversation(conversation_id) / "replay.done").exists(),
        "events": [_normal_event(event) for event in events],
    }


async def _serial(root: Path, shared_titles: list[str], results: list[dict[str, Any]], replay_json: str):
    """Replays each worker's operations, one worker after the other. Returns
    (the shared ids, per worker: its created ids, per worker: the outcomes,
    the service)."""
    service = await ConversationService.open(root, user_id=USER)
    shared = [(await service.new_conversation({})).conversation_id for _ in shared_titles]
    for conversation_id, title in zip(shared, shared_titles):
        await service.rename(conversation_id, title)
    manager = ConversationManager(service, retry_delay=0.01)
    created, outcomes = [], []
    try:
        for result in results:
            targets = Targets(shared)
            outcomes.append(
                [
                    (await run_operation(service, manager, targets, operation, replay_json))
                    for operation in result["operations"]
                ]
            )
            created.append(targets.created)
    finally:
        await manager.shutdown()
    return shared, created, outcomes, service


async def test_four_processes_of_random_operations_end_as_a_serial_run_does(tmp_path: Path) -> None:
    root, go_file = tmp_path / "data", tmp_path / "go"
    replay_json = REPLAY.read_text()
    shared_titles = [f"shared {n}" for n in range(SHARED)]
    service = await ConversationService.open(root, user_id=USER)
    shared = [(await service.new_conversation({})).conversation_id for _ in range(SHARED)]
    for conversation_id, title in zip(shared, shared_titles):
        await service.rename(conversation_id, title)

    out_files = [tmp_path / f"out-{index}.json" for index in range(PROCESSES)]
    configs = [
        {
            "data_dir": str(root), "go_file": str(go_file), "out_file": str(out_file), "index": index,
            "seed": SEED * (index + 1), "operations": OPERATIONS, "shared": shared,
            "replay_json": replay_json, "max_replays": MAX_REPLAYS,
        }
        for index, out_file in enumerate(out_files)
    ]
    started = time.monotonic()
    processes = start_together([[str(WORKER), json.dumps(config)] for config in configs], go_file)
    results = await asyncio.to_thread(_finish, processes, out_files)
    concurrent_seconds = time.monotonic() - started
    for index, result in enumerate(results):
        assert result["unexpected"] is None, f"worker {index}:\n{result['unexpected']}"
        assert len(result["operations"]) == OPERATIONS
    done = Counter(
        (operation["op"], operation["result"]["outcome"]) for result in results for operation in result["operations"]
    )
    print(sorted(done.items()))

    serial_root = tmp_path / "serial"
    serial_shared, serial_created, serial_outcomes, serial = await _serial(serial_root, shared_titles, results, replay_json)
    try:
        # Every operation had the same outcome (refusals included) as serially.
        for index, result in enumerate(results):
            for step, (operation, expected) in enumerate(zip(result["operations"], serial_outcomes[index])):
                got = operation["result"]
                assert (got["outcome"], got["value"]) == (expected["outcome"], expected["value"]), (
                    f"worker {index} step {step}: {operation}"
                )

        # Each worker's conversations, by creation order, end as serially.
        service.store.refresh()
        frozen = [
            {
                operation["target"]
                for operation in result["operations"]
                if operation["op"] == "start_stop_now" and operation["result"]["outcome"] == "ok"
            }
            for result in results
        ]
        expected_ids = set(shared)
        for index, result in enumerate(results):
            assert len(result["created"]) == len(serial_created[index])
            for number, (conversation_id, serial_id) in enumerate(zip(result["created"], serial_created[index])):
                got = await _snapshot(service, conversation_id)
                want = await _snapshot(serial, serial_id)
                if number in frozen[index] and got is not None and want is not None:
                    _check_stopped_at_once(got, replay_json)
                    _check_stopped_at_once(want, replay_json)
                    got = {key: value for key, value in got.items() if key not in LOOP_FIELDS}
                    want = {key: value for key, value in want.items() if key not in LOOP_FIELDS}
                assert got == want, f"worker {index} conversation {number} ({conversation_id})"
                if got is not None:
                    expected_ids.add(conversation_id)
                    assert got["title"].startswith(f"p{index}-c{number}")

        # Replays that ran finished or were stopped.
        for index, result in enumerate(results):
            for operation in result["operations"]:
                if operation["op"] in ("run_replay", "start_stop_replay") and operation["result"]["outcome"] == "ok":
                    document = service.store.get(result["created"][operation["target"]])
                    if document is None:
                        continue  # deleted later
                    if operation["op"] == "run_replay":
                        assert document["agent_state"] == AgentState.FINISHED.value
                    else:
                        assert document["agent_state"] == AgentState.STOPPED.value
                    assert document["status"] == ConversationStatus.STOPPED.value

        # Shared conversations: every append once, ids 0..n-1, increasing per
        # worker; the title is the one of the rename stored last.
        for number, conversation_id in enumerate(shared):
            sent = [
                (operation["text"], operation["result"]["event_id"])
                for result in results
                for operation in result["operations"]
                if operation["op"] == "shared_send" and operation["target"] == number
            ]
            events = await service.search_events(conversation_id)
            assert sorted((event["message"], event["id"]) for event in events) == sorted(sent)
            assert [event["id"] for event in events] == list(range(len(sent)))
            for result in results:
                ids = [
                    operation["result"]["event_id"]
                    for operation in result["operations"]
                    if operation["op"] == "shared_send" and operation["target"] == number
                ]
                assert ids == sorted(ids)
            renames = [
                (operation["result"]["stamp"], operation["title"])
                for result in results
                for operation in result["operations"]
                if operation["op"] == "shared_rename" and operation["target"] == number
            ]
            document = service.store.get(conversation_id)
            assert len({stamp for stamp, _ in renames}) == len(renames)  # one rename at a time
            if renames:
                stamp, title = max(renames)
                assert (document["title"], document["last_updated_at"]) == (title, stamp)
            else:
                assert document["title"] == shared_titles[number]
            serial_events = await serial.search_events(serial_shared[number])
            assert Counter(event["message"] for event in serial_events) == Counter(text for text, _ in sent)

        # Nothing else exists: in the store, in a fresh process's view, on disk.
        assert set(service.store.all_ids()) == expected_ids
        fresh = await ConversationService.open(root, user_id=USER)
        try:
            listed, page_id = [], None
            while True:
                page = await fresh.search(page_id, limit=100, archived=None, max_age=timedelta.max)
                listed += page.results
                page_id = page.next_page_id
                if page_id is None:
                    break
            assert sorted(info.conversation_id for info in listed) == sorted(expected_ids)
            for info in listed:
                assert info.title == service.store.get(info.conversation_id)["title"]
        finally:
            fresh.close()
        assert {path.name for path in (root / "conversations").iterdir()} == expected_ids

        report = run_doctor(root)
        assert report.findings == []
        assert report.conversations == len(expected_ids)
    finally:
        serial.close()
        service.close()
    # The budget: well under a minute on two cores.
    print(f"concurrent run {concurrent_seconds:.1f} s")
    assert concurrent_seconds < GIVE_UP_SECONDS



def test_a_probe_of_the_loop_lock_never_makes_a_start_fail(tmp_path: Path) -> None:
    """runner_pid holds a shared lock for an instant; a start at that instant
    used to report the loop "running elsewhere" (seen in the crash harness)."""
    import threading

    from convtui.backend.loop_lock import LoopLock, runner_pid

    directory = tmp_path / "conversation"
    directory.mkdir()
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            runner_pid(directory)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        for _ in range(200):
            lock = LoopLock(directory)
            assert lock.acquire() is None
            lock.release()
    finally:
        stop.set()
        prober.join()
