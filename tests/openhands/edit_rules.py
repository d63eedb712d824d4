"""Runs OpenHands' own file editor (openhands-tools' FileEditor) on cases
read as JSON from stdin and prints, as JSON, each file's text afterwards or
the editor's refusal: run by the OpenHands Python, for
tests/test_openhands_live.py to compare convtui's preview rules with it.
A case: {"before": text or null (no file), "args": the action's arguments}."""

import json
import sys
import tempfile
from pathlib import Path

from openhands.tools.file_editor.editor import FileEditor

results = []
for case in json.load(sys.stdin):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "notes.txt"
        if case["before"] is not None:
            path.write_bytes(case["before"].encode())
        args = {**case["args"], "path": str(path)}
        try:
            observation = FileEditor(workspace_root=directory)(**args)
        except Exception as error:  # the editor's refusal (ToolError and its kin)
            results.append({"refused": f"{type(error).__name__}: {error}"})
            continue
        if getattr(observation, "is_error", False):
            results.append({"refused": str(observation.text)[:200]})
        else:
            results.append({"after": path.read_bytes().decode()})
print(json.dumps(results))
