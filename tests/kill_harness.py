"""SIGKILL a writer again and again on one data directory and check, after
each kill, that everything it had been told was written is there, whole.

Shared by the crash tests (tests/test_store_crash.py, tests/test_ui_crash.py,
a few dozen kills each) and the soak (bench/soak.py, hundreds). Two writers:

- `kill_store_writer`: tests/workers/store_writer.py, the store and event
  logs driven directly, as the CLI does.
- `kill_ui_with_loops`: tests/workers/ui_with_loops.py, the real app,
  headless, with replay loops running and metadata written beside them.

Each worker logs an "intent" line before a call and a "done" line after it
returns, so the checker knows every write that returned and which writes were
in flight when the kill landed (those may or may not be there).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

from convtui.backend.doctor import run_doctor
from convtui.backend.events import EventLog
from convtui.backend.loop_lock import runner_pid
from convtui.backend.models import ConversationMetadata, utc_now
from convtui.backend.replay import REPLAYED_ACTIONS, replay_steps
from convtui.backend.service import DELETED_PREFIX, ConversationService
from convtui.backend.shard_storage import load_json_file
from convtui.backend.store import (
    SHARD_PREFIX,
    TABLE,
    ConversationFilter,
    ConversationStore,
    shard_of,
)

from .fake_llm import FakeLLMServer, Response, Text, ToolCall
from .workers.ui_with_loops import event_digest

WORKERS = Path(__file__).parent / "workers"
START_TIMEOUT = 60.0  # a loaded two-core machine starts Python slowly
ACTIVE = ("STARTING", "RUNNING")
# A share of the app's kills land this many seconds after it was started,
# ready or not: while it opens the data directory and resumes loops.
EARLY_KILL_SHARE = 0.2
EARLY_KILL = (0.2, 1.5)


@dataclass
class KillReport:
    """What one series of kills did and verified."""

    name: str
    kills: int = 0
    mid_write: int = 0  # kills that landed while a logged write was in flight
    writes_verified: int = (
        0  # writes that had returned, each found on disk after a kill
    )
    seconds: float = 0.0
    details: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, amount: int = 1) -> None:
        self.details[name] = self.details.get(name, 0) + amount

    def summary(self) -> str:
        extra = "".join(
            f", {value} {name}" for name, value in sorted(self.details.items())
        )
        return (
            f"{self.name}: {self.kills} kills, {self.mid_write} mid-write, "
            f"{self.writes_verified} writes verified{extra}, {self.seconds:.1f} s"
        )


# -- killing ---------------------------------------------------------------------------


def _wait_for_line(process: subprocess.Popen[str], timeout: float) -> str:
    """The first line the process prints, or "" if it printed none in time."""
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            return ""
    return process.stdout.readline()


def _descendants(pid: int) -> list[int]:
    """Processes started by `pid` and by its children (from /proc)."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as handle:
                    children = [int(child) for child in handle.read().split()]
            except OSError:
                continue
            found += children
            queue += children
    return found


@dataclass(frozen=True)
class Killed:
    pid: int
    ready: bool  # it had said "ready" (an early kill may land before)


def kill_at_random_moment(
    command: list[str],
    rng: random.Random,
    delay: tuple[float, float],
    early: tuple[float, float] | None = None,
) -> Killed:
    """Start `command` and SIGKILL it at a random moment: `delay` seconds
    (uniform) after its "ready" line, or, with `early`, that many seconds
    after it was started, ready or not (a kill during start-up). Processes
    it started are killed too, so none outlives the test. Fails with the
    worker's stderr if it stopped by itself or never got ready."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        if early is None:
            line = _wait_for_line(process, START_TIMEOUT)
            if line != "ready\n":
                process.kill()
                _, stderr = process.communicate(timeout=30)
                raise AssertionError(
                    f"worker did not start ({line!r}): {stderr[-3000:]}"
                )
        # The random moment is the point: there is no event to wait for.
        time.sleep(rng.uniform(*(early or delay)))
        if process.poll() is not None:
            _, stderr = process.communicate(timeout=30)
            raise AssertionError(
                f"worker stopped before it was killed: {stderr[-3000:]}"
            )
        children = _descendants(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        for child in children:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        ready = early is None or process.stdout.read() == "ready\n"
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        raise
    finally:
        stderr = "" if process.stderr.closed else process.stderr.read()
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL, stderr[-3000:]
    return Killed(process.pid, ready)


class LogReader:
    """The worker's log, read incrementally. A line torn by the kill is cut
    off, so the next worker does not glue its first line onto it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0

    def new_entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, "r+b") as handle:
            handle.seek(self.offset)
            raw = handle.read()
            complete = raw.rfind(b"\n") + 1
            if complete < len(raw):
                handle.truncate(self.offset + complete)
        self.offset += complete
        return [
            json.loads(line) for line in raw[:complete].splitlines() if line.strip()
        ]


