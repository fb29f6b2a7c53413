"""A session as a Markdown transcript."""

from __future__ import annotations

import re
from collections.abc import Iterable

from workbench.events import (
    ApprovalRequired,
    ApprovalResolved,
    ContextSummarized,
    Event,
    MessageCompleted,
    ModelRetry,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunInterrupted,
    RunStarted,
    TeamDelegated,
    TeamVote,
    ToolCall,
    ToolResult,
    WorkflowConflict,
    WorkflowStepCompleted,
    WorkflowStepStarted,
)

from .archive import ArchiveHeader
from .entries import _decision_words, _depths, _Entry, _gather, _json, _seconds, _utc

# -- Markdown --


def _md_inline(text: str) -> str:
    """Text safe inside a Markdown paragraph (no markup, no HTML)."""
    text = " ".join(text.split())
    text = re.sub(r"([\\`*_\[\]|~<>])", r"\\\1", text)
    if text[:1] in ("#", "+", "-", ">", "="):
        text = "\\" + text  # would start a heading, a list or a quote
    elif m := re.match(r"\d+(?=[.)])", text):
        text = f"{m.group()}\\{text[m.end() :]}"  # would start a numbered list
    return text.replace("&", "&amp;")


def _md_code(text: str) -> str:
    """An inline code span holding ``text`` whatever backticks it has."""
    text = " ".join(text.split())
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or longest else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _md_block(text: str, lang: str = "") -> str:
    """A fenced code block holding ``text`` whatever fences it has."""
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}\n"


def _md_quote(text: str) -> str:
    """Message text as a block quote: verbatim Markdown, as the author wrote it."""
    lines = text.rstrip().splitlines() or [""]
    return "\n".join(f"> {line}" if line.strip() else ">" for line in lines) + "\n"


def export_markdown(header: ArchiveHeader, events: Iterable[Event]) -> str:
    """A session as a Markdown transcript.

    Messages are block quotes holding the text as written (it is Markdown already); every
    other text (names, arguments, results, notes) is escaped or fenced.
    """
    shown, entries = _gather(events)
    depth = _depths(shown)
    out: list[str] = [f"# {_md_inline(header.title or header.session_id)}\n"]
    meta = [
        f"- Session: {_md_code(header.session_id)}",
        f"- Workspace: {_md_code(header.workspace) if header.workspace else '(unknown)'}",
        f"- Created: {_utc(header.created_at)}",
    ]
    if header.forked_from:
        meta.append(
            f"- Forked from: {_md_code(header.forked_from)} at event {header.forked_from_seq}"
        )
    out.append("\n".join(meta) + "\n")
    for e in shown:
        level = "#" * min(6, 2 + depth.get(e.run_id, 0))
        who = _md_inline(e.source or "agent")
        if isinstance(e, RunStarted):
            model = f" · model {_md_code(e.model)}" if e.model else ""
            resumed = " · resumed" if e.resumed else ""
            out.append(
                f"{level} ▶ {e.target_kind} {_md_inline(e.target)}\n\n"
                f"Run {_md_code(e.run_id)}{model}{resumed}\n"
            )
        elif isinstance(e, MessageCompleted):
            if e.role == "assistant" and not e.content:
                continue
            name = {"user": "You" if e.parent_run_id is None else "Task", "system": "System"}
            out.append(f"**{name.get(e.role, who)}:**\n\n{_md_quote(e.content)}")
        elif isinstance(e, ApprovalRequired | ApprovalResolved | ToolCall | ToolResult):
            out.append(_md_tool(entries[(e.run_id, e.call_id)], who))
        elif isinstance(e, RunCompleted):
            cost = f" · ${e.cost:.4f}" if e.cost else ""
            out.append(
                f"✓ {who} done in {_seconds(e.duration_ms)} · {e.usage.prompt_tokens}+"
                f"{e.usage.completion_tokens} tokens{cost}\n"
            )
        elif isinstance(e, RunFailed):
            hint = f"\n\nHint: {_md_inline(e.hint)}" if e.hint else ""
            out.append(f"**✗ {who} failed:**\n\n{_md_block(e.error)}{hint}\n")
        elif isinstance(e, RunCancelled):
            out.append(f"■ {who} cancelled ({_md_inline(e.reason)})\n")
        elif isinstance(e, RunInterrupted):
            out.append(f"⚠ {who} interrupted ({_md_inline(e.reason)})\n")
        elif isinstance(e, TeamDelegated):
            out.append(f"⇢ delegated to **{_md_inline(e.member)}**:\n\n{_md_quote(e.task)}")
        elif isinstance(e, TeamVote):
            verdict = "agrees" if e.agree else "disagrees"
            out.append(
                f"Round {e.round}: **{_md_inline(e.member)}** {verdict}\n\n{_md_quote(e.position)}"
            )
        elif isinstance(e, WorkflowStepStarted):
            out.append(f"◆ step {_md_code(e.path)} ({e.kind}) started\n")
        elif isinstance(e, WorkflowStepCompleted):
            detail = e.error if e.error is not None else e.output
            body = f"\n\n{_md_block(detail)}" if detail else "\n"
            out.append(f"◇ step {_md_code(e.path)} {e.status}{body}")
        elif isinstance(e, WorkflowConflict):
            out.append(
                f"! state conflict on {_md_code(e.key)} in {_md_code(e.path)}:\n\n"
                f"{_md_block(_json(e.values), 'json')}"
            )
        elif isinstance(e, ContextSummarized):
            out.append(
                f"⋯ {e.turns} earlier messages summarised ({e.tokens_before} → "
                f"{e.tokens_after} tokens):\n\n{_md_quote(e.summary)}"
            )
        elif isinstance(e, ModelRetry):
            out.append(
                f"↻ model call failed (attempt {e.attempt}), retry in {e.delay_s:.1f} s: "
                f"{_md_code(e.error)}\n"
            )
    return "\n".join(out)


def _md_tool(entry: _Entry, who: str) -> str:
    parts = [f"**→ {who} calls {_md_code(entry.tool)}** ({_md_code(entry.call_id)})\n"]
    if entry.arguments is not None:
        parts.append(_md_block(_json(entry.arguments), "json"))
    if entry.required is not None:
        parts.append(f"Approval asked: {_md_inline(entry.required.reason)}\n")
        if entry.required.diff:
            parts.append(_md_block(entry.required.diff, "diff"))
    if entry.resolved is not None:
        r = entry.resolved
        line = f"Approval: **{_decision_words(r)}** by **{_md_inline(r.decided_by)}**"
        if r.note:
            line += f" — {_md_inline(r.note)}"
        if r.rule:
            line += f" (rule saved: {_md_code(r.rule)})"
        parts.append(line + "\n")
        if r.edited_arguments is not None:
            parts.append("Edited arguments:\n\n" + _md_block(_json(r.edited_arguments), "json"))
    res = entry.result
    if res is not None:
        if res.error is not None:
            parts.append(
                f"**✗ error** after {_seconds(res.duration_ms)}:\n\n{_md_block(res.error)}"
            )
        else:
            parts.append(
                f"**← result** in {_seconds(res.duration_ms)}:\n\n{_md_block(res.output or '')}"
            )
    return "\n".join(parts)
