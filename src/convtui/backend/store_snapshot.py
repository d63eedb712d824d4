"""The store's documents as last loaded, in one file that opens in a fifth
of the time the shards take to parse: the store's open reads it and parses
only the shards that changed since it was written.

A cache, never the data: the shards stay the one record. Each shard's
signature (inode, size, mtime) is kept beside its documents, and a shard
whose file no longer has that signature (a write replaces the file, so a
new inode) is parsed again. The file is `marshal` data (tuples, strings,
numbers: C speed both ways, strings that were shared stay shared; the
documents in chunks, each marshalled apart) behind a
header naming the format and the Python version, and a CRC of the payload:
a torn, foreign or damaged file is ignored, then replaced.
"""

from __future__ import annotations

import logging
import marshal
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from .durable_files import atomic_write
from .errors import StorageError
from .stored_documents import StoredDocument

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.bin"
_MAGIC = b"convtui-store-snapshot 3 py%d.%d\n" % sys.version_info[:2]
_CRC = 4  # bytes of CRC-32 after the magic
# Documents per marshal call: each call holds the interpreter lock, and a
# UI writes its snapshot while you type (one call over 100,000 held it 0.3 s).
_CHUNK = 5_000
Signature = tuple[int, int, int]  # (inode, size, mtime_ns)


@dataclass
class Snapshot:
    signatures: dict[str, Signature]  # per shard
    documents: list[StoredDocument]  # every shard's, newest activity last
    ids: list[str]  # sorted

    def shards_as_of(self, signatures: dict[str, Signature]) -> set[str]:
        """The shards whose documents here are those of the files now."""
        return {shard for shard, signature in self.signatures.items() if signatures.get(shard) == signature}


def read_snapshot(directory: Path) -> Snapshot | None:
    """The snapshot in `directory`, or None (none, damaged, or another format)."""
    try:
        raw = (directory / SNAPSHOT_FILE).read_bytes()
    except OSError:
        return None
    header = len(_MAGIC) + _CRC
    if not raw.startswith(_MAGIC) or len(raw) < header:
        return None
    payload = memoryview(raw)[header:]
    if zlib.crc32(payload) != int.from_bytes(raw[len(_MAGIC) : header], "little"):
        return None
    try:
        signatures, ids, chunks = marshal.loads(payload)
        documents: list[StoredDocument] = []
        for chunk in chunks:
            documents.extend(marshal.loads(chunk))
    except (ValueError, EOFError, TypeError):
        return None
    return Snapshot(signatures, documents, ids)


def write_snapshot(directory: Path, snapshot: Snapshot) -> None:
    """Replace the snapshot in `directory`. A failure is logged, not raised:
    the next open parses the shards, as without one."""
    documents = snapshot.documents
    chunks = [
        marshal.dumps(documents[start : start + _CHUNK])
        for start in range(0, len(documents), _CHUNK)
    ]
    payload = marshal.dumps((snapshot.signatures, snapshot.ids, chunks))
    data = _MAGIC + zlib.crc32(payload).to_bytes(_CRC, "little") + payload
    try:
        atomic_write(directory / SNAPSHOT_FILE, data)
    except StorageError as error:
        log.warning("the store's snapshot was not written: %s", error)


def remove_stale_temporaries(directory: Path, older_than: float = 60.0) -> None:
    """Temporary files of snapshot writes that a killed process left (a
    write in progress is younger)."""
    now = time.time()
    for path in directory.glob(f".{SNAPSHOT_FILE}.*.tmp"):
        try:
            if now - path.stat().st_mtime > older_than:
                path.unlink()
        except OSError:
            pass
