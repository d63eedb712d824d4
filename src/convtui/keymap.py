"""Keys remapped in settings.json (`keymap`): Textual's keymap, binding id ->
keys, checked against the bindings that carry an id and against the key
names Textual knows, so that a typo is one clear line, not a key that
silently does nothing."""

from __future__ import annotations

from difflib import get_close_matches
from functools import cache

from textual.app import App
from textual.binding import Binding
from textual.keys import KEY_ALIASES, Keys, key_to_character

MODIFIERS = ("ctrl", "shift", "alt", "meta", "super", "hyper")
_KEY_NAMES = {key.value for key in Keys} | set(KEY_ALIASES) | {"space", "tab", "enter", "escape", "backspace"}


@cache
def remappable_bindings() -> dict[str, Binding]:
    """Every binding with an id, by id: the main screen's, its widgets' and
    each dialog's ("help.close", "settings.save", ...)."""
    from .screens.confirm import ConfirmScreen
    from .screens.confirm_delete import ConfirmDeleteScreen
    from .screens.digest import DigestScreen
    from .screens.help import HelpScreen
    from .screens.inbox import InboxScreen
    from .screens.main import MainScreen
    from .screens.new_conversation import NewConversationScreen
    from .screens.reject_reason import RejectReasonScreen
    from .screens.remember import RememberPromptScreen
    from .screens.rename import RenameScreen
    from .screens.settings import SettingsScreen
    from .widgets.conversation_list import ConversationList
    from .widgets.event_log import EventLog

    owners = (
        MainScreen,
        ConversationList,
        EventLog,
        NewConversationScreen,
        RenameScreen,
        ConfirmDeleteScreen,
        ConfirmScreen,
        SettingsScreen,
        HelpScreen,
        RememberPromptScreen,
        InboxScreen,
        RejectReasonScreen,
        DigestScreen,
    )
    return {
        binding.id: binding
        for owner in owners
        for binding in owner.BINDINGS
        if isinstance(binding, Binding) and binding.id
    }


def is_key(key: str) -> bool:
    """Whether Textual can deliver `key` ("ctrl+n", "f5", "question_mark", "?")."""
    *modifiers, name = key.split("+")
    if not name or any(modifier not in MODIFIERS for modifier in modifiers):
        return False
    if len(name) == 1:
        return name.isprintable()
    return name in _KEY_NAMES or key_to_character(name) is not None


def checked_keymap(keymap: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The entries of `keymap` that name a binding and real keys, and a
    one-line error for each other entry."""
    if not keymap:
        return {}, []  # (the bindings' owners include every dialog: not imported for nothing at launch)
    known = remappable_bindings()
    usable: dict[str, str] = {}
    errors: list[str] = []
    for binding_id, keys in keymap.items():
        if binding_id not in known:
            close = get_close_matches(binding_id, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else " (the README lists the ids)"
            errors.append(f"keymap: no binding has the id {binding_id!r}{hint}")
            continue
        unknown = [key for key in keys.split(",") if not is_key(key.strip())]
        if unknown:
            errors.append(f"keymap: {binding_id!r}: {', '.join(map(repr, unknown))} is not a key Textual knows")
            continue
        usable[binding_id] = keys
    return usable, errors


def shown_keys(app: App, binding_id: str) -> str:
    """The keys of a binding as the footer shows them, with the app's keymap
    (`app.keymap`) applied: "n", "^n/f5", "F2"."""
    binding = remappable_bindings()[binding_id]
    keys = getattr(app, "keymap", {}).get(binding_id)
    if keys is None:
        if binding.key_display:
            return binding.key_display
        keys = binding.key
    return "/".join(app.get_key_display(binding.with_key(key.strip(), key_display=None)) for key in keys.split(","))
