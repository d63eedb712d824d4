from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from convtui.backend.service import ConversationService

from .fake_llm import FakeLLMServer

FIXTURES = Path(__file__).parent / "fixtures"
TRAJECTORIES = sorted((FIXTURES / "openhands-trajectories").glob("*.json"))


@pytest.fixture(scope="session", autouse=True)
def _no_server_outlives_the_tests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A `convtui serve` a test started and left running is ended here, and
    named in a warning: a test must stop what it starts."""
    yield
    import signal
    import warnings

    from .server_process import serve_processes

    for pid in serve_processes(str(tmp_path_factory.getbasetemp()).encode()):
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            os.kill(pid, signal.SIGTERM)
            warnings.warn(f"a test left a convtui server running: {command}")


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
def llm() -> Iterator[FakeLLMServer]:
    """A fake OpenAI server on 127.0.0.1, in a thread: a server process or a
    CLI run in a subprocess reaches it too. (Async tests may define their own.)"""
    with FakeLLMServer.in_thread() as server:
        yield server


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
async def service(data_dir: Path) -> AsyncIterator[ConversationService]:
    opened = await ConversationService.open(data_dir, user_id="alice")
    yield opened
    opened.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Whether the remote backend met a real OpenHands server in this run."""
    from .openhands.server import PYTHON_VARIABLE, openhands_python, openhands_version
    from .openhands.version import OPENHANDS_VERSION

    python = openhands_python()
    if python is not None:
        version = openhands_version(python) if os.environ.get(PYTHON_VARIABLE) else OPENHANDS_VERSION
        terminalreporter.write_line(f"OpenHands server tests: run against openhands-ai {version} ({python})")
    else:
        terminalreporter.write_line(
            "OpenHands server tests: SKIPPED, no OpenHands installed "
            "(python3 tests/openhands/setup.py installs it; the replayed recordings ran)"
        )
