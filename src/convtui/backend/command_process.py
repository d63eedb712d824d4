"""One shell command's process: started in its own process group, its output
read from a pipe into a bounded collector, stdin a pipe when the agent may
type into it, stopped by signals to the whole group.

A command can outlive the call that started it: `wait` returns when the
command ends, when its hard deadline passes, or (with a soft timeout) when
it has printed nothing new for that long; the output since the last `take`
is then handed back and the process keeps running until waited on again,
interrupted, or killed. POSIX only.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import logging
import os
import signal
import subprocess
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path

from .cgroup_limits import CommandCgroup
from .errors import ConvtuiError, InvalidInput
from .redaction import Redactor, StreamRedactor

log = logging.getLogger(__name__)

# After SIGTERM, how long a process group gets to exit before SIGKILL.
TERMINATE_GRACE_SECONDS = 0.5
# After the group is dead, how long to keep reading what is left in the pipe.
# Bounded because a process that left the group (setsid) may still hold it.
DRAIN_SECONDS = 0.25


@dataclass(frozen=True)
class CommandResult:
    """How a command ended, or where it stands. `exit_code` is None when it
    timed out or still runs; a negative value -N means the shell was killed
    by signal N. `output` is stdout and stderr interleaved (since the last
    result, for a command that returned `still_running` before), decoded as
    UTF-8 (bad bytes become U+FFFD), secrets redacted, and at most
    `max_output` characters: when `truncated`, the middle was cut and a line
    in its place says how much."""

    exit_code: int | None
    output: str
    timed_out: bool
    truncated: bool
    still_running: bool = False


def signal_group(pgid: int, signal_number: int) -> None:
    try:
        os.killpg(pgid, signal_number)
    except ProcessLookupError:
        pass  # already gone
    except PermissionError:
        # A member changed identity (setuid); nothing more we are allowed to do.
        log.warning("not allowed to signal process group %d", pgid)


def _process_table() -> dict[int, tuple[bytes, int, int, bytes]] | None:
    """pid -> (state, ppid, pgrp, command name) of every process, from /proc;
    None where there is no /proc."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    table = {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as file:
                head, tail = file.read().rsplit(b")", 1)
        except (OSError, ValueError):
            continue  # exited meanwhile
        fields = tail.split()
        if len(fields) > 2:
            table[int(name)] = (fields[0], int(fields[1]), int(fields[2]), head.split(b"(", 1)[-1])
    return table


def group_members(pgid: int) -> list[int] | None:
    """The live (non-zombie) processes of group `pgid`, from /proc; None
    where there is no /proc."""
    table = _process_table()
    if table is None:
        return None
    return [pid for pid, (state, _, group, _) in table.items() if group == pgid and state != b"Z"]


