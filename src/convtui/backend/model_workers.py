"""The processes that make model calls (`model_worker.py`), seen from the
convtui process that starts them.

litellm spends 15-20 ms of Python per streamed call (building the request,
parsing every streamed chunk, pricing the reply three times), a third of that
on a call made whole (what a conversation nobody watches makes: see
UpdateHub.watch_text). In the UI's process that competed for the
interpreter lock: 200 loops stalled the event loop for up to 0.8 s. So calls run in worker processes, which also keep
litellm's 3.5 s import and ~250 MB out of the UI. One worker is one core:
at 200 loops it ran at 100% and was what the loops waited for. So another
worker starts when every running one is busy (BUSY of a core over the last
LOAD_WINDOW seconds, as the workers report their CPU time), up to one per
core beyond the one this process needs (at most MAX_WORKERS, or
$CONVTUI_MODEL_WORKERS); an extra worker that has had no call for
IDLE_SECONDS ends (the first one stays, ready for the next call).

On 2 cores that is one worker. Two there made 200 loops finish in 39 s
instead of 52, but the loops' event loop stalled for up to 250 ms instead
of 140 (p99 73 ms instead of 23): the cores were short, whatever the
workers' niceness.

Requests and replies are JSON lines over each worker's stdin/stdout; a
reader thread per worker hands each reply to the event loop of the call
that waits for it, so any event loop (any test's) can make calls. A call's
future gets the worker's last reply ({"done": ...} or {"error": ...});
llm.complete turns it into a response or a failure."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

MAX_WORKERS = 4
BUSY = 0.75  # of a core
LOAD_WINDOW = 1.0  # seconds
LOAD_TRUSTED = 3.0  # seconds: an older load sample says nothing of now
IDLE_SECONDS = 120.0  # an extra worker without a call this long ends

OnText = Callable[[str], None] | None

STOPPED = {
    "error": {
        "message": "the model worker process stopped",
        "runtime_status": "STATUS$ERROR",
        "agent_state": "error",
        "retryable": True,
    }
}


def max_workers() -> int:
    """One worker per core but one, at least one and at most MAX_WORKERS;
    $CONVTUI_MODEL_WORKERS (a number from 1) overrides it."""
    chosen = os.environ.get("CONVTUI_MODEL_WORKERS", "")
    if chosen.isdigit() and int(chosen) >= 1:
        return int(chosen)
    return max(1, min((os.cpu_count() or 1) - 1, MAX_WORKERS))


@dataclass(eq=False)
class _Worker:
    process: subprocess.Popen[bytes]
    ready: threading.Event = field(default_factory=threading.Event)  # litellm imported
    calls: set[int] = field(default_factory=set)  # in flight here
    load: float = 0.0  # share of a core over the last window
    _window: tuple[float, float] | None = None  # (wall, cpu) at its start
    _outgoing: queue.SimpleQueue[bytes | None] = field(default_factory=queue.SimpleQueue)  # for the writer thread

    def running(self) -> bool:
        return self.process.poll() is None

    def busy(self) -> bool:
        """Busy over its last window, and that window is recent (a worker
        that answered nothing lately is not busy, whatever it was)."""
        window = self._window
        return self.load >= BUSY and window is not None and time.monotonic() - window[0] < LOAD_TRUSTED

    def took_cpu(self, cpu: float) -> None:
        """The worker's CPU time, as it reported it with a reply."""
        now = time.monotonic()
        if self._window is None:
            self._window = (now, cpu)
        elif now - self._window[0] >= LOAD_WINDOW:
            self.load = (cpu - self._window[1]) / (now - self._window[0])
            self._window = (now, cpu)

    def send(self, message: dict[str, Any]) -> None:
        """Queue a request for the writer thread (never waits on the pipe)."""
        self._outgoing.put(orjson.dumps(message) + b"\n")

    def end(self) -> None:
        """Close its stdin once what was sent is written: it exits (calls in flight there fail)."""
        self._outgoing.put(None)

    def write(self) -> None:
        """The writer thread. A request waits here, not on the event loop,
        while the worker's input pipe is full: 200 loops asking at once
        filled it and held the event loop for 300 ms (and, with the pool's
        lock held meanwhile, could have held the reader, and the worker
        behind it, for good)."""
        stdin = self.process.stdin
        assert stdin is not None
        while (data := self._outgoing.get()) is not None:
            try:
                stdin.write(data)
                stdin.flush()
            except OSError:
                break  # gone: its reader fails its calls
        with contextlib.suppress(OSError):
            stdin.close()


