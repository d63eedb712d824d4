"""Alerts: a conversation started waiting for a person, finished, or failed.

Which state changes are alerts (`AlertGate`: only a change into a kind the
person asked for, at most one per conversation per ALERT_EVERY_SECONDS), and
how one reaches a terminal, even over SSH and inside tmux
(`terminal_alert`): the bell, and the desktop-notification escapes OSC 9
(iTerm2, WezTerm, Ghostty, Windows Terminal...) and OSC 777 (foot, urxvt,
Ghostty, WezTerm...). A terminal that knows neither ignores them: both are
standard OSC strings, which terminals skip when they do not know them.
Inside tmux the escapes are wrapped for its passthrough (`allow-passthrough
on`); the bell is tmux's own to pass on."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..terminal_text import one_line
from .events import EventDict
from .models import AgentState, ConversationStatus
from .updates import StatusChanged

WAITING, FINISHED, ERROR = "waiting", "finished", "error"
ALERT_KINDS = (WAITING, FINISHED, ERROR)
# How alerts reach the terminal: "osc" is both OSC 9 and OSC 777; "osc9" or
# "osc777" alone for a terminal that shows both.
ALERT_METHODS = ("bell", "osc", "osc9", "osc777")
ALERT_EVERY_SECONDS = 10.0  # at most one alert per conversation this often
_TEXT_MAX = 200

_WAITING_STATES = (AgentState.AWAITING_USER_CONFIRMATION, AgentState.AWAITING_USER_INPUT)


def alert_kind(update: StatusChanged) -> str | None:
    """What a state change means to the person: it waits for them (an
    action to approve, a question; a loop stopped at a limit), it finished,
    it failed; None for anything else (working, stopped by a person)."""
    if update.status is ConversationStatus.ERROR:
        return ERROR
    if update.agent_state in _WAITING_STATES:
        return WAITING
    if update.agent_state is AgentState.FINISHED:
        return FINISHED
    if update.status is ConversationStatus.STOPPED and update.attention is not None:
        return ERROR if update.attention == ERROR else WAITING
    return None


def parse_kinds(text: str, known: Iterable[str], what: str) -> tuple[str, ...]:
    """A comma-separated choice of `known` ("" or "none": none). Raises
    ValueError naming the first unknown word."""
    known = tuple(known)
    words = [word.strip().lower() for word in text.split(",") if word.strip()]
    if words == ["none"]:
        return ()
    for word in words:
        if word not in known:
            raise ValueError(f"unknown {what} {word!r}; known: {', '.join(known)}, none")
    return tuple(dict.fromkeys(words))


class AlertGate:
    """Turns a stream of state changes into alerts: a change into a kind in
    `kinds` (the same state published again is no new alert), at most one per
    conversation per ALERT_EVERY_SECONDS."""

    def __init__(self, kinds: Iterable[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.kinds = frozenset(kinds)
        self._clock = clock
        self._last_kind: dict[str, str | None] = {}
        self._last_alert: dict[str, float] = {}

    def take(self, update: StatusChanged) -> str | None:
        """The alert's kind, or None when this change is no alert."""
        conversation_id = update.conversation_id
        kind = alert_kind(update)
        previous = self._last_kind.get(conversation_id)
        self._last_kind[conversation_id] = kind
        if kind is None or kind == previous or kind not in self.kinds:
            return None
        now = self._clock()
        if now - self._last_alert.get(conversation_id, -math.inf) < ALERT_EVERY_SECONDS:
            return None
        self._last_alert[conversation_id] = now
        return kind


@dataclass(frozen=True)
class Alert:
    kind: str
    conversation_id: str
    title: str
    detail: str  # what it waits on, why it failed; may be ""

    @property
    def what(self) -> str:
        """'Fix the tests (approve: run pytest)'."""
        detail = f" ({self.detail})" if self.detail else ""
        return one_line(f"{self.title}{detail}", _TEXT_MAX)

    @property
    def summary(self) -> str:
        """One line for a person: 'waiting: Fix the tests (approve: run pytest)'."""
        return one_line(f"{self.kind}: {self.what}", _TEXT_MAX)


def alert_detail(update: StatusChanged, kind: str, pending: EventDict | None) -> str:
    """What the alert adds to the title: the action to approve, why the loop
    failed or stopped at a limit; nothing for the rest."""
    if pending is not None:
        args = pending.get("args") or {}
        return f"approve: {args.get('command') or args.get('code') or args.get('path') or pending.get('action')}"
    return (update.message or "") if kind == ERROR or update.attention else ""


def _osc_text(text: str) -> str:
    """Text that cannot end an OSC string early nor split OSC 777's fields."""
    return "".join(ch for ch in one_line(text, _TEXT_MAX) if ch.isprintable()).replace(";", ",")


def tmux_passthrough(sequence: str) -> str:
    """`sequence` wrapped so that tmux hands it to the outer terminal."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def terminal_alert(alert: Alert, methods: Iterable[str], in_tmux: bool) -> str:
    """The bytes that alert a terminal, for the chosen methods ("" for none)."""
    methods = set(methods)
    body = _osc_text(alert.summary)
    notifications = ""
    if methods & {"osc", "osc9"}:
        notifications += f"\x1b]9;convtui {body}\x07"
    if methods & {"osc", "osc777"}:
        notifications += f"\x1b]777;notify;convtui;{body}\x07"
    if notifications and in_tmux:
        notifications = tmux_passthrough(notifications)
    return notifications + ("\a" if "bell" in methods else "")
