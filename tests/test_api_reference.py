"""OpenHands' own route tests as a checklist, run against a real `convtui
serve`: tests/unit/server/routes/test_conversation_routes.py and
test_conversation_id_validation.py in the OpenHands repository. Each test
here names the ones it covers; where convtui deliberately differs, the test
says how. Not applicable there (no counterpart in convtui): microagents,
sub-conversations and planning agents, the V1 app-conversation service, and
the socket.io emission failure (convtui's stream is in-process, it cannot
fail apart from the write)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from convtui.backend.client import RemoteBackend
from convtui.backend.interface import LocalBackend
from convtui.backend.models import NewConversationRequest
from convtui.backend.updates import TitleChanged

from .server_process import http, serving, the_socket


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with serving(tmp_path_factory.mktemp("reference") / "data") as data_dir:
        yield data_dir


def create(data_dir: Path, message: str = "Fix the build", **fields: object) -> str:
    with http(data_dir) as client:
        answer = client.post("/api/conversations", json={"initial_user_msg": message, **fields})
    assert answer.status_code == 200, answer.text
    return answer.json()["conversation_id"]


async def test_update_conversation_success_trims_the_title_sets_last_updated_and_emits_it(served: Path) -> None:
    """test_update_conversation_success, _title_whitespace_trimming,
    _last_updated_at_set, _user_owns_conversation. The reference emits the
    new title to the conversation's room; convtui puts it on the live stream."""
    conversation_id = create(served)
    remote = RemoteBackend.over_socket(the_socket(served))
    try:
        before = await remote.get(conversation_id)
        position = await remote.position()
        with http(served) as client:
            answer = client.patch(f"/api/conversations/{conversation_id}", json={"title": "  Trimmed Title  "})
            assert answer.status_code == 200 and answer.json() is True
            after = client.get(f"/api/conversations/{conversation_id}").json()
        assert after["title"] == "Trimmed Title"
        assert after["last_updated_at"] > before.last_updated_at.isoformat()

        async def first_title() -> TitleChanged:
            async for update in remote.updates(position):
                if isinstance(update, TitleChanged) and update.conversation_id == conversation_id:
                    return update
            raise AssertionError("the stream ended")

        assert (await asyncio.wait_for(first_title(), 10)).title == "Trimmed Title"
    finally:
        await remote.close()


def test_update_conversation_not_found(served: Path) -> None:
    """test_update_conversation_not_found: 404, status error,
    CONVERSATION$NOT_FOUND. Differs: the message names the id asked for
    (the reference says only "Conversation not found")."""
    unknown = "0123456789abcdef" * 2
    with http(served) as client:
        answer = client.patch(f"/api/conversations/{unknown}", json={"title": "New Title"})
    assert answer.status_code == 404
    body = answer.json()
    assert body["status"] == "error" and body["msg_id"] == "CONVERSATION$NOT_FOUND" and unknown[:8] in body["message"]


async def test_update_conversation_permission_denied(served: Path) -> None:
    """test_update_conversation_permission_denied: a conversation another
    user owns (here written to the shared store by that user's convtui) is
    refused with 403 AUTHORIZATION$PERMISSION_DENIED, and keeps its title."""
    other = await LocalBackend.open(served, user_id="different_user_789")
    try:
        owned = await other.new_conversation(NewConversationRequest(initial_user_msg="theirs"))
        await other.rename(owned.conversation_id, "Original Title")
    finally:
        await other.close()
    with http(served) as client:
        answer = client.patch(f"/api/conversations/{owned.conversation_id}", json={"title": "New Title"})
        assert answer.status_code == 403
        assert answer.json()["status"] == "error" and answer.json()["msg_id"] == "AUTHORIZATION$PERMISSION_DENIED"
        assert client.get(f"/api/conversations/{owned.conversation_id}").json()["title"] == "Original Title"


def test_update_conversation_general_exception(served: Path) -> None:
    """test_update_conversation_general_exception: a failure while saving
    answers 500 in the error shape. Here a real one: the conversation's store
    shard is damaged on disk. Differs: msg_id SERVER$STORAGE_ERROR (the
    reference: CONVERSATION$UPDATE_ERROR), and the message is one line
    naming the file, not the exception's text."""
    conversation_id = create(served)
    shard = served / "store" / f"meta-{conversation_id[:2]}.json"
    intact = shard.read_bytes()
    shard.write_bytes(b"{ damaged")
    try:
        with http(served) as client:
            answer = client.patch(f"/api/conversations/{conversation_id}", json={"title": "New Title"})
        assert answer.status_code == 500
        body = answer.json()
        assert body["status"] == "error" and body["msg_id"] == "SERVER$STORAGE_ERROR"
        assert "\n" not in body["message"] and "Traceback" not in answer.text
    finally:
        shard.write_bytes(intact)


