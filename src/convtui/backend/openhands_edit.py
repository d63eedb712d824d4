"""What an OpenHands file-editor action awaiting approval would change, for
the person asked to approve it on a remote server: the file's text after
the edit, computed by the rules of OpenHands' own editor (openhands-tools'
file_editor), which is what carries it out there:

- `create` refuses a file that exists;
- `str_replace` needs old_str exactly once (when it is not found, the
  editor looks again for old_str without its surrounding white space), and
  refuses a new_str equal to old_str;
- `insert` puts each line of new_str (split at newlines, each ending in
  one) after line `insert_line` (0: at the top);
- the file is read as a text file (its newlines made "\n") and written back so.
"""

from __future__ import annotations

import io
from typing import Any

from .errors import InvalidInput

EDITS = ("create", "str_replace", "insert")


def planned_text(args: dict[str, Any], before: str | None) -> str:
    """The text of the file at args["path"] after the edit, `before` being
    its text now (None: no such file). Raises InvalidInput, in the editor's
    own terms, when the editor would refuse the edit."""
    command, path = args.get("command"), args.get("path")
    if command not in EDITS or not isinstance(path, str):
        raise InvalidInput("the action is no file edit with a path")
    if command == "create":
        if before is not None:
            raise InvalidInput(f"{path} exists already: OpenHands' editor refuses to create it again")
        return _text(args, "file_text")
    if before is None:
        raise InvalidInput(f"{path} does not exist on the server: the editor will refuse the {command}")
    before = io.StringIO(before, newline=None).read()  # as the editor reads a file: newlines made "\n"
    if command == "str_replace":
        return _replaced(before, path, _text(args, "old_str"), _text(args, "new_str"))
    return _inserted(before, path, args.get("insert_line"), _text(args, "new_str"))


def _text(args: dict[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise InvalidInput(f"the edit gives no {name}")
    return value


def _replaced(text: str, path: str, old: str, new: str) -> str:
    if new == old:
        raise InvalidInput("old_str and new_str are the same: the editor refuses the replacement")
    for looked_for in (old, old.strip()):
        count = text.count(looked_for) if looked_for else 0
        if count > 1:
            raise InvalidInput(f"old_str occurs {count} times in {path}: the editor refuses an ambiguous replacement")
        if count == 1:
            start = text.index(looked_for)
            return text[:start] + new + text[start + len(looked_for) :]
    raise InvalidInput(f"old_str does not appear verbatim in {path}: the editor will replace nothing")


def _inserted(text: str, path: str, insert_line: Any, new: str) -> str:
    pieces = text.split("\n")  # (at "\n" only, as a file is read; splitlines would cut at form feeds too)
    lines = [piece + "\n" for piece in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
    if not isinstance(insert_line, int) or isinstance(insert_line, bool) or not 0 <= insert_line <= len(lines):
        raise InvalidInput(f"insert_line {insert_line!r} is not a line of {path} (0 to {len(lines)})")
    added = [line + "\n" for line in new.split("\n")]
    return "".join(lines[:insert_line] + added + lines[insert_line:])
