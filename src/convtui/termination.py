"""SIGHUP (the terminal closed, the SSH connection dropped) and SIGTERM
(`kill`) end convtui the way `q` does, so that its clean-up runs: loops stop,
the demo's temporary directory goes. Python's default for both is to die on
the spot, skipping every `finally`."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Protocol

TERMINATING_SIGNALS = (signal.SIGHUP, signal.SIGTERM)


class _Exitable(Protocol):
    @property
    def is_running(self) -> bool: ...

    def exit(self, result: None = None, return_code: int = 0) -> None: ...


class Termination:
    """Set `app` once it exists. `exit_code` is 128 + the number of the first
    terminating signal received (the shell's convention), else None."""

    def __init__(self) -> None:
        self.app: _Exitable | None = None
        self.signals: list[int] = []
        self._holding = False

    @property
    def exit_code(self) -> int | None:
        return 128 + self.signals[0] if self.signals else None

    def hold(self) -> None:
        """From now on only record signals: a clean-up is under way."""
        self._holding = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = not self.signals
        self.signals.append(signum)
        if not first or self._holding:
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
def ends_cleanly_on_termination() -> Iterator[Termination]:
    """While the block runs, the first SIGHUP or SIGTERM asks the app to
    exit if its event loop runs, else raises SystemExit (e.g. while the demo
    is being seeded), so that `finally` blocks run either way. Later signals
    are recorded and otherwise ignored, so that a clean-up under way is not
    cut short. The previous handlers are restored on the way out."""
    termination = Termination()
    previous = {number: signal.signal(number, termination._handle) for number in TERMINATING_SIGNALS}
    try:
        yield termination
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
