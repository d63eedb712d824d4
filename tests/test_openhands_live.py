"""The remote backend against a real OpenHands server (openhands-ai from
PyPI, started as its users start it: see tests/openhands/server.py), with
its agent talking to the fake model. Skipped, saying why, when no OpenHands
is installed (`python3 tests/openhands/setup.py` installs it).

With CONVTUI_RECORD_OPENHANDS=1 each scenario's exchanges are written to
tests/fixtures/openhands/, which tests/test_openhands_replay.py replays."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from convtui.backend.models import NewConversationRequest
from convtui.backend.openhands_backend import OpenHandsBackend
from convtui.backend.openhands_http import ServerUnreachable
from convtui.backend.remotes import Remote

from .fake_llm import FakeLLMServer
from .openhands import scenarios
from .openhands.recording import FIXTURES, RECORD_VARIABLE, RecordingTransport
from .openhands.server import PYTHON_VARIABLE, SESSION_KEY, OpenHandsServer, openhands_python

PYTHON = openhands_python()
EDIT_RULES = FIXTURES / "edit_rules.json"
pytestmark = pytest.mark.skipif(
    PYTHON is None,
    reason=f"no OpenHands to test against: `python3 tests/openhands/setup.py` installs it (or set ${PYTHON_VARIABLE})",
)


@pytest.fixture(scope="module")
def model() -> Iterator[FakeLLMServer]:
    with FakeLLMServer.in_thread() as server:
        server.responder = scenarios.agent_model
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model: FakeLLMServer) -> Iterator[OpenHandsServer]:
    assert PYTHON is not None
    running = OpenHandsServer(PYTHON, tmp_path_factory.mktemp("openhands")).start()
    try:
        running.seed(scenarios.SEEDED)
        running.use_model(model.base_url)
        yield running
    finally:
        running.kill()


def backend_for(server: OpenHandsServer, key: str = SESSION_KEY, recording: RecordingTransport | None = None, **options) -> OpenHandsBackend:
    remote = Remote(name="test", url=server.url, api_key=key)
    return OpenHandsBackend.for_remote(remote, transport=recording, **options)


async def play(server: OpenHandsServer, name: str, scenario, key: str = SESSION_KEY, **arguments) -> None:
    """Run `scenario` with a backend on the real server; record it if asked."""
    recording = RecordingTransport() if os.environ.get(RECORD_VARIABLE) else None
    backend = backend_for(server, key, recording)
    try:
        await scenario(backend, **arguments)
    finally:
        await backend.close()
    if recording is not None:
        recording.save(name)


# In this order: each starts from what the one before left.


async def test_listing(server: OpenHandsServer) -> None:
    await play(server, "listing", scenarios.listing)


async def test_changes(server: OpenHandsServer) -> None:
    await play(server, "changes", scenarios.changes)


async def test_a_wrong_key_is_refused(server: OpenHandsServer) -> None:
    await play(server, "refused_key", scenarios.refused_key, key="not-the-key")


async def test_bursts_are_retried_after_the_servers_429(server: OpenHandsServer) -> None:
    await play(server, "bursts", scenarios.bursts)


async def test_a_paced_client_is_never_refused(server: OpenHandsServer) -> None:
    """convtui's own pace (10 a second) keeps under the server's limit."""
    recording = RecordingTransport()
    backend = backend_for(server, recording=recording)
    started = time.monotonic()
    try:
        await asyncio.gather(*(backend.count() for _ in range(25)))
    finally:
        await backend.close()
    assert {exchange["status"] for exchange in recording.exchanges} == {200}
    assert time.monotonic() - started >= 2.0


async def test_agent_run(server: OpenHandsServer) -> None:
    await play(server, "agent_run", scenarios.agent_run)


@contextlib.contextmanager
def confirmation_mode(server: OpenHandsServer) -> Iterator[None]:
    """The server's settings ask before every action meanwhile."""
    server.confirmation_mode(True)
    try:
        yield
    finally:
        server.confirmation_mode(False)


async def test_approvals(server: OpenHandsServer) -> None:
    with confirmation_mode(server):
        await play(server, "approvals", scenarios.approvals)


async def test_run_on_the_server(server: OpenHandsServer) -> None:
    with confirmation_mode(server):
        await play(server, "remote_run", scenarios.remote_run)


