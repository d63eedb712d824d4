"""The filter language of the list: free words plus `status:`, `repo:`,
`trigger:` and `is:` tokens, e.g. `status:waiting repo:acme/app fix`.

`status:` takes a conversation status (starting, running, stopped,
archived, error) or a finer state people look for: `waiting` (a loop waits
for an answer or the confirmation of an action) and `finished` (the agent
finished its task; no loop runs). `is:archived` shows only archived
conversations, `is:all` archived ones too (the default hides them)."""

from __future__ import annotations

from dataclasses import dataclass

from .models import ConversationStatus, ConversationTrigger
from .store import STATE_FILTERS, ConversationFilter


@dataclass(frozen=True)
class ParsedQuery:
    filter: ConversationFilter
    words: tuple[str, ...]  # the free words, to highlight in titles
    problems: tuple[str, ...]  # tokens that were not understood


def _enum_match(enum: type, text: str) -> str | None:
    lowered = text.lower()
    for member in enum:
        if lowered in (member.value.lower(), member.name.lower()):
            return member.value
    return None


# What `status:` takes, in the order help and errors list them.
STATUS_WORDS = ("running", "waiting", "error", "finished", "stopped", "starting", "archived")


def _status_match(text: str) -> str | None:
    upper = text.upper()
    if upper in STATE_FILTERS:
        return upper
    return _enum_match(ConversationStatus, text)


def parse_query(text: str) -> ParsedQuery:
    """Parse what the user typed. Unknown tokens are reported, not fatal:
    the list still filters by everything else."""
    words: list[str] = []
    problems: list[str] = []
    repository = trigger = status = None
    archived: bool | None = False
    for token in text.split():
        name, colon, value = token.partition(":")
        name = name.lower()
        if not colon or not value or name not in ("status", "repo", "trigger", "is"):
            words.append(token)
            continue
        if name == "repo":
            repository = value
        elif name == "status":
            status = _status_match(value)
            if status is None:
                problems.append(f"unknown status {value!r} (try {', '.join(STATUS_WORDS)})")
        elif name == "trigger":
            trigger = _enum_match(ConversationTrigger, value)
            if trigger is None:
                problems.append(f"unknown trigger {value!r}")
        elif name == "is":
            if value.lower() == "archived":
                archived = True
            elif value.lower() in ("all", "any"):
                archived = None
            else:
                problems.append(f"unknown is:{value}")
    if status == ConversationStatus.ARCHIVED.value and archived is False:
        archived = True
    return ParsedQuery(
        filter=ConversationFilter(
            repository=repository,
            trigger=trigger,
            status=status,
            text=" ".join(words) or None,
            archived=archived,
        ),
        words=tuple(word.lower() for word in words),
        problems=tuple(problems),
    )