def temporary_files(directory: Path) -> list[Path]:
    return list(directory.rglob(".*.tmp"))


def check_shards_parse(store_dir: Path) -> None:
    """Every shard is whole JSON and holds only its own conversations."""
    for path in sorted(store_dir.glob(f"{SHARD_PREFIX}*.json")):
        raw = path.read_bytes()
        orjson.loads(raw)  # raises on a torn or mixed file
        data = load_json_file(path, raw)
        for document in data.get(TABLE, {}).values():
            assert (
                shard_of(document["conversation_id"])
                == path.name[len(SHARD_PREFIX) : -5]
            ), path


def _read_event_file(path: Path) -> tuple[list[dict[str, Any]], bytes]:
    """The complete lines of an event log, parsed (each must parse), and the
    incomplete tail a kill mid-append may leave."""
    raw = path.read_bytes() if path.exists() else b""
    complete = raw.rfind(b"\n") + 1
    return [orjson.loads(line) for line in raw[:complete].splitlines()], raw[complete:]


# -- the store writer (as the CLI writes) ----------------------------------------------


def metadata_document(conversation_id: str, title: str) -> dict[str, Any]:
    now = utc_now()
    return ConversationMetadata(
        conversation_id=conversation_id,
        title=title,
        created_at=now,
        last_updated_at=now,
    ).to_document()


class _StoreExpected:
    """What must be in the store, from the writes that returned."""

    def __init__(self, hot: list[str]) -> None:
        self.hot = hot
        self.counters = {conversation_id: 0 for conversation_id in hot}
        self.inserted: set[str] = set()
        self.removed: set[str] = set()
        self.events: dict[str, list[tuple[int, str]]] = {
            conversation_id: [] for conversation_id in hot
        }
        self.done = 0

    def apply(self, entry: dict[str, Any]) -> None:
        op, conversation_id = entry["op"], entry["id"]
        self.done += 1
        if op == "update":
            assert entry["value"] == self.counters[conversation_id] + 1, entry
            self.counters[conversation_id] = entry["value"]
        elif op == "insert":
            self.inserted.add(conversation_id)
        elif op == "remove":
            assert entry["removed"], entry
            self.inserted.discard(conversation_id)
            self.removed.add(conversation_id)
        elif op == "append":
            known = self.events[conversation_id]
            first = known[-1][0] + 1 if known else 0
            assert entry["ids"] == list(range(first, first + len(entry["contents"]))), (
                entry
            )
            known.extend(zip(entry["ids"], entry["contents"]))

    def check_and_resolve(self, data_dir: Path, pending: dict[str, Any] | None) -> None:
        """Compare the directory with what returned; a write in flight at the
        kill may or may not be there, and once seen it is taken as done."""
        store_dir = data_dir / "store"
        check_shards_parse(store_dir)
        store = ConversationStore(store_dir)
        try:
            pending_op = pending["op"] if pending else None
            pending_id = pending["id"] if pending else None

            for conversation_id, value in self.counters.items():
                document = store.get(conversation_id)
                assert document is not None, f"hot conversation {conversation_id} lost"
                allowed = (
                    {value, value + 1}
                    if (pending_op, pending_id) == ("update", conversation_id)
                    else {value}
                )
                assert document["prompt_tokens"] in allowed, (
                    conversation_id,
                    document["prompt_tokens"],
                    value,
                )
                assert document["title"] == f"count {document['prompt_tokens']}", (
                    document
                )
                self.counters[conversation_id] = document["prompt_tokens"]

            if pending_op == "insert" and store.get(pending_id) is not None:
                self.inserted.add(pending_id)
            if pending_op == "remove" and store.get(pending_id) is None:
                self.inserted.discard(pending_id)
                self.removed.add(pending_id)
            expected_ids = set(self.hot) | self.inserted
            assert set(store.all_ids()) == expected_ids
            documents, next_key = store.search(
                ConversationFilter(archived=None), limit=len(expected_ids) + 1
            )
            assert (
                next_key is None
                and {d["conversation_id"] for d in documents} == expected_ids
            )
        finally:
            store.close()

        for conversation_id, known in self.events.items():
            directory = data_dir / "conversations" / conversation_id
            stored = [
                (event["id"], event["message"])
                for event in EventLog(directory).search_events()
            ]
            allowed = [known]
            if (pending_op, pending_id) == ("append", conversation_id):
                first = known[-1][0] + 1 if known else 0
                contents = pending["contents"]
                allowed.append(
                    known + list(zip(range(first, first + len(contents)), contents))
                )
            assert stored in allowed, (
                conversation_id,
                stored[-5:],
                known[-5:],
                pending,
            )
            self.events[conversation_id] = stored
            # The raw file: every complete line is an event, in id order; only
            # the append in flight may have left an incomplete last line.
            lines, tail = _read_event_file(directory / "events.jsonl")
            assert [(e["id"], e["message"]) for e in lines] == stored
            if tail:
                assert (pending_op, pending_id) == ("append", conversation_id), tail


