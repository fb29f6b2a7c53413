"""The keys screen (F1 or ?): every key of every pane, in one place."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.types import CSSPathType
from textual.widgets import Static

__all__ = ["KEYS", "HelpScreen", "keys_table"]

KEYS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Everywhere",
        [
            ("F1  ?", "these keys"),
            ("ctrl+p", "command palette: every action, 'Talk to …' a target"),
            ("F2 F3 F4 F5 F6", "chat · team lanes · workflow graph · approvals · usage"),
            ("F7", "sessions: open, resume, replay, delete"),
            ("F8", "light / dark theme"),
            ("F9", "MCP servers: state, tools, resources, prompts (r restart, enter attach)"),
            ("ctrl+n", "new session"),
            ("ctrl+r", "replay this session"),
            ("ctrl+c", "copy the selected text; with none, cancel the run in flight"),
            ("ctrl+o", "copy the last answer"),
            ("escape", "back to the prompt / close a dialog"),
            ("ctrl+q", "quit (with a run in flight, asks; the run stays resumable)"),
        ],
    ),
    (
        "Copy",
        [
            ("mouse drag", "select text in the chat, a lane or a node's transcript"),
            ("ctrl+c", "copy the selection (OSC 52: the terminal's clipboard)"),
            ("ctrl+o", "copy the last answer (as written, Markdown and all)"),
            ("c", "copy the focused message, or a tool call's result (tab or click focuses)"),
        ],
    ),
    (
        "Waiting calls",
        [
            ("y s a n e", "decide the oldest waiting call, from the chat, a lane or the graph"),
            ("", "(in the prompt only while it is empty: typed text never decides)"),
            ("y", "allow once"),
            ("s", "allow for this session"),
            ("a", "allow always: shows the rules to save, asks to confirm"),
            ("n", "deny, with an optional note for the model"),
            ("e", "edit the arguments (JSON, ctrl+s to allow)"),
        ],
    ),
    (
        "Chat",
        [
            ("enter", "send (queued while the engine loads or a run is in flight)"),
            ("ctrl+j", "newline (every terminal); shift+enter / alt+enter where reported"),
            ("↑ on the first line", "previous prompt"),
            ("↓ on the last line", "next prompt"),
            ("tab", "to the target picker and the transcript"),
            ("enter on a tool block", "expand: arguments, result or error, duration"),
        ],
    ),
    (
        "Approvals (F5)",
        [
            ("↑ ↓", "choose a waiting call (oldest first); y s a n e decide it"),
            ("", "after a decision the next waiting call is selected"),
            ("r", "the saved rules (and back)"),
            ("del  x", "remove the selected rule: the next call it matched asks again"),
        ],
    ),
    (
        "Team",
        [
            ("↑ ↓ enter", "move in the run tree; selecting a run focuses its lane"),
            ("[ ]", "previous / next lane"),
            ("t", "show / hide the run tree"),
        ],
    ),
    (
        "Workflow graph",
        [
            ("← → ↑ ↓", "move the selection (it stops following the run)"),
            ("f", "follow the run again: the node at work stays selected and in view"),
            ("enter / double click", "open the node's transcript"),
        ],
    ),
    (
        "Sessions",
        [
            ("type", "filter by title or id; search messages and tool calls"),
            ("enter", "open (and continue)"),
            ("r", "resume unfinished runs"),
            ("p", "replay"),
            ("d", "delete (asks first)"),
            ("a", "this workspace's sessions / every workspace's"),
        ],
    ),
    (
        "Replay",
        [
            ("space", "play / pause"),
            ("1 2 3 4", "speed 1x · 2x · 10x · instant"),
            (". ,", "one event forward / back"),
            ("← →  home end", "scrub (or click the timeline)"),
            ("f", "fork at the last message shown, continue in the chat"),
            ("escape", "close the replay"),
        ],
    ),
]
"""Every key, by context."""


def keys_table() -> Table:
    """The keys as a table."""
    table = Table(box=None, show_header=False, pad_edge=False, expand=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for i, (section, rows) in enumerate(KEYS):
        if i:
            table.add_row("", "")
        table.add_row(Text(section, style="bold underline"), "")
        for key, what in rows:
            table.add_row(f"  {key}", what)
    return table


class HelpScreen(ModalScreen[None]):
    """Every key."""

    CSS_PATH: ClassVar[CSSPathType | None] = [Path(__file__).parent / "help.tcss"]
    BINDINGS: ClassVar[list[Any]] = [Binding("escape,q,f1,question_mark", "dismiss", "Close")]

    def compose(self) -> Any:
        with VerticalScroll(classes="dialog"):
            yield Static(Text("Workbench keys", style="bold"), classes="title")
            yield Static(keys_table())
            yield Static(Text("escape closes", style="dim"))

    async def action_dismiss(self, result: None = None) -> None:
        """Close."""
        self.dismiss(result)
