"""The conversation service: every operation of SPEC section 3 that needs no LLM."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from convtui.backend.loop_lock import LoopLock
from convtui.backend.errors import AmbiguousId, InvalidInput, NotFound, PermissionDenied
from convtui.backend.models import ConversationStatus, ConversationTrigger, format_timestamp, utc_now
from convtui.backend.service import ConversationService

from .conftest import TRAJECTORIES


async def _new(service: ConversationService, **fields) -> str:
    return (await service.new_conversation(fields)).conversation_id


async def _age(service: ConversationService, conversation_id: str, days: float) -> None:
    """Move a conversation's last activity `days` into the past."""
    moment = utc_now() - timedelta(days=days)
    await service.update_metadata(conversation_id, last_updated_at=moment, created_at=moment)


# -- new ---------------------------------------------------------------------------


async def test_new_conversation_has_default_title_owner_and_first_message(service: ConversationService) -> None:
    response = await service.new_conversation({"initial_user_msg": "Fix the flaky test", "repository": "org/repo"})
    assert response.status == "ok"
    assert response.conversation_status is ConversationStatus.STOPPED
    info = await service.get(response.conversation_id)
    assert info.title == "Fix the flaky test"  # the first message's start, until the model names it
    assert info.user_id == "alice"
    assert info.selected_repository == "org/repo"
    assert info.trigger is ConversationTrigger.GUI
    assert info.created_at.tzinfo is not None
    events = await service.search_events(response.conversation_id)
    assert [(e["id"], e["source"], e["action"], e["args"]["content"]) for e in events] == [
        (0, "user", "message", "Fix the flaky test")
    ]


async def test_new_conversation_refuses_unknown_fields_and_stores_nothing(service: ConversationService) -> None:
    with pytest.raises(InvalidInput, match="conversation_id"):
        await service.new_conversation({"conversation_id": "0" * 32})
    with pytest.raises(InvalidInput, match="selected_branch"):
        await service.new_conversation({"selected_branch": "bad branch name"})
    with pytest.raises(InvalidInput, match="repository"):
        await service.new_conversation({"repository": "/no/such/dir/anywhere"})
    with pytest.raises(InvalidInput, match="replay"):
        await service.new_conversation({"replay_json": "{not json"})
    assert (await service.search(archived=None)).results == []
    assert not any(service.data_dir.conversations.glob("*")) if service.data_dir.conversations.exists() else True


async def test_new_conversation_records_the_trigger(service: ConversationService, tmp_path: Path) -> None:
    task = {"task_type": "FAILING_CHECKS", "repo": "org/app", "issue_number": 7, "title": "CI is red"}
    suggested = await _new(service, suggested_task=task)
    info = await service.get(suggested)
    assert info.trigger is ConversationTrigger.SUGGESTED_TASK
    assert info.selected_repository == "org/app"
    assert "#7" in (await service.search_events(suggested))[0]["message"]

    local_repo = tmp_path / "repo"
    local_repo.mkdir()
    cli = await _new(service, trigger="cli", repository=str(local_repo), selected_branch="feature/x")
    info = await service.get(cli)
    assert (info.trigger, info.selected_repository, info.selected_branch) == (
        ConversationTrigger.CLI,
        str(local_repo.resolve()),
        "feature/x",
    )
    replay = await _new(service, replay_json=TRAJECTORIES[0].read_text())
    assert (await service.get(replay)).trigger is ConversationTrigger.REPLAY
    assert (service.data_dir.conversation(replay) / "replay.json").exists()


# -- search ------------------------------------------------------------------------


async def test_search_applies_filters_before_paging(service: ConversationService) -> None:
    wanted = set()
    for number in range(25):
        repository = "org/wanted" if number % 3 == 0 else "org/other"
        conversation_id = await _new(service, repository=repository)
        if repository == "org/wanted":
            wanted.add(conversation_id)
    seen: list[str] = []
    page_id = None
    page_sizes = []
    while True:
        page = await service.search(page_id=page_id, limit=4, selected_repository="org/wanted")
        page_sizes.append(len(page.results))
        seen.extend(info.conversation_id for info in page.results)
        page_id = page.next_page_id
        if page_id is None:
            break
    assert set(seen) == wanted and len(seen) == len(wanted) == 9
    assert page_sizes == [4, 4, 1]


