"""The remote backend on what a real OpenHands server answered: the
scenarios of tests/openhands/scenarios.py replayed from the exchanges
tests/test_openhands_live.py recorded (tests/fixtures/openhands/), each
request checked against the one recorded. Runs without OpenHands."""

from __future__ import annotations

import pytest

from convtui.backend import openhands_backend
from convtui.backend.openhands_backend import OpenHandsBackend
from convtui.backend.remotes import Remote

from .openhands import scenarios
from .openhands.recording import ReplayTransport


def replaying(name: str, key: str = "a-key") -> tuple[OpenHandsBackend, ReplayTransport]:
    transport = ReplayTransport(name)
    remote = Remote(name="recorded", url="http://127.0.0.1:3000", api_key=key)
    backend = OpenHandsBackend.for_remote(remote, transport=transport)
    backend.http.pacer.rate = 10_000  # the pace is tested on a real socket (test_openhands_http.py)
    return backend, transport


@pytest.mark.parametrize("name", ["listing", "changes", "refused_key", "bursts"])
async def test_scenario(name: str) -> None:
    backend, transport = replaying(name)
    try:
        await getattr(scenarios, name)(backend)
    finally:
        await backend.close()
    assert transport.finished, f"{transport.position} of {len(transport.exchanges)} recorded requests were made"


@pytest.mark.parametrize("name", ["agent_run", "approvals", "edit_approval", "remote_run"])
async def test_runs(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openhands_backend, "START_POLL", 0.0)
    monkeypatch.setattr(openhands_backend, "FOLLOW_SECONDS", 0.0)
    backend, transport = replaying(name)
    try:
        await getattr(scenarios, name)(backend, pause=0.0)
    finally:
        await backend.close()
    assert transport.finished


async def test_the_session_key_goes_in_its_header() -> None:
    """Every request carried X-Session-API-Key (a Bearer header gets a 401 there)."""
    transport = ReplayTransport("listing")
    assert all(exchange["request"]["session_key"] for exchange in transport.exchanges)


async def test_a_starting_conversation_is_followed_through_its_start_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the server said while the sandbox started: WORKING, then the
    later steps, then READY with the conversation's id."""
    transport = ReplayTransport("agent_run")
    tasks = [exchange for exchange in transport.exchanges if "/start-tasks" in exchange["request"]["path"]]
    assert tasks, "the recording follows the start task"
    created = transport.find(lambda exchange: exchange["request"]["method"] == "POST" and exchange["request"]["path"].endswith("app-conversations"))
    assert '"status":"WORKING"' in created["text"]
    assert '"status":"READY"' in tasks[-1]["text"]
