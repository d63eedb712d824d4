"""Real OpenHands answers, recorded and replayed.

RecordingTransport sits under convtui's httpx client while a scenario runs
against the real server (tests/test_openhands_live.py with
CONVTUI_RECORD_OPENHANDS=1) and keeps every exchange; `save` writes them to
tests/fixtures/openhands/NAME.json.xz, with the agent servers' session keys
blanked. ReplayTransport answers the same scenario from that file, checking
that each request is the one recorded, so the fast tests of the client run
on what the server really said."""

from __future__ import annotations

import base64
import lzma
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openhands"
RECORD_VARIABLE = "CONVTUI_RECORD_OPENHANDS"
KEPT_HEADERS = ("content-type", "retry-after", "content-disposition", "content-range")
SECRET_KEYS = re.compile(r'("session_api_key"\s*:\s*)"[^"]*"')


def _query(request: httpx.Request) -> list[list[str]]:
    return [list(pair) for pair in parse_qsl(request.url.query.decode(), keep_blank_values=True)]


def _request_record(request: httpx.Request) -> dict[str, Any]:
    body = request.content.decode() if request.content else None
    return {
        "method": request.method,
        "path": request.url.path,
        "query": _query(request),
        "json": json.loads(body) if body else None,
        "session_key": request.headers.get("x-session-api-key") is not None,
    }


def _text(body: bytes) -> str | None:
    """A body other than JSON, kept as text when it is text (a file the
    agent wrote); else None (then base64: a zip export)."""
    try:
        return body.decode()
    except UnicodeDecodeError:
        return None


def _response(recorded: dict[str, Any], request: httpx.Request) -> httpx.Response:
    if recorded.get("base64") is not None:
        content = base64.b64decode(recorded["base64"])
    else:  # (recordings before base64 kept only a binary body's length)
        content = recorded["text"].encode() if recorded["text"] is not None else b"\0" * (recorded["bytes"] or 0)
    return httpx.Response(recorded["status"], headers=recorded["headers"], content=content, request=request)


class RecordingTransport(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.exchanges: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        body = await response.aread()
        content_type = response.headers.get("content-type", "")
        text = SECRET_KEYS.sub(r'\1"(blanked)"', body.decode()) if "json" in content_type else _text(body)
        self.exchanges.append(
            {
                "request": _request_record(request),
                "status": response.status_code,
                "headers": {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers},
                "text": text,
                "bytes": len(body) if text is None else None,
                "base64": base64.b64encode(body).decode() if text is None else None,
            }
        )
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()

    def save(self, name: str) -> None:
        """Compressed (xz: its window spans many answers): the event pages
        repeat the agent's system prompt and state on every read."""
        FIXTURES.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.exchanges, indent=1, ensure_ascii=False) + "\n"
        (FIXTURES / f"{name}.json.xz").write_bytes(lzma.compress(text.encode(), preset=9))


class ReplayTransport(httpx.AsyncBaseTransport):
    """Answers the recorded exchanges in order; a request that differs from
    the one recorded fails the test (AssertionError)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.exchanges: list[dict[str, Any]] = json.loads(lzma.decompress((FIXTURES / f"{name}.json.xz").read_bytes()))
        self.position = 0

    def find(self, predicate) -> dict[str, Any]:
        """The first recorded exchange `predicate` accepts (to read what the server said)."""
        return next(exchange for exchange in self.exchanges if predicate(exchange))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert self.position < len(self.exchanges), f"{self.name}: a request beyond the recording: {request.method} {request.url}"
        recorded = self.exchanges[self.position]
        self.position += 1
        asked = _request_record(request)
        assert asked == recorded["request"], f"{self.name} #{self.position}: asked {asked}, recorded {recorded['request']}"
        return _response(recorded, request)

    @property
    def finished(self) -> bool:
        return self.position == len(self.exchanges)


class ServedFromRecording(httpx.AsyncBaseTransport):
    """Answers any request the recordings hold, in any order: each request's
    answers in the order the server gave them, the last one again after that
    (what a client that follows the server in the background meets). A
    request none holds fails the test. `asked` keeps every request."""

    def __init__(self, *names: str) -> None:
        self.name = "+".join(names)
        self.answers: dict[str, list[dict[str, Any]]] = {}
        for name in names:
            for exchange in json.loads(lzma.decompress((FIXTURES / f"{name}.json.xz").read_bytes())):
                self.answers.setdefault(json.dumps(exchange["request"], sort_keys=True), []).append(exchange)
        self.asked: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        asked = _request_record(request)
        self.asked.append(asked)
        answers = self.answers.get(json.dumps(asked, sort_keys=True))
        assert answers, f"{self.name}: no recorded answer to {request.method} {request.url}"
        return _response(answers.pop(0) if len(answers) > 1 else answers[0], request)
