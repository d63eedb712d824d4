"""Crash safety of the store and the event logs: a writer process is SIGKILLed
at random moments, again and again on the same data directory, and after each
kill everything that had returned must be there, whole.

The writer (tests/workers/store_writer.py) logs an "intent" line before each
call and a fsynced "done" line after it returns, so the test knows exactly
which writes returned and which single write may have been in flight. The
kill-and-check loop lives in tests/kill_harness.py: bench/soak.py runs it
with hundreds of kills.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from convtui.backend.store import ConversationStore

from .kill_harness import (
    WORKERS,
    check_shards_parse,
    kill_store_writer,
    metadata_document,
    temporary_files,
)

KILLS = 24


def test_store_and_event_logs_survive_repeated_sigkill(tmp_path: Path) -> None:
    seed = int(os.environ.get("CONVTUI_CRASH_SEED", random.randrange(2**32)))
    print(f"CONVTUI_CRASH_SEED={seed}")
    report = kill_store_writer(tmp_path, KILLS, seed)
    print(report.summary())
    assert report.kills == KILLS


# -- a kill at the worst moment for temporary files -------------------------------------


def _kill_mid_write(store_dir: Path, conversation_id: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(WORKERS / "die_mid_write.py"),
            str(store_dir),
            conversation_id,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr


def _store_with_one_conversation(store_dir: Path) -> str:
    conversation_id = uuid.uuid4().hex
    store = ConversationStore(store_dir)
    store.insert(metadata_document(conversation_id, "original"))
    store.close()
    return conversation_id


def test_writer_killed_between_temporary_file_and_rename_leaves_the_old_shard(
    tmp_path: Path,
) -> None:
    store_dir = tmp_path / "store"
    conversation_id = _store_with_one_conversation(store_dir)
    _kill_mid_write(store_dir, conversation_id)
    check_shards_parse(store_dir)
    assert len(temporary_files(store_dir)) == 1  # the kill landed where it was meant to
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
    assert temporary_files(store_dir) == []
