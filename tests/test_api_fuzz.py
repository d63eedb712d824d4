"""Every route of the server's API, fed whatever hypothesis makes up: path
ids, query values and JSON bodies, well-formed or not. Nothing may answer
500 or a traceback; every refusal has OpenHands' error shape; whatever was
stored before stays readable."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convtui.backend.api import create_app
from convtui.backend.interface import LocalBackend
from convtui.backend.models import NewConversationRequest

SKIPPED = {"/api/updates", "/api/server/shutdown"}  # a stream that never ends; a shutdown (tested in test_server)


class Harness:
    def __init__(self, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.backend = self.loop.run_until_complete(LocalBackend.open(root))
        self.app = create_app(self.backend, docs=True)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://convtui")
        created = self.run(self.backend.new_conversation(NewConversationRequest(initial_user_msg="keep me")))
        self.known_id = created.conversation_id
        self.routes = self._routes()

    def run(self, coroutine: Any) -> Any:
        return self.loop.run_until_complete(coroutine)

    def _routes(self) -> list[tuple[str, str]]:
        document = self.run(self.client.get("/openapi.json")).json()
        return sorted(
            (method.upper(), path)
            for path, operations in document["paths"].items()
            for method in operations
            if path not in SKIPPED
        )

    def close(self) -> None:
        self.run(self.client.aclose())
        self.run(self.backend.close())
        self.loop.close()


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    opened = Harness(tmp_path_factory.mktemp("fuzz") / "data")
    yield opened
    opened.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(
    ["title", "initial_user_msg", "repository", "content", "approve", "always", "on", "archived", "config",
     "providers_set", "llm_model", "max_iterations", "theme", "replay_json", "trigger", "image_urls", "surprise"]
)  # fmt: skip
bodies = st.one_of(
    st.none(),
    json_values,
    st.dictionaries(field_names, json_values, max_size=4),
    st.binary(max_size=60),
)
path_ids = st.one_of(
    st.just("KNOWN"),
    st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    st.text(alphabet="0123456789abcdefXYZ-_.%", min_size=1, max_size=40),
)
query_values = st.one_of(st.text(max_size=30), st.integers(-5, 300).map(str), st.sampled_from(["true", "false", "all", ""]))
query_names = st.sampled_from(
    ["limit", "page_id", "selected_repository", "conversation_trigger", "status", "q", "archived", "all_ages",
     "start_id", "end_id", "reverse", "filter", "event_id", "format", "confirm", "until_idle", "surprise"]
)  # fmt: skip


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_no_route_answers_500_or_a_traceback(harness: Harness, data: st.DataObject) -> None:
    method, template = data.draw(st.sampled_from(harness.routes))
    path = template
    for name in re.findall(r"{(\w+)}", template):
        value = data.draw(path_ids)
        path = path.replace("{" + name + "}", harness.known_id if value == "KNOWN" else value)
    params = data.draw(st.dictionaries(query_names, query_values, max_size=4))
    body = data.draw(bodies)
    request: dict[str, Any] = {"params": params}
    if method in ("POST", "PATCH", "PUT"):
        if isinstance(body, bytes):
            request["content"] = body
            request["headers"] = {"content-type": "application/json"}
        elif body is not None:
            request["json"] = body
    response = harness.run(harness.client.request(method, path, **request))
    assert response.status_code < 500, (method, path, params, body, response.text[:300])
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        answer = response.json()
        assert answer["status"] == "error" and isinstance(answer.get("message", ""), str), answer
    # What was stored before is still there and readable.
    still = harness.run(harness.client.get(f"/api/conversations/{harness.known_id}"))
    assert still.status_code == 200
    if still.json() is None:  # deleted or trashed by this example: make another to keep going
        created = harness.run(harness.backend.new_conversation(NewConversationRequest(initial_user_msg="keep me")))
        harness.known_id = created.conversation_id
