"""The remember prompt: from the events around one event, ask the model for
an instruction that would make the agent remember what was learned there."""

from __future__ import annotations

import asyncio
import re

from jinja2 import PackageLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from .errors import ConvtuiError, NotFound
from .events import AGENT_VISIBLE, EventDict, event_kind, event_text
from .llm import LLMConfig, complete

CONTEXT_SIZE = 4
USER_REQUEST = "Please generate a prompt for the AI to update the special file based on the events provided."
_TAG = re.compile(r"<update_prompt>(.*?)</update_prompt>", re.DOTALL)
_environment: SandboxedEnvironment | None = None


class NoPromptFound(ConvtuiError):
    pass


def _template_environment() -> SandboxedEnvironment:
    # Sandboxed, and event text is passed as data, never as template source:
    # `{{ ... }}` inside an event is printed, not evaluated.
    global _environment
    if _environment is None:
        _environment = SandboxedEnvironment(
            loader=PackageLoader("convtui", "templates"), autoescape=False, undefined=StrictUndefined
        )
    return _environment


def describe(event: EventDict) -> str:
    kind = "action" if event.get("action") else "observation"
    return f"[{event.get('id')}] {event.get('source', '?')} {kind} {event_kind(event)}: {event_text(event)}"


def context_events(search_events, event_id: int) -> list[EventDict]:
    """The 4 agent-visible events nearest below `event_id`, the event itself
    and the 4 after it. `search_events` is an EventLog.search_events."""
    before = search_events(end_id=event_id - 1, reverse=True, filter=AGENT_VISIBLE, limit=CONTEXT_SIZE)
    after = search_events(start_id=event_id, filter=AGENT_VISIBLE, limit=CONTEXT_SIZE + 1)
    return [*reversed(before), *after]


def render_prompt(events: list[EventDict]) -> str:
    template = _template_environment().get_template("generate_remember_prompt.j2")
    return template.render(events="\n".join(describe(event) for event in events))


def extract_prompt(reply: str) -> str:
    match = _TAG.search(reply)
    if not match or not match.group(1).strip():
        raise NoPromptFound("the model's reply held no <update_prompt>...</update_prompt> text; try again")
    return match.group(1).strip()


async def remember_prompt(event_log, event_id: int, config: LLMConfig) -> str:
    """Generate the prompt. Raises NotFound (no such event), NoPromptFound,
    or LLMFailure."""

    if await asyncio.to_thread(event_log.get, event_id) is None:
        raise NotFound(f"no event {event_id} in this conversation")
    events = await asyncio.to_thread(context_events, event_log.search_events, event_id)
    system = render_prompt(events)
    response = await complete(config, [{"role": "system", "content": system}, {"role": "user", "content": USER_REQUEST}])
    return extract_prompt(response.content)
