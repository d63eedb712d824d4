"""Command palette (ctrl+p): every action of the main screen, by name."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

ACTIONS = (
    ("New conversation", "new", "n"),
    ("Rename conversation", "rename", "r"),
    ("Start conversation", "start", "s"),
    ("Stop conversation", "stop", "x"),
    ("Delete conversation(s)", "delete", "d"),
    ("Archive / unarchive", "archive", "a"),
    ("Filter conversations", "filter", "/"),
    ("Cycle sort order", "sort", "o"),
    ("Export conversation (JSON)", "export", "e"),
    ("Copy conversation id", "copy_id", "c"),
    ("Remember prompt for selected event", "remember", "R"),
    ("Approve pending action", "decide('approve')", "y"),
    ("Reject pending action", "decide('reject')", "N"),
    ("Always approve", "decide('always')", "Y"),
    ("Always approve on / off for the conversation", "toggle_always_approve", "A"),
    ("Help: every key", "help", "?"),
    ("Settings", "settings", "F2"),
    ("Quit", "quit", "q"),
)


class ConversationCommands(Provider):
    async def _run(self, action: str) -> None:
        from .screens.main import MainScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, MainScreen):
                await screen.run_action(action)
                return

    async def discover(self) -> Hits:
        for name, action, key in ACTIONS:
            yield DiscoveryHit(f"{name} ({key})", partial(self._run, action), help=f"key: {key}")

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, action, key in ACTIONS:
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), partial(self._run, action), help=f"key: {key}")
