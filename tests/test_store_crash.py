"""Crash safety of the store and the event logs: a writer process is SIGKILLed
at random moments, again and again on the same data directory, and after each
kill everything that had returned must be there, whole.

The writer (tests/workers/store_writer.py) logs an "intent" line before each
call and a fsynced "done" line after it returns, so the test knows exactly
which writes returned and which single write may have been in flight.
"""

from __future__ import annotations

import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson

from convtui.backend.events import EventLog
from convtui.backend.models import ConversationMetadata, utc_now
from convtui.backend.shard_storage import load_json_file
from convtui.backend.store import SHARD_PREFIX, TABLE, ConversationFilter, ConversationStore, shard_of

WORKERS = Path(__file__).parent / "workers"
KILLS = 24


def _document(conversation_id: str, title: str) -> dict:
    now = utc_now()
    return ConversationMetadata(
        conversation_id=conversation_id, title=title, created_at=now, last_updated_at=now
    ).to_document()


def _wait_for_line(process: subprocess.Popen, timeout: float) -> str:
    """The first line the process prints, or "" if it printed none in time."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return process.stdout.readline()


def _temporary_files(directory: Path) -> set[str]:
    return {path.name for path in directory.rglob(".*.tmp")}


def _check_shards_parse(store_dir: Path) -> None:
    for path in sorted(store_dir.glob(f"{SHARD_PREFIX}*.json")):
        raw = path.read_bytes()
        orjson.loads(raw)  # raises on a torn or mixed file
        data = load_json_file(path, raw)
        for document in data.get(TABLE, {}).values():
            assert shard_of(document["conversation_id"]) == path.name[len(SHARD_PREFIX) : -5], path


def _read_new_log_lines(log_path: Path, offset: int) -> tuple[list[dict], int]:
    """Complete lines from `offset`; cuts off a torn last line so the next
    writer does not glue its first line onto it."""
    raw = log_path.read_bytes() if log_path.exists() else b""
    complete = raw.rfind(b"\n") + 1
    if complete < len(raw):
        with open(log_path, "r+b") as handle:
            handle.truncate(complete)
    return [json.loads(line) for line in raw[offset:complete].splitlines() if line.strip()], complete


class _Expected:
    """What must be in the store, from the writes that returned."""

    def __init__(self, hot: list[str]) -> None:
        self.hot = hot
        self.counters = {conversation_id: 0 for conversation_id in hot}
        self.inserted: set[str] = set()
        self.removed: set[str] = set()
        self.events: dict[str, list[tuple[int, str]]] = {conversation_id: [] for conversation_id in hot}
        self.done = 0
        self.in_flight_at_kill = 0

    def apply(self, entry: dict) -> None:
        op, conversation_id = entry["op"], entry["id"]
        self.done += 1
        if op == "update":
            assert entry["value"] == self.counters[conversation_id] + 1, entry
            self.counters[conversation_id] = entry["value"]
        elif op == "insert":
            self.inserted.add(conversation_id)
        elif op == "remove":
            assert entry["removed"], entry
            self.inserted.discard(conversation_id)
            self.removed.add(conversation_id)
        elif op == "append":
            known = self.events[conversation_id]
            first = known[-1][0] + 1 if known else 0
            assert entry["ids"] == list(range(first, first + len(entry["contents"]))), entry
            known.extend(zip(entry["ids"], entry["contents"]))

    def check_and_resolve(self, data_dir: Path, pending: dict | None) -> None:
        """Compare the directory with what returned; a write in flight at the
        kill may or may not be there, and once seen it is taken as done."""
        store_dir = data_dir / "store"
        _check_shards_parse(store_dir)
        store = ConversationStore(store_dir)
        try:
            pending_op = pending["op"] if pending else None
            pending_id = pending["id"] if pending else None

            for conversation_id, value in self.counters.items():
                document = store.get(conversation_id)
                assert document is not None, f"hot conversation {conversation_id} lost"
                allowed = {value, value + 1} if (pending_op, pending_id) == ("update", conversation_id) else {value}
                assert document["prompt_tokens"] in allowed, (conversation_id, document["prompt_tokens"], value)
                assert document["title"] == f"count {document['prompt_tokens']}", document
                self.counters[conversation_id] = document["prompt_tokens"]

            if pending_op == "insert" and store.get(pending_id) is not None:
                self.inserted.add(pending_id)
            if pending_op == "remove" and store.get(pending_id) is None:
                self.inserted.discard(pending_id)
                self.removed.add(pending_id)
            expected_ids = set(self.hot) | self.inserted
            assert set(store.all_ids()) == expected_ids
            documents, next_key = store.search(ConversationFilter(archived=None), limit=len(expected_ids) + 1)
            assert next_key is None and {d["conversation_id"] for d in documents} == expected_ids
        finally:
            store.close()

        for conversation_id, known in self.events.items():
            directory = data_dir / "conversations" / conversation_id
            stored = [(event["id"], event["message"]) for event in EventLog(directory).search_events()]
            allowed = [known]
            if (pending_op, pending_id) == ("append", conversation_id):
                first = known[-1][0] + 1 if known else 0
                contents = pending["contents"]
                allowed.append(known + list(zip(range(first, first + len(contents)), contents)))
            assert stored in allowed, (conversation_id, stored[-5:], known[-5:], pending)
            self.events[conversation_id] = stored
            # The raw file: every complete line is an event, in id order; only
            # the append in flight may have left an incomplete last line.
            path = directory / "events.jsonl"
            raw = path.read_bytes() if path.exists() else b""
            complete = raw.rfind(b"\n") + 1
            lines = [orjson.loads(line) for line in raw[:complete].splitlines()]
            assert [(e["id"], e["message"]) for e in lines] == stored
            if complete < len(raw):
                assert (pending_op, pending_id) == ("append", conversation_id), raw[complete:]


def test_store_and_event_logs_survive_repeated_sigkill(tmp_path: Path) -> None:
    seed = int(os.environ.get("CONVTUI_CRASH_SEED", random.randrange(2**32)))
    print(f"CONVTUI_CRASH_SEED={seed}")
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    store_dir = data_dir / "store"
    log_path = tmp_path / "returned.log"

    # Two hot conversations share a shard, so a shard holds several counters.
    hot = ["ab" + uuid.uuid4().hex[2:], "ab" + uuid.uuid4().hex[2:], "cd" + uuid.uuid4().hex[2:], uuid.uuid4().hex]
    store = ConversationStore(store_dir)
    for conversation_id in hot:
        store.insert(_document(conversation_id, "count 0"))
    store.close()
    (data_dir / "hot.json").write_text(json.dumps(hot))

    expected = _Expected(hot)
    offset = 0
    left_behind = 0
    for kill in range(KILLS):
        writer = subprocess.Popen(
            [sys.executable, str(WORKERS / "store_writer.py"), str(data_dir), str(log_path), str(seed % 10**6 * 100 + kill)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            line = _wait_for_line(writer, timeout=30)
            assert line == "ready\n", f"writer did not start: {line!r}"
            time.sleep(rng.uniform(0.02, 0.2))
            assert writer.poll() is None, "writer stopped before it was killed"
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=30)
        except BaseException:
            writer.kill()
            writer.wait()
            print(writer.stderr.read())
            raise
        writer.stdout.close()
        stderr = writer.stderr.read()
        writer.stderr.close()
        assert writer.returncode == -signal.SIGKILL, stderr

        # Stray temporary files do not accumulate: what earlier writers left
        # was cleaned up when the store was opened since, so all there may be
        # is the one file of the write this writer had in flight.
        temporary = _temporary_files(data_dir)
        assert len(temporary) <= 1, temporary
        assert all(f".{writer.pid}." in name for name in temporary), (writer.pid, temporary)
        assert all((store_dir / name).exists() for name in temporary)  # in the store, beside a shard
        left_behind += len(temporary)

        entries, offset = _read_new_log_lines(log_path, offset)
        pending = None
        for entry in entries:
            if entry["t"] == "intent":
                assert pending is None, (pending, entry)
                pending = entry
            else:
                assert pending is not None and (pending["op"], pending["id"]) == (entry["op"], entry["id"])
                expected.apply(entry)
                pending = None
        expected.in_flight_at_kill += pending is not None
        expected.check_and_resolve(data_dir, pending)

    print(
        f"{expected.done} writes returned, {KILLS} kills, {expected.in_flight_at_kill} with a write in flight, "
        f"{left_behind} temporary files left behind by a kill, counters {sorted(expected.counters.values())}"
    )
    assert expected.done >= KILLS  # the kills did land among writes, not only during start-up
    assert sum(expected.counters.values()) > 0 and any(expected.events.values())


# -- a kill at the worst moment for temporary files -------------------------------------


def _kill_mid_write(store_dir: Path, conversation_id: str) -> None:
    result = subprocess.run(
        [sys.executable, str(WORKERS / "die_mid_write.py"), str(store_dir), conversation_id],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr


def _store_with_one_conversation(store_dir: Path) -> str:
    conversation_id = uuid.uuid4().hex
    store = ConversationStore(store_dir)
    store.insert(_document(conversation_id, "original"))
    store.close()
    return conversation_id


def test_writer_killed_between_temporary_file_and_rename_leaves_the_old_shard(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    conversation_id = _store_with_one_conversation(store_dir)
    _kill_mid_write(store_dir, conversation_id)
    _check_shards_parse(store_dir)
    assert len(_temporary_files(store_dir)) == 1  # the kill landed where it was meant to
    store = ConversationStore(store_dir)
    try:
        assert store.get(conversation_id)["title"] == "original"
        # The lock died with the writer: the next write goes through.
        store.update(conversation_id, lambda document: {**document, "title": "changed"})
    finally:
        store.close()
    reopened = ConversationStore(store_dir)
    assert reopened.get(conversation_id)["title"] == "changed"
    reopened.close()


def test_temporary_files_of_killed_writers_do_not_accumulate(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    conversation_id = _store_with_one_conversation(store_dir)
    for _ in range(3):
        _kill_mid_write(store_dir, conversation_id)
    store = ConversationStore(store_dir)
    try:
        store.update(conversation_id, lambda document: {**document, "title": "changed"})
    finally:
        store.close()
    # No write is in flight now: nothing a dead writer left should remain.
    assert _temporary_files(store_dir) == set()
