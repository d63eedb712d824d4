"""Settings: validated, 0600, environment on top, the key never shown."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from convtui.backend.errors import CorruptFile, InvalidInput
from convtui.backend.settings import Settings, SettingsStore, display_value, mask_secret


@pytest.fixture
def store(tmp_path: Path) -> SettingsStore:
    return SettingsStore(tmp_path / "settings.json", environ={})


def test_defaults_without_a_file(store: SettingsStore) -> None:
    settings = store.load()
    assert settings == Settings()
    assert settings.confirmation_mode is True and settings.llm_model is None


def test_saved_file_is_private_and_round_trips(store: SettingsStore) -> None:
    store.set("llm_api_key", "sk-live-0123456789abcdef")
    store.set("max_budget_per_conversation", "2.5")
    assert os.stat(store.path).st_mode & 0o777 == 0o600
    loaded = store.load()
    assert loaded.api_key() == "sk-live-0123456789abcdef"
    assert loaded.max_budget_per_conversation == 2.5
    assert "0123456789" not in repr(loaded) and "0123456789" not in str(loaded)


def test_bad_values_are_refused_and_the_file_is_unchanged(store: SettingsStore) -> None:
    store.set("max_iterations", "7")
    before = store.path.read_bytes()
    for name, value, reason in [
        ("max_iterations", "-1", "max_iterations"),
        ("max_concurrent_loops", "many", "max_concurrent_loops"),
        ("confirmation_mode", "maybe", "on or off"),
        ("llm_base_url", "localhost:8000", "http"),
        ("llm_api_key", "two words", "whitespace"),
        ("llm_model", "gpt\x1b[31m", "control"),
        ("colour", "blue", "unknown setting"),
    ]:
        with pytest.raises(InvalidInput, match=reason):
            store.set(name, value)
    assert store.path.read_bytes() == before


def test_empty_value_resets_to_default(store: SettingsStore) -> None:
    store.set("max_iterations", "7")
    assert store.set("max_iterations", "").max_iterations == 50


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    SettingsStore(path, environ={}).set("llm_model", "openai/file-model")
    environment = {"CONVTUI_LLM_MODEL": "openai/env-model", "CONVTUI_LLM_API_KEY": "sk-env-key-123456"}
    store = SettingsStore(path, environ=environment)
    settings = store.load()
    assert (settings.llm_model, settings.api_key()) == ("openai/env-model", "sk-env-key-123456")
    assert store.load_file().llm_model == "openai/file-model"
    assert set(store.overridden()) == {"llm_model", "llm_api_key"}


def test_masking() -> None:
    assert mask_secret("sk-abcdefghijklmnopqrstuvwxyz") == "sk-...wxyz"
    assert mask_secret("short") == "********"
    assert mask_secret(None) == ""
    for shown in ("sk-...wxyz", "********"):  # masked already (as a server sends it): shown as it came
        assert mask_secret(shown) == shown
    settings = Settings(llm_api_key="sk-abcdefghijklmnopqrstuvwxyz")
    assert display_value("llm_api_key", settings) == "sk-...wxyz"


def test_a_damaged_file_is_named_and_kept(store: SettingsStore) -> None:
    store.path.write_text("{ not json")
    with pytest.raises(CorruptFile, match="settings.json"):
        store.load()
    with pytest.raises(CorruptFile):
        store.set("llm_model", "x")
    assert store.path.read_text() == "{ not json"


def test_a_loose_mode_is_warned_about(store: SettingsStore, caplog: pytest.LogCaptureFixture) -> None:
    store.set("llm_model", "openai/gpt-4o")
    os.chmod(store.path, 0o644)
    with caplog.at_level(logging.WARNING):
        store.load()
    assert "chmod 600" in caplog.text


def test_theme_mouse_and_keymap_round_trip(store: SettingsStore) -> None:
    """The UI's look and keys are settings too: set from text (`config set`),
    saved, shown."""
    assert (Settings().theme, Settings().mouse, Settings().keymap) == ("textual-dark", True, {})
    store.set("theme", "rose-pine")
    store.set("mouse", "off")
    store.set("keymap", '{"new": "ctrl+n, f5", "help.close": "escape"}')
    loaded = store.load()
    assert (loaded.theme, loaded.mouse) == ("rose-pine", False)
    assert loaded.keymap == {"new": "ctrl+n,f5", "help.close": "escape"}
    assert display_value("keymap", loaded) == '{"new":"ctrl+n,f5","help.close":"escape"}'
    assert display_value("mouse", loaded) == "off"
    store.set("keymap", "")
    assert store.load().keymap == {}


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("theme", "no-such-theme", "unknown theme 'no-such-theme'; known: textual-dark"),
        ("mouse", "sometimes", "mouse: expected on or off"),
        ("keymap", "new=ctrl+n", "keymap: expected JSON like"),
        ("keymap", '["new"]', "keymap"),
        ("keymap", '{"New!": "n"}', "binding id 'New!' is not a name"),
        ("keymap", '{"new": "ctrl+ n"}', "keys 'ctrl+ n' for 'new' are not key names"),
        ("keymap", '{"new": "a,"}', "keys 'a,' for 'new'"),
    ],
)
def test_bad_theme_mouse_or_keymap_is_one_clear_line(store: SettingsStore, name: str, value: str, reason: str) -> None:
    store.set("theme", "flexoki")
    before = store.path.read_bytes()
    with pytest.raises(InvalidInput) as raised:
        store.set(name, value)
    assert reason in str(raised.value) and "\n" not in str(raised.value)
    assert store.path.read_bytes() == before
