"""The errors the service raises. Each carries a one-line message meant for a
person; the CLI prints it and exits 1, the UI shows it as a notification."""

from __future__ import annotations

from pathlib import Path


class ConvtuiError(Exception):
    """Base of every error a user may see. str(error) is one line."""


class InvalidInput(ConvtuiError):
    """The input was refused; nothing was changed."""


class NotFound(ConvtuiError):
    """No conversation (or event) answers to the id given."""


class AmbiguousId(InvalidInput):
    """An id prefix matches more than one conversation."""


class PermissionDenied(ConvtuiError):
    """The conversation belongs to another user."""


class MissingSettings(ConvtuiError):
    """No model is configured, so no loop can talk to an LLM."""


class StorageError(ConvtuiError):
    """The data directory could not be read or written."""


class CorruptFile(StorageError):
    """A stored file does not parse. It is kept as it is, never overwritten."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(
            f"{path} is damaged ({reason}); it was left untouched: "
            f"run `convtui doctor` to inspect it and `convtui doctor --repair` to recover"
        )


def describe_os_error(error: OSError, action: str, path: object = None) -> str:
    """One line for an OSError, e.g. 'could not write /x: No space left on
    device'. `path` names the file when the error does not (write, fsync)."""
    where = error.filename or path
    where = f" {where}" if where else ""
    return f"could not {action}{where}: {error.strerror or error}"


def first_validation_error(error: Exception) -> str:
    """One line from a pydantic ValidationError: 'field: what is wrong'."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        details = errors()
        if details:
            first = details[0]
            where = ".".join(str(part) for part in first.get("loc", ()))
            message = str(first.get("msg", error)).removeprefix("Value error, ")
            return f"{where}: {message}" if where else message
    return str(error).splitlines()[0] if str(error) else type(error).__name__
