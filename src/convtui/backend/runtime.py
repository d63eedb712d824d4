"""The agent's workspace: the directory its tools act in, and the running of
shell commands there.

The agent sees the workspace as `/workspace`; `Workspace.resolve` maps such
paths to real ones and refuses anything that lands outside the root, symlinks
included. The file operations (`read`, `create`, `str_replace`, `insert`) are
blocking and meant to be called through `asyncio.to_thread`; `run` and `clone`
are coroutines whose subprocesses die with them (timeout or cancellation).

Commands run in a bubblewrap sandbox when the Workspace is given one
(sandbox.py: /workspace is the root, the rest of the machine read-only or
hidden, each command in its own PID namespace). Without one they run with
the user's privileges in the real root, `/workspace` in the command
rewritten to it: a command can then read or write anything the user can.
The path rules keep the *file tools* of a confused or hostile model inside
the workspace either way; the environment scrubbing and output redaction
keep the LLM keys out of what the model is told.

Every argument the model controls is checked; a bad one raises InvalidInput
(or a subclass) with a one-line message meant to be shown back to the model.
POSIX only (process groups, O_NOFOLLOW, dir_fd).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import math
import os
import re
import secrets as _random
import shutil
import signal
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cgroup_limits
from .cgroup_limits import CommandCgroup
from .command_process import (
    TERMINATE_GRACE_SECONDS,
    CommandProcess,
    CommandResult,
    group_members,  # noqa: F401 (the tests look at process groups through it)
    signal_group,
    within,
)
from .errors import ConvtuiError, InvalidInput
from .models import check_branch, find_control_character
from .redaction import PROVIDER_KEY_VARIABLES, Redactor
from .sandbox import Sandbox, SandboxPolicy, limited, rewrite_workspace_paths

log = logging.getLogger(__name__)

AGENT_ROOT = "/workspace"
MAX_FILE_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_OUTPUT = 30_000
MIN_MAX_OUTPUT = 200
LISTING_MAX_ENTRIES = 1_000
SNIPPET_CONTEXT_LINES = 4

# Commands never get the provider keys in their environment.
DEFAULT_REMOVED_VARIABLES = PROVIDER_KEY_VARIABLES

# Opening a directory component: never through a symlink, never inherited.
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK so that opening a FIFO the agent made does not hang a thread.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_TEMPORARY_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_OWNER_NAME = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
_REMOTE_URL = re.compile(r"^(https?|ssh|git|file)://\S+$|^[\w.-]+@[\w.-]+:\S+$")


class PathOutsideWorkspace(InvalidInput):
    """A path given by the agent lands outside the workspace root."""


class WorkspaceSetupError(ConvtuiError):
    """The workspace could not be prepared (e.g. the clone failed)."""


class CommandStillRunning(InvalidInput):
    """A command was asked for while the previous one still runs."""


# `cmd &` (not `a && b`): run in the background.
_TRAILING_AMPERSAND = re.compile(r"(?<!&)&\s*$")


def wants_background(command: str) -> bool:
    """Whether `command` ends with a lone `&`."""
    return bool(_TRAILING_AMPERSAND.search(command))


@dataclass(frozen=True)
class BackgroundProcess:
    """A command running detached in a workspace (see start_background)."""

    number: int
    command: str
    pid: int
    log: str  # its output, as the agent can read it
    started_at: float  # epoch seconds


@dataclass
class _Background:
    info: BackgroundProcess
    process: asyncio.subprocess.Process
    cgroup: CommandCgroup | None


def _quote(text: str, limit: int = 200) -> str:
    """`text` as a one-line repr, shortened: for error messages."""
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)


def repository_source(repository: str) -> str:
    """What `git clone` is given for `repository`: a git URL as is, `owner/name`
    as its GitHub https URL, anything else as a local path made absolute.

    Like models.check_repository, `owner/name` wins over a relative directory
    of the same name. A local path is made absolute so that it can never be
    read by git as an option or as a `transport::address` URL."""
    if not isinstance(repository, str) or not repository.strip():
        raise InvalidInput("repository is empty")
    value = repository.strip()
    bad = find_control_character(value)
    if bad is not None:
        raise InvalidInput(f"repository contains a control character (U+{ord(bad):04X})")
    if _REMOTE_URL.match(value):
        return value
    if _OWNER_NAME.match(value):
        return f"https://github.com/{value}.git"
    return os.path.abspath(os.path.expanduser(value))


def _split_lines(text: str) -> list[str]:
    """Lines as `cat -n` counts them: split on \\n only, a final newline does
    not start a new line, the empty text has no line."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def _numbered(lines: Sequence[str], first: int) -> str:
    """`lines` numbered from `first` the way `cat -n` does."""
    return "\n".join(f"{number:6}\t{line}" for number, line in enumerate(lines, start=first))


