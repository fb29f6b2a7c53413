"""A session as a Markdown transcript."""

from __future__ import annotations

import re
from collections.abc import Iterable

from workbench import events as evt
from workbench.describe import describe

from .archive import ArchiveHeader
from .entries import (
    _decision_words,
    _depths,
    _Entry,
    _ExportRenderer,
    _gather,
    _json,
    _seconds,
    _utc,
)

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


def export_markdown(header: ArchiveHeader, events: Iterable[evt.Event]) -> str:
    """A session as a Markdown transcript.

    Messages are block quotes holding the text as written (it is Markdown already); every
    other text (names, arguments, results, notes) is escaped or fenced.
    """
    shown, entries = _gather(events)
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
    renderer = _Markdown(entries, _depths(shown))
    for e in shown:
        block = describe(e, renderer)
        if block is not None:
            out.append(block)
    return "\n".join(out)


class _Markdown(_ExportRenderer):
    """One Markdown block per event (a :class:`~workbench.describe.EventRenderer`); a tool
    call is one block, where it first appears, with its approval and result."""

    def _who(self, e: evt.Event) -> str:
        return _md_inline(e.source or "agent")

    def _tool(
        self, e: evt.ApprovalRequired | evt.ApprovalResolved | evt.ToolCall | evt.ToolResult
    ) -> str:
        return _md_tool(self._entries[(e.run_id, e.call_id)], self._who(e))

    def run_started(self, e: evt.RunStarted) -> str:
        level = "#" * min(6, 2 + self._depth.get(e.run_id, 0))
        model = f" · model {_md_code(e.model)}" if e.model else ""
        resumed = " · resumed" if e.resumed else ""
        return (
            f"{level} ▶ {e.target_kind} {_md_inline(e.target)}\n\n"
            f"Run {_md_code(e.run_id)}{model}{resumed}\n"
        )

    def message(self, e: evt.MessageCompleted) -> str | None:
        if e.role == "assistant" and not e.content:
            return None
        name = {"user": "You" if e.parent_run_id is None else "Task", "system": "System"}
        return f"**{name.get(e.role, self._who(e))}:**\n\n{_md_quote(e.content)}"

    tool_call = tool_result = approval_required = approval_resolved = _tool

    def run_completed(self, e: evt.RunCompleted) -> str:
        cost = f" · ${e.cost:.4f}" if e.cost else ""
        return (
            f"✓ {self._who(e)} done in {_seconds(e.duration_ms)} · {e.usage.prompt_tokens}+"
            f"{e.usage.completion_tokens} tokens{cost}\n"
        )

    def run_failed(self, e: evt.RunFailed) -> str:
        hint = f"\n\nHint: {_md_inline(e.hint)}" if e.hint else ""
        return f"**✗ {self._who(e)} failed:**\n\n{_md_block(e.error)}{hint}\n"

    def run_cancelled(self, e: evt.RunCancelled) -> str:
        return f"■ {self._who(e)} cancelled ({_md_inline(e.reason)})\n"

    def run_interrupted(self, e: evt.RunInterrupted) -> str:
        return f"⚠ {self._who(e)} interrupted ({_md_inline(e.reason)})\n"

    def team_delegated(self, e: evt.TeamDelegated) -> str:
        return f"⇢ delegated to **{_md_inline(e.member)}**:\n\n{_md_quote(e.task)}"

    def team_vote(self, e: evt.TeamVote) -> str:
        verdict = "agrees" if e.agree else "disagrees"
        return f"Round {e.round}: **{_md_inline(e.member)}** {verdict}\n\n{_md_quote(e.position)}"

    def step_started(self, e: evt.WorkflowStepStarted) -> str:
        return f"◆ step {_md_code(e.path)} ({e.kind}) started\n"

    def step_completed(self, e: evt.WorkflowStepCompleted) -> str:
        detail = e.error if e.error is not None else e.output
        body = f"\n\n{_md_block(detail)}" if detail else "\n"
        return f"◇ step {_md_code(e.path)} {e.status}{body}"

    def workflow_conflict(self, e: evt.WorkflowConflict) -> str:
        return (
            f"! state conflict on {_md_code(e.key)} in {_md_code(e.path)}:\n\n"
            f"{_md_block(_json(e.values), 'json')}"
        )

    def context_summarized(self, e: evt.ContextSummarized) -> str:
        return (
            f"⋯ {e.turns} earlier messages summarised ({e.tokens_before} → "
            f"{e.tokens_after} tokens):\n\n{_md_quote(e.summary)}"
        )

    def model_retry(self, e: evt.ModelRetry) -> str:
        return (
            f"↻ model call failed (attempt {e.attempt}), retry in {e.delay_s:.1f} s: "
            f"{_md_code(e.error)}\n"
        )


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
