"""A TinyDB Storage that writes durably: fsynced, atomically replaced files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from tinydb.storages import Storage

from .durable_files import atomic_write
from .errors import CorruptFile, StorageError, describe_os_error


def load_json_file(path: Path, raw: bytes) -> dict[str, Any]:
    """Parse a TinyDB file; raises CorruptFile naming `path` if it is damaged."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise CorruptFile(path, f"invalid JSON: {error}") from None
    if not isinstance(data, dict) or not all(isinstance(t, dict) for t in data.values()):
        raise CorruptFile(path, "not a TinyDB document")
    return data


class DurableJSONStorage(Storage):
    """TinyDB's JSONStorage rewrites its file in place, so a crash mid-write
    leaves half a file. This one writes a temporary file, fsyncs it and renames
    it over the old one: readers and crashes see the old or the new file whole.

    One instance serves one operation: it reads and parses the file once and
    hands TinyDB the same dict on every read. TinyDB mutates that dict only in
    the write that ends the operation, after which the instance is dropped."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._data: dict[str, Any] | None = None
        self._missing = False
        self.written: dict[str, Any] | None = None

    def read(self) -> dict[str, Any] | None:
        if self._data is None and not self._missing:
            try:
                raw = self.path.read_bytes()
            except FileNotFoundError:
                self._missing = True
                return None
            except OSError as error:
                raise StorageError(describe_os_error(error, "read")) from error
            self._data = load_json_file(self.path, raw)
        return self._data

    def write(self, data: dict[str, Any]) -> None:
        atomic_write(self.path, orjson.dumps(data))
        self._data = data
        self._missing = False
        self.written = data

    def close(self) -> None:
        pass
