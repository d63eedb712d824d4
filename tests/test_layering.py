"""The shape SPEC section 9 asks for, checked on the source: the backend
knows nothing of Textual, and screens, widgets, the app and the CLI reach
conversations only through the Backend interface (and the models), never
the store, the loop manager, the model calls or the file helpers."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "convtui"
# What only the Backend implementations may use.
BEHIND_THE_INTERFACE = {"service", "manager", "store", "llm", "durable_files", "remember", "runtime", "agent", "tools"}


def imported_modules(path: Path) -> Iterator[str]:
    """Every module `path` imports (at any depth of the file), as a dotted
    name inside the convtui package where it is one."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    return modules_imported_by(path.read_text(), package)


def modules_imported_by(source: str, package: str) -> Iterator[str]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            yield module
            yield from (f"{module}.{alias.name}" for alias in node.names)


def front_end_files() -> list[Path]:
    return sorted(
        [*PACKAGE.glob("screens/*.py"), *PACKAGE.glob("widgets/*.py"), PACKAGE / "app.py", PACKAGE / "commands.py", PACKAGE / "cli.py"]
    )


@pytest.mark.parametrize("path", front_end_files(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_the_front_end_reaches_conversations_only_through_the_interface(path: Path) -> None:
    reached = sorted(
        module
        for module in set(imported_modules(path))
        if module.startswith("convtui.backend.") and module.split(".")[2] in BEHIND_THE_INTERFACE
    )
    assert reached == [], f"{path.name} imports {', '.join(reached)}"


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("backend/*.py")), ids=lambda path: path.name)
def test_the_backend_knows_nothing_of_textual(path: Path) -> None:
    assert not [module for module in imported_modules(path) if module.split(".")[0] == "textual"]


def test_the_check_sees_lazy_relative_and_absolute_imports() -> None:
    source = "def f():\n    from ..backend.manager import M\n    from ..backend import store\n    import convtui.backend.llm\n"
    found = set(modules_imported_by(source, "convtui.screens"))
    assert {"convtui.backend.manager", "convtui.backend.store", "convtui.backend.llm"} <= found
