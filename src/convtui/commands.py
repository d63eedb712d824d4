"""Command palette (ctrl+p): every action of the main screen, by name, with
its keys as they are now (the settings' keymap can change them)."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

# (what the palette says, the main screen's action, the id of its binding)
ACTIONS = (
    ("New conversation", "new", "new"),
    ("Rename conversation", "rename", "rename"),
    ("Start conversation", "start", "start"),
    ("Stop conversation", "stop", "stop"),
    ("Stop the workspace's background processes", "stop_processes", "stop_processes"),
    ("Delete conversation(s)", "delete", "delete"),
    ("Archive / unarchive", "archive", "archive"),
    ("Filter conversations", "filter", "filter"),
    ("Cycle sort order", "sort", "sort"),
    ("Reverse sort order", "reverse_sort", "reverse_sort"),
    ("Undo the last delete or archive", "undo", "undo"),
    ("Export conversation (JSON)", "export", "export"),
    ("Copy conversation id", "copy_id", "copy"),
    ("Remember prompt for selected event", "remember", "remember"),
    ("Load more conversations from the OpenHands server", "load_more", "more"),
    ("Approve pending action", "decide('approve')", "approve"),
    ("Reject pending action", "decide('reject')", "reject"),
    ("Always approve", "decide('always')", "always"),
    ("Always approve on / off for the conversation", "toggle_always_approve", "always_approve"),
    ("Help: every key", "help", "help"),
    ("Settings", "settings", "settings"),
    ("Quit (loops in the server keep running)", "quit", "quit"),
    ("Stop all loops and quit", "stop_all_and_quit", "stop_all_quit"),
)


class ConversationCommands(Provider):
    async def _run(self, action: str) -> None:
        from .screens.main import MainScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, MainScreen):
                await screen.run_action(action)
                return

    def _key_help(self, binding_id: str) -> str:
        from .keymap import shown_keys

        return f"key: {shown_keys(self.app, binding_id)}"

    def _offered(self) -> list[tuple[str, str, str]]:
        """The actions the main screen can take now (an OpenHands server has
        no archive; "load more" only while it holds more)."""
        from .screens.main import MainScreen

        main = next((screen for screen in self.app.screen_stack if isinstance(screen, MainScreen)), None)
        if main is None:
            return list(ACTIONS)
        return [entry for entry in ACTIONS if main.check_action(entry[1].split("(")[0], ()) is not False]

    async def discover(self) -> Hits:
        for name, action, binding_id in self._offered():
            yield DiscoveryHit(name, partial(self._run, action), help=self._key_help(binding_id))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, action, binding_id in self._offered():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), partial(self._run, action), help=self._key_help(binding_id))
