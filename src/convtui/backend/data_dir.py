"""Where everything convtui stores lives: one data directory."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InvalidInput
from .models import CONVERSATION_ID_PATTERN

DATA_DIR_VARIABLE = "CONVTUI_DATA_DIR"


def default_data_dir() -> Path:
    """$CONVTUI_DATA_DIR, else the platform's user data directory."""
    configured = os.environ.get(DATA_DIR_VARIABLE)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("convtui", appauthor=False))


class DataDirectory:
    """The layout:

        settings.json                  settings (mode 0600)
        store/meta-XX.json             conversation metadata, TinyDB shards
        conversations/<id>/events.jsonl
        conversations/<id>/workspace/  the agent's files
        conversations/<id>/init.json   what `new` was given beyond metadata
        conversations/<id>/experiment_config.json
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser().absolute()
        self.store = self.root / "store"
        self.conversations = self.root / "conversations"
        self.settings = self.root / "settings.json"

    def conversation(self, conversation_id: str) -> Path:
        """The directory of one conversation. Refuses anything but a full id,
        so no input can name a path outside `conversations/`."""
        if not CONVERSATION_ID_PATTERN.match(conversation_id):
            raise InvalidInput(f"{conversation_id!r} is not a conversation id")
        return self.conversations / conversation_id

    def workspace(self, conversation_id: str) -> Path:
        return self.conversation(conversation_id) / "workspace"
