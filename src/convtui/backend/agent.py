"""One conversation's agent loop: an asyncio task that sets up the
workspace, replays a trajectory if there is one, then answers each user
message by calling the model and carrying out its tool calls until it
replies, finishes, or hits a limit.

Every action and observation is appended to the event log before anything
else hears of it; every state change is published to subscribers and
stored in the conversation's metadata."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from .durable_files import atomic_write
from .errors import ConvtuiError
from .events import EventDict, event_kind
from .history import build_messages, system_prompt
from .inbox import ATTENTION_ERROR, ATTENTION_LIMIT
from .llm import (
    STARTING_MODEL_WORKER,
    LLMConfig,
    LLMFailure,
    LLMResponse,
    complete,
    model_worker_ready,
    wait_for_model_worker,
)
from .models import AgentState, ConversationStatus, RuntimeStatus, default_title
from .redaction import Redactor
from .replay import (
    REPLAYED_ACTIONS,
    SKIPPED_ERROR_ID,
    describe_skipped,
    replay_steps,
    replayed_event_ids,
    skipped_kinds,
    steps_recorded,
)
from .runtime import Workspace
from .settings import Settings
from .tools import (
    CONFIRMED_ACTIONS,
    TOOL_DEFINITIONS,
    ToolCallError,
    run_observation,
    action_from_tool_call,
    error_observation,
    execute,
    observation,
)
from .updates import (
    EventAdded,
    MetricsChanged,
    ProcessesChanged,
    StatusChanged,
    TextStreamed,
    TitleChanged,
    UpdateHub,
)

if TYPE_CHECKING:
    from .service import ConversationService

log = logging.getLogger(__name__)

TITLE_PROMPT = (
    "Write a short title (at most 50 characters) for a conversation that starts with the user's "
    "message below. Answer with the title only, no quotes."
)
RATE_LIMIT_RETRIES = 3
TRANSIENT_RETRIES = 2
POLL_SECONDS = 0.25
# Cost and tokens go on the live stream after every model call, and to the
# store at most this often (a state change, and the end, write them at once):
# fast iterations of many loops would otherwise rewrite a store shard each.
# Rows and answers of the process running the loop (the server) show the
# newest at once: they join the loop's LiveState.metrics.
METRICS_WRITE_SECONDS = 10.0


# Why an action has no result: the loop was stopped before it ran, or the
# loop's process was killed while it ran (its output is lost with it).
STOPPED_BEFORE_IT_RAN = "interrupted: the loop stopped before this action ran"
KILLED_DURING_IT = "interrupted: the loop's process ended before this action finished; it may have run in part"


def _recording_start(marker: bytes) -> int:
    """The first event id of a replay's own steps, as replay.recording keeps
    it (empty, as older versions wrote it: from the start)."""
    try:
        return max(0, int(marker.strip() or b"0"))
    except ValueError:
        return 0


class LoopEnded(Exception):
    """The loop stops on purpose (a limit); the reason is recorded, and
    `attention` ("limit", "error") puts the conversation in the inbox."""

    def __init__(self, reason: str, attention: str = ATTENTION_LIMIT) -> None:
        super().__init__(reason)
        self.attention = attention


@dataclass
class Decision:
    approved: bool
    always: bool = False
    reason: str | None = None  # why it was rejected, for the agent


def _rejection(reason: str | None) -> str:
    """What the agent reads when the user rejects its action."""
    return f"The user rejected this action. Their reason: {reason}" if reason else "The user rejected this action."


def _printable(text: str) -> str:
    return "".join(character for character in " ".join(text.split()) if character.isprintable())


def clip_title(raw: str) -> str:
    """A model's title, cleaned and cut to 50 characters (47 + '...')."""
    title = _printable(raw).strip().strip("\"'`").strip()
    return title if len(title) <= 50 else title[:47] + "..."


def fallback_title(message: str) -> str:
    """The first 30 characters of the message, '...' if there was more."""
    flat = _printable(message).strip()
    return flat if len(flat) <= 30 else flat[:30] + "..."


