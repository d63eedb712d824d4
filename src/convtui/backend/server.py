"""`convtui serve`: one process that owns a data directory's store and every
agent loop, speaking the REST API of api.py.

Where it listens, per data directory:
    server.sock   the unix socket, mode 0600 (no token: only its owner can connect).
                  A data directory whose path is too long for a socket name gets
                  $XDG_RUNTIME_DIR (else /tmp)/convtui-<uid>/<hash>.sock instead.
    server.token  the bearer token TCP clients must present (0600), made on first use
    server.json   pid, socket, TCP address and version of the running server
    server.log    what the server logs (a server started in the background has
                  no terminal)
    server.lock   held while a server runs: two starts yield exactly one server

A server killed outright leaves its loops recorded as running: the next one
starts them again."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import secrets
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .. import __version__
from .data_dir import DataDirectory
from .durable_files import atomic_write
from .errors import ConvtuiError, InvalidInput, describe_os_error

log = logging.getLogger(__name__)

SOCKET_NAME = "server.sock"
TOKEN_NAME = "server.token"
INFO_NAME = "server.json"
LOG_NAME = "server.log"
LOCK_NAME = "server.lock"
START_TIMEOUT = 20.0
# A server started in the background exits after this long idle (no loop,
# no client, no request); CONVTUI_SERVER_IDLE_SECONDS changes it (0: never).
IDLE_VARIABLE = "CONVTUI_SERVER_IDLE_SECONDS"
IDLE_DEFAULT_SECONDS = 1800
IDLE_CHECK_SECONDS = 5.0
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux, 104 on macOS


class ServerRunning(ConvtuiError):
    """Another server already owns this data directory."""


class ServerUnavailable(ConvtuiError):
    """No server answers, and none could be started."""


def socket_path(data_dir: DataDirectory) -> Path:
    """Where the server of `data_dir` listens: inside it when the path fits
    in a socket address, else in a private per-user directory."""
    inside = data_dir.root / SOCKET_NAME
    if len(os.fsencode(inside)) <= _SOCKET_PATH_MAX:
        return inside
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"convtui-{os.getuid()}"
    digest = hashlib.sha256(os.fsencode(data_dir.root)).hexdigest()[:20]
    return base / f"{digest}.sock"


def _private_directory(directory: Path) -> None:
    """Create `directory` 0700, or check that the one there is ours and
    private (never a link someone else planted, as tmux checks /tmp/tmux-UID)."""
    with contextlib.suppress(FileExistsError):
        directory.mkdir(mode=0o700, parents=True)
    status = directory.lstat()
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise ConvtuiError(f"{directory} is not a private directory of this user; remove it and try again")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_or_create_token(data_dir: DataDirectory) -> tuple[str, bool]:
    """The bearer token for TCP clients, and whether it was made just now."""
    path = data_dir.root / TOKEN_NAME
    with contextlib.suppress(FileNotFoundError):
        token = path.read_text().strip()
        if token:
            return token, False
    token = secrets.token_urlsafe(32)
    atomic_write(path, token.encode() + b"\n", mode=0o600)
    return token, True


def read_info(data_dir: DataDirectory) -> dict[str, Any] | None:
    try:
        return orjson.loads((data_dir.root / INFO_NAME).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def _unix_socket(path: Path) -> socket.socket:
    """A listening unix socket at `path`, 0600 from the moment it exists."""
    if path.name != SOCKET_NAME:
        _private_directory(path.parent)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # a stale socket: we hold the lock, so no server uses it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)
    try:
        listener.bind(os.fsdecode(path))
    finally:
        os.umask(previous)
    os.chmod(path, 0o600)
    listener.listen(128)
    listener.setblocking(False)
    return listener


def _tcp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off only on sockets that say so
    # (with Nagle on, a response written in two parts waits ~40 ms for an ACK).
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ConvtuiError(describe_os_error(error, f"listen on {host}:{port}")) from None
    listener.listen(128)
    listener.setblocking(False)
    return listener


@dataclass
class ServeOptions:
    host: str | None = None
    port: int = 8765
    token: bool = True  # False: TCP without a token (loopback only)
    exit_when_idle: float = 0  # seconds with no loop, no client and no request; 0: never


async def serve(root: Path, options: ServeOptions | None = None, announce: Any = print) -> None:
    """Run the server of the data directory at `root` until it is told to
    stop (POST /api/server/shutdown, SIGTERM or SIGINT): then its loops stop
    (each records STOPPED) and it exits. Raises ServerRunning when another
    server owns the directory."""
    import uvicorn
    from filelock import FileLock, Timeout

    from .api import create_app
    from .interface import LocalBackend

    options = options or ServeOptions()
    if options.host is not None and not options.token and not is_loopback(options.host):
        raise InvalidInput(f"listening on {options.host} (not a loopback address) needs a token; drop --no-token")
    data_dir = DataDirectory(root)
    try:
        data_dir.root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConvtuiError(describe_os_error(error, "create the data directory")) from None
    lock = FileLock(data_dir.root / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        info = read_info(data_dir) or {}
        raise ServerRunning(f"a server already runs for {data_dir.root} (process {info.get('pid', '?')})") from None
    sockets: list[socket.socket] = []
    backend = None
    path = socket_path(data_dir)
    try:
        backend = await LocalBackend.open(data_dir.root)
        _redact_logs(backend.service)
        token = None
        if options.host is not None and options.token:
            token, created = load_or_create_token(data_dir)
            if created:
                announce(f"bearer token for TCP clients (also in {data_dir.root / TOKEN_NAME}): {token}")

        def shutdown() -> None:
            server.should_exit = True  # uvicorn finishes the requests under way, then serve() returns

        app = _Activity(create_app(backend, token=token, shutdown=shutdown, docs=options.host is not None))
        sockets.append(_unix_socket(path))
        if options.host is not None:
            sockets.append(_tcp_socket(options.host, options.port))
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            ws="none",
        )
        server = uvicorn.Server(config)
        info = {
            "pid": os.getpid(),
            "socket": str(path),
            "host": options.host,
            "port": options.port if options.host is not None else None,
            "version": __version__,
            "started_at": time.time(),
        }
        atomic_write(data_dir.root / INFO_NAME, orjson.dumps(info), mode=0o600)
        resumer = asyncio.create_task(_settle_in(backend), name="settle-in")
        where = f"{path}" + (f" and http://{options.host}:{options.port}" if options.host is not None else "")
        announce(f"convtui server {os.getpid()} serving {data_dir.root} on {where}")
        idle_watch = None
        if options.exit_when_idle > 0:
            idle_watch = asyncio.create_task(_exit_when_idle(backend, app, options.exit_when_idle, shutdown))
        try:
            await server.serve(sockets=sockets)
        finally:
            for task in (resumer, idle_watch):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
    finally:
        for listener in sockets:
            listener.close()
        with contextlib.suppress(OSError):
            if (read_info(data_dir) or {}).get("pid") == os.getpid():
                (data_dir.root / INFO_NAME).unlink()
        with contextlib.suppress(OSError):
            if sockets:
                path.unlink()
        if backend is not None:
            await backend.close()  # its loops stop, each recording STOPPED
        lock.release()


def _redact_logs(service: Any) -> None:
    """No log line carries a key: every handler's output goes through the
    service's Redactor (the settings' key and the provider keys)."""

    class Redacting(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return service.redactor()(super().format(record))

    for handler in logging.getLogger().handlers:
        handler.setFormatter(Redacting("%(asctime)s %(levelname)s %(name)s: %(message)s"))


class _Activity:
    """When the last request came (for the idle exit)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.last = time.monotonic()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.last = time.monotonic()
        await self.app(scope, receive, send)


