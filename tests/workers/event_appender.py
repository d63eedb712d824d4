"""Concurrent event appender.

    python event_appender.py LOG_DIR GO_FILE BATCHES INDEX OUT_FILE

Prints "ready", waits until GO_FILE exists, appends BATCHES batches of 1-3
events to the EventLog in LOG_DIR, then writes to OUT_FILE a JSON list: the
[id, content] of every event as `append` returned it.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from convtui.backend.events import EventLog


def main() -> None:
    log_dir, go_file = Path(sys.argv[1]), Path(sys.argv[2])
    batches, index, out_file = int(sys.argv[3]), int(sys.argv[4]), Path(sys.argv[5])
    rng = random.Random(index)
    log = EventLog(log_dir)
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not go_file.exists():
        if time.monotonic() > deadline:
            raise SystemExit("never told to go")
        time.sleep(0.001)

    returned = []
    for batch in range(batches):
        contents = [f"w{index}-{batch}-{n}-" + "z" * rng.randint(0, 2000) for n in range(rng.randint(1, 3))]
        stored = log.append(
            [{"source": "agent", "action": "message", "message": c, "args": {"content": c}} for c in contents]
        )
        assert [e["message"] for e in stored] == contents
        returned.extend([e["id"], e["message"]] for e in stored)
    out_file.write_text(json.dumps(returned))


if __name__ == "__main__":
    main()
