"""The trash: where deleted conversations wait, whole, until restored or
emptied (ConversationService.trash, restore, list_trash, empty_trash).

A trashed conversation is its directory renamed to
`conversations/.trash-<id>/`, holding `trashed.json`: its metadata as it was
and when it was trashed. The store no longer lists it, and `doctor` never
revives it (it finishes a move to the trash that a crash cut short)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from .errors import StorageError, describe_os_error
from .models import CONVERSATION_ID_PATTERN, ConversationMetadata

log = logging.getLogger(__name__)

TRASH_PREFIX = ".trash-"
TRASH_RECORD = "trashed.json"


@dataclass(frozen=True)
class TrashedConversation:
    conversation_id: str
    title: str
    trashed_at: str  # the store's timestamp format
    document: dict[str, Any]  # its metadata as it was


def trash_directory(directory: Path) -> Path:
    """Where a conversation's directory lies while it is in the trash."""
    return directory.with_name(TRASH_PREFIX + directory.name)


def trash_record(document: dict[str, Any], trashed_at: str) -> bytes:
    return orjson.dumps({"trashed_at": trashed_at, "document": document})


def trashed_ids(conversations: Path) -> list[str]:
    """The ids of the conversations in the trash under `conversations/`."""
    try:
        names = os.listdir(conversations)
    except FileNotFoundError:
        return []
    except OSError as error:
        raise StorageError(describe_os_error(error, "read")) from error
    found = []
    for name in names:
        conversation_id = name.removeprefix(TRASH_PREFIX)
        if conversation_id != name and CONVERSATION_ID_PATTERN.match(conversation_id):
            found.append(conversation_id)
    return found


def read_trash_record(conversations: Path, conversation_id: str) -> TrashedConversation | None:
    """A trashed conversation's record; None if missing or unreadable (logged)."""
    path = conversations / (TRASH_PREFIX + conversation_id) / TRASH_RECORD
    try:
        raw = orjson.loads(path.read_bytes())
        document = ConversationMetadata.model_validate(raw["document"]).to_document()
        trashed_at = str(raw["trashed_at"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, ValidationError) as error:
        log.warning("unreadable trash record %s: %s", path, error)
        return None
    return TrashedConversation(conversation_id, document["title"], trashed_at, document)
