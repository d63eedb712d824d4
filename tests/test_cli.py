"""The command line is a contract: names, JSON shapes and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest

from convtui import __version__
from convtui.cli import main

from .conftest import TRAJECTORIES


class Cli:
    def __init__(self, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.data_dir = data_dir
        self.capsys = capsys

    def __call__(self, *arguments: str, code: int = 0) -> str:
        """Run convtui in-process; check the exit code; return stdout."""
        self.capsys.readouterr()
        exit_code = main(["--data-dir", str(self.data_dir), *arguments])
        captured = self.capsys.readouterr()
        assert exit_code == code, captured.err
        self.err = captured.err
        return captured.out

    def json(self, *arguments: str) -> dict:
        return orjson.loads(self(*arguments))

    def new(self, *arguments: str) -> str:
        return self.json("new", *arguments, "--json")["conversation_id"]


@pytest.fixture
def cli(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(data_dir, capsys)


def test_new_and_list_json_shapes(cli: Cli) -> None:
    created = cli.json("new", "Fix the build", "--repo", "org/app", "--branch", "main", "--json")
    assert set(created) == {"status", "conversation_id", "conversation_status"}
    assert created["status"] == "ok" and created["conversation_status"] == "STOPPED"
    listing = cli.json("list", "--json")
    assert set(listing) == {"results", "next_page_id"}
    assert listing["next_page_id"] is None
    [info] = listing["results"]
    for field in (
        "conversation_id", "title", "last_updated_at", "created_at", "status", "runtime_status",
        "selected_repository", "selected_branch", "git_provider", "trigger", "num_connections",
        "url", "session_api_key", "pr_number",
    ):
        assert field in info
    assert (info["conversation_id"], info["trigger"], info["selected_repository"]) == (
        created["conversation_id"], "cli", "org/app",
    )


def test_list_paging_and_filters(cli: Cli) -> None:
    for number in range(5):
        cli.new(f"task {number}", "--repo", "org/a" if number % 2 else "org/b")
    first = cli.json("list", "--json", "--limit", "2", "--repo", "org/b")
    assert len(first["results"]) == 2 and first["next_page_id"]
    second = cli.json("list", "--json", "--limit", "2", "--repo", "org/b", "--page", first["next_page_id"])
    assert len(second["results"]) == 1 and second["next_page_id"] is None
    assert cli.json("list", "--json", "--trigger", "gui")["results"] == []
    assert len(cli.json("list", "--json", "--status", "stopped")["results"]) == 5
    table = cli("list")
    assert table.splitlines()[0].split() == ["ID", "STATUS", "UPDATED", "TITLE", "REPOSITORY"]
    assert len(table.splitlines()) == 6


def test_show_rename_archive_delete_with_prefixes(cli: Cli) -> None:
    conversation_id = cli.new("hello there")
    prefix = conversation_id[:6]
    assert "renamed" in cli("rename", prefix, "Better title")
    shown = cli.json("show", prefix, "--json", "--events")
    assert shown["title"] == "Better title"
    assert [e["message"] for e in shown["events"]] == ["hello there"]
    assert "user" in cli("show", prefix, "--events")
    workspace = cli.data_dir / "conversations" / conversation_id / "workspace"
    assert f"workspace:     {workspace}" in cli("show", prefix).splitlines()
    assert shown["workspace"] == str(workspace)
    cli("archive", prefix)
    assert cli.json("list", "--json")["results"] == []
    assert [r["conversation_id"] for r in cli.json("list", "--json", "--archived")["results"]] == [conversation_id]
    cli("unarchive", prefix)
    cli("delete", prefix, "--yes")
    cli("show", conversation_id, code=1)
    assert "no conversation" in cli.err


def test_delete_without_yes_refuses_when_not_a_terminal(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    conversation_id = cli.new()
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    cli("delete", conversation_id, code=1)
    assert "--yes" in cli.err
    assert cli.json("show", conversation_id, "--json")["conversation_id"] == conversation_id


def test_errors_are_one_line_with_exit_code_1(cli: Cli) -> None:
    conversation_id = cli.new()
    cli("rename", conversation_id, "", code=1)
    assert cli.err.count("\n") == 1 and "title is empty" in cli.err
    cli("rename", conversation_id, "x" * 201, code=1)
    cli("show", "nothex", code=1)
    cli("list", "--limit", "500", code=1)
    cli("list", "--page", "garbage", code=1)
    cli("list", "--status", "dancing", code=1)
    cli("new", "--branch", "has space", code=1)
    assert "selected_branch" in cli.err
    cli("import", "/no/such/file.json", code=1)
    cli("archive", conversation_id, "ffffffffffff", code=1)  # the first still archived
    assert cli.json("show", conversation_id, "--json")["archived"] is True


def test_usage_errors_exit_2(cli: Cli) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["rename"])
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "x", "--format", "pdf"])
    assert exit_info.value.code == 2


def test_import_and_export(cli: Cli, tmp_path: Path) -> None:
    imported = cli.json("import", str(TRAJECTORIES[0]), "--json")
    assert imported["status"] == "ok"
    exported = orjson.loads(cli("export", imported["conversation_id"]))
    assert exported == orjson.loads(TRAJECTORIES[0].read_bytes())
    output = tmp_path / "out.md"
    cli("export", imported["conversation_id"][:5], "--format", "md", "-o", str(output))
    assert output.read_text().startswith("# Please create a simple 2048 game")  # titled from its first message
    archive = tmp_path / "out.zip"
    cli("export", imported["conversation_id"], "--format", "zip", "-o", str(archive))
    with zipfile.ZipFile(archive) as opened:
        assert len(opened.namelist()) == 1 + len(exported) and opened.namelist()[0] == "meta.json"
    replayed = cli.new("--replay", str(TRAJECTORIES[1]))
    assert cli.json("show", replayed, "--json")["trigger"] == "replay"


def test_config_masks_the_key_and_validates(cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("config", "set", "llm_model", "openai/gpt-4o")
    out = cli("config", "set", "llm_api_key", "sk-abcdefghijklmnop1234")
    assert "sk-abcdefghijklmnop1234" not in out and "1234" in out
    shown = cli("config", "show")
    assert "llm_model = openai/gpt-4o" in shown and "sk-abcdefghijklmnop1234" not in shown
    assert cli("config", "get", "confirmation_mode").strip() == "on"
    cli("config", "set", "confirmation_mode", "off")
    assert cli("config", "get", "confirmation_mode").strip() == "off"
    cli("config", "set", "max_iterations", "zero", code=1)
    assert "max_iterations" in cli.err
    cli("config", "set", "llm_base_url", "ftp://x", code=1)
    assert cli("config", "get", "max_iterations").strip() == "50"
    assert os.stat(data_dir / "settings.json").st_mode & 0o777 == 0o600
    monkeypatch.setenv("CONVTUI_LLM_MODEL", "anthropic/claude")
    assert "anthropic/claude   (from $CONVTUI_LLM_MODEL)" in cli("config", "show")


def test_titles_with_escape_sequences_print_inertly(cli: Cli) -> None:
    conversation_id = cli.new()
    # Titles cannot hold control characters, but event text can.
    cli("rename", conversation_id, "[bold]not bold[/]")
    assert "[bold]not bold[/]" in cli("list")
    hostile = "ring\x07 \x1b]52;c;ZXZpbA==\x07 \x1b[2J done"
    cli.json("new", hostile, "--json")
    output = cli("list", "--query", "x") + "".join(
        cli("show", r["conversation_id"], "--events") for r in cli.json("list", "--json")["results"]
    )
    assert "\x1b" not in output and "\x07" not in output
    assert "␛]52;c;ZXZpbA==" in output


def test_bare_command_opens_the_ui_on_the_data_dir(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from convtui.app import ConvtuiApp

    opened: list[Path] = []
    monkeypatch.setattr(ConvtuiApp, "run", lambda app, **options: opened.append(app.data_dir))
    cli()
    assert opened == [data_dir]
    assert __version__ in subprocess.run(
        [sys.executable, "-m", "convtui", "--version"], capture_output=True, text=True, check=True
    ).stdout


def test_a_damaged_store_gives_one_line_and_is_kept(cli: Cli, data_dir: Path) -> None:
    conversation_id = cli.new("hello")
    shard = data_dir / "store" / f"meta-{conversation_id[:2]}.json"
    shard.write_bytes(b'{"conversations": {"1": {"conversation_id": "')
    damaged = shard.read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "convtui", "--data-dir", str(data_dir), "list"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert str(shard) in result.stderr and "convtui doctor" in result.stderr
    assert shard.read_bytes() == damaged
    cli("doctor", code=1)
    assert "unreadable metadata shard" in cli("doctor", code=1)
    repaired = cli("doctor", "--repair")
    assert "metadata re-created" in repaired
    assert list(shard.parent.glob("meta-*.json.damaged-*"))[0].read_bytes() == damaged
    info = cli.json("show", conversation_id, "--json")
    assert info["title"].startswith("Conversation ")
    assert [e["message"] for e in cli.json("show", conversation_id, "--json", "--events")["events"]] == ["hello"]
    assert "no problems" in cli("doctor")


def test_config_show_json_masks_the_key_and_names_overrides(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("config", "set", "llm_api_key", "sk-abcdefghijklmnop1234")
    cli("config", "set", "max_iterations", "7")
    monkeypatch.setenv("CONVTUI_LLM_MODEL", "anthropic/claude")
    shown = cli.json("config", "show", "--json")
    assert shown["settings"]["llm_api_key"] == "sk-...1234"
    assert (shown["settings"]["max_iterations"], shown["settings"]["confirmation_mode"]) == (7, True)
    assert shown["settings"]["llm_model"] == "anthropic/claude"
    assert shown["settings"]["llm_base_url"] is None
    assert shown["environment_overrides"] == {"llm_model": "CONVTUI_LLM_MODEL"}
    assert "abcdefghijklmnop" not in cli("config", "show", "--json")


def test_export_into_a_missing_directory_names_that_directory(cli: Cli, tmp_path: Path) -> None:
    conversation_id = cli.new("hello")
    target = tmp_path / "no" / "such" / "dir" / "out.json"
    cli("export", conversation_id, "-o", str(target), code=1)
    assert cli.err == f"convtui: could not write {target}: directory {target.parent} does not exist\n"
    assert ".tmp" not in cli.err


def test_a_failed_write_names_the_file_not_its_temporary(tmp_path: Path) -> None:
    from convtui.backend.durable_files import atomic_write
    from convtui.backend.errors import StorageError

    occupied = tmp_path / "out.json"
    (occupied / "inside").mkdir(parents=True)  # the rename over it fails
    with pytest.raises(StorageError) as error:
        atomic_write(occupied, b"{}")
    assert str(error.value) == f"could not write {occupied}: Is a directory"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.json"]


def test_archive_of_an_unknown_id_names_it_once(cli: Cli) -> None:
    cli("archive", "nope", code=1)
    assert cli.err.count("nope") == 1 and cli.err.count("\n") == 1
    cli("unarchive", "nope", "fff", code=1)
    assert cli.err.count("nope") == 1 and cli.err.count("fff") == 1 and cli.err.count("\n") == 2


def test_archive_and_unarchive_say_when_nothing_changes(cli: Cli) -> None:
    conversation_id = cli.new("hello")
    assert cli("unarchive", conversation_id, code=1) == ""
    assert cli.err == f"convtui: {conversation_id} is not archived\n"
    assert cli("archive", conversation_id) == f"archived {conversation_id}\n"
    assert cli("archive", conversation_id[:6], code=1) == ""
    assert cli.err == f"convtui: {conversation_id} is already archived\n"
    assert cli("unarchive", conversation_id) == f"unarchived {conversation_id}\n"
    assert cli.json("show", conversation_id, "--json")["archived"] is False


@pytest.mark.parametrize("document", [b"[]", b'{"trajectory": []}'])
def test_an_empty_trajectory_is_refused(
    cli: Cli, tmp_path: Path, document: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    empty = tmp_path / "empty.json"
    empty.write_bytes(document)
    cli("import", str(empty), code=1)
    assert cli.err == "convtui: trajectory is empty: it holds no events\n"
    cli("new", "--replay", str(empty), code=1)
    assert "trajectory is empty" in cli.err and cli.err.count("\n") == 1
    assert cli.json("list", "--json", "--all")["results"] == []


def test_list_finds_conversations_by_what_they_did(cli: Cli) -> None:
    ids = {path.name: cli.json("import", str(path), "--json")["conversation_id"] for path in TRAJECTORIES}
    listed = cli.json("list", "--all", "--json", "--text", "Goldbach")
    assert [row["conversation_id"] for row in listed["results"]] == [ids["basic_interactions.json"]]
    listed = cli.json("list", "--all", "--json", "--file", "/workspace/game_2048.py", "--text", "2048")
    assert [row["conversation_id"] for row in listed["results"]] == [ids["basic.json"]]
    assert cli.json("list", "--all", "--json", "--cmd", '" NEAR( *')["results"] == []


def test_new_takes_what_openhands_requests_take(cli: Cli) -> None:
    task = cli.new("--suggested-task", "FAILING_CHECKS", "acme/app", "12", "Fix CI", "--git-provider", "gitlab")
    shown = cli.json("show", task, "--json", "--events")
    assert (shown["trigger"], shown["selected_repository"], shown["git_provider"]) == ("suggested_task", "acme/app", "gitlab")
    first = shown["events"][0]["args"]["content"]
    assert "merge request #12 in acme/app" in first and "GitLab API" in first and "$GITLAB_TOKEN" in first
    issue = cli.json("show", cli.new("--suggested-task", "open_issue", "acme/app", "7", "Crash"), "--json", "--events")
    assert issue["events"][0]["args"]["content"].startswith("Work on issue #7 in acme/app.")
    micro = cli.json("show", cli.new("--create-microagent", "acme/app"), "--json")
    assert (micro["trigger"], micro["selected_repository"]) == ("microagent_management", "acme/app")
    for trigger in ("resolver", "slack", "jira", "jira_dc", "linear"):
        assert cli.json("show", cli.new("hi", "--trigger", trigger), "--json")["trigger"] == trigger
    images = cli.json("show", cli.new("look", "--image", "https://example.com/a.png"), "--json", "--events")
    assert images["events"][0]["args"]["image_urls"] == ["https://example.com/a.png"]
    before = len(cli.json("list", "--json", "--all")["results"])
    cli("new", "look", "--image", "ftp://example.com/a.png", code=1)
    assert "image url" in cli.err and cli.err.count("\n") == 1
    cli("new", "--suggested-task", "OPEN_ISSUE", "acme/app", "seven", "Crash", code=1)
    assert "NUMBER" in cli.err
    assert len(cli.json("list", "--json", "--all")["results"]) == before


def test_new_start_without_a_model_creates_nothing(cli: Cli) -> None:
    cli("new", "do it", "--start", code=1)
    assert "--start needs a model" in cli.err and "llm_model" in cli.err and "nothing was created" in cli.err
    assert cli.json("list", "--json", "--all")["results"] == []


def test_exp_config_is_checked_and_set_once(cli: Cli, tmp_path: Path) -> None:
    conversation_id = cli.new("hi")
    config = tmp_path / "exp.json"
    config.write_text('{"config": {"enable_browsing": "true"}}')
    cli("exp-config", conversation_id, str(config), code=1)
    assert "'enable_browsing' is not a setting an experiment may change" in cli.err
    config.write_text('{"config": {"max_iterations": "0"}}')
    cli("exp-config", conversation_id, str(config), code=1)
    assert "max_iterations: must be 1 or more" in cli.err
    config.write_text("[1]")
    cli("exp-config", conversation_id, str(config), code=1)
    config.write_text('{"config": {"max_iterations": "5"}}')
    assert "experiment config set" in cli("exp-config", conversation_id, str(config))
    cli("exp-config", conversation_id, str(config), code=1)
    assert "already has an experiment config" in cli.err
