"""Which Backend a UI or a command gets: the data directory's server (started
in the background when one is needed and none runs, like tmux), or the
in-process backend (`--no-server`, the `server` setting off, or
CONVTUI_SERVER=off)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from .data_dir import DataDirectory
from .errors import ConvtuiError
from .interface import Backend, LocalBackend
from .manager import ConversationManager
from .server import ensure_server, server_status, socket_path
from .service import ConversationService
from .settings import SettingsStore


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


async def open_backend(
    root: Path, *, no_server: bool = False, start: bool = True, service: ConversationService | None = None
) -> Backend:
    """The server's backend when a server is wanted and runs (or, with
    `start`, once one has been started); else the in-process one (over
    `service` when given: closing the backend closes it too)."""
    from .client import RemoteBackend

    if server_wanted(root, no_server):
        if start:
            return RemoteBackend.over_socket(await asyncio.to_thread(ensure_server, root))
        if await asyncio.to_thread(server_status, root) is not None:
            return RemoteBackend.over_socket(socket_path(DataDirectory(root)))
    if service is not None:
        return LocalBackend(service, ConversationManager(service))
    return await LocalBackend.open(root)


async def open_ui_backend(root: Path, *, user_id: str | None = None, no_server: bool = False) -> LocalBackend:
    """The UI's backend: the store read here (the list at 100,000 rows is as
    fast as in-process), the loops run by the server when one is wanted (it
    is started, in the background, on `connect()`) or else here. Raises
    ConvtuiError when the data directory cannot be opened."""
    from .server_loops import ServerLoops

    service = await ConversationService.open(root, user_id=user_id)
    if await asyncio.to_thread(server_wanted, root, no_server):
        return LocalBackend(service, ServerLoops(service, lambda: ensure_server(root)))
    return LocalBackend(service, ConversationManager(service))