def _check_text_argument(value: object, name: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, not {type(value).__name__}")
    if "\x00" in value:
        raise InvalidInput(f"{name} contains a NUL character")
    return value


def _check_line_number(value: object, name: str) -> int:
    # bool is an int subclass; a model sending `true` made a mistake.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{name} must be an integer, not {_quote(str(value), 40)}")
    return value


@dataclass(frozen=True)
class _PlannedEdit:
    """An edit checked and computed, not yet written."""

    real: Path
    shown: str
    mode: int
    before: str
    after: str
    first_line: int  # the edited region, 1-based, in `after`
    last_line: int

    @property
    def data(self) -> bytes:
        data = self.after.encode("utf-8")
        _check_size(len(data), self.shown)
        return data


class Workspace:
    """The directory the agent's tools act in. See the module docstring."""

    def __init__(
        self,
        root: Path,
        hidden_secrets: Iterable[str] = (),
        removed_variables: Iterable[str] = DEFAULT_REMOVED_VARIABLES,
        sandbox: Sandbox | None = None,
        policy: SandboxPolicy | None = None,
    ) -> None:
        Path(root).mkdir(parents=True, exist_ok=True)
        # Compared against resolved paths, so resolved itself.
        self.root = Path(os.path.realpath(root))
        # Short secrets are redacted only as whole words (see redaction.py).
        self._redactor = Redactor(hidden_secrets)
        self._removed_variables = frozenset(removed_variables)
        self._shell = shutil.which("bash") or "/bin/sh"
        self.sandbox = sandbox
        # The limits apply sandboxed or not; the sandbox's own policy wins.
        self.policy = sandbox.policy if sandbox is not None else (policy or SandboxPolicy(enabled=False))
        # Background processes' logs: in the conversation's /tmp.
        self._logs = (sandbox.state if sandbox is not None else self.root.parent / "sandbox") / "tmp"
        self._foreground: CommandProcess | None = None  # left running by run(soft_timeout=...)
        self._stopped: CommandResult | None = None
        self._background: dict[int, _Background] = {}
        self._next_background = 1
        self._watchers: set[asyncio.Future[None]] = set()
        # Called when a background process starts, ends or is stopped.
        self.on_processes_changed: Callable[[], None] | None = None

    @property
    def sandboxed(self) -> bool:
        return self.sandbox is not None

    # -- paths ---------------------------------------------------------------------

    def resolve(self, path: str) -> Path:
        """The real path (symlinks followed, `..` collapsed) for an agent path:
        `/workspace[/...]` or a path relative to the root. Raises InvalidInput
        for an empty path or a NUL byte, PathOutsideWorkspace for any other
        absolute path or for a result outside the root.

        The result may not exist. File operations re-check it component by
        component when they open it, so a symlink swapped in afterwards does
        not redirect them."""
        if not isinstance(path, str):
            raise InvalidInput(f"path must be text, not {type(path).__name__}")
        if not path.strip():
            raise InvalidInput("path is empty")
        if "\x00" in path:
            raise InvalidInput(f"path {_quote(path)} contains a NUL character")
        if path == AGENT_ROOT or path.startswith(AGENT_ROOT + "/"):
            # lstrip: "/workspace//etc" must not become the absolute "/etc".
            candidate = self.root / path[len(AGENT_ROOT) :].lstrip("/")
        elif path.startswith("/"):
            raise PathOutsideWorkspace(
                f"{_quote(path)} is outside the workspace: use a path under {AGENT_ROOT} or a relative one"
            )
        else:
            candidate = self.root / path
        real = Path(os.path.realpath(candidate))
        if real != self.root and not real.is_relative_to(self.root):
            raise PathOutsideWorkspace(f"{_quote(path)} leads outside the workspace {AGENT_ROOT}")
        return real

    def display_path(self, real: Path) -> str:
        """`real` as the agent knows it: `/workspace/...`. A path outside the
        root (there should be none) is shown as it is."""
        real = Path(real)
        if real == self.root:
            return AGENT_ROOT
        if real.is_relative_to(self.root):
            return f"{AGENT_ROOT}/{real.relative_to(self.root).as_posix()}"
        return str(real)

    def _open_directory(self, real: Path, create: bool = False) -> int:
        """A descriptor of directory `real` (the root or inside it), opened one
        component at a time from the root, never through a symlink: whatever
        resolve() saw, a symlink found now fails with ELOOP/ENOTDIR instead of
        leading outside. With `create`, missing directories are made."""
        relative = real.relative_to(self.root)  # ValueError: a bug, not input
        self.root.mkdir(parents=True, exist_ok=True)  # `rm -rf /workspace` heals
        fd = os.open(self.root, _DIRECTORY_FLAGS)
        try:
            for part in relative.parts:
                if create:
                    try:
                        os.mkdir(part, 0o777, dir_fd=fd)
                    except FileExistsError:
                        pass
                child = os.open(part, _DIRECTORY_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_existing(self, real: Path, shown: str) -> int:
        """A read-only descriptor of the file or directory `real`."""
        try:
            if real == self.root:
                return self._open_directory(real)
            parent = self._open_directory(real.parent)
            try:
                return os.open(real.name, _READ_FLAGS, dir_fd=parent)
            finally:
                os.close(parent)
        except FileNotFoundError:
            raise InvalidInput(f"{shown} does not exist") from None
        except OSError as error:
            raise InvalidInput(_describe(error, "open", shown)) from None

    # -- reading -------------------------------------------------------------------

    def read(self, path: str, view_range: Sequence[int] | None = None) -> str:
        """A file's text numbered like `cat -n`, or lines `start..end` of it
        (1-based, inclusive; end -1 or past the last line means to the end).
        A directory gives its non-hidden entries up to 2 levels deep.
        Binary files (a NUL byte) and files over 10 MB are refused; bytes that
        are not UTF-8 are shown as U+FFFD. Hidden secrets are redacted."""
        real = self.resolve(path)
        shown = self.display_path(real)
        fd = self._open_existing(real, shown)
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                if view_range is not None:
                    raise InvalidInput(f"{shown} is a directory; view_range applies to files only")
                return self._redact(self._listing(fd, shown))
            data = _read_regular(fd, info, shown)
        finally:
            os.close(fd)
        lines = _split_lines(data.decode("utf-8", errors="replace"))
        first = 1
        if view_range is not None:
            first, last = _check_view_range(view_range, len(lines), shown)
            lines = lines[first - 1 : last]
        return self._redact(_numbered(lines, first))

    def _listing(self, fd: int, shown: str) -> str:
        header = f"Files and directories up to 2 levels deep in {shown}, hidden items excluded:"
        entries = [shown.rstrip("/") + "/"]
        stopped = False

        def scan(directory_fd: int, prefix: str, depth: int) -> None:
            nonlocal stopped
            try:
                # scandir(fd) works on its own duplicate; directory_fd stays ours.
                with os.scandir(directory_fd) as found:
                    children = sorted(
                        (entry.name, entry.is_dir(follow_symlinks=False))
                        for entry in found
                        if not entry.name.startswith(".")
                    )
            except OSError as error:
                entries.append(f"{prefix} (unreadable: {error.strerror})")
                return
            for name, is_directory in children:
                if len(entries) > LISTING_MAX_ENTRIES:
                    stopped = True
                    return
                entries.append(f"{prefix}/{name}/" if is_directory else f"{prefix}/{name}")
                if is_directory and depth < 2:
                    try:
                        child = os.open(name, _DIRECTORY_FLAGS, dir_fd=directory_fd)
                    except OSError as error:
                        entries.append(f"{prefix}/{name}/ (unreadable: {error.strerror})")
                        continue
                    try:
                        scan(child, f"{prefix}/{name}", depth + 1)
                    finally:
                        os.close(child)

        scan(fd, shown.rstrip("/"), 1)
        if stopped:
            entries.append(f"[listing stopped after {LISTING_MAX_ENTRIES} entries]")
        return "\n".join([header, *entries])

    def _read_text_for_edit(self, path: str) -> tuple[Path, str, str, int]:
        """(real path, shown path, text, permission bits) of an existing UTF-8
        text file to edit."""
        real = self.resolve(path)
        shown = self.display_path(real)
        fd = self._open_existing(real, shown)
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise InvalidInput(f"{shown} is a directory, not a file")
            data = _read_regular(fd, info, shown)
        finally:
            os.close(fd)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            # Decoding with "replace" and writing back would corrupt the bytes.
            raise InvalidInput(f"{shown} is not UTF-8 text; edit it with a shell command") from None
        return real, shown, text, stat.S_IMODE(info.st_mode)

    # -- writing -------------------------------------------------------------------

    def create(self, path: str, file_text: str) -> str:
        """Create a new file (and its missing parent directories) holding
        `file_text`. Refuses if anything exists at `path`. Atomic: the file
        appears complete or not at all."""
        file_text = _check_text_argument(file_text, "file_text")
        if isinstance(path, str) and path.endswith("/"):
            raise InvalidInput(f"{_quote(path)} ends with '/'; create makes files, give a file path")
        real = self.resolve(path)
        shown = self.display_path(real)
        if real == self.root or os.path.lexists(real):
            raise InvalidInput(f"{shown} already exists; use str_replace or insert to change it")
        data = file_text.encode("utf-8")
        _check_size(len(data), shown)
        self._write(real, shown, data, mode=None)
        lines = len(_split_lines(file_text))
        return f"Created {shown} ({lines} line{'s' if lines != 1 else ''}, {len(data)} bytes)."

    def write(self, path: str, content: str, start: int = 0, end: int = -1) -> str:
        """OpenHands' write: the file's lines [start, end) (0-based; end -1:
        to the end) replaced by `content`, so that 0, -1 writes the whole
        file. A missing file (and its parent directories) is created."""
        content = _check_text_argument(content, "content")
        start, end = _check_line_number(start, "start"), _check_line_number(end, "end")
        real = self.resolve(path)
        shown = self.display_path(real)
        if real == self.root or real.is_dir():
            raise InvalidInput(f"{shown} is a directory, not a file")
        if not os.path.lexists(real):
            data = content.encode("utf-8")
            _check_size(len(data), shown)
            self._write(real, shown, data, mode=None)
            return f"Wrote {shown} ({len(data)} bytes)."
        _, _, text, mode = self._read_text_for_edit(path)
        lines = text.splitlines(keepends=True)
        if not (0 <= start <= len(lines)) or not (end == -1 or start <= end <= len(lines)):
            raise InvalidInput(f"lines {start}..{end} are out of range: {shown} has {len(lines)} lines")
        inserted = content if content.endswith("\n") or not content else content + "\n"
        after = "".join(lines[:start]) + inserted + ("" if end == -1 else "".join(lines[end:]))
        data = after.encode("utf-8")
        _check_size(len(data), shown)
        self._write(real, shown, data, mode=mode)
        return f"Wrote {shown} ({len(data)} bytes)."

    def str_replace(self, path: str, old_str: str, new_str: str) -> str:
        """Replace the one occurrence of `old_str` by `new_str`. Zero or several
        occurrences are refused (the latter naming their lines). Returns the
        edited region with line numbers."""
        edit = self._plan_str_replace(path, old_str, new_str)
        self._write(edit.real, edit.shown, edit.data, mode=edit.mode)
        return f"Edited {edit.shown}. " + self._snippet(edit.after, edit.first_line, edit.last_line)

    def _plan_str_replace(self, path: str, old_str: str, new_str: str) -> _PlannedEdit:
        old_str = _check_text_argument(old_str, "old_str")
        new_str = _check_text_argument(new_str, "new_str")
        if not old_str:
            raise InvalidInput("old_str is empty; give the exact text to replace")
        real, shown, text, mode = self._read_text_for_edit(path)
        positions = _occurrences(text, old_str)
        if not positions:
            raise InvalidInput(
                f"no match for old_str in {shown}; nothing was changed "
                "(it must match exactly, whitespace and indentation included)"
            )
        if len(positions) > 1:
            numbers = [text.count("\n", 0, position) + 1 for position in positions]
            listed = ", ".join(str(n) for n in numbers[:10]) + (", ..." if len(numbers) > 10 else "")
            raise InvalidInput(
                f"old_str occurs {len(positions)} times in {shown}, at lines {listed}; "
                "nothing was changed: include more context to make it unique"
            )
        start = positions[0]
        edited = text[:start] + new_str + text[start + len(old_str) :]
        first_line = edited.count("\n", 0, start) + 1
        return _PlannedEdit(real, shown, mode, text, edited, first_line, first_line + new_str.count("\n"))

    def insert(self, path: str, insert_line: int, new_str: str) -> str:
        """Insert `new_str` as whole lines after line `insert_line` (0 = at the
        top, the line count = at the end). Returns the edited region."""
        edit = self._plan_insert(path, insert_line, new_str)
        self._write(edit.real, edit.shown, edit.data, mode=edit.mode)
        return f"Inserted {edit.last_line - edit.first_line + 1} line(s) into {edit.shown}. " + self._snippet(
            edit.after, edit.first_line, edit.last_line
        )

    def _plan_insert(self, path: str, insert_line: int, new_str: str) -> _PlannedEdit:
        new_str = _check_text_argument(new_str, "new_str")
        insert_line = _check_line_number(insert_line, "insert_line")
        if not new_str:
            raise InvalidInput("new_str is empty; nothing to insert")
        real, shown, text, mode = self._read_text_for_edit(path)
        lines = _split_lines(text)
        count = len(lines)
        if not 0 <= insert_line <= count:
            raise InvalidInput(
                f"insert_line {insert_line} is out of range: {shown} has {count} "
                f"line{'s' if count != 1 else ''}, so it must be between 0 and {count}"
            )
        # Whole lines: the inserted text ends with a newline, and so does the
        # line it follows (a last line without one gets one).
        block = new_str if new_str.endswith("\n") else new_str + "\n"
        before = "".join(line + "\n" for line in lines[:insert_line])
        after = text[len(before) :] if len(before) <= len(text) else ""
        edited = before + block + after
        return _PlannedEdit(real, shown, mode, text, edited, insert_line + 1, insert_line + block.count("\n"))

    def planned_edit(self, command: str, path: str, **arguments: Any) -> tuple[str, str | None, str]:
        """(shown path, the file's text now or None for a new file, its text
        after) of an edit, checked as the edit itself checks it but not
        carried out: what an approval shows. Raises InvalidInput as the edit
        would. The texts are not redacted."""
        if command == "create":
            file_text = _check_text_argument(arguments.get("file_text") or "", "file_text")
            real = self.resolve(path)
            shown = self.display_path(real)
            if real == self.root or os.path.lexists(real):
                raise InvalidInput(f"{shown} already exists; use str_replace or insert to change it")
            return shown, None, file_text
        if command == "str_replace":
            edit = self._plan_str_replace(path, arguments.get("old_str") or "", arguments.get("new_str") or "")
        elif command == "insert":
            edit = self._plan_insert(path, arguments.get("insert_line"), arguments.get("new_str") or "")
        else:
            raise InvalidInput(f"{_quote(str(command), 40)} is not an edit command")
        return edit.shown, edit.before, edit.after

    def _snippet(self, text: str, first_line: int, last_line: int) -> str:
        lines = _split_lines(text)
        start = max(1, first_line - SNIPPET_CONTEXT_LINES)
        end = min(len(lines), max(last_line, first_line) + SNIPPET_CONTEXT_LINES)
        if start > end:
            return "The file is now empty."
        body = _numbered(lines[start - 1 : end], start)
        return self._redact(f"Lines {start}-{end} now read:\n{body}")

    def _write(self, real: Path, shown: str, data: bytes, mode: int | None) -> None:
        """Atomically give `real` the content `data`: write a temporary file in
        the same directory, then rename it over `real` (or, for a new file
        (`mode` None), hard-link it so that a file that appeared meanwhile is
        not overwritten). The rename replaces the directory entry, so even a
        hard link to a file outside is never written through. `mode` keeps
        the edited file's permission bits."""
        temporary = f".convtui-{_random.token_hex(8)}.tmp"
        try:
            parent = self._open_directory(real.parent, create=mode is None)
        except OSError as error:
            raise InvalidInput(_describe(error, "write", shown)) from None
        try:
            # A new file gets 0o666 minus the umask, like any editor's; the
            # umask is never changed (that would race with other threads).
            fd = os.open(temporary, _TEMPORARY_FLAGS, 0o600 if mode is not None else 0o666, dir_fd=parent)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                if mode is not None:
                    os.fchmod(fd, mode)
                os.fsync(fd)
            finally:
                os.close(fd)
            if mode is not None:
                os.replace(temporary, real.name, src_dir_fd=parent, dst_dir_fd=parent)
            else:
                _link_new(temporary, real.name, parent, shown)
        except OSError as error:
            raise InvalidInput(_describe(error, "write", shown)) from None
        finally:
            try:
                os.unlink(temporary, dir_fd=parent)
            except FileNotFoundError:
                pass  # renamed into place
            except OSError:
                log.warning("could not remove temporary file %s in %s", temporary, shown)
            os.close(parent)

    # -- commands ------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return self._redactor(text)

    def environment(self) -> dict[str, str]:
        """The environment commands get: os.environ as it is now, minus the
        removed variables and any variable whose value holds a hidden secret."""
        return {
            name: value
            for name, value in os.environ.items()
            if name not in self._removed_variables and not self._redactor.finds(value)
        }

    async def run(
        self,
        command: str,
        timeout: float,
        max_output: int = DEFAULT_MAX_OUTPUT,
        soft_timeout: float | None = None,
    ) -> CommandResult:
        """Run `bash -c command` in the root (in the sandbox, when there is
        one), in its own process group, with the scrubbed environment.

        Without `soft_timeout`, stdin is /dev/null and the call lasts until
        the command ends: when its output is closed and the shell has exited
        (a background job still holding the output keeps it running until
        `timeout`). On timeout the whole group gets SIGTERM, then SIGKILL
        0.5 s later, and the result says timed_out with the output so far.
        On cancellation the group gets SIGKILL at once and CancelledError is
        re-raised; `stopped_output()` then has what it printed.

        With `soft_timeout`, stdin is a pipe and a command that prints
        nothing new for that long is left running: the result says
        still_running, and `send_input` types into it, waits more or
        interrupts it. It is still killed `timeout` seconds after it started.
        Another command is refused while it runs (CommandStillRunning)."""
        command = self._check_command(command)
        self._check_limits(timeout, max_output)
        if self._foreground is not None:
            raise CommandStillRunning(
                f'Your command "{_quote(command, 80)[1:-1]}" is NOT executed. The previous command is still '
                "running: you cannot run a new command until it has finished. Set is_input to true to "
                "interact with it: send an empty command to wait for more output, text to type into it, "
                "or C-c to interrupt it."
            )
        process = await self._start(command, timeout, max_output, interactive=soft_timeout is not None)
        return await self._wait(process, soft_timeout)

    async def send_input(self, text: str, soft_timeout: float) -> CommandResult:
        """Interact with the command left running by run(): "" waits for more
        output, "C-c" interrupts it, "C-d" ends its input, anything else is
        typed into it as a line. Then waits as run() does."""
        text = _check_text_argument(text, "command")
        process = self._foreground
        if process is None:
            raise InvalidInput("no command is running: is_input sends input to a command still running")
        key = text.strip()
        if key == "C-c":
            process.interrupt()
        elif key == "C-d":
            process.close_input()
        elif key == "C-z":
            raise InvalidInput("C-z (suspend) is not supported: use C-c to interrupt the command")
        elif text:
            process.write_input(text if text.endswith("\n") else text + "\n")
        self._foreground = None
        return await self._wait(process, soft_timeout)

    @staticmethod
    def _check_command(command: str) -> str:
        command = _check_text_argument(command, "command")
        if not command.strip():
            raise InvalidInput("command is empty")
        return command

    @staticmethod
    def _check_limits(timeout: float, max_output: int) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (
            math.isfinite(timeout) and timeout > 0
        ):
            raise InvalidInput(f"timeout must be a positive number of seconds, not {_quote(str(timeout), 40)}")
        if isinstance(max_output, bool) or not isinstance(max_output, int) or max_output < MIN_MAX_OUTPUT:
            raise InvalidInput(f"max_output must be an integer of at least {MIN_MAX_OUTPUT}")

    def _argv(self, command: str) -> list[str]:
        if self.sandbox is None:
            return limited(self._shell, rewrite_workspace_paths(command, self.root), self.policy)
        # The shell inside: the host's may live in a hidden directory.
        shell = "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"
        return self.sandbox.argv(limited(shell, command, self.policy))

    async def _start(
        self, command: str, timeout: float, max_output: int, interactive: bool = False
    ) -> CommandProcess:
        def prepare() -> tuple[list[str], cgroup_limits.CommandCgroup | None]:
            # Directories made and looked at (a cgroup is a mkdir): in a
            # thread, as the event loop of 200 loops cannot wait on each.
            self.root.mkdir(parents=True, exist_ok=True)  # the agent may have deleted it
            return self._argv(command), cgroup_limits.create(self.policy.max_processes, self.policy.memory_mb)

        preparing = asyncio.get_running_loop().run_in_executor(None, prepare)
        try:
            argv, cgroup = await asyncio.shield(preparing)
        except asyncio.CancelledError:
            with contextlib.suppress(BaseException):
                _, made = await preparing
                if made is not None:
                    made.remove()
            raise
        return await CommandProcess.start(
            argv,
            self.root,
            self.environment(),
            timeout,
            max_output,
            self._redactor,
            interactive=interactive,
            cgroup=cgroup,
            sandboxed=self.sandbox is not None,
        )

    async def _wait(self, process: CommandProcess, soft_timeout: float | None) -> CommandResult:
        self._stopped = None
        try:
            result = await process.wait(soft_timeout)
        except asyncio.CancelledError:
            output, truncated = process.take()
            self._stopped = CommandResult(None, output, False, truncated)
            raise
        if result.still_running:
            self._foreground = process
        return result

    def stopped_output(self) -> CommandResult | None:
        """What the command that was running when its caller was cancelled
        had printed (once: taking it clears it)."""
        stopped, self._stopped = self._stopped, None
        return stopped

    @property
    def running_command(self) -> bool:
        """Whether a command left running by run() still waits for input."""
        return self._foreground is not None

    # -- background processes -----------------------------------------------------

    async def start_background(self, command: str) -> BackgroundProcess:
        """Run `command` detached: stdin /dev/null, its output appended to a
        log file in the conversation's /tmp, no deadline. It runs until it
        ends, `stop_background` or `close`. A trailing `&` is dropped (the
        shell must stay, or the sandbox ends with it)."""
        command = self._check_command(command)
        command = _TRAILING_AMPERSAND.sub("", command).rstrip()
        self._logs.mkdir(parents=True, exist_ok=True)
        number = self._next_background
        self._next_background += 1
        log_path = self._logs / f"convtui-process-{number}.log"
        shown_log = f"/tmp/{log_path.name}" if self.sandbox is not None else str(log_path)
        self.root.mkdir(parents=True, exist_ok=True)
        cgroup = cgroup_limits.create(self.policy.max_processes, self.policy.memory_mb)
        with open(log_path, "ab") as output:
            try:
                argv = self._argv(command)
                process = await asyncio.create_subprocess_exec(
                    *(cgroup.wrap(argv) if cgroup is not None else argv),
                    cwd=self.root,
                    env=self.environment(),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=output,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                if cgroup is not None:
                    cgroup.remove()
                raise ConvtuiError(f"cannot start the command: {error.strerror or error}") from None
        started = BackgroundProcess(number, command, process.pid, shown_log, time.time())
        self._background[number] = _Background(started, process, cgroup)
        watcher = asyncio.ensure_future(self._watch(number))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)
        self._processes_changed()
        return started

    async def _watch(self, number: int) -> None:
        """Until background process `number` ends on its own, then forget it."""
        entry = self._background[number]
        await entry.process.wait()
        if self._background.get(number) is entry:
            del self._background[number]
            if entry.cgroup is not None:
                entry.cgroup.remove()
            self._processes_changed()

    def _processes_changed(self) -> None:
        if self.on_processes_changed is not None:
            try:
                self.on_processes_changed()
            except Exception:
                log.exception("a processes-changed callback failed")

    def background_processes(self) -> list[BackgroundProcess]:
        """The background processes still running, oldest first."""
        return [entry.info for entry in self._background.values() if entry.process.returncode is None]

    async def stop_background(self, number: int | None = None) -> int:
        """Stop one background process (by number) or all; how many were running."""
        chosen = [entry for key, entry in list(self._background.items()) if number is None or key == number]
        running = [entry for entry in chosen if entry.process.returncode is None]
        for entry in running:
            signal_group(entry.process.pid, signal.SIGTERM)
        for entry in running:
            if not await within(TERMINATE_GRACE_SECONDS, entry.process.wait()):
                signal_group(entry.process.pid, signal.SIGKILL)
                await within(2.0, entry.process.wait())
        for entry in chosen:
            if entry.cgroup is not None:
                entry.cgroup.remove()
            self._background.pop(entry.info.number, None)
        if chosen:
            self._processes_changed()
        return len(running)

    async def close(self) -> None:
        """Kill everything this workspace started: the command left running
        and the background processes. Signals first (nothing awaited), so
        that it holds even when the caller is being cancelled."""
        foreground, self._foreground = self._foreground, None
        if foreground is not None:
            foreground.kill()
        for entry in self._background.values():
            signal_group(entry.process.pid, signal.SIGKILL)
        if foreground is not None:
            await within(1.0, foreground.process.wait())
            await foreground.release()
        await self.stop_background()
        for watcher in self._watchers:
            watcher.cancel()
        self._watchers.clear()

    # -- setup ---------------------------------------------------------------------

    async def clone(self, repository: str, branch: str | None, timeout: float = 300) -> None:
        """Clone `repository` (a local directory, a git URL or `owner/name` for
        GitHub) into the empty root, only `branch` if given. Does nothing if
        the root already holds a `.git` (a resumed conversation). Raises
        InvalidInput for a malformed repository or branch and
        WorkspaceSetupError when git fails or times out; the root is then
        emptied again so that a retry starts clean."""
        source = repository_source(repository)
        if branch is not None:
            try:
                branch = check_branch(branch)
            except ValueError as error:
                raise InvalidInput(str(error)) from None
        self.root.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(self.root / ".git"):
            return
        git = shutil.which("git")
        if git is None:
            raise WorkspaceSetupError("git clone failed: git is not installed")
        with os.scandir(self.root) as entries:
            if any(True for _ in entries):
                raise WorkspaceSetupError(
                    f"cannot clone into {self.root}: the directory is not empty and is not a git repository"
                )
        env = self.environment()
        env["GIT_TERMINAL_PROMPT"] = "0"
        # No host-key or passphrase prompt that nobody can answer.
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        argv = [git, "-c", "protocol.ext.allow=never", "clone"]
        if branch is not None:
            argv += ["--branch", branch]
        argv += ["--single-branch", "--", source, "."]
        try:
            process = await CommandProcess.start(argv, self.root, env, timeout, DEFAULT_MAX_OUTPUT, self._redactor)
            result = await process.wait()
        except BaseException:
            self._empty_root()  # a partial .git would later pass for a clone
            raise
        if result.timed_out:
            self._empty_root()
            raise WorkspaceSetupError(f"git clone timed out after {timeout:g} s")
        if result.exit_code != 0:
            self._empty_root()
            raise WorkspaceSetupError(f"git clone failed: {_last_error_line(result.output, result.exit_code)}")

    def _empty_root(self) -> None:
        """Remove what a failed clone left. Only called when the root was empty
        before it; rmtree does not follow symlinks."""
        try:
            with os.scandir(self.root) as entries:
                for entry in list(entries):
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
        except OSError:
            log.warning("could not empty %s after a failed clone", self.root, exc_info=True)


# -- helpers ---------------------------------------------------------------------------


def _describe(error: OSError, action: str, shown: str) -> str:
    return f"could not {action} {shown}: {error.strerror or error}"


def _check_size(size: int, shown: str) -> None:
    if size > MAX_FILE_BYTES:
        raise InvalidInput(
            f"{shown} would be {size / 1024 / 1024:.1f} MB; the file tools handle files up to "
            f"{MAX_FILE_BYTES // 1024 // 1024} MB: use a shell command"
        )


def _read_regular(fd: int, info: os.stat_result, shown: str) -> bytes:
    """The bytes of the regular, non-binary file open as `fd`, at most 10 MB."""
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(f"{shown} is not a regular file")
    if info.st_size > MAX_FILE_BYTES:
        raise InvalidInput(
            f"{shown} is {info.st_size / 1024 / 1024:.1f} MB; the file tools read files up to "
            f"{MAX_FILE_BYTES // 1024 // 1024} MB: use a shell command such as head, tail or grep"
        )
    chunks: list[bytes] = []
    size = 0
    # One byte over the limit is enough to know the file grew past it.
    while size <= MAX_FILE_BYTES:
        chunk = os.read(fd, min(1 << 20, MAX_FILE_BYTES + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > MAX_FILE_BYTES:
        raise InvalidInput(f"{shown} is over {MAX_FILE_BYTES // 1024 // 1024} MB: use a shell command")
    data = b"".join(chunks)
    if b"\x00" in data:
        raise InvalidInput(f"{shown} is a binary file; the file tools handle text only")
    return data


def _check_view_range(view_range: Sequence[int], count: int, shown: str) -> tuple[int, int]:
    """(first, last) 1-based inclusive lines for a view_range, last clamped."""
    if isinstance(view_range, str | bytes) or not isinstance(view_range, Sequence) or len(view_range) != 2:
        raise InvalidInput("view_range must be two line numbers [start, end]")
    start = _check_line_number(view_range[0], "view_range start")
    end = _check_line_number(view_range[1], "view_range end")
    if count == 0:
        raise InvalidInput(f"{shown} is empty; it has no line to view")
    if not 1 <= start <= count:
        raise InvalidInput(f"view_range start {start} is out of range: {shown} has lines 1 to {count}")
    if end == -1:
        return start, count
    if end < start:
        raise InvalidInput(f"view_range end {end} is before start {start} (use -1 for the end of the file)")
    return start, min(end, count)


def _occurrences(text: str, needle: str) -> list[int]:
    """Start of every occurrence of `needle`, overlapping ones included (each
    is a different possible edit)."""
    positions = []
    position = text.find(needle)
    while position != -1:
        positions.append(position)
        position = text.find(needle, position + 1)
    return positions


def _link_new(temporary: str, name: str, parent: int, shown: str) -> None:
    """Give the complete temporary file its final name, refusing to replace
    anything that appeared since create() looked."""
    try:
        os.link(temporary, name, src_dir_fd=parent, dst_dir_fd=parent, follow_symlinks=False)
    except FileExistsError:
        raise InvalidInput(f"{shown} already exists; use str_replace or insert to change it") from None
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
        # No hard links on this filesystem: check, then rename (a narrow race).
        try:
            os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            os.replace(temporary, name, src_dir_fd=parent, dst_dir_fd=parent)
            return
        raise InvalidInput(f"{shown} already exists; use str_replace or insert to change it") from None


def _last_error_line(output: str, exit_code: int | None) -> str:
    """git's last `fatal:`/`error:` line, else its last line, shortened."""
    lines = [line.strip() for line in output.replace("\r", "\n").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("fatal:", "error:"))]
    line = (errors or lines or [f"git exited with status {exit_code}"])[-1]
    return line if len(line) <= 300 else line[:300] + "..."
