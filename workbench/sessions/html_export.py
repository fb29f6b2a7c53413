"""A session as one self-contained HTML page."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Final

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


def export_html(header: ArchiveHeader, events: Iterable[evt.Event]) -> str:
    """A session as one self-contained HTML page: inline CSS, no scripts, nothing fetched,
    every text escaped."""
    shown, entries = _gather(events)
    title = header.title or header.session_id
    renderer = _Html(entries, _depths(shown))
    body = [piece for e in shown if (piece := describe(e, renderer)) is not None]
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


class _Html(_ExportRenderer):
    """One HTML fragment per event (a :class:`~workbench.describe.EventRenderer`); a tool call
    is one fragment, where it first appears, with its approval and result."""

    def _style(self, e: evt.Event) -> str:
        indent = self._depth.get(e.run_id, 0)
        return f' style="margin-left:{indent * 1.5:g}rem"' if indent else ""

    def _who(self, e: evt.Event) -> str:
        return _h(e.source or "agent")

    def _tool(
        self, e: evt.ApprovalRequired | evt.ApprovalResolved | evt.ToolCall | evt.ToolResult
    ) -> str:
        return _html_tool(self._entries[(e.run_id, e.call_id)], self._who(e), self._style(e))

    def run_started(self, e: evt.RunStarted) -> str:
        model = f' <span class="dim">model {_h(e.model)}</span>' if e.model else ""
        resumed = ' <span class="warn">(resumed)</span>' if e.resumed else ""
        return (
            f'<div class="ev run"{self._style(e)}>▶ {_h(e.target_kind)} {_h(e.target)}{model}'
            f'{resumed} <span class="id">{_h(e.run_id)}</span></div>'
        )

    def message(self, e: evt.MessageCompleted) -> str | None:
        if e.role == "assistant" and not e.content:
            return None
        name = {"user": "you" if e.parent_run_id is None else "task", "system": "system"}
        return (
            f'<div class="ev msg {_h(e.role)}"{self._style(e)}><div class="who">'
            f"{name.get(e.role, self._who(e))}</div>"
            f'<div class="text">{_h(e.content)}</div></div>'
        )

    tool_call = tool_result = approval_required = approval_resolved = _tool

    def run_completed(self, e: evt.RunCompleted) -> str:
        cost = f" · ${e.cost:.4f}" if e.cost else ""
        return (
            f'<div class="ev ok"{self._style(e)}>✓ {self._who(e)} done in '
            f"{_seconds(e.duration_ms)} · "
            f"{e.usage.prompt_tokens}+{e.usage.completion_tokens} tokens{_h(cost)}</div>"
        )

    def run_failed(self, e: evt.RunFailed) -> str:
        hint = f'<div class="warn">hint: {_h(e.hint)}</div>' if e.hint else ""
        return f'<div class="ev bad"{self._style(e)}>✗ {self._who(e)} failed{_pre(e.error)}{hint}</div>'

    def run_cancelled(self, e: evt.RunCancelled) -> str:
        return f'<div class="ev warn"{self._style(e)}>■ {self._who(e)} cancelled ({_h(e.reason)})</div>'

    def run_interrupted(self, e: evt.RunInterrupted) -> str:
        return (
            f'<div class="ev warn"{self._style(e)}>⚠ {self._who(e)} interrupted '
            f"({_h(e.reason)})</div>"
        )

    def team_delegated(self, e: evt.TeamDelegated) -> str:
        return (
            f'<div class="ev"{self._style(e)}>⇢ delegated to <b>{_h(e.member)}</b>'
            f'<div class="text">{_h(e.task)}</div></div>'
        )

    def team_vote(self, e: evt.TeamVote) -> str:
        verdict = "agrees" if e.agree else "disagrees"
        return (
            f'<div class="ev"{self._style(e)}>round {e.round}: <b>{_h(e.member)}</b> {verdict}'
            f'<div class="text">{_h(e.position)}</div></div>'
        )

    def step_started(self, e: evt.WorkflowStepStarted) -> str:
        return (
            f'<div class="ev"{self._style(e)}>◆ step <code>{_h(e.path)}</code> '
            f'<span class="dim">{_h(e.kind)}</span></div>'
        )

    def step_completed(self, e: evt.WorkflowStepCompleted) -> str:
        cls = {"done": "ok", "failed": "bad", "cancelled": "warn"}.get(e.status, "dim")
        detail = e.error if e.error is not None else e.output
        return (
            f'<div class="ev"{self._style(e)}><span class="{cls}">◇ step '
            f"<code>{_h(e.path)}</code> "
            f"{_h(e.status)}</span>{_pre(detail) if detail else ''}</div>"
        )

    def workflow_conflict(self, e: evt.WorkflowConflict) -> str:
        return (
            f'<div class="ev warn"{self._style(e)}>! state conflict on <code>{_h(e.key)}</code> in '
            f"<code>{_h(e.path)}</code>{_pre(_json(e.values))}</div>"
        )

    def context_summarized(self, e: evt.ContextSummarized) -> str:
        return (
            f'<div class="ev warn"{self._style(e)}>⋯ {e.turns} earlier messages summarised '
            f"({e.tokens_before} → {e.tokens_after} tokens)"
            f'<div class="text">{_h(e.summary)}</div></div>'
        )

    def model_retry(self, e: evt.ModelRetry) -> str:
        return (
            f'<div class="ev warn"{self._style(e)}>↻ model call failed (attempt {e.attempt}), '
            f"retry in {e.delay_s:.1f} s: {_h(e.error)}</div>"
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
