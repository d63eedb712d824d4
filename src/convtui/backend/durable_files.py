"""Writing files so that a crash at any instant leaves the old or the new
content, never a mix, and locking them across processes."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from filelock import FileLock

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
    processes (a file lock, released by the kernel if the holder dies).

    filelock polls; a short poll interval keeps a contended write in the
    low milliseconds instead of filelock's default 50 ms steps."""

    def __init__(self, path: Path) -> None:
        self._thread_lock = threading.RLock()
        self._file_lock = FileLock(path, thread_local=False, poll_interval=0.001)
        self._depth = 0

    def __enter__(self) -> InterProcessLock:
        self._thread_lock.acquire()
        try:
            if self._depth == 0:
                try:
                    self._file_lock.acquire()
                except OSError as error:
                    raise StorageError(describe_os_error(error, "lock")) from error
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._file_lock.release()
        self._thread_lock.release()
