"""The settings dialog lists the OpenHands servers added and tests each."""

from __future__ import annotations

from pathlib import Path

import pytest

from convtui.backend import openhands_http
from convtui.backend.remotes import RemotesStore
from convtui.screens.settings import SettingsScreen

from ..openhands.server import free_port
from .seed import settle, still_app
from .test_main_screen import ready
from .test_typeahead import F2, burst


def dialog_status(app) -> str:  # noqa: ANN001
    return str(app.screen.query_one("#status").render())


async def test_each_remote_is_listed_and_tested(data_dir: Path, seeded: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openhands_http, "RETRY_DELAYS", (0.01,))
    RemotesStore(data_dir).add("gone", f"http://127.0.0.1:{free_port()}", api_key_env="GONE_KEY")
    monkeypatch.setenv("GONE_KEY", "k")
    app = still_app(data_dir)
    async with app.run_test(size=(140, 60)) as pilot:
        await settle(pilot, ready(app))
        burst(app, F2)
        await settle(pilot, lambda: isinstance(app.screen, SettingsScreen) and bool(app.screen.query("#remote-0")))
        row = app.screen.query_one(".remote--row")
        assert "· key $GONE_KEY" in str(row.query("Label").first().render())
        await pilot.click("#remote-0")
        await settle(pilot, lambda: "cannot reach" in dialog_status(app))
        assert "-error" in app.screen.query_one("#status").classes


async def test_without_remotes_it_says_how_to_add_one(data_dir: Path, seeded: list[str]) -> None:
    app = still_app(data_dir)
    async with app.run_test(size=(140, 60)) as pilot:
        await settle(pilot, ready(app))
        burst(app, F2)
        await settle(pilot, lambda: isinstance(app.screen, SettingsScreen) and bool(app.screen.query(".remote--none")))
        assert "convtui remote add NAME URL" in str(app.screen.query_one(".remote--none").render())
