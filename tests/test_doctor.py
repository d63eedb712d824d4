"""`convtui doctor`: reports damage, repairs without destroying anything."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest

from convtui.backend.doctor import run_doctor
from convtui.backend.errors import NotFound, StorageError
from convtui.backend.events import EventLog
from convtui.backend.models import NewConversationRequest
from convtui.backend.search_index import INDEX_FILE
from convtui.backend.service import ConversationService


async def test_a_healthy_directory_has_no_findings(service: ConversationService, data_dir: Path) -> None:
    await service.new_conversation({"initial_user_msg": "hi"})
    report = run_doctor(data_dir)
    assert report.healthy and report.conversations == 1 and report.findings == []


async def test_files_without_metadata_are_recovered(service: ConversationService, data_dir: Path) -> None:
    """A crash between writing a conversation's files and its metadata."""
    orphan = "ab" * 16
    EventLog(service.data_dir.conversation(orphan)).append(
        [{"source": "user", "action": "message", "message": "lost", "args": {"content": "lost"}}]
    )
    report = run_doctor(data_dir)
    assert not report.healthy
    assert [f.problem for f in report.findings] == ["conversation files without metadata"]
    assert run_doctor(data_dir, repair=True).healthy
    reopened = await ConversationService.open(data_dir)
    try:
        info = await reopened.get(orphan)
        assert info.title == "Conversation ababa"
        assert [e["message"] for e in await reopened.search_events(orphan)] == ["lost"]
    finally:
        reopened.close()
    assert run_doctor(data_dir).findings == []


async def test_a_torn_event_line_is_saved_aside_and_cut(service: ConversationService, data_dir: Path) -> None:
    conversation_id = (await service.new_conversation({"initial_user_msg": "hi"})).conversation_id
    events = service.data_dir.conversation(conversation_id) / "events.jsonl"
    with open(events, "ab") as handle:
        handle.write(b'{"id": 1, "sou')
    assert "torn last line" in run_doctor(data_dir).findings[0].problem
    assert run_doctor(data_dir, repair=True).healthy
    assert events.read_bytes().endswith(b"\n")
    assert next(events.parent.glob("events.jsonl.torn-*")).read_bytes() == b'{"id": 1, "sou'


async def test_a_deletion_cut_short_is_finished_not_revived(
    service: ConversationService, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the soak's crash test of the app: a kill during a delete
    left a half-removed directory that `doctor --repair` turned back into a
    conversation. The directory is now renamed aside before it is removed."""
    conversation_id = (await service.new_conversation({"initial_user_msg": "delete me"})).conversation_id
    workspace = service.data_dir.workspace(conversation_id)
    workspace.mkdir(parents=True)
    (workspace / "notes.txt").write_text("half of it goes")

    def dies_midway(path: str, *args: object, **kwargs: object) -> None:
        (Path(path) / "events.jsonl").unlink()
        raise OSError(errno.EIO, "the process died here")

    monkeypatch.setattr(shutil, "rmtree", dies_midway)
    with pytest.raises(StorageError):
        await service.delete(conversation_id)
    monkeypatch.undo()

    assert [finding.problem for finding in run_doctor(data_dir).findings] == ["a deletion cut short (by a crash)"]
    assert run_doctor(data_dir, repair=True).healthy
    assert list((data_dir / "conversations").iterdir()) == []
    reopened = await ConversationService.open(data_dir)
    try:
        with pytest.raises(NotFound):
            await reopened.get(conversation_id)
    finally:
        reopened.close()


async def test_repair_rebuilds_the_search_index_and_moves_a_damaged_one_aside(
    service: ConversationService, data_dir: Path
) -> None:
    conversation_id = (await service.new_conversation(NewConversationRequest(initial_user_msg="find the wombat"))).conversation_id
    assert service.search_index.matching(words="wombat") == {conversation_id}
    service.close()
    index = data_dir / INDEX_FILE
    for suffix in ("-wal", "-shm"):
        index.with_name(index.name + suffix).unlink(missing_ok=True)
    index.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)  # garbage after a valid header

    report = run_doctor(data_dir)
    [finding] = report.findings
    assert finding.path == index and finding.problem.startswith("the search index is damaged") and not report.healthy
    report = run_doctor(data_dir, repair=True)
    assert report.findings[0].repaired.endswith("rebuilt from the event logs") and report.indexed_events == 1
    assert list(data_dir.glob(f"{INDEX_FILE}.damaged-*"))  # kept, not deleted
    reopened = await ConversationService.open(data_dir)
    try:
        assert reopened.search_index.matching(words="wombat") == {conversation_id}
    finally:
        reopened.close()
    assert run_doctor(data_dir).healthy
