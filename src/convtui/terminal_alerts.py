"""Alerts in the UI: when a conversation the person is not looking at
starts waiting for them, finishes or fails, ring the terminal and send a
desktop notification (backend/alerts.py says which changes, and the bytes),
and show a notification inside the UI too."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable

from .backend.alerts import ALERT_KINDS, Alert, AlertGate, alert_detail, terminal_alert
from .backend.interface import UIBackend
from .backend.updates import LoopUpdate, StatusChanged


class TerminalAlerts:
    """A subscriber of the backend's updates.

    `looking_at()` names the conversation on screen (no alert for it);
    `write(text)` sends bytes to the terminal; `notify(text, title)` shows a
    notification in the UI."""

    def __init__(
        self,
        backend: UIBackend,
        looking_at: Callable[[], str | None],
        write: Callable[[str], None],
        notify: Callable[[str, str], None],
    ) -> None:
        self.backend = backend
        self.looking_at = looking_at
        self.write = write
        self.notify = notify
        self.gate = AlertGate(ALERT_KINDS)
        self.methods: tuple[str, ...] = ("bell", "osc")
        self.in_tmux = bool(os.environ.get("TMUX"))
        self._pending: set[asyncio.Future[None]] = set()  # alerts waiting for the store to know their conversation

    def configure(self, kinds: Iterable[str], methods: Iterable[str]) -> None:
        self.gate.kinds = frozenset(kinds)
        self.methods = tuple(methods)

    def __call__(self, update: LoopUpdate) -> None:
        if not isinstance(update, StatusChanged):
            return
        kind = self.gate.take(update)
        if kind is None or update.conversation_id == self.looking_at():
            return
        if self.backend.row(update.conversation_id) is not None:
            self._alert(update, kind)
            return
        # Created elsewhere a moment ago (another UI, the CLI, over the API):
        # not in this process's copy of the store yet.
        task = asyncio.ensure_future(self._alert_when_known(update, kind))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _alert_when_known(self, update: StatusChanged, kind: str) -> None:
        await self.backend.refresh()
        self._alert(update, kind)

    def _alert(self, update: StatusChanged, kind: str) -> None:
        info = self.backend.row(update.conversation_id)
        title = info.title if info is not None else update.conversation_id[:8]
        pending = self.backend.pending_action_now(update.conversation_id)
        alert = Alert(kind, update.conversation_id, title, alert_detail(update, kind, pending))
        sequence = terminal_alert(alert, self.methods, self.in_tmux)
        if sequence:
            self.write(sequence)
        self.notify(alert.summary, "needs you" if kind == "waiting" else kind)
