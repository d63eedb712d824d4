"""The host's processes, as tests look for what a command left running."""

from __future__ import annotations

import os


def processes_running(command_line: str) -> list[int]:
    """The live (non-zombie) processes whose command line (arguments joined
    by spaces) is `command_line`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as file:
                command = file.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/stat", "rb") as file:
                state = file.read().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if command == command_line and state != b"Z":
            found.append(int(name))
    return found
