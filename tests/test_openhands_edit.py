"""The preview of a file edit waiting for approval on an OpenHands server
(openhands_edit.planned_text) against what OpenHands' own file editor did
with the same cases (recorded in tests/fixtures/openhands/edit_rules.json
by tests/test_openhands_live.py, which checks the record against the
editor whenever OpenHands is installed)."""

from __future__ import annotations

import json

import pytest

from convtui.backend.errors import InvalidInput
from convtui.backend.openhands_edit import planned_text

from .openhands.recording import FIXTURES

CASES = json.loads((FIXTURES / "edit_rules.json").read_text())


@pytest.mark.parametrize("case", CASES, ids=[f"{case['args']['command']}-{number}" for number, case in enumerate(CASES)])
def test_the_preview_is_what_the_editor_does(case: dict) -> None:
    args = {**case["args"], "path": "/workspace/notes.txt"}
    if case["editor"] == {"refused": True}:
        with pytest.raises(InvalidInput):
            planned_text(args, case["before"])
    else:
        assert planned_text(args, case["before"]) == case["editor"]["after"]


def test_an_action_that_is_no_edit_is_refused_in_one_line() -> None:
    with pytest.raises(InvalidInput, match="no file edit with a path"):
        planned_text({"command": "view", "path": "/a"}, "x")
    with pytest.raises(InvalidInput, match="gives no file_text"):
        planned_text({"command": "create", "path": "/a"}, None)
