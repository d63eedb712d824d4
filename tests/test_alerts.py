"""Which state changes become alerts, and the bytes that reach a terminal."""

from __future__ import annotations

import pytest

from convtui.backend.alerts import (
    ALERT_EVERY_SECONDS,
    ALERT_KINDS,
    Alert,
    AlertGate,
    alert_kind,
    parse_kinds,
    terminal_alert,
    tmux_passthrough,
)
from convtui.backend.models import AgentState, ConversationStatus, RuntimeStatus
from convtui.backend.updates import StatusChanged

RUNNING, STOPPED, ERROR = ConversationStatus.RUNNING, ConversationStatus.STOPPED, ConversationStatus.ERROR


def change(conversation_id: str, status: ConversationStatus, agent_state: AgentState | None, attention: str | None = None) -> StatusChanged:
    return StatusChanged(conversation_id, status, RuntimeStatus.READY, agent_state, None, attention)


@pytest.mark.parametrize(
    ("status", "agent_state", "attention", "kind"),
    [
        (RUNNING, AgentState.AWAITING_USER_CONFIRMATION, None, "waiting"),
        (RUNNING, AgentState.AWAITING_USER_INPUT, None, "waiting"),
        (RUNNING, AgentState.FINISHED, None, "finished"),
        (ERROR, AgentState.ERROR, "error", "error"),
        (STOPPED, AgentState.STOPPED, "limit", "waiting"),  # a budget or step limit: you decide
        (STOPPED, AgentState.STOPPED, None, None),  # stopped by a person
        (RUNNING, AgentState.RUNNING, None, None),
        (ConversationStatus.STARTING, AgentState.LOADING, None, None),
    ],
)
def test_what_a_state_change_means_to_the_person(status, agent_state, attention, kind) -> None:  # noqa: ANN001
    assert alert_kind(change("a" * 32, status, agent_state, attention)) == kind


def test_the_gate_alerts_on_a_change_into_a_kind_once_per_conversation_per_ten_seconds() -> None:
    now = [100.0]
    gate = AlertGate(ALERT_KINDS, clock=lambda: now[0])
    first, second = "a" * 32, "b" * 32
    asks = change(first, RUNNING, AgentState.AWAITING_USER_CONFIRMATION)
    assert gate.take(asks) == "waiting"
    assert gate.take(asks) is None  # the same state again
    assert gate.take(change(second, RUNNING, AgentState.AWAITING_USER_INPUT)) == "waiting"  # another conversation
    gate.take(change(first, RUNNING, AgentState.RUNNING))
    now[0] += ALERT_EVERY_SECONDS / 2
    assert gate.take(asks) is None  # waits again 5 s later: not yet
    gate.take(change(first, RUNNING, AgentState.RUNNING))
    now[0] += ALERT_EVERY_SECONDS
    assert gate.take(asks) == "waiting"


def test_only_the_kinds_asked_for_are_alerts() -> None:
    gate = AlertGate(["error"])
    assert gate.take(change("a" * 32, RUNNING, AgentState.FINISHED)) is None
    assert gate.take(change("b" * 32, ERROR, AgentState.ERROR, "error")) == "error"


def test_kind_lists_are_checked_in_one_line() -> None:
    assert parse_kinds(" Waiting, error ,waiting", ALERT_KINDS, "kind") == ("waiting", "error")
    assert parse_kinds("none", ALERT_KINDS, "kind") == ()
    assert parse_kinds("", ALERT_KINDS, "kind") == ()
    with pytest.raises(ValueError, match="unknown kind 'started'; known: waiting, finished, error, none"):
        parse_kinds("waiting,started", ALERT_KINDS, "kind")


ALERT = Alert("waiting", "a" * 32, "Fix; the \x1b]0;evil\x07 tests", "approve: run pytest")


def test_the_bell_and_both_notifications_and_nothing_that_can_end_them_early() -> None:
    sent = terminal_alert(ALERT, ["bell", "osc"], in_tmux=False)
    assert sent == (
        "\x1b]9;convtui waiting: Fix, the ␛]0,evil\\x07 tests (approve: run pytest)\x07"
        "\x1b]777;notify;convtui;waiting: Fix, the ␛]0,evil\\x07 tests (approve: run pytest)\x07"
        "\a"
    )
    assert terminal_alert(ALERT, ["osc9"], in_tmux=False).count("\x1b]") == 1
    assert terminal_alert(ALERT, [], in_tmux=False) == ""


def test_inside_tmux_the_notifications_pass_through_and_the_bell_stays_tmux_s() -> None:
    sent = terminal_alert(ALERT, ["bell", "osc9"], in_tmux=True)
    assert sent.startswith("\x1bPtmux;\x1b\x1b]9;convtui waiting") and sent.endswith("\x07\x1b\\\a")
    assert tmux_passthrough("\x1b]9;x\x07") == "\x1bPtmux;\x1b\x1b]9;x\x07\x1b\\"
