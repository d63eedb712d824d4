"""The full-text index of what conversations did: words, paths, commands;
incremental, idempotent, rebuilt from the logs; any query text is safe."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convtui.backend.search_index import SearchIndex, match_expression

A, B = "a" * 32, "b" * 32

EVENTS_A = [
    {"id": 0, "source": "user", "action": "message", "message": "Fix the flaky payments test", "args": {"content": "Fix the flaky payments test"}},
    {"id": 1, "source": "agent", "action": "run", "message": "Running command: pytest -x tests/payments",
     "args": {"command": "pytest -x tests/payments", "thought": "Reproduce it first."}},
    {"id": 2, "source": "agent", "observation": "run", "content": "FAILED test_refund_rounding - AssertionError",
     "extras": {"command": "pytest -x tests/payments", "exit_code": 1}},
    {"id": 3, "source": "agent", "action": "edit", "message": "Editing src/payments/refund.py",
     "args": {"command": "str_replace", "path": "/workspace/src/payments/refund.py", "old_str": "round(", "new_str": "Decimal("}},
]  # fmt: skip
EVENTS_B = [
    {"id": 0, "source": "user", "action": "message", "message": "Write release notes", "args": {"content": "Write release notes"}},
    {"id": 1, "source": "agent", "action": "read", "message": "Reading CHANGELOG.md", "args": {"path": "/workspace/CHANGELOG.md"}},
]  # fmt: skip


@pytest.fixture
def index(tmp_path: Path) -> SearchIndex:
    opened = SearchIndex(tmp_path / "search.sqlite3")
    opened.add(A, EVENTS_A)
    opened.add(B, EVENTS_B)
    yield opened
    opened.close()


def test_words_paths_and_commands_find_their_conversations(index: SearchIndex) -> None:
    assert index.matching(words="flaky") == {A}
    assert index.matching(words="test_refund_round") == {A}  # test_refund_rounding: its words, the last a prefix
    assert index.matching(words="rounding") == {A}
    assert index.matching(words="release NOTES") == {B}  # every word, any case
    assert index.matching(words="release flaky") == set()
    assert index.matching(path="payments/refund.py") == {A}
    assert index.matching(path="CHANGELOG.md") == {B}
    assert index.matching(path="refund.py", words="decimal") == {A}  # together: both
    assert index.matching(command="pytest -x") == {A}
    assert index.matching(command="str_replace") == set()  # the editor's sub-command is no shell command
    assert index.matching(command="tests/payments pytest") == {A}  # every token, in any order
    assert index.matching(words="   ") == set()


def test_adding_again_changes_nothing_and_new_events_are_added(index: SearchIndex) -> None:
    index.add(A, EVENTS_A)
    assert index.last_indexed(A) == 3
    index.add(A, [*EVENTS_A, {"id": 4, "source": "agent", "action": "message", "message": "Fixed with Decimal quantize"}])
    assert index.last_indexed(A) == 4 and index.matching(words="quantize") == {A}
    index.remove(B)
    assert index.matching(words="release") == set() and index.last_indexed(B) == -1


def test_a_rebuild_starts_afresh_from_the_logs(index: SearchIndex) -> None:
    assert index.rebuild([(B, EVENTS_B)]) == 2
    assert index.matching(words="flaky") == set() and index.matching(words="release") == {B}


def test_the_index_is_shared_with_another_connection(index: SearchIndex, tmp_path: Path) -> None:
    other = SearchIndex(tmp_path / "search.sqlite3")
    try:
        other.add(B, [{"id": 5, "source": "agent", "action": "message", "message": "zebra crossing"}])
        assert index.matching(words="zebra") == {B}
    finally:
        other.close()


def test_query_syntax_in_the_words_is_only_text() -> None:
    assert match_expression("words", 'a"b NEAR( * app.py') == '''words : ("a" AND "b" AND "NEAR" AND "app" AND "py")'''
    assert match_expression("words", "goldbach conj") == '''words : ("goldbach" AND "conj"*)'''
    assert match_expression("words", '" ( * ^ :') is None


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_is_a_valid_query(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    index = SearchIndex(tmp_path_factory.mktemp("index") / "search.sqlite3")
    try:
        index.add(A, EVENTS_A)
        assert isinstance(index.matching(words=text, path=text, command=text), set)
    finally:
        index.close()


def test_ten_kilobytes_of_anything_is_answered(index: SearchIndex) -> None:
    assert index.matching(words="x" * 10_000 + ' "\x00 ( ) * ^ :') == set()
