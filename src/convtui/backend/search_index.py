"""Search by what a conversation did: a full-text index (SQLite FTS5, from
the standard library) of every event's words (messages, commands, outputs,
thoughts), the paths the agent viewed or edited, and the commands it ran.
TinyDB stays the metadata store; this answers "which conversations" and the
metadata filters, sort and paging do the rest.

The event logs are the truth and the index can always be rebuilt from them
(`doctor --repair`, or `rebuild`). It is kept current as events are appended
(one transaction per append; WAL with synchronous=NORMAL: no fsync, a crash
may lose the last appends' index entries, never the events), and each
conversation's last indexed event id is kept, so `catch_up` adds what an
append left out (a crash between the log's write and the index's, an older
convtui) without rereading what is indexed.

The index holds no copy of the text (a contentless FTS5 table, positions
kept per column only): each row's id says whose event it is (the
conversation's number, shifted, plus the event id), so a query reads
posting lists and never the text. Queries are built from the person's
words, split into the tokens the index holds, each quoted and a prefix:
FTS5 syntax in them (quotes, `*`, `NEAR`, parentheses) is only text, so no
query can be malformed."""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path

from .events import EventDict

log = logging.getLogger(__name__)

INDEX_FILE = "search.sqlite3"
_TEXT_MAX = 20_000  # characters of one event indexed (a huge output's start is enough to find it)
_BUSY_MS = 5_000

