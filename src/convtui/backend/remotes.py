"""Remotes: OpenHands servers whose conversations convtui manages
(`convtui remote add NAME URL`, then `convtui --remote NAME`). Kept in the
data directory's remotes.json, mode 0600: an API key is either read from an
environment variable named there, or stored there like the model's key;
it is never printed."""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from pydantic import BaseModel, SecretStr, ValidationError, field_validator

from .durable_files import atomic_write
from .errors import CorruptFile, InvalidInput, NotFound, StorageError, describe_os_error
from .settings import clean_secret, describe_settings_error, mask_secret

REMOTES_FILE = "remotes.json"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
VARIABLE_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class Remote(BaseModel):
    name: str
    url: str
    api_key_env: str | None = None
    api_key: SecretStr | None = None
    insecure: bool = False  # TLS certificates not verified (says so whenever used)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError("a remote's name is 1-32 of a-z, 0-9, - and _, starting with a letter or digit")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018  (raises on a port that is not a number)
        except ValueError as error:
            raise ValueError(f"is not a URL ({error})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host, e.g. https://openhands.example.com")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ValueError("must not hold a query, a fragment or credentials (an API key goes in --api-key-env)")
        return value

    @field_validator("api_key_env")
    @classmethod
    def _variable(cls, value: str | None) -> str | None:
        if value is not None and not VARIABLE_PATTERN.fullmatch(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        return clean_secret(value)

    def key(self) -> str | None:
        """The API key to send: the environment variable's value, else the
        stored key, else none. Raises InvalidInput when the variable named is unset."""
        if self.api_key_env is not None:
            value = os.environ.get(self.api_key_env, "").strip()
            if not value:
                raise InvalidInput(f"${self.api_key_env} is not set: remote {self.name!r} reads its API key from it")
            return value
        return self.api_key.get_secret_value() if self.api_key else None

    def key_source(self) -> str:
        """Where the key comes from, in words, never the key itself."""
        if self.api_key_env is not None:
            return f"${self.api_key_env}"
        if self.api_key is not None:
            return f"stored ({mask_secret(self.api_key.get_secret_value())})"
        return "none"


class RemotesStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / REMOTES_FILE

    def load(self) -> dict[str, Remote]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as error:
            raise StorageError(describe_os_error(error, "read")) from error
        try:
            entries = orjson.loads(raw)
            if not isinstance(entries, list):
                raise CorruptFile(self.path, "not a list of remotes")
            remotes = [Remote.model_validate(entry) for entry in entries]
        except orjson.JSONDecodeError as error:
            raise CorruptFile(self.path, f"invalid JSON: {error}") from None
        except ValidationError as error:
            raise CorruptFile(self.path, describe_settings_error(error)) from None
        return {remote.name: remote for remote in remotes}

    def get(self, name: str) -> Remote:
        remote = self.load().get(name)
        if remote is None:
            raise NotFound(f"no remote named {name!r} (`convtui remote list` shows them; `convtui remote add` adds one)")
        return remote

    def add(self, name: str, url: str, api_key_env: str | None = None, api_key: str | None = None, insecure: bool = False) -> Remote:
        """Validated and saved; raises InvalidInput (nothing saved) on bad input or a name in use."""
        if api_key_env is not None and api_key is not None:
            raise InvalidInput("give the API key either in an environment variable or to store, not both")
        try:
            remote = Remote(name=name, url=url, api_key_env=api_key_env, api_key=api_key, insecure=insecure)
        except ValidationError as error:
            raise InvalidInput(describe_settings_error(error)) from None
        remotes = self.load()
        if name in remotes:
            raise InvalidInput(f"a remote named {name!r} exists already (remove it first: convtui remote remove {name})")
        self._save([*remotes.values(), remote])
        return remote

    def remove(self, name: str) -> Remote:
        remotes = self.load()
        if name not in remotes:
            raise NotFound(f"no remote named {name!r} (`convtui remote list` shows them)")
        removed = remotes.pop(name)
        self._save(list(remotes.values()))
        return removed

    def _save(self, remotes: list[Remote]) -> None:
        document = [
            {**remote.model_dump(mode="json"), "api_key": remote.api_key.get_secret_value() if remote.api_key else None}
            for remote in remotes
        ]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, orjson.dumps(document, option=orjson.OPT_INDENT_2), mode=0o600)
            os.chmod(self.path, 0o600)
        except OSError as error:
            raise StorageError(describe_os_error(error, "write", self.path)) from error

