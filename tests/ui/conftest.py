"""Fixtures shared by the UI tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from .seed import seed_store


@pytest.fixture
def seeded(data_dir: Path) -> list[str]:
    """The sample conversations, written straight into the store."""
    return seed_store(data_dir)

