"""Crash-test writer: loops forever doing random store writes and event
appends until it is killed.

    python store_writer.py DATA_DIR LOG_PATH SEED

DATA_DIR holds `store/` (the ConversationStore), `conversations/<id>/`
(event logs) and `hot.json` (the ids of the conversations whose counters are
bumped). Before each call the writer appends an "intent" line to LOG_PATH,
after the call returns a "done" line (flushed and fsynced), so the test knows
every write that returned and the one write that may have been in flight.
It prints "ready" on stdout once the store is open, just before writing.
"""

from __future__ import annotations

import json
import os
import random
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from convtui.backend.events import EventLog
from convtui.backend.models import ConversationMetadata, format_timestamp
from convtui.backend.store import ConversationStore

EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)


def main() -> None:
    data_dir, log_path, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)
    hot: list[str] = json.loads((data_dir / "hot.json").read_text())
    store = ConversationStore(data_dir / "store")
    logs = {conversation_id: EventLog(data_dir / "conversations" / conversation_id) for conversation_id in hot}
    own = [conversation_id for conversation_id in store.all_ids() if conversation_id not in hot]
    log = open(log_path, "a", encoding="utf-8")

    def record(entry: dict, durable: bool) -> None:
        log.write(json.dumps(entry) + "\n")
        log.flush()
        if durable:
            os.fsync(log.fileno())

    sequence = 0
    print("ready", flush=True)
    while True:
        sequence += 1
        choice = rng.random()
        if choice < 0.45:
            conversation_id = rng.choice(hot)
            moment = format_timestamp(EPOCH + timedelta(seconds=sequence, microseconds=seed % 1_000_000))
            record({"t": "intent", "op": "update", "id": conversation_id}, durable=False)

            def bump(document: dict) -> dict:
                value = document["prompt_tokens"] + 1
                return {**document, "prompt_tokens": value, "title": f"count {value}", "last_updated_at": moment}

            stored = store.update(conversation_id, bump)
            record({"t": "done", "op": "update", "id": conversation_id, "value": stored["prompt_tokens"]}, durable=True)
        elif choice < 0.75:
            conversation_id = rng.choice(hot)
            contents = [f"{seed}-{sequence}-{n}" for n in range(rng.randint(1, 3))]
            record({"t": "intent", "op": "append", "id": conversation_id, "contents": contents}, durable=False)
            stored = logs[conversation_id].append(
                [{"source": "user", "action": "message", "message": c, "args": {"content": c}} for c in contents]
            )
            record(
                {"t": "done", "op": "append", "id": conversation_id, "ids": [e["id"] for e in stored], "contents": contents},
                durable=True,
            )
        elif choice < 0.9 or not own:
            # Often in a hot conversation's shard, so shards get rewritten with
            # documents the test checks.
            prefix = rng.choice(hot)[:2] if rng.random() < 0.5 else ""
            conversation_id = prefix + uuid.UUID(int=rng.getrandbits(128)).hex[len(prefix) :]
            title = "inserted " + "x" * rng.randint(0, 300)
            document = ConversationMetadata(
                conversation_id=conversation_id, title=title, created_at=EPOCH, last_updated_at=EPOCH
            ).to_document()
            record({"t": "intent", "op": "insert", "id": conversation_id}, durable=False)
            store.insert(document)
            own.append(conversation_id)
            record({"t": "done", "op": "insert", "id": conversation_id}, durable=True)
        else:
            conversation_id = own.pop(rng.randrange(len(own)))
            record({"t": "intent", "op": "remove", "id": conversation_id}, durable=False)
            removed = store.remove(conversation_id)
            record({"t": "done", "op": "remove", "id": conversation_id, "removed": removed}, durable=True)


if __name__ == "__main__":
    main()
