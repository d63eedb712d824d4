"""Which OpenHands the remote backend is tested against, and where
setup.py installs it (stdlib only: setup.py runs before anything is installed)."""

from __future__ import annotations

import os
from pathlib import Path

OPENHANDS_VERSION = "1.11.0"


def cached_venv() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "convtui" / f"openhands-{OPENHANDS_VERSION}"
