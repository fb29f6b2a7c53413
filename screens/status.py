"""The status bar: engine state, workspace and model, session, runs, approvals."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

__all__ = ["StatusBar"]


class StatusBar(Static):
    """One line at the bottom of the main screen."""

    DEFAULT_CSS = """
    StatusBar { height: 1; padding: 0 1; background: $panel; color: $foreground-muted; }
    """

    engine: reactive[str] = reactive("loading engine…")
    """loading engine…, the workspace name, or what went wrong."""
    failed: reactive[bool] = reactive(False)
    """The engine could not open (the workspace has an error)."""
    model: reactive[str] = reactive("")
    """The chosen target and its model."""
    session: reactive[str] = reactive("")
    """The session id ('' for a new one)."""
    running: reactive[int] = reactive(0)
    """Runs in flight."""
    pending: reactive[int] = reactive(0)
    """Approvals waiting."""
    mode: reactive[str] = reactive("")
    """replay, when replaying."""

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("Workbench ", style="bold")
        if self.mode:
            text.append(f"{self.mode} ", style="bold reverse")
            text.append(" ")
        text.append(self.engine, style="bold red" if self.failed else "bold")
        if self.model:
            text.append(f" · {self.model}")
        if self.session:
            text.append(f" · {self.session}", style="dim")
        if self.running:
            text.append(f" · ● {self.running} running", style="yellow")
        if self.pending:
            text.append(
                f" · ⚠ {self.pending} approval{'s' if self.pending != 1 else ''} (F5)",
                style="bold magenta",
            )
        text.append("  F1 keys · ctrl+p commands", style="dim")
        return text
