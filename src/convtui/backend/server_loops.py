"""The loops of a data directory's server, as the UI uses a loop manager.

The UI reads conversations and events from the shared data directory (the
list at 100,000 rows stays as fast as in-process) and leaves every loop to
the server: start, stop, send and decisions go to it, and what runs and what
awaits approval is mirrored from its live stream, so the UI's quick
questions (`is_running`, `pending_action`) need no round trip. Leaving the UI
(`shutdown`) detaches: the loops go on in the server."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConvtuiError
from .events import EventDict
from .interface import STOPPED
from .manager import StopResult
from .models import AgentState, ConversationInfo, ConversationStatus
from .service import ConversationService, LiveState
from .update_journal import StreamReset
from .updates import LoopUpdate, MetricsChanged, ProcessesChanged, StatusChanged, Subscriber, UpdateHub

if TYPE_CHECKING:
    from .client import RemoteBackend

log = logging.getLogger(__name__)

_ENDED = (ConversationStatus.STOPPED, ConversationStatus.ERROR)
_METRICS = {"accumulated_cost", "prompt_tokens", "completion_tokens", "total_tokens"}  # what MetricsChanged carries


class ServerLoops:
    outlives_the_ui = True  # quitting the UI leaves these loops running

    def __init__(self, service: ConversationService, connect: Callable[[], Path]) -> None:
        """`connect()` (run in a thread) returns the server's socket, starting
        the server when none runs."""
        self.service = service
        self.hub = UpdateHub()
        self._connect = connect
        self._remote: RemoteBackend | None = None
        self._connected = asyncio.Event()
        self._failure: ConvtuiError | None = None
        self._live: dict[str, LiveState] = {}
        self._pending: dict[str, EventDict] = {}
        self._follower: asyncio.Task[None] | None = None
        service.loops = self

    # -- connecting ------------------------------------------------------------------

    async def connect(self) -> None:
        """Reach (or start) the server, take in what runs there, then follow
        its stream. Raises ConvtuiError when no server can be had; every
        later call then raises it too."""
        try:
            path = await asyncio.to_thread(self._connect)
            # (httpx takes ~50 ms to import: not on the event loop, not before the first paint)
            client = await asyncio.to_thread(importlib.import_module, f"{__package__}.client")
            self._remote = client.RemoteBackend.over_socket(path, revive=self._connect)  # a server gone is started again
            info = await self._remote.server_info()
            await self._reload(info["running"])
        except ConvtuiError as error:
            self._failure = error
            self._connected.set()
            raise
        self._follower = asyncio.create_task(self._follow(info["position"]), name="server-stream")
        self._connected.set()

    @property
    def connected(self) -> bool:
        return self._remote is not None

    async def _server(self) -> RemoteBackend:
        await self._connected.wait()
        if self._remote is None:
            raise self._failure or ConvtuiError("not connected to the convtui server")
        return self._remote

    async def _reload(self, running: list[str]) -> None:
        """What runs and what waits, read afresh (at connect, after a reset)."""
        assert self._remote is not None
        live: dict[str, LiveState] = {}
        pending: dict[str, EventDict] = {}
        for conversation_id in running:
            try:
                info = await self._remote.get(conversation_id)
                action = await self._remote.pending_action(conversation_id)
                processes = tuple(await self._remote.processes(conversation_id))
            except ConvtuiError:
                continue
            live[conversation_id] = LiveState(
                info.status, info.runtime_status, info.agent_state, info.num_connections, info.status_message,
                info.model_dump(include=_METRICS), processes,
            )  # fmt: skip
            if action is not None:
                pending[conversation_id] = action
        self._live, self._pending = live, pending

    async def _follow(self, position: str) -> None:
        assert self._remote is not None
        async for update in self._remote.updates(position):
            try:
                if isinstance(update, StreamReset):
                    await self._look_again()
                    continue
                await self._take(update)
            except ConvtuiError as error:
                log.warning("server stream: %s", error)
                continue
            self.hub.publish(update)

    async def _look_again(self) -> None:
        """After a reset or a dropped stream: what runs now. A server that is
        gone ran nothing any more: its loops show stopped (they are resumed
        by the next server, which the next action starts)."""
        assert self._remote is not None
        before = dict(self._live)
        try:
            # Asked without reviving a server: only an action starts one.
            running = (await self._remote.server_info(revive=False))["running"]
        except ConvtuiError:
            running = []
        await self._reload(running)
        for conversation_id in before.keys() - self._live.keys():
            self.hub.publish(StatusChanged(conversation_id, ConversationStatus.STOPPED, None, None))
        for conversation_id, state in list(self._live.items()):
            self.hub.publish(StatusChanged(conversation_id, state.status, state.runtime_status, state.agent_state))

    async def _take(self, update: LoopUpdate) -> None:
        conversation_id = update.conversation_id
        known = self._live.get(conversation_id)
        if isinstance(update, MetricsChanged) and known is not None:
            metrics = {name: getattr(update, name) for name in _METRICS}
            self._live[conversation_id] = dataclasses.replace(known, metrics={**(known.metrics or {}), **metrics})
        if isinstance(update, ProcessesChanged) and known is not None:
            self._live[conversation_id] = dataclasses.replace(known, processes=update.commands)
        if not isinstance(update, StatusChanged):
            return
        if update.status in _ENDED:
            self._live.pop(conversation_id, None)
            self._pending.pop(conversation_id, None)
            return
        self._live[conversation_id] = LiveState(
            update.status, update.runtime_status, update.agent_state, 1, update.message,
            known.metrics if known else None, known.processes if known else (),
        )  # fmt: skip
        if update.agent_state is AgentState.AWAITING_USER_CONFIRMATION:
            action = await self._remote.pending_action(conversation_id) if self._remote else None
            if action is not None:
                self._pending[conversation_id] = action
        else:
            self._pending.pop(conversation_id, None)

    # -- what the UI asks without waiting ---------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        return self.hub.subscribe(subscriber)

    def live_states(self) -> dict[str, LiveState]:
        return dict(self._live)

    def live_state(self, conversation_id: str) -> LiveState | None:
        return self._live.get(conversation_id)

    def is_running(self, conversation_id: str) -> bool:
        return conversation_id in self._live

    def running_ids(self) -> list[str]:
        return list(self._live)

    def pending_action(self, conversation_id: str) -> EventDict | None:
        return self._pending.get(conversation_id)

    # -- what the server does ---------------------------------------------------------

    async def start(self, conversation_id: str, until_idle: bool = False, confirm: bool | None = None) -> LiveState:
        status = await (await self._server()).start(conversation_id, confirm=confirm, until_idle=until_idle)
        full_id = await self.service.resolve(conversation_id)
        state = self._live.setdefault(full_id, LiveState(status))
        return state

    async def stop(self, conversation_id: str) -> StopResult:
        response = await (await self._server()).stop(conversation_id)
        was_running = response.message == STOPPED
        self._live.pop(response.conversation_id, None)
        self._pending.pop(response.conversation_id, None)
        status = response.conversation_status or ConversationStatus.STOPPED
        message = "stopped" if was_running else f"was not running ({status.value})"
        return StopResult(response.conversation_id, was_running, ConversationStatus.STOPPED if was_running else status, message)

    async def send_message(self, conversation_id: str, text: str) -> EventDict:
        return await (await self._server()).send_message(conversation_id, text)

    async def watch_text(self, conversation_id: str) -> None:
        await (await self._server()).watch_text(conversation_id)

    async def approve(self, conversation_id: str, always: bool = False) -> None:
        await (await self._server()).approve(conversation_id, always=always)

    async def reject(self, conversation_id: str, reason: str | None = None) -> None:
        await (await self._server()).reject(conversation_id, reason=reason)

    async def set_always_approve(self, conversation_id: str, on: bool) -> ConversationInfo:
        return await (await self._server()).set_always_approve(conversation_id, on)

    async def stop_processes(self, conversation_id: str) -> int:
        return await (await self._server()).stop_processes(conversation_id)

    async def stop_all(self) -> int:
        """Stop every loop the server runs; how many were running."""
        server = await self._server()
        running = (await server.server_info())["running"]
        for conversation_id in running:
            with contextlib.suppress(ConvtuiError):
                await server.stop(conversation_id)
        return len(running)

    async def shutdown(self) -> None:
        """Detach: the loops go on in the server."""
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower
            self._follower = None
        if self._remote is not None:
            await self._remote.close()
            self._remote = None
            self._failure = ConvtuiError("detached from the convtui server")