_EVENT_BITS = 24  # a row id is the conversation's number << 24 | the event id
_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS event_words USING fts5(
    words, paths, commands, content = '', detail = column, tokenize = 'unicode61'
);
CREATE TABLE IF NOT EXISTS conversations (
    number INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL UNIQUE, last_event_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS facts (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_TOKEN = re.compile(r"[^\W_]+")  # what unicode61 keeps of a text: letters and digits


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def event_fields(event: EventDict) -> tuple[str, str, str]:
    """(words, paths, commands) of one event."""
    args = event.get("args") or {}
    extras = event.get("extras") or {}
    words = [event.get("message") or "", event.get("content") or ""]
    words += _strings({key: value for key, value in args.items() if key not in ("image_urls",)})
    paths = [value for value in (args.get("path"), extras.get("path")) if isinstance(value, str)]
    commands = [value for value in (args.get("command"), args.get("code")) if isinstance(value, str)]
    if event.get("action") == "edit" and args.get("command") in ("create", "str_replace", "insert", "view", "undo_edit"):
        commands = []  # the editor's sub-command is no shell command
    if event.get("observation") == "run" and isinstance(extras.get("command"), str):
        commands.append(extras["command"])
    text = "\n".join(word for word in words if word)[:_TEXT_MAX]
    return text, "\n".join(paths), "\n".join(commands)


def match_expression(column: str, text: str) -> str | None:
    """An FTS5 query for `column` holding every token of `text`, the last
    one as a prefix when it has three characters or more (what is being
    typed: "goldbach conj" finds Goldbach's conjecture; a shorter prefix
    would match most of the index); None when `text` has no token. Never
    malformed: tokens are letters and digits, quoted."""
    tokens = _TOKEN.findall(text)
    if not tokens:
        return None
    terms = [f'"{token}"' for token in tokens]
    if len(tokens[-1]) >= 3:
        terms[-1] += "*"
    return f"{column} : ({' AND '.join(terms)})"


class SearchIndex:
    """One data directory's index. Thread-safe; other processes share the
    file (SQLite's locking)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(path, timeout=_BUSY_MS / 1000, check_same_thread=False, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def last_indexed(self, conversation_id: str) -> int:
        with self._lock:
            row = self._connection.execute(
                "SELECT last_event_id FROM conversations WHERE conversation_id = ?", (conversation_id,)
            ).fetchone()
        return row[0] if row else -1

    def add(self, conversation_id: str, events: Iterable[EventDict]) -> None:
        """Index `events` (in id order) of a conversation; events at or below
        its last indexed id are skipped, so adding twice changes nothing."""
        with self._lock:
            connection = self._connection
            connection.execute("BEGIN IMMEDIATE")
            try:
                row = connection.execute(
                    "SELECT number, last_event_id FROM conversations WHERE conversation_id = ?", (conversation_id,)
                ).fetchone()
                if row is None:
                    number = connection.execute(
                        "INSERT INTO conversations (conversation_id, last_event_id) VALUES (?, -1)", (conversation_id,)
                    ).lastrowid
                    last = -1
                else:
                    number, last = row
                fresh = [event for event in events if event.get("id", -1) > last]
                if fresh:
                    base = number << _EVENT_BITS
                    connection.executemany(
                        "INSERT INTO event_words (rowid, words, paths, commands) VALUES (?, ?, ?, ?)",
                        [(base + (event["id"] & ((1 << _EVENT_BITS) - 1)), *event_fields(event)) for event in fresh],
                    )
                    connection.execute(
                        "UPDATE conversations SET last_event_id = ? WHERE number = ?", (fresh[-1]["id"], number)
                    )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    def latest_event_ids(self) -> dict[str, int]:
        """Each indexed conversation's newest event id."""
        with self._lock:
            return dict(self._connection.execute("SELECT conversation_id, last_event_id FROM conversations").fetchall())

    def remove(self, conversation_id: str) -> None:
        """Forget a conversation: its rows stay in the posting lists (a
        contentless index cannot delete them) but name no conversation any
        more; a rebuild drops them."""
        with self._lock:
            self._connection.execute("DELETE FROM conversations WHERE conversation_id = ?", (conversation_id,))

    def matching(self, words: str | None = None, path: str | None = None, command: str | None = None) -> set[str]:
        """The conversations with an event holding every word of `words`,
        a viewed or edited path with every token of `path`, a command with
        every token of `command` (each given condition; together: all of
        them, possibly in different events). Each token is a prefix."""
        expressions = [
            expression
            for column, text in (("words", words), ("paths", path), ("commands", command))
            if text is not None and (expression := match_expression(column, text)) is not None
        ]
        found: set[str] | None = None
        with self._lock:
            for expression in expressions:
                rows = self._connection.execute(
                    "SELECT conversation_id FROM conversations WHERE number IN "
                    f"(SELECT rowid >> {_EVENT_BITS} FROM event_words WHERE event_words MATCH ?)",
                    (expression,),
                ).fetchall()
                ids = {row[0] for row in rows}
                found = ids if found is None else found & ids
        return found or set()

    def is_built(self) -> bool:
        """Whether every event log was indexed once (appends keep it so)."""
        with self._lock:
            return self._connection.execute("SELECT 1 FROM facts WHERE name = 'built'").fetchone() is not None

    def fill(self, logs: Iterable[tuple[str, Iterable[EventDict]]]) -> int:
        """Index what the index lacks of each log, then mark it built; how
        many events were added."""
        count = 0
        for conversation_id, events in logs:
            last = self.last_indexed(conversation_id)
            fresh = [event for event in events if event.get("id", -1) > last]
            if fresh:
                self.add(conversation_id, fresh)
                count += len(fresh)
        with self._lock:
            self._connection.execute("INSERT OR REPLACE INTO facts (name, value) VALUES ('built', '1')")
        return count

    def rebuild(self, logs: Iterable[tuple[str, Iterable[EventDict]]]) -> int:
        """Start afresh from the event logs; how many events were indexed."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            self._connection.execute("INSERT INTO event_words (event_words) VALUES ('delete-all')")
            self._connection.execute("DELETE FROM conversations")
            self._connection.execute("DELETE FROM facts")
            self._connection.execute("COMMIT")
        return self.fill(logs)

    def check(self) -> str | None:
        """What is wrong with the file (None: nothing)."""
        with self._lock:
            try:
                problems = [row[0] for row in self._connection.execute("PRAGMA quick_check").fetchall()]
                self._connection.execute("INSERT INTO event_words(event_words) VALUES ('integrity-check')")
            except sqlite3.DatabaseError as error:
                return str(error)
        return None if problems == ["ok"] else "; ".join(problems)[:200]
