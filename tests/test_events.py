"""Event logs: append-only, durable, searchable, and tolerant of crashes."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from convtui.backend.errors import InvalidInput
from convtui.backend.events import AGENT_VISIBLE, EventFilter, EventLog

from .conftest import TRAJECTORIES


def _message(text: str, source: str = "user", **extra: object) -> dict:
    return {"source": source, "message": text, "action": "message", "args": {"content": text}, **extra}


def _observation(text: str, kind: str = "run", **extra: object) -> dict:
    return {"source": "environment", "observation": kind, "content": text, "extras": {}, **extra}


@pytest.fixture
def event_log(tmp_path: Path) -> EventLog:
    return EventLog(tmp_path / "conversation")


def test_append_numbers_from_zero_and_survives_reopening(event_log: EventLog) -> None:
    stored = event_log.append([_message("one"), _message("two", "agent")])
    assert [e["id"] for e in stored] == [0, 1]
    assert all(datetime.fromisoformat(e["timestamp"]).tzinfo is not None for e in stored)
    assert event_log.append([_observation("ok")])[0]["id"] == 2
    reopened = EventLog(event_log.directory)
    assert [e["message"] for e in reopened.search_events()[:2]] == ["one", "two"]
    assert reopened.latest_id() == 2
    lines = event_log.path.read_bytes().splitlines()
    assert [orjson.loads(line)["id"] for line in lines] == [0, 1, 2]


def test_another_log_object_sees_appends(event_log: EventLog) -> None:
    reader = EventLog(event_log.directory)
    assert reader.search_events() == []
    event_log.append([_message("hello")])
    assert [e["message"] for e in reader.search_events()] == ["hello"]


def test_invalid_events_are_refused_and_nothing_is_written(event_log: EventLog) -> None:
    event_log.append([_message("fine")])
    before = event_log.path.read_bytes()
    for bad in (
        {"source": "user"},  # neither action nor observation
        {"action": "run", "observation": "run"},
        {"action": "message", "source": "alien"},
        {"action": "message", "timestamp": "yesterday"},
    ):
        with pytest.raises(InvalidInput, match="invalid event"):
            event_log.append([_message("ok"), bad])
    assert event_log.path.read_bytes() == before


def test_search_ranges_are_inclusive_and_reverse_walks_down(event_log: EventLog) -> None:
    event_log.append([_message(f"m{i}") for i in range(10)])
    ids = lambda events: [e["id"] for e in events]  # noqa: E731
    assert ids(event_log.search_events(start_id=3, end_id=5)) == [3, 4, 5]
    assert ids(event_log.search_events(start_id=3, end_id=5, reverse=True)) == [5, 4, 3]
    # The four nearest events before 6 (OpenHands' reverse search returned the
    # last four of the whole log instead).
    assert ids(event_log.search_events(end_id=5, reverse=True, limit=4)) == [5, 4, 3, 2]
    assert ids(event_log.search_events(start_id=8, limit=5)) == [8, 9]
    assert event_log.search_events(start_id=20) == []


def test_filters(event_log: EventLog) -> None:
    event_log.append(
        [
            _message("Please FIX the bug"),
            _message("secret plan", "agent", hidden=True),
            {"source": "agent", "action": "run", "args": {"command": "pytest -x"}, "message": "Running"},
            _observation("1 failed", extras={"exit_code": 1}, cause=2),
            {"source": "environment", "observation": "agent_state_changed", "content": "", "extras": {}},
            {"source": "agent", "action": "change_agent_state", "args": {"agent_state": "running"}},
            {"source": "agent", "action": "null", "args": {}},
        ]
    )

    def kinds(event_filter: EventFilter) -> list[int]:
        return [e["id"] for e in event_log.search_events(filter=event_filter)]

    assert kinds(EventFilter(exclude_hidden=True)) == [0, 2, 3, 4, 5, 6]
    assert kinds(EventFilter(include_kinds=frozenset({"run"}))) == [2, 3]
    assert kinds(EventFilter(include_kinds=frozenset({"observation:run"}))) == [3]
    assert kinds(EventFilter(exclude_kinds=frozenset({"message", "run"}))) == [4, 5, 6]
    assert kinds(EventFilter(query="fix THE")) == [0]
    assert kinds(EventFilter(query="PYTEST")) == [2]
    assert kinds(EventFilter(source="environment")) == [3, 4]
    assert kinds(AGENT_VISIBLE) == [0, 2, 3]
    future = datetime(2999, 1, 1, tzinfo=timezone.utc)
    assert kinds(EventFilter(start_date=future)) == []
    assert kinds(EventFilter(end_date=future)) == list(range(7))


def test_a_torn_last_line_is_skipped_with_a_warning_then_cut_off(
    event_log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    event_log.append([_message("kept")])
    with open(event_log.path, "ab") as handle:
        handle.write(b'{"id": 1, "source": "user", "action": "mess')  # the crash
    fresh = EventLog(event_log.directory)
    with caplog.at_level(logging.WARNING):
        assert [e["message"] for e in fresh.search_events()] == ["kept"]
    assert "incomplete last line" in caplog.text
    stored = fresh.append([_message("after the crash")])
    assert stored[0]["id"] == 1
    assert [e["message"] for e in EventLog(event_log.directory).search_events()] == ["kept", "after the crash"]
    assert all(orjson.loads(line) for line in event_log.path.read_bytes().splitlines())


def test_an_unreadable_line_in_the_middle_is_skipped(event_log: EventLog, caplog: pytest.LogCaptureFixture) -> None:
    event_log.append([_message("a")])
    with open(event_log.path, "ab") as handle:
        handle.write(b"garbage that is not json\n")
    event_log.append([_message("b")])
    with caplog.at_level(logging.WARNING):
        messages = [e["message"] for e in EventLog(event_log.directory).search_events()]
    assert messages == ["a", "b"]
    assert "unreadable line" in caplog.text


def test_imported_ids_are_kept_and_must_increase(event_log: EventLog) -> None:
    trajectory = orjson.loads(TRAJECTORIES[0].read_bytes())
    stored = event_log.append(trajectory, keep_ids=True)
    assert [e["id"] for e in stored] == [e["id"] for e in trajectory]
    assert event_log.get(4)["cause"] == 3
    assert event_log.get(1) is None
    with pytest.raises(InvalidInput, match="must increase"):
        event_log.append([{**_message("x"), "id": 2}], keep_ids=True)
    assert event_log.append([_message("next")])[0]["id"] == trajectory[-1]["id"] + 1
