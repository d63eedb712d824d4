"""Dies by SIGKILL in the middle of a store write, at the worst moment for
temporary files: after the new shard was written to its temporary file and
fsynced, before it was renamed over the shard.

    python die_mid_write.py STORE_DIR CONVERSATION_ID
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from convtui.backend.store import ConversationStore


def main() -> None:
    store = ConversationStore(Path(sys.argv[1]))
    conversation_id = sys.argv[2]

    def killed(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    os.replace = killed  # durable_files.atomic_write renames with os.replace
    store.update(conversation_id, lambda document: {**document, "title": "never stored"})
    raise SystemExit("the update returned instead of dying")


if __name__ == "__main__":
    main()