def kill_store_writer(
    work_dir: Path, kills: int, seed: int, report: KillReport | None = None
) -> KillReport:
    """SIGKILL tests/workers/store_writer.py `kills` times, 20-200 ms into its
    work, on one data directory under `work_dir`; check after each kill.
    Counts go to `report` as they happen (the soak prints it on a failure)."""
    report = report or KillReport("store writer")
    started = time.monotonic()
    rng = random.Random(seed)
    data_dir = work_dir / "data"
    store_dir = data_dir / "store"
    log = LogReader(work_dir / "returned.log")

    # Two hot conversations share a shard, so a shard holds several counters.
    hot = [
        "ab" + uuid.uuid4().hex[2:],
        "ab" + uuid.uuid4().hex[2:],
        "cd" + uuid.uuid4().hex[2:],
        uuid.uuid4().hex,
    ]
    store = ConversationStore(store_dir)
    for conversation_id in hot:
        store.insert(metadata_document(conversation_id, "count 0"))
    store.close()
    (data_dir / "hot.json").write_text(json.dumps(hot))

    expected = _StoreExpected(hot)
    for kill in range(kills):
        command = [
            sys.executable,
            str(WORKERS / "store_writer.py"),
            str(data_dir),
            str(log.path),
        ]
        pid = kill_at_random_moment(
            [*command, str(seed % 10**6 * 100_000 + kill)], rng, (0.02, 0.2)
        ).pid
        report.kills += 1

        # Stray temporary files do not accumulate: what earlier writers left
        # was cleaned up when the store was opened since, so all there may be
        # is the one file of the write this writer had in flight.
        temporary = temporary_files(data_dir)
        assert len(temporary) <= 1, temporary
        assert all(
            f".{pid}." in path.name and path.parent == store_dir for path in temporary
        ), (pid, temporary)
        report.count("temporary files left by a kill", len(temporary))

        pending = None
        for entry in log.new_entries():
            if entry["t"] == "intent":
                assert pending is None, (pending, entry)
                pending = entry
            else:
                assert pending is not None and (pending["op"], pending["id"]) == (
                    entry["op"],
                    entry["id"],
                )
                expected.apply(entry)
                pending = None
        report.mid_write += pending is not None
        expected.check_and_resolve(data_dir, pending)

    report.writes_verified = expected.done
    report.count("counter increments", sum(expected.counters.values()))
    report.count("events", sum(len(events) for events in expected.events.values()))
    # The kills did land among writes, not only during start-up.
    assert expected.done >= kills
    assert sum(expected.counters.values()) > 0 and any(expected.events.values())
    report.seconds = time.monotonic() - started
    return report


