"""A remote server's loaded rows, filtered and sorted in memory as the
store does it: on what a real OpenHands server listed (the recording)."""

from __future__ import annotations

import json
from datetime import timedelta

from convtui.backend.models import ConversationStatus
from convtui.backend.openhands_mapping import conversation_info
from convtui.backend.remote_rows import RemoteRows
from convtui.backend.store import ConversationFilter

from .openhands.recording import ReplayTransport


def recorded_rows() -> RemoteRows:
    transport = ReplayTransport("listing")
    rows = RemoteRows()
    for exchange in transport.exchanges:
        query = dict(exchange["request"]["query"])
        if exchange["request"]["path"].endswith("/search") and query["limit"] == "100" and "title__contains" not in query:
            rows.merge(conversation_info(item) for item in json.loads(exchange["text"])["items"])
    return rows


def test_filters_and_sorts_like_the_store() -> None:
    rows = recorded_rows()
    assert len(rows) == 250
    titles = lambda ids: [rows.rows[i].title for i in ids]  # noqa: E731
    newest = rows.ids(ConversationFilter(), "updated", False)
    assert titles(newest[:2]) == ["seeded 00249", "seeded 00248"]
    assert rows.ids(ConversationFilter(), "updated", True) == newest[::-1]
    assert titles(rows.ids(ConversationFilter(text="SEEDED 0012"), "title", False)) == [
        "seeded 00012", *[f"seeded 0012{n}" for n in range(10)]
    ]
    assert len(rows.ids(ConversationFilter(repository="ORG/repo"), "updated", False)) == 50
    assert rows.ids(ConversationFilter(archived=True), "updated", False) == ()
    assert len(rows.ids(ConversationFilter(archived=None), "updated", False)) == 250
    assert len(rows.ids(ConversationFilter(status="STOPPED"), "status", False)) == 250
    assert rows.ids(ConversationFilter(status="RUNNING"), "updated", False) == ()
    assert titles(rows.ids(ConversationFilter(updated_since="2026-01-01T04:08:00+00:00"), "created", False)) == [
        "seeded 00249", "seeded 00248"
    ]
    one = newest[3]
    assert rows.ids(ConversationFilter(text=one[:6]), "updated", False)[0] == one


def test_merge_says_what_changed() -> None:
    rows = recorded_rows()
    first = rows.rows[rows.newest_first()[-1]]  # the oldest activity
    assert rows.merge([first]) == []
    newest = rows.rows[rows.newest_first()[0]]
    moved = first.model_copy(update={"status": ConversationStatus.RUNNING, "last_updated_at": newest.last_updated_at + timedelta(seconds=1)})
    assert rows.merge([moved]) == [moved]
    assert rows.ids(ConversationFilter(), "updated", False)[:2] == (moved.conversation_id, newest.conversation_id)
    assert len(rows.newest_first()) == len(rows) == 250
    rows.drop(first.conversation_id)
    assert first.conversation_id not in rows.rows and rows.newest_first()[0] == newest.conversation_id


def test_words_alone_and_every_condition_agree() -> None:
    """The quick path for filter words and the row-by-row test answer alike."""
    from convtui.backend.remote_rows import matches

    rows = recorded_rows()
    hidden = next(iter(rows.rows.values())).model_copy(update={"archived": True})
    rows.merge([hidden])
    for text in (None, "seeded", "0012", "SEEDED 0004", hidden.conversation_id[:5], "nothing"):
        for archived in (False, None, True):
            query = ConversationFilter(text=text, archived=archived)
            words = (text or "").lower().split()
            slow = tuple(i for i in rows.newest_first() if matches(rows.rows[i], query, words))
            assert rows.ids(query, "updated", False) == slow
    assert hidden.conversation_id not in rows.ids(ConversationFilter(), "updated", False)
    assert hidden.conversation_id in rows.ids(ConversationFilter(archived=None), "updated", False)


def test_those_waiting_are_kept_as_their_states_change() -> None:
    """status:waiting (the status line's count, the inbox) kept row by row:
    the same as filtering every row, through the states a real server
    reported while its agents ran, asked for approval and were paused."""
    rows = recorded_rows()
    seen = 0
    for name in ("agent_run", "approvals", "remote_run"):
        for exchange in ReplayTransport(name).exchanges:
            request = exchange["request"]
            if request["method"] != "GET" or request["path"] != "/api/v1/app-conversations" or exchange["status"] != 200:
                continue
            rows.merge(conversation_info(item) for item in json.loads(exchange["text"]) if item)
            slow = rows.ids(ConversationFilter(status="WAITING"), "updated", False)
            assert rows.waiting() == list(slow) and rows.waiting_count() == len(slow)
            seen += len(slow)
    assert seen > 0  # (some did wait)
    rows.drop(rows.waiting()[0])
    assert rows.waiting() == list(rows.ids(ConversationFilter(status="WAITING"), "updated", False))