class AgentLoop:
    """Driven by the ConversationManager; `run()` is the task's coroutine."""

    def __init__(
        self,
        conversation_id: str,
        service: ConversationService,
        hub: UpdateHub,
        settings: Settings,
        llm_config: LLMConfig | None,
        workspace: Workspace,
        until_idle: bool = False,
        retry_delay: float = 1.0,
        secrets: list[str] | None = None,
        replay_delay: float = 0.0,
    ) -> None:
        self.conversation_id = conversation_id
        self.service = service
        self.hub = hub
        self.settings = settings
        self.llm_config = llm_config
        self.workspace = workspace
        self.until_idle = until_idle
        self.retry_delay = retry_delay
        self.secrets = [secret for secret in secrets or [] if secret]
        self._redactor = Redactor(self.secrets)
        self.replay_delay = replay_delay
        self.confirmation_mode = settings.confirmation_mode
        self.status = ConversationStatus.STARTING
        self.runtime_status: RuntimeStatus | None = RuntimeStatus.STARTING_RUNTIME
        self.agent_state: AgentState | None = AgentState.LOADING
        self.status_message: str | None = None
        self.pending_action: EventDict | None = None
        self._decision: asyncio.Future[Decision] | None = None
        self._wake = asyncio.Event()
        self._event_log = None
        self._title_task: asyncio.Task[None] | None = None
        self._stopped_command: EventDict | None = None  # the observation of a command the stop cut short
        workspace.on_processes_changed = self._processes_changed
        self._default_title = False
        self._metadata_write: asyncio.Future[None] | None = None
        self._unsaved_metrics: dict[str, Any] | None = None
        self.metrics: dict[str, Any] = {}  # after the last model call; the store gets them within METRICS_WRITE_SECONDS
        self._metrics_written_at = float("-inf")  # loop.time()
        self._metrics_timer: asyncio.TimerHandle | None = None
        self._metrics_flush: asyncio.Future[None] | None = None
        self._system_prompt: str | None = None
        self._cost: float | None = 0.0
        # events a replay recorded: not something the user is waiting on
        self._replayed: set[int] = set()
        # the newest event the model was shown (-1: no call yet in this run)
        self._model_saw = -1
        self._tokens = (0, 0)

    # -- control (called by the manager) -----------------------------------------

    def wake(self) -> None:
        """Something arrived (a user message): look at the log again."""
        self._wake.set()

    def decide(self, decision: Decision) -> bool:
        """Answer the pending confirmation. False if nothing was pending."""
        if self._decision is None or self._decision.done():
            return False
        self._decision.set_result(decision)
        return True

    # -- state ---------------------------------------------------------------------

    async def _set(
        self,
        status: ConversationStatus | None = None,
        runtime_status: RuntimeStatus | None = None,
        agent_state: AgentState | None = None,
        message: str | None = None,
        attention: str | None = None,
    ) -> None:
        """A state change: on the stream, and stored with the metrics not
        stored yet. `attention` is stored with every change: only the end of
        a loop sets it, and any later change (a restart) clears it."""
        self.status = status or self.status
        self.runtime_status = runtime_status or self.runtime_status
        self.agent_state = agent_state or self.agent_state
        self.status_message = self._redactor(message) if message else message
        message = self.status_message
        self.hub.publish(
            StatusChanged(self.conversation_id, self.status, self.runtime_status, self.agent_state, message, attention)
        )
        await self._write_metadata(
            **self._take_unsaved_metrics(),
            status=self.status,
            runtime_status=self.runtime_status,
            agent_state=self.agent_state,
            status_message=message,
            runner_pid=os.getpid(),
            runner_host=socket.gethostname(),
            attention=attention,
        )

    def _take_unsaved_metrics(self) -> dict[str, Any]:
        """The metrics not written yet (none: {}); the timer for them is off."""
        if self._metrics_timer is not None:
            self._metrics_timer.cancel()
            self._metrics_timer = None
        unsaved, self._unsaved_metrics = self._unsaved_metrics or {}, None
        if unsaved:
            self._metrics_written_at = asyncio.get_running_loop().time()
        return unsaved

    def _write_metrics_soon(self) -> None:
        self._metrics_timer = None
        self._metrics_flush = asyncio.ensure_future(self._write_metrics())  # kept: a task nobody holds may vanish

    async def _write_metrics(self) -> None:
        unsaved = self._take_unsaved_metrics()
        if unsaved:
            await self._write_metadata(**unsaved)

    async def _write_metadata(self, **changes: Any) -> None:
        """Store metadata changes strictly in the order they were made. A
        write runs on in its thread when the loop is cancelled meanwhile;
        chaining each write after the previous one keeps that late write from
        landing after the final STOPPED."""
        previous = self._metadata_write

        async def write() -> None:
            if previous is not None:
                await asyncio.wait({previous})
            await self.service.update_metadata(self.conversation_id, **changes)

        self._metadata_write = asyncio.ensure_future(write())
        await asyncio.shield(self._metadata_write)

    def _redact(self, event: EventDict) -> EventDict:
        """Keep the loop's API keys out of the log even when the model writes
        one into a command or a message (the service's event log also redacts
        the keys of the settings in force when it appends)."""
        return self._redactor.json(event)

    async def _append(self, event: EventDict) -> EventDict:
        [stored] = await asyncio.to_thread(self._event_log.append, [self._redact(event)])
        self.hub.publish(EventAdded(self.conversation_id, stored))
        return stored

    # -- the task ------------------------------------------------------------------

    async def run(self) -> None:
        self._event_log = await self.service.event_log(self.conversation_id)
        metadata = await self.service.metadata(self.conversation_id)
        self._cost = metadata.accumulated_cost
        self._tokens = (metadata.prompt_tokens, metadata.completion_tokens)
        try:
            await self._set(ConversationStatus.STARTING, RuntimeStatus.STARTING_RUNTIME, AgentState.LOADING)
            if metadata.selected_repository:
                await self._set(runtime_status=RuntimeStatus.SETTING_UP_WORKSPACE)
                await self.workspace.clone(metadata.selected_repository, metadata.selected_branch)
            await self._close_dangling_actions()
            await self._set(ConversationStatus.RUNNING, RuntimeStatus.READY, AgentState.RUNNING)
            self._default_title = metadata.title_derived or metadata.title == default_title(self.conversation_id)
            await self._replay_if_pending()
            self._replayed = await asyncio.to_thread(self._replayed_event_ids)
            await self._converse(metadata)
            # Only a run `until_idle` gets here: the agent waits for the user.
            if self._title_task is not None:
                await asyncio.wait({self._title_task}, timeout=self.llm_config.timeout if self.llm_config else 5)
            await self._set(ConversationStatus.STOPPED, RuntimeStatus.STOPPED, message=self.status_message)
        except asyncio.CancelledError:
            try:
                if self._stopped_command is not None:
                    await self._append(self._stopped_command)
                await self._close_dangling_actions(STOPPED_BEFORE_IT_RAN)
            except Exception:
                log.exception("could not answer the actions of stopped loop %s", self.conversation_id)
            await self._record_end(ConversationStatus.STOPPED, RuntimeStatus.STOPPED, AgentState.STOPPED, "stopped")
            raise
        except LoopEnded as ended:
            await self._record_end(
                ConversationStatus.STOPPED, RuntimeStatus.STOPPED, AgentState.STOPPED, str(ended), ended.attention
            )
        except LLMFailure as failure:
            await self._record_end(
                ConversationStatus.ERROR, failure.runtime_status, failure.agent_state, str(failure), ATTENTION_ERROR
            )
        except ConvtuiError as error:
            await self._record_end(
                ConversationStatus.ERROR, RuntimeStatus.ERROR, AgentState.ERROR, str(error), ATTENTION_ERROR
            )
        except Exception as error:  # a bug must not take other loops down
            log.exception("loop %s failed", self.conversation_id)
            message = f"internal error: {type(error).__name__}: {error}"
            await self._record_end(
                ConversationStatus.ERROR, RuntimeStatus.ERROR, AgentState.ERROR, message, ATTENTION_ERROR
            )
        finally:
            if self._title_task is not None and not self._title_task.done():
                self._title_task.cancel()
            await self.workspace.close()  # what its commands left running dies with the loop

    async def _record_end(
        self,
        status: ConversationStatus,
        runtime_status: RuntimeStatus,
        agent_state: AgentState,
        reason: str,
        attention: str | None = None,
    ) -> None:
        """Record why the loop ended, as an event and in the metadata (with
        `attention`: why a person must decide what next). Runs even while
        the task is being cancelled."""
        try:
            await self._append(
                {
                    "source": "environment",
                    "observation": "agent_state_changed",
                    "content": reason,
                    "extras": {"agent_state": agent_state.value, "reason": reason},
                }
            )
            await self._set(status, runtime_status, agent_state, reason, attention=attention)
        except Exception:
            log.exception("could not record the end of loop %s", self.conversation_id)

    async def _close_dangling_actions(self, reason: str = KILLED_DURING_IT) -> None:
        """Answer the actions left without observation, so the history stays
        consistent for the model: at a stop (a command that was running has
        its output recorded already) and, at the next start, after a loop
        whose process was killed."""
        events = await asyncio.to_thread(self._event_log.search_events)
        answered = {event.get("cause") for event in events if event.get("observation")}
        for event in events[-20:]:
            if event.get("action") in CONFIRMED_ACTIONS | {"read"} and event["id"] not in answered:
                await self._append(error_observation(reason, event["id"]))

    # -- replay --------------------------------------------------------------------

    async def _replay_if_pending(self) -> None:
        """Carry out the trajectory's actions again, logging each step and
        its fresh observation. A replay into an empty log (`new --replay`)
        records the trajectory's own steps; an imported conversation already
        holds the recorded events, and its re-run is logged after them,
        after a note that says so. One cut short (the loop stopped, or its
        process killed) goes on after the last step it logged. An action
        convtui cannot carry out (browse, delegate, MCP, ...) is logged with
        an observation saying it was skipped, and the final status counts
        them."""
        directory = self.service.data_dir.conversation(self.conversation_id)
        script, done = directory / "replay.json", directory / "replay.done"
        recording = directory / "replay.recording"
        if not script.exists() or done.exists():
            return
        every_step = steps = replay_steps(orjson.loads(await asyncio.to_thread(script.read_bytes)))
        if await asyncio.to_thread(recording.exists):
            first = _recording_start(await asyncio.to_thread(recording.read_bytes))
            events = await asyncio.to_thread(self._event_log.search_events, first)
            steps = steps[steps_recorded(steps, events) :]
        else:
            existing = await asyncio.to_thread(len, self._event_log)
            if existing:
                note = await self._append(
                    {
                        "source": "environment",
                        "observation": "null",
                        "content": f"Running the {len(steps)} imported actions again in the workspace.",
                        "extras": {},
                    }
                )
                first = note["id"] + 1
            else:
                first = 0
            # Marked before the first step is logged: a restart then knows
            # where this replay's own steps begin.
            await asyncio.to_thread(atomic_write, recording, str(first).encode())
        for step in steps:
            if self.replay_delay:
                await asyncio.sleep(self.replay_delay)
            kind = step["action"]
            action = await self._append(step)
            if kind in ("message", "finish"):
                continue
            if kind not in REPLAYED_ACTIONS:
                skipped = error_observation(f"skipped: convtui cannot replay {kind}", action["id"])
                skipped["extras"]["error_id"] = SKIPPED_ERROR_ID
                await self._append(skipped)
                continue
            await self._append(await self._execute(action))
        await asyncio.to_thread(done.write_bytes, b"")
        skipped = describe_skipped(skipped_kinds(every_step))
        await self._set(agent_state=AgentState.FINISHED, message=f"replay finished; {skipped}" if skipped else "replay finished")

    def _replayed_event_ids(self) -> set[int]:
        directory = self.service.data_dir.conversation(self.conversation_id)
        try:
            steps = replay_steps(orjson.loads((directory / "replay.json").read_bytes()))
        except FileNotFoundError:
            return set()
        events = self._event_log.search_events()
        try:
            first = _recording_start((directory / "replay.recording").read_bytes())
        except FileNotFoundError:
            first = 0
        # An import's recorded events, and its re-run logged after them.
        before = [event for event in events if event["id"] < first]
        after = [event for event in events if event["id"] >= first]
        return replayed_event_ids(steps, before) | replayed_event_ids(steps, after)

    # -- conversation ----------------------------------------------------------------

    def _needs_answer(self, events: list[EventDict]) -> bool:
        """True if the last thing in the log is the user's (or a tool result
        the agent has not yet seen). A replay's recorded events are history,
        not answers: a message sent while the replay ran is answered after.
        A message sent while the model was answering is logged before that
        answer, yet the model never saw it: it too needs an answer."""
        if self._model_saw >= 0 and any(
            event.get("id", -1) > self._model_saw and event.get("source") == "user" and event.get("action") == "message"
            for event in events
        ):
            return True
        for event in reversed(events):
            if event.get("hidden") or event_kind(event) in ("agent_state_changed", "change_agent_state", "null"):
                continue
            if event.get("id") in self._replayed:
                continue
            if event.get("source") == "user" and event.get("action") == "message":
                return True
            if event.get("action") in ("message", "finish") and event.get("source") == "agent":
                return False
            if event.get("observation") in ("run", "read", "edit", "think", "error", "user_rejected"):
                return True
            return False
        return False

    async def _converse(self, metadata: Any) -> None:
        while True:
            events = await asyncio.to_thread(self._event_log.search_events)
            self._maybe_start_auto_title(events)
            if self._needs_answer(events):
                if self.llm_config is None:
                    raise LoopEnded(
                        "no model is configured: set llm_model (convtui config set llm_model ...) to go on",
                        attention=ATTENTION_ERROR,
                    )
                await self._set(agent_state=AgentState.RUNNING)
                await self._answer(metadata)
                continue
            if self.agent_state not in (AgentState.FINISHED, AgentState.AWAITING_USER_INPUT):
                await self._set(agent_state=AgentState.AWAITING_USER_INPUT)
            if self.until_idle:
                return
            await self._wait_for_user(len(events))

    async def _wait_for_user(self, known: int) -> None:
        """Wait for a new event: woken at once by this process, found by
        polling the log when another process (`convtui send`) appended."""
        while True:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), POLL_SECONDS * 2)
            except TimeoutError:
                pass
            if await asyncio.to_thread(len, self._event_log) > known:
                return

    async def _answer(self, metadata: Any) -> None:
        """Call the model until it replies, finishes or a limit is reached."""
        for _ in range(self.settings.max_iterations):
            budget = self.settings.max_budget_per_conversation
            if budget is not None and self._cost is not None and self._cost >= budget:
                raise LoopEnded(f"budget reached: ${self._cost:.4f} of ${budget:.2f} (max_budget_per_conversation)")
            response = await self._call_model(metadata)
            if not response.tool_calls:
                await self._append(
                    {
                        "source": "agent",
                        "action": "message",
                        "message": response.content,
                        "args": {"content": response.content, "image_urls": None, "wait_for_response": True},
                        "llm_metrics": self._llm_metrics(),
                    }
                )
                await self._set(agent_state=AgentState.AWAITING_USER_INPUT)
                return
            if await self._carry_out(response):
                await self._set(agent_state=AgentState.FINISHED, message="finished")
                return
        raise LoopEnded(
            f"reached {self.settings.max_iterations} steps for one message (max_iterations); send a message to go on"
        )

    async def _call_model(self, metadata: Any) -> LLMResponse:
        assert self.llm_config is not None
        events = await asyncio.to_thread(self._event_log.search_events)
        self._model_saw = max((event.get("id", -1) for event in events), default=-1)
        if self._system_prompt is None:  # init.json never changes: read it once per run
            init = await asyncio.to_thread(self._read_init)
            self._system_prompt = system_prompt(
                init.get("conversation_instructions"), metadata.selected_repository, metadata.selected_branch
            )
        messages = build_messages(events, self._system_prompt)
        if not model_worker_ready():
            # The first call of this process waits seconds for the worker's
            # start (litellm's import): say so rather than look stuck.
            await self._set(message=STARTING_MODEL_WORKER)
            await wait_for_model_worker(self.llm_config.timeout)
            await self._set()
        attempt = 0
        while True:
            try:
                response = await complete(self.llm_config, messages, TOOL_DEFINITIONS, on_text=self._text_sink())
                break
            except LLMFailure as failure:
                limit = RATE_LIMIT_RETRIES if failure.agent_state is AgentState.RATE_LIMITED else TRANSIENT_RETRIES
                if not failure.retryable or attempt >= limit:
                    raise
                attempt += 1
                delay = self.retry_delay * 2 ** (attempt - 1)
                agent_state = AgentState.RATE_LIMITED if failure.agent_state is AgentState.RATE_LIMITED else None
                await self._set(
                    runtime_status=RuntimeStatus.LLM_RETRY,
                    agent_state=agent_state,
                    message=f"{failure}; retry {attempt} of {limit} in {delay:g} s",
                )
                await asyncio.sleep(delay)
                await self._set(runtime_status=RuntimeStatus.READY, agent_state=AgentState.RUNNING)
        await self._account(response)
        return response

    def _read_init(self) -> dict[str, Any]:
        path = self.service.data_dir.conversation(self.conversation_id) / "init.json"
        try:
            return orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}

    def _text_sink(self) -> Callable[[str], None] | None:
        """Where the reply streams while someone watches this conversation;
        None: the call is made whole (a third of the CPU)."""
        if not self.hub.wants_text(self.conversation_id):
            return None
        return lambda text: self.hub.publish(TextStreamed(self.conversation_id, text))

    async def _account(self, response: LLMResponse) -> None:
        prompt_tokens = self._tokens[0] + response.prompt_tokens
        completion_tokens = self._tokens[1] + response.completion_tokens
        self._tokens = (prompt_tokens, completion_tokens)
        if response.cost is None:
            self._cost = None if response.prompt_tokens or response.completion_tokens else self._cost
        elif self._cost is not None:
            self._cost += response.cost
        total = prompt_tokens + completion_tokens
        self.metrics = self._unsaved_metrics = {
            "accumulated_cost": self._cost,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": total,
            "llm_model": self.llm_config.model if self.llm_config else None,
        }
        self.hub.publish(MetricsChanged(self.conversation_id, self._cost, prompt_tokens, completion_tokens, total))
        loop = asyncio.get_running_loop()
        wait = self._metrics_written_at + METRICS_WRITE_SECONDS - loop.time()
        if wait <= 0:
            await self._write_metrics()
        elif self._metrics_timer is None:
            self._metrics_timer = loop.call_later(wait, self._write_metrics_soon)

    def _llm_metrics(self) -> dict[str, Any]:
        """The conversation's metrics as of this action, as OpenHands stamps
        its actions (`llm_metrics`): what was spent between two events can
        be told from the log alone."""
        prompt_tokens, completion_tokens = self._tokens
        return {
            "accumulated_cost": self._cost,
            "accumulated_token_usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens},
        }

    async def _carry_out(self, response: LLMResponse) -> bool:
        """Log and execute each tool call of one reply. True if the agent finished."""
        finished = False
        thought = response.content
        # OpenHands' ToolCallMetadata: the call's arguments live in the model response.
        model_response = {
            "id": response.response_id,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": response.content or None,
                        "tool_calls": [
                            {"id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                            for call in response.tool_calls
                        ],
                    },
                }
            ],
        }
        for number, call in enumerate(response.tool_calls):
            metadata = {
                "function_name": call.name,
                "tool_call_id": call.call_id,
                "model_response": model_response,
                "total_calls_in_response": len(response.tool_calls),
            }
            try:
                action = action_from_tool_call(call.name, call.arguments, thought if number == 0 else "")
            except ToolCallError as error:
                await self._append({**error_observation(str(error)), "tool_call_metadata": metadata})
                continue
            stored = await self._append({**action, "tool_call_metadata": metadata, "llm_metrics": self._llm_metrics()})
            if stored["action"] == "finish":
                finished = True
                continue
            if stored["action"] in CONFIRMED_ACTIONS:
                decision = await self._confirmed(stored)
                if not decision.approved:
                    rejected = observation("user_rejected", _rejection(decision.reason), stored["id"])
                    await self._append({**rejected, "tool_call_metadata": metadata})
                    continue
            await self._append(await self._execute(stored))
        return finished

    def _processes_changed(self) -> None:
        commands = tuple(process.command for process in self.workspace.background_processes())
        self.hub.publish(ProcessesChanged(self.conversation_id, commands))

    async def _execute(self, action: EventDict) -> EventDict:
        """execute() the action; a command cut short by the loop's stop is
        recorded as what it was: its output so far, and that it was stopped."""
        # As OpenHands has it: an observation of a tool call carries its metadata.
        called = {"tool_call_metadata": action["tool_call_metadata"]} if action.get("tool_call_metadata") else {}
        try:
            result = await execute(
                self.workspace, action, self.settings.command_timeout, self.settings.command_soft_timeout
            )
        except asyncio.CancelledError:
            stopped = self.workspace.stopped_output()
            if stopped is not None and action.get("id") is not None and action.get("action") == "run":
                note = "\n[the command was stopped: its loop was stopped]"
                self._stopped_command = {**run_observation(action["args"]["command"], stopped, action["id"], note), **called}
            raise
        return {**result, **called}

    async def _confirmed(self, action: EventDict) -> Decision:
        if not self.confirmation_mode:
            return Decision(approved=True)
        # Read each time: "always approve" may have been turned on or off
        # meanwhile, by this process or another.
        if (await self.service.metadata(self.conversation_id)).always_approve:
            return Decision(approved=True)
        self.pending_action = action
        self._decision = asyncio.get_running_loop().create_future()
        await self._set(agent_state=AgentState.AWAITING_USER_CONFIRMATION, message=action.get("message"))
        try:
            decision = await self._decision
        finally:
            self.pending_action = None
            self._decision = None
        if decision.always:
            await self._write_metadata(always_approve=True)  # before the state change that shows it
        await self._set(agent_state=AgentState.RUNNING if decision.approved else AgentState.REJECTED)
        return decision

    # -- title ---------------------------------------------------------------------

    def _maybe_start_auto_title(self, events: list[EventDict]) -> None:
        """Once the first user message is in the log, title the conversation
        (in the background) if it still has its default title."""
        if not self._default_title or self._title_task is not None:
            return
        first = next((e for e in events if e.get("source") == "user" and e.get("action") == "message"), None)
        if first is not None:
            message = (first.get("args") or {}).get("content") or first.get("message") or ""
            self._title_task = asyncio.create_task(self._auto_title(message))

    async def _auto_title(self, message: str) -> None:
        """Ask the model for a title, unless someone renamed the conversation
        meanwhile. Falls back to the message's start."""
        title = fallback_title(message)
        if self.llm_config is not None:
            try:
                response = await complete(
                    self.llm_config,
                    [{"role": "system", "content": TITLE_PROMPT}, {"role": "user", "content": message[:4000]}],
                    max_tokens=30,
                )
                await self._account(response)
                title = clip_title(response.content) or title
            except LLMFailure as failure:
                log.info("auto title for %s failed: %s", self.conversation_id, failure)
        title = self._redactor(title)
        if not title.strip():
            return
        if await self.service.set_title_if_default(self.conversation_id, title):
            self.hub.publish(TitleChanged(self.conversation_id, title))

