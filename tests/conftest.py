from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from convtui.backend.service import ConversationService

FIXTURES = Path(__file__).parent / "fixtures"
TRAJECTORIES = sorted((FIXTURES / "openhands-trajectories").glob("*.json"))


@pytest.fixture(autouse=True)
def _isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test reads the developer's data directory, settings or identity, nor
    writes into the checkout (an export lands in the working directory)."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    for variable in ("CONVTUI_DATA_DIR", "CONVTUI_LLM_MODEL", "CONVTUI_LLM_API_KEY", "CONVTUI_LLM_BASE_URL", "CONVTUI_USER"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    # The tests written for in-process loops keep them; the server's own
    # tests (and the server-mode CLI and UI tests) turn this off.
    monkeypatch.setenv("CONVTUI_SERVER", "off")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def service(data_dir: Path) -> AsyncIterator[ConversationService]:
    opened = await ConversationService.open(data_dir, user_id="alice")
    yield opened
    opened.close()
