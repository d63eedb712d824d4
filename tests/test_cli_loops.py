"""The loop commands of the CLI: run, new --start, stop, send, remember —
including a loop run by another convtui process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from convtui.cli import main

from .fake_llm import FakeLLMServer, Hang, Text, ToolCall

API_KEY = "sk-cli-test-0123456789"


@pytest.fixture
def convtui(data_dir: Path, capsys: pytest.CaptureFixture[str], llm: FakeLLMServer):
    def run(*arguments: str, code: int = 0) -> tuple[str, str]:
        capsys.readouterr()
        exit_code = main(["--data-dir", str(data_dir), *arguments])
        captured = capsys.readouterr()
        assert exit_code == code, (captured.out, captured.err)
        return captured.out, captured.err

    run("config", "set", "llm_model", "openai/fake-model")
    run("config", "set", "llm_base_url", llm.base_url)
    run("config", "set", "llm_api_key", API_KEY)
    return run


def _title_aware(script: list) -> callable:
    def respond(body: dict):
        if body["messages"][0]["content"].startswith("Write a short title"):
            return Text("A title")
        return script.pop(0) if script else Text("done")

    return respond


def _spawn(data_dir: Path, *arguments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "convtui", "--data-dir", str(data_dir), *arguments],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_new_start_yes_runs_to_the_end(convtui, llm: FakeLLMServer, data_dir: Path) -> None:
    llm.responder = _title_aware(
        [
            ToolCall("execute_bash", {"command": "echo built > out.txt"}),
            ToolCall("finish", {"message": "built it"}),
        ]
    )
    out, _ = convtui("new", "build it", "--start", "--yes")
    conversation_id = out.splitlines()[0].split()[-1]
    assert "run: echo built > out.txt" in out
    assert "finish: built it" in out
    assert (data_dir / "conversations" / conversation_id / "workspace" / "out.txt").read_text() == "built\n"
    shown = orjson.loads(convtui("show", conversation_id, "--json")[0])
    assert (shown["status"], shown["agent_state"], shown["title"]) == ("STOPPED", "finished", "A title")


def test_run_without_yes_off_a_terminal_refuses_to_approve(convtui, llm: FakeLLMServer) -> None:
    llm.responder = _title_aware([ToolCall("execute_bash", {"command": "rm -rf important"})])
    conversation_id = orjson.loads(convtui("new", "clean up", "--json")[0])["conversation_id"]
    _, err = convtui("run", conversation_id, code=1)
    assert "needs approval" in err and "--yes" in err
    shown = orjson.loads(convtui("show", conversation_id, "--json")[0])
    assert shown["status"] == "STOPPED"


def test_send_then_run_answers_the_message(convtui, llm: FakeLLMServer) -> None:
    llm.responder = _title_aware([Text("first"), Text("the answer to your follow-up")])
    conversation_id = orjson.loads(convtui("new", "hello", "--json")[0])["conversation_id"]
    convtui("run", conversation_id)
    out, _ = convtui("send", conversation_id[:6], "a follow-up")
    assert out.startswith("sent as event")
    out, _ = convtui("run", conversation_id)
    assert "the answer to your follow-up" in out
    convtui("send", conversation_id, "", code=1)


def test_run_without_a_model_says_how_to_configure_one(data_dir: Path, capsys) -> None:
    assert main(["--data-dir", str(data_dir), "new", "hi"]) == 0
    conversation_id = capsys.readouterr().out.split()[-1]
    assert main(["--data-dir", str(data_dir), "run", conversation_id]) == 1
    err = capsys.readouterr().err
    assert "config set llm_model" in err and err.count("\n") == 1


def test_stop_and_start_race_with_another_process(convtui, llm: FakeLLMServer, data_dir: Path) -> None:
    llm.responder = _title_aware([Hang()])
    conversation_id = orjson.loads(convtui("new", "think hard", "--json")[0])["conversation_id"]
    runner = _spawn(data_dir, "run", conversation_id, "--yes")
    try:
        _wait_for(lambda: len(llm.requests) >= 1)
        # A second process may not start it: it is told which process runs it.
        _, err = convtui("run", conversation_id, code=1)
        assert f"already running in process {runner.pid}" in err
        listed = orjson.loads(convtui("list", "--json")[0])["results"][0]
        assert listed["status"] == "RUNNING"

        started = time.monotonic()
        out, _ = convtui("stop", conversation_id)
        assert time.monotonic() - started < 2.0
        assert f"was running in process {runner.pid}" in out
        runner.wait(timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()
    shown = orjson.loads(convtui("show", conversation_id, "--json")[0])
    assert shown["status"] == "STOPPED"
    out, _ = convtui("stop", conversation_id)
    assert "was not running" in out


def test_a_killed_runner_shows_stopped(convtui, llm: FakeLLMServer, data_dir: Path) -> None:
    llm.responder = _title_aware([Hang()])
    conversation_id = orjson.loads(convtui("new", "think hard", "--json")[0])["conversation_id"]
    runner = _spawn(data_dir, "run", conversation_id, "--yes")
    _wait_for(lambda: len(llm.requests) >= 1)
    runner.kill()
    runner.wait(timeout=10)
    shown = orjson.loads(convtui("show", conversation_id, "--json")[0])
    assert shown["status"] == "STOPPED"


def test_remember_prints_the_prompt(convtui, llm: FakeLLMServer) -> None:
    conversation_id = orjson.loads(convtui("new", "use tabs, never spaces", "--json")[0])["conversation_id"]
    llm.script(Text("<update_prompt>Indent with tabs.</update_prompt>"))
    out, _ = convtui("remember", conversation_id, "0")
    assert out.strip() == "Indent with tabs."
    _, err = convtui("remember", conversation_id, "99", code=1)
    assert "no event 99" in err


def test_commands_never_see_the_api_key(convtui, llm: FakeLLMServer, data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-provider-variable-123456")
    llm.responder = _title_aware(
        [
            ToolCall("execute_bash", {"command": "env > env.txt"}),
            ToolCall("execute_bash", {"command": "echo " + API_KEY}),
            ToolCall("finish", {"message": f"the key is {API_KEY}"}),
        ]
    )
    out, _ = convtui("new", "show env", "--start", "--yes")
    conversation_id = out.splitlines()[0].split()[-1]
    environment = (data_dir / "conversations" / conversation_id / "workspace" / "env.txt").read_text()
    assert API_KEY not in environment and "sk-provider-variable-123456" not in environment
    assert API_KEY not in out
    for path in data_dir.rglob("*"):
        if path.is_file() and path.name != "settings.json":
            assert API_KEY.encode() not in path.read_bytes(), path
    assert os.stat(data_dir / "settings.json").st_mode & 0o777 == 0o600


def test_run_shows_what_a_file_write_would_change_before_asking(
    convtui, llm: FakeLLMServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    long_file = "".join(f"line {number}\n" for number in range(1, 101))
    llm.responder = _title_aware(
        [
            ToolCall("str_replace_editor", {"command": "create", "path": "/workspace/notes.txt",
                                            "file_text": f"hello \x1b]52;c;ZXZpbA==\x07 there {API_KEY}\n" + "x" * 500}),
            ToolCall("str_replace_editor", {"command": "create", "path": "/workspace/long.txt", "file_text": long_file}),
            ToolCall("str_replace_editor", {"command": "str_replace", "path": "/workspace/long.txt",
                                            "old_str": "line 50\n", "new_str": "LINE FIFTY\n"}),
            ToolCall("str_replace_editor", {"command": "insert", "path": "/workspace/long.txt",
                                            "insert_line": 2, "new_str": "inserted"}),
            ToolCall("str_replace_editor", {"command": "str_replace", "path": "/workspace/long.txt",
                                            "old_str": "not in the file", "new_str": "x"}),
            ToolCall("finish", {"message": "done"}),
        ]
    )
    prompts: list[str] = []
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or print(PROMPT) or "y")
    conversation_id = orjson.loads(convtui("new", "write files", "--json")[0])["conversation_id"]
    out, _ = convtui("run", conversation_id)
    assert len(prompts) == 5
    blocks = _approval_blocks(out)
    created, long_created, replaced, inserted, failing = blocks
    # A new file: its content, inert, the key redacted, long lines cut with a note.
    assert created[:2] == ["  --- /dev/null", "  +++ /workspace/notes.txt"]
    assert "  +hello ␛]52;c;ZXZpbA==\\x07 there <redacted>" in created
    assert f"  +{'x' * 199}… [301 more characters]" in created
    assert "\x1b" not in out and "\x07" not in out and API_KEY not in out
    # At most 40 lines, with a note of what was cut.
    assert len(long_created) == 41 and long_created[-1] == "  [... 63 more lines of the diff not shown]"
    # str_replace and insert: unified diffs of the file as it is now.
    assert "  -line 50" in replaced and "  +LINE FIFTY" in replaced and "   line 49" in replaced
    assert replaced[:3] == ["  --- /workspace/long.txt", "  +++ /workspace/long.txt", "  @@ -47,7 +47,7 @@"]
    assert "  +inserted" in inserted and inserted[inserted.index("  +inserted") - 1] == "   line 2"
    assert failing == ["  (no preview: no match for old_str in /workspace/long.txt; nothing was changed "
                       "(it must match exactly, whitespace and indentation included))"]
    workspace = data_dir / "conversations" / conversation_id / "workspace"
    assert (workspace / "long.txt").read_text().startswith("line 1\nline 2\ninserted\nline 3\n")


PROMPT = "<the approval prompt>"


def _approval_blocks(out: str) -> list[list[str]]:
    """The lines printed just before each approval prompt (event lines, as
    `   4 agent ...`, come before them)."""
    blocks = []
    for chunk in out.split(PROMPT + "\n")[:-1]:
        lines = chunk.splitlines()
        start = len(lines)
        while start > 0 and re.match(r"  [-+ @\[(]", lines[start - 1]) and not re.match(r"\s*\d+ ", lines[start - 1]):
            start -= 1
        blocks.append(lines[start:])
    return blocks
