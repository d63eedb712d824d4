"""`convtui config set` and the settings dialog refuse bad values in plain
words, never pydantic's ("Input should be greater than or equal to 1")."""

from __future__ import annotations

from pathlib import Path

import pytest

from convtui.backend.errors import InvalidInput
from convtui.backend.settings import SettingsStore


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("max_iterations", "0", "max_iterations: must be 1 or more"),
        ("max_iterations", "20000", "max_iterations: must be 10,000 or less"),
        ("max_iterations", "2.5", "max_iterations: must be a whole number"),
        ("max_concurrent_loops", "many", "max_concurrent_loops: must be a whole number"),
        ("max_budget_per_conversation", "-1", "max_budget_per_conversation: must be 0 or more"),
        ("command_timeout", "0", "command_timeout: must be more than 0"),
        ("llm_timeout", "soon", "llm_timeout: must be a number"),
        ("llm_timeout", "inf", "llm_timeout: must be a finite number"),
        ("conversation_max_age_days", "99999", "conversation_max_age_days: must be 36,500 or less"),
        ("llm_base_url", "localhost:8000", "llm_base_url: must start with http:// or https://"),
    ],
)
def test_bad_values_are_refused_in_plain_words(tmp_path: Path, name: str, raw: str, message: str) -> None:
    store = SettingsStore(tmp_path / "settings.json", environ={})
    with pytest.raises(InvalidInput) as refused:
        store.set(name, raw)
    assert str(refused.value) == message


def test_update_says_the_same(tmp_path: Path) -> None:
    store = SettingsStore(tmp_path / "settings.json", environ={})
    with pytest.raises(InvalidInput, match=r"^llm_timeout: must be more than 0$"):
        store.update({"llm_timeout": -5})
