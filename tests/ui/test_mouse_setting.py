"""`--no-mouse` and the `mouse` setting, in a real terminal: tmux reports
whether the program in its pane asked for mouse reporting. Without it the
terminal keeps the mouse, so text can be selected and copied (over SSH)."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from convtui.backend.settings import SettingsStore

from .test_tmux import TMUX, TmuxSession

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (needed for the real-terminal test)")


def mouse_reporting(data_dir: Path, *options: str) -> str:
    """tmux's #{mouse_any_flag} while convtui runs: '1' when it takes the mouse."""
    environment = {name: value for name, value in os.environ.items() if name not in ("TMUX", "TMUX_PANE")}
    command = shlex.join([sys.executable, "-m", "convtui", "--data-dir", str(data_dir), *options])
    session = TmuxSession(command, 100, 30, environment)
    try:
        session.wait_for("No conversations yet", timeout=20)
        return session.tmux("display-message", "-p", "-t", session.name, "#{mouse_any_flag}").strip()
    finally:
        session.close()


def test_the_mouse_is_the_apps_unless_asked_not_to(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert mouse_reporting(data_dir) == "1"
    assert mouse_reporting(data_dir, "--no-mouse") == "0"
    SettingsStore(data_dir / "settings.json").set("mouse", "off")
    assert mouse_reporting(data_dir) == "0"
