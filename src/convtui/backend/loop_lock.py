"""Which process runs a conversation's loop: the one holding an flock on
`conversations/<id>/loop.lock`, whose pid is written inside. The kernel
drops the lock when that process dies, so a crashed runner never blocks a
restart and a stale RUNNING status is recognisable."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from .errors import StorageError, describe_os_error

LOCK_NAME = "loop.lock"
ACQUIRE_TRIES = 10
ACQUIRE_PAUSE_SECONDS = 0.01
STOP_REQUEST_NAME = "stop.request"


class LoopLock:
    def __init__(self, conversation_directory: Path) -> None:
        self.path = conversation_directory / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> int | None:
        """Take the lock. Returns None on success, else the pid of the
        process that holds it (0 if unknown)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise StorageError(describe_os_error(error, "lock")) from error
        for attempt in range(ACQUIRE_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # A probe (runner_pid) holds a shared lock for an instant: only
                # a lock still held after a few tries is another process's loop.
                if attempt == ACQUIRE_TRIES - 1:
                    holder = _read_pid(fd)
                    os.close(fd)
                    return holder
                time.sleep(ACQUIRE_PAUSE_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return None

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def _read_pid(fd: int) -> int:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0)
    except (OSError, ValueError):
        return 0


def runner_pid(conversation_directory: Path) -> int | None:
    """The pid of the process running this conversation's loop, or None if
    no process does (probes the lock without keeping it)."""
    path = conversation_directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_pid(fd) or 0
    finally:
        os.close(fd)
    return None
