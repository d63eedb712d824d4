"""Making untrusted text (titles, LLM output, command output) inert before it
reaches a terminal: escape sequences and control characters are shown as
visible escapes instead of being obeyed."""

from __future__ import annotations

import re

# Everything a terminal might act on: C0 controls except tab and newline, DEL,
# C1 controls (including the 8-bit CSI/OSC introducers), line separators.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_WITH_NEWLINES = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _visible(match: re.Match[str]) -> str:
    character = match.group()
    if character == "\x1b":
        return "␛"
    code = ord(character)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: str, keep_newlines: bool = True) -> str:
    """`text` with every control character made visible (ESC as ␛, others as
    \\xNN), so `\\x1b]52;...` or `\\r` can do nothing to the terminal."""
    pattern = _CONTROL if keep_newlines else _CONTROL_WITH_NEWLINES
    return pattern.sub(_visible, text)


def one_line(text: str, width: int | None = None) -> str:
    """Inert, on one line, cut to `width` characters with an ellipsis."""
    flat = inert(text.replace("\r\n", " ").replace("\n", " ").replace("\t", " "), keep_newlines=False)
    if width is not None and len(flat) > width:
        return flat[: max(0, width - 1)] + "…"
    return flat
