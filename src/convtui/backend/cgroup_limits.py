"""A cgroup per command, where this process may make one: the process and
memory limits of a command that `ulimit` cannot give (RLIMIT_NPROC never
binds root, RLIMIT_DATA counts per process).

Looked for in this order: cgroup v2, under this process's own cgroup when
it already hands the pids controller to its children (a delegated
subtree); cgroup v1's pids (and memory) hierarchies when writable (root in
a container). Elsewhere there is no cgroup and `ulimit` is all there is.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import itertools
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
_numbers = itertools.count()
# Cgroups still holding a process when their command ended (a detached
# job): removed once empty, tried again at each create().
_left_over: list[Path] = []


class CommandCgroup:
    """The cgroup(s) of one command: made by `create`, entered by the
    command (`wrap`), removed by `remove` once it is empty."""

    def __init__(self, directories: list[Path], procs_files: list[str]) -> None:
        self.directories = directories
        self._procs_files = procs_files

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` started by a shell that first moves itself into the
        cgroup(s), so that everything it execs and forks is inside. (A
        preexec_fn would do it in the forked child, but a preexec_fn makes
        Python fork the whole process instead of vfork: 10-30 ms of a large
        server's event loop per command.)"""
        count = len(self._procs_files)
        joins = " && ".join(f'echo $$ > "${number}"' for number in range(1, count + 1))
        script = f"{{ {joins}; }} 2>/dev/null || {{ echo 'convtui: cannot enter the command cgroup' >&2; exit 126; }}; shift {count}; exec \"$@\""
        return ["/bin/sh", "-c", script, "convtui-cgroup", *self._procs_files, *argv]

    def remove(self) -> bool:
        """Remove the cgroups; False while a process is still in one (it is
        then tried again later, and at exit)."""
        for directory in self.directories:
            _remove(directory)
        return not any(directory in _left_over for directory in self.directories)


@atexit.register
def _remove_left_over() -> None:
    for directory in list(_left_over):
        _remove(directory)


def _remove(directory: Path) -> None:
    try:
        directory.rmdir()
    except FileNotFoundError:
        pass
    except OSError:
        if directory not in _left_over:
            _left_over.append(directory)
    else:
        if directory in _left_over:
            _left_over.remove(directory)


def _own_path(controller: str | None) -> str | None:
    """This process's cgroup path in the v1 hierarchy of `controller`, or in
    the v2 hierarchy (controller None)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        number, controllers, path = line.split(":", 2)
        if controller is None and number == "0" and controllers == "":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    return None


@functools.cache
def _parents() -> tuple[tuple[Path, str], ...]:
    """(directory to make command cgroups in, kind) per usable hierarchy:
    kind "v2", "pids" or "memory"."""
    found: list[tuple[Path, str]] = []
    own = _own_path(None)
    if own is not None and (CGROUP_ROOT / "cgroup.controllers").exists():
        parent = CGROUP_ROOT / own.lstrip("/")
        with contextlib.suppress(OSError):
            if "pids" in (parent / "cgroup.subtree_control").read_text().split() and os.access(parent, os.W_OK):
                found.append((parent, "v2"))
                return tuple(found)
    for controller in ("pids", "memory"):
        own = _own_path(controller)
        if own is None:
            continue
        parent = CGROUP_ROOT / controller / own.lstrip("/")
        if parent.is_dir() and os.access(parent, os.W_OK):
            found.append((parent, controller))
    return tuple(found)


@functools.cache
def _sweep_dead_processes_cgroups() -> None:
    """Once per process: remove the empty cgroups of convtui processes that
    are gone (one killed outright had no chance to remove its own)."""
    for parent, _ in _parents():
        for directory in parent.glob("convtui-*-*"):
            pid = directory.name.split("-")[1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                with contextlib.suppress(OSError):
                    directory.rmdir()


def available() -> str | None:
    """Which cgroups limit commands here ("cgroup v2", "cgroup v1"), or None."""
    kinds = {kind for _, kind in _parents()}
    if "v2" in kinds:
        return "cgroup v2"
    if "pids" in kinds:
        return "cgroup v1"
    return None


def create(max_processes: int, memory_mb: int) -> CommandCgroup | None:
    """A fresh cgroup with these limits, or None where none can be made."""
    _sweep_dead_processes_cgroups()
    for directory in list(_left_over):
        _remove(directory)
    made: list[Path] = []
    procs: list[str] = []
    name = f"convtui-{os.getpid()}-{next(_numbers)}"
    for parent, kind in _parents():
        directory = parent / name
        try:
            directory.mkdir()
        except OSError as error:
            log.warning("cannot make cgroup %s: %s", directory, error)
            continue
        made.append(directory)
        try:
            if kind in ("v2", "pids"):
                (directory / "pids.max").write_text(str(max_processes))
            if kind == "v2":
                with contextlib.suppress(OSError):  # memory may not be delegated
                    (directory / "memory.max").write_text(str(memory_mb * 1024 * 1024))
            if kind == "memory":
                (directory / "memory.limit_in_bytes").write_text(str(memory_mb * 1024 * 1024))
        except OSError as error:
            log.warning("cannot set limits of cgroup %s: %s", directory, error)
        procs.append(str(directory / "cgroup.procs"))
    if not made:
        return None
    return CommandCgroup(made, procs)
