"""Which Backend a UI or a command gets: the data directory's server (started
in the background when one is needed and none runs, like tmux), or the
in-process backend (`--no-server`, the `server` setting off, or
CONVTUI_SERVER=off)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

from typing import TYPE_CHECKING

from .data_dir import DataDirectory
from .errors import ConvtuiError
from .server import ensure_server, server_status, socket_path
from .settings import SettingsStore

if TYPE_CHECKING:  # imported where used: a command that talks to a server needs neither
    from .interface import Backend, LocalBackend
    from .openhands_backend import OpenHandsBackend
    from .openhands_ui_backend import OpenHandsUIBackend


SERVER_VARIABLE = "CONVTUI_SERVER"


def server_wanted(root: Path, no_server: bool = False) -> bool:
    """False with --no-server, CONVTUI_SERVER=off (or 0, no, false), or the
    `server` setting off. Unreadable settings: the default, on."""
    if no_server or os.environ.get(SERVER_VARIABLE, "").strip().lower() in ("off", "0", "no", "false"):
        return False
    try:
        return SettingsStore(DataDirectory(root).settings).load().server
    except ConvtuiError:
        return True


async def open_backend(root: Path, *, no_server: bool = False, start: bool = True) -> Backend:
    """The server's backend when a server is wanted and runs (or, with
    `start`, once one has been started); else the in-process one."""
    if server_wanted(root, no_server):
        if start:
            return _over_socket(await asyncio.to_thread(ensure_server, root))
        if await asyncio.to_thread(server_status, root) is not None:
            return _over_socket(socket_path(DataDirectory(root)))
    from .interface import LocalBackend

    return await LocalBackend.open(root)


def _over_socket(path: Path) -> Backend:
    from .client import RemoteBackend  # (httpx: ~80 ms to import, for commands that talk to a server)

    return RemoteBackend.over_socket(path)


async def open_ui_backend(root: Path, *, user_id: str | None = None, no_server: bool = False) -> LocalBackend:
    """The UI's backend: the store read here (the list at 100,000 rows is as
    fast as in-process), the loops run by the server when one is wanted (it
    is started, in the background, on `connect()`) or else here. Raises
    ConvtuiError when the data directory cannot be opened."""
    from .interface import LocalBackend
    from .manager import ConversationManager
    from .server_loops import ServerLoops
    from .service import ConversationService

    service = await ConversationService.open(root, user_id=user_id)
    if await asyncio.to_thread(server_wanted, root, no_server):
        return LocalBackend(service, ServerLoops(service, lambda: ensure_server(root)))
    return LocalBackend(service, ConversationManager(service))


async def open_remote_backend(root: Path, name: str, on_wait: Callable[[str], None] | None = None) -> OpenHandsBackend:
    """The backend of the OpenHands server added as `name` (convtui remote
    add); `on_wait` hears why a call waits. Raises ConvtuiError (no such remote...)."""
    from .openhands_backend import OpenHandsBackend
    from .remotes import RemotesStore

    remote = await asyncio.to_thread(RemotesStore(root).get, name)
    return OpenHandsBackend.for_remote(remote, on_wait=on_wait, root=root)


async def open_remote_ui_backend(
    root: Path,
    name: str,
    on_wait: Callable[[str], None] | None = None,
    on_reach: Callable[[str], None] | None = None,
) -> OpenHandsUIBackend:
    """A UI's backend on that server, its first page read: `on_reach` hears
    the server's URL before it is asked, `on_wait` why it waits then. Raises
    ConvtuiError when it cannot be reached."""
    from .openhands_ui_backend import OpenHandsUIBackend
    from .remotes import RemotesStore

    remote = await asyncio.to_thread(RemotesStore(root).get, name)
    backend = OpenHandsUIBackend.for_remote(remote, root=root)
    if on_reach is not None:
        on_reach(backend.where)
    try:
        await backend.open(on_wait=on_wait)
    except BaseException:
        await backend.close()
        raise
    return backend


async def reach_remote(root: Path, name: str, on_wait: Callable[[str], None] | None = None) -> str:
    """Reach remote `name` with its key: what it answered, in one line
    (raises ConvtuiError); `on_wait` hears why it waits meanwhile."""
    backend = await open_remote_backend(root, name, on_wait)
    try:
        count = await backend.count()
    finally:
        await backend.close()
    return f"{name}: {backend.where} answers; it holds {count:,} conversation(s)"
