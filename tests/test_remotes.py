"""Remotes: adding, listing, removing and testing OpenHands servers, and
the commands that take --remote, as a user types them."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import orjson
import pytest

from convtui.backend import openhands_http
from convtui.backend.remotes import REMOTES_FILE
from convtui.cli import main

from .openhands.server import free_port
from .test_cli import Cli, cli  # noqa: F401 (the fixture)


def test_add_list_remove(cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "No remotes" in cli("remote", "list")
    assert "--remote team" in cli("remote", "add", "team", "https://openhands.example.com/", "--api-key-env", "TEAM_KEY")
    monkeypatch.setattr("sys.stdin", io.StringIO("sk-stored-secret-value-1234\n"))
    cli("remote", "add", "lab", "http://10.0.0.5:3000", "--api-key-stdin", "--insecure")
    listing = cli("remote", "list")
    assert "team             https://openhands.example.com  API key: $TEAM_KEY" in listing
    assert "stored (sk-...1234)" in listing and "(TLS not verified)" in listing
    assert "sk-stored-secret-value-1234" not in listing
    assert orjson.loads(cli("remote", "list", "--json"))[1] == {
        "name": "lab", "url": "http://10.0.0.5:3000", "api_key": "stored (sk-...1234)", "insecure": True
    }
    path = data_dir / REMOTES_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "removed team" in cli("remote", "remove", "team")
    assert [remote["name"] for remote in orjson.loads(cli("remote", "list", "--json"))] == ["lab"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("Bad Name", "https://x"), "a remote's name is 1-32 of a-z"),
        (("ok", "ftp://x"), "must be an http:// or https:// URL"),
        (("ok", "https://user:pw@x"), "must not hold a query, a fragment or credentials"),
        (("ok", "https://x:port"), "is not a URL"),
        (("ok", "https://x", "--api-key-env", "1BAD"), "is not an environment variable name"),
        (("first", "https://y"), "a remote named 'first' exists already"),
    ],
)
def test_bad_remotes_are_refused_in_one_line_and_nothing_changes(cli: Cli, data_dir: Path, arguments: tuple[str, ...], message: str) -> None:
    cli("remote", "add", "first", "https://x")
    before = (data_dir / REMOTES_FILE).read_bytes()
    cli("remote", "add", *arguments, code=1)
    assert message in cli.err and len(cli.err.strip().splitlines()) == 1
    assert (data_dir / REMOTES_FILE).read_bytes() == before


def test_a_stored_key_comes_from_stdin_only(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    cli("remote", "add", "x", "https://x", "--api-key-stdin", code=1)
    assert "no API key on standard input" in cli.err
    cli("remote", "add", "x", "https://x", "--api-key-stdin", "--api-key-env", "K", code=1)


def test_unknown_and_damaged_remotes(cli: Cli, data_dir: Path) -> None:
    cli("--remote", "nowhere", "list", code=1)
    assert "no remote named 'nowhere'" in cli.err
    cli("remote", "remove", "nowhere", code=1)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / REMOTES_FILE).write_text("{not json")
    cli("remote", "list", code=1)
    assert "remotes.json is damaged" in cli.err and (data_dir / REMOTES_FILE).read_text() == "{not json"


def test_a_missing_key_variable_is_named(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    cli("remote", "add", "x", "https://x", "--api-key-env", "NOT_SET_KEY")
    cli("--remote", "x", "list", code=1)
    assert cli.err.strip() == "convtui: $NOT_SET_KEY is not set: remote 'x' reads its API key from it"


def test_what_only_this_machine_has_is_refused_on_a_remote(cli: Cli) -> None:
    cli("remote", "add", "x", "http://127.0.0.1:9")
    cli("--remote", "x", "config", "show", code=1)
    assert "not available on an OpenHands server" in cli.err
    cli("--remote", "x", "trash", code=1)
    with pytest.raises(SystemExit) as exit:
        main(["--remote", "x", "serve"])
    assert exit.value.code == 2


def test_an_unreachable_server_is_retried_then_named(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openhands_http, "RETRY_DELAYS", (0.01, 0.02))
    cli("remote", "add", "gone", f"http://127.0.0.1:{free_port()}")
    cli("remote", "test", "gone", code=1)
    lines = cli.err.strip().splitlines()
    assert lines[0] == "convtui: server unreachable, retrying in 0.01 s"
    assert lines[-1].startswith("convtui: cannot reach http://127.0.0.1:")
    cli("--remote", "gone", "list", code=1)
    assert "Traceback" not in cli.err


def test_a_server_that_is_not_openhands_is_named_so(cli: Cli) -> None:
    """A real HTTP server without OpenHands' routes (the fake model's)."""
    from .fake_llm import FakeLLMServer

    with FakeLLMServer.in_thread() as other:
        cli("remote", "add", "other", other.base_url.removesuffix("/v1"))
        cli("remote", "test", "other", code=1)
    assert "has no /api/v1/app-conversations: not an OpenHands server, or one without its V1 API" in cli.err
