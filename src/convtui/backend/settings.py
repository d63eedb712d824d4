"""Settings: the model, its API key and base URL, confirmation mode, limits,
and the look and keys of the terminal UI (theme, mouse, keymap).

Kept in `settings.json` (mode 0600) in the data directory; environment
variables override the file. The API key is a SecretStr: it never appears in
a repr, a log line or `config show` except masked."""

from __future__ import annotations

import logging
import re
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo, field_validator

from .alerts import ALERT_KINDS, ALERT_METHODS, parse_kinds
from .durable_files import atomic_write
from .errors import CorruptFile, InvalidInput, StorageError, describe_os_error
from .models import find_control_character
from .sandbox import FILESYSTEM_MODES

log = logging.getLogger(__name__)

# The themes the UI offers: those of Textual's that keep every text readable
# in truecolor, 256 and 16 colours (tests/ui/test_contrast.py checks each;
# nord, dracula, monokai, gruvbox, tokyo-night, solarized, atom-one and the
# ansi themes do not).
THEME_NAMES = (
    "textual-dark",
    "textual-light",
    "catppuccin-mocha",
    "catppuccin-macchiato",
    "catppuccin-frappe",
    "flexoki",
    "rose-pine",
    "rose-pine-moon",
    "rose-pine-dawn",
)
DEFAULT_THEME = "textual-dark"
# A binding id (a MainScreen binding such as "new", or a dialog's "help.close")
# and its keys: Textual key names joined by commas, e.g. "ctrl+n,insert".
BINDING_ID = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*")
KEY = re.compile(r"([a-z]+\+)*[^\s,+]+")

ENVIRONMENT_OVERRIDES = {
    "llm_model": "CONVTUI_LLM_MODEL",
    "llm_api_key": "CONVTUI_LLM_API_KEY",
    "llm_base_url": "CONVTUI_LLM_BASE_URL",
}