def descendants(pid: int) -> list[int]:
    """The live processes under `pid` (children, theirs, ...), from /proc."""
    table = _process_table() or {}
    children: dict[int, list[int]] = {}
    for child, (state, parent, _, _) in table.items():
        if state != b"Z":
            children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, ()))
    while todo:
        child = todo.pop()
        found.append(child)
        todo.extend(children.get(child, ()))
    return found


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs. Zombies do not count:
    killed members reparented to an init that reaps slowly (or never, in
    some containers) would otherwise look alive for ever."""
    members = group_members(pgid)
    if members is not None:
        return bool(members)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Child:
    """A process started off the event loop, waited for on it: its pidfd is
    watched where Linux has them (no thread per child), else one thread
    waits for it."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self._loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[None] = self._loop.create_future()
        try:
            self._pidfd: int | None = os.pidfd_open(popen.pid)
        except (AttributeError, OSError):  # not Linux, or older than 5.3
            self._pidfd = None
            waiting = self._loop.run_in_executor(None, popen.wait)
            waiting.add_done_callback(lambda _: self._exited.done() or self._exited.set_result(None))
        else:
            self._loop.add_reader(self._pidfd, self._reap)

    def _reap(self) -> None:
        assert self._pidfd is not None
        self._loop.remove_reader(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = None
        self._popen.wait()  # it has exited: no wait
        if not self._exited.done():
            self._exited.set_result(None)

    @property
    def returncode(self) -> int | None:
        """Its exit status once reaped (-N: killed by signal N), else None."""
        return self._popen.returncode if self._exited.done() else None

    async def wait(self) -> int:
        await asyncio.shield(self._exited)
        return self._popen.returncode


async def within(seconds: float, awaitable: Awaitable[object]) -> bool:
    """Await `awaitable` for at most `seconds`; False if it did not finish
    (it is then cancelled). Built on asyncio.wait rather than asyncio.timeout
    so that it behaves the same inside a task that is being cancelled."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=max(0.0, seconds))
    except BaseException:
        task.cancel()
        raise
    if not done:
        task.cancel()
        return False
    task.result()
    return True


_removals: set[asyncio.Future[None]] = set()


async def _remove_when_empty(cgroup: CommandCgroup) -> None:
    for _ in range(50):
        await asyncio.sleep(0.02)
        if cgroup.remove():
            return


class OutputCollector:
    """Decodes and redacts a command's output as it arrives and keeps only
    its head and its tail, so that memory stays bounded by `limit` whatever
    the command prints."""

    def __init__(self, limit: int, redactor: StreamRedactor) -> None:
        self._limit = limit
        self._head_limit = limit // 2
        self._tail_limit = limit - self._head_limit
        self._head: list[str] = []
        self._head_size = 0
        self._tail = ""
        self._total = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._redactor = redactor

    def feed(self, data: bytes) -> None:
        self._keep(self._redactor.feed(self._decoder.decode(data)))

    def _keep(self, text: str) -> None:
        if not text:
            return
        self._total += len(text)
        room = self._head_limit - self._head_size
        if room > 0:
            self._head.append(text[:room])
            self._head_size += min(room, len(text))
            text = text[room:]
        if text:
            self._tail = (self._tail + text)[-self._tail_limit :]

    def finish(self) -> tuple[str, bool]:
        """(output, truncated). Within `limit` characters, the marker included."""
        self._keep(self._redactor.feed(self._decoder.decode(b"", final=True)))
        self._keep(self._redactor.flush())
        head = "".join(self._head)
        if self._total <= self._limit:  # head and tail hold all of it
            return head + self._tail, False
        # Make room for the marker line; the count in it is at most `total`.
        room = self._limit - len(f"\n[... {self._total:,} characters cut ...]\n")
        head = head[: room // 2]
        keep = room - len(head)
        tail = self._tail[-keep:] if keep > 0 else ""
        cut = self._total - len(head) - len(tail)
        return f"{head}\n[... {cut:,} characters cut ...]\n{tail}", True


class _PipeProtocol(asyncio.Protocol):
    """Feeds what arrives on the read end of the output pipe to a collector.
    Processing each chunk inside data_received is the back-pressure: the loop
    reads no more until the chunk has been reduced into the collector."""

    def __init__(self, collector: OutputCollector) -> None:
        self.collector = collector
        self.last_output = asyncio.get_running_loop().time()
        # An Event, not a Future: a waiter cancelled by a timeout must not
        # cancel the signal itself.
        self.closed = asyncio.Event()

    def data_received(self, data: bytes) -> None:
        self.collector.feed(data)
        self.last_output = asyncio.get_running_loop().time()

    def eof_received(self) -> bool:
        self.closed.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


class CommandProcess:
    """A started command; see the module docstring. Make one with `start`."""

    def __init__(
        self,
        process: _Child,
        transport: asyncio.ReadTransport,
        protocol: _PipeProtocol,
        redactor: Redactor,
        max_output: int,
        stdin_fd: int | None,
        cgroup: CommandCgroup | None,
        deadline: float,
        sandboxed: bool,
    ) -> None:
        self.process = process
        self.group = process.pid  # its own process group
        self._transport = transport
        self._protocol = protocol
        self._redactor = redactor
        self._max_output = max_output
        self._stdin_fd = stdin_fd
        self._cgroup = cgroup
        self.deadline = deadline
        self.sandboxed = sandboxed
        self.timed_out = False
        self._terminating: asyncio.Future[None] | None = None
        self._expiry = asyncio.get_running_loop().call_at(deadline, self._expire)

    @classmethod
    async def start(
        cls,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        timeout: float,
        max_output: int,
        redactor: Redactor,
        interactive: bool = False,
        cgroup: CommandCgroup | None = None,
        sandboxed: bool = False,
    ) -> CommandProcess:
        """Start `argv` in `cwd` in a new process group, stdin from /dev/null
        (a pipe when `interactive`). It is killed `timeout` seconds from now
        if still running then, waited on or not."""
        loop = asyncio.get_running_loop()
        protocol = _PipeProtocol(OutputCollector(max_output, redactor.stream()))
        # Our own pipe rather than stdout=PIPE: its read end is ours to close
        # whenever we decide, and proc.wait() then depends only on the shell
        # exiting, not on every holder of the pipe closing it (which a process
        # that escaped the group could delay forever).
        read_fd, write_fd = os.pipe()
        pipe = os.fdopen(read_fd, "rb", buffering=0)  # owns read_fd from here
        stdin_read, stdin_write = os.pipe() if interactive else (None, None)
        try:
            if cgroup is not None:
                argv = cgroup.wrap(argv)

            def spawn() -> subprocess.Popen[bytes]:
                try:
                    return subprocess.Popen(
                        argv,
                        cwd=cwd,
                        env=env,
                        stdin=stdin_read if stdin_read is not None else subprocess.DEVNULL,
                        stdout=write_fd,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # its own process group, id = its pid
                    )
                finally:
                    os.close(write_fd)  # the child has its copy; EOF needs ours closed
                    if stdin_read is not None:
                        os.close(stdin_read)

            # In a thread: starting a process waits until it has exec'd,
            # and asyncio's own start does that on the event loop (and, on
            # Python 3.11, starts a thread per child to wait for it): with
            # 200 loops on a busy box that held the event loop for 100s of ms.
            spawning = loop.run_in_executor(None, spawn)
            try:
                process = _Child(await asyncio.shield(spawning))
            except asyncio.CancelledError:
                with contextlib.suppress(BaseException):
                    started = await spawning  # started all the same: it must not outlive us
                    signal_group(started.pid, signal.SIGKILL)
                    await asyncio.to_thread(started.wait)
                raise
        except OSError as error:
            pipe.close()
            if stdin_write is not None:
                os.close(stdin_write)
            if error.errno == errno.E2BIG:
                raise InvalidInput("command is too long for the operating system") from None
            raise ConvtuiError(f"cannot start {argv[0]}: {error.strerror or error}") from None
        except BaseException:
            pipe.close()
            if stdin_write is not None:
                os.close(stdin_write)
            raise
        if stdin_write is not None:
            os.set_blocking(stdin_write, False)
        try:
            transport, _ = await loop.connect_read_pipe(lambda: protocol, pipe)
        except BaseException:
            pipe.close()
            if stdin_write is not None:
                os.close(stdin_write)
            signal_group(process.pid, signal.SIGKILL)
            await within(1.0, process.wait())
            raise
        return cls(
            process, transport, protocol, redactor, max_output, stdin_write, cgroup, loop.time() + timeout, sandboxed
        )

    # -- state ---------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.process.returncode is not None and self._protocol.closed.is_set()

    def _expire(self) -> None:
        """The hard deadline passed: end the command, whoever is waiting."""
        if not self.finished and self._terminating is None:
            self.timed_out = True
            self._terminating = asyncio.ensure_future(self.terminate())

    # -- waiting -------------------------------------------------------------------

    async def _until_finished(self) -> None:
        await self._protocol.closed.wait()
        await self.process.wait()

    async def wait(self, soft_timeout: float | None = None) -> CommandResult:
        """Until the command ends or its deadline passes (then it is
        terminated), or with `soft_timeout`, until it has printed nothing
        for that long: the result then says still_running and the process
        goes on. On cancellation the group is killed at once and
        CancelledError propagates; `take` still has the output so far."""
        loop = asyncio.get_running_loop()
        waiting_since = loop.time()  # quiet counts from now, not from before the input
        try:
            while True:
                now = loop.time()
                if self.process.returncode is not None and (self._protocol.closed.is_set() or self.timed_out):
                    break
                if now >= self.deadline or self.timed_out:
                    self._expire()
                    if self._terminating is not None:
                        await self._terminating
                    break
                until = self.deadline
                if soft_timeout is not None:
                    quiet_from = max(self._protocol.last_output, waiting_since) + soft_timeout
                    if now >= quiet_from:
                        output, truncated = self.take()
                        return CommandResult(None, output, False, truncated, still_running=True)
                    until = min(until, quiet_from)
                if await within(until - now, self._until_finished()):
                    break
        except BaseException:
            # Cancelled (or interrupted): no grace, the caller has moved on.
            self.kill()
            await within(1.0, self.process.wait())
            await within(DRAIN_SECONDS, self._protocol.closed.wait())
            await self.release()
            raise
        if self.timed_out:
            await within(DRAIN_SECONDS, self._protocol.closed.wait())
        output, truncated = self.take()
        await self.release()
        exit_code = None if self.timed_out else self.process.returncode
        return CommandResult(exit_code, output, self.timed_out, truncated)

    def take(self) -> tuple[str, bool]:
        """The output since the last take, and whether it was cut."""
        collector = self._protocol.collector
        self._protocol.collector = OutputCollector(self._max_output, self._redactor.stream())
        return collector.finish()

    # -- input and signals ---------------------------------------------------------

    def write_input(self, text: str) -> None:
        """Type `text` into the command's stdin. Raises InvalidInput when it
        reads no more."""
        if self._stdin_fd is None:
            raise InvalidInput("the command's input is closed")
        data = text.encode("utf-8")
        try:
            while data:
                written = os.write(self._stdin_fd, data)
                data = data[written:]
        except BlockingIOError:
            raise InvalidInput("the command is not reading its input (more than 64 KiB wait unread)") from None
        except BrokenPipeError:
            raise InvalidInput("the command no longer reads its input") from None

    def close_input(self) -> None:
        """End of input (Ctrl-D)."""
        if self._stdin_fd is not None:
            os.close(self._stdin_fd)
            self._stdin_fd = None

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the command's processes. In a sandbox the
        processes inside it (not bwrap, which would take the whole sandbox
        down at once), else the process group."""
        if not self.sandboxed:
            signal_group(self.group, signal.SIGINT)
            return
        table = _process_table() or {}
        for pid in descendants(self.process.pid):
            if table.get(pid, (b"", 0, 0, b""))[3] != b"bwrap":
                try:
                    os.kill(pid, signal.SIGINT)
                except (ProcessLookupError, PermissionError):
                    pass

    async def terminate(self) -> None:
        """SIGTERM the group, SIGKILL it if anything is left after the grace,
        and reap the shell."""
        signal_group(self.group, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TERMINATE_GRACE_SECONDS
        while _group_alive(self.group) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if _group_alive(self.group):
            # Ignoring SIGTERM, or a zombie awaiting its reaper (harmless).
            signal_group(self.group, signal.SIGKILL)
        if not await within(2.0, self.process.wait()):
            log.warning("process %d did not exit after SIGKILL", self.process.pid)

    def kill(self) -> None:
        signal_group(self.group, signal.SIGKILL)

    async def release(self) -> None:
        """Release the pipes, the deadline and the cgroup (the process has
        ended; what it left in its cgroup is reaped a moment later)."""
        self._expiry.cancel()
        self._transport.close()
        self.close_input()
        cgroup, self._cgroup = self._cgroup, None
        if cgroup is not None and not await asyncio.to_thread(cgroup.remove):
            # Killed processes leave it once reaped, a moment later: removed
            # then, without holding up the command's result.
            task = asyncio.ensure_future(_remove_when_empty(cgroup))
            _removals.add(task)
            task.add_done_callback(_removals.discard)
