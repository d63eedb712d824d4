"""What a file-write action would change, for the person asked to approve
it: a unified diff of the file (a new file's diff from /dev/null holds its
whole content), computed without writing anything."""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from .errors import InvalidInput
from .redaction import Redactor

if TYPE_CHECKING:
    from .runtime import Workspace


def edit_diff(workspace: Workspace, args: dict[str, Any], redact: Redactor) -> list[str]:
    """The unified diff lines (no line ends) of the edit action with these
    `args` (command create, str_replace or insert; path; ...), secrets
    redacted. Raises InvalidInput (or another ConvtuiError) when the edit
    could not be carried out as it stands, e.g. old_str is not in the file."""
    command, path = args.get("command"), args.get("path")
    if not isinstance(command, str) or not isinstance(path, str):
        raise InvalidInput("the edit names no command or path")
    shown, before, after = workspace.planned_edit(
        command,
        path,
        file_text=args.get("file_text"),
        old_str=args.get("old_str"),
        new_str=args.get("new_str"),
        insert_line=args.get("insert_line"),
    )
    return diff_lines(shown, before, after, redact)


def diff_lines(shown: str, before: str | None, after: str, redact: Redactor) -> list[str]:
    """The unified diff lines (no line ends) from `before` (None: a new
    file) to `after` of the file named `shown`, secrets redacted."""
    lines = difflib.unified_diff(
        (before or "").splitlines(),
        after.splitlines(),
        fromfile="/dev/null" if before is None else shown,
        tofile=shown,
        lineterm="",
    )
    return [redact(line) for line in lines]
