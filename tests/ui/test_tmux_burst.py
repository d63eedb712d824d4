"""Whole key sequences sent in ONE `tmux send-keys` call, so that they reach
the app in one terminal read, the way they do over SSH: F2 settings, the new
conversation form, rename and the filter, each filled and submitted in one
go. The CLI then checks what was stored. The app starts once; every wait
polls the screen. Skipped when tmux is not installed."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from .test_tmux import HEIGHT, WIDTH, TmuxSession, _status_line, pytestmark  # noqa: F401 (skip without tmux)


def cli(data_dir: Path, environment: dict[str, str], *arguments: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "convtui", "--data-dir", str(data_dir), *arguments],
        capture_output=True, text=True, env=environment, timeout=60, check=True,
    ).stdout


def test_forms_filled_in_one_write_each_store_what_was_typed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    environment = {
        name: value for name, value in os.environ.items()
        if name not in ("TMUX", "TMUX_PANE") and not name.startswith("CONVTUI_")
    }
    environment["CONVTUI_SERVER"] = "off"  # no background server outlives the test
    app = f"{shlex.quote(sys.executable)} -m convtui --data-dir {shlex.quote(str(data_dir))}"
    title = "Renamed in one burst"
    status_file = tmp_path / "exit-status"
    session = TmuxSession(f"{app}; echo $? > {shlex.quote(str(status_file))}", WIDTH, HEIGHT, environment)
    try:
        session.wait_for("No conversations yet", timeout=20)

        # F2, model, Tab, API key, Tab, base URL, ctrl+s: one write.
        session.press("F2", "C-u", "openai/fake", "Tab", "x", "Tab", "C-u", "http://127.0.0.1:18080/v1", "C-s")
        session.wait_for("Settings saved")

        # n, message, Tab, repository, Tab, branch, Tab, Tab, space ("start now" off), ctrl+s.
        session.press("n", "fix the login page", "Tab", "acme/webapp", "Tab", "main", "Tab", "Tab", "Space", "C-s")
        session.wait_until(
            lambda screen: "New conversation" not in screen and "1 of 1" in _status_line(screen),
            "the dialog to close and the list to show one conversation",
        )
        session.wait_for("Conversation created")

        # r, ctrl+u, the new title, Enter.
        session.press("r", "C-u", title, "Enter")
        session.wait_until(lambda screen: "Rename conversation" not in screen and title in screen, f"{title!r} listed")

        # /, ctrl+u, words, Enter, j (back on the list).
        session.press("/", "C-u", "one burst", "Enter", "j")
        screen = session.wait_until(lambda screen: "filter: one burst" in _status_line(screen), "the filter to apply")
        assert _status_line(screen).strip().startswith("1 of 1"), screen

        session.press("q")  # Enter gave the keys back to the list: q quits
        assert session.wait_for_exit(status_file, timeout=10) == 0, session.screen()
    finally:
        session.close()

    settings = dict(
        line.split(" = ", 1) for line in cli(data_dir, environment, "config", "show").splitlines() if " = " in line
    )
    assert settings["llm_model"] == "openai/fake"
    assert settings["llm_api_key"] == "********"  # "x", masked
    assert settings["llm_base_url"] == "http://127.0.0.1:18080/v1"

    [row] = json.loads(cli(data_dir, environment, "list", "--json"))["results"]
    shown = json.loads(cli(data_dir, environment, "show", row["conversation_id"], "--json"))
    assert shown["title"] == title
    assert (shown["selected_repository"], shown["selected_branch"]) == ("acme/webapp", "main")
    assert shown["status"] == "STOPPED"
