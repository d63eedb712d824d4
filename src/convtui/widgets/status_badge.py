"""A conversation's state as a person cares about it, in one place: the
one-character badge of its row (a spinner while the agent works, a distinct
glyph, not only a colour, for every other state, so 16-colour and NO_COLOR
terminals tell them apart) and the words the detail pane shows. Derived from
the conversation's status, its agent's state and its runtime status: a loop
that is RUNNING but waits for the user says so, never "running"."""

from __future__ import annotations

from dataclasses import dataclass

from ..backend.models import AgentState, ConversationInfo, ConversationStatus, RuntimeStatus

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

_LIVE = (ConversationStatus.RUNNING, ConversationStatus.STARTING)


@dataclass(frozen=True)
class Badge:
    glyph: str
    style: str  # a conversation-list--<style> component class
    label: str  # "needs approval", "waiting for you", "working", "error", ...
    animated: bool = False


def badge_for(info: ConversationInfo, frame: int | None = None) -> Badge:
    """The badge for a conversation; `frame` animates a working agent (None:
    a still glyph, for snapshots and reduced motion)."""
    live = info.status in _LIVE
    if live and info.agent_state is AgentState.AWAITING_USER_CONFIRMATION:
        return Badge("?", "waiting", "needs approval")
    if live and info.agent_state in (AgentState.AWAITING_USER_INPUT, AgentState.FINISHED):
        return Badge("◆", "running", "waiting for you")
    if live:
        if info.agent_state is AgentState.RATE_LIMITED or info.runtime_status is RuntimeStatus.LLM_RETRY:
            label = "retrying"
        elif info.runtime_status is RuntimeStatus.SETTING_UP_WORKSPACE:
            label = "setting up the workspace"
        elif info.status is ConversationStatus.STARTING or info.agent_state is AgentState.LOADING:
            label = "starting"
        else:
            label = "working"
        glyph = SPINNER[frame % len(SPINNER)] if frame is not None else "▶"
        return Badge(glyph, "running", label, animated=frame is not None)
    if info.status is ConversationStatus.ERROR:
        return Badge("✖", "error", "error")
    if info.status is ConversationStatus.ARCHIVED:
        return Badge("▫", "dim", "archived")
    if info.agent_state is AgentState.FINISHED:
        return Badge("✔", "done", "finished")
    return Badge("■", "dim", "stopped")


def state_words(info: ConversationInfo) -> str:
    """The state line of the detail pane: the badge's words, and for an
    error its reason ("error: the model provider refused the API key")."""
    badge = badge_for(info)
    if badge.label == "error" and info.status_message:
        return f"error: {info.status_message}"
    return badge.label
