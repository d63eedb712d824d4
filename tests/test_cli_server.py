"""The CLI with the server on (the default): loop commands start the data
directory's server in the background, attach to its loops, detach on Ctrl-C,
and the server outlives the terminal that started it. The other commands go
through a server that runs, and start none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from convtui.backend.server import server_status

from .fake_llm import FakeLLMServer, Hang, Script, Text, ToolCall
from .server_process import http, spawn_server, stop_if_running, wait_for, wait_until_serving
from .test_cli_loops import convtui  # noqa: F401 (the fixture: run the CLI, the model configured)


@pytest.fixture(autouse=True)
def _server_mode(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The default: loops run in the server (stopped after the test)."""
    monkeypatch.delenv("CONVTUI_SERVER")
    yield
    stop_if_running(data_dir)


def spawn(data_dir: Path, *arguments: str) -> subprocess.Popen:
    """A convtui command in its own session, as a terminal runs it."""
    environment = {key: value for key, value in os.environ.items() if key != "CONVTUI_SERVER"}
    return subprocess.Popen(
        [sys.executable, "-m", "convtui", "--data-dir", str(data_dir), *arguments],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        start_new_session=True,
    )


def running_in_server(data_dir: Path) -> list[str]:
    return (server_status(data_dir) or {}).get("running", [])


def test_new_start_runs_in_a_server_that_stays(convtui, llm: FakeLLMServer, data_dir: Path) -> None:
    llm.responder = Script(ToolCall("execute_bash", {"command": "echo built > out.txt"}), ToolCall("finish", {"message": "built it"}))
    out, _ = convtui("new", "build it", "--start", "--yes")
    conversation_id = out.splitlines()[0].split()[-1]
    assert "run: echo built > out.txt" in out and "finish: built it" in out and out.rstrip().endswith("-- finished")
    assert (data_dir / "conversations" / conversation_id / "workspace" / "out.txt").read_text() == "built\n"
    status = server_status(data_dir)
    assert status is not None and status["pid"] != os.getpid()
    shown = orjson.loads(convtui("show", conversation_id, "--json")[0])
    assert (shown["status"], shown["agent_state"]) == ("STOPPED", "finished")


def test_an_approval_off_a_terminal_is_refused_and_the_loop_stopped(convtui, llm: FakeLLMServer, data_dir: Path) -> None:
    llm.responder = Script(ToolCall("execute_bash", {"command": "rm -rf important"}))
    conversation_id = orjson.loads(convtui("new", "clean up", "--json")[0])["conversation_id"]
    _, err = convtui("run", conversation_id, code=1)
    assert "needs approval" in err and "--yes" in err
    assert conversation_id not in running_in_server(data_dir)


def test_ctrl_c_detaches_and_a_hangup_leaves_the_loop_running(convtui, llm: FakeLLMServer, data_dir: Path) -> None:
    llm.responder = Script(Hang())
    conversation_id = orjson.loads(convtui("new", "think hard", "--json")[0])["conversation_id"]
    runner = spawn(data_dir, "run", conversation_id, "--yes")
    wait_for(lambda: conversation_id in running_in_server(data_dir))
    runner.send_signal(signal.SIGINT)
    out, _ = runner.communicate(timeout=20)
    assert runner.returncode == 130 and "detached: the loop keeps running" in out
    assert conversation_id in running_in_server(data_dir)

    # The terminal goes away: its whole session gets SIGHUP. The server is
    # in a session of its own.
    attached = spawn(data_dir, "run", conversation_id, "--yes")
    time.sleep(1.0)
    os.killpg(attached.pid, signal.SIGHUP)
    attached.wait(timeout=20)
    time.sleep(0.3)
    assert conversation_id in running_in_server(data_dir)

    out, _ = convtui("stop", conversation_id[:8])
    assert "Conversation stopped successfully" in out
    assert conversation_id not in running_in_server(data_dir)
    assert orjson.loads(convtui("show", conversation_id, "--json")[0])["status"] == "STOPPED"


def test_stop_on_exit_stops_the_loop_on_ctrl_c(convtui, llm: FakeLLMServer, data_dir: Path) -> None:
    llm.responder = Script(Hang())
    conversation_id = orjson.loads(convtui("new", "think hard", "--json")[0])["conversation_id"]
    runner = spawn(data_dir, "run", conversation_id, "--yes", "--stop-on-exit")
    wait_for(lambda: conversation_id in running_in_server(data_dir))
    runner.send_signal(signal.SIGINT)
    out, _ = runner.communicate(timeout=20)
    assert runner.returncode == 130 and f"stopped {conversation_id[:8]}" in out
    assert conversation_id not in running_in_server(data_dir)


def test_send_reaches_the_servers_loop_at_once(convtui, llm: FakeLLMServer, data_dir: Path) -> None:
    llm.responder = Script(Text("first"), Text("the answer to your follow-up"))
    conversation_id = orjson.loads(convtui("new", "hello", "--json")[0])["conversation_id"]
    runner = spawn(data_dir, "run", conversation_id)
    assert runner.wait(timeout=30) == 0
    convtui("send", conversation_id, "a follow-up")
    out, _ = convtui("run", conversation_id)
    assert "the answer to your follow-up" in out
    _, err = convtui("send", conversation_id, "", code=1)
    assert "empty" in err and err.count("\n") == 1


