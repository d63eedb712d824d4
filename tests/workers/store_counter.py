"""Concurrent-writer worker: increments `prompt_tokens` of shared
conversations and inserts conversations of its own.

    python store_counter.py STORE_DIR GO_FILE IDS_JSON ROUNDS INDEX OUT_FILE

Prints "ready", waits until GO_FILE exists (so that all workers start
together), then for ROUNDS rounds increments every shared conversation once,
inserting one conversation of its own every third round. Writes to OUT_FILE:
{"values": {id: [value each update returned, ...]}, "inserted": [ids]}.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

from convtui.backend.models import ConversationMetadata, utc_now
from convtui.backend.store import ConversationStore


def main() -> None:
    store_dir, go_file = Path(sys.argv[1]), Path(sys.argv[2])
    shared: list[str] = json.loads(sys.argv[3])
    rounds, index, out_file = int(sys.argv[4]), int(sys.argv[5]), Path(sys.argv[6])
    store = ConversationStore(store_dir)
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not go_file.exists():
        if time.monotonic() > deadline:
            raise SystemExit("never told to go")
        time.sleep(0.001)

    values: dict[str, list[int]] = {conversation_id: [] for conversation_id in shared}
    inserted: list[str] = []
    for round_number in range(rounds):
        for conversation_id in shared:
            stored = store.update(conversation_id, lambda d: {**d, "prompt_tokens": d["prompt_tokens"] + 1})
            values[conversation_id].append(stored["prompt_tokens"])
        if round_number % 3 == 0:
            # Half of them in a shared conversation's shard.
            prefix = shared[round_number % len(shared)][:2] if round_number % 2 == 0 else ""
            conversation_id = prefix + uuid.uuid4().hex[len(prefix) :]
            now = utc_now()
            store.insert(
                ConversationMetadata(
                    conversation_id=conversation_id, title=f"worker {index} #{round_number}",
                    created_at=now, last_updated_at=now,
                ).to_document()
            )
            inserted.append(conversation_id)
    store.close()
    out_file.write_text(json.dumps({"values": values, "inserted": inserted}))


if __name__ == "__main__":
    main()