async def test_search_is_newest_activity_first_and_pages_exactly(service: ConversationService) -> None:
    ids = [await _new(service) for _ in range(6)]
    await service.rename(ids[0], "touched last")
    page = await service.search(limit=6)
    assert [info.conversation_id for info in page.results] == [ids[0], *reversed(ids[1:])]
    assert page.next_page_id is None  # exactly one full page: no token


async def test_search_hides_old_and_archived_unless_asked(service: ConversationService) -> None:
    recent, old, archived = [await _new(service) for _ in range(3)]
    await _age(service, old, days=11)
    await service.archive(archived)
    assert [i.conversation_id for i in (await service.search()).results] == [recent]
    everything = await service.search(max_age=timedelta.max, archived=None)
    assert {i.conversation_id for i in everything.results} == {recent, old, archived}
    only_archived = await service.search(archived=True)
    assert [(i.conversation_id, i.status) for i in only_archived.results] == [(archived, ConversationStatus.ARCHIVED)]
    await service.unarchive(archived)
    assert archived in {i.conversation_id for i in (await service.search()).results}


async def test_search_free_text_matches_title_repository_branch_and_id_prefix(service: ConversationService) -> None:
    a = await _new(service, repository="acme/rocket", selected_branch="launch-fix")
    b = await _new(service)
    await service.rename(b, "Refactor the Parser")

    async def found(text: str) -> set[str]:
        return {i.conversation_id for i in (await service.search(query=text)).results}

    assert await found("parser") == {b}
    assert await found("ROCKET") == {a}
    assert await found("launch") == {a}
    assert await found(a[:6]) == {a}
    assert await found("refactor parser") == {b}
    assert await found("refactor rocket") == set()


async def test_search_filters_by_trigger_and_status(service: ConversationService) -> None:
    cli = await _new(service, trigger="cli")
    gui = await _new(service)
    await service.update_metadata(gui, status="ERROR")
    assert [i.conversation_id for i in (await service.search(conversation_trigger="cli")).results] == [cli]
    assert [i.conversation_id for i in (await service.search(status="error")).results] == [gui]
    with pytest.raises(InvalidInput, match="trigger 'web'"):
        await service.search(conversation_trigger="web")
    with pytest.raises(InvalidInput, match="status"):
        await service.search(status="sleeping")


async def test_search_rejects_bad_limits_and_tokens(service: ConversationService) -> None:
    for limit in (0, 101, -1):
        with pytest.raises(InvalidInput, match="limit"):
            await service.search(limit=limit)
    with pytest.raises(InvalidInput, match="page token"):
        await service.search(page_id="not-a-token!")
    assert len((await service.search(limit=100)).results) == 0


async def test_a_loop_left_running_by_a_dead_process_shows_stopped(service: ConversationService) -> None:
    conversation_id = await _new(service)
    await service.update_metadata(conversation_id, status="RUNNING", runner_pid=12345)
    # Nobody holds the conversation's loop lock: its runner is gone.
    assert (await service.get(conversation_id)).status is ConversationStatus.STOPPED
    assert [i.conversation_id for i in (await service.search(status="stopped")).results] == [conversation_id]
    assert (await service.search(status="running")).results == []
    lock = LoopLock(service.data_dir.conversation(conversation_id))
    assert lock.acquire() is None
    try:
        assert (await service.get(conversation_id)).status is ConversationStatus.RUNNING
        assert [i.conversation_id for i in (await service.search(status="running")).results] == [conversation_id]
    finally:
        lock.release()


# -- get and ids -------------------------------------------------------------------


async def test_get_accepts_unique_prefixes_and_names_problems(service: ConversationService) -> None:
    conversation_id = await _new(service)
    assert (await service.get(conversation_id[:4])).conversation_id == conversation_id
    assert (await service.get(conversation_id.upper())).conversation_id == conversation_id
    with pytest.raises(NotFound, match="no conversation"):
        await service.get("0" * 32 if not conversation_id.startswith("0") else "f" * 32)
    with pytest.raises(InvalidInput, match="not a conversation id"):
        await service.get("../../etc/passwd")
    with pytest.raises(InvalidInput):
        await service.get("")


async def test_ambiguous_prefix_is_refused(service: ConversationService) -> None:
    ids = [await _new(service) for _ in range(40)]
    first_characters = [i[0] for i in ids]
    shared = next(c for c in first_characters if first_characters.count(c) > 1)
    with pytest.raises(AmbiguousId, match="matches several"):
        await service.get(shared)


# -- rename ------------------------------------------------------------------------


