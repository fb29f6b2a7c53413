"""The review workflow's Python parts, referenced from workbench.yaml as ``review_flow:NAME``.

Each function gets a :class:`~workbench.workflow.StepContext` (the step's input, the outputs
of the steps so far, the workflow state) and runs in plain Python: no model, no tools, no
approvals. A function step returns its output (or ``{"output": ..., "state": {...}}``); a
router function returns the name of a route.
"""

from __future__ import annotations

import re

from workbench.workflow import StepContext

REPO = "repo"
"""The folder of the repository under review, relative to the workspace."""

_PASSED = re.compile(r"\b\d+ passed\b")
_FAILED = re.compile(r"\b\d+ (failed|errors?)\b")


def survey(ctx: StepContext) -> dict[str, object]:
    """List the repository's Python files and its TODO lines; keep both in the state."""
    root = ctx.root / REPO
    files = sorted(p.relative_to(ctx.root).as_posix() for p in root.rglob("*.py"))
    todos: list[str] = []
    for name in files:
        text = (ctx.root / name).read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            if "TODO" in line:
                todos.append(f"{name}:{number}: {line.strip()}")
    lines = [f"{len(files)} Python files in {REPO}/:", *(f"- {f}" for f in files)]
    lines.append(f"{len(todos)} TODO line(s):" if todos else "No TODO lines.")
    lines.extend(f"- {t}" for t in todos)
    return {"output": "\n".join(lines), "state": {"files": files, "todos": todos}}


def tests_passed(report: str) -> bool:
    """Whether a pytest summary says the suite passed (some passed, none failed)."""
    return bool(_PASSED.search(report)) and not _FAILED.search(report)


def test_status(ctx: StepContext) -> str:
    """The router: ``passing`` when the test run passed, else ``failing``."""
    return "passing" if tests_passed(ctx.steps.get("run_tests", "")) else "failing"


def all_green(ctx: StepContext) -> str:
    """The ``passing`` route: nothing to fix."""
    return "The test suite passes: nothing to fix."


def no_todos(ctx: StepContext) -> str:
    """The condition's ``else``: no TODO to discuss."""
    return "No TODO lines in the repository."
