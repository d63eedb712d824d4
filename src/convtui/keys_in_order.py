"""Keys from the terminal handled one at a time, each by what the keys
before it left focused.

Several keys arrive in one read (a fast typist, a slow SSH link). Textual
sends each key to the widget focused when the key arrives, so in
`openai/fake<Tab>x` the `x` is queued on the model field before the Tab has
moved the focus. Here a key is handed over only once the key before it has
been handled all the way up, bindings included, and the screen it opened has
mounted and set its focus."""

from __future__ import annotations

import asyncio
from collections import deque

from textual import events
from textual.app import App, ReturnType
from textual.message import Message
from textual.message_pump import MessagePump
from textual.screen import Screen

# How long a key's marker may take before another is sent behind whatever is
# queued then; if that one is late too, the next key goes anyway (the marker
# was lost with a widget removed before it got there). One late marker alone
# is no proof: a screen that mounts while the machine is loaded can keep the
# event loop busy for longer than this.
KEY_IN_FLIGHT_LIMIT = 0.5
# A key's marker goes round twice (what the key's handlers posted, e.g.
# Input.Submitted or Button.Pressed, is handled before the second round ends)
# and once more after each screen change, up to this many rounds.
KEY_ROUNDS_MAX = 6
KEYS_NEVER_HELD = ("ctrl+c", "ctrl+q")  # quitting works while keys are held


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


class KeysInOrderApp(App[ReturnType]):
    """An App that hands keys (and pastes, which keep their place among the
    keys) over one at a time. Mouse events are not held back."""

    def __init__(self) -> None:
        super().__init__()
        self._waiting_input: deque[events.Key | events.Paste] = deque()
        self._keys_delivered = 0
        self._key_in_flight: int | None = None  # its number
        self._key_deadline: asyncio.TimerHandle | None = None
        self._keys_held = False

    def hold_keys(self) -> None:
        """Keep the keys typed from now on (but those that quit) until
        release_keys: e.g. while what they are typed for is still loading."""
        self._keys_held = True

    def drop_held_keys(self) -> None:
        """Forget the keys held, and hold no more."""
        self._waiting_input.clear()
        self._keys_held = False

    def release_keys(self) -> None:
        """Hand over the keys held, in order, then each as it comes."""
        self._keys_held = False
        if self._waiting_input and self._key_in_flight is None:
            self.call_next(self._deliver_waiting)

    async def on_event(self, event: events.Event) -> None:
        """A key from the terminal waits while the one before it is in flight
        (or while keys are held)."""
        if isinstance(event, (events.Key, events.Paste)) and not event.is_forwarded:
            quits = self._keys_held and isinstance(event, events.Key) and event.key in KEYS_NEVER_HELD
            if not quits and (self._keys_held or self._key_in_flight is not None or self._waiting_input):
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

    def _send_round(self, key_number: int, rounds: int, late: bool = False) -> None:
        target: MessagePump = self.focused or self.screen
        if self._key_deadline is not None:
            self._key_deadline.cancel()
        self._key_deadline = asyncio.get_running_loop().call_later(
            KEY_IN_FLIGHT_LIMIT, self._marker_late, key_number, rounds, late
        )
        if not target.post_message(KeyDelivered(key_number, rounds, self.screen)):
            self._key_landed(key_number)

    def _marker_late(self, key_number: int, rounds: int, late_before: bool) -> None:
        """No marker back in time: send one more to what is focused now
        (a screen that was mounting has it by then); give up on the second."""
        if key_number != self._key_in_flight:
            return
        if late_before:
            self._key_landed(key_number)
        else:
            self._send_round(key_number, rounds, late=True)

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
        while self._waiting_input and self._key_in_flight is None and not self._keys_held:
            event = self._waiting_input.popleft()
            if isinstance(event, events.Key):
                await self._deliver_key(event)
            else:
                await super().on_event(event)
