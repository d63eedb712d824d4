"""The model worker process: started in the background when a model is
configured, and a first call that has to wait for its start says so.

Each test gets a fresh worker (a new ModelWorkers pool, not the one the other
tests share) so that "not started yet" is real; real litellm, real
subprocess, the fake server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from convtui.backend import llm as llm_module
from convtui.backend.manager import ConversationManager
from convtui.backend import model_workers
from convtui.backend.llm import LLMConfig
from convtui.backend.model_workers import ModelWorkers
from convtui.backend.service import ConversationService
from convtui.backend.updates import LoopUpdate, StatusChanged

from .fake_llm import FakeLLMServer, Text


@pytest.fixture
def fresh_worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelWorkers]:
    worker = ModelWorkers()
    monkeypatch.setattr(llm_module, "_model_workers", worker)
    yield worker
    worker.stop()


async def run_once(service: ConversationService, server: FakeLLMServer) -> list[str | None]:
    """Run one conversation until the agent answers; the status messages it published."""
    server.responder = lambda body: Text("Title" if body["messages"][0]["content"].startswith("Write") else "hello")
    await service.update_settings(
        {"llm_model": "openai/fake-model", "llm_api_key": "sk-test-0123456789", "llm_base_url": server.base_url}
    )
    manager = ConversationManager(service)
    messages: list[str | None] = []

    def collect(update: LoopUpdate) -> None:
        if isinstance(update, StatusChanged):
            messages.append(update.message)

    manager.subscribe(collect)
    created = await service.new_conversation({"initial_user_msg": "hi"})
    try:
        await manager.start(created.conversation_id, until_idle=True)
        await asyncio.wait_for(manager.wait(created.conversation_id), 60)
    finally:
        await manager.shutdown()
    events = await service.search_events(created.conversation_id)
    assert any(event.get("message") == "hello" for event in events)
    return messages


async def test_a_first_call_says_the_model_worker_is_starting(
    service: ConversationService, fresh_worker: ModelWorkers
) -> None:
    assert not llm_module.model_worker_ready()
    async with FakeLLMServer() as server:
        messages = await run_once(service, server)
    assert llm_module.STARTING_MODEL_WORKER in messages
    # Said only while it starts: the states after it do not repeat it.
    after = messages[messages.index(llm_module.STARTING_MODEL_WORKER) + 1 :]
    assert after and llm_module.STARTING_MODEL_WORKER not in after
    assert llm_module.model_worker_ready()


async def test_a_warm_worker_answers_without_that_message(
    service: ConversationService, fresh_worker: ModelWorkers
) -> None:
    llm_module.start_model_worker()  # returns at once
    assert await llm_module.wait_for_model_worker(60)
    async with FakeLLMServer() as server:
        messages = await run_once(service, server)
    assert llm_module.STARTING_MODEL_WORKER not in messages


async def test_the_ui_starts_the_worker_when_a_model_is_configured(
    data_dir: Path, fresh_worker: ModelWorkers
) -> None:
    from convtui.screens.main import MainScreen

    from .ui.seed import settle, still_app

    service = await ConversationService.open(data_dir, user_id="tester")
    service.close()
    app = still_app(data_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.pause(0.5)
        assert fresh_worker.started == 0  # no model: nothing started
        await app.backend.service.update_settings({"llm_model": "openai/fake-model"})
    app = still_app(data_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, lambda: isinstance(app.screen, MainScreen))
        await settle(pilot, lambda: fresh_worker.started == 1, timeout=5)
        assert await llm_module.wait_for_model_worker(60)


async def test_a_busy_worker_gets_a_second_and_an_idle_extra_one_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any load counts as busy here, and an extra worker is idle after 1 s:
    a second real worker process starts, takes calls, and ends on its own;
    the first stays and answers the next call."""
    monkeypatch.setattr(model_workers, "BUSY", 0.0)
    monkeypatch.setattr(model_workers, "LOAD_WINDOW", 0.0)
    monkeypatch.setattr(model_workers, "IDLE_SECONDS", 1.0)
    pool = ModelWorkers(limit=2)
    monkeypatch.setattr(llm_module, "_model_workers", pool)
    try:
        async with FakeLLMServer(default=Text("hello")) as server:
            config = LLMConfig("openai/fake-model", "sk-test-0123456789", server.base_url)

            async def four_calls() -> list[str]:
                hi = [{"role": "user", "content": "hi"}]
                replies = await asyncio.gather(*(llm_module.complete(config, hi) for _ in range(4)))
                return [reply.content for reply in replies]

            assert await llm_module.wait_for_model_worker(60)
            answered = []
            for _ in range(40):  # until the second worker has answered some
                answered += await four_calls()
                if pool.started == 2 and all(worker.ready.is_set() for worker in pool._workers):
                    break
            assert pool.started == 2
            assert set(await four_calls()) == {"hello"} == set(answered)
            assert all(worker.calls == set() for worker in pool._workers)
            for _ in range(100):  # the extra one says it is idle after 1 s and is ended
                if pool.started == 1:
                    break
                await asyncio.sleep(0.1)
            assert pool.started == 1
            reply = await llm_module.complete(config, [{"role": "user", "content": "still there?"}])
            assert reply.content == "hello"
    finally:
        pool.stop()


def test_workers_are_one_per_core_but_one_unless_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVTUI_MODEL_WORKERS", raising=False)
    for cores, expected in ((1, 1), (2, 1), (3, 2), (8, model_workers.MAX_WORKERS)):
        monkeypatch.setattr(model_workers.os, "cpu_count", lambda cores=cores: cores)
        assert model_workers.max_workers() == expected
    monkeypatch.setenv("CONVTUI_MODEL_WORKERS", "3")
    assert model_workers.max_workers() == 3
    monkeypatch.setenv("CONVTUI_MODEL_WORKERS", "zero")
    assert model_workers.max_workers() == model_workers.MAX_WORKERS


async def test_replies_arriving_together_wake_their_loops_a_few_per_pass() -> None:
    """200 loops answered at once must not all resume in one pass of the
    event loop (it held every timer for 300 ms): replies handed over from
    the reader thread together are delivered DELIVER_PER_PASS per pass."""
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in range(50)]
    passes: list[int] = []

    async def count_passes() -> None:
        while not all(future.done() for future in futures):
            passes.append(sum(future.done() for future in futures))
            await asyncio.sleep(0)

    counter = asyncio.create_task(count_passes())
    await asyncio.sleep(0)

    def reader_thread() -> None:
        for number, future in enumerate(futures):
            model_workers._hand_over(loop, future, None, {"done": number})

    await asyncio.to_thread(reader_thread)
    await asyncio.wait_for(counter, 5)
    assert [future.result() for future in futures] == [{"done": number} for number in range(50)]
    steps = [after - before for before, after in zip(passes, passes[1:])]
    assert max(steps) <= model_workers.DELIVER_PER_PASS and len(passes) > 50 // model_workers.DELIVER_PER_PASS