def test_no_server_keeps_loops_in_the_command(convtui, llm: FakeLLMServer, data_dir: Path) -> None:
    llm.responder = Script(Text("in-process answer"))
    out, _ = convtui("--no-server", "new", "hello", "--start")
    assert "in-process answer" in out
    assert server_status(data_dir) is None


def test_delete_stops_the_servers_loop_first(convtui, llm: FakeLLMServer, data_dir: Path) -> None:
    llm.responder = Script(Hang())
    conversation_id = orjson.loads(convtui("new", "think hard", "--json")[0])["conversation_id"]
    runner = spawn(data_dir, "run", conversation_id, "--yes")
    wait_for(lambda: conversation_id in running_in_server(data_dir))
    out, _ = convtui("delete", conversation_id, "--yes")
    assert f"deleted {conversation_id}" in out
    assert runner.wait(timeout=20) == 0  # its loop ended: run says so and exits
    assert conversation_id not in running_in_server(data_dir)
    time.sleep(0.5)
    assert not (data_dir / "conversations" / conversation_id).exists()
    convtui("show", conversation_id, code=1)


def serving(data_dir: Path) -> None:
    """A server for the data directory, as `convtui serve` starts it (the
    autouse fixture stops it)."""
    wait_until_serving(data_dir, spawn_server(data_dir))


