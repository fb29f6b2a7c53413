"""The command palette (ctrl+p): every action of the app, and one command per target."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from screens.app import WorkbenchApp

__all__ = ["WorkbenchCommands", "commands_for"]

Command = tuple[str, Callable[[], Any], str]


def commands_for(app: WorkbenchApp) -> list[Command]:
    """Every command: (name, callback, help)."""
    run = app.run_action
    cmds: list[Command] = [
        ("Show chat", partial(run, "show('chat')"), "The chat pane (F2)"),
        (
            "Show team lanes",
            partial(run, "show('team')"),
            "One lane per team member, the run tree (F3)",
        ),
        (
            "Show workflow graph",
            partial(run, "show('graph')"),
            "The latest workflow run's graph (F4)",
        ),
        (
            "Show approvals",
            partial(run, "show('approvals')"),
            "Tool calls waiting for a decision (F5)",
        ),
        ("Show usage", partial(run, "show('usage')"), "Tokens and cost per agent (F6)"),
        (
            "Show saved rules",
            app.show_rules,
            "The approval rules in force, each removable (F5, r)",
        ),
        (
            "Browse sessions",
            partial(run, "sessions"),
            "Open, resume, replay or delete a session (F7)",
        ),
        ("New session", partial(run, "new_session"), "Start an empty session (ctrl+n)"),
        ("Replay this session", partial(run, "replay_session"), "Play the session back (ctrl+r)"),
        ("Cancel the run", partial(run, "cancel_run"), "Stop the run in flight (ctrl+c)"),
        ("Toggle light/dark theme", partial(run, "toggle_theme"), "Switch the theme (F8)"),
        (
            "Show MCP servers",
            partial(run, "mcp"),
            "State, tools, resources and prompts; attach a resource to the prompt (F9)",
        ),
        ("Keys", partial(run, "help"), "Every key (F1 or ?)"),
        ("Quit", partial(run, "quit"), "Leave Workbench (ctrl+q)"),
    ]
    from workbench.termsafe import visible

    for rule in app.rules:
        text = visible(rule.display() if hasattr(rule, "display") else str(rule))
        scope = getattr(rule, "scope", "")
        cmds.append(
            (
                f"Remove rule: {text}",
                partial(app.remove_rule, rule),
                f"Stop applying this {scope} rule: the next call it matched asks again",
            )
        )
    engine = app.engine
    if engine is not None:
        ws = engine.workspace
        for kind, names in (("agent", ws.agents), ("team", ws.teams), ("workflow", ws.workflows)):
            for name in names:
                cmds.append(
                    (
                        f"Talk to {kind} {name}",
                        partial(app.choose_target, kind, name),
                        f"Send the next prompts to the {kind} '{name}'",
                    )
                )
    return cmds


class WorkbenchCommands(Provider):
    """The app's commands for the palette."""

    def _commands(self) -> list[Command]:
        from screens.app import WorkbenchApp

        app = self.app
        return commands_for(app) if isinstance(app, WorkbenchApp) else []

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
