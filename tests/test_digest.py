"""While you were away: what each conversation did after a moment, from
its event log alone (counts, commands, files, cost from llm_metrics)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from convtui.backend.models import NewConversationRequest, format_timestamp, utc_now
from convtui.backend.service import ConversationService


async def test_the_digest_says_what_each_conversation_did_since(service: ConversationService, data_dir: Path) -> None:
    now = utc_now()
    since = now - timedelta(minutes=30)
    busy = (await service.new_conversation(NewConversationRequest(initial_user_msg="build it"))).conversation_id
    quiet = (await service.new_conversation(NewConversationRequest(initial_user_msg="wait"))).conversation_id
    before, after = format_timestamp(now - timedelta(hours=1)), format_timestamp(now)
    service._event_log(quiet).append([{"source": "agent", "action": "message", "message": "old", "timestamp": before}])
    service._event_log(busy).append(
        [
            {"source": "agent", "action": "message", "message": "earlier", "timestamp": before,
             "llm_metrics": {"accumulated_cost": 0.10}},
            {"source": "agent", "action": "run", "args": {"command": "make test"}, "timestamp": after,
             "llm_metrics": {"accumulated_cost": 0.20}},
            {"source": "agent", "observation": "run", "content": "ok", "extras": {"command": "make test"}, "timestamp": after},
            {"source": "agent", "action": "edit", "args": {"command": "create", "path": "/workspace/a.py", "file_text": "x"},
             "timestamp": after, "llm_metrics": {"accumulated_cost": 0.30}},
            {"source": "agent", "action": "edit", "args": {"command": "str_replace", "path": "/workspace/a.py", "old_str": "x",
             "new_str": "y"}, "timestamp": after, "llm_metrics": {"accumulated_cost": 0.35}},
            {"source": "agent", "action": "read", "args": {"path": "/workspace/b.py"}, "timestamp": after},
        ]
    )  # fmt: skip
    entries = await service.digest(since)
    by_id = {entry.conversation.conversation_id: entry for entry in entries}
    entry = by_id[busy]
    assert (entry.events, entry.commands, entry.files) == (6, ["make test"], ["/workspace/a.py"])  # the message too
    assert round(entry.cost, 6) == 0.25 and entry.waits is None
    assert by_id[quiet].events == 1  # its own message, after `since`; the old answer is not counted


async def test_the_moment_a_ui_closed_is_kept_per_user(service: ConversationService, data_dir: Path) -> None:
    assert service.ui_closed_at() is None
    service.note_ui_closed()
    closed = service.ui_closed_at()
    assert closed is not None and abs((utc_now() - closed).total_seconds()) < 5
    other = await ConversationService.open(data_dir, user_id="bob/../x")
    try:
        assert other.ui_closed_at() is None  # each user their own (a name made safe for a file)
        other.note_ui_closed()
        assert sorted(path.name for path in (data_dir / "users").iterdir()) == ["alice.json", "bob_.._x.json"]
    finally:
        other.close()
