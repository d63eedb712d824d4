"""convtui in a real terminal (tmux), ended the way a terminal ends a
program: SIGHUP (the window closed, the SSH connection dropped) or SIGTERM
(`kill`). It must end as `q` ends it, with no traceback: `--demo` removes its
temporary data directory, even while its replays run commands; the UI stops
its loops and kills their commands, which would otherwise run on orphaned."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .test_tmux import POLL_SECONDS, TmuxSession, pytestmark  # noqa: F401 (skip without tmux)


def _children(pid: int) -> list[int]:
    result = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False)
    return [int(line) for line in result.stdout.split()]


def _wait(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(POLL_SECONDS)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie the pane's shell has not reaped yet has finished all the same.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}").exists() else "Z"
    return state != "Z"


@pytest.mark.parametrize("how", ["SIGHUP", "SIGTERM", "closed terminal"])
def test_the_demo_leaves_no_temporary_directory_when_killed(tmp_path: Path, how: str) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    status_file = tmp_path / "exit-status"
    environment = {name: value for name, value in os.environ.items() if name not in ("TMUX", "TMUX_PANE")}
    environment["TMPDIR"] = str(temporary)
    command = (
        f"TMPDIR={shlex.quote(str(temporary))} {shlex.quote(sys.executable)} -m convtui --demo; "
        f"echo $? > {shlex.quote(str(status_file))}"
    )
    session = TmuxSession(command, 120, 35, environment)
    try:
        session.wait_for("Refactor the settings loader", timeout=30)
        [demo_dir] = list(temporary.glob("convtui-demo-*"))
        # Let a replay start: its loop runs commands in the demo's workspace.
        _wait(lambda: any((demo_dir / "conversations").glob("*/workspace/*")), "a replay to write a file")
        [shell] = [int(session.tmux("list-panes", "-t", session.name, "-F", "#{pane_pid}").strip())]
        [app] = _children(shell)
        if how == "closed terminal":
            session.tmux("kill-session", "-t", session.name)  # the pty goes: SIGHUP to its processes
        else:
            os.kill(app, getattr(signal, how))
        _wait(lambda: not _alive(app), "convtui to exit")
        if how != "closed terminal":
            assert session.wait_for_exit(status_file, timeout=10) == 128 + getattr(signal, how)
            screen = session.screen()
            assert "Traceback" not in screen and "Error" not in screen, screen
        _wait(lambda: not demo_dir.exists(), f"{demo_dir} to be removed", timeout=5)
        assert list(temporary.iterdir()) == []
    finally:
        session.close()


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.parametrize("how", ["SIGHUP", "SIGTERM"])
def test_the_ui_stops_its_loops_and_their_commands_when_killed(tmp_path: Path, how: str) -> None:
    data_dir = tmp_path / "data"
    marker = f"convtui-killed-ui-{os.getpid()}-{how}"
    trajectory = tmp_path / "sleep.json"
    trajectory.write_text(
        '[{"source": "agent", "action": "run", "message": "", "args": {"command": "sleep 300; true # ' + marker + '"}}]'
    )
    cli = [sys.executable, "-m", "convtui", "--data-dir", str(data_dir)]
    subprocess.run([*cli, "config", "set", "confirmation_mode", "off"], check=True, capture_output=True)
    created = subprocess.run([*cli, "new", "--replay", str(trajectory)], check=True, capture_output=True, text=True)
    conversation_id = created.stdout.split()[-1]
    status_file = tmp_path / "exit-status"
    environment = {name: value for name, value in os.environ.items() if name not in ("TMUX", "TMUX_PANE")}
    command = f"{shlex.join(cli)}; echo $? > {shlex.quote(str(status_file))}"
    session = TmuxSession(command, 120, 35, environment)
    try:
        session.wait_for("1 of 1", timeout=30)
        session.press("s")
        _wait(lambda: bool(_processes_with(marker)), "the replayed command to run")
        [shell] = [int(session.tmux("list-panes", "-t", session.name, "-F", "#{pane_pid}").strip())]
        [app] = _children(shell)
        os.kill(app, getattr(signal, how))
        assert session.wait_for_exit(status_file, timeout=20) == 128 + getattr(signal, how)
        screen = session.screen()
        assert "Traceback" not in screen and "Error" not in screen, screen
    finally:
        session.close()
    try:
        _wait(lambda: not _processes_with(marker), "the command to be killed", timeout=5)
    finally:  # a failure must not leave a sleep behind
        for pid in _processes_with(marker):
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except OSError:
                pass
    shown = subprocess.run([*cli, "show", conversation_id, "--json"], check=True, capture_output=True, text=True)
    assert '"status": "STOPPED"' in shown.stdout
