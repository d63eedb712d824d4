"""The conversation metadata store: TinyDB documents in 256 shard files, with
an in-memory index for search, safe for several processes at once.

Why shards. TinyDB's Table rewrites a whole table on every write and its
default JSONStorage rewrites the whole file in place: at 100,000
conversations that is about half a second a write and a torn file if the
process dies mid-write. A write-ahead journal would make writes cheap but
leaves TinyDB as a cold snapshot the code has to replay around; shards keep
TinyDB the real database for every write (a fresh TinyDB over one small file
per operation, so its cached next id and query cache are never stale) while
bounding each write to 1/256 of the data. Each shard is replaced atomically
(DurableJSONStorage), so a crash leaves the old or the new shard, never a mix.

Several processes. Every write holds one inter-process lock while it
re-reads, changes and replaces its shard: no update is lost. After a write
the process bumps an 8-byte counter in `version`; a reader compares that
counter (one pread) and, when it moved, stats the shard files and reloads
only the ones that changed. `version()` is the cheap change signal the UI
polls.

The index keeps every document in memory (as a StoredDocument: a tuple of
its values, never mutated; callers get dict copies), a
sorted list of (last_updated_at, conversation_id) for newest-first paging and
a sorted list of ids for prefix lookup. All methods are blocking; the service
calls them from worker threads, so they are thread-safe.
"""

from __future__ import annotations

import errno
import functools
import logging
import operator
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from sortedcontainers import SortedList
from tinydb import Query, TinyDB

from .collector import made_to_last
from .durable_files import InterProcessLock
from .errors import CorruptFile, StorageError, describe_os_error
from .shard_storage import DurableJSONStorage, load_json_file
from .store_snapshot import Snapshot, read_snapshot, remove_stale_temporaries, write_snapshot
from .stored_documents import ID, POSITION, UPDATED, StoredDocument, from_document, to_dict

_STATUS, _ARCHIVED, _CREATED = POSITION["status"], POSITION["archived"], POSITION["created_at"]
_TITLE, _COST = POSITION["title"], POSITION["accumulated_cost"]
_updated = itemgetter(UPDATED)
_id = itemgetter(ID)
_status = itemgetter(_STATUS)
_archived = itemgetter(_ARCHIVED)
_AFTER_EVERY_ID = "\U0010ffff"  # shard + this sorts after every id of the shard
_second = itemgetter(1)

log = logging.getLogger(__name__)

TABLE = "conversations"
SHARD_PREFIX = "meta-"
Document = dict[str, Any]
ActivityKey = tuple[str, str]  # (last_updated_at, conversation_id)
_Signature = tuple[int, int, int]  # (inode, size, mtime_ns)


@dataclass(frozen=True)
class ConversationFilter:
    """What a search keeps. Every field is optional; set fields must all match.

    `text`: each whitespace-separated word must be a case-insensitive substring
    of the title, repository or branch, or a prefix of the id.
    `archived`: True only archived, False only not archived, None both.
    `updated_since`: an ISO timestamp (the store's format); older activity is
    left out. `updated_before`: the same; this and newer activity is left out.
    `cost_above`, `cost_below`: accumulated cost (USD) strictly above, below
    (an unknown cost matches neither).
    `within`: only these conversations (what the search index found).
    `unread`: only those with events their user has not seen: the service
    turns it into `within`.
    `event_words`, `event_path`, `event_command`: what the conversation did
    (words of its events, a path it viewed or edited, a command it ran):
    the service turns them into `within` with the search index; the store
    itself never sees them.
    """

    repository: str | None = None
    trigger: str | None = None
    status: str | None = None
    text: str | None = None
    archived: bool | None = False
    updated_since: str | None = None
    updated_before: str | None = None
    cost_above: float | None = None
    cost_below: float | None = None
    within: frozenset[str] | None = None
    unread: bool = False
    event_words: str | None = None
    event_path: str | None = None
    event_command: str | None = None

    @property
    def searches_events(self) -> bool:
        return (
            self.unread
            or self.event_words is not None
            or self.event_path is not None
            or self.event_command is not None
        )


_ACTIVE = frozenset({"STARTING", "RUNNING"})


def display_status(document: Document) -> str:
    """The status a stored document shows when no live loop says otherwise:
    an archived conversation that is not running shows ARCHIVED."""
    return _display_status(document.get("status"), document.get("archived"))


def _display_status(status: str | None, archived: bool | None) -> str:
    status = status or "STOPPED"
    if archived and status not in _ACTIVE:
        return "ARCHIVED"
    return status


