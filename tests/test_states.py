"""States that must not lie: archiving a running loop, the title a
conversation shows before the model names it, and the trash."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from convtui.backend.doctor import run_doctor
from convtui.backend.errors import InvalidInput, NotFound
from convtui.backend.loop_lock import LoopLock
from convtui.backend.manager import ConversationManager
from convtui.backend.models import ConversationStatus, derived_title
from convtui.backend.service import ConversationService, user_message
from convtui.backend.trash import TRASH_RECORD, trash_directory

from .fake_llm import FakeLLMServer, ToolCall
from .test_agent import Script, configured, llm, manager, new, until  # noqa: F401 (fixtures)

# -- archiving a running conversation ------------------------------------------------


async def test_archiving_a_loop_awaiting_confirmation_stops_it_first_and_says_so(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    llm.responder = Script(ToolCall("execute_bash", {"command": "echo hi > a.txt"}))
    conversation_id = await new(configured)
    await manager.start(conversation_id, until_idle=True)
    await until(lambda: manager.pending_action(conversation_id) is not None)

    info, stopped = await configured.change_archived(conversation_id, True)

    assert stopped == "its loop was stopped first"
    assert not manager.is_running(conversation_id)
    assert info.archived and info.status is ConversationStatus.ARCHIVED
    assert (await configured.get(conversation_id)).status is ConversationStatus.ARCHIVED
    assert not (configured.data_dir.workspace(conversation_id) / "a.txt").exists()


async def test_archiving_a_stopped_conversation_stops_nothing(service: ConversationService) -> None:
    ConversationManager(service)
    conversation_id = await new(service)
    info, stopped = await service.change_archived(conversation_id, True)
    assert info.archived and stopped is None


async def test_archiving_a_loop_that_cannot_be_stopped_from_here_is_refused(service: ConversationService) -> None:
    """No loop manager (or a loop on another host): refused, nothing changes."""
    conversation_id = await new(service)
    lock = LoopLock(service.data_dir.conversation(conversation_id))
    lock.acquire()
    try:
        await service.update_metadata(conversation_id, status="RUNNING", runner_pid=os.getpid())
        with pytest.raises(InvalidInput, match="is running; stop its loop first"):
            await service.set_archived(conversation_id, True)
        assert not (await service.get(conversation_id)).archived
        await service.update_metadata(conversation_id, runner_host="elsewhere.example")
        ConversationManager(service)
        with pytest.raises(InvalidInput, match="running on host elsewhere.example"):
            await service.set_archived(conversation_id, True)
        assert not (await service.get(conversation_id)).archived
    finally:
        lock.release()


# -- titles ----------------------------------------------------------------------------


def test_a_derived_title_is_the_start_of_the_first_line() -> None:
    assert derived_title("  Fix the flaky\ttest  \n\nmore detail") == "Fix the flaky test"
    long = derived_title("Refactor " + "the parser module " * 10)
    assert long is not None and long.endswith("…") and len(long) <= 60 and " " in long
    assert derived_title("\n \x1b\x07 \n") is None
    assert derived_title("a\x1b[31mred") == "a [31mred"


async def test_a_first_message_titles_the_conversation_at_once(service: ConversationService) -> None:
    with_message = await new(service, "Add a --verbose flag to the CLI\nand document it")
    assert (await service.get(with_message)).title == "Add a --verbose flag to the CLI"

    later = (await service.new_conversation({})).conversation_id
    assert (await service.get(later)).title == f"Conversation {later[:5]}"
    await service.append_events(later, [user_message("Port the tests to pytest")])
    assert (await service.get(later)).title == "Port the tests to pytest"
    await service.append_events(later, [user_message("A second message changes nothing")])
    assert (await service.get(later)).title == "Port the tests to pytest"


async def test_a_replayed_trajectory_is_titled_by_its_first_user_message(service: ConversationService) -> None:
    fixture = Path(__file__).parent / "fixtures" / "openhands-trajectories" / "basic.json"
    replayed = (await service.new_conversation({"replay_json": fixture.read_text()})).conversation_id
    first = next(event for event in json.loads(fixture.read_text()) if event.get("source") == "user")
    assert (await service.get(replayed)).title == derived_title(first["args"]["content"] or first["message"])
    assert not (await service.get(replayed)).title.startswith("Conversation ")


async def test_the_model_title_replaces_a_derived_title_but_never_a_rename(service: ConversationService) -> None:
    derived = await new(service, "Make the build faster")
    assert await service.set_title_if_default(derived, "Speed up the build") is True
    assert (await service.get(derived)).title == "Speed up the build"
    assert await service.set_title_if_default(derived, "Another model title") is False

    renamed = await new(service, "Make the build faster")
    await service.rename(renamed, "Make the build faster")  # the same text, but now the person's
    assert await service.set_title_if_default(renamed, "Speed up the build") is False
    assert (await service.get(renamed)).title == "Make the build faster"

    later = (await service.new_conversation({})).conversation_id
    await service.rename(later, "Mine")
    await service.append_events(later, [user_message("Port the tests")])
    assert (await service.get(later)).title == "Mine"


# -- the trash ----------------------------------------------------------------------


async def test_trash_and_restore_bring_back_everything(service: ConversationService) -> None:
    keep = await new(service, "keep me")
    doomed = await new(service, "trash me")
    await service.rename(doomed, "Precious")
    await service.archive(doomed)
    (service.data_dir.workspace(doomed)).mkdir(parents=True)
    (service.data_dir.workspace(doomed) / "notes.txt").write_text("work")

    assert await service.trash(doomed[:6]) == doomed
    with pytest.raises(NotFound):
        await service.get(doomed)
    assert not service.data_dir.conversation(doomed).exists()
    trashed = await service.list_trash()
    assert [(t.conversation_id, t.title) for t in trashed] == [(doomed, "Precious")]

    info = await service.restore(doomed[:6])
    assert (info.title, info.archived) == ("Precious", True)
    assert [e["message"] for e in await service.search_events(doomed)] == ["trash me"]
    assert (service.data_dir.workspace(doomed) / "notes.txt").read_text() == "work"
    assert not (service.data_dir.conversation(doomed) / TRASH_RECORD).exists()
    assert await service.list_trash() == []
    assert {i.conversation_id for i in (await service.search(archived=None)).results} == {keep, doomed}
    with pytest.raises(NotFound, match="in the trash"):
        await service.restore(doomed)


async def test_empty_trash_deletes_for_good(service: ConversationService) -> None:
    first, second, kept = [await new(service, f"m{i}") for i in range(3)]
    await service.trash(first)
    await service.trash(second)
    assert await service.empty_trash([first[:8]]) == 1
    assert [t.conversation_id for t in await service.list_trash()] == [second]
    assert await service.empty_trash() == 1
    assert await service.list_trash() == []
    assert not any(p.name.endswith(first) or p.name.endswith(second) for p in service.data_dir.conversations.iterdir())
    assert (await service.get(kept)).title == "m2"


async def test_doctor_never_revives_the_trash(service: ConversationService, data_dir: Path) -> None:
    trashed = await new(service, "in the trash")
    await service.trash(trashed)
    assert run_doctor(data_dir).findings == []

    # A move to the trash cut short after the metadata went (before the rename).
    cut = await new(service, "cut short")
    directory = service.data_dir.conversation(cut)
    await service.trash(cut)
    os.rename(trash_directory(directory), directory)
    report = run_doctor(data_dir)
    assert [f.problem for f in report.findings] == ["a move to the trash cut short (by a crash)"]
    assert run_doctor(data_dir, repair=True).healthy
    assert run_doctor(data_dir).findings == []
    reopened = await ConversationService.open(data_dir)
    try:
        assert (await reopened.search(archived=None)).results == []
        assert {t.conversation_id for t in await reopened.list_trash()} == {trashed, cut}
    finally:
        reopened.close()


async def test_trashing_a_running_loop_stops_it(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    llm.responder = Script(ToolCall("execute_bash", {"command": "echo hi"}))
    conversation_id = await new(configured)
    await manager.start(conversation_id, until_idle=True)
    await until(lambda: manager.pending_action(conversation_id) is not None)
    await configured.trash(conversation_id)
    assert not manager.is_running(conversation_id)
    restored = await configured.restore(conversation_id)
    assert restored.status is ConversationStatus.STOPPED


async def test_a_derived_title_never_holds_the_api_key(service: ConversationService) -> None:
    secret = "sk-test-SECRET-0123456789abcdef"
    await service.set_setting("llm_api_key", secret)
    conversation_id = await new(service, f"use the key {'x' * 30} {secret} for the deploy")
    title = (await service.get(conversation_id)).title
    assert title.startswith("use the key") and "sk-test" not in title


# -- status filters people look for ---------------------------------------------------


async def test_status_waiting_finished_and_error_filters(
    configured: ConversationService, manager: ConversationManager, llm: FakeLLMServer
) -> None:
    from convtui.backend.query import parse_query

    llm.responder = Script(ToolCall("execute_bash", {"command": "echo hi"}))
    waiting = await new(configured, "needs a confirmation")
    finished = await new(configured, "done already")
    await configured.update_metadata(finished, agent_state="finished")
    failed = await new(configured, "went wrong")
    await configured.update_metadata(failed, status="ERROR", agent_state="error")
    idle = await new(configured, "never started")
    await manager.start(waiting, until_idle=True)
    await until(lambda: manager.pending_action(waiting) is not None)

    async def shown(text: str) -> set[str]:
        return set(await configured.list_ids(parse_query(text).filter))

    assert await shown("status:waiting") == {waiting}
    assert await shown("status:running") == {waiting}
    assert await shown("status:finished") == {finished}
    assert await shown("status:error") == {failed}
    assert await shown("status:stopped") == {finished, idle}
    assert [i.conversation_id for i in (await configured.search(status="waiting")).results] == [waiting]
    ids = configured.list_ids_now(parse_query("status:waiting").filter)
    assert ids is None or set(ids) == {waiting}


async def test_trashing_a_loop_that_cannot_be_stopped_from_here_is_refused(service: ConversationService) -> None:
    conversation_id = await new(service)
    lock = LoopLock(service.data_dir.conversation(conversation_id))
    lock.acquire()
    try:
        await service.update_metadata(conversation_id, status="RUNNING", runner_pid=os.getpid())
        with pytest.raises(InvalidInput, match="stop its loop first .* then delete it"):
            await service.trash(conversation_id)
        assert (await service.get(conversation_id)).status is ConversationStatus.RUNNING
        assert await service.list_trash() == []
    finally:
        lock.release()


async def test_a_restore_cut_short_goes_back_to_the_trash_never_half_restored(
    service: ConversationService, data_dir: Path
) -> None:
    """A crash after the directory was renamed back, before the metadata was
    stored: doctor --repair returns it to the trash, whole, to restore again."""
    conversation_id = await new(service, "restore me")
    await service.trash(conversation_id)
    directory = service.data_dir.conversation(conversation_id)
    os.rename(trash_directory(directory), directory)  # the restore's first step, then the crash
    assert [f.problem for f in run_doctor(data_dir).findings] == ["a move to the trash cut short (by a crash)"]
    assert run_doctor(data_dir, repair=True).healthy
    info = await service.restore(conversation_id)
    assert info.title == "restore me"
    assert [e["message"] for e in await service.search_events(conversation_id)] == ["restore me"]
    assert run_doctor(data_dir).findings == []
