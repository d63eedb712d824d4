"""`convtui serve` as a user starts it: a real process on a real socket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from convtui.backend.client import socket_client
from convtui.backend.data_dir import DataDirectory
from convtui.backend.server import server_status, socket_path, stop_server


def spawn_server(data_dir: Path, *arguments: str) -> subprocess.Popen:
    """`convtui --data-dir DATA serve ARGUMENTS`, its output in DATA/../serve.out."""
    data_dir.mkdir(parents=True, exist_ok=True)
    output = open(data_dir.parent / "serve.out", "ab")  # noqa: SIM115 (the child keeps it)
    with output:
        return subprocess.Popen(
            [sys.executable, "-m", "convtui", "--data-dir", str(data_dir), "serve", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )


@contextmanager
def serving(data_dir: Path) -> Iterator[Path]:
    """`convtui serve` on `data_dir` while the block runs, then stopped."""
    process = spawn_server(data_dir)
    wait_until_serving(data_dir, process)
    try:
        yield data_dir
    finally:
        stop_server(data_dir)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def wait_until_serving(data_dir: Path, process: subprocess.Popen | None = None, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = server_status(data_dir)
        if status is not None:
            return status
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}: {server_output(data_dir)}")
        time.sleep(0.05)
    raise AssertionError(f"no server answered within {timeout} s: {server_output(data_dir)}")


def server_output(data_dir: Path) -> str:
    try:
        return (data_dir.parent / "serve.out").read_text(errors="replace")[-3000:]
    except OSError:
        return ""


def the_socket(data_dir: Path) -> Path:
    return socket_path(DataDirectory(data_dir))


def http(data_dir: Path) -> httpx.Client:
    """A client of the data directory's server, over its socket."""
    return socket_client(the_socket(data_dir), timeout=30)


def stop_if_running(data_dir: Path) -> None:
    """`serve stop` for a server a test's commands may have started."""
    status = server_status(data_dir)
    if status is not None:
        stop_server(data_dir)
        wait_gone(status["pid"])


def wait_for(condition, timeout: float = 20.0):  # noqa: ANN001, ANN201
    """Poll `condition()` until it is truthy; its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def serve_processes(marker: bytes) -> list[int]:
    """Pids of `convtui ... serve` processes whose command line has an
    argument starting with `marker` (a data directory, a temporary root)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in command and any(part.startswith(marker) for part in command):
            found.append(int(entry.name))
    return found


def kill_hard(pid: int) -> None:
    """SIGKILL, and wait until the process is gone."""
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)


def wait_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
            if finished == pid:
                return
        except ChildProcessError:  # not our child: poll for it
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} still runs after {timeout} s")