WAITING = "WAITING"
FINISHED = "FINISHED"
# Filter statuses finer than ConversationStatus (`status:waiting`...):
# ConversationFilter.status compares them with display_state, not display_status.
STATE_FILTERS = frozenset({WAITING, FINISHED})
_WAITING_AGENT_STATES = frozenset({"awaiting_user_input", "awaiting_user_confirmation", "finished"})


def display_state(document: Document) -> str:
    """display_status, told finer where people look for it: WAITING when a
    loop runs but waits for the person (an answer, or the confirmation of
    an action) or ended and waits for a decision (an error, a limit: the
    inbox's set), FINISHED when no loop runs and the agent had finished its
    task. What `status:` filters and the status sort look at."""
    return state_of(display_status(document), document.get("agent_state"), document.get("attention"))


def state_of(status: str, agent_state: str | None, attention: str | None) -> str:
    """display_state from a conversation's parts (also a remote server's rows)."""
    if status in _ACTIVE and agent_state in _WAITING_AGENT_STATES:
        return WAITING
    if attention and status not in _ACTIVE and status != "ARCHIVED":
        return WAITING
    if status == "STOPPED" and agent_state == "finished":
        return FINISHED
    return status


_searched = itemgetter(*(POSITION[name] for name in ("title", "selected_repository", "selected_branch")))


def _joined_lower(title: str | None, repository: str | None, branch: str | None) -> str:
    """What words are searched in: the fields joined by NUL, lower-cased."""
    return f"{title or ''}\x00{repository or ''}\x00{branch or ''}".lower()


_HEX = frozenset("0123456789abcdef")

# matching_ids_now sorts at most this many rows by title, cost… (~5 ms).
QUICK_SORT_ROWS = 10_000


_COLUMN_NAMES = ("ids", "updated", "haystack", "repository", "trigger", "archived", "status", "state", "cost")


_row_fields = itemgetter(
    *(
        POSITION[name]
        for name in (
            "conversation_id", "last_updated_at", "selected_repository", "trigger", "archived",
            "status", "agent_state", "attention", "accumulated_cost",
        )
    )
)  # fmt: skip


def _row(document: StoredDocument) -> tuple:
    """The document's values in the columns (_COLUMN_NAMES' order), as
    _Columns.build makes them for all documents at once."""
    conversation_id, updated, repository, trigger, archived, status, agent_state, attention, cost = _row_fields(document)
    shown = _display_status(status, archived)
    state = state_of(shown, agent_state, attention)
    haystack = _joined_lower(*_searched(document))
    return (conversation_id, updated, haystack, repository, trigger, bool(archived), shown, state, cost)


_UNKNOWN = object()


def _cost_above(cost: float | None, limit: float) -> bool:
    return cost is not None and cost > limit


def _cost_below(cost: float | None, limit: float) -> bool:
    return cost is not None and cost < limit


def _flags(values: Iterable[bool]) -> int:
    """One byte per value, 1 for true, as an integer: conditions on rows
    then combine with & and | on whole columns at once."""
    return int.from_bytes(bytearray(values), "little")