async def test_a_file_edit_is_shown_as_a_diff_before_approval(server: OpenHandsServer) -> None:
    edited = Path(scenarios.EDITED)
    shutil.rmtree(edited.parent, ignore_errors=True)
    edited.parent.mkdir()  # (OpenHands' editor makes no directories)
    try:
        with confirmation_mode(server):
            await play(server, "edit_approval", scenarios.edit_approval)
        assert edited.read_text() == "one\n2\n"  # what the previews said, done by OpenHands' editor
    finally:
        shutil.rmtree(edited.parent, ignore_errors=True)


async def test_a_killed_server_is_waited_for_then_answers_again(server: OpenHandsServer) -> None:
    heard: list[str] = []
    backend = backend_for(server, on_wait=heard.append)
    backend.http.retry_delays = (0.2, 0.4)
    try:
        before = await backend.count()
        server.kill()
        with pytest.raises(ServerUnreachable, match="cannot reach"):
            await backend.count()
        assert heard == ["server unreachable, retrying in 0.2 s", "server unreachable, retrying in 0.4 s"]
        server.start()  # the same port and persistence directory
        assert await backend.count() == before
    finally:
        await backend.close()



def test_the_command_line_on_the_server(server: OpenHandsServer, tmp_path) -> None:
    """`convtui remote add`, then `convtui --remote NAME ...` as a user types them."""
    environment = {**os.environ, "OH_TEST_KEY": SESSION_KEY, "CONVTUI_DATA_DIR": str(tmp_path / "data")}

    def convtui(*arguments: str, code: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "convtui", *arguments], env=environment, capture_output=True, text=True, timeout=120)
        assert done.returncode == code, done.stderr
        return done

    convtui("remote", "add", "oh", server.url, "--api-key-env", "OH_TEST_KEY")
    assert "holds" in convtui("remote", "test", "oh").stdout
    listing = json.loads(convtui("--remote", "oh", "list", "--json", "--limit", "5").stdout)
    assert len(listing["results"]) == 5 and listing["next_page_id"]
    first = listing["results"][0]["conversation_id"]
    assert f"more: convtui --remote oh list --page {listing['next_page_id']}" in convtui("--remote", "oh", "list", "--limit", "5").stdout
    convtui("--remote", "oh", "rename", first[:8], "From the command line")
    shown = json.loads(convtui("--remote", "oh", "show", first, "--json").stdout)
    assert shown["title"] == "From the command line" and shown["conversation_id"] == first
    convtui("--remote", "oh", "export", first[:8], "--format", "zip", "-o", str(tmp_path / "first.zip"))
    with zipfile.ZipFile(tmp_path / "first.zip") as archive:  # the server's own download: its meta.json says the new title
        assert json.loads(archive.read("meta.json"))["title"] == "From the command line"
    refused = convtui("--remote", "oh", "archive", first, code=1).stderr
    assert refused.strip().endswith("archiving is not available on an OpenHands server: delete it, or leave it in the list")
    environment["OH_TEST_KEY"] = "wrong"
    assert "refused the API key" in convtui("--remote", "oh", "list", code=1).stderr


async def test_watch_says_when_an_agent_on_the_server_finishes(server: OpenHandsServer, tmp_path) -> None:
    """`convtui --remote NAME watch`, started as a user starts it, prints a
    line when an agent the server runs finishes (and nothing for the
    conversations that stood still)."""
    environment = {**os.environ, "CONVTUI_DATA_DIR": str(tmp_path / "data")}
    subprocess.run([sys.executable, "-m", "convtui", "remote", "add", "oh", server.url, "--api-key-stdin"],
                   input=SESSION_KEY, env=environment, check=True, capture_output=True, text=True)  # fmt: skip
    watcher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "convtui", "--remote", "oh", "watch", "--on", "finished,waiting,error",
        env=environment, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    backend = backend_for(server)
    try:
        assert b"watching on oh for finished, waiting, error" in await asyncio.wait_for(watcher.stderr.readline(), 30)
        await asyncio.sleep(3)  # (its first look at the server: what stands still says nothing)
        created = await backend.new_conversation(NewConversationRequest(initial_user_msg="write hello.txt"))
        line = (await asyncio.wait_for(watcher.stdout.readline(), scenarios.WAIT_SECONDS)).decode()
        assert line.split()[2:4] == ["finished", created.conversation_id[:8]], line
        await backend.stop(created.conversation_id)
    finally:
        watcher.terminate()
        await watcher.wait()
        await backend.close()


