"""The state a person cares about, in the detail header and the row badge:
never "RUNNING" while the agent waits for the user."""

from __future__ import annotations

import pytest

from convtui.backend.models import AgentState, ConversationInfo, ConversationStatus, RuntimeStatus
from convtui.widgets.detail_pane import describe_info
from convtui.widgets.status_badge import badge_for

from .seed import NOW


def info(status: str, agent_state: str | None = None, runtime_status: str | None = None, **fields) -> ConversationInfo:
    return ConversationInfo(
        conversation_id="a" * 32,
        title="A task",
        created_at=NOW,
        last_updated_at=NOW,
        status=ConversationStatus(status),
        agent_state=AgentState(agent_state) if agent_state else None,
        runtime_status=RuntimeStatus(runtime_status) if runtime_status else None,
        **fields,
    )


@pytest.mark.parametrize(
    ("conversation", "words"),
    [
        (info("RUNNING", "awaiting_user_input", "STATUS$READY"), "◆ waiting for you"),
        (info("RUNNING", "finished", "STATUS$READY", status_message="finished"), "◆ waiting for you"),
        (info("RUNNING", "awaiting_user_confirmation", "STATUS$READY"), "? needs approval"),
        (info("RUNNING", "running", "STATUS$READY"), "▶ working"),
        (info("RUNNING", "running", "STATUS$LLM_RETRY", status_message="timeout; retry 1 of 2"), "▶ retrying"),
        (info("STARTING", "loading", "STATUS$STARTING_RUNTIME"), "▶ starting"),
        (info("STARTING", "loading", "STATUS$SETTING_UP_WORKSPACE"), "▶ setting up the workspace"),
        (
            info("ERROR", "error", "STATUS$ERROR_LLM_AUTHENTICATION", status_message="the provider refused the key"),
            "✖ error: the provider refused the key",
        ),
        (info("STOPPED", "finished", "STATUS$STOPPED"), "✔ finished"),
        (info("STOPPED", "stopped", "STATUS$STOPPED"), "■ stopped"),
    ],
    ids=["input", "finished-live", "approval", "working", "retrying", "starting", "workspace", "error", "finished", "stopped"],
)
def test_the_header_names_the_state_a_person_cares_about(conversation: ConversationInfo, words: str) -> None:
    state_line = describe_info(conversation, NOW).plain.splitlines()[1]
    assert state_line == words
    assert "running" not in state_line.lower()
    assert badge_for(conversation).label in words  # the rows use the same words


def test_always_approve_is_shown_while_on() -> None:
    assert "always approve on" not in describe_info(info("STOPPED"), NOW).plain
    assert "always approve on (A turns it off)" in describe_info(info("STOPPED", always_approve=True), NOW).plain
