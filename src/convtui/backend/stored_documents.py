"""Conversation documents as the store keeps them in memory: the values of
one document in a tuple, in a fixed field order.

Why. A parsed document is a dict of 26 fields: 1,168 bytes for the dict
alone (orjson grows it key by key), and one string object per value even
where every conversation holds the same user, trigger or status. At
100,000 conversations that was ~200 MiB of the UI's memory. As a tuple
(240 bytes) whose repeating strings are interned, the same documents take
~95 MiB, and converting them costs ~1 µs each while the shard is parsed.

A StoredDocument is read-only and never handed out: the store gives callers
`to_dict()` copies. Position i holds field FIELDS[i] (None where the
document lacks it), so the store's hot paths read fields by position. The
last slot is None but for irregular documents: it then holds the fields not
in FIELDS (a newer convtui's, written back untouched) and the names of the
fields the document lacks, so `to_dict()` returns exactly what was stored.
"""

from __future__ import annotations

import sys
from operator import itemgetter
from typing import Any

Document = dict[str, Any]

FIELDS = (
    "conversation_id", "title", "user_id", "selected_repository", "selected_branch", "git_provider",
    "trigger", "created_at", "last_updated_at", "pr_number", "llm_model", "accumulated_cost",
    "prompt_tokens", "completion_tokens", "total_tokens", "status", "runtime_status", "agent_state",
    "status_message", "runner_pid", "runner_host", "archived", "always_approve", "title_derived",
    "attention", "seen",
)  # fmt: skip
POSITION = {name: position for position, name in enumerate(FIELDS)}
ID, UPDATED = POSITION["conversation_id"], POSITION["last_updated_at"]
_PR_NUMBER, _SEEN = POSITION["pr_number"], POSITION["seen"]
_IRREGULAR = len(FIELDS)  # the slot of (fields not in FIELDS, names absent), or None

# Values that repeat across conversations (a handful of users, models,
# states, branches, repositories): one string object each, shared.
_REPEATING = tuple(
    POSITION[name]
    for name in (
        "user_id", "selected_repository", "selected_branch", "git_provider", "trigger",
        "llm_model", "status", "runtime_status", "agent_state", "runner_host",
    )
)  # fmt: skip


# Lists are held as tuples (smaller; a JSON document has none), and the
# empty `seen` of most conversations as the empty frozenset (one object,
# falsy like {}, and `marshal` writes it for the snapshot).
_NO_ENTRIES: Any = frozenset()
_every_field = itemgetter(*FIELDS)
_intern = sys.intern


class StoredDocument(tuple):
    __slots__ = ()

    @classmethod
    def of(cls, document: Document) -> StoredDocument:
        """`document` as stored (the dict is left as it was)."""
        try:
            values = list(_every_field(document))
            irregular = None if len(document) == len(FIELDS) else _irregular(document)
        except KeyError:  # an older document: some fields absent
            values = [document.get(name) for name in FIELDS]
            irregular = _irregular(document)
        for position in _REPEATING:
            value = values[position]
            if value.__class__ is str:
                values[position] = _intern(value)
        if values[_PR_NUMBER].__class__ is list:
            values[_PR_NUMBER] = tuple(values[_PR_NUMBER])
        if values[_SEEN].__class__ is dict and not values[_SEEN]:
            values[_SEEN] = _NO_ENTRIES
        values.append(irregular)
        return cls(values)


    def get(self, name: str, default: Any = None) -> Any:
        """The field's value, as dict.get would give it, but read-only: a
        list as a tuple, the empty `seen` as an empty frozenset."""
        position = POSITION.get(name)
        irregular = self[_IRREGULAR]
        if irregular is not None:
            extras, absent = irregular
            if position is None:
                return extras.get(name, default)
            if name in absent:
                return default
        elif position is None:
            return default
        return self[position]

    def to_dict(self) -> Document:
        """An independent copy of the document, as it was stored."""
        irregular = self[_IRREGULAR]
        if irregular is None:
            return {name: _own(value) for name, value in zip(FIELDS, self)}
        extras, absent = irregular
        document = {name: _own(value) for name, value in zip(FIELDS, self) if name not in absent}
        document.update((name, _own(value)) for name, value in extras.items())
        return document


def _own(value: Any) -> Any:
    """A value of a stored document as the caller's own: containers copied."""
    if value.__class__ is tuple or value.__class__ is list:
        return list(value)
    if value.__class__ is dict or value.__class__ is frozenset:  # (frozenset: _NO_ENTRIES)
        return dict(value)
    return value


def _irregular(document: Document) -> tuple[Document, frozenset[str]] | None:
    extras = {name: value for name, value in document.items() if name not in POSITION}
    absent = frozenset(name for name in FIELDS if name not in document)
    return (extras, absent) if extras or absent else None
