"""Commands that keep running: returned after a quiet spell and then waited
on, typed into or interrupted; detached into the background; all of it
killed when the workspace closes. Each test runs without a sandbox and,
where the machine has one, inside it."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from convtui.backend.runtime import CommandStillRunning, Workspace
from convtui.backend.sandbox import SandboxPolicy, for_conversation, status

from .processes import processes_running


@pytest.fixture(params=["plain", "sandboxed"])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    directory = tmp_path / "conversation"
    root = directory / "workspace"
    root.mkdir(parents=True)
    if request.param == "plain":
        yield Workspace(root)
        return
    found = status(SandboxPolicy(), tmp_path)
    if not found.sandboxed:
        pytest.skip(f"no sandbox on this machine: {found.description}")
    yield Workspace(root, sandbox=for_conversation(SandboxPolicy(), tmp_path, directory, root))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_a_quiet_command_returns_its_output_so_far_and_can_be_waited_on(ws: Workspace) -> None:
    started = time.monotonic()
    first = await ws.run("echo start; sleep 2; echo end", timeout=30, soft_timeout=0.5)
    assert first.still_running and first.exit_code is None and first.output == "start\n"
    assert time.monotonic() - started < 1.8
    with pytest.raises(CommandStillRunning, match="NOT executed"):
        await ws.run("echo other", timeout=30, soft_timeout=0.5)
    rest = await ws.send_input("", soft_timeout=10)
    assert (rest.still_running, rest.exit_code, rest.output) == (False, 0, "end\n")
    assert (await ws.run("echo free again", timeout=30, soft_timeout=1)).output == "free again\n"


async def test_input_is_typed_into_a_running_command(ws: Workspace) -> None:
    asking = await ws.run("read -r name; echo hello $name; read -r again; echo bye $again", timeout=30, soft_timeout=0.4)
    assert asking.still_running
    middle = await ws.send_input("ada", soft_timeout=0.4)
    assert middle.still_running and middle.output == "hello ada\n"
    end = await ws.send_input("C-d", soft_timeout=5)
    assert end.exit_code == 0 and end.output == "bye\n"


async def test_ctrl_c_interrupts_a_server_and_the_hard_timeout_still_holds(ws: Workspace) -> None:
    port = free_port()
    server = await ws.run(f"python3 -u -m http.server {port} --bind 127.0.0.1", timeout=60, soft_timeout=1)
    assert server.still_running and "Serving HTTP" in server.output
    started = time.monotonic()
    stopped = await ws.send_input("C-c", soft_timeout=10)
    assert not stopped.still_running and time.monotonic() - started < 5
    assert "Keyboard interrupt received" in stopped.output  # http.server's own words for SIGINT
    with pytest.raises(Exception, match="no command is running"):
        await ws.send_input("", soft_timeout=1)
    # Left running and never waited on: killed at its deadline all the same.
    await ws.run("sleep 100", timeout=1.5, soft_timeout=0.3)
    await asyncio.sleep(2)
    late = await ws.send_input("", soft_timeout=1)
    assert late.timed_out and late.exit_code is None


async def test_a_background_server_runs_on_is_listed_and_stops(ws: Workspace) -> None:
    port = free_port()
    marker = uuid.uuid4().hex[:8]
    started = await ws.run("true", timeout=10)  # a workspace that already ran something
    assert started.exit_code == 0
    server = await ws.start_background(f"exec -a server-{marker} python3 -m http.server {port} --bind 127.0.0.1 &")
    assert [process.number for process in ws.background_processes()] == [server.number]
    client = f"python3 -c 'import time, urllib.request as r; time.sleep(1); print(r.urlopen(\"http://127.0.0.1:{port}/\").status)'"
    assert (await ws.run(client, timeout=30)).output == "200\n"
    log = ws._logs / Path(server.log).name
    assert "GET / HTTP" in log.read_text()
    assert await ws.stop_background() == 1
    assert ws.background_processes() == [] and not processes_running(f"server-{marker} -m http.server {port} --bind 127.0.0.1")


async def test_closing_the_workspace_kills_what_its_commands_left_running(ws: Workspace) -> None:
    marker = f"{time.time_ns() % 10**6 + 1000}.125"
    await ws.start_background(f"sleep {marker}")
    left = await ws.run(f"sleep {marker}", timeout=60, soft_timeout=0.3)
    assert left.still_running
    deadline = time.monotonic() + 5
    while len(processes_running(f"sleep {marker}")) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await ws.close()
    await asyncio.sleep(0.2)
    assert not processes_running(f"sleep {marker}")
    assert not ws.running_command and ws.background_processes() == []
