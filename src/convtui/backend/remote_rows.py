"""The conversations of a remote server that a UI has loaded, in memory:
filtered and sorted here on every keystroke as the store does it locally
(the same ConversationFilter, the same sorts), over what is loaded."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from sortedcontainers import SortedList

from .models import ConversationInfo, format_timestamp
from .store import WAITING, ConversationFilter, state_of

PLAIN = ConversationFilter(archived=False)
STATUS_RANK = {"WAITING": 0, "RUNNING": 1, "STARTING": 2, "ERROR": 3, "FINISHED": 4, "STOPPED": 4, "ARCHIVED": 5}


def _state(info: ConversationInfo) -> str:
    return state_of(info.status.value, info.agent_state.value if info.agent_state else None, info.attention)


def searched_text(info: ConversationInfo) -> str:
    """What filter words are looked for in: title, repository and branch, lower case."""
    return " ".join(filter(None, (info.title, info.selected_repository, info.selected_branch))).lower()


def matches(info: ConversationInfo, query: ConversationFilter, words: Sequence[str], searched: str | None = None) -> bool:
    """Whether `info` passes `query` (not its event searches: no remote row
    holds them). `searched`: its searched_text, when kept."""
    if query.archived and not info.archived:
        return False
    if query.archived is False and info.archived:
        return False
    if query.repository is not None and (info.selected_repository or "").lower() != query.repository.lower():
        return False
    if query.trigger is not None and (info.trigger.value if info.trigger else None) != query.trigger:
        return False
    if query.status is not None and query.status not in (info.status.value, _state(info)):
        return False
    if query.updated_since is not None or query.updated_before is not None:
        updated = format_timestamp(info.last_updated_at)
        if query.updated_since is not None and updated < query.updated_since:
            return False
        if query.updated_before is not None and updated >= query.updated_before:
            return False
    cost = info.accumulated_cost
    if query.cost_above is not None and (cost is None or cost <= query.cost_above):
        return False
    if query.cost_below is not None and (cost is None or cost >= query.cost_below):
        return False
    if query.within is not None and info.conversation_id not in query.within:
        return False
    if words:
        searched = searched_text(info) if searched is None else searched
        return all(word in searched or info.conversation_id.startswith(word) for word in words)
    return True


WAITING_FILTER = ConversationFilter(status=WAITING)


def _waits(info: ConversationInfo) -> bool:
    """Whether status:waiting shows it (kept for each row as it changes)."""
    return matches(info, WAITING_FILTER, ())


class RemoteRows:
    """Rows by id, listed newest activity first unless sorted otherwise."""

    def __init__(self) -> None:
        self.rows: dict[str, ConversationInfo] = {}
        self._searched: dict[str, str] = {}  # id -> searched_text, kept: each filter key reads them all
        self._newest_first: tuple[str, ...] | None = None  # kept until a row changes
        self._by_activity = SortedList()  # (last activity, id), oldest first: a page merged re-sorts nothing
        self._placed: dict[str, tuple[float, str]] = {}
        self._archived: set[str] = set()
        self._waiting: set[str] = set()  # (the status line counts them at every change: 11 ms a pass at 10,000)

    def __len__(self) -> int:
        return len(self.rows)

    def merge(self, infos: Iterable[ConversationInfo]) -> list[ConversationInfo]:
        """Take in what the server said; the rows that are new or changed."""
        changed = []
        for info in infos:
            if self.rows.get(info.conversation_id) != info:
                self.rows[info.conversation_id] = info
                self._searched[info.conversation_id] = searched_text(info)
                (self._archived.add if info.archived else self._archived.discard)(info.conversation_id)
                (self._waiting.add if _waits(info) else self._waiting.discard)(info.conversation_id)
                self._place(info)
                changed.append(info)
        if changed:
            self._newest_first = None
        return changed

    def drop(self, conversation_id: str) -> None:
        if self.rows.pop(conversation_id, None) is not None:
            del self._searched[conversation_id]
            self._archived.discard(conversation_id)
            self._waiting.discard(conversation_id)
            self._by_activity.remove(self._placed.pop(conversation_id))
            self._newest_first = None

    def _place(self, info: ConversationInfo) -> None:
        key = (info.last_updated_at.timestamp(), info.conversation_id)
        old = self._placed.get(info.conversation_id)
        if old != key:
            if old is not None:
                self._by_activity.remove(old)
            self._by_activity.add(key)
            self._placed[info.conversation_id] = key

    def waiting_count(self) -> int:
        return len(self._waiting)

    def waiting(self) -> list[str]:
        """Those that wait for a person (status:waiting), newest activity first."""
        waiting = self._waiting
        return [i for i in self.newest_first() if i in waiting] if waiting else []

    def newest_first(self) -> tuple[str, ...]:
        if self._newest_first is None:
            self._newest_first = tuple(conversation_id for _, conversation_id in reversed(self._by_activity))
        return self._newest_first

    def ids(self, query: ConversationFilter, sort: str, reverse: bool) -> tuple[str, ...]:
        words = (query.text or "").lower().split()
        rows, searched = self.rows, self._searched
        if replace(query, text=None, archived=False) == PLAIN and not query.archived:
            # Words alone (each key of a filter being typed): no call per row.
            archived = self._archived if query.archived is False else frozenset()
            if not words:
                chosen = [i for i in self.newest_first() if i not in archived] if archived else list(self.newest_first())
            else:
                chosen = [
                    i for i in self.newest_first()
                    if i not in archived and all(word in searched[i] or i.startswith(word) for word in words)
                ]  # fmt: skip
            if sort == "updated":
                return tuple(chosen[::-1] if reverse else chosen)
            found = [rows[i] for i in chosen]
        else:
            found = [rows[i] for i in self.newest_first() if matches(rows[i], query, words, searched[i])]
        if sort == "updated":
            pass  # in that order already
        elif sort == "created":
            found.sort(key=lambda info: info.created_at, reverse=True)
        elif sort == "title":
            found.sort(key=lambda info: info.title.casefold())
        elif sort == "status":
            found.sort(key=lambda info: STATUS_RANK.get(_state(info), 6))
        elif sort == "cost":
            found.sort(key=lambda info: info.accumulated_cost or 0.0, reverse=True)
        else:
            raise ValueError(f"unknown sort {sort!r}")
        ids = tuple(info.conversation_id for info in found)
        return ids[::-1] if reverse else ids
