"""The remote backend on an OpenHands 1.6 server, whose V1 API lacks three
routes 1.7 added: its answers as a real 1.6.0 gave them (a 405 for the V1
DELETE, a bare 404 for send-message, a V1 PATCH that ignores the title),
and what convtui sends instead: its V0 routes, and the conversation's agent
server; and its 500 for a running conversation's events read from a
timestamp (they are read whole instead). tests/test_openhands_live.py runs the same on a real server with
CONVTUI_OPENHANDS_PYTHON pointing at a 1.6 install."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from convtui.backend.errors import InvalidInput, NotFound
from convtui.backend.openhands_backend import EventTrail, OpenHandsBackend
from convtui.backend.openhands_http import NoSuchRoute, OpenHandsHTTP

from .openhands.recording import ReplayTransport

ID = "c13fb2833a0640f8ab87b9610aa95b02"
AGENT = f"http://localhost:8000/api/conversations/{ID}"


def item(**fields: Any) -> dict[str, Any]:
    return {
        "id": ID,
        "created_by_user_id": None,
        "sandbox_id": "s1",
        "title": "seeded 00002",
        "created_at": "2026-01-01T00:02:00Z",
        "updated_at": "2026-01-01T00:02:00Z",
        "sandbox_status": "RUNNING",
        "execution_status": "finished",
        "conversation_url": AGENT,
        "session_api_key": "agent-key",
        **fields,
    }


class Server16:
    """What openhands-ai 1.6.0 answered (see tests/openhands/launch.py)."""

    def __init__(self) -> None:
        self.title = "seeded 00002"
        self.exists = True
        self.sandbox = "RUNNING"
        self.sent: list[httpx.Request] = []
        self.events: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        method, path = request.method, request.url.path
        if path == "/api/v1/app-conversations" and method == "GET":
            running = self.sandbox == "RUNNING"
            found = item(title=self.title, sandbox_status=self.sandbox, conversation_url=AGENT if running else None)
            return httpx.Response(200, json=[found] if self.exists else [None])
        if path == f"/api/v1/app-conversations/{ID}" and method == "PATCH":
            return httpx.Response(200, json=item(title=self.title))  # no title in its update request
        if path == f"/api/v1/app-conversations/{ID}":
            return httpx.Response(405, json={"detail": "Method Not Allowed"})
        if path == f"/api/conversations/{ID}" and method == "PATCH":
            self.title = json.loads(request.content)["title"]
            return httpx.Response(200, json=True)
        if path == f"/api/conversations/{ID}" and method == "DELETE":
            existed, self.exists = self.exists, False
            return httpx.Response(200, json=existed)
        if path == f"/api/v1/conversation/{ID}/events/search" and method == "GET":
            if "timestamp__gte" in request.url.params:  # (a running conversation's, through its agent server)
                return httpx.Response(500, text="Internal Server Error")
            return httpx.Response(200, json={"items": self.events, "next_page_id": None})
        if path == f"/api/conversations/{ID}/events" and request.url.host == "localhost" and method == "POST":
            return httpx.Response(200, json={"success": True})
        return httpx.Response(404, json={"detail": "Not Found"})


@pytest.fixture
def server() -> Server16:
    return Server16()


@pytest.fixture
async def backend(server: Server16):
    http = OpenHandsHTTP("http://127.0.0.1:3000", "a-key", transport=httpx.MockTransport(server))
    http.pacer.rate = 10_000
    backend = OpenHandsBackend(http, "older")
    yield backend
    await backend.close()


def said(server: Server16) -> list[str]:
    return [f"{request.method} {request.url.path}" for request in server.sent]


async def test_a_rename_the_v1_patch_ignored_goes_to_the_v0_route(backend: OpenHandsBackend, server: Server16) -> None:
    assert (await backend.rename(ID, "New title")).title == "New title"
    assert said(server) == [
        f"PATCH /api/v1/app-conversations/{ID}",
        f"PATCH /api/conversations/{ID}",
        "GET /api/v1/app-conversations",
    ]
    server.sent.clear()
    assert (await backend.rename(ID, "Again")).title == "Again"
    assert said(server)[0] == f"PATCH /api/conversations/{ID}"  # known now: the V1 PATCH is not asked again


async def test_a_delete_goes_to_the_v0_route_after_the_405(backend: OpenHandsBackend, server: Server16) -> None:
    assert await backend.delete(ID) is True
    assert said(server) == [f"DELETE /api/v1/app-conversations/{ID}", f"DELETE /api/conversations/{ID}"]
    assert await backend.delete(ID) is False  # its V0 route answers false
    assert said(server)[2:] == [f"DELETE /api/conversations/{ID}"]


async def test_a_message_goes_to_the_agent_server_with_its_key(backend: OpenHandsBackend, server: Server16) -> None:
    await backend.send_message(ID, "thanks")
    assert said(server) == [f"POST /api/v1/app-conversations/{ID}/send-message", "GET /api/v1/app-conversations", f"POST /api/conversations/{ID}/events"]
    posted = server.sent[-1]
    assert str(posted.url) == f"{AGENT}/events" and posted.headers["X-Session-API-Key"] == "agent-key"
    assert json.loads(posted.content) == {"role": "user", "content": [{"type": "text", "text": "thanks"}], "run": True}


async def test_a_message_to_a_paused_sandbox_is_refused_here(backend: OpenHandsBackend, server: Server16) -> None:
    server.sandbox = "PAUSED"
    with pytest.raises(InvalidInput, match="its sandbox is paused: start the conversation first"):
        await backend.send_message(ID, "thanks")
    assert all("/events" not in path for path in said(server))


def test_which_404_is_a_missing_route() -> None:
    from convtui.backend.openhands_http import error_for

    def answer(status: int, body: Any) -> httpx.Response:
        return httpx.Response(status, json=body)

    assert isinstance(error_for(answer(405, {"detail": "Method Not Allowed"}), "s"), NoSuchRoute)
    assert isinstance(error_for(answer(404, {"detail": "Not Found"}), "s"), NoSuchRoute)
    named = error_for(answer(404, {"detail": "Conversation not found"}), "s")  # 1.7 and later, for a conversation
    assert isinstance(named, NotFound) and not isinstance(named, NoSuchRoute) and str(named) == "Conversation not found"


async def test_new_events_are_read_again_whole_where_a_read_from_a_timestamp_fails(backend: OpenHandsBackend, server: Server16) -> None:
    """1.6 answers a 500 to an events search from a timestamp: every event
    is read again, and only those not held yet are new."""
    recorded = ReplayTransport("agent_run").find(lambda exchange: exchange["request"]["path"].endswith("/events/search") and '"finish"' in (exchange["text"] or ""))
    every = json.loads(recorded["text"])["items"]
    server.events = every[:3]
    trail = EventTrail()
    first = await backend._read_events(ID, trail)
    server.events = every
    later = await backend._read_events(ID, trail)
    assert "events_since" in backend.v0_only and later and first + later == trail.events
    assert [event["id"] for event in trail.events] == sorted({event["id"] for event in trail.events})
    assert await backend._read_events(ID, trail) == []