def test_commands_without_a_loop_start_no_server_and_use_a_running_one(
    convtui, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversation_id = orjson.loads(convtui("new", "hello", "--json")[0])["conversation_id"]
    convtui("rename", conversation_id[:6], "Before the server")
    assert server_status(data_dir) is None

    serving(data_dir)
    # Only this command's environment overrides the model: the server's settings are shown.
    monkeypatch.setenv("CONVTUI_LLM_MODEL", "anthropic/claude")
    shown, _ = convtui("config", "show")
    assert "llm_model = openai/fake-model" in shown and "(from $" not in shown
    assert "renamed" in convtui("rename", conversation_id[:6], "Through the server")[0]
    out, _ = convtui("show", conversation_id[:6])
    workspace = data_dir / "conversations" / conversation_id / "workspace"
    assert "title:         Through the server" in out and f"workspace:     {workspace}" in out.splitlines()
    assert convtui("archive", conversation_id[:6])[0] == f"archived {conversation_id}\n"
    listed = orjson.loads(convtui("list", "--json", "--archived")[0])["results"]
    assert [info["conversation_id"] for info in listed] == [conversation_id]
    _, err = convtui("archive", conversation_id, code=1)
    assert err == f"convtui: {conversation_id} is already archived\n"


def test_config_through_a_server_masks_the_key_once(convtui, data_dir: Path) -> None:
    serving(data_dir)
    assert convtui("config", "set", "llm_api_key", "sk-abcdefghijklmnop1234")[0] == "llm_api_key = sk-...1234\n"
    assert convtui("config", "get", "llm_api_key")[0] == "sk-...1234\n"
    shown, _ = convtui("config", "show", "--json")
    assert orjson.loads(shown)["settings"]["llm_api_key"] == "sk-...1234" and "abcdefghijklmnop" not in shown
    assert "llm_api_key = sk-...1234\n" in convtui("config", "show")[0]
    _, err = convtui("config", "set", "max_iterations", "zero", code=1)
    assert err == "convtui: max_iterations: must be a whole number\n"
    convtui("config", "set", "keymap", '{"new": "ctrl+n"}')
    assert convtui("config", "set", "keymap", "")[0] == "keymap = \n"  # the default, sent as JSON


def test_trash_through_a_server(convtui, data_dir: Path) -> None:
    serving(data_dir)
    restored, emptied = (orjson.loads(convtui("new", f"task {n}", "--json")[0])["conversation_id"] for n in range(2))
    with http(data_dir) as server:
        for conversation_id in (restored, emptied):
            server.post(f"/api/conversations/{conversation_id}/trash").raise_for_status()
    listing, _ = convtui("trash", "list")
    assert restored[:8] in listing and emptied[:8] in listing
    assert convtui("trash", "restore", restored[:6])[0].startswith(f"restored {restored} task 0")
    _, err = convtui("trash", "restore", "abcdef", code=1)
    assert err == "convtui: no conversation with id abcdef in the trash\n"
    assert convtui("trash", "empty", "--yes")[0] == "deleted 1 conversation(s) for good\n"
    assert orjson.loads(convtui("trash", "list", "--json")[0]) == []
    assert [info["conversation_id"] for info in orjson.loads(convtui("list", "--json")[0])["results"]] == [restored]


def test_run_attaching_to_a_waiting_loop_shows_its_last_events_and_answers_it(
    convtui, llm: FakeLLMServer, data_dir: Path
) -> None:
    """A loop another client started waits for approval: `run --yes`
    attaches, shows what the loop did so far, and approves the action (no
    new status arrives to prompt it)."""
    llm.responder = Script(ToolCall("execute_bash", {"command": "echo approved > a.txt"}), Text("all done"))
    conversation_id = orjson.loads(convtui("new", "write a.txt", "--json")[0])["conversation_id"]
    process = spawn_server(data_dir)
    wait_until_serving(data_dir, process)
    with http(data_dir) as client:
        assert client.post(f"/api/conversations/{conversation_id}/start", json={}).status_code == 200
        wait_for(lambda: client.get(f"/api/conversations/{conversation_id}/pending-action").json() is not None)
    runner = spawn(data_dir, "run", conversation_id, "--yes")
    workspace = data_dir / "conversations" / conversation_id / "workspace"
    wait_for(lambda: (workspace / "a.txt").exists())
    wait_for(lambda: "all done" in str(convtui("show", conversation_id, "--events")[0]))
    runner.send_signal(signal.SIGINT)
    out, _ = runner.communicate(timeout=20)
    assert "attached to the server's loop" in out and "its last events" in out
    history = out.split("its last events:")[1]
    assert "write a.txt" in history and "run: echo approved > a.txt" in history  # from before it attached
    assert out.count("run: echo approved > a.txt") == 1 and "all done" in out


def test_watch_prints_a_line_per_alert_and_runs_the_command_with_the_alert_in_its_environment(
    convtui, llm: FakeLLMServer, data_dir: Path, tmp_path: Path
) -> None:
    """Into a pipe: lines only, never an escape sequence. The title reaches
    the command through its environment, never through its command line."""
    record = tmp_path / "alerts.txt"
    command = f'printf "%s|%s|%s|%s\\n" "$CONVTUI_ALERT_KIND" "$CONVTUI_CONVERSATION_ID" "$CONVTUI_TITLE" "$CONVTUI_DETAIL" >> {record}'
    watcher = spawn(data_dir, "watch", "--on", "waiting,error", "--exec", command)
    wait_for(lambda: server_status(data_dir) is not None, timeout=30)  # watch starts the server it watches
    time.sleep(0.5)  # following the stream
    llm.responder = Script(ToolCall("execute_bash", {"command": "rm -rf build"}), Hang())
    conversation_id = orjson.loads(convtui("new", "clean up", "--json")[0])["conversation_id"]
    convtui("rename", conversation_id, "Clean; $(touch pwned) up")  # (a model's title could land after the alert)
    with http(data_dir) as client:
        client.post(f"/api/conversations/{conversation_id}/start", json={}).raise_for_status()
    wait_for(lambda: record.exists() and record.read_text().count("\n") >= 1, timeout=30)
    watcher.send_signal(signal.SIGINT)
    out, err = watcher.communicate(timeout=20)
    assert watcher.returncode == 130
    assert "watching for waiting, error (Ctrl-C ends)" in err
    [line] = out.splitlines()
    assert line.split()[2:] == ["waiting", conversation_id[:8], "Clean;", "$(touch", "pwned)", "up", "(approve:", "rm", "-rf", "build)"]
    assert "\x1b" not in out and "\a" not in out
    assert record.read_text() == f"waiting|{conversation_id}|Clean; $(touch pwned) up|approve: rm -rf build\n"
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()
    convtui("stop", conversation_id)


def test_watch_without_a_server_says_there_is_nothing_to_watch(convtui) -> None:
    _, err = convtui("--no-server", "watch", code=1)
    assert err == "convtui: watch follows the loops of the convtui server: without one (--no-server, or server off) there is nothing to watch\n"
    _, err = convtui("watch", "--on", "waiting,started", code=1)
    assert err == "convtui: --on: unknown kind 'started'; known: waiting, finished, error, none\n"


def test_processes_of_a_servers_loop_are_listed_stopped_and_die_with_a_delete(
    convtui, llm: FakeLLMServer, data_dir: Path
) -> None:
    from .processes import processes_running

    marker = f"{time.time_ns() % 10**6 + 1000}.875"
    llm.responder = Script(
        ToolCall("execute_bash", {"command": f"sleep {marker} &"}),
        ToolCall("execute_bash", {"command": f"sleep {marker}", "background": True}),
        Hang(),
    )
    conversation_id = orjson.loads(convtui("new", "serve", "--json")[0])["conversation_id"]
    runner = spawn(data_dir, "run", conversation_id, "--yes")
    wait_for(lambda: convtui("processes", conversation_id)[0].count(f"sleep {marker}") == 2, timeout=30)
    wait_for(lambda: len(processes_running(f"sleep {marker}")) == 2)
    assert convtui("processes", conversation_id, "--stop")[0] == "stopped 2 processes\n"
    assert convtui("processes", conversation_id)[0] == ""
    assert not processes_running(f"sleep {marker}")
    assert conversation_id in running_in_server(data_dir)  # the loop runs on
    convtui("delete", conversation_id, "--yes")
    runner.wait(timeout=20)
