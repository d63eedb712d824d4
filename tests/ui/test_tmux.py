"""One end-to-end test in a real terminal: the `convtui` UI runs inside a
detached tmux session (100×30, TERM=xterm-256color) and is driven with
`tmux send-keys` the way a user types, reading the screen back with
`tmux capture-pane`.

New conversation (with "Start now" switched off) → rename → filter → quit,
then the CLI checks what reached the store. Every wait polls the screen; no
step sleeps for a fixed time. Skipped when tmux is not installed.

The tmux server is private to the test (its own `-L` socket), so a tmux the
developer is using is never touched, and it is killed at the end.

The rename ("r" and the new title) and the filter ("/quok") are each sent
in one go, so they reach the app in one read: the keys after "r" and "/" must
land in the field those keys open, not on the list's and the screen's
bindings (q quits).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

TMUX = shutil.which("tmux")

pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (needed for the real-terminal test)")

WIDTH, HEIGHT = 100, 30
POLL_SECONDS = 0.05


class TmuxSession:
    """A detached tmux session on a private server."""

    def __init__(self, command: str, width: int, height: int, environment: dict[str, str]) -> None:
        token = uuid.uuid4().hex[:12]
        self.socket = f"convtui-test-{token}"
        self.name = f"convtui-{token}"
        self.environment = environment
        self.tmux(
            "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
            "-e", "TERM=xterm-256color",
            command,
            # The pane stays after the app exits, so its last screen can be read.
            ";", "set-option", "-t", self.name, "remain-on-exit", "on",
        )

    def tmux(self, *arguments: str) -> str:
        result = subprocess.run(
            [TMUX, "-L", self.socket, *arguments],
            capture_output=True, text=True, env=self.environment, timeout=10, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(arguments)} failed: {result.stderr.strip()}")
        return result.stdout

    def screen(self, colours: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if colours else []), "-t", self.name)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.name, "-l", text)

    def press(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def wait_until(self, condition: Callable[[str], bool], what: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; the screen:\n{screen}")
            time.sleep(POLL_SECONDS)

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        return self.wait_until(lambda screen: text in screen, repr(text), timeout)

    def wait_gone(self, text: str, timeout: float = 10.0) -> str:
        return self.wait_until(lambda screen: text not in screen, f"{text!r} to go away", timeout)

    def wait_for_exit(self, status_file: Path, timeout: float) -> int:
        """Wait until the pane's command has exited (the pane stays, dead,
        thanks to remain-on-exit); the app's exit status, which the command
        wrote to `status_file` (tmux's own #{pane_dead_status} is sometimes
        never filled in: tmux 3.3 can leave the process unreaped)."""
        deadline = time.monotonic() + timeout
        while True:
            dead = self.tmux("list-panes", "-t", self.name, "-F", "#{pane_dead}").strip() == "1"
            written = status_file.read_text().strip() if status_file.exists() else ""
            if dead and written:
                return int(written)
            if time.monotonic() > deadline:
                raise AssertionError(f"the app did not exit within {timeout:.0f}s; the screen:\n{self.screen()}")
            time.sleep(POLL_SECONDS)

    def close(self) -> None:
        try:
            socket_path = self.tmux("display-message", "-p", "#{socket_path}").strip()
        except (RuntimeError, subprocess.TimeoutExpired):
            socket_path = ""
        for arguments in (("kill-session", "-t", self.name), ("kill-server",)):
            try:
                self.tmux(*arguments)
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
        if socket_path:  # tmux leaves its socket file behind
            Path(socket_path).unlink(missing_ok=True)


# -- reading a colour off the screen ----------------------------------------------------

_SGR = re.compile(r"\x1b\[([0-9;:]*)m")
_OTHER_ESCAPE = re.compile(r"\x1b(?:\[[0-9;?]*[A-Za-z]|\][^\x07]*\x07|[()][A-Za-z0-9])")
RGB = tuple[int, int, int]
DEFAULT_FOREGROUND: RGB = (229, 229, 229)
DEFAULT_BACKGROUND: RGB = (0, 0, 0)
_BASIC = [
    (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229),
    (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0), (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255),
]


def _palette(index: int) -> RGB:
    if index < 16:
        return _BASIC[index]
    if index < 232:
        index -= 16
        levels = [0 if level == 0 else 55 + 40 * level for level in (index // 36, index // 6 % 6, index % 6)]
        return (levels[0], levels[1], levels[2])
    grey = 8 + 10 * (index - 232)
    return (grey, grey, grey)


def styled_cells(line: str) -> list[tuple[str, RGB, RGB]]:
    """Each printed character of a `capture-pane -e` line with its
    foreground and background colour (SGR 30-37/90-97, 38;5;N and 38;2;R;G;B)."""
    foreground, background = DEFAULT_FOREGROUND, DEFAULT_BACKGROUND
    cells: list[tuple[str, RGB, RGB]] = []
    position = 0
    while position < len(line):
        match = _SGR.match(line, position)
        if match:
            codes = [int(code or 0) for code in re.split(r"[;:]", match.group(1))]
            index = 0
            while index < len(codes):
                code = codes[index]
                if code == 0:
                    foreground, background = DEFAULT_FOREGROUND, DEFAULT_BACKGROUND
                elif code == 39:
                    foreground = DEFAULT_FOREGROUND
                elif code == 49:
                    background = DEFAULT_BACKGROUND
                elif 30 <= code <= 37 or 90 <= code <= 97:
                    foreground = _BASIC[code - 30 if code < 90 else code - 82]
                elif 40 <= code <= 47 or 100 <= code <= 107:
                    background = _BASIC[code - 40 if code < 100 else code - 92]
                elif code in (38, 48) and index + 1 < len(codes):
                    if codes[index + 1] == 5 and index + 2 < len(codes):
                        colour = _palette(codes[index + 2])
                        index += 2
                    elif codes[index + 1] == 2 and index + 4 < len(codes):
                        colour = (codes[index + 2], codes[index + 3], codes[index + 4])
                        index += 4
                    else:
                        colour = DEFAULT_FOREGROUND if code == 38 else DEFAULT_BACKGROUND
                    if code == 38:
                        foreground = colour
                    else:
                        background = colour
                index += 1
            position = match.end()
            continue
        other = _OTHER_ESCAPE.match(line, position)
        if other:
            position = other.end()
            continue
        cells.append((line[position], foreground, background))
        position += 1
    return cells


def _luminance(colour: RGB) -> float:
    red, green, blue = colour
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def checkbox_look(session: TmuxSession, label: str) -> tuple[float, tuple[RGB, RGB], tuple[RGB, RGB]]:
    """How the `▐X▌ label` checkbox is drawn: the contrast of its X against
    its own background (Textual shows the state only by colour: a bright X
    when on, an X the colour of the background when off), the X's colours
    and the label's colours (which change when the checkbox has focus)."""
    for line in session.screen(colours=True).splitlines():
        cells = styled_cells(line)
        text = "".join(cell[0] for cell in cells)
        at = text.find("▐X▌ " + label)
        if at != -1:
            _, x_foreground, x_background = cells[at + 1]
            _, label_foreground, label_background = cells[at + 4]
            contrast = abs(_luminance(x_foreground) - _luminance(x_background))
            return contrast, (x_foreground, x_background), (label_foreground, label_background)
    raise AssertionError(f"no '▐X▌ {label}' checkbox on the screen:\n{session.screen()}")