@dataclass
class _Columns:
    """The index flattened newest-first into parallel lists, so a filter is a
    list comprehension over one column (a few ms per 100,000 rows) rather
    than a Python loop over documents. Built on the first filtered search,
    then kept in step row by row (list insert/pop are memmoves in C)."""

    ids: list[str]
    updated: list[str]
    haystack: list[str]
    repository: list[str | None]
    trigger: list[str | None]
    archived: list[bool]
    status: list[str]
    state: list[str]  # display_state: for status:waiting and status:finished
    cost: list[float | None]
    _recent: OrderedDict[_MatchKey, _Match] = field(default_factory=OrderedDict)
    _not_archived_flags: Any = _UNKNOWN

    @classmethod
    def build(cls, by_activity: SortedList, documents: dict[str, StoredDocument]) -> _Columns:
        """What _row gives for each document, column by column, each a
        C-level pass over all rows (~60 ms at 100,000 rather than ~180 row
        by row): a filter keystroke that
        arrives while they are built waits for them."""
        ids = list(map(_second, reversed(by_activity)))
        rows = list(map(documents.__getitem__, ids))

        def column(name: str) -> list:
            return list(map(itemgetter(POSITION[name]), rows))

        titles, repositories, branches = column("title"), column("selected_repository"), column("selected_branch")
        haystack = list(map(_joined_lower, titles, repositories, branches))
        archived = column("archived")
        shown = list(map(_display_status, column("status"), archived))
        state = list(map(state_of, shown, column("agent_state"), column("attention")))
        return cls(
            ids, column("last_updated_at"), haystack, repositories, column("trigger"),
            list(map(bool, archived)), shown, state, column("accumulated_cost"),
        )  # fmt: skip

    def insert(self, position: int, row: tuple) -> None:
        self._forget()
        for name, value in zip(_COLUMN_NAMES, row):
            getattr(self, name).insert(position, value)

    def delete(self, position: int) -> None:
        self._forget()
        for name in _COLUMN_NAMES:
            del getattr(self, name)[position]

    def _forget(self) -> None:
        """Rows changed: what was derived from them is stale."""
        self._recent.clear()
        self._not_archived_flags = _UNKNOWN

    def count_since(self, moment: str) -> int:
        """How many rows (from the newest) have activity at or after `moment`."""
        low, high = 0, len(self.updated)
        while low < high:  # `updated` is descending
            middle = (low + high) // 2
            if self.updated[middle] >= moment:
                low = middle + 1
            else:
                high = middle
        return low

    def mask(
        self, rows: Sequence[int], query: ConversationFilter, words: list[str], status_overrides: dict[str, str]
    ) -> bytes | None:
        """One byte per row of `rows` (positions, ascending): 1 where it
        matches; None when every row does. Each condition is a map() over a
        column, so the loop over rows runs in C (1-3 ms per 100,000 rows),
        and conditions combine as big integers holding those bytes."""
        if isinstance(rows, range):

            def take(column: list) -> Iterable:
                whole = rows.start == 0 and rows.stop == len(column)
                return column if whole else column[rows.start : rows.stop]
        else:

            def take(column: list) -> Iterable:
                return map(column.__getitem__, rows)

        conditions: list[int] = []
        if query.archived is True:
            conditions.append(_flags(take(self.archived)))
        elif query.archived is False and (not_archived := self._not_archived()) is not None:
            if isinstance(rows, range):
                conditions.append((not_archived >> (8 * rows.start)) & ((1 << (8 * len(rows))) - 1))
            else:
                conditions.append(_flags(map(operator.not_, take(self.archived))))
        if query.repository is not None:
            conditions.append(_flags(map(operator.eq, take(self.repository), repeat(query.repository))))
        if query.trigger is not None:
            conditions.append(_flags(map(operator.eq, take(self.trigger), repeat(query.trigger))))
        for word in words:
            if "\x00" in word:
                return bytes(len(rows))  # fields are joined by NUL in the haystack: never match across
            found = _flags(map(operator.contains, take(self.haystack), repeat(word)))
            if _HEX.issuperset(word):  # a hex word also matches the ids it begins
                found |= _flags(map(str.startswith, take(self.ids), repeat(word)))
            conditions.append(found)
        if query.within is not None:
            conditions.append(_flags(map(query.within.__contains__, take(self.ids))))
        if query.updated_before is not None:
            conditions.append(_flags(map(operator.lt, take(self.updated), repeat(query.updated_before))))
        if query.cost_above is not None:
            conditions.append(_flags(map(_cost_above, take(self.cost), repeat(query.cost_above))))
        if query.cost_below is not None:
            conditions.append(_flags(map(_cost_below, take(self.cost), repeat(query.cost_below))))
        if query.status is not None:
            status = take(self.state if query.status in STATE_FILTERS else self.status)
            shown = map(status_overrides.get, take(self.ids), status) if status_overrides else status
            conditions.append(_flags(map(operator.eq, shown, repeat(query.status))))
        if not conditions:
            return None
        return functools.reduce(operator.and_, conditions).to_bytes(len(rows), "little")

    def _not_archived(self) -> int | None:
        """The flags of the rows not archived, over the whole column (the
        default filter, so kept until a row changes); None if none is."""
        if self._not_archived_flags is _UNKNOWN:
            archived = self.archived
            self._not_archived_flags = _flags(map(operator.not_, archived)) if True in archived else None
        return self._not_archived_flags

    def matches(
        self, stop: int, query: ConversationFilter, words: list[str], status_overrides: dict[str, str]
    ) -> tuple[str, ...]:
        """The ids in [0, stop) whose row matches, in column order. The answers to the last few queries are kept until a row
        changes: a filter being typed mostly narrows an earlier answer (then
        only its rows are tested, when they are few) or goes back to one
        (backspace)."""
        key = _MatchKey(
            stop,
            query.archived,
            query.repository,
            query.trigger,
            query.status,
            frozenset(status_overrides.items()) if query.status is not None else frozenset(),
            (query.within, query.updated_before, query.cost_above, query.cost_below),
            tuple(words),
        )
        found = self._recent.get(key)
        if found is not None:
            self._recent.move_to_end(key)
            return found.ids
        rows: Sequence[int] = range(stop)
        for earlier_key, earlier in self._recent.items():
            if earlier.positions is not None and len(earlier.positions) < len(rows) and key.narrows(earlier_key):
                rows = earlier.positions
        mask = self.mask(rows, query, words, status_overrides)
        positions: Sequence[int] | None
        if isinstance(rows, range):
            # Tuples, not lists: the collector stops visiting a tuple of
            # strings after one look, but walks every list of 100,000 ids
            # again in each young-generation collection (5-40 ms pauses).
            if mask is None:
                ids = tuple(self.ids[:stop])
            else:
                ids = tuple(compress(self.ids, mask))
            few = mask is not None and len(ids) <= max(stop // 8, _FEW_ROWS)
            positions = tuple(compress(rows, mask)) if few else None
        else:
            positions = rows if mask is None else tuple(compress(rows, mask))
            ids = tuple(map(self.ids.__getitem__, positions))
        self._recent[key] = _Match(ids, positions)
        if len(self._recent) > _RECENT_MATCHES:
            self._recent.popitem(last=False)
        return ids


class _Match(NamedTuple):
    ids: tuple[str, ...]
    positions: Sequence[int] | None  # kept when they are few: the rows a narrower query tests


# Answers _Columns.matches keeps: at most 0.9 MB each at 100,000 rows.
_RECENT_MATCHES = 16
# Answers with at most this many rows (or an eighth of all) keep their positions to narrow.
_FEW_ROWS = 1000


class _MatchKey(NamedTuple):
    stop: int
    archived: bool | None
    repository: str | None
    trigger: str | None
    status: str | None
    status_overrides: frozenset
    more: tuple  # within, updated_before, cost_above, cost_below
    words: tuple[str, ...]

    def narrows(self, earlier: _MatchKey) -> bool:
        """Whether every row this query matches is among those `earlier`
        matched: the same conditions, and each earlier word implied by one
        of ours (a word containing it, though a hex word also matches ids it
        begins, so it implies only its own prefixes)."""
        return self[:7] == earlier[:7] and all(
            any(word.startswith(old) or (old in word and not _HEX.issuperset(word)) for word in self.words)
            for old in earlier.words
        )


def shard_of(conversation_id: str) -> str:
    return conversation_id[:2]


def _signature(path: Path) -> _Signature | None:
    """What tells one version of a shard file from another; None if absent."""
    try:
        return _signature_of(os.stat(path))
    except OSError:
        return None


def _signature_of(stat: os.stat_result) -> _Signature:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


class ConversationStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._version_fd = self._open_version()
        self._write_lock = InterProcessLock(self.directory / "store.lock")
        self._index_lock = threading.RLock()
        self._documents: dict[str, StoredDocument] = {}
        self._by_activity: SortedList = SortedList()
        self._ids: SortedList = SortedList()
        self._active: set[str] = set()  # stored as STARTING or RUNNING
        self._archived: set[str] = set()
        self._shard_signatures: dict[str, _Signature] = {}
        self._snapshot_signatures: dict[str, _Signature] | None = None  # what the snapshot file holds
        self._seen_version = -1
        self._columns: _Columns | None = None
        self._load_everything()

    # -- reading -----------------------------------------------------------------

    def _open_version(self) -> int:
        """The change counter's file descriptor. On a read-only data
        directory it opens read-only: reading works, writing fails clearly."""
        path = self.directory / "version"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and path.exists():
                try:
                    return os.open(path, os.O_RDONLY)
                except OSError:
                    pass
            raise StorageError(describe_os_error(error, "open the store in")) from error

    def _reopen_if_replaced(self) -> bool:
        """True (and everything reloaded) if the store directory was deleted
        or replaced under us: our counter's file is no longer the one on disk."""
        try:
            on_disk = os.stat(self.directory / "version").st_ino
        except FileNotFoundError:
            on_disk = None
        except OSError:
            return False
        if on_disk == os.fstat(self._version_fd).st_ino:
            return False
        old_fd = self._version_fd
        try:
            self._version_fd = self._open_version()
        finally:
            os.close(old_fd)
        with self._index_lock:
            self._documents.clear()
            self._by_activity = SortedList()
            self._ids = SortedList()
            self._active.clear()
            self._archived.clear()
            self._shard_signatures.clear()
            self._columns = None
            self._load_shards()
        return True

    def _shard_path(self, shard: str) -> Path:
        return self.directory / f"{SHARD_PREFIX}{shard}.json"

    def _read_version(self) -> int:
        return int.from_bytes(os.pread(self._version_fd, 8, 0) or b"\0", "little")

    def version(self) -> int:
        """A number that changes whenever any process changes the store."""
        return self._read_version()

    def _scan_shards(self) -> dict[str, _Signature]:
        signatures: dict[str, _Signature] = {}
        try:
            entries = list(os.scandir(self.directory))
        except OSError as error:
            raise StorageError(describe_os_error(error, "read")) from error
        for entry in entries:
            name = entry.name
            if name.startswith(SHARD_PREFIX) and name.endswith(".json") and len(name) == len(SHARD_PREFIX) + 7:
                try:
                    stat = entry.stat()
                except FileNotFoundError:
                    continue
                signatures[name[len(SHARD_PREFIX) : -5]] = _signature_of(stat)
        return signatures

    def _read_shard(self, shard: str) -> dict[str, StoredDocument]:
        path = self._shard_path(shard)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise StorageError(describe_os_error(error, "read")) from error
        table = load_json_file(path, raw).get(TABLE, {})
        # Converted shard by shard: the parsed dicts freed leave holes the
        # next shard's parse fills.
        try:
            documents = {document[ID]: document for document in map(from_document, table.values())}
        except (TypeError, AttributeError):  # a document that is not an object
            documents = None
        if documents is None or not all(i.__class__ is str and shard_of(i) == shard for i in documents):
            raise CorruptFile(path, "a document without a valid conversation_id")
        return documents

    def _remove_stale_temporaries(self) -> None:
        """A writer killed between writing a shard's temporary file and
        renaming it leaves the temporary behind. Shard temporaries are only
        made under the write lock, so while we hold it any that exist are
        leftovers."""
        try:
            with self._write_lock:
                for path in self.directory.glob(f".{SHARD_PREFIX}??.json.*.tmp"):
                    try:
                        path.unlink()
                    except OSError as error:
                        log.warning("could not remove %s: %s", path, error)
        except StorageError:
            pass  # a read-only directory: nothing can be cleaned, reading still works
        remove_stale_temporaries(self.directory)

    def _load_everything(self) -> None:
        self._remove_stale_temporaries()
        with made_to_last():
            self._load_shards()

    def _load_shards(self) -> None:
        """Every shard's documents into the index: from the snapshot where
        it holds a shard as it is now, else parsed. (Built with C-level
        steps over all documents at once: a Python loop per document cost
        ~0.1 s of every launch at 100,000.)"""
        with self._index_lock:
            version = self._read_version()
            signatures = self._scan_shards()
            snapshot = read_snapshot(self.directory)
            cached = snapshot.shards_as_of(signatures) if snapshot is not None else set()
            documents: list[StoredDocument] = []
            ids: list[str] = []
            if cached:
                documents = snapshot.documents  # oldest activity first: the sort below has little to do
                ids = snapshot.ids
                if len(cached) < len(snapshot.signatures):
                    documents = [document for document in documents if shard_of(document[ID]) in cached]
                    ids = [i for i in ids if shard_of(i) in cached]
            parsed = sorted(set(signatures) - cached)
            if parsed:
                documents = list(documents)
                for shard in parsed:
                    read = self._read_shard(shard)
                    documents.extend(read.values())
                    ids.extend(read)
            document_ids = list(map(_id, documents))
            self._documents = dict(zip(document_ids, documents))
            self._active = set(compress(document_ids, map(_ACTIVE.__contains__, map(_status, documents))))
            self._archived = set(compress(document_ids, map(_archived, documents)))
            self._by_activity = SortedList(zip(map(_updated, documents), document_ids))
            self._ids = SortedList(ids)
            self._shard_signatures = signatures
            self._snapshot_signatures = signatures if cached and not parsed and cached == set(snapshot.signatures) else None
            self._seen_version = version

    def _held(self, shard: str) -> dict[str, StoredDocument]:
        """The documents of `shard` the index holds (shards are id prefixes:
        the sorted ids keep each shard's together)."""
        documents = self._documents
        return {i: documents[i] for i in self._ids.irange(shard, shard + _AFTER_EVERY_ID)}

    def save_snapshot(self) -> None:
        """Write what the index holds for the next open to read (see
        store_snapshot), unless the file holds it already. Blocking: ~0.2 s
        at 100,000, most of it outside the index lock."""
        with self._index_lock:
            signatures = dict(self._shard_signatures)
            if signatures == self._snapshot_signatures:
                return
            documents = [self._documents[conversation_id] for _, conversation_id in self._by_activity]
            ids = list(self._ids)
        write_snapshot(self.directory, Snapshot(signatures, documents, ids))
        self._snapshot_signatures = signatures

    def refresh(self) -> bool:
        """Take in what other processes wrote. Returns True if anything changed.
        Costs one pread and one stat when nothing did. Also notices the
        store directory deleted or replaced, and reloads from scratch."""
        version = self._read_version()
        if version == self._seen_version:
            return self._reopen_if_replaced()
        with self._index_lock:
            signatures = self._scan_shards()
            changed = False
            for shard in set(signatures) | set(self._shard_signatures):
                if signatures.get(shard) != self._shard_signatures.get(shard):
                    changed |= self._apply_shard(shard, self._read_shard(shard))
            self._shard_signatures = signatures
            self._seen_version = version
            return changed

    # -- the index ---------------------------------------------------------------

    def _unindex(self, conversation_id: str) -> None:
        old = self._documents.pop(conversation_id)
        key = (old[UPDATED], conversation_id)
        if self._columns is not None:
            self._columns.delete(len(self._by_activity) - 1 - self._by_activity.index(key))
        self._by_activity.remove(key)
        self._ids.remove(conversation_id)
        self._active.discard(conversation_id)
        self._archived.discard(conversation_id)

    def _index(self, conversation_id: str, document: StoredDocument) -> None:
        self._documents[conversation_id] = document
        key = (document[UPDATED], conversation_id)
        self._by_activity.add(key)
        self._ids.add(conversation_id)
        if document[_STATUS] in _ACTIVE:
            self._active.add(conversation_id)
        if document[_ARCHIVED]:
            self._archived.add(conversation_id)
        if self._columns is not None:
            position = len(self._by_activity) - 1 - self._by_activity.index(key)
            self._columns.insert(position, _row(document))

    def _apply_shard(self, shard: str, documents: dict[str, StoredDocument]) -> bool:
        """Replace one shard's documents in the index, touching only those that
        differ. Returns True if any did."""
        old_documents = self._held(shard)
        changed = False
        for conversation_id in old_documents.keys() - documents.keys():
            self._unindex(conversation_id)
            changed = True
        for conversation_id, document in documents.items():
            old = old_documents.get(conversation_id)
            if old != document:
                if old is not None:
                    self._unindex(conversation_id)
                self._index(conversation_id, document)
                changed = True
        return changed

    # -- queries -----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._documents)

    def get(self, conversation_id: str) -> Document | None:
        """A copy of the stored document, or None."""
        document = self._documents.get(conversation_id)
        return to_dict(document) if document is not None else None

    def ids_with_prefix(self, prefix: str, limit: int = 2) -> list[str]:
        with self._index_lock:
            found = []
            for conversation_id in self._ids.irange(minimum=prefix):
                if not conversation_id.startswith(prefix) or len(found) == limit:
                    break
                found.append(conversation_id)
            return found

    def active_documents(self) -> list[Document]:
        """Documents stored as STARTING or RUNNING (few, even in a big store).
        Without the index lock, so a keystroke never waits for a thread's
        refresh: list() copies the set in one step under the GIL."""
        found = map(self._documents.get, list(self._active))
        return [to_dict(document) for document in found if document is not None]

    def all_ids(self) -> list[str]:
        with self._index_lock:
            return list(self._ids)

    def _snapshot(self) -> _Columns:
        with self._index_lock:
            if self._columns is None:
                with made_to_last():
                    self._columns = _Columns.build(self._by_activity, self._documents)
            return self._columns

    def search(
        self,
        query: ConversationFilter,
        limit: int,
        after: ActivityKey | None = None,
        status_overrides: dict[str, str] | None = None,
    ) -> tuple[list[Document], ActivityKey | None]:
        """Up to `limit` matching documents, newest activity first, starting
        after `after` (the key a previous page returned). `status_overrides`
        replaces the stored status of some conversations (live loops) for the
        status filter. Returns copies of the documents and the key to continue
        from, or None on the last page."""
        with self._index_lock:
            columns = self._snapshot()
            start = 0
            if after is not None:
                # The snapshot is newest first; the sorted list oldest first.
                start = len(columns.ids) - self._by_activity.bisect_left(after)
                start = max(0, min(start, len(columns.ids)))
            stop = len(columns.ids)
            if query.updated_since is not None:
                stop = columns.count_since(query.updated_since)
            matcher = self._matcher(query, status_overrides)
            found: list[int] = []
            chunk = max(64, limit + 1)
            while start < stop and len(found) <= limit:
                end = min(stop, start + chunk)
                found.extend(matcher(start, end))
                start = end
                chunk *= 4
            documents = [to_dict(self._documents[columns.ids[position]]) for position in found[: limit + 1]]
        if len(documents) > limit:
            last = documents[limit - 1]
            return documents[:limit], (last["last_updated_at"], last["conversation_id"])
        return documents, None

    def warm(self) -> None:
        """Build the search columns now (a worker thread at start-up), so the
        first filtered search does not pay for it."""
        self._snapshot()

    def matching_ids(
        self,
        query: ConversationFilter,
        status_overrides: dict[str, str] | None = None,
        sort: str = "updated",
    ) -> tuple[str, ...]:
        """Every matching id in display order: "updated" (newest activity
        first), "created" (newest first), "title", "status" or "cost"
        (highest first). What a list view of all conversations shows."""
        with self._index_lock:
            plain = ConversationFilter(archived=query.archived)
            if query == plain and sort == "updated" and self._columns is None:
                # The first paint: no need to wait for the columns.
                newest_first = map(_second, reversed(self._by_activity))
                archived, wanted = self._archived, query.archived
                if wanted is None or (not wanted and not archived):
                    return tuple(newest_first)
                if wanted:
                    return tuple(i for i in newest_first if i in archived)
                return tuple(i for i in newest_first if i not in archived)
            columns = self._snapshot()
            stop = len(columns.ids) if query.updated_since is None else columns.count_since(query.updated_since)
            words = (query.text or "").lower().split()
            matched = columns.matches(stop, query, words, status_overrides or {})
            if sort == "updated":
                return matched
            documents = self._documents
            if sort == "created":
                ordered = sorted(matched, key=lambda i: documents[i][_CREATED], reverse=True)
            elif sort == "title":
                ordered = sorted(matched, key=lambda i: (documents[i][_TITLE] or "").casefold())
            elif sort == "status":
                rank = {"WAITING": 0, "RUNNING": 1, "STARTING": 2, "ERROR": 3, "FINISHED": 4, "STOPPED": 4, "ARCHIVED": 5}
                statuses = status_overrides or {}
                ordered = sorted(matched, key=lambda i: rank.get(statuses.get(i) or _display_status(documents[i][_STATUS], documents[i][_ARCHIVED]), 6))
            elif sort == "cost":
                ordered = sorted(matched, key=lambda i: documents[i][_COST] or 0.0, reverse=True)
            else:
                raise ValueError(f"unknown sort {sort!r}")
            return tuple(ordered)

    def matching_ids_now(
        self,
        query: ConversationFilter,
        status_overrides: dict[str, str] | None = None,
        sort: str = "updated",
    ) -> tuple[str, ...] | None:
        """matching_ids if it can answer at once, for a keystroke on the UI's
        event loop; None when it cannot: another thread holds the index (a
        refresh or a write), the columns are not built yet, or sorting by
        anything but activity could take more than a frame."""
        if not self._index_lock.acquire(blocking=False):
            return None
        try:
            first_paint = query == ConversationFilter(archived=query.archived) and sort == "updated"
            if self._columns is None and not first_paint:
                return None
            if sort != "updated" and len(self._documents) > QUICK_SORT_ROWS:
                return None
            return self.matching_ids(query, status_overrides, sort)
        finally:
            self._index_lock.release()

    def locate(self, ids: Sequence[str], conversation_id: str, sort: str = "updated", reverse: bool = False) -> int | None:
        """Where `conversation_id` is in `ids`, an answer of matching_ids in
        that sort order (`reverse`: turned around); None if it is not there.
        By activity it is a binary search (17 steps at 100,000 rows instead
        of a scan)."""
        with self._index_lock:
            documents = self._documents
            document = documents.get(conversation_id)
            if sort != "updated" or document is None:
                try:
                    return ids.index(conversation_id)
                except ValueError:
                    return None
            wanted = (document[UPDATED], conversation_id)
            low, high = 0, len(ids)
            while low < high:  # newest first: keys descend (ascend when reversed)
                middle = (low + high) // 2
                other = documents.get(ids[middle])
                if other is None:  # removed since the answer was made: not ordered any more
                    try:
                        return ids.index(conversation_id)
                    except ValueError:
                        return None
                key = (other[UPDATED], ids[middle])
                if (key < wanted) if reverse else (key > wanted):
                    low = middle + 1
                else:
                    high = middle
            return low if low < len(ids) and ids[low] == conversation_id else None

    def peek(self, conversation_id: str) -> Document | None:
        """The stored document (a copy) without taking the index lock: for
        rendering rows on the UI's event loop."""
        document = self._documents.get(conversation_id)
        return to_dict(document) if document is not None else None

    def revision(self, conversation_id: str) -> object | None:
        """A token of the stored document as it is now (None: no such
        conversation): the same object (`is`) until the document changes.
        Opaque: compare it, never read it. Without the index lock."""
        return self._documents.get(conversation_id)

    def count(self, query: ConversationFilter, status_overrides: dict[str, str] | None = None) -> int:
        """How many documents match."""
        with self._index_lock:
            columns = self._snapshot()
            stop = len(columns.ids) if query.updated_since is None else columns.count_since(query.updated_since)
            words = (query.text or "").lower().split()
            return len(columns.matches(stop, query, words, status_overrides or {}))

    def _matcher(
        self, query: ConversationFilter, status_overrides: dict[str, str] | None
    ) -> Callable[[int, int], list[int]]:
        """A function giving the positions in [start, stop) of the columns
        whose row matches."""
        words = (query.text or "").lower().split()
        columns = self._snapshot()
        overrides = status_overrides or {}

        def positions(start: int, stop: int) -> list[int]:
            rows = range(start, stop)
            mask = columns.mask(rows, query, words, overrides)
            return list(rows) if mask is None else list(compress(rows, mask))

        return positions

    def iter_documents(self) -> Iterator[Document]:
        with self._index_lock:
            snapshot = list(self._documents.values())
        for document in snapshot:
            yield to_dict(document)

    # -- writing -----------------------------------------------------------------

    def _write(self, conversation_id: str, operation: Callable[[Any], Any]) -> Any:
        """Run a TinyDB operation on the shard of `conversation_id` (the one
        document it changes) under the inter-process lock, then take the
        written shard into the index and signal other processes."""
        shard = shard_of(conversation_id)
        with self._write_lock:
            with self._index_lock:
                # No other process wrote the shard since it was indexed: its
                # other documents are those held, and need no converting.
                unchanged = _signature(self._shard_path(shard)) == self._shard_signatures.get(shard)
                held = self._held(shard) if unchanged else {}
            storage_holder: list[DurableJSONStorage] = []

            def make_storage(path: Path) -> DurableJSONStorage:
                storage = DurableJSONStorage(path)
                storage_holder.append(storage)
                return storage

            database = TinyDB(self._shard_path(shard), storage=make_storage)
            result = operation(database.table(TABLE))
            storage = storage_holder[0]
            if storage.written is not None:
                documents = {}
                for document in storage.written.get(TABLE, {}).values():
                    written_id = document["conversation_id"]
                    kept = held.get(written_id) if written_id != conversation_id else None
                    documents[written_id] = kept if kept is not None else from_document(document)
                with self._index_lock:
                    self._apply_shard(shard, documents)
                    signature = _signature(storage.path)
                    if signature is None:
                        self._shard_signatures.pop(shard, None)
                    else:
                        self._shard_signatures[shard] = signature
                    self._bump_version()
            return result

    def _bump_version(self) -> None:
        # A hint, not data: no fsync. Readers compare for inequality, so a
        # counter that went back after a power cut still reads as "changed".
        version = self._read_version() + 1
        try:
            os.pwrite(self._version_fd, version.to_bytes(8, "little"), 0)
        except OSError as error:  # the write itself is done and durable
            log.warning("could not signal the change to other processes: %s", error)
            return
        if self._seen_version == version - 1:
            self._seen_version = version

    def insert(self, document: Document) -> None:
        """Store a new document. Raises ValueError if its id exists already."""
        conversation_id = document["conversation_id"]

        def operation(table: Any) -> None:
            if table.contains(Query().conversation_id == conversation_id):
                raise ValueError(f"conversation {conversation_id} exists already")
            table.insert(_copy(document))

        self._write(conversation_id, operation)

    def update(self, conversation_id: str, change: Callable[[Document], Document | None]) -> Document | None:
        """Apply `change` to the current document (read under the lock, so no
        other process's update is lost) and store what it returns. `change`
        returning None stores nothing. Returns the stored document, or None if
        there is no such conversation or nothing was stored."""

        stored: list[Document] = []

        def transform(document: Document) -> None:
            replacement = change(_copy(document))
            if replacement is None:
                raise _NothingToStore
            document.clear()
            document.update(replacement)
            stored.append(replacement)

        def operation(table: Any) -> Document | None:
            # The shard is parsed once per operation, so contains() is cheap,
            # and it keeps a missing id from rewriting the shard.
            condition = Query().conversation_id == conversation_id
            if not table.contains(condition):
                return None
            try:
                table.update(transform, condition)
            except _NothingToStore:
                return None
            return _copy(stored[0]) if stored else None

        return self._write(conversation_id, operation)

    def remove(self, conversation_id: str) -> bool:
        """Remove a document. Returns False if there was none (nothing written)."""

        def operation(table: Any) -> bool:
            condition = Query().conversation_id == conversation_id
            return table.contains(condition) and bool(table.remove(condition))

        return self._write(conversation_id, operation)

    def close(self) -> None:
        """Idempotent: a second close must not close an fd since reused."""
        fd, self._version_fd = self._version_fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def _copy(document: Document) -> Document:
    """An independent copy: documents are flat but for lists (pr_number)."""
    return {key: list(value) if isinstance(value, list) else value for key, value in document.items()}


class _NothingToStore(Exception):
    """Raised inside a TinyDB update to leave the shard unwritten."""
