"""A full disk, a read-only disk and a vanished data directory, at the
moment convtui writes.

Root ignores permission bits, so the trouble is made where the OS would
report it: the `os` functions that `durable_files` and `events` call are
replaced (through a proxy of the `os` module, only in those modules) by ones
that fail with ENOSPC or EROFS exactly as the kernel does (a write that
fills the disk writes what fits, then fails; fd operations carry no file
name, os.open does). When the machine lets us mount a small tmpfs, the same
checks also run against a real full disk and a real read-only filesystem.

What must hold after each failure: the operation raises a StorageError
whose message is one line naming the problem; every shard parses, no
temporary file is left, nothing stored before is changed; the in-memory index
agrees with a store freshly opened from disk; and once the trouble ends the
same operation succeeds.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import subprocess
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from convtui import cli
from convtui.backend import durable_files
from convtui.backend import events as events_module
from convtui.backend import store as store_module
from convtui.backend.doctor import run_doctor
from convtui.backend.errors import ConvtuiError, NotFound, StorageError
from convtui.backend.events import EventLog
from convtui.backend.service import ConversationService
from convtui.backend.shard_storage import load_json_file
from convtui.backend.store import ConversationStore

NO_SPACE = os.strerror(errno.ENOSPC)  # "No space left on device"
READ_ONLY = os.strerror(errno.EROFS)  # "Read-only file system"

_REAL_OS = os


# -- making the disk misbehave -------------------------------------------------------


class _OSProxy:
    """Stands in for the `os` module inside one convtui module: every name is
    the real one unless an override is installed."""

    def __init__(self, overrides: dict[str, Callable[..., Any]]) -> None:
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        override = self._overrides.get(name)
        return override if override is not None else getattr(_REAL_OS, name)


class DiskTrouble:
    """Full or read-only disk for the write paths of durable_files (store
    shards, settings) and events (event logs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.overrides: dict[str, Callable[..., Any]] = {}
        proxy = _OSProxy(self.overrides)
        for module in (durable_files, events_module):
            monkeypatch.setattr(module, "os", proxy)
        self.failures = 0

    def full(self, room: int = 0) -> None:
        """The disk has `room` bytes left: writes store what fits, then fail
        with ENOSPC (no file name: os.write works on a descriptor)."""
        left = [room]

        def write(fd: int, data: Any) -> int:
            if left[0] > 0:
                written = _REAL_OS.write(fd, bytes(data[: left[0]]))
                left[0] -= written
                return written
            self.failures += 1
            raise OSError(errno.ENOSPC, NO_SPACE)

        self.overrides["write"] = write

    def fsync_fails(self) -> None:
        """Every write is accepted but the flush to disk fails (ENOSPC at
        fsync, as on NFS or a thin-provisioned volume)."""

        def fsync(fd: int) -> None:
            # fsync_directory opens a directory read-only and fsyncs it: let that pass.
            if _REAL_OS.path.isdir(f"/proc/self/fd/{fd}"):
                return _REAL_OS.fsync(fd)
            self.failures += 1
            raise OSError(errno.ENOSPC, NO_SPACE)

        self.overrides["fsync"] = fsync

    def read_only(self) -> None:
        """The filesystem was remounted read-only: opening for writing and
        renaming fail with EROFS naming the path."""

        def open_(path: Any, flags: int, mode: int = 0o777, *args: Any, **kwargs: Any) -> int:
            if flags & (_REAL_OS.O_WRONLY | _REAL_OS.O_RDWR | _REAL_OS.O_CREAT | _REAL_OS.O_TRUNC):
                self.failures += 1
                raise OSError(errno.EROFS, READ_ONLY, str(path))
            return _REAL_OS.open(path, flags, mode, *args, **kwargs)

        def replace(source: Any, target: Any, *args: Any, **kwargs: Any) -> None:
            self.failures += 1
            raise OSError(errno.EROFS, READ_ONLY, str(source), None, str(target))

        self.overrides["open"] = open_
        self.overrides["replace"] = replace

    def end(self) -> None:
        self.overrides.clear()


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> DiskTrouble:
    return DiskTrouble(monkeypatch)


FAULTS: dict[str, Callable[[DiskTrouble], None]] = {
    "full-disk-mid-write": lambda disk: disk.full(room=10),
    "full-disk-at-fsync": DiskTrouble.fsync_fails,
    "read-only-disk": DiskTrouble.read_only,
}
EXPECTED_REASON = {
    "full-disk-mid-write": NO_SPACE,
    "full-disk-at-fsync": NO_SPACE,
    "read-only-disk": READ_ONLY,
}


# -- what the data directory holds ----------------------------------------------------


def temporaries(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob(".*.tmp"))


def assert_files_whole(root: Path) -> None:
    """Every shard and the settings parse, no temporary is left. (Checked
    before any fresh store is opened: opening one removes stale temporaries.)"""
    assert temporaries(root) == [], "temporary files were left behind"
    for shard in sorted((root / "store").glob("meta-*.json")):
        load_json_file(shard, shard.read_bytes())
    settings = root / "settings.json"
    if settings.exists():
        import orjson

        orjson.loads(settings.read_bytes())


@dataclass
class Stored:
    documents: dict[str, dict[str, Any]]
    events: dict[str, list[dict[str, Any]]]
    settings: bytes | None


def stored(root: Path) -> Stored:
    """What a fresh process would read from `root`."""
    fresh = ConversationStore(root / "store")
    try:
        documents = {document["conversation_id"]: document for document in fresh.iter_documents()}
    finally:
        fresh.close()
    events = {}
    conversations = root / "conversations"
    if conversations.is_dir():
        for directory in sorted(conversations.iterdir()):
            events[directory.name] = EventLog(directory).search_events()
    settings = root / "settings.json"
    return Stored(documents, events, settings.read_bytes() if settings.exists() else None)


def assert_nothing_damaged(before: Stored, after: Stored) -> None:
    assert after.documents == before.documents
    assert after.settings == before.settings
    for conversation_id, events in before.events.items():
        assert after.events.get(conversation_id, [])[: len(events)] == events, f"events of {conversation_id} changed"


def assert_index_matches_disk(service: ConversationService) -> None:
    fresh = ConversationStore(service.data_dir.store)
    try:
        on_disk = {document["conversation_id"]: document for document in fresh.iter_documents()}
    finally:
        fresh.close()
    in_memory = {document["conversation_id"]: document for document in service.store.iter_documents()}
    assert in_memory == on_disk


def one_line(error: BaseException) -> str:
    text = str(error)
    assert text and "\n" not in text, f"not one line: {text!r}"
    assert "Traceback" not in text
    return text


# -- a data directory with something in it ---------------------------------------------


@dataclass
class Stocked:
    service: ConversationService
    ids: list[str]


async def stock(service: ConversationService) -> list[str]:
    ids = []
    for number in range(3):
        response = await service.new_conversation({"initial_user_msg": f"message {number}"})
        ids.append(response.conversation_id)
    await service.rename(ids[0], "Kept title")
    await service.append_events(ids[1], [agent_message("an answer")])
    await service.set_setting("max_iterations", "9")
    return ids


@pytest.fixture
async def stocked(service: ConversationService) -> Stocked:
    return Stocked(service, await stock(service))


def agent_message(text: str) -> dict[str, Any]:
    return {"source": "agent", "action": "message", "message": text, "args": {"content": text}}


BIG = "x" * 10_000

Operation = Callable[[Stocked], Awaitable[Any]]
OPERATIONS: dict[str, Operation] = {
    "new_conversation": lambda s: s.service.new_conversation({"initial_user_msg": "hello"}),
    "new_conversation-no-message": lambda s: s.service.new_conversation({}),
    "rename": lambda s: s.service.rename(s.ids[1], "A new title"),
    "archive": lambda s: s.service.archive(s.ids[1]),
    "delete": lambda s: s.service.delete(s.ids[2]),
    "append": lambda s: s.service.append_events(s.ids[0], [agent_message(BIG)]),
    "set_setting": lambda s: s.service.set_setting("max_iterations", "7"),
}


def effect_seen(name: str, stocked: Stocked, after: Stored) -> bool:
    """Did the operation, retried once the trouble ended, take effect on disk?"""
    ids = stocked.ids
    if name.startswith("new_conversation"):
        return len(after.documents) > 3
    if name == "rename":
        return after.documents[ids[1]]["title"] == "A new title"
    if name == "archive":
        return after.documents[ids[1]]["archived"] is True
    if name == "delete":
        return ids[2] not in after.documents and not (stocked.service.data_dir.conversation(ids[2])).exists()
    if name == "append":
        return after.events[ids[0]][-1]["message"] == BIG
    if name == "set_setting":
        return b'"max_iterations": 7' in (after.settings or b"")
    raise AssertionError(name)


# -- the store, the event log and the settings under a full or read-only disk ---------


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_a_write_that_hits_disk_trouble_fails_cleanly_and_recovers(
    stocked: Stocked, disk: DiskTrouble, operation: str, fault: str
) -> None:
    service, root = stocked.service, stocked.service.data_dir.root
    before = stored(root)

    FAULTS[fault](disk)
    with pytest.raises(StorageError) as caught:
        await OPERATIONS[operation](stocked)
    assert disk.failures >= 1, "the fault was never reached: the test does not test anything"
    message = one_line(caught.value)
    assert EXPECTED_REASON[fault] in message
    disk.end()

    assert_files_whole(root)
    assert_nothing_damaged(before, stored(root))
    assert_index_matches_disk(service)

    # The trouble is over: the same operation goes through.
    await OPERATIONS[operation](stocked)
    assert_files_whole(root)
    after = stored(root)
    assert effect_seen(operation, stocked, after)
    assert_index_matches_disk(service)
    assert (await service.load_settings()).max_iterations in (7, 9)


@pytest.mark.parametrize("fault", ["full-disk-mid-write", "full-disk-at-fsync"])
async def test_a_failed_append_leaves_the_event_log_as_it_was(
    stocked: Stocked, disk: DiskTrouble, fault: str
) -> None:
    service = stocked.service
    path = service.data_dir.conversation(stocked.ids[0]) / "events.jsonl"
    before = path.read_bytes()
    FAULTS[fault](disk)
    with pytest.raises(StorageError):
        await service.append_events(stocked.ids[0], [agent_message(BIG)])
    disk.end()
    after = path.read_bytes()
    assert after.endswith(b"\n"), "events.jsonl ends in a partial line"
    assert after == before, "the failed append is in the log"
    assert run_doctor(service.data_dir.root).findings == []


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_a_failed_new_conversation_leaves_nothing_behind(
    stocked: Stocked, disk: DiskTrouble, fault: str
) -> None:
    root = stocked.service.data_dir.root
    directories = sorted(path.name for path in (root / "conversations").iterdir())
    FAULTS[fault](disk)
    with pytest.raises(StorageError):
        await stocked.service.new_conversation({"initial_user_msg": "hello"})
    disk.end()
    assert sorted(path.name for path in (root / "conversations").iterdir()) == directories
    assert run_doctor(root).findings == []


@pytest.mark.parametrize("operation", ["rename", "append", "set_setting"])
async def test_a_full_disk_message_names_the_file(stocked: Stocked, disk: DiskTrouble, operation: str) -> None:
    disk.full()
    with pytest.raises(StorageError) as caught:
        await OPERATIONS[operation](stocked)
    assert str(stocked.service.data_dir.root) in str(caught.value)


async def test_a_failed_version_bump_does_not_escape_as_a_raw_oserror(
    stocked: Stocked, monkeypatch: pytest.MonkeyPatch
) -> None:
    def pwrite(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, NO_SPACE)

    monkeypatch.setattr(store_module, "os", _OSProxy({"pwrite": pwrite}))
    try:
        await stocked.service.rename(stocked.ids[0], "Bumped")
    except ConvtuiError:
        pass  # a clear error is fine too; an OSError is not
    assert_index_matches_disk(stocked.service)


async def test_stored_settings_survive_a_failed_save(stocked: Stocked, disk: DiskTrouble) -> None:
    service = stocked.service
    disk.full(room=10)
    with pytest.raises(StorageError):
        await service.update_settings({"max_iterations": 3, "llm_model": "openai/x"})
    disk.end()
    settings = await service.load_settings()
    assert (settings.max_iterations, settings.llm_model) == (9, None)
    assert os.stat(service.data_dir.settings).st_mode & 0o777 == 0o600


async def test_concurrent_writes_during_the_trouble_all_fail_cleanly(stocked: Stocked, disk: DiskTrouble) -> None:
    """Several threads hitting the full disk at once (the UI archiving many
    rows): each fails on its own, nothing is half-written."""
    service, root = stocked.service, stocked.service.data_dir.root
    before = stored(root)
    disk.full()
    results = await asyncio.gather(
        *(service.rename(conversation_id, f"title {n}") for n, conversation_id in enumerate(stocked.ids)),
        *(service.archive(conversation_id) for conversation_id in stocked.ids),
        service.set_setting("max_iterations", "3"),
        *(service.append_events(conversation_id, [agent_message("x")]) for conversation_id in stocked.ids),
        return_exceptions=True,
    )
    disk.end()
    assert all(isinstance(result, StorageError) for result in results), results
    assert_files_whole(root)
    assert_nothing_damaged(before, stored(root))
    assert_index_matches_disk(service)


# -- the data directory deleted under an open service ---------------------------------


READS: dict[str, Operation] = {
    "search": lambda s: s.service.search(),
    "list_ids": lambda s: s.service.list_ids(store_module.ConversationFilter()),
    "get": lambda s: s.service.get(s.ids[0]),
    "metadata": lambda s: s.service.metadata(s.ids[0]),
    "search_events": lambda s: s.service.search_events(s.ids[0]),
    "export_json": lambda s: s.service.export_json(s.ids[0]),
    "export_markdown": lambda s: s.service.export_markdown(s.ids[0]),
    "load_settings": lambda s: s.service.load_settings(),
    "get_experiment_config": lambda s: s.service.get_experiment_config(s.ids[0]),
    "refresh": lambda s: s.service.refresh(),
}
WRITES: dict[str, Operation] = {
    "rename": lambda s: s.service.rename(s.ids[0], "After the deletion"),
    "archive": lambda s: s.service.archive(s.ids[1]),
    "touch": lambda s: s.service.touch(s.ids[1]),
    "append_events": lambda s: s.service.append_events(s.ids[2], [agent_message("late")]),
    "set_experiment_config": lambda s: s.service.set_experiment_config(s.ids[2], {"config": {"a": 1}}),
    "delete": lambda s: s.service.delete(s.ids[2]),
    "set_setting": lambda s: s.service.set_setting("max_iterations", "4"),
    "new_conversation": lambda s: s.service.new_conversation({"initial_user_msg": "after"}),
    "import_trajectory": lambda s: s.service.import_trajectory(
        b'[{"id": 0, "source": "user", "action": "message", "message": "hi", "args": {"content": "hi"}}]'
    ),
}


@pytest.mark.parametrize("name", [*READS, *WRITES])
async def test_only_convtui_errors_escape_after_the_data_directory_is_deleted(stocked: Stocked, name: str) -> None:
    shutil.rmtree(stocked.service.data_dir.root)
    operation = {**READS, **WRITES}[name]
    try:
        await asyncio.wait_for(operation(stocked), 10)
    except ConvtuiError as error:
        one_line(error)


async def test_reads_after_the_data_directory_is_deleted_are_empty_or_clear_errors(stocked: Stocked) -> None:
    service = stocked.service
    shutil.rmtree(service.data_dir.root)
    try:
        assert (await service.search()).results == []
    except StorageError:
        pass
    with pytest.raises((NotFound, StorageError)):
        await service.get(stocked.ids[0])


@pytest.mark.parametrize("name", ["rename", "archive"])
async def test_changing_a_conversation_that_vanished_with_its_directory_is_refused(
    stocked: Stocked, name: str
) -> None:
    shutil.rmtree(stocked.service.data_dir.root)
    with pytest.raises((NotFound, StorageError)):
        await WRITES[name](stocked)


async def test_writes_after_the_data_directory_is_deleted_recreate_what_they_need(stocked: Stocked) -> None:
    service = stocked.service
    shutil.rmtree(service.data_dir.root)
    settings = await service.set_setting("max_iterations", "4")
    assert settings.max_iterations == 4 and (await service.load_settings()).max_iterations == 4
    created = (await service.new_conversation({"initial_user_msg": "after"})).conversation_id
    assert [event["message"] for event in await service.search_events(created)] == ["after"]
    assert created in stored(service.data_dir.root).documents
    assert_files_whole(service.data_dir.root)


async def test_an_open_service_follows_a_recreated_data_directory(stocked: Stocked) -> None:
    service = stocked.service
    root = service.data_dir.root
    shutil.rmtree(root)
    mine = (await service.new_conversation({})).conversation_id
    other = await ConversationService.open(root, user_id="alice")
    try:
        theirs = (await other.new_conversation({})).conversation_id
        await other.rename(mine, "Renamed by the other process")
    finally:
        other.close()
    listed = {info.conversation_id: info.title for info in (await service.search()).results}
    assert set(listed) == {mine, theirs}
    assert listed[mine] == "Renamed by the other process"
    assert_index_matches_disk(service)


# -- the CLI ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _cli_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI acts as the owner of the conversations `stock` creates."""
    monkeypatch.setenv("CONVTUI_USER", "alice")


def make_data(root: Path) -> list[str]:
    async def run() -> list[str]:
        service = await ConversationService.open(root, user_id="alice")
        try:
            return await stock(service)
        finally:
            service.close()

    return asyncio.run(run())


def run_cli(capsys: pytest.CaptureFixture[str], root: Path, *arguments: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(["--data-dir", str(root), *arguments])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_failure(result: tuple[int, str, str], reason: str) -> None:
    code, out, err = result
    assert code == 1, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("convtui: ") and reason in lines[0] and "Traceback" not in err


CLI_WRITES: dict[str, Callable[[list[str]], list[str]]] = {
    "rename": lambda ids: ["rename", ids[0][:8], "A CLI title"],
    "new": lambda ids: ["new", "hello from the CLI"],
    "archive": lambda ids: ["archive", ids[1]],
    "delete": lambda ids: ["delete", "--yes", ids[2]],
    "send": lambda ids: ["send", ids[0][:8], "one more thing"],
    "config-set": lambda ids: ["config", "set", "max_iterations", "5"],
    "import": lambda ids: ["import", str(Path(__file__).parent / "fixtures" / "openhands-trajectories" / "basic.json")],
}


@pytest.mark.parametrize("fault", ["full-disk-mid-write", "read-only-disk"])
@pytest.mark.parametrize("command", list(CLI_WRITES))
def test_the_cli_prints_one_line_and_exits_1_on_disk_trouble(
    data_dir: Path, capsys: pytest.CaptureFixture[str], disk: DiskTrouble, command: str, fault: str
) -> None:
    ids = make_data(data_dir)
    before = stored(data_dir)
    FAULTS[fault](disk)
    result = run_cli(capsys, data_dir, *CLI_WRITES[command](ids))
    disk.end()
    assert_one_line_failure(result, EXPECTED_REASON[fault])
    assert result[1] == ""
    assert_files_whole(data_dir)
    assert_nothing_damaged(before, stored(data_dir))
    code, _, err = run_cli(capsys, data_dir, *CLI_WRITES[command](ids))
    assert code == 0, err


def test_the_cli_reports_a_data_directory_deleted_under_it(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = make_data(data_dir)
    original_open = ConversationService.open.__func__

    async def open_then_lose_the_directory(cls: type, root: Path, user_id: str | None = None) -> ConversationService:
        service = await original_open(cls, root, user_id)
        shutil.rmtree(root)
        return service

    monkeypatch.setattr(ConversationService, "open", classmethod(open_then_lose_the_directory))
    result = run_cli(capsys, data_dir, "rename", ids[0][:8], "Lost")
    assert_one_line_failure(result, "")


@pytest.mark.parametrize("command", ["list", "show", "export", "config-show"])
def test_cli_reads_after_the_data_directory_is_deleted(
    data_dir: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    ids = make_data(data_dir)
    shutil.rmtree(data_dir)
    arguments = {
        "list": ["list"],
        "show": ["show", ids[0][:8]],
        "export": ["export", ids[0][:8]],
        "config-show": ["config", "show"],
    }[command]
    code, out, err = run_cli(capsys, data_dir, *arguments)
    if command in ("show", "export"):
        assert_one_line_failure((code, out, err), "no conversation")
    else:
        assert code == 0 and err == ""
        if command == "list":
            assert ids[0][:8] not in out


# -- a real small filesystem ------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, if this machine lets us mount one."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], check=False, capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mount_point)], check=False, capture_output=True)
        if subprocess.run(["umount", str(mount_point)], check=False, capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False, capture_output=True)


def fill(path: Path) -> None:
    """Take every free byte of the filesystem `path` is on."""
    with open(path, "wb", buffering=0) as handle:
        for size in (1 << 16, 1 << 10, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC


async def test_a_real_full_disk(small_disk: Path) -> None:
    root = small_disk / "data"
    service = await ConversationService.open(root, user_id="alice")
    try:
        stocked = Stocked(service, await stock(service))
        before = stored(root)
        filler = small_disk / "filler"
        fill(filler)
        for name, operation in OPERATIONS.items():
            if name == "append":
                operation = lambda s: s.service.append_events(s.ids[0], [agent_message("y" * 100_000)])
            with pytest.raises(StorageError) as caught:
                await asyncio.wait_for(operation(stocked), 10)
            assert NO_SPACE in one_line(caught.value), name
        assert temporaries(root) == []
        for shard in (root / "store").glob("meta-*.json"):
            load_json_file(shard, shard.read_bytes())
        assert_nothing_damaged(before, stored(root))
        assert_index_matches_disk(service)

        filler.unlink()
        for name, operation in OPERATIONS.items():
            await asyncio.wait_for(operation(stocked), 10)
        assert_files_whole(root)
        after = stored(root)
        for name in OPERATIONS:
            assert effect_seen(name, stocked, after), name
        assert_index_matches_disk(service)
    finally:
        service.close()


def test_a_real_read_only_data_directory(small_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = small_disk / "data"
    ids = make_data(root)
    before = stored(root)
    remount = subprocess.run(
        ["mount", "-o", "remount,ro", str(small_disk)], check=False, capture_output=True, text=True
    )
    if remount.returncode != 0:
        pytest.skip(f"cannot remount the tmpfs read-only: {remount.stderr.strip()}")
    for arguments in CLI_WRITES.values():
        assert_one_line_failure(run_cli(capsys, root, *arguments(ids)), READ_ONLY)
    # Reading a read-only data directory: it works, or fails in one line.
    for arguments in (["list"], ["show", ids[0][:8]], ["config", "show"]):
        code, out, err = run_cli(capsys, root, *arguments)
        if code != 0:
            assert_one_line_failure((code, out, err), READ_ONLY)
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert_files_whole(root)
    assert_nothing_damaged(before, stored(root))
    code, _, err = run_cli(capsys, root, "rename", ids[0][:8], "Writable again")
    assert code == 0, err
    assert stored(root).documents[ids[0]]["title"] == "Writable again"


async def test_a_real_full_disk_leaves_whole_event_lines(small_disk: Path) -> None:
    root = small_disk / "data"
    service = await ConversationService.open(root, user_id="alice")
    try:
        ids = await stock(service)
        path = service.data_dir.conversation(ids[0]) / "events.jsonl"
        before = path.read_bytes()
        fill(small_disk / "filler")
        with pytest.raises(StorageError):
            await service.append_events(ids[0], [agent_message("y" * 100_000)])
        assert path.read_bytes() == before
    finally:
        service.close()


# -- the UI ---------------------------------------------------------------------------------


async def test_the_ui_survives_a_full_disk_during_a_rename(data_dir: Path, disk: DiskTrouble) -> None:
    from convtui.screens.main import MainScreen
    from convtui.widgets.conversation_list import ConversationList

    from .ui.seed import seed_store, settle, still_app

    seed_store(data_dir)
    app = still_app(data_dir)

    def screen() -> MainScreen:
        return next(s for s in app.screen_stack if isinstance(s, MainScreen))

    def ready() -> bool:
        return any(isinstance(s, MainScreen) for s in app.screen_stack) and bool(screen().query_one(ConversationList).ids)

    def errors() -> list[str]:
        return [str(n.message) for n in app._notifications if n.severity == "error"]

    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, ready)
        service = screen().backend.service
        first = screen().query_one(ConversationList).ids[0]
        title = service.row(first).title

        disk.full()
        await pilot.press("r")
        await settle(pilot, lambda: type(app.screen).__name__ == "RenameScreen")
        await pilot.press(*"Never stored", "enter")
        await settle(pilot, lambda: any(NO_SPACE in message for message in errors()))
        assert isinstance(app.screen, MainScreen) and app.is_running
        assert service.row(first).title == title
        assert all("\n" not in message and "Traceback" not in message for message in errors())

        disk.end()
        await pilot.press("r")
        await settle(pilot, lambda: type(app.screen).__name__ == "RenameScreen")
        await pilot.press(*"Stored now", "enter")
        await settle(pilot, lambda: service.row(first).title == "Stored now")
    assert stored(data_dir).documents[first]["title"] == "Stored now"