def wait_for_look(session: TmuxSession, changed: Callable[[tuple], bool], what: str, timeout: float = 5.0) -> tuple:
    deadline = time.monotonic() + timeout
    while True:
        look = checkbox_look(session, "Start now")
        if changed(look):
            return look
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; the screen:\n{session.screen()}")
        time.sleep(POLL_SECONDS)


# -- the test -----------------------------------------------------------------------------


def _status_line(screen: str) -> str:
    """The list's status line ("N of M · filter: … · sort: …", its end
    possibly cut by the column's width)."""
    return next((line for line in screen.splitlines() if re.match(r"\s*[\d,]+ of [\d,]+ ·", line)), "")


def test_create_rename_filter_and_quit_in_a_real_terminal(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    environment = {name: value for name, value in os.environ.items() if name not in ("TMUX", "TMUX_PANE")}
    app = f"{shlex.quote(sys.executable)} -m convtui --data-dir {shlex.quote(str(data_dir))}"
    message = "Check the tmux terminal path"
    title = "Renamed through tmux quokka"

    status_file = tmp_path / "exit-status"
    session = TmuxSession(f"{app}; echo $? > {shlex.quote(str(status_file))}", WIDTH, HEIGHT, environment)
    try:
        session.wait_for("No conversations yet", timeout=20)

        # -- new conversation, "Start now" off --------------------------------------
        session.press("n")
        session.wait_for("New conversation")
        session.type(message)  # the message TextArea has the focus
        session.wait_for(message)

        _, _, label_unfocused = checkbox_look(session, "Start now")
        # Message → Repository → Branch → Instructions → Start now.
        session.press("Tab", "Tab", "Tab", "Tab")
        contrast_before, x_before, _ = wait_for_look(
            session, lambda look: look[2] != label_unfocused, "the 'Start now' checkbox to take the focus"
        )
        session.press("Space")
        contrast_after, _, _ = wait_for_look(session, lambda look: look[1] != x_before, "space to toggle 'Start now'")
        if contrast_after > contrast_before:  # it was off and is on now (the default changed): back to off
            session.press("Space")
            contrast_after, _, _ = wait_for_look(session, lambda look: look[1] == x_before, "'Start now' off again")
        assert contrast_after == min(contrast_before, contrast_after), "'Start now' should be drawn off (dim X)"
        session.wait_for("Start now: no")  # and said in words

        session.press("C-s")
        screen = session.wait_until(
            lambda screen: "New conversation" not in screen and "1 of 1" in _status_line(screen),
            "the dialog to close and the list to show one conversation",
        )
        screen = session.wait_for("Conversation created")
        assert "not started" not in screen.lower(), f"the dialog tried to start a loop:\n{screen}"
        assert any(message in line for line in screen.splitlines()[1:4]), (
            f"no row titled by its first message:\n{screen}"
        )

        # -- rename -------------------------------------------------------------------
        session.type("r" + title)  # the old title is selected: typing replaces it
        session.wait_for(title)
        session.press("Enter")
        screen = session.wait_until(
            lambda screen: "Rename conversation" not in screen and title in screen,
            f"the list to show {title!r}",
        )
        assert any(title in line for line in screen.splitlines()[1:4]), f"the row was not renamed:\n{screen}"

        # -- filter -------------------------------------------------------------------
        session.type("/quok")
        screen = session.wait_until(lambda screen: "filter: quok" in _status_line(screen), "the filter to apply")
        status = _status_line(screen)
        assert status.strip().startswith("1 of 1"), status
        assert title in screen

        session.press("Escape")
        # Wait for the Escape to land before q, or the two bytes read as alt+q.
        session.wait_until(lambda screen: "filter:" not in _status_line(screen), "Escape to clear the filter")

        # -- quit ---------------------------------------------------------------------
        session.press("q")
        assert session.wait_for_exit(status_file, timeout=10) == 0, session.screen()
    finally:
        session.close()

    listing = subprocess.run(
        [sys.executable, "-m", "convtui", "--data-dir", str(data_dir), "list", "--json"],
        capture_output=True, text=True, env=environment, timeout=60, check=True,
    )
    results = json.loads(listing.stdout)["results"]
    assert [(row["title"], row["trigger"]) for row in results] == [(title, "gui")]
    assert results[0]["status"] == "STOPPED"
