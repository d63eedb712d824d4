"""Crash-test worker: the real terminal app, headless, with agent loops
replaying the shipped demo trajectories and heavy metadata writes through
the service, until it is killed.

    python ui_with_loops.py DATA_DIR LOG_PATH SEED [--chat]

It opens ConvtuiApp on DATA_DIR (headless; the main screen polls and
repaints as it does for a person) and, in the app's event loop:

- resumes every conversation whose stored status says a loop was running
  (the previous worker was killed under it), and waits until each resumed
  loop is RUNNING again;
- keeps several replay loops going: create a conversation with a demo
  trajectory, rename it, start its loop, and once the replay finished either
  stop it or leave it idle; old ones are deleted, some while running;
- keeps two writers busy on conversations of their own: create (some with a
  first message), rename, archive, unarchive, send a message, delete;
- with --chat, sends messages to finished replays too, which their loops
  answer with the model the settings name (the test's fake model).

LOG_PATH gets one JSON line per fact: an "intent" line before each service
call and a "done" line after it returns (paired by "n"), an "event" line for
every EventAdded a loop publishes (the event is durable by then), a
"finished" line when a replay has run all its steps, a "resumed" line per
resumed loop. Lines are written with one os.write each
(a killed process loses none that returned) and fsynced by a thread, so a
machine crash would not lose them either. "ready" is printed on stdout once
the resumed loops run and the writers have started.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import orjson

from convtui.app import ConvtuiApp
from convtui.backend.manager import ConversationManager
from convtui.backend.models import AgentState, ConversationStatus
from convtui.backend.service import ConversationService
from convtui.backend.updates import EventAdded, LoopUpdate, StatusChanged
from convtui.demo import TRAJECTORIES, trajectory_text

REPLAY_LOOPS = 6  # replays in progress at once
IDLE_LOOPS = 8  # finished replays left running, waiting for the user
OWN_CONVERSATIONS = 25  # per writer; beyond it the writer deletes
BACKLOG = 30  # conversations left by earlier workers kept; older ones get deleted
REPLAY_DELAY = 0.02  # seconds between replayed steps, so kills land mid-replay
LOOP_TIMEOUT = 60.0


def event_digest(event: dict[str, Any]) -> str:
    """What identifies an event's stored content (the test recomputes it from
    the file)."""
    return hashlib.blake2b(orjson.dumps(event), digest_size=8).hexdigest()


class WriteLog:
    """Appends JSON lines; "done" lines only after the call returned."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._sequence = 0
        self._dirty = threading.Event()
        threading.Thread(target=self._sync, name="write-log-fsync", daemon=True).start()

    def _sync(self) -> None:
        while True:
            self._dirty.wait()
            self._dirty.clear()
            os.fsync(self._fd)

    def line(self, entry: dict[str, Any]) -> None:
        os.write(self._fd, orjson.dumps(entry) + b"\n")
        self._dirty.set()

    def intent(self, op: str, **fields: Any) -> int:
        self._sequence += 1
        self.line({"t": "intent", "n": self._sequence, "op": op, **fields})
        return self._sequence

    def done(self, number: int, op: str, **fields: Any) -> None:
        self.line({"t": "done", "n": number, "op": op, **fields})


