"""HTTP to an OpenHands server, as a polite client: at most 10 requests a
second (its per-IP limit delays more and refuses beyond 20), a 429's
Retry-After obeyed, idempotent calls retried with backoff when the network
or the server fails, and every failure one ConvtuiError in a person's words.

`on_wait(message)` hears "server unreachable, retrying in 4 s" and the like
while a retry waits, so a UI can say so instead of freezing."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

from .errors import ConvtuiError, InvalidInput, NotFound, PermissionDenied

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
REQUESTS_PER_SECOND = 10  # the server delays the 11th request of a second by 1 s
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)  # then give up (idempotent calls only)
RETRY_AFTER_MAX = 30.0
SESSION_KEY_HEADER = "X-Session-API-Key"


class ServerUnreachable(ConvtuiError):
    """No answer from the OpenHands server (refused, timed out, TLS failed)."""


class ServerFailed(ConvtuiError):
    """The OpenHands server answered with an error of its own (5xx, 429)."""


class NoSuchRoute(NotFound):
    """The server has no such route (405, or a 404 that names nothing):
    an older OpenHands, where the caller may try the older route."""


class Pacer:
    """At most `rate` starts in any second: each caller waits its turn."""

    def __init__(self, rate: int = REQUESTS_PER_SECOND, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._clock = clock
        self._starts: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()

    async def turn(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._starts and now - self._starts[0] >= 1.0:
                    self._starts.popleft()
                if len(self._starts) < self.rate:
                    self._starts.append(now)
                    return
                await asyncio.sleep(1.0 - (now - self._starts[0]))


def retry_after(response: httpx.Response) -> float:
    """The seconds a 429 or 503 asks us to wait (1 s when it does not say)."""
    try:
        return min(RETRY_AFTER_MAX, max(0.0, float(response.headers.get("Retry-After", "1"))))
    except ValueError:  # an HTTP date: not worth parsing for a wait this short
        return 1.0


def detail_of(response: httpx.Response) -> str:
    """The server's own words about an error, one line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail: Any = body.get("detail") or body.get("message") or body.get("error") if isinstance(body, dict) else None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):  # FastAPI's validation errors
        first = detail[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        detail = f"{where}: {first.get('msg')}" if where else first.get("msg")
    text = str(detail) if detail else response.text.strip() or response.reason_phrase
    return " ".join(text.split())[:300]


def error_for(response: httpx.Response, where: str) -> ConvtuiError:
    status = response.status_code
    detail = detail_of(response)
    if status in (401, 403):
        return PermissionDenied(f"{where} refused the API key ({status}: {detail})")
    if status == 405:
        return NoSuchRoute(f"{where} does not serve this request ({status}: {detail})")
    if status == 404:
        if detail == "Not Found":  # what it answers for a path it has no route for, or for nothing named
            return NoSuchRoute(f"{where} has no such conversation")
        return NotFound(detail or f"{where} has no such conversation")
    if status in (400, 409, 413, 422):  # (413: an export beyond its limit of events)
        return InvalidInput(f"{where} refused it: {detail}")
    if status == 429:
        return ServerFailed(f"{where} is rate limiting this client; try again in a few seconds")
    return ServerFailed(f"{where} failed ({status}: {detail})")


class OpenHandsHTTP:
    """One server. `transport` replaces the network (tests replay recorded answers)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        insecure: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        on_wait: Callable[[str], None] | None = None,
        retry_delays: tuple[float, ...] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.api_key = api_key  # (never shown: what a preview of a file is redacted of)
        self.on_wait = on_wait
        self.retry_delays = RETRY_DELAYS if retry_delays is None else retry_delays
        self.pacer = Pacer()
        headers = {SESSION_KEY_HEADER: api_key} if api_key else {}
        if insecure:
            log.warning("TLS certificates of %s are not verified (--insecure)", self.url)
        self._client = httpx.AsyncClient(
            base_url=self.url,
            headers=headers,
            verify=not insecure,
            transport=transport,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            follow_redirects=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool | None = None,
        read_timeout: float = READ_TIMEOUT,
        allow: tuple[int, ...] = (),
        **kwargs: Any,
    ) -> httpx.Response:
        """The server's successful answer (or one whose status is in
        `allow`); else ConvtuiError. GET, PUT and DELETE are retried after a
        network failure, a 5xx or a 429; other methods only when the request
        surely did not arrive (connection refused) or was refused unread (429)."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT", "DELETE")
        timeout = httpx.Timeout(read_timeout, connect=CONNECT_TIMEOUT)
        delays = iter(self.retry_delays)
        while True:
            await self.pacer.turn()
            response: httpx.Response | None = None
            try:
                response = await self._client.request(method, path, timeout=timeout, **kwargs)
            except httpx.ConnectError as error:  # never arrived: safe to send again
                reason = _reason(error)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as error:
                if not idempotent:
                    raise ServerUnreachable(f"{self.url}: {_reason(error)}; it may or may not have been done") from None
                reason = _reason(error)
            else:
                if response.is_success or response.status_code in allow:
                    return response
                busy = response.status_code == 429 or (response.status_code in (502, 503, 504) and idempotent)
                if not busy:
                    raise error_for(response, self.url)
            wait = next(delays, None)
            if wait is None:
                raise ServerUnreachable(f"cannot reach {self.url}: {reason}") if response is None else error_for(response, self.url)
            if response is not None and response.status_code == 429:
                wait = retry_after(response)
            if self.on_wait is not None:
                why = "server unreachable" if response is None else f"server busy ({response.status_code})"
                self.on_wait(f"{why}, retrying in {wait:g} s")
            await asyncio.sleep(wait)

    async def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ServerFailed(f"{self.url} answered {path} with something that is not JSON") from None


def _reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())[:200]