class Settings(BaseModel):
    # inf and nan would be written as null and break the file for good.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    llm_model: str | None = Field(default=None, description="litellm model name, e.g. openai/gpt-4o")
    llm_api_key: SecretStr | None = Field(default=None, description="API key for the model")
    llm_base_url: str | None = Field(default=None, description="OpenAI-compatible base URL")
    confirmation_mode: bool = Field(default=True, description="ask before commands and file writes")
    max_iterations: int = Field(default=50, ge=1, le=10_000, description="agent steps per user message")
    max_budget_per_conversation: float | None = Field(
        default=None, ge=0, description="stop a conversation once its cost reaches this (USD)"
    )
    max_concurrent_loops: int = Field(default=20, ge=1, le=1_000, description="loops running at once")
    command_timeout: float = Field(default=120.0, gt=0, le=86_400, description="seconds a shell command may run")
    command_soft_timeout: float = Field(
        default=15.0, gt=0, le=86_400,
        description="seconds without output after which a command returns and keeps running (the agent may wait, type or interrupt)",
    )  # fmt: skip
    sandbox: bool = Field(
        default=True,
        description="commands run in a bubblewrap sandbox (off, or where none can run: in the real workspace, not sandboxed)",
    )
    sandbox_network: bool = Field(default=True, description="sandboxed commands reach the network (off: only their own loopback)")
    sandbox_filesystem: str = Field(
        default="read-only",
        description="what sandboxed commands see of the machine: read-only (all of it, credentials hidden) or system (system directories only)",
    )
    command_max_processes: int = Field(default=512, ge=8, le=1_000_000, description="processes one command may run at once")
    command_cpu_seconds: int = Field(default=3600, ge=1, le=10_000_000, description="CPU seconds each process of a command may use")
    command_memory_mb: int = Field(default=8192, ge=64, le=16_777_216, description="MiB of memory each command may use")
    llm_timeout: float = Field(default=120.0, gt=0, le=3_600, description="seconds to wait for the model")
    conversation_max_age_days: float = Field(
        default=10.0, gt=0, le=36_500, description="the list hides conversations idle longer than this"
    )

    server: bool = Field(
        default=True,
        description="loops run in a background convtui server and outlive the terminal (off: in the UI or command)",
    )

    notify_on: str = Field(
        default="waiting,finished,error",
        description="alert when a conversation you are not looking at starts waiting, finishes, fails (comma list; none)",
    )
    notify_method: str = Field(
        default="bell,osc",
        description="how alerts reach the terminal: bell, osc (OSC 9 and 777 notifications), osc9, osc777 (comma list; none)",
    )

    away_minutes: float = Field(
        default=10.0, ge=0, le=525_600,
        description="opening the UI this long after the last one closed lists what happened meanwhile (0: never)",
    )  # fmt: skip

    theme: str = Field(default=DEFAULT_THEME, description="colour theme of the UI: " + ", ".join(THEME_NAMES))
    mouse: bool = Field(default=True, description="the UI takes the mouse (off: the terminal selects text)")
    keymap: dict[str, str] = Field(
        default_factory=dict, description='keys for binding ids, as JSON: {"new": "ctrl+n", "quit": "q,ctrl+q"}'
    )

    @field_validator("notify_on")
    @classmethod
    def _notify_on(cls, value: str) -> str:
        return ",".join(parse_kinds(value, ALERT_KINDS, "alert kind")) or "none"

    @field_validator("notify_method")
    @classmethod
    def _notify_method(cls, value: str) -> str:
        return ",".join(parse_kinds(value, ALERT_METHODS, "alert method")) or "none"

    @property
    def alert_kinds(self) -> tuple[str, ...]:
        return parse_kinds(self.notify_on, ALERT_KINDS, "alert kind")

    @property
    def alert_methods(self) -> tuple[str, ...]:
        return parse_kinds(self.notify_method, ALERT_METHODS, "alert method")

    @field_validator("sandbox_filesystem", "theme")
    @classmethod
    def _one_of(cls, value: str, info: ValidationInfo) -> str:
        value = value.strip()
        known = FILESYSTEM_MODES if info.field_name == "sandbox_filesystem" else THEME_NAMES
        if value not in known:
            what = "theme" if info.field_name == "theme" else "file system mode"
            raise ValueError(f"unknown {what} {value!r}; known: {', '.join(known)}")
        return value

    @field_validator("keymap")
    @classmethod
    def _keymap(cls, value: dict[str, str]) -> dict[str, str]:
        """The shape of each entry; which ids exist is the UI's to say."""
        checked = {}
        for binding_id, keys in value.items():
            if not BINDING_ID.fullmatch(binding_id):
                raise ValueError(f"binding id {binding_id!r} is not a name like 'new' or 'help.close'")
            keys = ",".join(key.strip() for key in keys.split(","))
            if not all(KEY.fullmatch(key) for key in keys.split(",")):
                raise ValueError(f"keys {keys!r} for {binding_id!r} are not key names joined by commas, e.g. 'ctrl+n,f5'")
            checked[binding_id] = keys
        return checked

    @field_validator("llm_model", "llm_base_url")
    @classmethod
    def _plain_text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if find_control_character(value) is not None:
            raise ValueError("contains a control character")
        return value or None

    @field_validator("llm_base_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("llm_api_key")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        return clean_secret(value)

    def api_key(self) -> str | None:
        return self.llm_api_key.get_secret_value() if self.llm_api_key else None


def clean_secret(value: SecretStr | None) -> SecretStr | None:
    """An API key stripped (None when empty); raises ValueError on inner
    whitespace or a control character."""
    if value is None:
        return None
    secret = value.get_secret_value().strip()
    if find_control_character(secret) is not None or " " in secret:
        raise ValueError("contains whitespace or a control character")
    return SecretStr(secret) if secret else None


SETTING_NAMES = tuple(Settings.model_fields)


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def plain_words(detail: Mapping[str, Any]) -> str:
    """What one pydantic error says about a setting, in plain words
    ("must be 1 or more", not "Input should be greater than or equal to 1")."""
    kind, limits = detail.get("type", ""), detail.get("ctx") or {}
    if kind == "greater_than_equal":
        return f"must be {_number(limits['ge'])} or more"
    if kind == "greater_than":
        return f"must be more than {_number(limits['gt'])}"
    if kind == "less_than_equal":
        return f"must be {_number(limits['le'])} or less"
    if kind == "less_than":
        return f"must be less than {_number(limits['lt'])}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "must be a whole number"
    if kind in ("float_parsing", "float_type"):
        return "must be a number"
    if kind == "finite_number":
        return "must be a finite number"
    if kind in ("bool_parsing", "bool_type"):
        return "must be on or off"
    return str(detail.get("msg", "is not valid")).removeprefix("Value error, ")


def describe_settings_error(error: ValidationError) -> str:
    """One line naming the first setting at fault: 'max_iterations: must be 1 or more'."""
    detail = error.errors()[0]
    where = ".".join(str(part) for part in detail.get("loc", ()))
    return f"{where}: {plain_words(detail)}" if where else plain_words(detail)


_MASKED = re.compile(r"\*{8}|.{3}\.\.\..{4}", re.DOTALL)


def mask_secret(secret: str | None) -> str:
    """'sk-...wxyz' style: enough to tell two keys apart, never the key. A
    value masked already (a server's settings arrive so) stays as it is."""
    if not secret:
        return ""
    if _MASKED.fullmatch(secret):
        return secret
    if len(secret) < 12:
        return "*" * 8
    return f"{secret[:3]}...{secret[-4:]}"


def masked(settings: Settings) -> dict[str, Any]:
    """The settings as JSON-ready data, the API key masked (never the key)."""
    data = settings.model_dump(mode="json")
    data["llm_api_key"] = mask_secret(settings.api_key()) or None
    return data


def display_value(name: str, settings: Settings) -> str:
    value = getattr(settings, name)
    if name == "llm_api_key":
        return mask_secret(settings.api_key())
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, dict):
        return orjson.dumps(value).decode() if value else ""
    return str(value)