class Driver:
    def __init__(self, app: ConvtuiApp, log: WriteLog, seed: int) -> None:
        self.service: ConversationService = app.backend.service
        self.manager: ConversationManager = app.backend.manager
        self.log = log
        self.seed = seed
        self.rng = random.Random(seed)
        self.trajectories = [trajectory_text(name) for name in TRAJECTORIES]
        # resumed loops: set once RUNNING again
        self.running: dict[str, asyncio.Event] = {}
        # replays started here: set once the replay finished
        self.finished: dict[str, asyncio.Event] = {}
        # loops sent a message: set once they wait for the user again
        self.answered: dict[str, asyncio.Event] = {}
        # loops waiting for the user: stopped, deleted or talked to
        self.idle: list[str] = []
        self.counter = 0
        # conversations left by earlier workers, not running: deleted over time
        self.backlog: list[str] = []

    def on_update(self, update: LoopUpdate) -> None:
        if isinstance(update, EventAdded):
            event = update.event
            self.log.line(
                {
                    "t": "event",
                    "id": update.conversation_id,
                    "event_id": event["id"],
                    "digest": event_digest(event),
                }
            )
        elif isinstance(update, StatusChanged):
            if (
                update.status is ConversationStatus.RUNNING
                and update.conversation_id in self.running
            ):
                self.running[update.conversation_id].set()
            if (
                update.agent_state is AgentState.AWAITING_USER_INPUT
                and update.conversation_id in self.answered
            ):
                self.answered.pop(update.conversation_id).set()
            if (
                update.agent_state is AgentState.FINISHED
                and update.message == "replay finished"
            ):
                self.log.line({"t": "finished", "id": update.conversation_id})
                if update.conversation_id in self.finished:
                    self.finished[update.conversation_id].set()

    def label(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix} {self.seed}-{self.counter}"

    # -- resuming what the previous worker left running ----------------------------

    async def resume(self) -> None:
        stored = await asyncio.to_thread(
            lambda: [
                document["conversation_id"]
                for document in self.service.store.active_documents()
                if document.get("status")
                in (ConversationStatus.STARTING.value, ConversationStatus.RUNNING.value)
            ]
        )
        self.backlog = [
            conversation_id
            for conversation_id in await asyncio.to_thread(self.service.store.all_ids)
            if conversation_id not in stored
        ]
        self.rng.shuffle(self.backlog)
        self.idle = list(stored)
        for conversation_id in stored:
            events_before = len(await self.service.search_events(conversation_id))
            self.running[conversation_id] = asyncio.Event()
            number = self.log.intent("resume", id=conversation_id)
            await self.manager.start(conversation_id)
            self.log.done(number, "resume", id=conversation_id)
            await asyncio.wait_for(self.running[conversation_id].wait(), LOOP_TIMEOUT)
            self.log.line(
                {"t": "resumed", "id": conversation_id, "events_before": events_before}
            )

    # -- replay loops --------------------------------------------------------------

    async def replays(self) -> None:
        idle = self.idle
        active: set[asyncio.Task[None]] = set()
        while True:
            while len(active) < REPLAY_LOOPS:
                active.add(asyncio.create_task(self.one_replay()))
            done, active = await asyncio.wait(
                active, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                task.result()  # a failure ends the worker, and the test sees it
            while len(idle) > IDLE_LOOPS:
                victim = idle.pop(self.rng.randrange(len(idle)))
                if self.rng.random() < 0.5:
                    await self.delete(victim)
                else:
                    await self.stop(victim)

    async def chat(self) -> None:
        """Talk to the idle loops: each answers with the model, calling
        tools, until it waits for the user again."""
        idle = self.idle
        while True:
            if not idle:
                await asyncio.sleep(0.05)  # the replays add idle loops all the time
                continue
            # Out of the idle list while it answers: nothing stops or deletes it.
            conversation_id = idle.pop(self.rng.randrange(len(idle)))
            answered = self.answered[conversation_id] = asyncio.Event()
            await self.send(conversation_id, self.label("chat"))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), LOOP_TIMEOUT)
            idle.append(conversation_id)

    async def one_replay(self) -> None:
        trajectory = self.rng.choice(self.trajectories)
        number = self.log.intent("create", kind="replay")
        conversation_id = (
            await self.service.new_conversation({"replay_json": trajectory})
        ).conversation_id
        self.log.done(number, "create", id=conversation_id, kind="replay", message=None)
        await self.rename(conversation_id, self.label("replay"))
        self.finished[conversation_id] = asyncio.Event()
        number = self.log.intent("start", id=conversation_id)
        await self.manager.start(conversation_id)
        self.log.done(number, "start", id=conversation_id)
        await asyncio.wait_for(self.finished[conversation_id].wait(), LOOP_TIMEOUT)
        roll = self.rng.random()
        if roll < 0.3:
            await self.stop(conversation_id)
        elif roll < 0.4:
            await self.delete(conversation_id)
        else:
            self.idle.append(conversation_id)

    async def stop(self, conversation_id: str) -> None:
        number = self.log.intent("stop", id=conversation_id)
        result = await self.manager.stop(conversation_id)
        self.log.done(
            number, "stop", id=conversation_id, was_running=result.was_running
        )

    async def delete(self, conversation_id: str) -> None:
        number = self.log.intent("delete", id=conversation_id)
        removed = await self.service.delete(conversation_id)
        self.log.done(number, "delete", id=conversation_id, removed=removed)

    async def rename(self, conversation_id: str, title: str) -> None:
        number = self.log.intent("rename", id=conversation_id, title=title)
        await self.service.rename(conversation_id, title)
        self.log.done(number, "rename", id=conversation_id, title=title)

    async def send(self, conversation_id: str, text: str) -> None:
        number = self.log.intent("send", id=conversation_id, text=text)
        stored = await self.manager.send_message(conversation_id, text)
        self.log.done(number, "send", id=conversation_id, event_id=stored["id"], digest=event_digest(stored))

    # -- metadata writers ----------------------------------------------------------

    async def writer(self, name: str) -> None:
        own: list[str] = []
        while True:
            roll = self.rng.random()
            if not own or (roll < 0.15 and len(own) < OWN_CONVERSATIONS):
                message = (
                    self.label(f"{name} says") if self.rng.random() < 0.5 else None
                )
                number = self.log.intent("create", kind="plain")
                request = {"initial_user_msg": message} if message else {}
                conversation_id = (
                    await self.service.new_conversation(request)
                ).conversation_id
                self.log.done(
                    number, "create", id=conversation_id, kind="plain", message=message
                )
                own.append(conversation_id)
            elif roll < 0.2 or len(own) >= OWN_CONVERSATIONS:
                await self.delete(own.pop(self.rng.randrange(len(own))))
            elif roll < 0.3 and len(self.backlog) > BACKLOG:
                await self.delete(self.backlog.pop())
            elif roll < 0.55:
                await self.rename(self.rng.choice(own), self.label(name))
            elif roll < 0.8:
                conversation_id = self.rng.choice(own)
                archived = self.rng.random() < 0.5
                number = self.log.intent(
                    "archive", id=conversation_id, archived=archived
                )
                await self.service.set_archived(conversation_id, archived)
                self.log.done(number, "archive", id=conversation_id, archived=archived)
            else:
                await self.send(self.rng.choice(own), self.label(f"{name} adds"))


async def drive(app: ConvtuiApp, log: WriteLog, seed: int, chat: bool) -> None:
    driver = Driver(app, log, seed)
    app.backend.manager.replay_delay = REPLAY_DELAY
    app.backend.manager.subscribe(driver.on_update)
    try:
        await driver.resume()
        tasks = [
            asyncio.create_task(driver.replays()),
            asyncio.create_task(driver.writer("w1")),
            asyncio.create_task(driver.writer("w2")),
        ]
        if chat:
            tasks.append(asyncio.create_task(driver.chat()))
        print("ready", flush=True)
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    except Exception:  # noqa: BLE001 - any failure ends the worker; the test reads stderr
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)


def main() -> None:
    data_dir, log_path, seed = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    chat = "--chat" in sys.argv[4:]
    log = WriteLog(log_path)

    def on_ready(app: ConvtuiApp) -> None:
        app.run_worker(drive(app, log, seed, chat), name="crash-driver")

    app = ConvtuiApp(data_dir, user_id="crash", on_ready=on_ready)
    app.animation_level = "none"
    app.run(headless=True, size=(120, 40))
    print("the app ended before it was killed", file=sys.stderr, flush=True)
    sys.exit(4)


if __name__ == "__main__":
    main()
