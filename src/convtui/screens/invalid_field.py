"""Pointing at the form field a validation error names."""

from __future__ import annotations

from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widget import Widget


def mark_invalid_field(screen: Screen, location: tuple[object, ...]) -> None:
    """Clear earlier marks; mark and focus the field whose id is the first
    part of a pydantic error location (e.g. ("selected_branch",))."""
    for field in screen.query(".-invalid"):
        field.remove_class("-invalid")
    if not location:
        return
    try:
        field = screen.query_one(f"#{location[0]}", Widget)
    except NoMatches:
        return
    field.add_class("-invalid")
    field.focus()
