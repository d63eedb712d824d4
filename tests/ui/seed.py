"""Deterministic data and app set-up for UI tests and snapshots: fixed ids,
fixed times, a frozen clock, no animation and no cursor blink."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from convtui.app import ConvtuiApp
from convtui.backend.models import ConversationMetadata, format_timestamp
from convtui.backend.store import ConversationStore

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=timezone.utc)


def frozen_clock() -> datetime:
    return NOW


def fixed_id(name: str) -> str:
    return hashlib.md5(name.encode()).hexdigest()


SAMPLES: list[dict[str, Any]] = [
    {"title": "Fix the flaky payments test", "selected_repository": "acme/payments", "selected_branch": "main",
     "trigger": "gui", "hours": 0.1, "status": "STOPPED", "agent_state": "finished", "accumulated_cost": 0.42,
     "total_tokens": 18200},
    {"title": "Refactor the settings loader", "selected_repository": "acme/webapp", "selected_branch": "refactor",
     "trigger": "cli", "hours": 1, "status": "ERROR", "runtime_status": "STATUS$ERROR_LLM_AUTHENTICATION",
     "agent_state": "error", "status_message": "the model provider refused the API key"},
    {"title": "Write release notes for 2.4", "trigger": "gui", "hours": 5, "accumulated_cost": 0.03},
    {"title": "Investigate slow CI on the engine", "selected_repository": "acme/engine", "trigger": "suggested_task",
     "hours": 26},
    {"title": "Port the parser to Rust", "selected_repository": "acme/engine", "selected_branch": "rust",
     "trigger": "cli", "hours": 72, "accumulated_cost": 1.5},
    {"title": "Old experiment", "trigger": "replay", "hours": 400, "archived": True},
]


def seed_store(data_dir: Path, samples: list[dict[str, Any]] | None = None, count: int | None = None) -> list[str]:
    """Write conversations straight into the store; returns their ids
    (newest activity first)."""
    store = ConversationStore(data_dir / "store")
    ids = []
    try:
        rows = list(samples if samples is not None else SAMPLES)
        if count is not None:
            rows = [
                {"title": f"Conversation number {n}", "trigger": "cli", "hours": n * 0.01,
                 "selected_repository": f"org/repo{n % 7}"}
                for n in range(count)
            ]
        for number, sample in enumerate(rows):
            sample = dict(sample)
            hours = sample.pop("hours", number)
            conversation_id = fixed_id(sample["title"] + str(number))
            moment = NOW - timedelta(hours=hours)
            metadata = ConversationMetadata(
                conversation_id=conversation_id,
                user_id="tester",
                created_at=moment - timedelta(minutes=5),
                last_updated_at=moment,
                **sample,
            )
            store.insert(metadata.to_document())
            ids.append(conversation_id)
    finally:
        store.close()
    return ids


def still_app(data_dir: Path, **kwargs: Any) -> ConvtuiApp:
    """The app with a frozen clock, no animations and no blinking cursors."""
    app = ConvtuiApp(data_dir, clock=frozen_clock, user_id="tester", **kwargs)
    app.animation_level = "none"
    return app


async def settle(pilot: Any, condition: Callable[[], bool] | None = None, timeout: float = 10.0) -> None:
    """Let the app process what is queued, then wait (polling) until
    `condition` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    await pilot.pause()
    while condition is not None and not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the screen did not reach the expected state")
        await pilot.pause(0.02)


__all__ = ["NOW", "SAMPLES", "fixed_id", "format_timestamp", "frozen_clock", "seed_store", "settle", "still_app"]
