"""The walls of the command sandbox, proven by commands that try to get
through them; and the labelled fallback where there is no sandbox."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from convtui.backend import cgroup_limits
from convtui.backend.runtime import Workspace
from convtui.backend.sandbox import (
    Sandbox,
    SandboxPolicy,
    for_conversation,
    rewrite_workspace_paths,
    status,
)

from .processes import processes_running

SECRET = "sk-sandbox-test-" + "q" * 24

if not sys.platform.startswith("linux"):
    pytest.skip("the sandbox is Linux only", allow_module_level=True)


def _sandboxed_here(tmp_path_factory: pytest.TempPathFactory) -> str | None:
    found = status(SandboxPolicy(), tmp_path_factory.mktemp("probe"))
    return None if found.sandboxed else found.description


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory outside /tmp (which the sandbox replaces anyway), so
    that hiding it is what keeps it out of sight."""
    root = Path("/var/tmp") / f"convtui-sandbox-test-{uuid.uuid4().hex[:12]}"
    root.mkdir(parents=True)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _needs_a_sandbox(tmp_path_factory: pytest.TempPathFactory) -> None:
    reason = _sandboxed_here(tmp_path_factory)
    if reason is not None:
        pytest.skip(f"no sandbox on this machine: {reason}")


def conversation(data_dir: Path, name: str, policy: SandboxPolicy) -> Workspace:
    directory = data_dir / "conversations" / name
    root = directory / "workspace"
    root.mkdir(parents=True, exist_ok=True)
    sandbox = for_conversation(policy, data_dir, directory, root)
    assert isinstance(sandbox, Sandbox)
    return Workspace(root, hidden_secrets=[SECRET], sandbox=sandbox)


async def test_the_workspace_is_slash_workspace_and_the_working_directory(data_dir: Path) -> None:
    ws = conversation(data_dir, "a", SandboxPolicy())
    result = await ws.run("pwd && mkdir -p /workspace/todo-app && echo hi > /workspace/todo-app/x", timeout=20)
    assert (result.exit_code, result.output) == (0, "/workspace\n")
    assert (ws.root / "todo-app" / "x").read_text() == "hi\n"
    assert not Path("/workspace/todo-app").exists()


async def test_a_command_cannot_write_outside_the_workspace(data_dir: Path) -> None:
    ws = conversation(data_dir, "a", SandboxPolicy())
    target = data_dir.parent / f"{data_dir.name}-outside"
    home_file = Path.home() / f"convtui-sandbox-{uuid.uuid4().hex[:8]}"
    result = await ws.run(
        f"echo no > {target}; echo no > /etc/convtui-test; echo kept > {home_file}; cat {home_file}", timeout=20
    )
    assert "Read-only file system" in result.output
    assert not target.exists() and not Path("/etc/convtui-test").exists()
    # The home is the conversation's own copy: writes land there, not in the real one.
    assert result.output.endswith("kept\n") and not home_file.exists()


