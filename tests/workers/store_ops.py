"""Runs a list of store operations in a process of its own.

    python store_ops.py STORE_DIR OPERATIONS_JSON

OPERATIONS_JSON is a list of {"op": "insert", "document": {...}},
{"op": "update", "id": ..., "fields": {...}} or {"op": "remove", "id": ...}.
Prints "done" when all returned.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from convtui.backend.store import ConversationStore


def main() -> None:
    store = ConversationStore(Path(sys.argv[1]))
    for operation in json.loads(sys.argv[2]):
        if operation["op"] == "insert":
            store.insert(operation["document"])
        elif operation["op"] == "update":
            fields = operation["fields"]
            assert store.update(operation["id"], lambda d: {**d, **fields}) is not None
        elif operation["op"] == "remove":
            assert store.remove(operation["id"])
        else:
            raise SystemExit(f"unknown operation {operation!r}")
    store.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
