"""The filter language of the list: free words plus `status:`, `repo:`,
`trigger:` and `is:` tokens, e.g. `status:waiting repo:acme/app fix`;
`status:unread`: events you have not seen.

What a conversation did: `text:` (words in any event: messages, commands,
outputs), `file:` (a path it viewed or edited), `cmd:` (a command it ran),
each quoted for several words (`cmd:"npm test"`); when: `since:` and
`before:` (a date 2026-11-30, a time 2026-11-30T14:00, or an age: 30m, 12h,
3d, 2w); what it cost: `cost>0.5`, `cost<2`.

`status:` takes a conversation status (starting, running, stopped,
archived, error) or a finer state people look for: `waiting` (a loop waits
for an answer or the confirmation of an action) and `finished` (the agent
finished its task; no loop runs). `is:archived` shows only archived
conversations, `is:all` archived ones too (the default hides them)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .models import ConversationStatus, ConversationTrigger, format_timestamp
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
STATUS_WORDS = ("running", "waiting", "unread", "error", "finished", "stopped", "starting", "archived")


def _status_match(text: str) -> str | None:
    upper = text.upper()
    if upper in STATE_FILTERS:
        return upper
    return _enum_match(ConversationStatus, text)


# A token: name:"quoted value" (the closing quote may still be being typed), or anything up to a space.
_TOKEN = re.compile(r'[A-Za-z]+:"[^"]*"?|\S+')
_COST = re.compile(r"cost([<>])(.*)", re.IGNORECASE)
_AGE = re.compile(r"(\d+)\s*(m|h|d|w)", re.IGNORECASE)
_AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_EVENT_NAMES = ("text", "file", "cmd")
_NAMES = ("status", "repo", "trigger", "is", "since", "before", *_EVENT_NAMES)


def _moment(value: str, now: datetime) -> str | None:
    """A date, a time or an age ('3d': three days ago) as the store's
    timestamp; None if it is none of them."""
    age = _AGE.fullmatch(value)
    if age:
        return format_timestamp(now - timedelta(**{_AGE_UNITS[age[2].lower()]: int(age[1])}))
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return format_timestamp(moment if moment.tzinfo else moment.astimezone(timezone.utc))


def _cost(token: str, problems: list[str]) -> tuple[str, float] | None:
    match = _COST.fullmatch(token)
    if match is None:
        return None
    try:
        limit = float(match[2])
    except ValueError:
        problems.append(f"{token}: not a number (try cost>0.5)")
        return match[1], float("nan")
    return match[1], limit


def parse_query(text: str, now: datetime | None = None) -> ParsedQuery:
    """Parse what the user typed. Unknown tokens are reported, not fatal:
    the list still filters by everything else."""
    now = now or datetime.now(timezone.utc)
    words: list[str] = []
    problems: list[str] = []
    repository = trigger = status = None
    archived: bool | None = False
    done: dict[str, list[str]] = {name: [] for name in _EVENT_NAMES}
    since = before = None
    cost_above = cost_below = None
    unread = False
    for token in _TOKEN.findall(text):
        cost = _cost(token, problems)
        if cost is not None:
            if cost[1] == cost[1]:  # (not NaN: a number)
                if cost[0] == ">":
                    cost_above = cost[1]
                else:
                    cost_below = cost[1]
            continue
        name, colon, value = token.partition(":")
        name = name.lower()
        if not colon or not value or name not in _NAMES:
            words.append(token)
            continue
        if name in _EVENT_NAMES:
            value = value.strip('"')
            if value.strip():
                done[name].append(value)
            continue
        if name in ("since", "before"):
            moment = _moment(value, now)
            if moment is None:
                problems.append(f"{name}:{value}: not a date (try 2026-11-30, 2026-11-30T14:00 or 3d)")
            elif name == "since":
                since = moment
            else:
                before = moment
            continue
        if name == "repo":
            repository = value
        elif name == "status" and value.lower() == "unread":
            unread = True
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
            updated_since=since,
            updated_before=before,
            cost_above=cost_above,
            cost_below=cost_below,
            unread=unread,
            event_words=" ".join(done["text"]) or None,
            event_path=" ".join(done["file"]) or None,
            event_command=" ".join(done["cmd"]) or None,
        ),
        words=tuple(word.lower() for word in words),
        problems=tuple(problems),
    )
