"""`convtui trash` and `convtui archive` of a running loop."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


from convtui.backend.loop_lock import STOP_REQUEST_NAME, LoopLock
from convtui.backend.models import ConversationStatus
from convtui.backend.service import ConversationService

from .test_cli import Cli, cli  # noqa: F401 (fixture)


def test_trash_lists_restores_and_empties(cli: Cli, data_dir: Path) -> None:
    assert cli("trash").strip() == "The trash is empty."
    kept, restored, emptied = (cli.new(f"task {n}") for n in range(3))

    async def move_to_trash() -> None:
        service = await ConversationService.open(data_dir)
        try:
            await service.trash(restored)
            await service.trash(emptied)
        finally:
            service.close()

    import asyncio

    asyncio.run(move_to_trash())
    listing = cli("trash", "list")
    assert restored[:8] in listing and emptied[:8] in listing and "task 1" in listing
    assert {t["conversation_id"] for t in cli.json("trash", "list", "--json")} == {restored, emptied}
    assert cli("trash", "restore", restored[:6]).startswith(f"restored {restored} task 1")
    assert {i["conversation_id"] for i in cli.json("list", "--json")["results"]} == {kept, restored}
    cli("trash", "restore", "abcdef", code=1)
    assert "no conversation with id abcdef in the trash" in cli.err
    cli("trash", "empty", code=1)  # not at a terminal: refuses without --yes
    assert "--yes" in cli.err
    assert cli("trash", "empty", "--yes").strip() == "deleted 1 conversation(s) for good"
    assert cli.json("trash", "list", "--json") == []
    assert not any(p.name.endswith(emptied) for p in (data_dir / "conversations").iterdir())


def test_archive_stops_a_loop_running_in_another_process_first(cli: Cli, data_dir: Path) -> None:
    """Another convtui runs the loop (here: a thread holding its loop lock that
    lets go when asked through stop.request, as a runner does)."""
    conversation_id = cli.new("long task")
    directory = data_dir / "conversations" / conversation_id
    lock = LoopLock(directory)
    lock.acquire()

    async def mark_running() -> None:
        service = await ConversationService.open(data_dir)
        try:
            await service.update_metadata(conversation_id, status="RUNNING", runner_pid=os.getpid())
        finally:
            service.close()

    import asyncio

    asyncio.run(mark_running())

    def runner() -> None:
        deadline = time.monotonic() + 10
        while not (directory / STOP_REQUEST_NAME).exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        lock.release()

    thread = threading.Thread(target=runner)
    thread.start()
    try:
        out = cli("archive", conversation_id[:8])
    finally:
        thread.join()
    assert out.startswith(f"archived {conversation_id}: its loop was stopped first")
    shown = cli.json("show", conversation_id, "--json")
    assert shown["archived"] is True and shown["status"] != ConversationStatus.RUNNING.value
