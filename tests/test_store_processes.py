"""Several processes on one store and one event log: no lost update, no lost
or torn event, and a store object sees another process's writes after
refresh(). Workers are separate interpreters (tests/workers/), started
together through a "go" file."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson

from convtui.backend.events import EventLog
from convtui.backend.models import ConversationMetadata, utc_now
from convtui.backend.store import ConversationFilter, ConversationStore

from .worker_processes import start_together

WORKERS = Path(__file__).parent / "workers"


def _document(conversation_id: str, title: str, **fields) -> dict:
    now = utc_now()
    return ConversationMetadata(
        conversation_id=conversation_id, title=title, created_at=now, last_updated_at=now, **fields
    ).to_document()


def _while_running(processes: list[subprocess.Popen], timeout: float = 120) -> Iterator[None]:
    """Yields until every worker has exited (kills them all after `timeout`)."""
    deadline = time.monotonic() + timeout
    try:
        while any(process.poll() is None for process in processes):
            assert time.monotonic() < deadline, "workers did not finish in time"
            yield
            time.sleep(0.002)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def _results(processes: list[subprocess.Popen], out_files: list[Path]) -> list:
    results = []
    for process, out_file in zip(processes, out_files):
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        results.append(json.loads(out_file.read_text()))
    return results


# -- no lost update ------------------------------------------------------------------


def test_concurrent_increments_and_inserts_from_three_processes_lose_nothing(tmp_path: Path) -> None:
    store_dir, go_file = tmp_path / "store", tmp_path / "go"
    workers, rounds = 3, 40
    # Two shared conversations in one shard, one in another.
    shared = ["ab" + uuid.uuid4().hex[2:], "ab" + uuid.uuid4().hex[2:], "cd" + uuid.uuid4().hex[2:]]
    store = ConversationStore(store_dir)
    for conversation_id in shared:
        store.insert(_document(conversation_id, f"shared {conversation_id[:4]}", selected_repository="org/repo"))
    before = {conversation_id: store.get(conversation_id) for conversation_id in shared}

    out_files = [tmp_path / f"out-{i}.json" for i in range(workers)]
    processes = start_together(
        [
            [str(WORKERS / "store_counter.py"), str(store_dir), str(go_file), json.dumps(shared), str(rounds), str(i), str(out)]
            for i, out in enumerate(out_files)
        ],
        go_file,
    )
    # Meanwhile this process reads: a refresh never fails on a half-written
    # shard, and a counter it sees never goes back.
    seen = {conversation_id: 0 for conversation_id in shared}
    for _ in _while_running(processes):
        store.refresh()
        for conversation_id in shared:
            value = store.get(conversation_id)["prompt_tokens"]
            assert value >= seen[conversation_id]
            seen[conversation_id] = value
    results = _results(processes, out_files)

    total = workers * rounds
    for conversation_id in shared:
        # Every increment read the value the previous one stored: the values
        # the updates returned are exactly 1..total, each once.
        returned = sorted(value for result in results for value in result["values"][conversation_id])
        assert returned == list(range(1, total + 1)), conversation_id
    # The workers did run at the same time: their increments interleave.
    runs = [result["values"][shared[0]] for result in results]
    assert any(values != list(range(values[0], values[0] + rounds)) for values in runs)
    inserted = [conversation_id for result in results for conversation_id in result["inserted"]]
    assert len(set(inserted)) == len(inserted) == workers * len(range(0, rounds, 3))

    store.refresh()
    reopened = ConversationStore(store_dir)
    try:
        for view in (store, reopened):
            for conversation_id in shared:
                assert view.get(conversation_id) == {**before[conversation_id], "prompt_tokens": total}
            assert set(view.all_ids()) == set(shared) | set(inserted)
            documents, next_key = view.search(ConversationFilter(archived=None), limit=1000)
            assert next_key is None
            assert sorted(d["conversation_id"] for d in documents) == sorted(set(shared) | set(inserted))
    finally:
        reopened.close()
        store.close()


# -- refresh() takes in another process's writes ---------------------------------------


def _run_elsewhere(store_dir: Path, operations: list[dict]) -> None:
    result = subprocess.run(
        [sys.executable, str(WORKERS / "store_ops.py"), str(store_dir), json.dumps(operations)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stdout == "done\n", result.stderr


def test_refresh_takes_in_another_process_writes_and_version_changes(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store = ConversationStore(store_dir)
    first, second, third = "ab" + uuid.uuid4().hex[2:], "ab" + uuid.uuid4().hex[2:], "ef" + uuid.uuid4().hex[2:]
    store.insert(_document(first, "first title", selected_repository="org/one"))
    store.insert(_document(second, "second title"))
    # Build the search columns now, so refresh has to keep them in step.
    assert store.count(ConversationFilter(text="title", archived=None)) == 2
    assert store.refresh() is False  # nothing changed elsewhere
    version = store.version()

    other = _document(third, "made elsewhere", selected_repository="org/two")
    _run_elsewhere(
        store_dir,
        [
            {"op": "update", "id": first, "fields": {"title": "renamed elsewhere", "archived": True}},
            {"op": "remove", "id": second},
            {"op": "insert", "document": other},
        ],
    )
    assert store.version() != version
    assert store.refresh() is True
    assert store.refresh() is False  # taken in once

    assert store.get(first)["title"] == "renamed elsewhere" and store.get(first)["archived"] is True
    assert store.get(second) is None
    assert store.get(third) == other
    assert sorted(store.all_ids()) == sorted([first, third])
    assert store.count(ConversationFilter(text="title", archived=None)) == 0
    assert store.count(ConversationFilter(text="elsewhere", archived=None)) == 2
    documents, _ = store.search(ConversationFilter(archived=True), limit=10)
    assert [d["conversation_id"] for d in documents] == [first]
    documents, _ = store.search(ConversationFilter(repository="org/two"), limit=10)
    assert [d["conversation_id"] for d in documents] == [third]
    assert store.ids_with_prefix(second[:6]) == []

    # This process's own write is visible at once and needs no refresh.
    version = store.version()
    store.update(third, lambda d: {**d, "title": "mine"})
    assert store.version() != version
    assert store.get(third)["title"] == "mine"
    store.close()


def test_own_write_between_two_of_another_process_does_not_hide_them(tmp_path: Path) -> None:
    """Our write bumps the version counter after the other process's bump;
    the change the other process made in another shard must still be taken in
    by the next refresh."""
    store_dir = tmp_path / "store"
    store = ConversationStore(store_dir)
    mine, theirs = "00" + uuid.uuid4().hex[2:], "ff" + uuid.uuid4().hex[2:]
    store.insert(_document(mine, "mine 0"))
    store.insert(_document(theirs, "theirs 0"))
    for step in range(1, 4):
        _run_elsewhere(store_dir, [{"op": "update", "id": theirs, "fields": {"title": f"theirs {step}"}}])
        store.update(mine, lambda d, step=step: {**d, "title": f"mine {step}"})
        store.refresh()
        assert store.get(theirs)["title"] == f"theirs {step}"
        assert store.get(mine)["title"] == f"mine {step}"
    store.close()


# -- concurrent event appends ------------------------------------------------------------


def test_concurrent_event_appends_get_unique_increasing_ids_and_nothing_is_lost(tmp_path: Path) -> None:
    log_dir, go_file = tmp_path / "conversation", tmp_path / "go"
    workers, batches = 3, 60
    reader = EventLog(log_dir)
    assert reader.search_events() == []
    out_files = [tmp_path / f"out-{i}.json" for i in range(workers)]
    processes = start_together(
        [
            [str(WORKERS / "event_appender.py"), str(log_dir), str(go_file), str(batches), str(i), str(out)]
            for i, out in enumerate(out_files)
        ],
        go_file,
    )
    # An incremental reader during the appends only ever sees whole events
    # with ids 0..n-1.
    for _ in _while_running(processes):
        ids = [event["id"] for event in reader.search_events()]
        assert ids == list(range(len(ids)))
    results = _results(processes, out_files)

    returned = [(event_id, content) for result in results for event_id, content in result]
    for result in results:
        ids = [event_id for event_id, _ in result]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)  # increasing within a process
    assert len({event_id for event_id, _ in returned}) == len(returned)  # unique across processes
    assert sorted(returned) == [(i, content) for i, (_, content) in enumerate(sorted(returned))]  # 0..n-1

    for log in (reader, EventLog(log_dir)):
        stored = [(event["id"], event["message"]) for event in log.search_events()]
        assert stored == sorted(returned)
        for event in log.search_events():
            assert event["args"]["content"] == event["message"] and event["source"] == "agent"
    raw = (log_dir / "events.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    lines = [orjson.loads(line) for line in raw.splitlines()]  # no torn or interleaved line
    assert [(event["id"], event["message"]) for event in lines] == sorted(returned)


_TRY_LOCK = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("held elsewhere")
else:
    print("free")
"""


def _lock_seen_by_another_process(path: Path) -> str:
    return subprocess.run(
        [sys.executable, "-c", _TRY_LOCK, str(path)], capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()


def test_the_write_lock_holds_off_other_processes_and_filelock_until_released(tmp_path: Path) -> None:
    from filelock import FileLock, Timeout

    from convtui.backend.durable_files import InterProcessLock

    path = tmp_path / "not-yet" / "store.lock"  # its directory is made when missing
    lock = InterProcessLock(path)
    with lock:
        with lock:  # reentrant in the holding thread
            assert _lock_seen_by_another_process(path) == "held elsewhere"
        assert _lock_seen_by_another_process(path) == "held elsewhere"  # the outer hold still counts
        # An older convtui, or anything taking filelock's lock on the file, waits too.
        try:
            FileLock(path, timeout=0.05).acquire()
            raise AssertionError("filelock took a lock that was held")
        except Timeout:
            pass
    assert _lock_seen_by_another_process(path) == "free"
