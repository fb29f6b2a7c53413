"""The approval card: what a person needs to decide a tool call, drawn the same way in the
chat, in a member's lane, in a node's transcript and in the approvals pane.

One call, one card: the tool, who asks and why, the command's parts or the file diff, the
arguments (the edited ones, once a person edited them), and how it was decided.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from rich.console import Group, RenderableType
from rich.text import Text

from screens.state import ApprovalState
from workbench.termsafe import json_visible

__all__ = ["DECIDE_KEYS", "KEY_HINT", "DecideHow", "approval_detail", "args_json"]

DecideHow = Literal["once", "session", "always", "deny", "edit"]
"""What a decision key asks for."""

DECIDE_KEYS: dict[str, DecideHow] = {
    "y": "once",
    "s": "session",
    "a": "always",
    "n": "deny",
    "e": "edit",
}
"""The one-key decisions: y allow once, s for the session, a always, n deny, e edit."""

KEY_HINT = "y allow once · s session · a always · n deny · e edit"
"""The keys, as a card and the prompt's hint show them."""


def args_json(args: dict[str, Any]) -> str:
    """The arguments as JSON; what a terminal would obey is escaped without changing the
    value (an edit stays exact)."""
    return json_visible(json.dumps(args, indent=2, ensure_ascii=False, default=str))


def _syntax(code: str, lexer: str) -> RenderableType:
    from rich.syntax import Syntax

    return Syntax(code, lexer, theme="ansi_dark", word_wrap=True, background_color="default")


def approval_detail(a: ApprovalState, *, header: bool = True) -> RenderableType:
    """What a person needs to decide: tool, who asks and why, parts or diff, arguments.

    Args:
        a: The call.
        header: Start with the tool and who asks (a card under a titled block has them).
    """
    head = Text()
    if header:
        head.append(a.tool, style="bold")
        head.append("  asked by ")
        head.append(a.source or "?", style="bold cyan")
        if a.session_id:  # a call of another session than the one shown
            head.append(f"  in session {a.session_id}", style="dim")
        head.append("\n")
    head.append(a.reason, style="italic")
    if a.status != "pending":
        head.append(f"\n{a.decision or a.status}", style="dim")
    parts: list[RenderableType] = [head]
    if len(a.parts) > 1:
        cmd = Text("\nparts (each needs a rule)", style="bold")
        for p in a.parts:
            cmd.append(f"\n  • {p}", style="not bold")
        parts.append(cmd)
    if a.diff:
        parts.append(Text("\ndiff", style="bold"))
        parts.append(_syntax(a.diff.rstrip("\n"), "diff"))
    if a.edited_arguments is not None:
        parts.append(Text("\narguments, as a person edited them", style="bold"))
        parts.append(_syntax(args_json(a.edited_arguments), "json"))
        parts.append(Text("\nas the model asked", style="bold dim"))
        parts.append(_syntax(args_json(a.arguments), "json"))
    else:
        parts.append(Text("\narguments", style="bold"))
        parts.append(_syntax(args_json(a.arguments), "json"))
    return Group(*parts)
