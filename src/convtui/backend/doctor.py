"""`convtui doctor`: find damaged files in a data directory and, with
`repair`, recover without destroying anything.

Damaged files are renamed aside (`<name>.damaged-<time>`), never deleted or
overwritten. Conversations whose metadata was lost (a damaged shard, or a
crash between creating a conversation's files and its metadata) are
re-created from what their directories hold."""

from __future__ import annotations

import os
import sqlite3
import time
from datetime import datetime
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from pydantic import ValidationError

from .data_dir import DataDirectory
from .errors import ConvtuiError
from .events import EventLog
from .search_index import INDEX_FILE, SearchIndex
from .models import CONVERSATION_ID_PATTERN, ConversationMetadata, ConversationTrigger, default_title, utc_now
from .service import DELETED_PREFIX, remove_tree
from .trash import TRASH_PREFIX, TRASH_RECORD
from .sandbox import SandboxPolicy, SandboxStatus
from .sandbox import status as sandbox_status
from .settings import Settings, SettingsStore
from .shard_storage import load_json_file
from .store import SHARD_PREFIX, TABLE, ConversationStore


@dataclass
class Finding:
    path: Path
    problem: str
    repaired: str | None = None


@dataclass
class DoctorReport:
    conversations: int = 0
    findings: list[Finding] = field(default_factory=list)
    indexed_events: int | None = None  # the search index rebuilt (repair) with this many events
    sandbox: SandboxStatus | None = None  # how commands would run now

    @property
    def healthy(self) -> bool:
        return all(finding.repaired for finding in self.findings)


def _move_aside(path: Path) -> Path:
    target = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    os.replace(path, target)
    return target


def _check_shards(data_dir: DataDirectory, report: DoctorReport, repair: bool) -> set[str]:
    known: set[str] = set()
    if not data_dir.store.is_dir():
        return known
    for path in sorted(data_dir.store.glob(f"{SHARD_PREFIX}??.json")):
        try:
            data = load_json_file(path, path.read_bytes())
            for document in data.get(TABLE, {}).values():
                known.add(ConversationMetadata.model_validate(document).conversation_id)
        except (ConvtuiError, ValidationError, OSError, AttributeError) as error:
            finding = Finding(path, f"unreadable metadata shard: {str(error).splitlines()[0][:200]}")
            if repair:
                finding.repaired = f"moved aside to {_move_aside(path).name}"
            report.findings.append(finding)
    return known


def _check_conversation_directories(
    data_dir: DataDirectory, known: set[str], report: DoctorReport, repair: bool
) -> None:
    if not data_dir.conversations.is_dir():
        return
    store = ConversationStore(data_dir.store) if repair else None
    for directory in sorted(data_dir.conversations.iterdir()):
        deleted_id = directory.name.removeprefix(DELETED_PREFIX)
        if deleted_id != directory.name:
            deleted_id = deleted_id.removeprefix(TRASH_PREFIX)  # the trash being emptied
        if deleted_id != directory.name and CONVERSATION_ID_PATTERN.match(deleted_id) and not directory.is_symlink():
            finding = Finding(directory, "a deletion cut short (by a crash)")
            if repair:
                remove_tree(directory)
                finding.repaired = "removed"
            report.findings.append(finding)
            continue
        trashed_id = directory.name.removeprefix(TRASH_PREFIX)
        if trashed_id != directory.name and CONVERSATION_ID_PATTERN.match(trashed_id) and not directory.is_symlink():
            if not (directory / TRASH_RECORD).is_file():
                report.findings.append(Finding(directory, "a trashed conversation without its record (left alone)", "left alone"))
            continue  # in the trash: `convtui trash` lists, restores, empties
        if not CONVERSATION_ID_PATTERN.match(directory.name) or directory.is_symlink():
            report.findings.append(Finding(directory, "not a conversation directory (left alone)", "left alone"))
            continue
        event_log = EventLog(directory)
        events_path = event_log.path
        if events_path.exists():
            raw = events_path.read_bytes()
            if raw and not raw.endswith(b"\n"):
                finding = Finding(events_path, "torn last line (a crash during an append)")
                if repair:
                    cut = raw.rfind(b"\n") + 1
                    (directory / f"events.jsonl.torn-{time.strftime('%Y%m%dT%H%M%S')}").write_bytes(raw[cut:])
                    with open(events_path, "r+b") as handle:
                        handle.truncate(cut)
                        os.fsync(handle.fileno())
                    finding.repaired = "torn line saved beside the log and cut off"
                report.findings.append(finding)
        if directory.name in known:
            continue
        if (directory / TRASH_RECORD).is_file():
            # A move to the trash cut short after its metadata went: finish it, never revive.
            finding = Finding(directory, "a move to the trash cut short (by a crash)")
            if repair:
                target = directory.with_name(TRASH_PREFIX + directory.name)
                if target.exists():
                    finding.repaired = "left alone: a trashed copy exists already"
                else:
                    os.rename(directory, target)
                    finding.repaired = "moved into the trash"
            report.findings.append(finding)
            continue
        finding = Finding(directory, "conversation files without metadata")
        if store is not None:
            events = event_log.search_events()
            now = utc_now()
            created = now
            if events and events[0].get("timestamp"):
                try:
                    created = datetime.fromisoformat(events[0]["timestamp"])
                except ValueError:
                    pass
            metadata = ConversationMetadata(
                conversation_id=directory.name,
                title=default_title(directory.name),
                trigger=ConversationTrigger.REPLAY if (directory / "replay.json").exists() else None,
                created_at=created,
                last_updated_at=now,
            )
            if store.get(directory.name) is None:
                store.insert(metadata.to_document())
            finding.repaired = "metadata re-created (default title)"
        report.findings.append(finding)
    if store is not None:
        store.close()


