"""Writing files so that a crash at any instant leaves the old or the new
content, never a mix, and locking them across processes."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

from .errors import StorageError, describe_os_error


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace `path` with `data`, durably: write a temporary file beside it,
    fsync it, rename it over `path`, fsync the directory. Raises StorageError;
    on failure the previous content of `path` is intact and no temporary file
    is left behind."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
        fsync_directory(path.parent)
    except OSError as error:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass
        raise StorageError(_describe_write_error(error, path, temporary)) from error


def _describe_write_error(error: OSError, path: Path, temporary: Path) -> str:
    """One line naming `path`, never the temporary file beside it (a name the
    user never gave), and the missing directory when that is the cause."""
    if isinstance(error, FileNotFoundError) and not path.parent.is_dir():
        return f"could not write {path}: directory {path.parent} does not exist"
    if error.filename in (str(temporary), temporary):
        error = OSError(error.errno, error.strerror)  # the same cause, without the temporary name
    return describe_os_error(error, "write", path)


def create_exclusive(path: Path, data: bytes, mode: int = 0o644) -> bool:
    """Write `path` only if it does not exist yet, atomically across processes:
    the content is complete before the name appears. Returns False if it existed."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        fsync_directory(path.parent)
        return True
    except OSError as error:
        raise StorageError(_describe_write_error(error, path, temporary)) from error
    finally:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass


class InterProcessLock:
    """An exclusive lock shared by the threads of this process and by other
    processes: flock(2) on a lock file, which the kernel releases if the
    holder dies. It is the lock filelock takes on Unix (so either side may
    hold it), taken directly: filelock spent 0.2 ms of Python on each
    acquire and release, two thirds of an event append's CPU, and polled
    for a contended lock where flock waits and wakes at once. Reentrant
    within a thread; another thread waits on the thread lock first."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._thread_lock = threading.RLock()
        self._fd: int | None = None
        self._depth = 0

    def __enter__(self) -> InterProcessLock:
        self._thread_lock.acquire()
        try:
            if self._depth == 0:
                try:
                    self._fd = self._lock_file()
                except OSError as error:
                    raise StorageError(describe_os_error(error, "lock", self.path)) from error
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)  # explicitly: a forked child may share the descriptor until it execs
            finally:
                os.close(fd)
        self._thread_lock.release()

    def _lock_file(self) -> int:
        """Open the lock file (and its directory, if missing) and wait for its lock."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        return fd
