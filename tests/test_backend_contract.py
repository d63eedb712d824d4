"""One suite for every implementation of the Backend interface: in-process
(LocalBackend) and over a real `convtui serve` process (RemoteBackend over
its unix socket). What a user can do, and how it fails, is the same."""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from convtui.backend.events import exit_code_of

from convtui.backend.client import RemoteBackend
from convtui.backend.errors import InvalidInput, NotFound
from convtui.backend.interface import Backend, LocalBackend
from convtui.backend.models import AgentState, ConversationStatus, NewConversationRequest
from convtui.backend.updates import EventAdded, StatusChanged

from .conftest import FIXTURES
from .fake_llm import FakeLLMServer, Script, Text, ToolCall
from .server_process import serving, the_socket

API_KEY = "sk-contract-0123456789abcdef"
TRAJECTORIES_DIR = FIXTURES / "openhands-trajectories"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One `convtui serve` for the module (each test makes its own conversations)."""
    with serving(tmp_path_factory.mktemp("served") / "data") as data_dir:
        yield data_dir


@pytest.fixture(params=["local", "remote"])
async def backend(request: pytest.FixtureRequest, data_dir: Path, llm: FakeLLMServer) -> AsyncIterator[Backend]:
    if request.param == "local":
        opened: Backend = await LocalBackend.open(data_dir)
    else:
        opened = RemoteBackend.over_socket(the_socket(request.getfixturevalue("served")))
    await opened.update_settings(
        {"llm_model": "openai/fake-model", "llm_api_key": API_KEY, "llm_base_url": llm.base_url, "llm_timeout": 5,
         "confirmation_mode": True}
    )
    try:
        yield opened
    finally:
        await opened.close()


async def new(backend: Backend, message: str = "Write hello.py", **fields: Any) -> str:
    request = NewConversationRequest(initial_user_msg=message, **fields)
    return (await backend.new_conversation(request)).conversation_id


async def until(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# -- metadata --------------------------------------------------------------------------


async def test_a_new_conversation_is_found_by_id_prefix_and_titled_by_its_message(backend: Backend) -> None:
    conversation_id = await new(backend, "Fix the flaky payments test", repository="acme/payments")
    info = await backend.get(conversation_id[:10])
    assert info.conversation_id == conversation_id
    assert info.title == "Fix the flaky payments test"
    assert info.selected_repository == "acme/payments"
    assert info.status is ConversationStatus.STOPPED
    assert await backend.resolve(conversation_id[:12]) == conversation_id
    found = await backend.search(selected_repository="acme/payments", all_ages=True)
    assert conversation_id in [result.conversation_id for result in found.results]


async def test_unknown_and_malformed_ids_are_refused_in_one_line(backend: Backend) -> None:
    with pytest.raises(NotFound, match="no conversation"):
        await backend.get("f" * 32)
    with pytest.raises(InvalidInput, match="not a conversation id"):
        await backend.get("../../etc")
    assert await backend.delete("e" * 32) is False
    with pytest.raises(NotFound, match="no conversation"):
        await backend.watch_text("f" * 32)


async def test_renaming_checks_the_title_and_keeps_the_old_one_on_refusal(backend: Backend) -> None:
    conversation_id = await new(backend)
    assert (await backend.rename(conversation_id, "  Better name  ")).title == "Better name"
    for bad, why in (("", "empty"), ("   ", "empty"), ("tab\there", "control"), ("x" * 201, "200")):
        with pytest.raises(InvalidInput, match=why):  # the same words in and out of the server
            await backend.rename(conversation_id, bad)
    assert (await backend.get(conversation_id)).title == "Better name"


async def test_pages_cover_every_match_once_and_the_limit_is_checked(backend: Backend) -> None:
    created = {await new(backend, f"paged {n}", repository="acme/paging") for n in range(5)}
    seen: list[str] = []
    page_id = None
    while True:
        page = await backend.search(page_id=page_id, limit=2, selected_repository="acme/paging", all_ages=True)
        seen += [result.conversation_id for result in page.results]
        if page.next_page_id is None:
            break
        assert len(page.results) == 2  # filters apply before paging: every page but the last is full
        page_id = page.next_page_id
    assert sorted(seen) == sorted(created)
    for limit in (0, 101):
        with pytest.raises(InvalidInput, match=f"limit must be 1-100, got {limit}"):
            await backend.search(limit=limit)
    with pytest.raises(InvalidInput, match="trigger 'x' is not one of"):
        await backend.search(conversation_trigger="x")


async def test_archived_conversations_leave_the_default_list_and_come_back(backend: Backend) -> None:
    conversation_id = await new(backend, repository="acme/archive")
    info, stopped = await backend.change_archived(conversation_id, True)
    assert info.archived and stopped is None
    default = await backend.search(selected_repository="acme/archive", all_ages=True)
    assert conversation_id not in [r.conversation_id for r in default.results]
    archived = await backend.search(selected_repository="acme/archive", archived=True, all_ages=True)
    assert conversation_id in [r.conversation_id for r in archived.results]
    both = await backend.search(selected_repository="acme/archive", archived=None, all_ages=True)
    assert conversation_id in [r.conversation_id for r in both.results]
    await backend.change_archived(conversation_id, False)
    assert not (await backend.get(conversation_id)).archived


async def test_delete_and_trash_remove_a_conversation(backend: Backend) -> None:
    deleted, trashed = await new(backend, "to delete"), await new(backend, "to trash")
    assert await backend.delete(deleted) is True
    assert await backend.trash(trashed) == trashed
    for gone in (deleted, trashed):
        with pytest.raises(NotFound):
            await backend.get(gone)


async def test_the_trash_gives_back_what_it_holds_and_empties_for_good(backend: Backend) -> None:
    kept, gone = await new(backend, "to restore"), await new(backend, "to empty")
    await backend.rename(kept, "Restore me")
    for conversation_id in (kept, gone):
        await backend.trash(conversation_id)
    listed = {item.conversation_id: item.title for item in await backend.list_trash()}
    assert listed[kept] == "Restore me" and gone in listed
    restored = await backend.restore(kept[:12])
    assert restored.conversation_id == kept and restored.title == "Restore me"
    assert (await backend.get(kept)).title == "Restore me"
    with pytest.raises(NotFound, match="trash"):
        await backend.restore(kept)
    with pytest.raises(InvalidInput):
        await backend.empty_trash(["not-an-id"])
    assert gone in {item.conversation_id for item in await backend.list_trash()}  # the refusal deleted nothing
    assert await backend.empty_trash([gone]) == 1
    assert gone not in {item.conversation_id for item in await backend.list_trash()}


async def test_an_openhands_trajectory_imports_with_its_events(backend: Backend) -> None:
    raw = (TRAJECTORIES_DIR / "basic.json").read_bytes()
    conversation_id = (await backend.import_trajectory(raw)).conversation_id
    events = await backend.search_events(conversation_id)
    assert len(events) == len(orjson.loads(raw))
    with pytest.raises(InvalidInput):
        await backend.import_trajectory(b"[{not json")
    assert Path(await backend.workspace(conversation_id[:8])).name == "workspace"


async def test_an_experiment_config_is_written_once(backend: Backend) -> None:
    conversation_id = await new(backend)
    assert await backend.set_experiment_config(conversation_id, {"config": {"variant": "a"}}) is True
    assert await backend.set_experiment_config(conversation_id, {"config": {"variant": "b"}}) is False


# -- loops -----------------------------------------------------------------------------


async def test_a_loop_asks_before_a_command_and_does_what_was_decided(backend: Backend, llm: FakeLLMServer) -> None:
    llm.responder = Script(
        ToolCall("execute_bash", {"command": "echo approved > a.txt"}),
        ToolCall("execute_bash", {"command": "echo rejected > b.txt"}),
        Text("Done, without b.txt."),
    )
    conversation_id = await new(backend)
    assert await backend.start(conversation_id) in (ConversationStatus.STARTING, ConversationStatus.RUNNING)
    assert await backend.start(conversation_id) in (ConversationStatus.STARTING, ConversationStatus.RUNNING)  # idempotent
    first = await until(lambda: backend.pending_action(conversation_id))
    assert first["args"]["command"] == "echo approved > a.txt"
    assert (await backend.get(conversation_id)).agent_state is AgentState.AWAITING_USER_CONFIRMATION
    await backend.approve(conversation_id)

    async def second_pending() -> Any:
        pending = await backend.pending_action(conversation_id)
        return pending if pending and pending["args"]["command"].endswith("b.txt") else None

    await until(second_pending)
    await backend.reject(conversation_id)

    async def waiting_for_user() -> bool:
        return (await backend.get(conversation_id)).agent_state is AgentState.AWAITING_USER_INPUT

    await until(waiting_for_user)
    events = await backend.search_events(conversation_id)
    outputs = [e for e in events if e.get("observation") == "run"]
    assert len(outputs) == 1 and exit_code_of(outputs[0]) == 0
    assert [e for e in events if e.get("observation") == "user_rejected"]
    with pytest.raises(InvalidInput, match="no action waiting"):
        await backend.approve(conversation_id)
    stopped = await backend.stop(conversation_id)
    assert stopped.message == "Conversation stopped successfully"
    again = await backend.stop(conversation_id)
    assert again.message == "Conversation was not running"


async def test_the_live_stream_carries_events_and_states_as_they_happen(backend: Backend, llm: FakeLLMServer) -> None:
    llm.responder = Script(Text("Hello from the agent."))
    conversation_id = await new(backend, "Say hello")
    seen: list[Any] = []
    ready = asyncio.Event()

    async def follow() -> None:
        stream = backend.updates()
        ready.set()
        async for update in stream:
            if getattr(update, "conversation_id", None) == conversation_id:
                seen.append(update)

    follower = asyncio.create_task(follow())
    await ready.wait()
    await asyncio.sleep(0.3)  # the stream is connected
    await backend.start(conversation_id)

    async def answered() -> bool:
        return any(isinstance(u, EventAdded) and u.event.get("message") == "Hello from the agent." for u in seen)

    await until(answered)
    assert any(isinstance(u, StatusChanged) and u.status is ConversationStatus.RUNNING for u in seen)
    follower.cancel()
    await backend.stop(conversation_id)


async def test_deleting_a_running_conversation_stops_its_loop_first(backend: Backend, llm: FakeLLMServer) -> None:
    llm.responder = Script(ToolCall("execute_bash", {"command": "echo never > never.txt"}))
    conversation_id = await new(backend)
    await backend.start(conversation_id)
    await until(lambda: backend.pending_action(conversation_id))
    assert await backend.delete(conversation_id) is True
    with pytest.raises(NotFound):
        await backend.get(conversation_id)
    await asyncio.sleep(0.3)  # a loop left running would re-create its directory
    with pytest.raises(NotFound):
        await backend.get(conversation_id)


async def test_messages_are_checked_and_stored(backend: Backend) -> None:
    conversation_id = await new(backend)
    for bad in ("", "   "):
        with pytest.raises(InvalidInput, match="empty"):
            await backend.send_message(conversation_id, bad)
    stored = await backend.send_message(conversation_id, "one more thing")
    events = await backend.search_events(conversation_id)
    assert events[-1]["id"] == stored["id"] and events[-1]["message"] == "one more thing"


async def test_events_page_forwards_and_backwards(backend: Backend) -> None:
    conversation_id = await new(backend, "first")
    for n in range(104):
        await backend.send_message(conversation_id, f"message {n}")
    events = await backend.search_events(conversation_id)
    assert len(events) == 105 and [e["id"] for e in events] == sorted(e["id"] for e in events)
    newest = await backend.search_events(conversation_id, reverse=True, limit=3)
    assert [e["message"] for e in newest] == ["message 103", "message 102", "message 101"]
    window = await backend.search_events(conversation_id, start_id=events[10]["id"], end_id=events[12]["id"])
    assert [e["id"] for e in window] == [e["id"] for e in events[10:13]]


async def test_exports_are_trajectories_without_the_key(backend: Backend) -> None:
    conversation_id = await new(backend, f"my key is {API_KEY}")
    await backend.rename(conversation_id, "Exported")
    trajectory = orjson.loads(await backend.export_json(conversation_id))
    assert trajectory[0]["source"] == "user" and API_KEY not in orjson.dumps(trajectory).decode()
    markdown = await backend.export_markdown(conversation_id)
    assert "Exported" in markdown and API_KEY not in markdown
    with zipfile.ZipFile(io.BytesIO(await backend.export_zip(conversation_id))) as archive:
        names = archive.namelist()
        assert names[0] == "meta.json" and orjson.loads(archive.read("meta.json"))["title"] == "Exported"
        assert names[1:] == [f"event_{number:06d}_{event['id']}.json" for number, event in enumerate(trajectory)]
        assert [orjson.loads(archive.read(name)) for name in names[1:]] == trajectory


# -- settings --------------------------------------------------------------------------


async def test_settings_are_checked_and_a_refusal_changes_nothing(backend: Backend) -> None:
    saved = await backend.update_settings({"max_iterations": 33})
    assert saved.max_iterations == 33
    with pytest.raises(InvalidInput, match="max_iterations"):
        await backend.update_settings({"max_iterations": 0})
    with pytest.raises(InvalidInput):
        await backend.update_settings({"no_such_setting": 1})
    assert (await backend.load_settings()).max_iterations == 33
    assert await backend.settings_overrides() == {}  # no CONVTUI_* setting in the tests' environment


async def test_the_api_key_never_comes_back_over_the_server(backend: Backend) -> None:
    settings = await backend.load_settings()
    if isinstance(backend, RemoteBackend):
        assert settings.api_key() != API_KEY and API_KEY[-4:] in (settings.api_key() or "")
    else:
        assert settings.api_key() == API_KEY


# -- the inbox -------------------------------------------------------------------------


async def test_the_inbox_holds_what_waits_for_a_person_oldest_first(backend: Backend, llm: FakeLLMServer) -> None:
    """A question, a loop ended at its step limit and an action to approve,
    in the order they began to wait; a rejection's reason reaches the agent;
    dismissing takes the ended one out, and only it."""
    default_steps = (await backend.load_settings()).max_iterations
    await backend.update_settings({"max_iterations": 1})
    try:
        llm.responder = Script(Text("Which file should I change?"))
        question = await new(backend, "Change a file")
        await backend.start(question)

        async def asks() -> bool:
            return (await backend.get(question)).agent_state is AgentState.AWAITING_USER_INPUT

        await until(asks)
        llm.responder = Script(ToolCall("execute_bash", {"command": "true"}), title="Limit")
        limited = await new(backend, "Take many steps")
        await backend.set_always_approve(limited, True)
        await backend.start(limited)

        async def ended_at_the_limit() -> bool:
            return (await backend.get(limited)).attention == "limit"

        await until(ended_at_the_limit)
        llm.responder = Script(ToolCall("execute_bash", {"command": "rm -rf build"}))
        approval = await new(backend, "Clean up")
        await backend.start(approval)
        await until(lambda: backend.pending_action(approval))

        mine = {question, limited, approval}
        items = [item for item in await backend.inbox() if item.conversation_id in mine]
        assert [(item.conversation_id, item.kind.value) for item in items] == [
            (question, "reply"), (limited, "limit"), (approval, "approve"),
        ]  # fmt: skip
        assert items[0].message == "Which file should I change?"
        assert "max_iterations" in items[1].message
        assert items[2].action["args"]["command"] == "rm -rf build"
        assert items[0].since <= items[1].since <= items[2].since
        waiting = await backend.search(status="waiting", limit=100)
        assert mine <= {info.conversation_id for info in waiting.results}  # the filter holds the same

        with pytest.raises(InvalidInput, match="at most 2,000"):
            await backend.reject(approval, reason="x" * 2_001)
        assert await backend.pending_action(approval) is not None  # a refused reason decides nothing
        await backend.reject(approval, reason="  keep the build directory  ")

        async def rejected() -> list[dict]:
            events = await backend.search_events(approval)
            return [e for e in events if e.get("observation") == "user_rejected"]

        [rejection] = await until(rejected)
        assert rejection["content"] == "The user rejected this action. Their reason: keep the build directory"

        assert (await backend.dismiss(limited)).attention is None
        left = {item.conversation_id for item in await backend.inbox()}
        assert limited not in left and question in left
        with pytest.raises(NotFound):
            await backend.dismiss("0" * 32)
    finally:
        await backend.update_settings({"max_iterations": default_steps})
        for conversation_id in (question, approval):
            await backend.stop(conversation_id)


# -- search by what a conversation did ---------------------------------------------------


async def test_conversations_are_found_by_the_words_paths_and_commands_of_their_events(
    backend: Backend, llm: FakeLLMServer
) -> None:
    """OpenHands trajectories (real data) imported, and a loop that ran a
    command: each found by what it did, not by its title."""
    game = (await backend.import_trajectory((TRAJECTORIES_DIR / "basic.json").read_bytes())).conversation_id
    chat = (await backend.import_trajectory((TRAJECTORIES_DIR / "basic_interactions.json").read_bytes())).conversation_id
    await backend.set_always_approve(ran := await new(backend, "Count the lines"), True)
    llm.responder = Script(ToolCall("execute_bash", {"command": "wc -l quokka_report.txt"}), Text("Done."))
    await backend.start(ran)

    async def answered() -> bool:
        return (await backend.get(ran)).agent_state is AgentState.AWAITING_USER_INPUT

    await until(answered)
    await backend.stop(ran)

    async def found(**what: str) -> set[str]:
        page = await backend.search(limit=100, all_ages=True, **what)
        return {info.conversation_id for info in page.results} & {game, chat, ran}

    assert await found(event_words="Goldbach conjecture") == {chat}
    assert await found(event_words="conjecture goldb") == {chat}  # the last word may be a start
    assert await found(event_path="game_2048.py") == {game}
    assert await found(event_command="wc -l") == {ran}
    assert await found(event_words="quokka") == {ran}  # the command's words are words too
    assert await found(event_words="2048", event_path="game_2048") == {game}
    assert await found(event_words='" NEAR( * ^') == set()  # query syntax is only text
    assert await found(event_words="Goldbach", query="no such title") == set()  # with the metadata filters
