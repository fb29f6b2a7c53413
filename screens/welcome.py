"""The first screen: what this workspace has, who the prompt talks to, the keys that
matter, and what the ``test`` model is when the workspace runs on it.

Pure functions of the loaded workspace (read by attribute, so a remote engine's or a test's
workspace works too).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text

from screens.prompt import TargetChoice
from workbench.termsafe import visible

__all__ = ["TEST_MODEL_NOTE", "preferred_target", "agents_on_test_model", "welcome"]

TEST_MODEL_NOTE = (
    "on the test model: offline and deterministic, it calls each tool it is offered once "
    "with placeholder arguments, then summarises the results. It shows the wiring, not real "
    "answers; `workbench doctor` says how to add a real model."
)
"""What the ``test`` model is, in one sentence."""


def preferred_target(workspace: Any) -> TargetChoice | None:
    """What a workspace is about: its first workflow, else its first team, else its first
    agent (a sample opens on what it shows: research-desk on ``desk``, code-review on
    ``review``, debate on ``council``)."""
    for kind, names in (
        ("workflow", getattr(workspace, "workflows", {})),
        ("team", getattr(workspace, "teams", {})),
        ("agent", getattr(workspace, "agents", {})),
    ):
        for name in names:
            return TargetChoice(kind, name)
    return None


def _model_of(workspace: Any, agent: Any) -> str:
    try:
        return str(workspace.resolve_model(getattr(agent, "model", None)).model)
    except Exception:
        return ""


def agents_on_test_model(workspace: Any) -> tuple[list[str], int]:
    """The agents (inline team leaders too) on the ``test`` model, and how many agents
    there are in all."""
    agents = dict(getattr(workspace, "agents", {}) or {})
    for name, team in (getattr(workspace, "teams", {}) or {}).items():
        leader = getattr(team, "leader", None)
        if leader is not None and not isinstance(leader, str):
            agents[f"{name}.leader"] = leader
    on_test = [name for name, agent in agents.items() if _model_of(workspace, agent) == "test"]
    return on_test, len(agents)


def _describe(workspace: Any, target: TargetChoice) -> str:
    table = {
        "agent": getattr(workspace, "agents", {}),
        "team": getattr(workspace, "teams", {}),
        "workflow": getattr(workspace, "workflows", {}),
    }.get(target.kind, {})
    entry = table.get(target.name) if hasattr(table, "get") else None
    text = str(getattr(entry, "description", "") or "")
    if not text and target.kind == "team":
        text = f"{getattr(entry, 'mode', '')} team of {', '.join(getattr(entry, 'members', []))}"
    return visible(" ".join(text.split()))


def welcome(workspace: Any, target: TargetChoice | None) -> Text:
    """The empty chat's text: the workspace's agents, teams and workflows, the target, the
    keys that matter, and what the test model is if it is used."""
    text = Text()
    name = getattr(workspace, "name", "") or str(getattr(workspace, "root", ""))
    text.append(visible(f"{name}"), style="bold")
    text.append(visible(f"  {getattr(workspace, 'root', '')}") + "\n", style="dim")
    for label, names in (
        ("workflows", list(getattr(workspace, "workflows", {}) or {})),
        ("teams", list(getattr(workspace, "teams", {}) or {})),
        ("agents", list(getattr(workspace, "agents", {}) or {})),
    ):
        if not names:
            continue
        text.append(f"  {label:<10}", style="dim")
        for i, item in enumerate(names):
            if i:
                text.append(" · ", style="dim")
            chosen = target is not None and target.name == item and label.startswith(target.kind)
            text.append(item, style="bold reverse" if chosen else "bold")
        text.append("\n")
    if target is not None:
        text.append("\nTalking to ", style="")
        text.append(f"{target.kind} {target.name}", style="bold")
        about = _describe(workspace, target)
        if about:
            text.append(f": {about}")
        text.append("\n")
    text.append("\n")
    for i, (key, what) in enumerate(
        (
            ("enter", "sends"),
            ("ctrl+p", "talks to another agent, team or workflow (and every command)"),
            ("F1", "every key"),
        )
    ):
        if i:
            text.append(" · ", style="dim")
        text.append(key, style="bold")
        text.append(f" {what}")
    on_test, total = agents_on_test_model(workspace)
    if on_test:
        text.append("\n\n[test model] ", style="bold yellow")
        if len(on_test) == total:
            who = "Every agent here runs"
        else:
            who = ", ".join(on_test) + (" runs" if len(on_test) == 1 else " run")
        text.append(f"{who} {TEST_MODEL_NOTE}")
    return text