async def _exit_when_idle(backend: Any, activity: _Activity, seconds: float, shutdown: Any) -> None:
    """Exit once nothing has happened for `seconds`: no loop running, no
    client following the stream (an open UI follows it) and no request.
    An auto-started server does not stay in the background for good."""
    while True:
        await asyncio.sleep(min(seconds, IDLE_CHECK_SECONDS))
        busy = backend.manager.running_ids() or backend.journal.followers
        if busy:
            activity.last = time.monotonic()
        elif time.monotonic() - activity.last >= seconds:
            log.info("exiting: idle for %g s (no loop, no client)", seconds)
            shutdown()
            return


SNAPSHOT_SECONDS = 600


async def _settle_in(backend: Any) -> None:
    """Once serving: start again the loops a killed server left recorded as
    running, then build the search columns (the first filter then does not
    wait for them). Then, every SNAPSHOT_SECONDS, renew the store's snapshot
    if the store changed, so that the next UI opens fast however long the
    server's loops wrote."""
    await _resume_loops(backend)
    await backend.warm()
    while True:
        await asyncio.sleep(SNAPSHOT_SECONDS)
        await asyncio.to_thread(backend.service.store.save_snapshot)


async def _resume_loops(backend: Any) -> None:
    """Start again the loops a killed server left recorded as running."""
    for conversation_id in await backend.service.loops_left_running():
        try:
            await backend.start(conversation_id)
            log.warning("resumed the loop of %s (its server had stopped without stopping it)", conversation_id[:8])
        except ConvtuiError as error:
            log.warning("could not resume %s: %s", conversation_id[:8], error)


