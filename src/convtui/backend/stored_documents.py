"""Conversation documents as the store keeps them in memory: the values of
one document in a tuple, in a fixed field order.

Why. A parsed document is a dict of 26 fields: 1,168 bytes for the dict
alone (orjson grows it key by key), and one string object per value even
where every conversation holds the same user, trigger or status. At
100,000 conversations that was ~200 MiB of the UI's memory. As a tuple
(240 bytes) whose repeating values are shared, the same documents take
~95 MiB, and converting them costs ~1.5 µs each while the shard is parsed.

A StoredDocument is read-only and never handed out: the store gives callers
`to_dict()` copies. Position POSITION[name] holds that field (None where
the document lacks it), so the store's hot paths read fields by position. The
last slot is None but for irregular documents: it then holds the fields not
in FIELDS (a newer convtui's, written back untouched) and the names of the
fields the document lacks, so `to_dict()` returns exactly what was stored.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

Document = dict[str, Any]

FIELDS = (
    "conversation_id", "title", "user_id", "selected_repository", "selected_branch", "git_provider",
    "trigger", "created_at", "last_updated_at", "pr_number", "llm_model", "accumulated_cost",
    "prompt_tokens", "completion_tokens", "total_tokens", "status", "runtime_status", "agent_state",
    "status_message", "runner_pid", "runner_host", "archived", "always_approve", "title_derived",
    "attention", "seen",
)  # fmt: skip  (the documents' own order: to_dict keeps it)

# Values that repeat across conversations (a handful of users, models,
# states, branches, repositories): one object each, shared.
_REPEATING = (
    "user_id", "selected_repository", "selected_branch", "git_provider", "trigger",
    "llm_model", "status", "runtime_status", "agent_state", "runner_host",
)  # fmt: skip
# The order held: the repeating values first and the two containers last,
# so that `of` treats each group with one C-level step.
_HELD = (*_REPEATING, *(name for name in FIELDS if name not in _REPEATING and name not in ("pr_number", "seen")),
         "pr_number", "seen")  # fmt: skip
POSITION = {name: position for position, name in enumerate(_HELD)}
ID, UPDATED = POSITION["conversation_id"], POSITION["last_updated_at"]
_SHARED_END = len(_REPEATING)
_IRREGULAR = len(FIELDS)  # the slot of (fields not in FIELDS, names absent), or None

# Lists are held as tuples (smaller; a JSON document has none), and the
# empty `seen` of most conversations as the empty frozenset (one object,
# falsy like {}, and `marshal` writes it for the snapshot).
_NO_ENTRIES: Any = frozenset()
_held_fields = itemgetter(*_HELD)
_in_document_order = itemgetter(*(POSITION[name] for name in FIELDS))
_shared: dict[Any, Any] = {}
_share = _shared.setdefault  # _share(value, value): the one object equal to value
# Values of long-deleted conversations would pile up in a server that runs
# for months: past this many, sharing starts afresh.
_SHARED_VALUES_MAX = 100_000


# A plain tuple, not a subclass: `marshal` writes and reads it as it is, so
# the store's snapshot loads at C speed with no conversion (a subclass cost
# every launch ~45 ms at 100,000: a copy of each document, and the freeing
# of the original).
StoredDocument = tuple


def from_document(document: Document) -> StoredDocument:
    """`document` as stored (the dict is left as it was)."""
    if len(_shared) > _SHARED_VALUES_MAX:
        _shared.clear()
    try:
        values = _held_fields(document)
        irregular = None if len(document) == len(FIELDS) else _irregular(document)
    except KeyError:  # an older document: some fields absent
        values = tuple(document.get(name) for name in _HELD)
        irregular = _irregular(document)
    shared = values[:_SHARED_END]
    pr_number, seen = values[-2], values[-1]
    if pr_number.__class__ is list:
        pr_number = tuple(pr_number)
    if seen.__class__ is dict and not seen:
        seen = _NO_ENTRIES
    try:
        return (*map(_share, shared, shared), *values[_SHARED_END:-2], pr_number, seen, irregular)
    except TypeError:  # an unhashable value where a string belongs: kept as it is
        return (*values[:-2], pr_number, seen, irregular)


def to_dict(stored: StoredDocument) -> Document:
    """An independent copy of the document, as it was stored."""
    irregular = stored[_IRREGULAR]
    if irregular is None:
        return {name: _own(value) for name, value in zip(FIELDS, _in_document_order(stored))}
    extras, absent = irregular
    document = {name: _own(value) for name, value in zip(FIELDS, _in_document_order(stored)) if name not in absent}
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
