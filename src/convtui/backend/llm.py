"""Calling the model through litellm, and turning its failures into states.

litellm takes ~3.5 s to import and, by default, fetches a price map from the
internet while importing; it is imported once, with the local price map
forced, in model worker processes (see model_workers). The UI starts the
first in the background at launch when a model is configured; a call that
still has to wait for it can say so (model_worker_ready)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


from .errors import ConvtuiError, MissingSettings
from .model_workers import ModelWorkers
from .models import AgentState, RuntimeStatus
from .redaction import Redactor, provider_keys_in_environment
from .settings import Settings

log = logging.getLogger(__name__)

_litellm: Any = None
_import_lock = threading.Lock()

# Without a key litellm refuses even a local server ("Missing credentials").
PLACEHOLDER_API_KEY = "sk-no-key-configured"


def _import_litellm() -> Any:
    global _litellm
    with _import_lock:
        if _litellm is None:
            os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            import litellm

            litellm.suppress_debug_info = True
            litellm.drop_params = True
            litellm.telemetry = False
            litellm.disable_streaming_logging = True  # no callbacks are configured: skip the work
            _litellm = litellm
    return _litellm


_model_workers = ModelWorkers()

STARTING_MODEL_WORKER = "starting the model worker…"


def model_worker_ready() -> bool:
    """True if a model call would be answered without waiting for the
    worker process to start."""
    return _model_workers.ready


def start_model_worker() -> None:
    """Start the model worker process in the background (for a UI that has a
    model configured: its first call then does not wait). Returns at once."""
    _model_workers.warm()


async def wait_for_model_worker(timeout: float) -> bool:
    """Start the model worker if needed and wait until it can answer (True),
    at most `timeout` seconds."""
    return await _model_workers.wait_ready(timeout)


async def load_litellm() -> Any:
    """The litellm module, imported off the event loop the first time."""
    if _litellm is not None:
        return _litellm
    return await asyncio.to_thread(_import_litellm)


@dataclass(frozen=True)
class LLMConfig:
    model: str
    api_key: str | None = None
    base_url: str | None = None
    timeout: float = 120.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LLMConfig:
        """Raises MissingSettings when no model is configured."""
        if not settings.llm_model:
            raise MissingSettings(
                "no model is configured: run `convtui config set llm_model PROVIDER/MODEL` "
                "(and llm_api_key), or set CONVTUI_LLM_MODEL"
            )
        return cls(
            model=settings.llm_model,
            api_key=settings.api_key(),
            base_url=settings.llm_base_url,
            timeout=settings.llm_timeout,
        )

    def __repr__(self) -> str:  # never show the key
        return f"LLMConfig(model={self.model!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class RawToolCall:
    call_id: str
    name: str
    arguments: str


@dataclass
class LLMResponse:
    content: str = ""
    tool_calls: list[RawToolCall] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = None  # None: the model's price is unknown
    response_id: str | None = None


class LLMFailure(ConvtuiError):
    """A model call failed; carries the states the loop should show."""

    def __init__(
        self, message: str, runtime_status: RuntimeStatus, agent_state: AgentState, retryable: bool = False
    ) -> None:
        super().__init__(message)
        self.runtime_status = runtime_status
        self.agent_state = agent_state
        self.retryable = retryable


def classify(error: BaseException, config: LLMConfig) -> LLMFailure:
    """Map a litellm exception to a readable failure with its states."""
    litellm = _litellm
    name = type(error).__name__
    detail = str(error).splitlines()[0] if str(error) else name
    detail = Redactor([config.api_key, *provider_keys_in_environment()])(detail)
    detail = detail[:300]
    if isinstance(error, LLMFailure):
        return error
    if litellm is None:
        return LLMFailure(f"model call failed: {detail}", RuntimeStatus.ERROR, AgentState.ERROR)
    if isinstance(error, litellm.AuthenticationError):
        return LLMFailure(
            f"the model provider refused the API key for {config.model} (check llm_api_key)",
            RuntimeStatus.ERROR_LLM_AUTHENTICATION,
            AgentState.ERROR,
        )
    if isinstance(error, litellm.ContextWindowExceededError):
        return LLMFailure(
            f"the conversation no longer fits {config.model}'s context window",
            RuntimeStatus.ERROR,
            AgentState.ERROR,
        )
    if isinstance(error, litellm.ContentPolicyViolationError):
        return LLMFailure(
            "the model provider refused the request (content policy)",
            RuntimeStatus.ERROR_LLM_CONTENT_POLICY_VIOLATION,
            AgentState.ERROR,
        )
    if isinstance(error, litellm.RateLimitError):
        if "insufficient_quota" in str(error) or "credit" in str(error).lower():
            return LLMFailure(
                "the model provider says the account is out of credits",
                RuntimeStatus.ERROR_LLM_OUT_OF_CREDITS,
                AgentState.ERROR,
            )
        return LLMFailure(
            "the model provider is rate limiting requests",
            RuntimeStatus.AGENT_RATE_LIMITED,
            AgentState.RATE_LIMITED,
            retryable=True,
        )
    if isinstance(error, litellm.BudgetExceededError):
        return LLMFailure(
            "the model budget is exhausted", RuntimeStatus.ERROR_LLM_OUT_OF_CREDITS, AgentState.ERROR
        )
    if isinstance(error, litellm.Timeout):
        return LLMFailure(
            f"the model did not answer within {config.timeout:g} s",
            RuntimeStatus.ERROR_LLM_SERVICE_UNAVAILABLE,
            AgentState.ERROR,
            retryable=True,
        )
    if isinstance(error, (litellm.ServiceUnavailableError, litellm.APIConnectionError)) or (
        isinstance(error, litellm.InternalServerError) and "connection error" in detail.lower()
    ):
        where = config.base_url or config.model
        return LLMFailure(
            f"the model service is unavailable ({where}): {detail}",
            RuntimeStatus.ERROR_LLM_SERVICE_UNAVAILABLE,
            AgentState.ERROR,
            retryable=True,
        )
    if isinstance(error, (litellm.InternalServerError, litellm.BadGatewayError)):
        return LLMFailure(
            f"the model service failed: {detail}",
            RuntimeStatus.ERROR_LLM_INTERNAL_SERVER_ERROR,
            AgentState.ERROR,
            retryable=True,
        )
    if isinstance(error, (litellm.NotFoundError, litellm.BadRequestError)):
        return LLMFailure(f"the model refused the request: {detail}", RuntimeStatus.ERROR, AgentState.ERROR)
    return LLMFailure(f"model call failed ({name}): {detail}", RuntimeStatus.ERROR, AgentState.ERROR)


def _request_arguments(config: LLMConfig, messages: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "model": config.model,
        "messages": messages,
        "timeout": config.timeout,
        "max_retries": 0,  # retries are the loop's, shown as LLM_RETRY
        **extra,
    }
    if config.api_key:
        arguments["api_key"] = config.api_key
    elif not provider_keys_in_environment():
        # litellm reads provider variables itself; with none, it needs a key.
        arguments["api_key"] = PLACEHOLDER_API_KEY
    if config.base_url:
        arguments["api_base"] = config.base_url
    return arguments


def images_for(litellm: Any, model: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` as `model` can take them: image parts as they are for a
    model litellm knows to see images, else each replaced by a line saying
    an image was attached (its URL) and that the model cannot see it."""
    if not any(isinstance(message.get("content"), list) for message in messages):
        return messages
    try:
        vision = bool(litellm.supports_vision(model=model))
    except Exception:  # a model litellm does not know
        vision = False
    if vision:
        return messages
    converted = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            lines = [
                part.get("text", "") if part.get("type") == "text"
                else f"[an image was attached ({(part.get('image_url') or {}).get('url', '')[:200]}); this model cannot see images]"
                for part in content
            ]  # fmt: skip
            message = {**message, "content": "\n".join(line for line in lines if line)}
        converted.append(message)
    return converted