async def test_rename_strips_and_moves_activity(service: ConversationService) -> None:
    conversation_id = await _new(service)
    before = (await service.get(conversation_id)).last_updated_at
    changed: list[str] = []
    service.add_change_listener(changed.append)
    info = await service.rename(conversation_id, "   Ship it  ")
    assert info.title == "Ship it"
    assert info.last_updated_at > before
    assert changed == [conversation_id]
    assert (await service.get(conversation_id)).title == "Ship it"


@pytest.mark.parametrize(
    ("title", "reason"),
    [("", "empty"), ("   ", "empty"), ("x" * 201, "201 characters"), ("a\x1b[31mb", "control"), ("a\nb", "control")],
)
async def test_rename_refuses_bad_titles_and_keeps_the_old_one(
    service: ConversationService, title: str, reason: str
) -> None:
    conversation_id = await _new(service)
    await service.rename(conversation_id, "Original")
    with pytest.raises(InvalidInput, match=reason):
        await service.rename(conversation_id, title)
    assert (await service.get(conversation_id)).title == "Original"


async def test_rename_allows_200_characters(service: ConversationService) -> None:
    conversation_id = await _new(service)
    assert (await service.rename(conversation_id, "y" * 200)).title == "y" * 200


async def test_only_the_owner_may_rename(service: ConversationService) -> None:
    conversation_id = await _new(service)
    with pytest.raises(PermissionDenied, match="belongs to alice"):
        await service.rename(conversation_id, "Mine now", user_id="mallory")
    assert (await service.get(conversation_id)).title.startswith("Conversation ")
    with pytest.raises(NotFound):
        await service.rename("ab" * 16, "x")


# -- delete, archive ---------------------------------------------------------------


async def test_delete_removes_its_files_and_nothing_else(service: ConversationService, tmp_path: Path) -> None:
    keep = await _new(service, initial_user_msg="keep me")
    doomed = await _new(service, initial_user_msg="delete me")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("do not delete")
    workspace = service.data_dir.workspace(doomed)
    workspace.mkdir(parents=True)
    (workspace / "link").symlink_to(outside, target_is_directory=True)
    (workspace / "readonly").mkdir()
    (workspace / "readonly" / "file").write_text("x")
    os.chmod(workspace / "readonly", 0o500)

    assert await service.delete(doomed[:6]) is True
    assert not service.data_dir.conversation(doomed).exists()
    assert (outside / "precious.txt").read_text() == "do not delete"
    with pytest.raises(NotFound):
        await service.get(doomed)
    assert await service.delete(doomed) is False
    assert [e["message"] for e in await service.search_events(keep)] == ["keep me"]


async def test_archive_keeps_everything_on_disk(service: ConversationService) -> None:
    conversation_id = await _new(service, initial_user_msg="hello")
    info = await service.archive(conversation_id)
    assert info.archived and info.status is ConversationStatus.ARCHIVED
    assert len(await service.search_events(conversation_id)) == 1
    assert (await service.unarchive(conversation_id)).status is ConversationStatus.STOPPED


# -- experiment config -------------------------------------------------------------


async def test_experiment_config_is_written_once(service: ConversationService) -> None:
    conversation_id = await _new(service)
    assert await service.set_experiment_config(conversation_id, {"config": {"variant": "a"}}) is True
    assert await service.set_experiment_config(conversation_id, {"config": {"variant": "b"}}) is False
    stored = await service.get_experiment_config(conversation_id)
    assert stored is not None and stored.config == {"variant": "a"}
    with pytest.raises(InvalidInput):
        await service.set_experiment_config(conversation_id, {"unknown": 1})


# -- import and export -------------------------------------------------------------


def _essence(event: dict) -> tuple:
    return (
        event["id"],
        event.get("action") or event.get("observation"),
        event.get("source"),
        event.get("args"),
        event.get("extras"),
        event.get("content"),
        event.get("message"),
        event.get("cause"),
        event.get("tool_call_metadata"),
    )


@pytest.mark.parametrize("trajectory", TRAJECTORIES, ids=lambda path: path.name)
async def test_import_then_export_gives_the_same_events(service: ConversationService, trajectory: Path) -> None:
    original = orjson.loads(trajectory.read_bytes())
    response = await service.import_trajectory(trajectory.read_bytes())
    assert response.conversation_status is ConversationStatus.STOPPED
    assert (await service.get(response.conversation_id)).trigger is ConversationTrigger.REPLAY
    exported = orjson.loads(await service.export_json(response.conversation_id))
    assert [_essence(e) for e in exported] == [_essence(e) for e in original]
    assert exported == original  # nothing added, nothing lost