def test_run_shows_the_agent_and_approves_with_yes(server: OpenHandsServer, tmp_path) -> None:
    """`convtui --remote NAME run ID --yes` as a user types it, the server
    asking before every action: the agent's events are shown as they come,
    its command approved here, until it finishes."""
    environment = {**os.environ, "CONVTUI_DATA_DIR": str(tmp_path / "data")}

    def convtui(*arguments: str, code: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "convtui", *arguments], env=environment, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL)
        assert done.returncode == code, (done.stdout, done.stderr)
        return done

    subprocess.run([sys.executable, "-m", "convtui", "remote", "add", "oh", server.url, "--api-key-stdin"],
                   input=SESSION_KEY, env=environment, check=True, capture_output=True, text=True)  # fmt: skip
    with confirmation_mode(server):
        created = json.loads(convtui("--remote", "oh", "new", "write hello.txt", "--json").stdout)
        conversation_id = created["conversation_id"]
        without_yes = convtui("--remote", "oh", "run", conversation_id, code=1)
        assert "an action needs approval: run in a terminal, or pass --yes" in without_yes.stderr
        shown = convtui("--remote", "oh", "run", conversation_id[:8], "--yes").stdout  # (that paused it: resumed)
    assert shown.startswith(f"-- resuming the sandbox of {conversation_id[:8]} on oh"), shown
    assert "echo hello > hello.txt" in shown, shown
    assert shown.rstrip().splitlines()[-1] == "-- finished", shown


async def test_the_ui_on_the_server(server: OpenHandsServer, tmp_path) -> None:
    """`convtui --remote NAME`: every page listed, a filter, a rename and a
    delete typed in bursts reach the server; a killed server is said on the
    status line while the keys go on working, and its return too."""
    from convtui.backend.remotes import RemotesStore

    from .ui.seed import settle, still_app
    from convtui.screens.main import MainScreen

    from .ui.test_main_screen import listed, main_screen, status_line
    from .ui.test_typeahead import CTRL_U, ENTER, burst

    data_dir = tmp_path / "ui-data"
    RemotesStore(data_dir).add("oh", server.url, api_key=SESSION_KEY)
    checker = backend_for(server)
    app = still_app(data_dir, remote="oh")
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await settle(pilot, lambda: any(isinstance(s, MainScreen) and s.listed.is_set() for s in app.screen_stack), timeout=30)
            total = await checker.count()
            await settle(pilot, lambda: len(listed(app).ids) == total, timeout=30)  # the later pages, in the background
            backend = main_screen(app).backend

            def shown_titles() -> list[str]:
                return [backend.row(i).title for i in listed(app).ids]

            burst(app, "/", "seeded 0012", ENTER, "j")
            expected = [f"seeded 0012{n}" for n in reversed(range(10))] + ["seeded 00012"]
            await settle(pilot, lambda: shown_titles() == expected)
            assert "11 of" in status_line(app)
            target = listed(app).current_id
            assert backend.row(target).title == "seeded 00128"

            burst(app, "r", CTRL_U, "Renamed in the UI", ENTER)
            await settle(pilot, lambda: "seeded 00128" not in shown_titles(), timeout=15)
            assert (await checker.get(target)).title == "Renamed in the UI"

            burst(app, "d", "y")
            await settle(pilot, lambda: len(shown_titles()) == 9, timeout=15)
            assert await checker.count() == total - 1

            server.kill()
            await settle(pilot, lambda: "server unreachable" in status_line(app) or "cannot reach" in status_line(app), timeout=20)
            burst(app, "/", CTRL_U, ENTER, "j")  # the filter cleared: the list goes on answering
            await settle(pilot, lambda: len(listed(app).ids) == total - 1)
            server.start()
            await settle(pilot, lambda: "unreachable" not in status_line(app) and "cannot reach" not in status_line(app), timeout=30)
    finally:
        await checker.close()


def test_the_recorded_edit_rules_are_openhands_own(tmp_path) -> None:
    """tests/fixtures/openhands/edit_rules.json (what test_openhands_edit
    checks the previews with) is what OpenHands' file editor does with each
    case: each file's text afterwards, or a refusal."""
    recorded = json.loads(EDIT_RULES.read_text())
    cases = [{"before": case["before"], "args": case["args"]} for case in recorded]
    done = subprocess.run(
        [str(PYTHON), str(Path(__file__).parent / "openhands" / "edit_rules.py")],
        input=json.dumps(cases), capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    editor = [{"refused": True} if "refused" in result else result for result in json.loads(done.stdout)]
    if os.environ.get(RECORD_VARIABLE):
        EDIT_RULES.write_text(json.dumps([{**case, "editor": result} for case, result in zip(cases, editor)], indent=1) + "\n")
    assert editor == [case["editor"] for case in recorded]

