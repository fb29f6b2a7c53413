"""The approval card: what a person needs to decide a tool call, drawn the same way in the
chat, in a member's lane, in a node's transcript and in the approvals pane.

One call, one card: the tool, who asks and why, the command's parts or the file diff, the
arguments (the edited ones, once a person edited them), and how it was decided. A running
tool that asks the person for input (an MCP elicitation) gets the same card: the form's
fields, and its values (``e`` fills them in and sends, ``y`` sends them, ``n`` declines).
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


def _form_fields(form: dict[str, Any]) -> Text:
    """The fields of an input form: name, type, required, what it is for."""
    out = Text("\nform", style="bold")
    required = set(form.get("required") or [])
    props = form.get("properties") or {}
    for name, spec in props.items() if isinstance(props, dict) else []:
        spec = spec if isinstance(spec, dict) else {}
        kind = spec.get("type", "")
        if spec.get("enum"):
            kind = " | ".join(str(v) for v in spec["enum"])
        out.append(f"\n  • {name}", style="bold")
        out.append(f" ({kind}{', required' if name in required else ''})", style="not bold")
        about = spec.get("description") or spec.get("title")
        if about:
            out.append(f": {about}", style="dim")
    return out


def approval_detail(a: ApprovalState, *, header: bool = True) -> RenderableType:
    """What a person needs to decide: tool, who asks and why, parts or diff, arguments (for
    an input request: the form's fields and their values).

    Args:
        a: The call.
        header: Start with the tool and who asks (a card under a titled block has them).
    """
    head = Text()
    if header and a.kind == "input":
        head.append(a.tool, style="bold")
        head.append(" asks for input", style="bold yellow")
        head.append(" (e fill in and send · y send these values · n decline)", style="dim")
        head.append("\n")
    elif header:
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
    if a.kind == "input" and a.form:
        parts.append(_form_fields(a.form))
    what = "values" if a.kind == "input" else "arguments"
    if a.edited_arguments is not None:
        parts.append(Text(f"\n{what}, as a person edited them", style="bold"))
        parts.append(_syntax(args_json(a.edited_arguments), "json"))
        asker = "the tool" if a.kind == "input" else "the model"
        parts.append(Text(f"\nas {asker} asked", style="bold dim"))
        parts.append(_syntax(args_json(a.arguments), "json"))
    else:
        parts.append(Text(f"\n{what}", style="bold"))
        parts.append(_syntax(args_json(a.arguments), "json"))
    return Group(*parts)
