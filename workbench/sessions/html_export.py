"""A session as one self-contained HTML page."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Final

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

# -- HTML --

_CSS: Final = """
:root { --fg: #1f2328; --dim: #656d76; --bg: #ffffff; --panel: #f6f8fa; --line: #d0d7de;
  --user: #0969da; --agent: #8250df; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6edf3; --dim: #8d96a0; --bg: #0d1117; --panel: #161b22; --line: #30363d;
    --user: #4493f8; --agent: #ab7df8; --ok: #3fb950; --bad: #f85149; --warn: #d29922; } }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 60rem; padding: 1.5rem; background: var(--bg);
  color: var(--fg); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
h1 { font-size: 1.5rem; margin: 0 0 .5rem; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .1rem 1rem;
  color: var(--dim); margin: 0 0 1.5rem; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
.ev { margin: .5rem 0; }
.run { border-top: 1px solid var(--line); padding-top: .5rem; margin-top: 1rem; font-weight: 600; }
.id, .dim { color: var(--dim); font-weight: normal; font-size: .85em; }
.msg .who { font-weight: 600; }
.msg.user .who { color: var(--user); } .msg.assistant .who { color: var(--agent); }
.text { white-space: pre-wrap; overflow-wrap: anywhere; }
pre { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
  padding: .5rem .75rem; overflow-x: auto; white-space: pre-wrap; overflow-wrap: anywhere;
  margin: .25rem 0; font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
.tool { border-left: 3px solid var(--agent); padding-left: .75rem; }
.tool summary { cursor: pointer; }
.ok { color: var(--ok); } .bad { color: var(--bad); } .warn { color: var(--warn); }
.label { font-size: .8em; text-transform: uppercase; letter-spacing: .04em; color: var(--dim); }
code { font: 13px ui-monospace, SFMono-Regular, Menlo, monospace; }
"""


def _h(value: object) -> str:
    return html.escape(str(value), quote=True)


def _pre(text: str, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<pre{attr}>{_h(text)}</pre>"


def export_html(header: ArchiveHeader, events: Iterable[Event]) -> str:
    """A session as one self-contained HTML page: inline CSS, no scripts, nothing fetched,
    every text escaped."""
    shown, entries = _gather(events)
    depth = _depths(shown)
    title = header.title or header.session_id
    body: list[str] = []
    for e in shown:
        indent = depth.get(e.run_id, 0)
        style = f' style="margin-left:{indent * 1.5:g}rem"' if indent else ""
        who = _h(e.source or "agent")
        if isinstance(e, RunStarted):
            model = f' <span class="dim">model {_h(e.model)}</span>' if e.model else ""
            resumed = ' <span class="warn">(resumed)</span>' if e.resumed else ""
            body.append(
                f'<div class="ev run"{style}>▶ {_h(e.target_kind)} {_h(e.target)}{model}'
                f'{resumed} <span class="id">{_h(e.run_id)}</span></div>'
            )
        elif isinstance(e, MessageCompleted):
            if e.role == "assistant" and not e.content:
                continue
            name = {"user": "you" if e.parent_run_id is None else "task", "system": "system"}
            body.append(
                f'<div class="ev msg {_h(e.role)}"{style}><div class="who">'
                f"{name.get(e.role, who)}</div>"
                f'<div class="text">{_h(e.content)}</div></div>'
            )
        elif isinstance(e, ApprovalRequired | ApprovalResolved | ToolCall | ToolResult):
            body.append(_html_tool(entries[(e.run_id, e.call_id)], who, style))
        elif isinstance(e, RunCompleted):
            cost = f" · ${e.cost:.4f}" if e.cost else ""
            body.append(
                f'<div class="ev ok"{style}>✓ {who} done in {_seconds(e.duration_ms)} · '
                f"{e.usage.prompt_tokens}+{e.usage.completion_tokens} tokens{_h(cost)}</div>"
            )
        elif isinstance(e, RunFailed):
            hint = f'<div class="warn">hint: {_h(e.hint)}</div>' if e.hint else ""
            body.append(f'<div class="ev bad"{style}>✗ {who} failed{_pre(e.error)}{hint}</div>')
        elif isinstance(e, RunCancelled):
            body.append(f'<div class="ev warn"{style}>■ {who} cancelled ({_h(e.reason)})</div>')
        elif isinstance(e, RunInterrupted):
            body.append(f'<div class="ev warn"{style}>⚠ {who} interrupted ({_h(e.reason)})</div>')
        elif isinstance(e, TeamDelegated):
            body.append(
                f'<div class="ev"{style}>⇢ delegated to <b>{_h(e.member)}</b>'
                f'<div class="text">{_h(e.task)}</div></div>'
            )
        elif isinstance(e, TeamVote):
            verdict = "agrees" if e.agree else "disagrees"
            body.append(
                f'<div class="ev"{style}>round {e.round}: <b>{_h(e.member)}</b> {verdict}'
                f'<div class="text">{_h(e.position)}</div></div>'
            )
        elif isinstance(e, WorkflowStepStarted):
            body.append(
                f'<div class="ev"{style}>◆ step <code>{_h(e.path)}</code> '
                f'<span class="dim">{_h(e.kind)}</span></div>'
            )
        elif isinstance(e, WorkflowStepCompleted):
            cls = {"done": "ok", "failed": "bad", "cancelled": "warn"}.get(e.status, "dim")
            detail = e.error if e.error is not None else e.output
            body.append(
                f'<div class="ev"{style}><span class="{cls}">◇ step <code>{_h(e.path)}</code> '
                f"{_h(e.status)}</span>{_pre(detail) if detail else ''}</div>"
            )
        elif isinstance(e, WorkflowConflict):
            body.append(
                f'<div class="ev warn"{style}>! state conflict on <code>{_h(e.key)}</code> in '
                f"<code>{_h(e.path)}</code>{_pre(_json(e.values))}</div>"
            )
        elif isinstance(e, ContextSummarized):
            body.append(
                f'<div class="ev warn"{style}>⋯ {e.turns} earlier messages summarised '
                f"({e.tokens_before} → {e.tokens_after} tokens)"
                f'<div class="text">{_h(e.summary)}</div></div>'
            )
        elif isinstance(e, ModelRetry):
            body.append(
                f'<div class="ev warn"{style}>↻ model call failed (attempt {e.attempt}), '
                f"retry in {e.delay_s:.1f} s: {_h(e.error)}</div>"
            )
    meta = [
        ("Session", header.session_id),
        ("Workspace", header.workspace or "(unknown)"),
        ("Created", _utc(header.created_at)),
    ]
    if header.forked_from:
        meta.append(("Forked from", f"{header.forked_from} at event {header.forked_from_seq}"))
    meta_html = "".join(f"<dt>{_h(k)}</dt><dd>{_h(v)}</dd>" for k, v in meta)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="workbench sessions export">\n'
        f"<title>{_h(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f'<header><h1>{_h(title)}</h1><dl class="meta">{meta_html}</dl></header>\n'
        "<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )


def _html_tool(entry: _Entry, who: str, style: str) -> str:
    res = entry.result
    if res is None:
        status = '<span class="warn">no result</span>'
    elif res.error is not None:
        status = (
            f'<span class="bad">error</span> <span class="dim">{_seconds(res.duration_ms)}</span>'
        )
    else:
        status = f'<span class="ok">ok</span> <span class="dim">{_seconds(res.duration_ms)}</span>'
    parts = [
        f'<details class="ev tool" open{style}><summary>→ {who} calls '
        f"<code>{_h(entry.tool)}</code> {status} "
        f'<span class="id">{_h(entry.call_id)}</span></summary>'
    ]
    if entry.arguments is not None:
        parts.append(f'<div class="label">arguments</div>{_pre(_json(entry.arguments))}')
    if entry.required is not None:
        parts.append(
            f'<div class="warn">approval asked: {_h(entry.required.reason)}</div>'
            + (_pre(entry.required.diff) if entry.required.diff else "")
        )
    if entry.resolved is not None:
        r = entry.resolved
        cls = "ok" if r.decision == "allow" else "bad"
        note = f" — {_h(r.note)}" if r.note else ""
        rule = f' <span class="dim">(rule saved: {_h(r.rule)})</span>' if r.rule else ""
        parts.append(
            f'<div class="approval"><span class="{cls}">{_decision_words(r)}</span> by '
            f"<b>{_h(r.decided_by)}</b>{note}{rule}</div>"
        )
        if r.edited_arguments is not None:
            parts.append(
                f'<div class="label">edited arguments</div>{_pre(_json(r.edited_arguments))}'
            )
    if res is not None:
        if res.error is not None:
            parts.append(f'<div class="label">error</div>{_pre(res.error)}')
        else:
            parts.append(f'<div class="label">result</div>{_pre(res.output or "")}')
    parts.append("</details>")
    return "".join(parts)