def test_add_message(served: Path) -> None:
    """test_add_message_success: the message is stored as a user message
    action with its content. Differs: convtui's route is
    POST .../messages {"content"} answering the stored event, and an empty
    message (test_add_message_empty_message: accepted there) is refused
    with 400: it would wake the agent to answer nothing."""
    conversation_id = create(served)
    with http(served) as client:
        stored = client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "Hello, this is a test message!"})
        assert stored.status_code == 200
        event = stored.json()
        assert event["action"] == "message" and event["args"]["content"] == "Hello, this is a test message!"
        listed = client.get(f"/api/conversations/{conversation_id}/events", params={"start_id": event["id"]}).json()
        assert [e["id"] for e in listed["events"]] == [event["id"]]
        empty = client.post(f"/api/conversations/{conversation_id}/messages", json={"content": "   "})
        assert empty.status_code == 400 and empty.json()["status"] == "error"


def test_search_conversations_with_other_filters(served: Path) -> None:
    """test_search_conversations_include_sub_conversations_with_other_filters:
    repository, trigger, limit and page_id combine. Differs deliberately:
    convtui filters before paging, so every page is full and the pages
    together hold every match once (the reference's V0 store pages first,
    then filters, and can answer short or empty pages)."""
    matching = {create(served, f"match {n}", repository="test/repo", trigger="gui") for n in range(5)}
    create(served, "other repository", repository="test/other", trigger="gui")
    create(served, "other trigger", repository="test/repo", trigger="cli")
    seen: list[str] = []
    page_id = None
    with http(served) as client:
        while True:
            params = {"selected_repository": "test/repo", "conversation_trigger": "gui", "limit": 2}
            if page_id:
                params["page_id"] = page_id
            page = client.get("/api/conversations", params=params).json()
            assert len(page["results"]) == 2 or page["next_page_id"] is None
            seen += [result["conversation_id"] for result in page["results"]]
            page_id = page["next_page_id"]
            if page_id is None:
                break
    assert sorted(seen) == sorted(matching)


@pytest.mark.parametrize(
    "bad_id",
    ["a" * 300, "abc%00def", "..%5C..%5Cetc%5Cpasswd", "abc%01def", "abc%20def", "0123456789abcdef0123456789abcdeg"],
    ids=["too long", "null byte", "path traversal", "control character", "space", "not hex"],
)
def test_conversation_id_validation(served: Path, bad_id: str) -> None:
    """test_conversation_id_validation.py: a malformed id is a 400 with one
    line, whatever route it is given to. Differs: convtui ids are exactly 32
    hex digits (the reference takes any short printable string), so an
    empty id or one with spaces is refused too. An id holding "/" (or an
    empty one) matches no route at all: 404 in the error shape, nothing read."""
    with http(served) as client:
        for method, suffix in (("GET", ""), ("PATCH", ""), ("DELETE", ""), ("POST", "/start"), ("GET", "/events")):
            answer = client.request(method, f"/api/conversations/{bad_id}{suffix}", json={"title": "x"} if method == "PATCH" else None)
            assert answer.status_code == 400, (method, suffix, answer.text)
            body = answer.json()
            assert body["status"] == "error" and body["msg_id"] == "CONVERSATION$INVALID_ID"
            assert "\n" not in body["message"] and "\x00" not in body["message"]


def test_a_path_through_the_id_reaches_no_route(served: Path) -> None:
    with http(served) as client:
        answer = client.get("/api/conversations/..%2F..%2Fsettings.json")
    assert answer.status_code == 404 and answer.json()["status"] == "error" and "llm" not in answer.text


def test_a_valid_conversation_id_of_the_boundary_length_is_accepted(served: Path) -> None:
    """test_valid_conversation_id, _boundary_length: 32 hex digits pass
    (an unknown one answers null, as the reference's GET does)."""
    with http(served) as client:
        answer = client.get(f"/api/conversations/{'f' * 32}")
    assert answer.status_code == 200 and answer.json() is None
