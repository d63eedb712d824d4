"""The settings dialog: every setting `convtui config show` lists (model, API
key, base URL, confirmation mode, limits and timeouts, the command sandbox,
server, theme, mouse and keymap), validated by the
`Settings` model itself, plus a "Test connection" button that asks the model
for an answer without leaving the dialog."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, LoadingIndicator, Select, Switch

from ..backend.errors import ConvtuiError
from ..backend.remotes import Remote
from ..backend.settings import THEME_NAMES, Settings, display_value, mask_secret, plain_words
from ..terminal_text import one_line
from ..widgets.no_layout import KeysFooter
from .confirm import ConfirmScreen
from .invalid_field import mark_invalid_field

# The settings the dialog edits as text, with their labels, in form order.
TEXT_FIELDS: dict[str, str] = {
    "llm_model": "Model",
    "llm_api_key": "API key",
    "llm_base_url": "Base URL",
    "max_iterations": "Max iterations",
    "max_budget_per_conversation": "Budget (USD)",
    "max_concurrent_loops": "Max loops",
    "command_timeout": "Cmd timeout (s)",
    "command_soft_timeout": "Cmd quiet (s)",
    "sandbox_filesystem": "Sandbox shows",
    "command_max_processes": "Cmd processes",
    "command_cpu_seconds": "Cmd CPU (s)",
    "command_memory_mb": "Cmd memory (MiB)",
    "llm_timeout": "LLM timeout (s)",
    "conversation_max_age_days": "Hide idle (days)",
    "away_minutes": "Away (minutes)",
    "notify_on": "Alert on",
    "notify_method": "Alert by",
}
# Below the text fields: the look and the keys of the UI.
KEYMAP_FIELD = {"keymap": "Keymap (JSON)"}
EDITED_FIELDS = (
    *TEXT_FIELDS, "confirmation_mode", "server", "sandbox", "sandbox_network", "theme", "mouse", *KEYMAP_FIELD
)  # fmt: skip
LABELS = {
    **TEXT_FIELDS,
    "confirmation_mode": "Confirm actions",
    "server": "Server",
    "sandbox": "Sandbox",
    "sandbox_network": "Sandbox network",
    "theme": "Theme",
    "mouse": "Mouse",
    **KEYMAP_FIELD,
}
SWITCH_MEANINGS = {
    "confirmation_mode": ("on: ask before commands and file writes", "off: run commands without asking"),
    "server": ("on: loops run in convtui serve and outlive the UI", "off: loops end with the UI (next start)"),
    "sandbox": ("on: commands run in a bubblewrap sandbox", "off: commands run unsandboxed on this machine"),
    "sandbox_network": ("on: sandboxed commands reach the network", "off: sandboxed commands have no network"),
    "mouse": ("on: the UI takes the mouse (from the next start)", "off: the terminal selects text (next start)"),
}


def shown_value(value: Any) -> str:
    """A setting as the Input shows it: '' for None, 120.0 as '120'."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class SettingsScreen(ModalScreen[dict | None]):
    """Edit settings.

    Dismisses with a dict of the settings that changed (name -> validated
    value; `llm_api_key` appears, as a SecretStr, only when a new key was
    typed), an empty dict when nothing changed, or None on Esc (which asks
    first when something was edited).

    `settings` are the settings to edit, or a coroutine function that loads
    them: the dialog opens at once and fills its fields when they arrive
    (before it takes keys: the app hands a key over once the screen that the
    key before it opened has mounted).

    `test_connection(values)` receives the settings as edited (all of them,
    as `Settings.model_dump()` gives them) and returns a one-line answer; its
    exception's text is shown as an error.
    """

    CSS_PATH = "dialogs.tcss"
    DEFAULT_CLASSES = "dialog"
    AUTO_FOCUS = "#llm_model"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="settings.save"),
        Binding("ctrl+t", "test_connection", "Test connection", id="settings.test"),
        Binding("escape", "cancel", "Cancel", id="settings.cancel"),
    ]

    def __init__(
        self,
        settings: Settings | Callable[[], Awaitable[Settings]],
        test_connection: Callable[[dict], Awaitable[str]],
        remotes: Callable[[], Awaitable[list[Remote]]] | None = None,
        test_remote: Callable[[str], Awaitable[str]] | None = None,
    ) -> None:
        """`remotes` lists the OpenHands servers added (`convtui remote
        add`), each with a button that `test_remote`s it."""
        super().__init__()
        self._load = None if isinstance(settings, Settings) else settings
        self.settings = settings if isinstance(settings, Settings) else Settings()
        self._test_connection = test_connection
        self._remotes = remotes
        self._test_remote = test_remote
        self._remote_names: list[str] = []
        self._as_opened: dict[str, Any] = {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog--box") as box:
            box.border_title = "Settings"
            # Scrolls when the terminal is too short for every setting (80×24).
            with VerticalScroll(classes="dialog--form -dense -scrolls"):
                for name, label in TEXT_FIELDS.items():
                    yield Label(label)
                    yield self._input(name)
                    if name == "llm_base_url":
                        yield from self._switch("confirmation_mode")
                    if name == "command_timeout":
                        yield from self._switch("sandbox")
                        yield from self._switch("sandbox_network")
                yield from self._switch("server")
                yield Label(LABELS["theme"])
                yield Select(
                    [(name, name) for name in THEME_NAMES],
                    value=self.settings.theme,
                    allow_blank=False,
                    compact=True,
                    id="theme",
                    tooltip=Settings.model_fields["theme"].description,
                )
                yield from self._switch("mouse")
                yield Label(LABELS["keymap"])
                yield Input(
                    display_value("keymap", self.settings),
                    placeholder='{"new": "ctrl+n"}',
                    id="keymap",
                    compact=True,
                    tooltip=Settings.model_fields["keymap"].description,
                )
                if self._remotes is not None:
                    yield Label("OpenHands")
                    yield Vertical(id="remotes")
            with Horizontal(id="testing", classes="dialog--progress"):
                yield LoadingIndicator()
                yield Label("testing…")
            yield Label("", id="status", classes="dialog--status")
            with Horizontal(classes="dialog--buttons"):
                yield Button("Test connection", id="test")
                yield Button("Save", variant="primary", id="save")
                yield Button("Cancel", id="cancel")
        yield KeysFooter()

    def _switch(self, name: str) -> ComposeResult:
        yield Label(LABELS[name])
        with Horizontal(classes="dialog--switch-row"):
            yield Switch(getattr(self.settings, name), id=name)
            yield Label(id=f"{name}_meaning")

    def _input(self, name: str) -> Input:
        field = Settings.model_fields[name]
        if name == "llm_api_key":
            # The key is never put in the Input; empty keeps the current one.
            return Input(
                placeholder=self._key_placeholder(),
                password=True,
                id=name,
                compact=True,
                tooltip=field.description,
            )
        return Input(
            shown_value(getattr(self.settings, name)),
            id=name,
            compact=True,
            tooltip=field.description,
        )

    def _key_placeholder(self) -> str:
        current = mask_secret(self.settings.api_key())
        return f"{current} (type to replace)" if current else "not set"

    async def on_mount(self) -> None:
        self.query_one("#testing").display = False
        if self._load is not None:
            try:
                self.settings = await self._load()
            except ConvtuiError as error:
                self.app.notify(str(error), title="Settings not loaded", severity="error")
                self.dismiss(None)
                return
            self._fill()
        for name in SWITCH_MEANINGS:
            self._describe_switch(name)
        self._as_opened = self._form()
        if self._remotes is not None:
            await self._list_remotes(self._remotes)

    async def _list_remotes(self, remotes: Callable[[], Awaitable[list[Remote]]]) -> None:
        """A row per OpenHands server added: its Test button, address and key source."""
        box = self.query_one("#remotes", Vertical)
        try:
            found = await remotes()
        except ConvtuiError as error:
            await box.mount(Label(Content(one_line(str(error))), classes="remote--none"))
            return
        self._remote_names = [remote.name for remote in found]
        if not found:
            await box.mount(Label("none (convtui remote add NAME URL adds one)", classes="remote--none"))
        for number, remote in enumerate(found):
            row = Horizontal(classes="remote--row")
            await box.mount(row)
            await row.mount(
                Button(f"Test {remote.name}", id=f"remote-{number}", compact=True),
                Label(Content(one_line(f"{remote.url} · key {remote.key_source()}"))),
            )

    @on(Button.Pressed, ".remote--row Button")
    def _remote_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        name = self._remote_names[int(str(event.button.id).removeprefix("remote-"))]
        self._run_remote_test(name)

    @work(exclusive=True, group="settings-test-connection")
    async def _run_remote_test(self, name: str) -> None:
        await self._show_test(self._test_remote(name))

    def _fill(self) -> None:
        """Show the loaded settings in the fields composed with defaults."""
        for name in TEXT_FIELDS:
            field = self.query_one(f"#{name}", Input)
            if name == "llm_api_key":
                field.placeholder = self._key_placeholder()
            else:
                field.value = shown_value(getattr(self.settings, name))
        for name in SWITCH_MEANINGS:
            self.query_one(f"#{name}", Switch).value = getattr(self.settings, name)
        self.query_one("#theme", Select).value = self.settings.theme
        self.query_one("#keymap", Input).value = display_value("keymap", self.settings)

    def _form(self) -> dict[str, Any]:
        """What the fields hold now, as typed."""
        typed: dict[str, Any] = {name: self.query_one(f"#{name}", Input).value for name in TEXT_FIELDS}
        for name in SWITCH_MEANINGS:
            typed[name] = self.query_one(f"#{name}", Switch).value
        typed["theme"] = self.query_one("#theme", Select).value
        typed["keymap"] = self.query_one("#keymap", Input).value
        return typed

    @property
    def edited(self) -> bool:
        return self._form() != self._as_opened

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        if event.switch.id in SWITCH_MEANINGS:
            self._describe_switch(event.switch.id)

    def _describe_switch(self, name: str) -> None:
        """Say in words what the switch means, so it reads without colour."""
        on_meaning, off_meaning = SWITCH_MEANINGS[name]
        meaning = on_meaning if self.query_one(f"#{name}", Switch).value else off_meaning
        self.query_one(f"#{name}_meaning", Label).update(meaning)

    def edited_settings(self) -> Settings:
        """The settings as the form has them. Raises ValidationError."""
        values: dict[str, Any] = self.settings.model_dump()
        for name in TEXT_FIELDS:
            typed = self.query_one(f"#{name}", Input).value
            if name == "llm_api_key":
                if typed.strip():
                    values[name] = typed
            elif not typed.strip() and Settings.model_fields[name].default is None:
                values[name] = None
            else:
                values[name] = typed
        for name in SWITCH_MEANINGS:
            values[name] = self.query_one(f"#{name}", Switch).value
        values["theme"] = self.query_one("#theme", Select).value
        values["keymap"] = _keymap_typed(self.query_one("#keymap", Input).value)
        return Settings.model_validate(values)

    def changed_values(self, edited: Settings) -> dict[str, Any]:
        """The settings that differ from the ones the dialog opened with."""
        changed = {
            name: getattr(edited, name)
            for name in EDITED_FIELDS
            if name != "llm_api_key" and getattr(edited, name) != getattr(self.settings, name)
        }
        if self.query_one("#llm_api_key", Input).value.strip():
            changed["llm_api_key"] = edited.llm_api_key
        return changed

    def _validated(self) -> Settings | None:
        """The edited settings, or None after showing why they are refused."""
        try:
            edited = self.edited_settings()
        except ValidationError as error:
            detail = error.errors()[0]
            name = str(detail["loc"][0]) if detail["loc"] else ""
            where = LABELS.get(name, name)
            self._show_status(f"{where}: {plain_words(detail)}" if where else plain_words(detail), error=True)
            self._mark_invalid(detail["loc"])
            return None
        self._mark_invalid(())
        return edited

    @on(Button.Pressed, "#save")
    @on(Input.Submitted)
    def action_save(self) -> None:
        edited = self._validated()
        if edited is not None:
            self.dismiss(self.changed_values(edited))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Esc: close, once the user agreed to lose what they typed."""
        if not self.edited:
            self.dismiss(None)
            return

        def answered(discard: bool | None) -> None:
            if discard:
                self.dismiss(None)

        self.app.push_screen(
            ConfirmScreen("Discard your changes to the settings?", "Discard", "Keep editing", default_yes=False),
            answered,
        )

    @on(Button.Pressed, "#test")
    def action_test_connection(self) -> None:
        edited = self._validated()
        if edited is not None:
            self._run_connection_test(edited.model_dump())

    @work(exclusive=True, group="settings-test-connection")
    async def _run_connection_test(self, values: dict[str, Any]) -> None:
        await self._show_test(self._test_connection(values))

    async def _show_test(self, test: Awaitable[str]) -> None:
        """Await a test; show its answer or its error, one line."""
        self._show_status("", error=False)
        self.query_one("#testing").display = True
        try:
            answer = await test
        except Exception as error:  # shown to the user, never as a traceback
            self._show_status(one_line(str(error)) or type(error).__name__, error=True)
        else:
            self._show_status(one_line(str(answer)), error=False)
        self.query_one("#testing").display = False

    def _show_status(self, message: str, *, error: bool) -> None:
        status = self.query_one("#status", Label)
        status.update(Content(message))
        status.set_class(error, "-error")
        status.set_class(bool(message) and not error, "-ok")

    def _mark_invalid(self, location: tuple[object, ...]) -> None:
        mark_invalid_field(self, location)


def _keymap_typed(text: str) -> Any:
    """The keymap field's JSON ('' is no remapping). Text that is not JSON is
    passed on as is, for the Settings model to refuse in words."""
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text