class ModelWorkers:
    """The pool. Thread-safe: calls come from any event loop's thread."""

    def __init__(self, limit: int | None = None) -> None:
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []  # the first is the one that stays
        self._calls: dict[int, tuple[_Worker, asyncio.AbstractEventLoop, asyncio.Future[Any], OnText]] = {}
        self._next_id = 0
        self.limit = limit if limit is not None else max_workers()

    @property
    def ready(self) -> bool:
        """True once a worker runs and can answer at once (litellm imported)."""
        with self._lock:
            return any(worker.ready.is_set() and worker.running() for worker in self._workers)

    @property
    def started(self) -> int:
        """How many worker processes run (or start) now."""
        with self._lock:
            return sum(worker.running() for worker in self._workers)

    def warm(self) -> None:
        """Start the first worker now, if none runs, so that the first call
        does not wait for its start (a few seconds: litellm's import)."""
        with self._lock:
            self._first()

    async def wait_ready(self, timeout: float) -> bool:
        """Start a worker if needed and wait, at most `timeout` seconds,
        until one can answer. False if none got there (it stopped, or is
        still starting)."""
        with self._lock:
            first = self._first()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not first.ready.is_set():
            if not first.running() or loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def stop(self) -> None:
        """End every worker; calls in flight fail."""
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.end()
        for worker in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.process.wait(5)

    def submit(self, request: dict[str, Any], on_text: OnText) -> tuple[int, asyncio.Future[Any]]:
        """Send a call to the least busy ready worker (starting one if needed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._lock:
            worker = self._choose()
            self._next_id += 1
            call_id = self._next_id
            self._calls[call_id] = (worker, loop, future, on_text)
            worker.calls.add(call_id)
            worker.send({**request, "id": call_id})
        return call_id, future

    def cancel(self, call_id: int) -> None:
        with self._lock:
            entry = self._calls.pop(call_id, None)
            if entry is not None:
                entry[0].calls.discard(call_id)
                entry[0].send({"cancel": call_id})

    # -- with the lock held ----------------------------------------------------------

    def _first(self) -> _Worker:
        self._workers = [worker for worker in self._workers if worker.running()]
        if not self._workers:
            self._workers.append(self._start())
        return self._workers[0]

    def _choose(self) -> _Worker:
        first = self._first()
        ready = [worker for worker in self._workers if worker.ready.is_set()] or [first]
        if len(self._workers) < self.limit and all(worker.busy() for worker in ready):
            if all(worker.ready.is_set() for worker in self._workers):  # one starting at a time
                self._workers.append(self._start(extra=True))
        return min(ready, key=lambda worker: len(worker.calls))

    def _start(self, extra: bool = False) -> _Worker:
        command = [sys.executable, "-m", "convtui.backend.model_worker"]
        if extra:
            command += ["--idle", str(IDLE_SECONDS)]
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal is for the UI, not the worker
        )
        worker = _Worker(process)
        threading.Thread(target=worker.write, name="convtui-model-requests", daemon=True).start()
        threading.Thread(target=self._read, args=(worker,), name="convtui-model-replies", daemon=True).start()
        return worker

    # -- the reader thread, one per worker --------------------------------------------

    def _read(self, worker: _Worker) -> None:
        assert worker.process.stdout is not None
        for line in worker.process.stdout:
            try:
                reply = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if reply.get("ready"):
                worker.ready.set()
                continue
            if reply.get("idle"):
                self._end_if_idle(worker)
                continue
            entry = None
            with self._lock:
                if "cpu" in reply:
                    worker.took_cpu(reply["cpu"])
                entry = self._calls.get(reply.get("id"))
                if entry is not None and ("done" in reply or "error" in reply):
                    del self._calls[reply["id"]]
                    worker.calls.discard(reply["id"])
            if entry is not None:
                _, loop, future, on_text = entry
                _hand_over(loop, future, on_text, reply)
        with self._lock:
            orphans = [call_id for call_id, entry in self._calls.items() if entry[0] is worker]
            entries = [self._calls.pop(call_id) for call_id in orphans]
            if worker in self._workers:
                self._workers.remove(worker)
        for _, loop, future, on_text in entries:
            _hand_over(loop, future, on_text, STOPPED)

    def _end_if_idle(self, worker: _Worker) -> None:
        """An extra worker said it had no call for its idle time: end it,
        unless a call has just been sent to it."""
        with self._lock:
            if worker.calls or not self._workers or worker is self._workers[0]:
                return
            self._workers.remove(worker)
        worker.end()


# Replies handed to an event loop in one pass of it, at most. Each wakes a
# loop that then works for about a millisecond: 200 loops answered at once
# (as when they started together) held the event loop, and every timer on
# it, for 300 ms in one pass.
DELIVER_PER_PASS = 8

_Delivery = tuple[asyncio.Future[Any], OnText, Any]
_outboxes: dict[asyncio.AbstractEventLoop, collections.deque[_Delivery]] = {}
_outboxes_lock = threading.Lock()


def _hand_over(loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], on_text: OnText, reply: Any) -> None:
    """From a reader thread: queue the reply for the caller's event loop,
    which takes DELIVER_PER_PASS of them per pass."""
    with _outboxes_lock:
        outbox = _outboxes.get(loop)
        if outbox is not None:
            outbox.append((future, on_text, reply))  # a drain is scheduled and takes it
            return
        _outboxes[loop] = collections.deque([(future, on_text, reply)])
    try:
        loop.call_soon_threadsafe(_drain, loop)
    except RuntimeError:  # that event loop has closed
        with _outboxes_lock:
            _outboxes.pop(loop, None)


def _drain(loop: asyncio.AbstractEventLoop) -> None:
    with _outboxes_lock:
        outbox = _outboxes[loop]
        batch = [outbox.popleft() for _ in range(min(DELIVER_PER_PASS, len(outbox)))]
        more = bool(outbox)
        if not more:
            del _outboxes[loop]  # the next reply schedules a drain again
    if more:
        loop.call_soon(_drain, loop)  # in the next pass: timers and other callbacks run between
    for future, on_text, reply in batch:
        _deliver(future, on_text, reply)


def _deliver(future: asyncio.Future[Any], on_text: OnText, reply: dict[str, Any]) -> None:
    """On the caller's event loop: a streamed piece, or the last reply."""
    if "text" in reply:
        if on_text is not None and not future.done():
            on_text(reply["text"])
        return
    if not future.done():
        future.set_result(reply)