async def test_a_command_cannot_read_the_settings_the_key_or_other_conversations(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (data_dir / "settings.json").write_text(f'{{"llm_api_key": "{SECRET}"}}')
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    other = conversation(data_dir, "other", SandboxPolicy())
    (other.root / "private.txt").write_text("other conversation's file")
    ws = conversation(data_dir, "a", SandboxPolicy())
    result = await ws.run(
        f"cat {data_dir}/settings.json; ls {data_dir}/conversations; cat {other.root}/private.txt; "
        "env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c sk-sandbox; true",
        timeout=20,
    )
    assert SECRET not in result.output and "[redacted" not in result.output.lower()
    assert "other conversation's file" not in result.output
    assert "No such file or directory" in result.output
    assert result.output.rstrip().endswith("0")  # no process environment holds the key


async def test_two_conversations_have_their_own_tmp(data_dir: Path) -> None:
    first, second = conversation(data_dir, "a", SandboxPolicy()), conversation(data_dir, "b", SandboxPolicy())
    await first.run("echo mine > /tmp/note", timeout=20)
    assert (await first.run("cat /tmp/note", timeout=20)).output == "mine\n"  # kept between commands
    assert "No such file" in (await second.run("cat /tmp/note", timeout=20)).output
    assert not Path("/tmp/note").exists() or Path("/tmp/note").read_text() != "mine\n"


@pytest.fixture
def listener() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.mark.parametrize("network", [True, False])
async def test_network_off_cannot_reach_a_listener_on_the_host(data_dir: Path, listener: int, network: bool) -> None:
    ws = conversation(data_dir, "a", SandboxPolicy(network=network))
    probe = f"python3 -c 'import socket; print(socket.socket().connect_ex((\"127.0.0.1\", {listener})))'"
    result = await ws.run(probe, timeout=20)
    assert result.exit_code == 0, result.output
    assert (result.output.strip() == "0") is network


async def test_a_fork_bomb_is_bounded_and_dies_with_its_command(data_dir: Path) -> None:
    if os.geteuid() == 0 and cgroup_limits.available() is None:
        pytest.skip("running as root without a cgroup: no process limit can bind")
    ws = conversation(data_dir, "a", SandboxPolicy(max_processes=64))
    marker = f"{time.time_ns() % 10**6 + 1000}.75"
    started = time.monotonic()
    task = asyncio.create_task(
        ws.run(f"for i in $(seq 200); do sleep {marker} 2>/dev/null & done 2>/dev/null; wait", timeout=4)
    )
    await asyncio.sleep(2.5)
    running = len(processes_running(f"sleep {marker}"))
    assert (await task).timed_out
    assert 10 < running <= 64  # the limit bounded them, not something else
    bomb = await ws.run("b(){ b | b & }; b; sleep 2", timeout=3)
    assert "Resource temporarily unavailable" in bomb.output and time.monotonic() - started < 20
    await asyncio.sleep(0.3)
    assert not processes_running(f"sleep {marker}")


async def test_a_runaway_process_is_stopped_by_its_cpu_and_memory_limits(data_dir: Path) -> None:
    ws = conversation(data_dir, "a", SandboxPolicy(cpu_seconds=1, memory_mb=128))
    started = time.monotonic()
    spin = await ws.run("python3 -c 'while True: pass'", timeout=30)
    assert spin.exit_code not in (0, None) and time.monotonic() - started < 15
    hog = await ws.run("python3 -c 'x = bytearray(512 * 1024 * 1024)'", timeout=30)
    assert hog.exit_code != 0 and "MemoryError" in hog.output


async def test_stopping_kills_everything_the_command_started(data_dir: Path) -> None:
    ws = conversation(data_dir, "a", SandboxPolicy())
    marker = f"{time.time_ns() % 10**6 + 1000}.5"
    task = asyncio.create_task(ws.run(f"sleep {marker} & setsid sleep {marker} & nohup sleep {marker} >/dev/null 2>&1 & wait", timeout=60))
    deadline = time.monotonic() + 10
    while len(processes_running(f"sleep {marker}")) < 3:
        assert time.monotonic() < deadline, "the sleeps did not start"
        await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.3)
    assert not processes_running(f"sleep {marker}")


async def test_without_a_sandbox_workspace_paths_are_rewritten_and_it_says_so(tmp_path: Path) -> None:
    off = status(SandboxPolicy(enabled=False), tmp_path)
    assert not off.sandboxed and off.label.startswith("NOT sandboxed: turned off (setting sandbox)")
    ws = Workspace(tmp_path / "space dir" / "ws", policy=SandboxPolicy(enabled=False))
    result = await ws.run("mkdir -p /workspace/todo-app && cd /workspace/todo-app && echo ok > f && cat /workspace/todo-app/f", timeout=20)
    assert (result.exit_code, result.output) == (0, "ok\n")
    assert (ws.root / "todo-app" / "f").exists()
    assert rewrite_workspace_paths("ls /workspaces /my/workspace x/workspace", Path("/r")) == "ls /workspaces /my/workspace x/workspace"
    assert rewrite_workspace_paths("cd /workspace; cat '/workspace/a b' \"/workspace\"", Path("/r")) == (
        "cd /r; cat '/r/a b' \"/r\""
    )


def test_a_machine_without_bwrap_falls_back_with_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("convtui.backend.sandbox.find_bwrap", lambda: None)
    found = status(SandboxPolicy(), tmp_path)
    assert not found.sandboxed
    assert found.label.startswith("NOT sandboxed: bubblewrap (bwrap) is not installed")
    assert for_conversation(SandboxPolicy(), tmp_path, tmp_path / "c", tmp_path / "c" / "workspace") is None


async def test_the_system_file_system_shows_only_system_directories(data_dir: Path) -> None:
    ws = conversation(data_dir, "a", SandboxPolicy(filesystem="system"))
    visible = data_dir.parent / f"{data_dir.name}-visible"  # in /var: shown read-only by default, not here
    visible.mkdir()
    result = await ws.run(f"ls {visible} >/dev/null 2>&1 && echo seen; ls -A ~ | wc -l; ls /usr/bin/env", timeout=20)
    assert result.output == "0\n/usr/bin/env\n"
    default = await conversation(data_dir, "b", SandboxPolicy()).run(f"ls {visible} >/dev/null && echo seen", timeout=20)
    assert default.output == "seen\n"
    visible.rmdir()
