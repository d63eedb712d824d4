"""The convtui terminal application."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App, ComposeResult
from textual.screen import Screen
from textual.theme import Theme
from textual.widgets import Static

from .backend.errors import ConvtuiError
from .backend.settings import THEME_NAMES
from .commands import ConversationCommands
from .keys_in_order import KeysInOrderApp
from .terminal_alerts import TerminalAlerts
from .terminal_text import one_line

if TYPE_CHECKING:
    from .backend.interface import UIBackend
    from .screens.main import MainScreen


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class ConvtuiApp(KeysInOrderApp[None]):
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
        no_server: bool = False,
        remote: str | None = None,
    ) -> None:
        """`no_server`: loops run in this process (else in the data
        directory's server when the `server` setting is on). `remote`: the
        name of an OpenHands server (convtui remote add) to work on instead."""
        super().__init__()
        self.data_dir = data_dir
        self.no_server = no_server
        self.remote = remote
        self.clock = clock
        self.user_id = user_id
        self.on_ready = on_ready
        self.backend: UIBackend | None = None
        self.alerts: TerminalAlerts | None = None
        self._saved_theme: str | None = None  # the theme settings.json holds, once read
        self.keymap: dict[str, str] = {}  # binding id -> keys, from settings.json

    _offered_themes: tuple[tuple[str, ...], dict[str, Theme]] | None = None

    @property
    def available_themes(self) -> dict[str, Theme]:
        """The themes offered (the palette's "Change theme"): those that keep
        every text readable in every colour system (settings.THEME_NAMES).
        Textual asks for them at every theme lookup, several times a frame:
        the answer is kept while the registered themes stay the same."""
        every = super().available_themes
        key = tuple(every)
        if self._offered_themes is None or self._offered_themes[0] != key:  # (asked for within App.__init__ too)
            self._offered_themes = (key, {name: theme for name, theme in every.items() if name in THEME_NAMES})
        return self._offered_themes[1]

    def compose(self) -> ComposeResult:
        yield Static(f"Opening {self.remote or self.data_dir} …", id="loading")

    def on_mount(self) -> None:
        self.screen_change_signal.subscribe(self, self._still_cursors)
        self.hold_keys()  # keys typed while the list loads are for the list: kept until it shows
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
        from .backend.connect import open_remote_ui_backend, open_ui_backend
        from .screens.main import MainScreen

        try:
            if self.remote is not None:
                loading = self.query_one("#loading", Static)
                opening = f"Opening {self.remote} …"

                def reach(where: str) -> None:
                    nonlocal opening
                    opening = f"Opening {self.remote} ({where}) …"
                    loading.update(opening)

                def say(why: str) -> None:
                    loading.update(f"{opening} {why}")

                self.backend = await open_remote_ui_backend(self.data_dir, self.remote, on_wait=say, on_reach=reach)
            else:
                self.backend = await open_ui_backend(self.data_dir, user_id=self.user_id, no_server=self.no_server)
        except ConvtuiError as error:
            what = f"the OpenHands server {self.remote!r}" if self.remote is not None else "its data"
            self.query_one("#loading", Static).update(f"convtui cannot open {what}:\n\n{error}\n\nPress q to quit.")
            self.bind("q", "quit")
            self.drop_held_keys()  # (a q among them must not quit before the error is read)
            return
        self.alerts = TerminalAlerts(self.backend, self._looking_at, self.write_to_terminal, self._notify_alert)
        self.backend.subscribe(self.alerts)
        await self.apply_settings()
        # What is loaded now lives as long as the app: keep the collector from
        # walking it again and again (it caused the slowest keystrokes at 100k).
        # (No collection first: ~80 ms at 100,000 to find next to nothing.)
        gc.freeze()
        main = MainScreen(self.backend, self.clock)
        await self.push_screen(main)
        self.release_keys()
        self.run_worker(self._connect(main), group="server")
        self.run_worker(self._warm_search(main), group="warm")
        self.run_worker(main.check_sandbox(), group="sandbox")
        if self.backend.ui_closed_at() is not None:
            self.run_worker(main.while_away(), group="digest")
        if self.on_ready is not None:
            self.on_ready(self)

    async def _connect(self, main: MainScreen) -> None:
        """Once the list is shown (reaching the server competed with the
        first paint): only loop actions wait for the server."""
        await main.listed.wait()
        try:
            await self.backend.connect()
        except ConvtuiError as error:
            self.notify(
                f"{one_line(str(error), 300)}. Loops cannot run; start convtui with --no-server to run them here.",
                title="No convtui server",
                severity="error",
                timeout=20,
            )

    async def apply_settings(self) -> None:
        """The theme and the keymap of settings.json (at start, and after the
        settings dialog saved them). A keymap entry that names no binding or
        no key is left out, with a one-line error."""
        from .keymap import checked_keymap

        try:
            settings = await self.backend.load_settings()
        except ConvtuiError as error:
            self.notify(one_line(str(error), 300), title="Settings not read", severity="error")
            return
        self._saved_theme = settings.theme
        self.theme = settings.theme
        if self.alerts is not None:
            self.alerts.configure(settings.alert_kinds, settings.alert_methods)
        self.keymap, errors = checked_keymap(settings.keymap)
        self.set_keymap(self.keymap)
        for error in errors:
            self.notify(one_line(error, 300), title="Keymap entry ignored", severity="error", timeout=10)

    def _looking_at(self) -> str | None:
        """The conversation on screen (no alert for it): the topmost screen
        that shows one says which."""
        for screen in reversed(self.screen_stack):
            if hasattr(screen, "looking_at"):
                return screen.looking_at
        return None

    def write_to_terminal(self, text: str) -> None:
        """Bytes for the terminal itself (an alert's bell and notification escapes)."""
        if not self.is_headless and self._driver is not None:
            self._driver.write(text)

    def _notify_alert(self, text: str, title: str) -> None:
        self.notify(text, title=title, timeout=8)

    def watch_theme(self, theme: str) -> None:
        """A theme picked in the palette is kept in settings.json."""
        if self._saved_theme is not None and theme != self._saved_theme:
            self._saved_theme = theme
            self._save_theme(theme)

    @work(group="theme", exclusive=True)
    async def _save_theme(self, theme: str) -> None:
        try:
            await self.backend.update_settings({"theme": theme})
        except ConvtuiError as error:
            self.notify(one_line(str(error), 300), title="Theme not saved", severity="error")

    async def _warm_search(self, main: MainScreen) -> None:
        """Once the first list is painted, build the search columns (the
        thread building them would hold the index the list is read from)
        and import the dialogs; they live as long as the app too: out of the
        collector's way."""
        from .screens.main import import_dialogs

        await main.listed.wait()
        await self.backend.warm()
        await asyncio.to_thread(import_dialogs)
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
        if self.backend is not None:
            self.backend.note_ui_closed()  # the next UI after a while says what happened meanwhile
            await self.backend.close()
