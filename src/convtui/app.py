"""The convtui terminal application."""

from __future__ import annotations

import asyncio
import gc
from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from textual import events, work
from textual.app import App, ComposeResult
from textual.message import Message
from textual.message_pump import MessagePump
from textual.screen import Screen
from textual.widgets import Static

from .backend.errors import ConvtuiError
from .commands import ConversationCommands


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


# How long a key may stay in flight before the next one goes anyway (its
# marker was lost with a widget that was removed before it got there).
KEY_IN_FLIGHT_LIMIT = 0.5
# A key's marker goes round twice (what the key's handlers posted, e.g.
# Input.Submitted or Button.Pressed, is handled before the second round ends)
# and once more after each screen change, up to this many rounds.
KEY_ROUNDS_MAX = 6


class KeyDelivered(Message):
    """Posted right behind a key, to where the key went. Messages are
    handled in order and a key bubbles up before its marker does, so when the
    marker reaches the app every handler of the key has run, the bindings
    included. (A new one for each round: a message that has bubbled up to
    the app is stopped.)"""

    def __init__(self, key_number: int, rounds: int, on_screen: Screen) -> None:
        super().__init__()
        self.key_number = key_number
        self.rounds = rounds
        self.on_screen = on_screen


class ConvtuiApp(App[None]):
    """Opens the data directory in a worker (the window paints at once), then
    shows the main screen."""

    TITLE = "convtui"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {ConversationCommands}
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        data_dir: Path,
        clock: Callable[[], datetime] = _utc_now,
        user_id: str | None = None,
        on_ready: Callable[[ConvtuiApp], None] | None = None,
    ) -> None:
        super().__init__()
        self.data_dir = data_dir
        self.clock = clock
        self.user_id = user_id
        self.on_ready = on_ready
        self.service = None
        self.manager = None
        self._waiting_input: deque[events.Key | events.Paste] = deque()
        self._keys_delivered = 0
        self._key_in_flight: int | None = None  # its number
        self._key_deadline: asyncio.TimerHandle | None = None

    def compose(self) -> ComposeResult:
        yield Static(f"Opening {self.data_dir} …", id="loading")

    async def on_event(self, event: events.Event) -> None:
        """Keys from the terminal are handled one at a time: a key goes to
        the widget focused once the key before it has been handled, with the
        screen it opened or the focus it moved. Several keys arrive in one
        read (a fast typist, a slow SSH link); Textual would send them all to
        the widget focused when they arrived."""
        if isinstance(event, (events.Key, events.Paste)) and not event.is_forwarded:
            if self._key_in_flight is not None or self._waiting_input:
                self._waiting_input.append(event)  # a paste keeps its place among the keys
                return
            if isinstance(event, events.Key):
                await self._deliver_key(event)
                return
        await super().on_event(event)

    async def _deliver_key(self, key: events.Key) -> None:
        await super().on_event(key)  # priority bindings, else to the focused widget
        self._keys_delivered += 1
        self._key_in_flight = self._keys_delivered
        self._send_round(self._keys_delivered, 1)

    def _send_round(self, key_number: int, rounds: int) -> None:
        target: MessagePump = self.focused or self.screen
        if self._key_deadline is not None:
            self._key_deadline.cancel()
        self._key_deadline = asyncio.get_running_loop().call_later(KEY_IN_FLIGHT_LIMIT, self._key_landed, key_number)
        if not target.post_message(KeyDelivered(key_number, rounds, self.screen)):
            self._key_landed(key_number)

    def on_key_delivered(self, marker: KeyDelivered) -> None:
        if marker.key_number != self._key_in_flight:
            return  # it had timed out
        if marker.rounds < KEY_ROUNDS_MAX and (marker.rounds == 1 or marker.on_screen is not self.screen):
            self._send_round(marker.key_number, marker.rounds + 1)  # a new screen: its mount and focus first
        else:
            self._key_landed(marker.key_number)

    def _key_landed(self, key_number: int) -> None:
        if key_number != self._key_in_flight:
            return
        self._key_in_flight = None
        if self._key_deadline is not None:
            self._key_deadline.cancel()
            self._key_deadline = None
        if self._waiting_input:
            self.call_next(self._deliver_waiting)

    async def _deliver_waiting(self) -> None:
        while self._waiting_input and self._key_in_flight is None:
            event = self._waiting_input.popleft()
            if isinstance(event, events.Key):
                await self._deliver_key(event)
            else:
                await super().on_event(event)

    def on_mount(self) -> None:
        self.screen_change_signal.subscribe(self, self._still_cursors)
        self._open()

    def _still_cursors(self, screen: Screen) -> None:
        """With animations off (TEXTUAL_ANIMATIONS=none: reduced motion, and
        deterministic snapshots) text cursors do not blink either."""
        if self.animation_level != "none":
            return

        def stop_blinking() -> None:
            for widget in screen.query("Input, TextArea"):
                widget.cursor_blink = False

        self.call_after_refresh(stop_blinking)

    @work(exclusive=True)
    async def _open(self) -> None:
        from .backend.manager import ConversationManager
        from .backend.service import ConversationService
        from .screens.main import MainScreen

        try:
            self.service = await ConversationService.open(self.data_dir, user_id=self.user_id)
        except ConvtuiError as error:
            self.query_one("#loading", Static).update(f"convtui cannot open its data:\n\n{error}\n\nPress q to quit.")
            self.bind("q", "quit")
            return
        self.manager = ConversationManager(self.service)
        # What is loaded now lives as long as the app: keep the collector from
        # walking it again and again (it caused the slowest keystrokes at 100k).
        gc.collect()
        gc.freeze()
        await self.push_screen(MainScreen(self.service, self.manager, self.clock))
        self.run_worker(self._warm_search(), group="warm")
        if self.on_ready is not None:
            self.on_ready(self)

    async def _warm_search(self) -> None:
        """Build the search columns after the first paint; they live as long
        as the app too (seven lists of every row): out of the collector's way."""
        await asyncio.to_thread(self.service.store.warm)
        gc.freeze()

    async def action_quit(self) -> None:
        """ctrl+q: the main screen asks first when loops are running."""
        from .screens.main import MainScreen

        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                screen.action_quit()
                return
        self.exit()

    async def on_unmount(self) -> None:
        if self.manager is not None:
            await self.manager.shutdown()
        if self.service is not None:
            self.service.close()
