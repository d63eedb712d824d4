"""SIGHUP (the terminal closed, the SSH connection dropped) and SIGTERM
(`kill`) end convtui the way `q` does, so that its clean-up runs: loops stop,
the demo's temporary directory goes. Python's default for both is to die on
the spot, skipping every `finally`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

TERMINATING_SIGNALS = (signal.SIGHUP, signal.SIGTERM)
# After a terminating signal the app has this long to end cleanly; then the
# clean-ups registered run and the process ends anyway. A closed terminal
# must never leave convtui hung (seen twice in loaded test runs: the main
# thread stuck in Textual's shutdown, WriterThread.stop waiting on a queue
# whose writer thread waited on it too).
FORCED_EXIT_SECONDS = 10.0

log = logging.getLogger(__name__)


class _Exitable(Protocol):
    @property
    def is_running(self) -> bool: ...

    def exit(self, result: None = None, return_code: int = 0) -> None: ...


class Termination:
    """Set `app` once it exists. `exit_code` is 128 + the number of the first
    terminating signal received (the shell's convention), else None."""

    def __init__(self, forced_exit_seconds: float = FORCED_EXIT_SECONDS) -> None:
        self.app: _Exitable | None = None
        self.signals: list[int] = []
        self.cleanups: list[Callable[[], None]] = []  # what must run even when the exit is forced
        self._holding = False
        self._forced_exit_seconds = forced_exit_seconds

    def _force_exit(self) -> None:
        """The app did not end in time: run the clean-ups, then end."""
        for cleanup in self.cleanups:
            try:
                cleanup()
            except Exception:  # the others still run
                log.exception("clean-up failed")
        os._exit(self.exit_code or 1)

    @property
    def exit_code(self) -> int | None:
        return 128 + self.signals[0] if self.signals else None

    def hold(self) -> None:
        """From now on only record signals: a clean-up is under way."""
        self._holding = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.signals
        self.signals.append(signum)
        if not first:
            return
        watchdog = threading.Timer(self._forced_exit_seconds, self._force_exit)
        watchdog.daemon = True  # a process that ends in time does not wait for it
        watchdog.start()
        if self._holding:
            return
        try:
            loop = asyncio.get_running_loop()  # the handler runs on the main thread, inside it
        except RuntimeError:
            loop = None
        if loop is not None and self.app is not None:
            # Whether the app is starting, running or already ending (its
            # input thread may have seen the closed terminal first), asking
            # it to exit is safe. Raising here is not: the exception would
            # land in whatever the main thread was doing, e.g. inside the
            # writer thread's queue, which then never wakes (seen: a closed
            # terminal left convtui hung in its shutdown).
            loop.call_soon_threadsafe(self.app.exit, None, 128 + signum)
        else:
            raise SystemExit(128 + signum)


@contextmanager
def ends_cleanly_on_termination(forced_exit_seconds: float = FORCED_EXIT_SECONDS) -> Iterator[Termination]:
    """While the block runs, the first SIGHUP or SIGTERM asks the app to
    exit if its event loop runs, else raises SystemExit (e.g. while the demo
    is being seeded), so that `finally` blocks run either way. Later signals
    are recorded and otherwise ignored, so that a clean-up under way is not
    cut short, unless the process has not ended FORCED_EXIT_SECONDS after
    the first: then `termination.cleanups` run and it ends. The previous
    handlers are restored on the way out."""
    termination = Termination(forced_exit_seconds)
    previous = {number: signal.signal(number, termination._handle) for number in TERMINATING_SIGNALS}
    try:
        yield termination
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