def _check_search_index(data_dir: DataDirectory, report: DoctorReport, repair: bool) -> None:
    """A damaged index is moved aside; `repair` rebuilds it from the event
    logs of the conversations in the store (the logs are the truth)."""
    path = data_dir.root / INDEX_FILE
    problem = None
    if path.exists():
        try:
            index = SearchIndex(path)
            try:
                problem = index.check()
            finally:
                index.close()
        except sqlite3.DatabaseError as error:
            problem = str(error)
    if problem is not None:
        finding = Finding(path, f"the search index is damaged: {problem}")
        if repair:
            finding.repaired = f"moved aside to {_move_aside(path).name}; rebuilt from the event logs"
            for suffix in ("-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)
        report.findings.append(finding)
    if not repair or not data_dir.store.is_dir():
        return
    store = ConversationStore(data_dir.store)
    index = SearchIndex(path)
    try:
        logs = (
            (document["conversation_id"], EventLog(data_dir.conversation(document["conversation_id"])))
            for document in store.iter_documents()
        )
        report.indexed_events = index.rebuild(logs)
    finally:
        index.close()
        store.close()


def run_doctor(root: Path, repair: bool = False) -> DoctorReport:
    """Check (and with `repair`, mend) the data directory at `root`."""
    data_dir = DataDirectory(root)
    report = DoctorReport()
    known = _check_shards(data_dir, report, repair)
    report.conversations = len(known)
    _check_conversation_directories(data_dir, known, report, repair)
    _check_search_index(data_dir, report, repair)
    if data_dir.settings.exists():
        try:
            SettingsStore(data_dir.settings).load_file()
        except ConvtuiError as error:
            finding = Finding(data_dir.settings, str(error).split(" is damaged ")[-1][:200])
            if repair:
                finding.repaired = f"moved aside to {_move_aside(data_dir.settings).name}; defaults in force"
            report.findings.append(finding)
        mode = data_dir.settings.exists() and data_dir.settings.stat().st_mode & 0o077
        if mode:
            finding = Finding(data_dir.settings, "readable by other users")
            if repair:
                os.chmod(data_dir.settings, 0o600)
                finding.repaired = "mode set to 0600"
            report.findings.append(finding)
    report.sandbox = _sandbox(data_dir)
    return report


def _sandbox(data_dir: DataDirectory) -> SandboxStatus:
    try:
        settings = SettingsStore(data_dir.settings).load()
    except ConvtuiError:
        settings = Settings()  # damaged: the defaults are in force
    return sandbox_status(SandboxPolicy.from_settings(settings), data_dir.root)


def report_json(report: DoctorReport) -> bytes:
    return orjson.dumps(
        {
            "conversations": report.conversations,
            "healthy": report.healthy,
            "indexed_events": report.indexed_events,
            "sandbox": None if report.sandbox is None else {
                "sandboxed": report.sandbox.sandboxed, "description": report.sandbox.description
            },
            "findings": [
                {"path": str(f.path), "problem": f.problem, "repaired": f.repaired} for f in report.findings
            ],
        }
    )
