"""The OpenHands client's manners on a real socket: its pace, which calls it
sends again after a failure, and the words of each failure."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from convtui.backend.openhands_http import OpenHandsHTTP, Pacer, ServerUnreachable, retry_after


async def test_the_pace_is_ten_starts_a_second() -> None:
    pacer = Pacer(rate=10)
    started = time.monotonic()
    moments = []
    for _ in range(25):
        await pacer.turn()
        moments.append(time.monotonic() - started)
    assert moments[9] < 0.5 <= 1.0 <= moments[10] and moments[24] >= 2.0
    assert all(moments[i + 10] - moments[i] >= 0.99 for i in range(15))


class SilentServer:
    """Accepts connections and reads, never answers: a server that hangs."""

    def __init__(self) -> None:
        self.connections = 0

    async def __aenter__(self) -> str:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            await reader.read(65536)
            await asyncio.sleep(30)

        self.server = await asyncio.start_server(accept, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()


async def test_a_read_is_sent_again_after_a_timeout_a_post_is_not() -> None:
    async with SilentServer() as url:
        http = OpenHandsHTTP(url, retry_delays=(0.01, 0.01))
        heard: list[str] = []
        http.on_wait = heard.append
        try:
            with pytest.raises(ServerUnreachable, match="cannot reach"):
                await http.request("GET", "/api/v1/app-conversations/count", read_timeout=0.2)
            assert len(heard) == 2 and heard[0].endswith("retrying in 0.01 s")
            heard.clear()
            with pytest.raises(ServerUnreachable, match="may or may not have been done"):
                await http.request("POST", "/api/v1/app-conversations", json={}, read_timeout=0.2)
            assert heard == []
        finally:
            await http.close()


def test_retry_after() -> None:
    def answer(value: str | None) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value} if value is not None else {})

    assert retry_after(answer("2")) == 2.0
    assert retry_after(answer(None)) == 1.0
    assert retry_after(answer("Wed, 21 Oct 2015 07:28:00 GMT")) == 1.0
    assert retry_after(answer("3600")) == 30.0
