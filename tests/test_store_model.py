"""A model test of the store: random inserts, updates, removes, reopenings
and writes by a second store object on the same directory, checked against a
plain dict after every step (get, paging, filters, count)."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from convtui.backend.models import ConversationMetadata, ConversationStatus, format_timestamp
from convtui.backend import stored_documents
from convtui.backend.store import ConversationFilter, ConversationStore
from convtui.backend.store_snapshot import SNAPSHOT_FILE

BASE = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
HEX = "0123456789abcdef"
# Few shard prefixes, so shards hold several documents and id prefixes clash.
IDS = st.builds(lambda prefix, rest: prefix + rest, st.sampled_from(["00", "0a", "ab", "ff"]), st.text(HEX, min_size=30, max_size=30))
# Few distinct moments, so activity ties (broken by id) are common.
MOMENTS = st.integers(0, 12).map(lambda seconds: BASE + timedelta(seconds=seconds))
TITLES = st.text("abcABC xyzé É01-/", min_size=1, max_size=12)
REPOSITORIES = [None, "org/repo", "Org/Other", "ab/cd"]
BRANCHES = [None, "main", "Feature/ab", "dev"]
STATUSES = [status.value for status in ConversationStatus]
AGENT_STATES = [None, "running", "awaiting_user_input", "awaiting_user_confirmation", "finished", "error"]
# What the status filter takes: the statuses and the finer states (status:waiting, status:finished).
FILTER_STATUSES = [*STATUSES, "WAITING", "FINISHED"]
TRIGGERS = [None, "gui", "cli"]

FIELDS = {
    "title": TITLES,
    "status": st.sampled_from(STATUSES),
    "agent_state": st.sampled_from(AGENT_STATES),
    "archived": st.booleans(),
    "selected_repository": st.sampled_from(REPOSITORIES),
    "selected_branch": st.sampled_from(BRANCHES),
    "trigger": st.sampled_from(TRIGGERS),
    "last_updated_at": MOMENTS.map(format_timestamp),
}


@st.composite
def changes(draw: st.DrawFn) -> dict:
    """New values for one to three fields."""
    names = draw(st.lists(st.sampled_from(sorted(FIELDS)), min_size=1, max_size=3, unique=True))
    return {name: draw(FIELDS[name]) for name in names}


@st.composite
def documents(draw: st.DrawFn, conversation_id: st.SearchStrategy[str] = IDS) -> dict:
    created = draw(MOMENTS)
    return ConversationMetadata(
        conversation_id=draw(conversation_id),
        title=draw(TITLES),
        selected_repository=draw(st.sampled_from(REPOSITORIES)),
        selected_branch=draw(st.sampled_from(BRANCHES)),
        status=draw(st.sampled_from(STATUSES)),
        agent_state=draw(st.sampled_from(AGENT_STATES)),
        archived=draw(st.booleans()),
        trigger=draw(st.sampled_from(TRIGGERS)),
        created_at=created,
        last_updated_at=draw(MOMENTS),
    ).to_document()


def shown_status(document: dict) -> str:
    """What the status filter compares: an archived conversation that is not
    starting or running shows ARCHIVED."""
    status = document.get("status") or "STOPPED"
    if document.get("archived") and status not in ("STARTING", "RUNNING"):
        return "ARCHIVED"
    return status


def shown_state(document: dict) -> str:
    """What status:waiting and status:finished compare: a loop running but
    waiting for the person; a finished agent with no loop running."""
    status = shown_status(document)
    agent_state = document.get("agent_state")
    if status in ("STARTING", "RUNNING") and agent_state in ("awaiting_user_input", "awaiting_user_confirmation", "finished"):
        return "WAITING"
    if status == "STOPPED" and agent_state == "finished":
        return "FINISHED"
    return status


def matches(document: dict, query: ConversationFilter, overrides: dict[str, str]) -> bool:
    conversation_id = document["conversation_id"]
    if query.archived is not None and bool(document.get("archived")) != query.archived:
        return False
    if query.repository is not None and document.get("selected_repository") != query.repository:
        return False
    if query.trigger is not None and document.get("trigger") != query.trigger:
        return False
    shown = shown_state if query.status in ("WAITING", "FINISHED") else shown_status
    if query.status is not None and overrides.get(conversation_id, shown(document)) != query.status:
        return False
    if query.updated_since is not None and document["last_updated_at"] < query.updated_since:
        return False
    for word in (query.text or "").split():
        word = word.lower()
        fields = (document.get("title"), document.get("selected_repository"), document.get("selected_branch"))
        if not any(word in (field or "").lower() for field in fields) and not conversation_id.startswith(word):
            return False
    return True


def newest_first(found: list[dict]) -> list[dict]:
    return sorted(found, key=lambda d: (d["last_updated_at"], d["conversation_id"]), reverse=True)


def page_through(store: ConversationStore, query: ConversationFilter, limit: int, overrides: dict[str, str]) -> list[dict]:
    """Every page of a search; checks that pages are full but the last."""
    pages: list[list[dict]] = []
    after = None
    for _ in range(len(store) + 2):
        page, after = store.search(query, limit, after, overrides)
        pages.append(page)
        if after is None:
            break
    else:
        raise AssertionError("paging did not end")
    assert all(len(page) == limit for page in pages[:-1]), [len(page) for page in pages]
    assert len(pages[-1]) <= limit
    assert pages[-1] or len(pages) == 1, "an empty last page after a full one"
    return [document for page in pages for document in page]


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="convtui-model-"))
        self.store = ConversationStore(self.directory)
        self.other: ConversationStore | None = None
        self.model: dict[str, dict] = {}
        self.removed: set[str] = set()

    def teardown(self) -> None:
        for store in (self.store, self.other):
            if store is not None:
                store.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    # -- writing through the store under test -------------------------------------------

    @initialize(initial=st.lists(documents(), max_size=4, unique_by=lambda d: d["conversation_id"]))
    def start(self, initial: list[dict]) -> None:
        for document in initial:
            self.store.insert(document)
            self.model[document["conversation_id"]] = document

    @rule(document=documents())
    def insert(self, document: dict) -> None:
        conversation_id = document["conversation_id"]
        if conversation_id in self.model:
            with pytest.raises(ValueError):
                self.store.insert(document)
        else:
            self.store.insert(document)
            self.model[conversation_id] = document
            self.removed.discard(conversation_id)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def insert_existing_id(self, data: st.DataObject) -> None:
        conversation_id = data.draw(st.sampled_from(sorted(self.model)))
        with pytest.raises(ValueError):
            self.store.insert(data.draw(documents(st.just(conversation_id))))

    def _pick(self, data: st.DataObject) -> str:
        known = sorted(self.model | dict.fromkeys(self.removed))
        return data.draw(st.sampled_from(known) if known else IDS)

    @rule(data=st.data())
    def update(self, data: st.DataObject) -> None:
        conversation_id = self._pick(data)
        new = data.draw(changes())
        stored = self.store.update(conversation_id, lambda document: {**document, **new})
        if conversation_id in self.model:
            self.model[conversation_id] = {**self.model[conversation_id], **new}
            assert stored == self.model[conversation_id]
        else:
            assert stored is None

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def update_storing_nothing(self, data: st.DataObject) -> None:
        conversation_id = data.draw(st.sampled_from(sorted(self.model)))
        seen = []
        assert self.store.update(conversation_id, lambda document: seen.append(dict(document))) is None
        assert seen == [self.model[conversation_id]]  # the change saw the current document

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        conversation_id = self._pick(data)
        assert self.store.remove(conversation_id) is (conversation_id in self.model)
        if self.model.pop(conversation_id, None) is not None:
            self.removed.add(conversation_id)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = ConversationStore(self.directory)
        # The first paint's answer, before any search builds the columns.
        for archived in (None, True, False):
            query = ConversationFilter(archived=archived)
            expected = [d["conversation_id"] for d in newest_first(self.model.values()) if matches(d, query, {})]
            assert list(self.store.matching_ids(query)) == expected

    @rule(by_the_other=st.booleans())
    def save_snapshot(self, by_the_other: bool) -> None:
        """The next open reads it; written by a store that may be behind
        (the other one has not refreshed since this one wrote)."""
        store = self.other if by_the_other and self.other is not None else self.store
        store.save_snapshot()

    @rule(data=st.data())
    def damage_snapshot(self, data: st.DataObject) -> None:
        path = self.directory / SNAPSHOT_FILE
        raw = bytearray(path.read_bytes()) if path.exists() else bytearray()
        if not raw:  # none written yet, or an earlier step truncated it to nothing
            return
        how = data.draw(st.sampled_from(["truncate", "flip", "foreign"]))
        if how == "truncate":
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        elif how == "flip":
            raw[data.draw(st.integers(0, len(raw) - 1))] ^= 0x20
        else:
            raw = b"convtui-store-snapshot 0 py2.7\n" + raw
        path.write_bytes(bytes(raw))

    # -- another store object on the same directory --------------------------------------

    @rule(data=st.data())
    def other_store_writes(self, data: st.DataObject) -> None:
        if self.other is None:
            self.other = ConversationStore(self.directory)
        before = dict(self.model)
        version = self.store.version()
        wrote = False
        for _ in range(data.draw(st.integers(1, 3))):
            kind = data.draw(st.sampled_from(["insert", "update", "remove"]))
            if kind == "insert" or not self.model:
                document = data.draw(documents())
                if document["conversation_id"] not in self.model:
                    self.other.insert(document)
                    wrote = True
                    self.model[document["conversation_id"]] = document
                    self.removed.discard(document["conversation_id"])
            elif kind == "update":
                conversation_id = data.draw(st.sampled_from(sorted(self.model)))
                new = data.draw(changes())
                self.other.update(conversation_id, lambda document: {**document, **new})
                wrote = True
                self.model[conversation_id] = {**self.model[conversation_id], **new}
            else:
                conversation_id = data.draw(st.sampled_from(sorted(self.model)))
                assert self.other.remove(conversation_id)
                wrote = True
                del self.model[conversation_id]
                self.removed.add(conversation_id)
        assert (self.store.version() != version) is wrote
        assert self.store.refresh() is (self.model != before)
        assert self.store.refresh() is False
        self.other.refresh()
        assert {i: self.other.get(i) for i in self.model} == self.model
        assert sorted(self.other.all_ids()) == sorted(self.model)

    # -- searching -----------------------------------------------------------------------

    @rule(data=st.data())
    def search(self, data: st.DataObject) -> None:
        sources = [*REPOSITORIES[1:], *BRANCHES[1:], "xyz", "É"]
        for document in self.model.values():
            sources += [document["title"], document["conversation_id"][:8]]
        word = st.builds(
            lambda source, start, length, upper: (source[start : start + length].upper() if upper else source[start : start + length]),
            st.sampled_from(sources),
            st.integers(0, 6),
            st.integers(1, 6),
            st.booleans(),
        ).map(lambda w: "".join(w.split())).filter(bool)
        text = data.draw(st.none() | st.lists(word, max_size=3).map(" ".join))
        query = ConversationFilter(
            repository=data.draw(st.none() | st.sampled_from(REPOSITORIES[1:])),
            trigger=data.draw(st.none() | st.sampled_from(TRIGGERS[1:])),
            status=data.draw(st.none() | st.sampled_from(FILTER_STATUSES)),
            text=text,
            archived=data.draw(st.sampled_from([None, True, False])),
            updated_since=data.draw(st.none() | MOMENTS.map(format_timestamp)),
        )
        overrides = {}
        if self.model:
            overrides = data.draw(
                st.dictionaries(
                    st.sampled_from(sorted(self.model)), st.sampled_from(["RUNNING", "STOPPED", "WAITING"]), max_size=2
                )
            )
        limit = data.draw(st.integers(1, 5))
        expected = newest_first([d for d in self.model.values() if matches(d, query, overrides)])
        assert page_through(self.store, query, limit, overrides) == expected, query
        assert self.store.count(query, overrides) == len(expected)

    @rule(data=st.data())
    def type_a_filter(self, data: st.DataObject) -> None:
        """A filter typed a character at a time after some of its tails, then
        erased, then typed again after a write: each answer may narrow or
        reuse an earlier one, and must still be exact."""
        sources = ["org/re", "main", "b c", "AB", "É"]
        sources += [d["title"] for d in self.model.values()] + [i[:6] for i in self.model]
        text = data.draw(st.lists(st.sampled_from(sources), min_size=1, max_size=3).map(" ".join))
        base = ConversationFilter(
            status=data.draw(st.none() | st.sampled_from(FILTER_STATUSES)),
            archived=data.draw(st.sampled_from([None, True, False])),
        )
        overrides = {}
        if self.model:
            overrides = data.draw(st.dictionaries(st.sampled_from(sorted(self.model)), st.just("RUNNING"), max_size=2))

        def check(typed: str) -> None:
            query = dataclasses.replace(base, text=typed)
            expected = [d["conversation_id"] for d in newest_first(self.model.values()) if matches(d, query, overrides)]
            assert list(self.store.matching_ids(query, overrides)) == expected, typed
            assert self.store.count(query, overrides) == len(expected), typed
            for conversation_id in self.model:
                where = expected.index(conversation_id) if conversation_id in expected else None
                assert self.store.locate(expected, conversation_id) == where, typed
                flipped = len(expected) - 1 - where if where is not None else None
                assert self.store.locate(expected[::-1], conversation_id, reverse=True) == flipped, typed

        tails = [text[start:] for start in range(len(text) - 1, 0, -1)]
        typed = [text[:length] for length in range(1, len(text) + 1)]
        for prefix in tails + typed + typed[-2::-1]:
            check(prefix)
        if self.model:
            self.update(data)  # a row changes: what was kept about the rows is stale
            for prefix in typed:
                check(prefix)

    # -- what must hold after every step -------------------------------------------------

    @invariant()
    def get_matches_the_model(self) -> None:
        assert len(self.store) == len(self.model)
        assert sorted(self.store.all_ids()) == sorted(self.model)
        for conversation_id, document in self.model.items():
            assert self.store.get(conversation_id) == document
        for conversation_id in self.removed:
            assert self.store.get(conversation_id) is None

    @invariant()
    def each_filter_alone_agrees_with_the_model(self) -> None:
        queries = [ConversationFilter(archived=archived) for archived in (None, True, False)]
        queries += [ConversationFilter(status=status, archived=None) for status in FILTER_STATUSES]
        queries += [ConversationFilter(repository=repository, archived=None) for repository in REPOSITORIES[1:]]
        queries += [ConversationFilter(trigger=trigger, archived=None) for trigger in TRIGGERS[1:]]
        words = ["AB", "main", "É", "org/", "b c", "cd/ab"]
        for conversation_id in sorted(self.model)[:3]:
            words += [conversation_id[:1], conversation_id[:3].upper(), conversation_id[:32]]
        queries += [ConversationFilter(text=text, archived=None) for text in words]
        moments = sorted({d["last_updated_at"] for d in self.model.values()})[:3]
        queries += [ConversationFilter(updated_since=moment, archived=None) for moment in moments]
        for query in queries:
            expected = newest_first([d for d in self.model.values() if matches(d, query, {})])
            found, next_key = self.store.search(query, limit=len(self.model) + 1)
            assert (found, next_key) == (expected, None), query

    @invariant()
    def paging_everything_is_newest_first(self) -> None:
        expected = newest_first(list(self.model.values()))
        for limit in (1, 3):
            found = page_through(self.store, ConversationFilter(archived=None), limit, {})
            assert [d["conversation_id"] for d in found] == [d["conversation_id"] for d in expected]
        assert found == expected
        for prefix in {conversation_id[:3] for conversation_id in self.model}:
            assert self.store.ids_with_prefix(prefix, limit=100) == sorted(i for i in self.model if i.startswith(prefix))


StoreModel.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_store_model = StoreModel.TestCase


def test_repeating_values_are_one_string_and_documents_read_back_exactly(tmp_path: Path) -> None:
    """Documents are held as tuples sharing their repeating strings; what
    comes back is the document stored, fields it lacked and fields this
    convtui does not know included."""
    store = ConversationStore(tmp_path / "store")
    try:
        for number in range(3):
            store.insert(
                ConversationMetadata(
                    conversation_id=f"{number:02x}" + "0" * 30, title=f"t{number}", created_at=BASE,
                    last_updated_at=BASE, selected_repository="acme/api", selected_branch="main",
                ).to_document()
            )  # fmt: skip
        older = {"conversation_id": "ff" + "0" * 30, "title": "old", "last_updated_at": "2026-01-01T00:00:00.000000+00:00", "future": {"x": [1]}}
        store.insert(older)
        reopened = ConversationStore(tmp_path / "store")
        try:
            ids = sorted(store.ids_with_prefix("", limit=10))
            assert [reopened.get(i) for i in ids] == [store.get(i) for i in ids]
            assert reopened.get(older["conversation_id"]) == older
            repositories = {id(reopened._documents[i][stored_documents.POSITION["selected_repository"]]) for i in ids[:3]}
            assert len(repositories) == 1  # one string for the three
        finally:
            reopened.close()
    finally:
        store.close()


def test_the_shared_values_stay_bounded_in_a_long_running_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Branches are often one per conversation: a server that runs for months
    must not keep every one it ever read."""
    monkeypatch.setattr(stored_documents, "_SHARED_VALUES_MAX", 50)
    for number in range(500):
        document = ConversationMetadata(
            conversation_id=f"{number:032x}", title="t", created_at=BASE, last_updated_at=BASE,
            selected_branch=f"feature-{number}",
        ).to_document()  # fmt: skip
        assert stored_documents.to_dict(stored_documents.from_document(document)) == document
        assert len(stored_documents._shared) <= 50 + len(stored_documents._REPEATING)


def test_documents_handed_out_or_taken_in_are_independent_copies(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "store")
    try:
        document = ConversationMetadata(
            conversation_id="ab" + "0" * 30, title="copy", created_at=BASE, last_updated_at=BASE, pr_number=[1]
        ).to_document()
        store.insert(document)
        document["pr_number"].append(2)  # the caller keeps using its dict
        store.get(document["conversation_id"])["pr_number"].append(3)
        store.search(ConversationFilter(), limit=10)[0][0]["pr_number"].append(4)
        assert store.get(document["conversation_id"])["pr_number"] == [1]
    finally:
        store.close()