def parse_setting(name: str, raw: str) -> Any:
    """A setting's value from its text form on the command line ('' resets
    it to the default), ready to validate or to send to a server as JSON.
    Raises InvalidInput for an unknown name or unreadable text; the limits
    are Settings' to check."""
    if name not in Settings.model_fields:
        raise InvalidInput(f"unknown setting {name!r}; known: {', '.join(SETTING_NAMES)}")
    field = Settings.model_fields[name]
    if raw.strip() == "" and not field.is_required():
        return field.get_default(call_default_factory=True)
    if field.annotation is bool:
        lowered = raw.strip().lower()
        if lowered in ("on", "true", "yes", "1"):
            return True
        if lowered in ("off", "false", "no", "0"):
            return False
        raise InvalidInput(f"{name}: expected on or off, got {raw!r}")
    if name == "keymap":
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidInput(f'keymap: expected JSON like {{"new": "ctrl+n"}}, got {raw!r}') from None
    return raw


# The settings an experiment config (`exp-config`) may change for one
# conversation: how its agent and its commands run. Not the key, the base
# URL, the server or the look of the UI.
EXPERIMENT_SETTINGS = (
    "llm_model", "confirmation_mode", "max_iterations", "max_budget_per_conversation", "command_timeout",
    "command_soft_timeout", "llm_timeout", "sandbox_network", "sandbox_filesystem", "command_max_processes",
    "command_cpu_seconds", "command_memory_mb",
)  # fmt: skip


def experiment_values(config: Mapping[str, str]) -> dict[str, Any]:
    """The settings an experiment config sets, validated. Raises InvalidInput
    naming the first key that is not such a setting or a value out of range."""
    values: dict[str, Any] = {}
    for name, raw in config.items():
        if name not in EXPERIMENT_SETTINGS:
            raise InvalidInput(
                f"exp-config: {name!r} is not a setting an experiment may change; those are: {', '.join(EXPERIMENT_SETTINGS)}"
            )
        try:
            values[name] = getattr(Settings.model_validate({name: parse_setting(name, str(raw))}), name)
        except ValidationError as error:
            raise InvalidInput(f"exp-config: {describe_settings_error(error)}") from None
    return values


def with_experiment(settings: Settings, config: Mapping[str, str] | None) -> Settings:
    """`settings` with a conversation's experiment config applied. As
    OpenHands does with attributes its agent lacks, what cannot apply is
    left out (logged): a config stored through the API is not checked."""
    values: dict[str, Any] = {}
    for name, raw in (config or {}).items():
        try:
            values.update(experiment_values({name: raw}))
        except InvalidInput as error:
            log.warning("%s", error)
    return settings.model_copy(update=values) if values else settings


class SettingsStore:
    def __init__(self, path: Path, environ: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self._environ = os.environ if environ is None else environ

    def load_file(self) -> Settings:
        """The settings as saved, without environment overrides."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Settings()
        except OSError as error:
            raise StorageError(describe_os_error(error, "read")) from error
        self._warn_if_readable_by_others()
        try:
            return Settings.model_validate(orjson.loads(raw))
        except orjson.JSONDecodeError as error:
            raise CorruptFile(self.path, f"invalid JSON: {error}") from None
        except ValidationError as error:
            raise CorruptFile(self.path, describe_settings_error(error)) from None

    def load(self) -> Settings:
        """The settings in force: the file, then the environment on top."""
        settings = self.load_file()
        overrides = {
            name: self._environ[variable]
            for name, variable in ENVIRONMENT_OVERRIDES.items()
            if self._environ.get(variable)
        }
        if not overrides:
            return settings
        try:
            return Settings.model_validate({**settings.model_dump(), **overrides})
        except ValidationError as error:
            raise InvalidInput(f"environment override {describe_settings_error(error)}") from None

    def overridden(self) -> dict[str, str]:
        """Setting name -> the environment variable that overrides it."""
        return {
            name: variable
            for name, variable in ENVIRONMENT_OVERRIDES.items()
            if self._environ.get(variable)
        }

    def save(self, settings: Settings) -> None:
        document = settings.model_dump(mode="json")
        document["llm_api_key"] = settings.api_key()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StorageError(describe_os_error(error, "create")) from error
        atomic_write(self.path, orjson.dumps(document, option=orjson.OPT_INDENT_2), mode=0o600)
        os.chmod(self.path, 0o600)

    def set(self, name: str, raw: str) -> Settings:
        """Validate and save one setting from its text form. Raises InvalidInput
        naming the setting; the file is unchanged then."""
        value = parse_setting(name, raw)
        settings = self.load_file()
        try:
            updated = Settings.model_validate({**settings.model_dump(), name: value})
        except ValidationError as error:
            raise InvalidInput(describe_settings_error(error)) from None
        self.save(updated)
        return updated

    def update(self, values: dict[str, Any]) -> Settings:
        """Validate and save several settings at once (the settings dialog)."""
        settings = self.load_file()
        try:
            updated = Settings.model_validate({**settings.model_dump(), **values})
        except ValidationError as error:
            raise InvalidInput(describe_settings_error(error)) from None
        self.save(updated)
        return updated

    def _warn_if_readable_by_others(self) -> None:
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
        except OSError:
            return
        if mode & 0o077:
            log.warning("%s is readable by other users (mode %o); run: chmod 600 %s", self.path, mode, self.path)
