"""Alerts reach a real terminal: the UI runs in a pseudo-terminal, as a
user starts it (its loops in the server it starts), and everything it
writes is read back. A conversation started elsewhere (the server's API, as
another UI or the CLI would) that starts waiting rings the bell and sends
OSC 9 and OSC 777; the one in view, waiting too, sends nothing."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from convtui.backend.models import NewConversationRequest
from convtui.backend.server import server_status
from convtui.backend.settings import SettingsStore

from ..fake_llm import FakeLLMServer, Hang, ToolCall
from ..server_process import http, stop_if_running

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")


class Terminal:
    """The UI on a pseudo-terminal of 120×32; `output` is all it wrote."""

    def __init__(self, arguments: list[str], environment: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 32, 120, 0, 0))
        self.process = subprocess.Popen(
            arguments, stdin=slave, stdout=slave, stderr=slave, env=environment, start_new_session=True, close_fds=True
        )
        os.close(slave)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    @property
    def output(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait_until(self, condition: Callable[[str], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.output):
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"waited for {what}; the terminal got:\n{self.output[-3000:]!r}")
            time.sleep(0.05)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
        os.close(self.master)


@pytest.fixture
def served_ui(data_dir: Path, llm: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], Terminal]]:
    monkeypatch.delenv("CONVTUI_SERVER")
    data_dir.mkdir(parents=True)
    SettingsStore(data_dir / "settings.json").update(
        {"llm_model": "openai/fake-model", "llm_api_key": "sk-alerts-0123456789", "llm_base_url": llm.base_url}
    )
    terminals: list[Terminal] = []

    def start() -> Terminal:
        environment = {name: value for name, value in os.environ.items() if name not in ("TMUX", "TMUX_PANE", "CONVTUI_SERVER")}
        environment.update(TERM="xterm-256color", TEXTUAL_ANIMATIONS="none")
        terminal = Terminal([sys.executable, "-m", "convtui", "--data-dir", str(data_dir)], environment)
        terminals.append(terminal)
        return terminal

    yield start
    for terminal in terminals:
        terminal.close()
    stop_if_running(data_dir)


_OSC = re.compile(r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")  # ended by BEL or ST (Textual's own use BEL too)


def bells(output: str) -> int:
    """Bells rung: BELs that end no OSC string."""
    return _OSC.sub("", output).count("\a")


def new_conversation(data_dir: Path, message: str) -> str:
    with http(data_dir) as client:
        answer = client.post("/api/conversations", json=NewConversationRequest(initial_user_msg=message).model_dump(exclude_none=True))
        answer.raise_for_status()
        return answer.json()["conversation_id"]


def start(data_dir: Path, conversation_id: str) -> None:
    with http(data_dir) as client:
        client.post(f"/api/conversations/{conversation_id}/start", json={}).raise_for_status()


def test_a_background_conversation_that_starts_waiting_rings_and_notifies_and_the_one_in_view_does_not(
    served_ui: Callable[[], Terminal], data_dir: Path, llm: FakeLLMServer
) -> None:
    terminal = served_ui()
    terminal.wait_until(lambda out: "No conversations yet" in out, "the empty list")
    deadline = time.monotonic() + 30
    while server_status(data_dir) is None:  # the UI started its server
        assert time.monotonic() < deadline, terminal.output[-2000:]
        time.sleep(0.1)

    llm.responder = lambda body: (
        ToolCall("execute_bash", {"command": "echo in view"}) if len(body["messages"]) == 2 else Hang()
    )
    in_view = new_conversation(data_dir, "Look at this one")
    terminal.wait_until(lambda out: "Look at this one" in out, "the conversation listed")
    start(data_dir, in_view)
    terminal.wait_until(lambda out: "needs approval" in out, "the one in view waiting for approval")
    time.sleep(1.0)  # an alert would have been written by now
    assert "\x1b]9;" not in terminal.output and "\x1b]777;" not in terminal.output and bells(terminal.output) == 0

    llm.responder = lambda body: (
        ToolCall("execute_bash", {"command": "make deploy"}) if len(body["messages"]) == 2 else Hang()
    )
    elsewhere = new_conversation(data_dir, "Deploy elsewhere")
    start(data_dir, elsewhere)
    terminal.wait_until(lambda out: "\x1b]9;convtui waiting: Deploy elsewhere (approve: make deploy)\x07" in out, "OSC 9")
    output = terminal.output
    assert "\x1b]777;notify;convtui;waiting: Deploy elsewhere (approve: make deploy)\x07" in output
    assert bells(output) == 1
