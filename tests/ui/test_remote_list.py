"""`convtui --remote NAME` without a live server: the list over the answers
a real OpenHands server gave (tests/fixtures/openhands/listing: 250
conversations in pages of 100), served in any order as the UI asks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Static

from convtui.backend import openhands_http, openhands_ui_backend
from convtui.backend.openhands_ui_backend import OpenHandsUIBackend
from convtui.backend.remotes import Remote, RemotesStore
from convtui.screens.help import HelpScreen

from ..openhands.recording import ServedFromRecording
from ..openhands.server import free_port
from .seed import settle, still_app
from .test_main_screen import listed, main_screen, status_line
from .test_typeahead import burst

URL = "http://127.0.0.1:3000"  # (the recording's requests do not carry it)


@pytest.fixture
def served(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> ServedFromRecording:
    """Remote "oh", answered from the recording; 100 rows load by themselves."""
    transport = ServedFromRecording("listing")
    RemotesStore(data_dir).add("oh", URL, api_key="recorded-key")
    made = OpenHandsUIBackend.for_remote.__func__  # type: ignore[attr-defined]

    def for_remote(cls: type[OpenHandsUIBackend], remote: Remote, **more: Any) -> OpenHandsUIBackend:
        return made(cls, remote, transport=transport, **more)

    monkeypatch.setattr(OpenHandsUIBackend, "for_remote", classmethod(for_remote))
    monkeypatch.setattr(openhands_ui_backend, "AUTO_LOAD", 100)
    monkeypatch.setattr(openhands_ui_backend, "FOLLOW_SECONDS", 0.2)
    return transport


def pages_read(transport: ServedFromRecording) -> list[str | None]:
    return [dict(asked["query"]).get("page_id") for asked in transport.asked if asked["path"].endswith("/search")]


async def test_more_loads_the_next_rows_when_asked(data_dir: Path, served: ServedFromRecording) -> None:
    app = still_app(data_dir, remote="oh")
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot, lambda: main_screen_up(app) and "M: load more" in status_line(app))
        assert status_line(app).startswith("100 of 250 · 100 loaded · M: load more")
        await pilot.pause(0.5)  # the newest page is followed; no later one is read unasked
        assert set(pages_read(served)) == {None}
        burst(app, "M")
        await settle(pilot, lambda: len(listed(app).ids) == 200 and "M: load more" in status_line(app))
        assert "200 loaded" in status_line(app)
        assert "Loading up to 100 more conversations from oh" in notices(app)
        burst(app, "M")
        await settle(pilot, lambda: len(listed(app).ids) == 250)
        await settle(pilot, lambda: status_line(app).startswith("250 of 250 · sort:"))
        assert [page for page in pages_read(served) if page] == ["100", "200"]
        burst(app, "M")  # nothing more: nothing asked
        await pilot.pause(0.3)
        assert [page for page in pages_read(served) if page] == ["100", "200"]
        assert main_screen(app).check_action("archive", ()) is False  # the server has no archive: hidden
        burst(app, "?")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_text = "\n".join(str(label.render()) for label in app.screen.query(Static))
        assert "load more from the server" in help_text and "archive" not in help_text


async def test_the_loading_line_names_the_server_and_its_address(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiting for a server that does not answer: which one, where, and why."""
    monkeypatch.setattr(openhands_http, "RETRY_DELAYS", (0.5, 0.5))
    url = f"http://127.0.0.1:{free_port()}"
    RemotesStore(data_dir).add("gone", url)
    app = still_app(data_dir, remote="gone")
    async with app.run_test(size=(140, 40)) as pilot:
        loading = app.query_one("#loading", Static)
        await settle(pilot, lambda: "retrying" in str(loading.render()))
        assert str(loading.render()).startswith(f"Opening gone ({url}) … server unreachable")
        await settle(pilot, lambda: "cannot open the OpenHands server 'gone'" in str(loading.render()))


def main_screen_up(app: Any) -> bool:
    try:
        return main_screen(app) is not None
    except StopIteration:
        return False


def notices(app: Any) -> str:
    return "\n".join(str(notification.message) for notification in app._notifications)