# -- the headless UI with loops --------------------------------------------------------


@dataclass
class _Conversation:
    # "plain", "replay", or "unknown": created by a call the kill cut short
    kind: str
    # set by the last rename and archive that returned (None: not known)
    title: str | None = None
    archived: bool | None = False
    # the initial message it was created with
    first_message: str | None = None
    # digests of its events, by id, as the last check found them
    events: list[str] = field(default_factory=list)
    # appends that returned since: event id -> digest
    logged: dict[int, str] = field(default_factory=dict)
    # messages sent to it (a replay's loop may get them mid-replay)
    sent: set[str] = field(default_factory=set)
    # a stop returned: its loop must stay STOPPED
    stopped: bool = False
    # its replay ran all its steps
    finished: bool = False


class _InFlight:
    """The calls a kill cut short: each may or may not have happened."""

    def __init__(self, intents: list[dict[str, Any]]) -> None:
        self.intents = intents

    def of(self, op: str, conversation_id: str | None = None) -> list[dict[str, Any]]:
        return [
            intent
            for intent in self.intents
            if intent["op"] == op
            and (conversation_id is None or intent.get("id") == conversation_id)
        ]

    def touches(self, conversation_id: str) -> bool:
        return any(intent.get("id") == conversation_id for intent in self.intents)


