"""Keeping Python's garbage collector away from what lives as long as the process."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def made_to_last() -> Iterator[None]:
    """No collection while the block makes objects that live on (modules
    imported, 100,000 stored documents), then those objects are frozen out of
    every later collection. A collection during the block finds nothing to
    free; after it, the first allocation would collect the young generation
    holding all of it (~60 ms for 100,000 documents, ~25 ms for the UI's
    modules), and later full collections walk it again as it ages."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