def _cost(litellm: Any, response: Any) -> float | None:
    """The call's cost, None if the model's price is unknown. litellm has
    priced the response already when it assembled it; ask again only if not."""
    hidden = getattr(response, "_hidden_params", None) or {}
    if "response_cost" in hidden:
        cost = hidden["response_cost"]
        return float(cost) if cost is not None else None
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # unknown model: litellm raises; tokens still count
        return None


async def complete(
    config: LLMConfig,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    on_text: Callable[[str], None] | None = None,
    max_tokens: int | None = None,
) -> LLMResponse:
    """One model call, streamed: `on_text` receives the reply's text as it
    arrives, on the caller's event loop. Raises LLMFailure (see `classify`).
    The call itself runs in the model worker process."""
    request = {
        "config": {"model": config.model, "api_key": config.api_key, "base_url": config.base_url,
                   "timeout": config.timeout},
        "messages": messages,
        "tools": tools,
        "max_tokens": max_tokens,
        "stream_text": on_text is not None,
    }
    call_id, future = _model_workers.submit(request, on_text)
    try:
        reply = await future
    except asyncio.CancelledError:
        _model_workers.cancel(call_id)  # the worker abandons the HTTP request
        raise
    if "error" in reply:
        error = reply["error"]
        raise LLMFailure(
            error["message"],
            RuntimeStatus(error["runtime_status"]),
            AgentState(error["agent_state"]),
            retryable=bool(error.get("retryable")),
        )
    done = reply["done"]
    done["tool_calls"] = [RawToolCall(**call) for call in done["tool_calls"]]
    return LLMResponse(**done)


