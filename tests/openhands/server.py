"""A real OpenHands server for the remote backend's tests, started as a user
runs one: `uvicorn openhands.app_server.app:app` (through launch.py) with
RUNTIME=process, no frontend, a private HOME, TMPDIR and persistence
directory, and SESSION_API_KEY set. Its agent servers are child processes;
stopping or killing the server's process group ends them too.

OpenHands needs Python 3.12 and ~1.4 GiB: `python3 tests/openhands/setup.py`
installs openhands-ai OPENHANDS_VERSION into a cache directory once (minutes);
$CONVTUI_OPENHANDS_PYTHON names another Python that has it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from .version import cached_venv

PYTHON_VARIABLE = "CONVTUI_OPENHANDS_PYTHON"
HERE = Path(__file__).resolve().parent
SESSION_KEY = "convtui-test-session-key"
START_TIMEOUT = 180.0


def openhands_python() -> Path | None:
    """The Python that runs OpenHands: $CONVTUI_OPENHANDS_PYTHON, else the
    cached install; None when there is neither."""
    explicit = os.environ.get(PYTHON_VARIABLE)
    if explicit:
        return Path(explicit)
    cached = cached_venv() / "bin" / "python"
    return cached if (cached_venv() / "installed").exists() else None


def openhands_version(python: Path) -> str:
    """The openhands-ai version `python` has ("?" when it cannot say)."""
    try:
        done = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('openhands-ai'))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return done.stdout.strip() or "?"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class OpenHandsServer:
    def __init__(self, python: Path, root: Path) -> None:
        self.python = python
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        for name in ("home", "tmp", "persistence"):
            (root / name).mkdir(parents=True, exist_ok=True)

    @property
    def environment(self) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.root / "home"),
            "TMPDIR": str(self.root / "tmp"),
            "RUNTIME": "process",
            "SERVE_FRONTEND": "false",
            "OH_PERSISTENCE_DIR": str(self.root / "persistence"),
            "SESSION_API_KEY": SESSION_KEY,
            # Where its agent servers send their events (its Docker runtime sets this itself).
            "OH_WEBHOOKS_0_BASE_URL": f"{self.url}/api/v1/webhooks",
            "OPENHANDS_SUPPRESS_BANNER": "1",
            "COLUMNS": "200",
        }

    def start(self) -> OpenHandsServer:
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 (the child keeps it)
        with log:
            self.process = subprocess.Popen(
                [str(self.python), str(HERE / "launch.py"), str(self.port)],
                env=self.environment,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # its agent servers in its process group
            )
        self.wait_until_answering()
        return self

    def wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the OpenHands server exited with {self.process.returncode}: {self.log_tail()}")
            try:
                answer = httpx.get(f"{self.url}/api/v1/app-conversations/count", headers={"X-Session-API-Key": SESSION_KEY}, timeout=5)
                if answer.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"the OpenHands server did not answer within {START_TIMEOUT:g} s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def _signal_group(self, number: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, number)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """A request of the test's own (setting the server up), not convtui's."""
        headers = {"X-Session-API-Key": SESSION_KEY}
        response = httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)
        response.raise_for_status()
        return response

    def settings(self, v1: dict, v0: dict) -> None:
        """Changes the server's settings: `v1` to /api/v1/settings (1.7 and
        later), or `v0` to /api/settings where that is missing (1.6, whose
        settings are still its V0 server's)."""
        try:
            self.request("POST", "/api/v1/settings", json=v1)
        except httpx.HTTPStatusError as error:
            if error.response.status_code != 404:
                raise
            self.request("POST", "/api/settings", json=v0)

    def use_model(self, base_url: str) -> None:
        """The server's agent talks to `base_url` (the test's fake model),
        with a terminal and a file editor (1.6 has no tools setting: launch.py
        leaves the browser out of its default tools)."""
        llm = {"model": "openai/fake-model", "base_url": base_url, "api_key": "sk-test"}
        self.settings(
            {"agent_settings_diff": {"llm": llm, "tools": [{"name": "terminal"}, {"name": "file_editor"}]}},
            {f"llm_{key}": value for key, value in llm.items()},
        )

    def confirmation_mode(self, on: bool) -> None:
        """Whether the server's agents ask before every action."""
        mode = {"confirmation_mode": on, **({"security_analyzer": "none"} if on else {})}
        self.settings({"conversation_settings_diff": mode}, mode)

    def seed(self, count: int) -> None:
        """`count` conversations stored through OpenHands' own service (seed.py)."""
        subprocess.run(
            [str(self.python), str(HERE / "seed.py"), str(count)],
            env=self.environment,
            cwd=self.root,
            check=True,
            capture_output=True,
            timeout=300,
        )
