"""What convtui does with an OpenHands server, as scenarios that check
themselves. Each runs against the real server (tests/test_openhands_live.py,
which can record the exchanges) and against the recording
(tests/test_openhands_replay.py): the same calls, the same checks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import re
import time
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from convtui.backend.errors import InvalidInput, NotFound, PermissionDenied
from convtui.backend.events import EventDict, event_kind
from convtui.backend.models import AgentState, ConversationStatus, NewConversationRequest
from convtui.backend.openhands_backend import OpenHandsBackend, Unsupported

from ..fake_llm import Text, ToolCall

SEEDED = 250  # conversations seed.py stores before the scenarios run
WAIT_SECONDS = 90.0
EDITED = "/tmp/convtui-openhands-edit/notes.txt"  # the file edit_approval's agent writes (fixed: it is in the recording)


async def listing(backend: OpenHandsBackend) -> None:
    """Paging newest first, the server's title filter, the local repository
    filter, get and id prefixes, on the seeded conversations."""
    assert await backend.count() == SEEDED
    pages = [await backend.search(limit=100)]
    while pages[-1].next_page_id:
        pages.append(await backend.search(page_id=pages[-1].next_page_id, limit=100))
    assert [len(page.results) for page in pages] == [100, 100, 50]
    titles = [info.title for page in pages for info in page.results]
    assert titles == [f"seeded {number:05d}" for number in reversed(range(SEEDED))]  # newest activity first
    infos = [info for page in pages for info in page.results]
    assert len({info.conversation_id for info in infos}) == SEEDED
    # Their sandboxes do not exist: stopped, listed, not archived.
    assert {info.status for info in infos} == {ConversationStatus.STOPPED}
    assert not any(info.archived for info in infos)
    assert all(info.status_message.startswith("sandbox missing") for info in infos)
    assert all(info.agent_state is None for info in infos)

    # Title words: the server's filter.
    found = await backend.search(query="seeded 0012", limit=20)
    assert sorted(info.title for info in found.results) == [f"seeded 0012{n}" for n in range(10)]
    assert found.next_page_id is None
    # Repository: filtered here, over the server's pages (every fifth has one).
    with_repository = await backend.search(selected_repository="org/repo", limit=10)
    assert [info.title for info in with_repository.results] == [f"seeded {n:05d}" for n in range(245, 195, -5)]
    assert with_repository.next_page_id is not None

    one = infos[7]
    assert (await backend.get(one.conversation_id)).title == one.title
    assert (await backend.get(str(uuid.UUID(one.conversation_id)))).conversation_id == one.conversation_id
    assert await backend.resolve(one.conversation_id[:10]) == one.conversation_id
    with pytest.raises(NotFound):
        await backend.get(uuid.UUID(int=1).hex)
    with pytest.raises(InvalidInput):  # refused here: never sent
        await backend.search(limit=101)
    with pytest.raises(Unsupported):
        await backend.search(event_words="pytest")
    # A seeded conversation never ran: no events (what a UI on these rows reads first).
    assert await backend.search_events(infos[0].conversation_id) == []


async def changes(backend: OpenHandsBackend) -> None:
    """Rename (with convtui's title rules checked before sending) and delete."""
    page = await backend.search(limit=3)
    target = page.results[2]
    renamed = await backend.rename(target.conversation_id, "  Renamed by convtui é  ")
    assert renamed.title == "Renamed by convtui é"
    assert renamed.conversation_id == target.conversation_id
    assert (await backend.get(target.conversation_id)).title == "Renamed by convtui é"
    for bad in ("", "   ", "x" * 201, "bell\x07"):
        with pytest.raises(InvalidInput):
            await backend.rename(target.conversation_id, bad)
    with pytest.raises(InvalidInput):  # the server's PATCH would answer a 500
        await backend.rename("not-a-uuid", "x")
    assert await backend.delete(target.conversation_id) is True
    with pytest.raises(NotFound):
        await backend.get(target.conversation_id)
    assert await backend.count() == SEEDED - 1
    assert await backend.delete(target.conversation_id) is False


async def refused_key(backend: OpenHandsBackend) -> None:
    """A backend with the wrong key: the server's 401, in words."""
    with pytest.raises(PermissionDenied, match="refused the API key"):
        await backend.count()


async def bursts(backend: OpenHandsBackend) -> None:
    """25 calls at once from a client that does not pace itself: the server
    answers some 429 with Retry-After; every call still succeeds."""
    backend.http.pacer.rate = 1000
    counts = await asyncio.gather(*(backend.count() for _ in range(25)))
    assert set(counts) == {SEEDED - 1}


def agent_model(body: dict[str, Any]) -> Any:
    """The fake model's answers to OpenHands' agent: a title when asked
    without tools; else a command, then finish; and finish after a thanks."""
    if not body.get("tools"):
        return Text("Hello file")
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    said = json.dumps(last.get("content"))
    asked = [index for index, message in enumerate(messages) if message.get("role") == "user"]
    if asked and f"edit {EDITED}" in json.dumps(messages[asked[-1]].get("content")):
        return _edit_steps(len([message for message in messages[asked[-1] :] if message.get("role") == "tool"]))
    if last.get("role") == "user" and "thanks" in said:
        return ToolCall("finish", {"message": "bye"})
    if last.get("role") == "user" and "again" in said:
        return ToolCall("terminal", {"command": "echo again", "security_risk": "LOW"})
    if last.get("role") == "user":
        return ToolCall("terminal", {"command": "echo hello > hello.txt && cat hello.txt", "security_risk": "LOW"})
    return ToolCall("finish", {"message": "wrote hello.txt"})


def _edit_steps(done: int) -> Any:
    """Asked to edit EDITED: create it, change a line, then finish."""
    if done == 0:
        return ToolCall("file_editor", {"command": "create", "path": EDITED, "file_text": "one\ntwo\n", "security_risk": "LOW"})
    if done == 1:
        return ToolCall("file_editor", {"command": "str_replace", "path": EDITED, "old_str": "two", "new_str": "2", "security_risk": "LOW"})
    return ToolCall("finish", {"message": "edited"})


async def _eventually(probe: Callable[[], Awaitable[Any]], found: Callable[[Any], Any], pause: float) -> Any:
    """found(await probe()) once it is something (polled every `pause`, at most WAIT_SECONDS)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        seen = await probe()
        result = found(seen)
        if result is not None and result is not False:
            return result
        assert time.monotonic() < deadline, f"after {WAIT_SECONDS:g} s still: {seen}"
        await asyncio.sleep(pause)


async def _until(backend: OpenHandsBackend, conversation_id: str, test: Any, pause: float) -> Any:
    """The conversation once `test` accepts it."""
    return await _eventually(lambda: backend.get(conversation_id), lambda info: test(info) and info, pause)


async def _until_pending(backend: OpenHandsBackend, conversation_id: str, test: Any, pause: float) -> Any:
    """The action waited on, once there is one `test` accepts."""
    return await _eventually(lambda: backend.pending_action(conversation_id), lambda action: action is not None and test(action) and action, pause)


async def _until_event(backend: OpenHandsBackend, conversation_id: str, test: Any, pause: float) -> EventDict:
    """The first event `test` accepts, once the server has it (its agent
    server sends events on a little after the state they lead to)."""
    return await _eventually(lambda: backend.search_events(conversation_id), lambda events: next((e for e in events if test(e)), None), pause)


async def agent_run(backend: OpenHandsBackend, pause: float = 1.0) -> None:
    """Create with a first message, the agent's run with the fake model, its
    events and exports, stop (pause), start (resume), and a message."""
    created = await backend.new_conversation(NewConversationRequest(initial_user_msg="write hello.txt"))
    conversation_id = created.conversation_id
    finished = await _until(backend, conversation_id, lambda info: info.agent_state is AgentState.FINISHED, pause)
    assert finished.status is ConversationStatus.RUNNING
    assert finished.llm_model == "openai/fake-model"

    await _until_event(backend, conversation_id, lambda event: event_kind(event) == "finish" and event.get("observation"), pause)
    events = await backend.search_events(conversation_id)
    said = [(event["source"], event_kind(event)) for event in events]
    assert said[0] == ("user", "message") and events[0]["message"] == "write hello.txt"
    command = next(event for event in events if event_kind(event) == "run" and event.get("action"))
    assert command["args"]["command"] == "echo hello > hello.txt && cat hello.txt"
    output = next(event for event in events if event_kind(event) == "run" and event.get("observation"))
    assert "hello" in output["content"] and output["extras"]["metadata"]["exit_code"] == 0
    assert ("agent", "finish") in said
    assert [event["id"] for event in events] == sorted(event["id"] for event in events)
    newest = await backend.search_events(conversation_id, reverse=True, limit=2)
    assert newest == list(reversed(events))[:2]

    assert json.loads(await backend.export_json(conversation_id)) == events
    assert "echo hello > hello.txt" in await backend.export_markdown(conversation_id)

    stopped = await backend.stop(conversation_id)
    assert stopped.message == "Conversation stopped successfully"
    paused = await backend.get(conversation_id)
    assert paused.status is ConversationStatus.STOPPED and paused.status_message == "sandbox paused"
    assert (await backend.stop(conversation_id)).message == "Conversation was not running"

    assert await backend.start(conversation_id) is ConversationStatus.STARTING
    await _until(backend, conversation_id, lambda info: info.status is ConversationStatus.RUNNING, pause)
    await backend.send_message(conversation_id, "thanks")
    counted = finished.total_tokens > 0  # OpenHands 1.6 counts no tokens (its metrics stay 0)
    await _until(backend, conversation_id, lambda info: info.agent_state is AgentState.FINISHED and (info.total_tokens > finished.total_tokens or not counted), pause)
    await _until_event(backend, conversation_id, lambda event: event_kind(event) == "finish" and event.get("message") == "bye", pause)
    after = await backend.search_events(conversation_id, start_id=events[-1]["id"] + 1)
    assert any(event.get("message") == "thanks" for event in after)

    # The server's own export (its web UI's download): meta.json, then each event.
    try:
        zipped = await backend.export_zip(conversation_id)
    except Unsupported:
        assert "send" in backend.v0_only  # OpenHands 1.6: no such route
        return
    with zipfile.ZipFile(io.BytesIO(zipped)) as archive:
        names = sorted(archive.namelist())  # (1.6 writes meta.json and the events in no particular order)
        assert names[-1] == "meta.json" and uuid.UUID(json.loads(archive.read("meta.json"))["id"]).hex == conversation_id
        assert len(names) > len(events) and all(re.fullmatch(r"event_\d{6}_[-0-9a-f]+\.json", name) for name in names[:-1])


async def remote_run(backend: OpenHandsBackend, pause: float = 1.0) -> None:
    """`convtui --remote NAME run ID --yes` (the command's own function), the
    server asking before every action: the agent's events as they come,
    its command approved, until it finishes."""
    from convtui.cli import _run_on_openhands

    created = await backend.new_conversation(NewConversationRequest(initial_user_msg="write hello.txt"))
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        code = await _run_on_openhands(backend, created.conversation_id, argparse.Namespace(yes=True, remote="oh", stop_on_exit=False))
    lines = shown.getvalue().splitlines()
    assert code == 0 and lines[-1] == "-- finished", lines
    assert any(line.endswith("user        → message: write hello.txt") for line in lines), lines
    assert any(line.endswith("agent       → run: echo hello > hello.txt && cat hello.txt") for line in lines), lines
    assert any(line.endswith("environment ← run: [exit 0] hello") for line in lines), lines  # (approved: it ran)
    await backend.stop(created.conversation_id)


async def approvals(backend: OpenHandsBackend, pause: float = 1.0) -> None:
    """Confirmation mode (the server's settings ask before every action):
    the action waited on, in the inbox; approve; reject with a reason (the
    agent reads it); approve always (the next action runs unasked)."""
    created = await backend.new_conversation(NewConversationRequest(initial_user_msg="write hello.txt"))
    conversation_id = created.conversation_id
    action = await _until_pending(backend, conversation_id, lambda action: True, pause)
    assert event_kind(action) == "run" and action["args"]["command"] == "echo hello > hello.txt && cat hello.txt"
    assert (await backend.get(conversation_id)).agent_state is AgentState.AWAITING_USER_CONFIRMATION
    [item] = [item for item in await backend.inbox() if item.conversation.conversation_id == conversation_id]
    assert item.kind.value == "approve" and item.action["openhands_id"] == action["openhands_id"]

    await backend.approve(conversation_id)
    finished = lambda info: info.agent_state is AgentState.FINISHED  # noqa: E731
    counted = (await _until(backend, conversation_id, finished, pause)).total_tokens > 0  # none on OpenHands 1.6
    output = await _until_event(backend, conversation_id, lambda event: event_kind(event) == "run" and event.get("observation"), pause)
    assert output["action_openhands_id"] == action["openhands_id"] and "hello" in output["content"]
    assert await backend.pending_action(conversation_id) is None
    with pytest.raises(InvalidInput, match="no action waits"):
        await backend.approve(conversation_id)

    await backend.send_message(conversation_id, "again")
    again = await _until_pending(backend, conversation_id, lambda action: action["openhands_id"] != output["action_openhands_id"], pause)
    assert again["args"]["command"] == "echo again"
    await backend.reject(conversation_id, "not that: say bye")
    idle = lambda info: info.agent_state is AgentState.AWAITING_USER_INPUT  # noqa: E731  (a rejection ends the run)
    await _until(backend, conversation_id, idle, pause)
    rejected = await _until_event(backend, conversation_id, lambda event: event_kind(event) == "user_rejected", pause)
    assert rejected["content"] == "not that: say bye" and rejected["action_openhands_id"] == again["openhands_id"]

    await backend.send_message(conversation_id, "again, please")
    third = await _until_pending(backend, conversation_id, lambda action: action["openhands_id"] != again["openhands_id"], pause)
    await backend.approve(conversation_id, always=True)
    await _until(backend, conversation_id, finished, pause)
    ran = len([event for event in await backend.search_events(conversation_id) if event.get("observation") == "run"])
    await backend.send_message(conversation_id, "again, unasked")
    await _until(backend, conversation_id, lambda info: finished(info) and (info.total_tokens > 0 or not counted), pause)
    deadline = time.monotonic() + WAIT_SECONDS
    while len([event for event in await backend.search_events(conversation_id) if event.get("observation") == "run"]) < ran + 1:
        assert await backend.pending_action(conversation_id) is None, "asked again after always approve"
        assert time.monotonic() < deadline
        await asyncio.sleep(pause)
    assert third["args"]["command"] == "echo again"


async def edit_approval(backend: OpenHandsBackend, pause: float = 1.0) -> None:
    """Confirmation mode: the diff of each file edit waited on, made from the
    file as the conversation's agent server has it: a new file's whole text,
    then a change with the line around it; nothing once no edit waits."""
    created = await backend.new_conversation(NewConversationRequest(initial_user_msg=f"edit {EDITED}"))
    conversation_id = created.conversation_id
    create = await _until_pending(backend, conversation_id, lambda action: True, pause)
    assert event_kind(create) == "edit" and create["args"]["command"] == "create"
    assert await backend.pending_diff(conversation_id) == ["--- /dev/null", f"+++ {EDITED}", "@@ -0,0 +1,2 @@", "+one", "+two"]

    await backend.approve(conversation_id)
    change = await _until_pending(backend, conversation_id, lambda action: action["openhands_id"] != create["openhands_id"], pause)
    assert change["args"]["command"] == "str_replace"
    assert await backend.pending_diff(conversation_id) == [f"--- {EDITED}", f"+++ {EDITED}", "@@ -1,2 +1,2 @@", " one", "-two", "+2"]

    await backend.approve(conversation_id)
    await _until(backend, conversation_id, lambda info: info.agent_state is AgentState.FINISHED, pause)
    assert await backend.pending_diff(conversation_id) is None