async def test_import_refuses_bad_trajectories_and_stores_nothing(service: ConversationService) -> None:
    for raw, reason in [
        (b"not json", "not valid JSON"),
        (b'{"a": 1}', "list of events"),
        (b'[{"id": 0, "source": "user"}]', "exactly one of"),
        (b'[{"id": 3, "action": "message"}, {"id": 1, "action": "message"}]', "does not follow"),
        (b'[{"id": 0, "action": "message", "source": "robot"}]', "source"),
    ]:
        with pytest.raises(InvalidInput, match=reason):
            await service.import_trajectory(raw)
    assert (await service.search(archived=None, max_age=timedelta.max)).results == []


async def test_markdown_export_reads_like_the_conversation(service: ConversationService) -> None:
    response = await service.import_trajectory(TRAJECTORIES[0].read_bytes())
    await service.rename(response.conversation_id, "The 2048 game")
    markdown = await service.export_markdown(response.conversation_id)
    assert markdown.startswith("# The 2048 game\n")
    assert "Please create a simple 2048 game" in markdown
    assert "/workspace/game_2048.py" in markdown
    assert markdown.count("### ") == len(orjson.loads(TRAJECTORIES[0].read_bytes()))


async def test_export_never_contains_the_api_key(service: ConversationService) -> None:
    secret = "sk-test-SECRET-0123456789abcdef"
    await service.set_setting("llm_api_key", secret)
    conversation_id = await _new(service, initial_user_msg=f"my key is {secret}")
    assert secret.encode() not in await service.export_json(conversation_id)
    assert secret not in await service.export_markdown(conversation_id)


# -- several processes -------------------------------------------------------------


async def test_a_second_service_sees_changes_after_refresh(service: ConversationService, data_dir: Path) -> None:
    other = await ConversationService.open(data_dir, user_id="alice")
    try:
        conversation_id = await _new(service)
        version = other.data_version()
        await service.rename(conversation_id, "Renamed elsewhere")
        assert other.data_version() != version
        assert (await other.get(conversation_id)).title == "Renamed elsewhere"
        page = await other.search()
        assert page.results[0].title == "Renamed elsewhere"
    finally:
        other.close()


async def test_update_metadata_validates(service: ConversationService) -> None:
    conversation_id = await _new(service)
    with pytest.raises(InvalidInput, match="status"):
        await service.update_metadata(conversation_id, status="DANCING")
    info = await service.update_metadata(conversation_id, accumulated_cost=0.25, total_tokens=1200, pr_number=[4])
    assert (info.accumulated_cost, info.total_tokens, info.pr_number) == (0.25, 1200, [4])
    assert format_timestamp(info.last_updated_at) <= format_timestamp(utc_now())


async def test_always_approve_is_stored_and_old_data_without_it_loads(service: ConversationService) -> None:
    conversation_id = await _new(service)
    assert not (await service.get(conversation_id)).always_approve
    assert (await service.update_metadata(conversation_id, always_approve=True)).always_approve
    assert (await service.metadata(conversation_id)).always_approve
    # A document written before the field existed: off.
    def drop_field(document: dict) -> dict:
        return {key: value for key, value in document.items() if key != "always_approve"}

    service.store.update(conversation_id, drop_field)
    assert "always_approve" not in service.store.get(conversation_id)
    assert not (await service.get(conversation_id)).always_approve
    assert not (await service.metadata(conversation_id)).always_approve


async def test_a_conversation_without_a_known_owner_is_renamed_only_by_the_data_directorys_owner(
    data_dir: Path,
) -> None:
    from convtui.backend.doctor import run_doctor
    from convtui.backend.service import directory_owner

    first = await ConversationService.open(data_dir, user_id="alice")
    conversation_id = await _new(first)
    first.close()
    for shard in (data_dir / "store").glob("meta-*.json"):
        shard.unlink()  # the metadata lost: doctor --repair re-creates it from the directory
    run_doctor(data_dir, repair=True)
    service = await ConversationService.open(data_dir, user_id="mallory")
    try:
        assert (await service.get(conversation_id)).user_id is None
        with pytest.raises(PermissionDenied, match="no known owner.*only the data directory's owner"):
            await service.rename(conversation_id, "Mine now")
        owner = directory_owner(data_dir)
        renamed = await service.rename(conversation_id, "Recovered", user_id=owner)
        assert renamed.title == "Recovered"
    finally:
        service.close()
