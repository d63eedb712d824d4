"""Crash safety of `convtui serve`: the server is SIGKILLed at random moments
while its loops work and a client writes through its API, again and again on
one data directory, and restarted as a user's command restarts it.

After each kill, with no server running: every shard and event log loads,
`convtui doctor` finds nothing but torn last lines, every write the API had
acknowledged is there (a rename's title or a later one, each message sent),
and no conversation shows RUNNING. After each restart: the loops that were
running at the kill run again."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from convtui.backend.client import socket_client
from convtui.backend.doctor import run_doctor
from convtui.backend.service import ConversationService
from convtui.backend.settings import SettingsStore

from .fake_llm import FakeLLMServer, Text, ToolCall
from .server_process import http, server_output, spawn_server, the_socket, wait_until_serving

KILLS = 20
CONVERSATIONS = 5


def answers(rng: random.Random):  # noqa: ANN201
    def answer(body: dict[str, Any]) -> Any:
        if body["messages"][0]["content"].startswith("Write a short title"):
            return Text("A title")
        roll = rng.random()
        if roll < 0.4:
            return ToolCall("execute_bash", {"command": f"echo {roll:.6f} >> work.txt"})
        if roll < 0.6:
            return ToolCall("think", {"thought": f"thinking {roll:.6f}"})
        return Text("noted")

    return answer


class Writer(threading.Thread):
    """Renames and messages through the API until the server goes away;
    remembers what was acknowledged, and what was in flight."""

    def __init__(self, socket_path: Path, ids: list[str], rng: random.Random, counter: list[int]) -> None:
        super().__init__(daemon=True)
        self.client = socket_client(socket_path, timeout=10)
        self.ids, self.rng, self.counter = ids, rng, counter
        self.titles: dict[str, int] = {}  # id -> highest acknowledged title number
        self.messages: set[tuple[str, str]] = set()  # acknowledged (id, text)
        self.in_flight: tuple[str, str, str] | None = None

    def run(self) -> None:
        try:
            while True:
                conversation_id = self.rng.choice(self.ids)
                self.counter[0] += 1
                number = self.counter[0]
                if self.rng.random() < 0.5:
                    self.in_flight = ("title", conversation_id, str(number))
                    answer = self.client.patch(f"/api/conversations/{conversation_id}", json={"title": f"title {number}"})
                    assert answer.status_code == 200, answer.text
                    self.titles[conversation_id] = number
                else:
                    text = f"message {number}"
                    self.in_flight = ("message", conversation_id, text)
                    answer = self.client.post(f"/api/conversations/{conversation_id}/messages", json={"content": text})
                    assert answer.status_code == 200, answer.text
                    self.messages.add((conversation_id, text))
                self.in_flight = None
                time.sleep(self.rng.uniform(0, 0.02))
        except httpx.TransportError:
            return  # the server was killed
        finally:
            self.client.close()


def running_now(data_dir: Path) -> list[str]:
    with http(data_dir) as client:
        return client.get("/api/server").json()["running"]


def check_after_kill(data_dir: Path, ids: list[str], titles: dict[str, int], messages: set[tuple[str, str]]) -> int:
    """With no server: what was acknowledged is there; nothing shows RUNNING."""

    async def read() -> int:
        service = await ConversationService.open(data_dir)
        verified = 0
        try:
            for conversation_id in ids:
                info = await service.get(conversation_id)
                assert info.status.value not in ("RUNNING", "STARTING"), (conversation_id, info.status)
            for conversation_id, number in titles.items():
                info = await service.get(conversation_id)
                stored = int(info.title.split()[-1]) if info.title.startswith("title ") else -1
                assert stored >= number, (conversation_id, info.title, number)
                verified += 1
            by_conversation: dict[str, set[str]] = {}
            for conversation_id, text in messages:
                by_conversation.setdefault(conversation_id, set()).add(text)
            for conversation_id, texts in by_conversation.items():
                events = await service.search_events(conversation_id)
                sent = [e.get("message") for e in events if e.get("source") == "user"]
                for text in texts:
                    assert sent.count(text) == 1, (conversation_id, text, sent[-5:])
                    verified += 1
        finally:
            service.close()
        return verified

    verified = asyncio.run(read())
    problems = [f for f in run_doctor(data_dir).findings if "torn" not in f.problem and "last line" not in f.problem]
    assert not problems, [(f.path, f.problem) for f in problems]
    return verified


def test_a_server_killed_again_and_again_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    seed = int(os.environ.get("CONVTUI_CRASH_SEED", random.randrange(2**32)))
    print(f"CONVTUI_CRASH_SEED={seed}")
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    counter = [0]
    titles: dict[str, int] = {}
    messages: set[tuple[str, str]] = set()
    verified = resumed = 0
    with FakeLLMServer.in_thread(responder=answers(random.Random(seed))) as llm:
        SettingsStore(data_dir / "settings.json").update(
            {"llm_model": "openai/fake-model", "llm_api_key": "sk-crash-0123456789", "llm_base_url": llm.base_url,
             "confirmation_mode": False, "max_iterations": 3}
        )  # fmt: skip
        was_running: list[str] = []
        ids: list[str] = []
        for kill in range(KILLS):
            server = spawn_server(data_dir)
            wait_until_serving(data_dir, server)
            with http(data_dir) as client:
                if not ids:
                    for n in range(CONVERSATIONS):
                        made = client.post("/api/conversations", json={"initial_user_msg": f"work {n}"}).json()
                        ids.append(made["conversation_id"])
                deadline = time.monotonic() + 20
                while not set(was_running) <= set(running_now(data_dir)):
                    assert time.monotonic() < deadline, (was_running, running_now(data_dir), server_output(data_dir))
                    time.sleep(0.05)
                resumed += len(was_running)
                for conversation_id in ids:
                    if rng.random() < 0.6:
                        client.post(f"/api/conversations/{conversation_id}/start", json={})
            writer = Writer(the_socket(data_dir), ids, random.Random(rng.random()), counter)
            writer.start()
            time.sleep(rng.uniform(0.1, 0.8))
            was_running = running_now(data_dir)
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)
            writer.join(timeout=30)
            for conversation_id, number in writer.titles.items():
                titles[conversation_id] = max(titles.get(conversation_id, -1), number)
            messages |= writer.messages
            verified += check_after_kill(data_dir, ids, titles, messages)
    print(f"{KILLS} kills, {verified} acknowledged writes verified, {resumed} loops resumed, {counter[0]} writes sent")
    assert resumed >= KILLS  # loops were running at the kills, and came back
    assert len(messages) + len(titles) >= KILLS