# -- clients' side: find, start, stop ---------------------------------------------------


def _answers(path: Path, timeout: float = 2.0) -> dict[str, Any] | None:
    """The server's /api/server answer over its socket, or None."""
    if not path.exists():
        return None  # (before importing httpx: a command with no server to ask starts ~80 ms sooner)
    import httpx

    from .client import socket_client

    try:
        with socket_client(path, timeout) as client:
            response = client.get("/api/server")
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def server_status(root: Path) -> dict[str, Any] | None:
    """What the running server of `root` says about itself, or None."""
    data_dir = DataDirectory(root)
    path = socket_path(data_dir)
    answer = _answers(path)
    if answer is not None:
        answer["socket"] = str(path)
        info = read_info(data_dir) or {}
        answer["host"], answer["port"] = info.get("host"), info.get("port")
    return answer


def idle_seconds(raw: str | None = None) -> float:
    """How long a server started in the background may stay idle (0: for
    ever): `raw`, else $CONVTUI_SERVER_IDLE_SECONDS, else 30 minutes."""
    text = raw if raw is not None else os.environ.get(IDLE_VARIABLE, str(IDLE_DEFAULT_SECONDS))
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds < float("inf"):
        raise InvalidInput(f"{IDLE_VARIABLE if raw is None else 'the idle time'} must be a number of seconds (0: never), not {text[:40]!r}")
    return seconds


def ensure_server(root: Path) -> Path:
    """The socket of the server of `root`, starting one in the background
    when none answers (detached from this terminal: it outlives it). Raises
    ServerUnavailable with the reason when it does not come up."""
    data_dir = DataDirectory(root)
    path = socket_path(data_dir)
    if _answers(path) is not None:
        return path
    idle = idle_seconds()
    try:
        data_dir.root.mkdir(parents=True, exist_ok=True)
        log_file = open(data_dir.root / LOG_NAME, "ab")  # noqa: SIM115 (the child keeps it)
    except OSError as error:
        raise ServerUnavailable(describe_os_error(error, "start a server in")) from None
    with log_file:
        child = subprocess.Popen(
            [sys.executable, "-m", "convtui", "--data-dir", str(data_dir.root), "serve", "--exit-when-idle", str(idle)],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,  # no controlling terminal: a SIGHUP there does not reach it
            close_fds=True,
            cwd=data_dir.root,
        )
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _answers(path, timeout=1.0) is not None:
            return path
        if child.poll() is not None and child.returncode != 0:
            break  # it failed (a server that lost a start race exits 0 and we keep waiting)
        time.sleep(0.05)
    raise ServerUnavailable(f"the convtui server did not start: {_last_log_line(data_dir)} (log: {data_dir.root / LOG_NAME})")


def _last_log_line(data_dir: DataDirectory) -> str:
    try:
        lines = (data_dir.root / LOG_NAME).read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "it logged nothing"


def stop_server(root: Path, timeout: float = 30.0) -> dict[str, Any] | None:
    """Ask the server of `root` to stop its loops and exit; wait until it
    has. None when no server ran; else what it was running."""
    from .client import socket_client

    data_dir = DataDirectory(root)
    path = socket_path(data_dir)
    answer = _answers(path)
    if answer is None:
        return None
    with socket_client(path, timeout) as client:
        stopping = client.post("/api/server/shutdown").json()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _process_alive(answer["pid"]):
            return {**answer, **stopping}
        time.sleep(0.05)
    raise ConvtuiError(f"the server (process {answer['pid']}) did not stop within {timeout:g} s")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A child of ours that exited stays a zombie until reaped.
    with contextlib.suppress(ChildProcessError):
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished == pid:
            return False
    return True
