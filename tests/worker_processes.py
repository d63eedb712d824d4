"""Starting several worker processes so that they race from the same moment."""

from __future__ import annotations

import selectors
import subprocess
import sys
from pathlib import Path


def start_together(commands: list[list[str]], go_file: Path) -> list[subprocess.Popen]:
    """Start the workers (Python scripts and their arguments), wait until each
    prints "ready" (it has opened what it writes to), then let them all go
    at once by creating `go_file`."""
    processes = [
        subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for command in commands
    ]
    try:
        for process in processes:
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                assert selector.select(30), "a worker did not start"
            line = process.stdout.readline()
            assert line == "ready\n", (line, process.stderr.read() if process.poll() is not None else "")
    except BaseException:
        for process in processes:
            process.kill()
            process.wait()
        raise
    go_file.touch()
    return processes
