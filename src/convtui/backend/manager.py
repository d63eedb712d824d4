"""ConversationManager: starts, stops and talks to agent loops, one asyncio
task per running conversation in this process.

- `start` is idempotent; a conversation another process runs is refused,
  naming that process; the number of loops is capped (max_concurrent_loops).
- `stop` cancels the task (a running command's process group is killed, an
  LLM call is abandoned) and the loop records STOPPED, keeping its events.
  A loop in another process is asked through a `stop.request` file that its
  manager polls.
- `subscribe` publishes every state change and event as it happens (see
  updates.py; update_journal.py numbers them for the server's stream)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from typing import TYPE_CHECKING

from .errors import ConvtuiError, InvalidInput, MissingSettings
from .events import EventDict
from .redaction import provider_keys_in_environment
from .loop_lock import STOP_REQUEST_NAME, LoopLock, runner_pid
from .models import AgentState, ConversationInfo, ConversationStatus, check_message, validate_reason
from .service import ConversationService, LiveState, user_message
from .updates import EventAdded, Subscriber, UpdateHub

if TYPE_CHECKING:  # imported when a loop starts: a command that runs none starts sooner
    from pathlib import Path

    from .agent import AgentLoop, Decision
    from .llm import LLMConfig
    from .runtime import Workspace
    from .settings import Settings

log = logging.getLogger(__name__)

STOP_WAIT_SECONDS = 3.0


class LoopLimitReached(ConvtuiError):
    pass


class RunningElsewhere(ConvtuiError):
    def __init__(self, conversation_id: str, pid: int) -> None:
        self.pid = pid
        holder = f"process {pid}" if pid else "another process"
        super().__init__(f"conversation {conversation_id[:8]} is already running in {holder}")


@dataclass
class _Running:
    loop: AgentLoop
    task: asyncio.Task[None]
    lock: LoopLock


@dataclass(frozen=True)
class StopResult:
    conversation_id: str
    was_running: bool
    status: ConversationStatus
    message: str


class ConversationManager:
    outlives_the_ui = False  # its loops end with the process (ServerLoops': they go on)

    def __init__(self, service: ConversationService, retry_delay: float = 1.0) -> None:
        self.service = service
        self.hub = UpdateHub()
        self.retry_delay = retry_delay
        self.replay_delay = 0.0  # seconds between replayed steps (the demo slows them to be watched)
        self._running: dict[str, _Running] = {}
        self._starting: dict[str, asyncio.Lock] = {}  # one start of a conversation at a time
        self._reserved: set[str] = set()  # starts past the loop limit's check, not yet running
        self._watcher: asyncio.Task[None] | None = None
        service.loops = self

    # -- subscriptions -------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber(update)` for every LoopUpdate from now on (on the
        event loop; it must not block). Returns the unsubscribe function."""
        return self.hub.subscribe(subscriber)

    async def watch_text(self, conversation_id: str) -> None:
        """Stream this conversation's replies for a while (UpdateHub.watch_text)."""
        self.hub.watch_text(conversation_id)

    # -- what runs -----------------------------------------------------------------

    def live_states(self) -> dict[str, LiveState]:
        # Called from worker threads while the event loop adds and removes
        # loops: copy the items first (list() of a dict runs without a GIL switch).
        return {conversation_id: self._state(running) for conversation_id, running in list(self._running.items())}

    def live_state(self, conversation_id: str) -> LiveState | None:
        running = self._running.get(conversation_id)
        return self._state(running) if running is not None else None

    @staticmethod
    def _state(running: _Running) -> LiveState:
        return LiveState(
            status=running.loop.status,
            runtime_status=running.loop.runtime_status,
            agent_state=running.loop.agent_state,
            num_connections=1,
            status_message=running.loop.status_message,
            metrics=running.loop.metrics,
            processes=tuple(process.command for process in running.loop.workspace.background_processes()),
        )

    def is_running(self, conversation_id: str) -> bool:
        return conversation_id in self._running

    def running_ids(self) -> list[str]:
        return list(self._running)

    def pending_action(self, conversation_id: str) -> EventDict | None:
        running = self._running.get(conversation_id)
        return running.loop.pending_action if running else None

    async def stop_processes(self, conversation_id: str) -> int:
        """Stop the background processes of the conversation's workspace
        (its loop runs on); how many were running. Raises NotFound."""
        full_id = await self.service.resolve(conversation_id)
        running = self._running.get(full_id)
        return await running.loop.workspace.stop_background() if running else 0

    # -- start and stop ------------------------------------------------------------

    async def start(self, conversation_id: str, until_idle: bool = False, confirm: bool | None = None) -> LiveState:
        """Start the loop (idempotent: a running loop's state is returned).
        Raises NotFound, MissingSettings (no model and nothing to replay),
        LoopLimitReached or RunningElsewhere. With `until_idle` the loop ends
        once the agent waits for the user. `confirm` overrides the
        confirmation_mode setting for this run."""
        full_id = (await self.service.get(conversation_id)).conversation_id
        # Two starts of one conversation at once (a resume beside a key
        # press): the second waits for the first, then finds it running,
        # rather than failing on its own loop's lock as "running elsewhere".
        async with self._starting.setdefault(full_id, asyncio.Lock()):
            return await self._start(full_id, until_idle, confirm)

    async def _start(self, full_id: str, until_idle: bool, confirm: bool | None) -> LiveState:
        from .llm import LLMConfig
        from .settings import with_experiment

        if full_id in self._running:
            return self._state(self._running[full_id])
        settings = await self.service.load_settings()
        experiment = await self.service.get_experiment_config(full_id)
        settings = with_experiment(settings, experiment.config if experiment else None)
        directory = self.service.data_dir.conversation(full_id)
        replay_pending = (directory / "replay.json").exists() and not (directory / "replay.done").exists()
        try:
            llm_config: LLMConfig | None = LLMConfig.from_settings(settings)
        except MissingSettings:
            if not replay_pending:
                raise
            llm_config = None
        # Starts run side by side (the UI starts the marked ones at once):
        # those under way count against the limit too.
        taken = len(self._running) + len(self._reserved)
        if taken >= settings.max_concurrent_loops:
            raise LoopLimitReached(
                f"{taken} loops are running; the limit is {settings.max_concurrent_loops} "
                "(setting max_concurrent_loops): stop one first"
            )
        self._reserved.add(full_id)
        try:
            return await self._launch(full_id, settings, llm_config, directory, until_idle, confirm)
        finally:
            self._reserved.discard(full_id)

    async def _launch(
        self, full_id: str, settings: Settings, llm_config: LLMConfig | None, directory: Path, until_idle: bool, confirm: bool | None
    ) -> LiveState:
        from .agent import AgentLoop
        from .runtime import Workspace
        from .sandbox import SandboxPolicy
        from .sandbox import for_conversation as sandbox_for_conversation

        lock = LoopLock(directory)
        holder = await asyncio.to_thread(lock.acquire)
        if holder is not None:
            raise RunningElsewhere(full_id, holder)
        if confirm is not None:
            settings = settings.model_copy(update={"confirmation_mode": confirm})
        secrets = [settings.api_key() or "", *provider_keys_in_environment()]
        policy = SandboxPolicy.from_settings(settings)
        root = self.service.data_dir.workspace(full_id)

        def make_workspace() -> Workspace:
            # Directories made and looked at: in a thread, as 200 starts at
            # once held the event loop for 150 ms here.
            sandbox = sandbox_for_conversation(policy, self.service.data_dir.root, directory, root)
            with contextlib.suppress(FileNotFoundError):
                (directory / STOP_REQUEST_NAME).unlink()
            return Workspace(root, hidden_secrets=secrets, sandbox=sandbox, policy=policy)

        try:
            workspace = await asyncio.to_thread(make_workspace)
        except BaseException:
            lock.release()  # no loop runs: another start may take it
            raise
        loop = AgentLoop(
            full_id,
            self.service,
            self.hub,
            settings,
            llm_config,
            workspace,
            until_idle=until_idle,
            retry_delay=self.retry_delay,
            secrets=secrets,
            replay_delay=self.replay_delay,
        )
        task = asyncio.create_task(loop.run(), name=f"loop-{full_id[:8]}")
        self._running[full_id] = _Running(loop, task, lock)
        task.add_done_callback(lambda _: self._finished(full_id))
        self._ensure_watcher()
        return self._state(self._running[full_id])

    def _finished(self, conversation_id: str) -> None:
        running = self._running.pop(conversation_id, None)
        if running is not None:
            running.lock.release()
            if not running.task.cancelled() and running.task.exception() is not None:
                log.error("loop %s ended with %r", conversation_id, running.task.exception())

    async def wait(self, conversation_id: str) -> None:
        """Until the loop of this conversation (in this process) ends."""
        running = self._running.get(conversation_id)
        if running is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(running.task)

    async def stop(self, conversation_id: str) -> StopResult:
        """Stop the loop, here or in another process. A conversation that was
        not running gives was_running False and its status."""
        info = await self.service.get(conversation_id)
        full_id = info.conversation_id
        running = self._running.get(full_id)
        if running is not None:
            running.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running.task
            return StopResult(full_id, True, ConversationStatus.STOPPED, "stopped")
        directory = self.service.data_dir.conversation(full_id)
        pid = await asyncio.to_thread(runner_pid, directory)
        if pid is None:
            return StopResult(full_id, False, info.status, f"was not running ({info.status.value})")
        await asyncio.to_thread((directory / STOP_REQUEST_NAME).write_bytes, b"")
        deadline = asyncio.get_running_loop().time() + STOP_WAIT_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
            if await asyncio.to_thread(runner_pid, directory) is None:
                return StopResult(full_id, True, ConversationStatus.STOPPED, f"stopped (was running in process {pid})")
        raise ConvtuiError(f"process {pid} did not stop conversation {full_id[:8]} within {STOP_WAIT_SECONDS:g} s")

    async def connect(self) -> None:
        """Nothing to reach: the loops run in this process."""

    async def stop_all(self) -> int:
        """Stop every loop of this process; how many were running."""
        count = len(self._running)
        await self.shutdown()
        return count

    async def shutdown(self) -> None:
        """Stop every loop of this process (each records STOPPED)."""
        for conversation_id in list(self._running):
            running = self._running.get(conversation_id)
            if running is not None:
                running.task.cancel()
        for running in list(self._running.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await running.task
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    def _ensure_watcher(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch_stop_requests(), name="stop-requests")

    async def _watch_stop_requests(self) -> None:
        """Stop loops that another process asked to stop."""
        while self._running:
            await asyncio.sleep(0.25)
            requested = await asyncio.to_thread(
                lambda: [
                    conversation_id
                    for conversation_id in list(self._running)
                    if (self.service.data_dir.conversation(conversation_id) / STOP_REQUEST_NAME).exists()
                ]
            )
            for conversation_id in requested:
                with contextlib.suppress(FileNotFoundError):
                    (self.service.data_dir.conversation(conversation_id) / STOP_REQUEST_NAME).unlink()
                running = self._running.get(conversation_id)
                if running is not None:
                    running.task.cancel()

    # -- talking to a loop ---------------------------------------------------------

    async def send_message(self, conversation_id: str, text: str) -> EventDict:
        """Add a user message. A running loop (here or elsewhere) answers it;
        a stopped conversation answers it when next started."""
        try:
            check_message(text)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        if not text.strip():
            raise InvalidInput("message is empty")
        full_id = (await self.service.get(conversation_id)).conversation_id
        [stored] = await self.service.append_events(full_id, [user_message(text)])
        running = self._running.get(full_id)
        if running is not None:
            self.hub.publish(EventAdded(full_id, stored))
            running.loop.wake()
        return stored

    def _awaiting(self, conversation_id: str) -> AgentLoop:
        running = self._running.get(conversation_id)
        if running is None or running.loop.agent_state is not AgentState.AWAITING_USER_CONFIRMATION:
            raise InvalidInput(f"conversation {conversation_id[:8]} has no action waiting for confirmation")
        return running.loop

    async def approve(self, conversation_id: str, always: bool = False) -> None:
        """Approve the pending action; `always` approves every later one of
        this conversation too, across stops and restarts, until
        `set_always_approve(..., False)`."""
        full_id = await self.service.resolve(conversation_id)
        self._awaiting(full_id).decide(_decision(approved=True, always=always))

    async def set_always_approve(self, conversation_id: str, on: bool) -> ConversationInfo:
        """Turn "always approve" on or off for a conversation; its loop (here
        or in another process) heeds it from the next action on. An action
        already waiting stays waiting. Raises NotFound."""
        return await self.service.update_metadata(conversation_id, always_approve=on)

    async def reject(self, conversation_id: str, reason: str | None = None) -> None:
        """Reject the pending action; the agent reads `reason` with the rejection."""
        full_id = await self.service.resolve(conversation_id)
        self._awaiting(full_id).decide(_decision(approved=False, reason=validate_reason(reason)))



def _decision(approved: bool, always: bool = False, reason: str | None = None) -> Decision:
    from .agent import Decision  # noqa: F811 (the TYPE_CHECKING import is only a name)

    return Decision(approved=approved, always=always, reason=reason)
