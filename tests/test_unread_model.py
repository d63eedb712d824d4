"""A model test of unread markers: random appends (by loops or another
process), views in two UIs of one OS user and in a UI of another user, and
restarts; after every step each UI's unread rows are what a plain model of
"the last event each user saw" says."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from convtui.backend.events import EventLog
from convtui.backend.models import NewConversationRequest
from convtui.backend.service import ConversationService
from convtui.backend.store import ConversationFilter

USERS = ("alice", "alice", "bob")  # two UIs of alice, one of bob


def run(coroutine):  # noqa: ANN001, ANN201
    return asyncio.run(coroutine)


class UnreadMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="convtui-unread-"))
        self.uis: list[ConversationService] = []
        self.ids: list[str] = []
        self.latest: dict[str, int] = {}
        self.seen: dict[tuple[str, str], int] = {}  # (user, conversation) -> last event seen

    @initialize(count=st.integers(1, 3))
    def open(self, count: int) -> None:
        self.uis = [run(ConversationService.open(self.directory, user_id=user)) for user in USERS]
        for number in range(count):
            response = run(self.uis[number % 3].new_conversation(NewConversationRequest(initial_user_msg=f"task {number}")))
            self.ids.append(response.conversation_id)
            self.latest[response.conversation_id] = 0
            self.seen[(USERS[number % 3], response.conversation_id)] = 0  # one's own message
        for ui in self.uis:
            ui.latest_events()

    def teardown(self) -> None:
        for ui in self.uis:
            ui.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @rule(which=st.integers(0, 2), events=st.integers(1, 3), by_loop_of=st.sampled_from([0, 1, 2, None]))
    def append(self, which: int, events: int, by_loop_of: int | None) -> None:
        """A loop in one of the UIs appends (that UI knows at once), or
        another process does (the UIs learn on their next read)."""
        conversation_id = self.ids[which % len(self.ids)]
        new = [{"source": "agent", "action": "message", "message": f"step {n}"} for n in range(events)]
        if by_loop_of is None:
            stored = EventLog(self.directory / "conversations" / conversation_id).append(new)
            for ui in self.uis:
                ui.search_index.add(conversation_id, stored)  # (what that process's append did)
        else:
            stored = self.uis[by_loop_of]._event_log(conversation_id).append(new)
        self.latest[conversation_id] = stored[-1]["id"]
        for ui in self.uis:
            ui.reload_latest_events()  # (the UI's poll)

    @rule(ui=st.integers(0, 2), which=st.integers(0, 2))
    def view(self, ui: int, which: int) -> None:
        conversation_id = self.ids[which % len(self.ids)]
        run(self.uis[ui].mark_seen(conversation_id, self.latest[conversation_id]))
        self.seen[(USERS[ui], conversation_id)] = self.latest[conversation_id]

    @rule(ui=st.integers(0, 2))
    def restart(self, ui: int) -> None:
        self.uis[ui].close()
        self.uis[ui] = run(ConversationService.open(self.directory, user_id=USERS[ui]))
        self.uis[ui].latest_events()

    @invariant()
    def unread_rows_follow_the_model(self) -> None:
        for ui, user in zip(self.uis, USERS):
            run(ui.refresh())
            expected = {
                conversation_id
                for conversation_id in self.ids
                if (user, conversation_id) in self.seen and self.latest[conversation_id] > self.seen[(user, conversation_id)]
            }
            rows = {conversation_id for conversation_id in self.ids if ui.row(conversation_id).unread}
            assert rows == expected, (user, rows, expected)
            assert set(run(ui.list_ids(ConversationFilter(unread=True)))) == expected


UnreadMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=12, deadline=None)
test_unread_markers_follow_the_model = UnreadMachine.TestCase
