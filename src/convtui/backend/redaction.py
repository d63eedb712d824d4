"""Keeping secrets (the model's API key, the provider keys in the
environment) out of everything convtui writes or shows: event logs, exports,
command output, error messages, logs.

A secret is always replaced whole, by REDACTED. A secret of at least
WHOLE_WORD_BELOW characters is replaced wherever it occurs; a shorter one only
where it stands as a whole word (no letter, digit or underscore right before
or after it), so that a key such as `x` leaves "Exception" alone while
"key x" still becomes "key <redacted>".
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "<redacted>"
WHOLE_WORD_BELOW = 8

# The variables litellm reads provider keys from; commands never get them
# (runtime.DEFAULT_REMOVED_VARIABLES) and their values are redacted.
PROVIDER_KEY_VARIABLES: frozenset[str] = frozenset(
    {
        "CONVTUI_LLM_API_KEY",
        # The keys litellm reads for the usual providers.
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "AZURE_API_KEY",
        "AZURE_OPENAI_API_KEY",
        "AZURE_AI_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_API_KEY",
        "VERTEXAI_API_KEY",
        "MISTRAL_API_KEY",
        "CODESTRAL_API_KEY",
        "GROQ_API_KEY",
        "COHERE_API_KEY",
        "CO_API_KEY",
        "DEEPSEEK_API_KEY",
        "OPENROUTER_API_KEY",
        "TOGETHERAI_API_KEY",
        "TOGETHER_API_KEY",
        "HUGGINGFACE_API_KEY",
        "XAI_API_KEY",
        "LITELLM_API_KEY",
        "LITELLM_MASTER_KEY",
        "PERPLEXITYAI_API_KEY",
        "PERPLEXITY_API_KEY",
        "FIREWORKS_AI_API_KEY",
        "FIREWORKS_API_KEY",
        "REPLICATE_API_KEY",
        "ANYSCALE_API_KEY",
        "CEREBRAS_API_KEY",
        "NVIDIA_NIM_API_KEY",
        "AI21_API_KEY",
        "VOYAGE_API_KEY",
        "DEEPINFRA_API_KEY",
        "SAMBANOVA_API_KEY",
        "MOONSHOT_API_KEY",
        "DASHSCOPE_API_KEY",
        "OLLAMA_API_KEY",
    }
)


def provider_keys_in_environment() -> list[str]:
    """Values of the provider key variables set now (OPENAI_API_KEY...)."""
    return [os.environ[name] for name in sorted(PROVIDER_KEY_VARIABLES) if os.environ.get(name, "").strip()]


class Redactor:
    """Replaces the given secrets (see the module docstring). Empty and
    whitespace-only secrets are ignored; with none left it changes nothing."""

    def __init__(self, secrets: Iterable[str | None]) -> None:
        unique = {secret.strip() for secret in secrets if isinstance(secret, str) and secret.strip()}
        # Longest first, so that a secret containing another is replaced whole.
        self.secrets = tuple(sorted(unique, key=lambda secret: (-len(secret), secret)))
        self.longest = len(self.secrets[0]) if self.secrets else 0
        alternatives = [
            re.escape(secret) if len(secret) >= WHOLE_WORD_BELOW else rf"(?<!\w){re.escape(secret)}(?!\w)"
            for secret in self.secrets
        ]
        self._pattern = re.compile("|".join(alternatives)) if alternatives else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(REDACTED, text)

    def finds(self, text: str) -> bool:
        """Whether `text` holds a secret (one that __call__ would replace)."""
        return self._pattern is not None and self._pattern.search(text) is not None

    def json(self, value: Any) -> Any:
        """A copy of a JSON-like value with every string value redacted. The
        keys are left alone: they are field names ("id", "args"), and a short
        secret that happens to be one must not break the structure."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {key: self.json(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(item) for item in value]
        return value

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


class StreamRedactor:
    """Redacts a text stream cut into chunks at arbitrary places, giving the
    same text as redacting it whole: it holds back the last `longest`
    characters, which may be the start of a secret (or the character after a
    short one) that the next chunk completes."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._pattern = redactor._pattern
        self._pending = ""
        # The last character passed on: a short secret's "whole word" check
        # looks at the character before it.
        self._before = ""

    def feed(self, text: str) -> str:
        """The part of the stream so far that is safe to pass on."""
        if self._pattern is None:
            return text
        self._pending += text
        return self._release(len(self._pending) - self._redactor.longest)

    def flush(self) -> str:
        """The rest of the stream, redacted."""
        if self._pattern is None:
            return ""
        return self._release(len(self._pending), final=True)

    def _release(self, limit: int, final: bool = False) -> str:
        """Pass on the text before `limit` (and any secret starting there).
        A match that starts before `limit` is complete: a secret is at most
        `longest` long, so the text holds it and the character after it."""
        if limit <= 0 and not final:
            return ""
        assert self._pattern is not None
        text = self._before + self._pending
        offset = len(self._before)
        parts, position = [], offset
        for match in self._pattern.finditer(text, offset):
            if match.start() - offset >= limit and not final:
                break
            parts.append(text[position : match.start()])
            parts.append(REDACTED)
            position = match.end()
        cut = max(position, offset + limit)
        parts.append(text[position:cut])
        released = "".join(parts)
        if cut > offset:
            self._before = text[cut - 1]
        self._pending = text[cut:]
        return released
