"""How times, costs and counts are written for people (CLI and UI alike)."""

from __future__ import annotations

from datetime import datetime, timezone


def relative_time(moment: datetime, now: datetime | None = None) -> str:
    """'just now', '5m ago', '3h ago', '2d ago', or the date for older."""
    now = now or datetime.now(timezone.utc)
    seconds = (now - moment).total_seconds()
    if seconds < 0:
        return "in future"
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))}m ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    if seconds < 86400 * 30:
        return f"{int(seconds // 86400)}d ago"
    return moment.strftime("%Y-%m-%d")


def format_duration(seconds: float) -> str:
    """How long, to the two largest units: '40s', '5m', '2h 5m', '3d 4h'
    (a negative span, a clock that went back, reads '0s')."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if hours == 0:
        return f"{minutes}m"
    if days == 0:
        return f"{hours}h {minutes % 60}m" if minutes % 60 else f"{hours}h"
    return f"{days}d {hours % 24}h" if hours % 24 else f"{days}d"


def format_cost(cost: float | None) -> str:
    if cost is None:
        return "n/a"  # the model's price is unknown
    if cost == 0:
        return "$0"
    if cost < 0.01:
        return f"${cost:.4f}"
    return f"${cost:.2f}"


def format_tokens(count: int) -> str:
    if count < 1000:
        return str(count)
    if count < 1_000_000:
        return f"{count / 1000:.1f}k"
    return f"{count / 1_000_000:.1f}M"