class _UIExpected:
    """What must be in the data directory, from what the app's calls and
    loops said had been written."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.conversations: dict[str, _Conversation] = {}
        self.deleted: set[str] = set()
        # directories a kill left without metadata (doctor reports them)
        self.orphans: set[str] = set()
        # deletions a kill cut short (doctor --repair finishes them)
        self.deletions_left: set[str] = set()
        # conversations a delete in flight removed from the store, this kill
        self.vanished: dict[str, _Conversation] = {}
        # stored as running at the last kill -> its number of events then
        self.was_running: dict[str, int] = {}

    # -- the log of one worker ---------------------------------------------------------

    def apply(
        self, entries: list[dict[str, Any]], ready: bool, report: KillReport
    ) -> _InFlight:
        """Take in what returned; returns the calls in flight at the kill.
        `ready`: the worker had resumed every loop before it was killed."""
        pending: dict[int, dict[str, Any]] = {}
        resumed: dict[str, int] = {}
        for entry in entries:
            kind = entry["t"]
            if kind == "intent":
                pending[entry["n"]] = entry
            elif kind == "done":
                intent = pending.pop(entry["n"])
                assert intent["op"] == entry["op"], (intent, entry)
                if entry["id"] not in self.deleted:
                    self._returned({**intent, **entry})
                report.writes_verified += entry["op"] not in ("start", "resume")
            elif kind == "resumed":
                resumed[entry["id"]] = entry["events_before"]
            elif entry["id"] in self.deleted:
                continue
            elif kind == "event":
                known = self.conversations[entry["id"]]
                known.logged[entry["event_id"]] = entry["digest"]
                report.writes_verified += 1
            elif kind == "finished":
                self.conversations[entry["id"]].finished = True
        # Every loop running at the last kill was started again, from all
        # the events it had then, and is RUNNING again.
        for conversation_id, events_then in self.was_running.items():
            if conversation_id in resumed:
                assert resumed[conversation_id] == events_then, (
                    conversation_id,
                    resumed[conversation_id],
                )
            else:
                assert not ready, f"loop {conversation_id} was not resumed"
        report.count("loops resumed", len(resumed.keys() & self.was_running.keys()))
        return _InFlight(list(pending.values()))

    def _returned(self, entry: dict[str, Any]) -> None:
        op, conversation_id = entry["op"], entry["id"]
        if op == "create":
            assert conversation_id not in self.conversations
            known = _Conversation(entry["kind"], first_message=entry["message"])
            self.conversations[conversation_id] = known
        elif op == "rename":
            self.conversations[conversation_id].title = entry["title"]
        elif op == "archive":
            self.conversations[conversation_id].archived = entry["archived"]
        elif op == "send":
            known = self.conversations[conversation_id]
            known.logged[entry["event_id"]] = entry["digest"]
            known.sent.add(entry["text"])
        elif op == "stop":
            self.conversations[conversation_id].stopped = entry["was_running"]
        elif op == "delete":
            assert entry["removed"], entry
            del self.conversations[conversation_id]
            self.deleted.add(conversation_id)

    # -- the directory after a kill ----------------------------------------------------

    def check(self, pid: int, in_flight: _InFlight, report: KillReport) -> None:
        self.vanished = {}
        stored, unknown = self._check_store(pid, in_flight, report)
        running = {
            conversation_id
            for conversation_id, document in stored.items()
            if document["status"] in ACTIVE
        }
        report.count("loops running at a kill", len(running))
        # Their lock died with the process: every view shows them STOPPED.
        for conversation_id in running:
            assert runner_pid(self.data_dir / "conversations" / conversation_id) is None
        asyncio.run(self._check_shown_stopped(running))
        torn = self._check_event_logs(in_flight, running, report)
        self._check_doctor(in_flight, torn, len(unknown), report)
        self.was_running = {
            conversation_id: len(self.conversations[conversation_id].events)
            for conversation_id in running
        }

    def _check_store(
        self, pid: int, in_flight: _InFlight, report: KillReport
    ) -> tuple[dict[str, dict[str, Any]], list[str]]:
        """Every shard loads; the conversations are those whose create
        returned, less those whose delete returned (a create or delete in
        flight either way), with the titles and flags that returned."""
        store_dir = self.data_dir / "store"
        check_shards_parse(store_dir)
        # A shard write the kill cut short leaves its temporary file (the
        # next store to open removes it): proof the kill landed mid-write.
        left = list(store_dir.glob(".*.tmp"))
        assert all(f".{pid}." in path.name for path in left), (pid, left)
        report.count("kills inside a shard write", bool(left))
        store = ConversationStore(store_dir)
        try:
            stored = {
                conversation_id: store.get(conversation_id)
                for conversation_id in store.all_ids()
            }
        finally:
            store.close()

        for conversation_id in list(self.conversations):
            if conversation_id not in stored:
                assert in_flight.of("delete", conversation_id), (
                    f"conversation {conversation_id} lost"
                )
                self.vanished[conversation_id] = self.conversations.pop(conversation_id)
                self.deleted.add(conversation_id)
        assert not self.deleted & stored.keys(), self.deleted & stored.keys()
        unknown = [
            conversation_id
            for conversation_id in stored
            if conversation_id not in self.conversations
        ]
        for conversation_id in unknown:
            self.conversations[conversation_id] = _Conversation(
                "unknown", archived=None
            )

        for conversation_id, document in stored.items():
            known = self.conversations[conversation_id]
            if known.title is not None:
                renames = [
                    intent["title"]
                    for intent in in_flight.of("rename", conversation_id)
                ]
                assert document["title"] in [known.title, *renames], (
                    document,
                    known.title,
                )
                known.title = document["title"]
            if known.archived is not None:
                archives = [
                    intent["archived"]
                    for intent in in_flight.of("archive", conversation_id)
                ]
                assert document["archived"] in [known.archived, *archives], (
                    document,
                    known.archived,
                )
                known.archived = document["archived"]
            if known.stopped:
                assert (document["status"], document["agent_state"]) == (
                    "STOPPED",
                    "stopped",
                ), document
        return stored, unknown

    async def _check_shown_stopped(self, running: set[str]) -> None:
        service = await ConversationService.open(self.data_dir, user_id="checker")
        try:
            for conversation_id in running:
                info = await service.get(conversation_id)
                assert info.status.value == "STOPPED", (conversation_id, info.status)
            page = await service.search(
                status="RUNNING", archived=None, max_age=timedelta.max
            )
            assert page.results == [], page.results
        finally:
            service.close()

    def _check_event_logs(
        self, in_flight: _InFlight, running: set[str], report: KillReport
    ) -> set[str]:
        """Append-only, ids 0..n-1, every returned append there, nothing more
        than what was in flight. Returns the conversations whose log ends
        in a torn line."""
        torn = set()
        for conversation_id, known in self.conversations.items():
            directory = self.data_dir / "conversations" / conversation_id
            lines, tail = _read_event_file(directory / "events.jsonl")
            assert lines == EventLog(directory).search_events(), conversation_id
            assert [event["id"] for event in lines] == list(range(len(lines))), (
                conversation_id,
                lines[-3:],
            )
            digests = [event_digest(event) for event in lines]
            assert digests[: len(known.events)] == known.events, (
                f"events of {conversation_id} changed"
            )
            for event_id, digest in known.logged.items():
                assert event_id < len(digests) and digests[event_id] == digest, (
                    conversation_id,
                    event_id,
                )
            if known.first_message is not None:
                assert lines and (lines[0]["source"], lines[0]["message"]) == (
                    "user",
                    known.first_message,
                )
            # Events nobody was told about: the first message of a create or
            # a message being sent, both cut short, or the one event a loop
            # had appended but not yet announced.
            sending = [
                intent["text"] for intent in in_flight.of("send", conversation_id)
            ]
            unannounced = [
                event
                for event in lines[len(known.events) :]
                if event["id"] not in known.logged
                and not (event.get("source") == "user" and event["message"] in sending)
                and not (event["id"] == 0 and known.first_message is not None)
            ]
            if known.kind == "unknown" and not known.events:
                assert [event["action"] for event in unannounced] in (
                    [],
                    ["message"],
                ), lines
            elif unannounced:
                # A loop appends one event at a time, each announced before
                # the next: only its last can be unannounced.
                assert len(unannounced) == 1 and conversation_id in running, unannounced
                last_announced = max(known.logged, default=len(known.events) - 1)
                assert unannounced[0]["id"] > last_announced, unannounced
            if tail:
                assert (
                    conversation_id in running
                    or in_flight.touches(conversation_id)
                    or known.kind == "unknown"
                )
                torn.add(conversation_id)
            if known.kind == "replay":
                known.sent.update(sending)
                self._check_replay(conversation_id, known, lines)
            known.events, known.logged = digests, {}
        report.count("torn event lines", len(torn))
        return torn

    def _check_replay(
        self, conversation_id: str, known: _Conversation, events: list[dict[str, Any]]
    ) -> None:
        """The first actions of a replay are its trajectory's steps, in
        order, each once; all of them once the replay finished (resumed or
        not). Only then come the actions of a chat."""
        script = self.data_dir / "conversations" / conversation_id / "replay.json"
        assert script.exists(), f"replay {conversation_id} lost its trajectory"
        steps = [
            (step["source"], step["action"], step.get("message"))
            for step in replay_steps(orjson.loads(script.read_bytes()))
        ]
        # Without the messages sent to it (maybe while it replayed).
        acted = [
            (e["source"], e["action"], e.get("message"))
            for e in events
            if e.get("action") in REPLAYED_ACTIONS
            and not (e["source"] == "user" and e.get("message") in known.sent)
        ]
        replayed = acted[: len(steps)]
        assert replayed == steps[: len(replayed)], (conversation_id, acted, steps)
        if known.finished:
            assert len(replayed) == len(steps), (
                f"replay {conversation_id} finished with {len(replayed)} of {len(steps)} steps"
            )
        else:
            assert len(acted) <= len(steps), (conversation_id, acted[len(steps) :])

    def _check_doctor(
        self, in_flight: _InFlight, torn: set[str], unknown: int, report: KillReport
    ) -> None:
        """`convtui doctor` finds nothing but torn last lines, the
        directories of creates the kill cut short, and deletions it cut
        short (renamed aside, never a half-deleted conversation)."""
        findings = run_doctor(self.data_dir).findings
        deleting = {intent["id"] for intent in in_flight.of("delete")}
        new_orphans = {
            finding.path.name
            for finding in findings
            if finding.problem == "conversation files without metadata"
            and finding.path.name not in self.orphans
        }
        for name in new_orphans - deleting:
            assert name not in self.deleted, (
                f"{name}: deleted, yet its directory is back"
            )
        # A delete cut short leaves the whole directory (its metadata went
        # first: doctor --repair brings the conversation back) or renames it
        # aside; never half of it.
        for name in new_orphans & deleting:
            lines, _ = _read_event_file(
                self.data_dir / "conversations" / name / "events.jsonl"
            )
            known = self.vanished[name].events
            assert [event_digest(event) for event in lines][: len(known)] == known, name
        # Each create in flight left at most one conversation or directory.
        assert len(new_orphans - deleting) + unknown <= len(in_flight.of("create")), (
            new_orphans,
            unknown,
        )
        self.orphans |= new_orphans
        deletions = set()
        for finding in findings:
            if finding.problem.startswith("torn last line"):
                assert finding.path.parent.name in torn | self.orphans, finding
            elif finding.problem.startswith("a deletion cut short"):
                deleted_id = finding.path.name.removeprefix(DELETED_PREFIX)
                assert deleted_id in deleting | self.deletions_left, finding
                deletions.add(deleted_id)
            elif finding.problem != "conversation files without metadata":
                raise AssertionError(f"doctor: {finding.path}: {finding.problem}")
        report.count("deletions left to finish", len(deletions - self.deletions_left))
        self.deletions_left |= deletions
        report.count(
            "directories left by creates cut short", len(new_orphans - deleting)
        )
        report.count(
            "directories left by deletes cut short", len(new_orphans & deleting)
        )
        # Temporaries of files written once at creation (replay.json,
        # init.json) stay in the directories of creates cut short.
        report.details["temporary files in conversations"] = len(
            temporary_files(self.data_dir / "conversations")
        )


def kill_ui_with_loops(
    work_dir: Path,
    kills: int,
    seed: int,
    delay: tuple[float, float] = (0.1, 1.0),
    report: KillReport | None = None,
    chat: bool = False,
) -> KillReport:
    """SIGKILL tests/workers/ui_with_loops.py `kills` times, `delay` seconds
    after it is ready, on one data directory under `work_dir`; check after
    each kill. A fake model answers on 127.0.0.1, so that any loop may be
    started again (the replays themselves need none); with `chat`, the app
    also talks to its idle loops, which answer with that model, calling
    tools. Counts go to `report` as they happen."""
    report = report or KillReport("headless UI with loops")
    started = time.monotonic()
    rng = random.Random(seed)
    data_dir = work_dir / "data"
    log = LogReader(work_dir / "returned.log")
    expected = _UIExpected(data_dir)
    with FakeLLMServer.in_thread(responder=_chat_answers(random.Random(seed))) as llm:
        asyncio.run(_configure(data_dir, llm.base_url))
        for kill in range(kills):
            worker_seed = str(seed % 10**6 * 100_000 + kill)
            command = [
                sys.executable,
                str(WORKERS / "ui_with_loops.py"),
                str(data_dir),
                str(log.path),
                worker_seed,
                *(["--chat"] if chat else []),
            ]
            # Some kills land during start-up: opening the data, resuming.
            early = EARLY_KILL if rng.random() < EARLY_KILL_SHARE else None
            killed = kill_at_random_moment(command, rng, delay, early)
            report.kills += 1
            report.count("kills before the app was ready", not killed.ready)
            in_flight = expected.apply(log.new_entries(), killed.ready, report)
            report.mid_write += bool(in_flight.intents)
            expected.check(killed.pid, in_flight, report)
        report.count("model calls", llm.request_count)
    report.seconds = time.monotonic() - started
    return report


def _chat_answers(rng: random.Random) -> Callable[[dict[str, Any]], Response]:
    """The fake model: a thought, a command or a reply, at random."""

    def answer(body: dict[str, Any]) -> Response:
        roll = rng.random()
        if roll < 0.35:
            return ToolCall("think", {"thought": f"thinking {roll:.6f}"})
        if roll < 0.7:
            return ToolCall("execute_bash", {"command": f"echo {roll:.6f} >> chat.txt"})
        return Text("noted")

    return answer


async def _configure(data_dir: Path, base_url: str) -> None:
    service = await ConversationService.open(data_dir, user_id="crash")
    try:
        await service.update_settings(
            {
                "llm_model": "openai/fake-model",
                "llm_base_url": base_url,
                "llm_api_key": "sk-crash-test-0123456789",
                "confirmation_mode": False,
                "max_concurrent_loops": 200,
            }
        )
    finally:
        service.close()