async def complete_here(
    config: LLMConfig,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    on_text: Callable[[str], None] | None,
    max_tokens: int | None,
) -> LLMResponse:
    """The model call itself, in this process (the model worker's side):
    streamed when `on_text` wants the pieces, else whole (litellm spends about
    three times the CPU on a streamed call)."""
    litellm = await load_litellm()
    extra: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}} if on_text else {}
    if tools:
        extra["tools"] = tools
    if max_tokens:
        extra["max_tokens"] = max_tokens
    messages = images_for(litellm, config.model, messages)
    try:
        response = await litellm.acompletion(**_request_arguments(config, messages, **extra))
        if on_text is not None:
            chunks = []
            async for chunk in response:
                chunks.append(chunk)
                if chunk.choices and (text := getattr(chunk.choices[0].delta, "content", None)):
                    on_text(text)
            response = litellm.stream_chunk_builder(chunks, messages=messages)
    except asyncio.CancelledError:
        raise
    except Exception as error:
        raise classify(error, config) from None
    if response is None or not getattr(response, "choices", None):
        raise LLMFailure("the model sent an empty reply", RuntimeStatus.ERROR, AgentState.ERROR, retryable=True)
    message = response.choices[0].message
    calls = [
        RawToolCall(
            call_id=call.id or f"call_{index}",
            name=call.function.name or "",
            arguments=call.function.arguments or "",
        )
        for index, call in enumerate(getattr(message, "tool_calls", None) or [])
    ]
    if not (message.content or "").strip() and not any(call.name for call in calls):
        # litellm turns a body that is no chat completion into an empty one.
        raise LLMFailure(
            "the model sent an empty or unreadable reply", RuntimeStatus.ERROR_LLM_SERVICE_UNAVAILABLE,
            AgentState.ERROR, retryable=True,
        )
    usage = getattr(response, "usage", None)
    return LLMResponse(
        content=message.content or "",
        tool_calls=calls,
        prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
        completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
        cost=_cost(litellm, response),
        response_id=getattr(response, "id", None),
    )
