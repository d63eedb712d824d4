"""The one-character status badge of a conversation: a spinner while its
loop starts or runs, and a distinct glyph (not only a colour, so 16-colour
and NO_COLOR terminals tell them apart) for every other state."""

from __future__ import annotations

from dataclasses import dataclass

from ..backend.models import AgentState, ConversationInfo, ConversationStatus

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


@dataclass(frozen=True)
class Badge:
    glyph: str
    style: str  # a conversation-list--<style> component class
    label: str
    animated: bool = False


def badge_for(info: ConversationInfo, frame: int | None = None) -> Badge:
    """The badge for a conversation; `frame` animates running loops (None:
    a still glyph, for snapshots and reduced motion)."""
    if info.agent_state is AgentState.AWAITING_USER_CONFIRMATION and info.status in (
        ConversationStatus.RUNNING,
        ConversationStatus.STARTING,
    ):
        return Badge("?", "waiting", "awaiting confirmation")
    if info.status in (ConversationStatus.RUNNING, ConversationStatus.STARTING):
        if info.agent_state in (AgentState.AWAITING_USER_INPUT, AgentState.FINISHED):
            return Badge("◆", "running", "waiting for you")
        glyph = SPINNER[frame % len(SPINNER)] if frame is not None else "▶"
        return Badge(glyph, "running", info.status.value.lower(), animated=frame is not None)
    if info.status is ConversationStatus.ERROR:
        return Badge("✖", "error", "error")
    if info.status is ConversationStatus.ARCHIVED:
        return Badge("▫", "dim", "archived")
    if info.agent_state is AgentState.FINISHED:
        return Badge("✔", "done", "finished")
    return Badge("■", "dim", "stopped")
