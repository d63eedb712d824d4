"""Copying text, honestly: what reached which clipboard.

The terminal's clipboard is written with OSC 52 (Textual's
`copy_to_clipboard`); whether it arrives depends on the terminal, and inside
tmux on its `set-clipboard` option, so the report says what was sent rather
than claiming success. Beside it, the system clipboard is written through
the usual command-line tool when one is on PATH and its display is reachable
(wl-copy on Wayland, xclip or xsel on X11, pbcopy on macOS). Over plain SSH
there is none, and the report says so.

pyperclip would pick a tool too, but it cannot tell which one it used nor
whether a display is reachable, which is what the report needs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

TOOL_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class ClipboardPlan:
    command: list[str] | None  # the system clipboard tool to run, if any
    tmux_clipboard: str | None  # tmux's set-clipboard value inside tmux, else None
    over_ssh: bool


def system_clipboard_command(
    environ: Mapping[str, str], which: Callable[[str], str | None] = shutil.which, platform: str = sys.platform
) -> list[str] | None:
    """The command that writes its standard input to the system clipboard,
    or None when none is on PATH with a display to talk to."""
    if platform == "darwin" and not environ.get("SSH_CONNECTION") and which("pbcopy"):
        return ["pbcopy"]
    if environ.get("WAYLAND_DISPLAY") and which("wl-copy"):
        return ["wl-copy"]
    if environ.get("DISPLAY"):
        if which("xclip"):
            return ["xclip", "-selection", "clipboard"]
        if which("xsel"):
            return ["xsel", "--clipboard", "--input"]
    return None


def tmux_set_clipboard(environ: Mapping[str, str]) -> str | None:
    """tmux's set-clipboard option ("on", "external", "off") when running
    inside tmux; None outside it (or when tmux cannot be asked)."""
    if not environ.get("TMUX"):
        return None
    try:
        answer = subprocess.run(
            ["tmux", "show-options", "-gv", "set-clipboard"],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return answer.stdout.strip() or "unknown"


def plan_copy(environ: Mapping[str, str] | None = None) -> ClipboardPlan:
    environ = os.environ if environ is None else environ
    return ClipboardPlan(
        command=system_clipboard_command(environ),
        tmux_clipboard=tmux_set_clipboard(environ),
        over_ssh=bool(environ.get("SSH_CONNECTION") or environ.get("SSH_TTY")),
    )


def copy_with_command(command: list[str], text: str) -> str | None:
    """Run the clipboard tool with `text` on its input. None on success, else
    a one-line reason. Blocking (up to TOOL_TIMEOUT_SECONDS)."""
    try:
        # Its output is not read: xclip leaves a child serving the selection
        # that would hold a pipe open.
        result = subprocess.run(
            command,
            input=text.encode(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"{command[0]} did not finish within {TOOL_TIMEOUT_SECONDS:g} s"
    except OSError as error:
        return f"{command[0]} could not run: {error.strerror or error}"
    if result.returncode != 0:
        return f"{command[0]} failed (exit {result.returncode})"
    return None


def describe_copy(plan: ClipboardPlan, system_error: str | None) -> tuple[str, str]:
    """What to tell the person after sending OSC 52 and, per `plan`, running
    the system tool (`system_error` its failure): (message, severity)."""
    parts = ["sent to the terminal's clipboard (OSC 52; it arrives if your terminal allows clipboard writes)"]
    severity = "information"
    if plan.tmux_clipboard is not None and plan.tmux_clipboard not in ("on", "external"):
        parts.append(
            f"inside tmux, set-clipboard is {plan.tmux_clipboard}: add `set -g set-clipboard on` "
            "to ~/.tmux.conf for OSC 52 to pass"
        )
        severity = "warning"
    if plan.command is not None:
        if system_error is None:
            parts.append(f"and to the system clipboard ({plan.command[0]})")
        else:
            parts.append(f"not to the system clipboard: {system_error}")
            severity = "warning"
    elif plan.over_ssh:
        parts.append("over SSH there is no system clipboard to fall back to")
    else:
        parts.append("no system clipboard tool found (wl-copy, xclip, xsel or pbcopy with a display)")
    return "; ".join(parts), severity
