"""A plain transcript of events for the terminal, with rich.

``workbench run`` renders live events with it, ``workbench sessions show`` and
``workbench replay --plain`` render stored ones: the same code, so a session prints back the
way it ran. Every event passes through :func:`workbench.termsafe.safe_event` first: what a
model or a tool wrote never reaches the terminal as control sequences.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from workbench.events import (
    ApprovalRequired,
    ApprovalResolved,
    ContextSummarized,
    Event,
    MessageCompleted,
    MessageDelta,
    ModelRetry,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunInterrupted,
    RunStarted,
    SessionImported,
    TeamDelegated,
    TeamVote,
    ToolCall,
    ToolProgress,
    ToolResult,
    ToolUnavailable,
    WorkflowConflict,
    WorkflowStepCompleted,
    WorkflowStepStarted,
)
from workbench.termsafe import json_visible, safe_event

__all__ = ["TranscriptPrinter", "format_args", "short"]


def short(text: str | None, limit: int = 300) -> str:
    """One readable excerpt of a long text."""
    if not text:
        return ""
    text = text.strip()
    if len(text) <= limit:
        return text
    return text[: limit - 20] + f" … [{len(text) - limit + 20} more chars]"


def format_args(args: dict[str, Any]) -> str:
    """Tool arguments as compact JSON (control characters escaped, the value unchanged)."""
    return json_visible(json.dumps(args, ensure_ascii=False, default=str))


class TranscriptPrinter:
    """Prints events as a transcript. Feed it events in order with :meth:`feed`.

    Args:
        console: where to print.
        live: events arrive as they happen (deltas are printed; completed assistant messages
            are then not printed again). For stored sessions pass ``False``: deltas are skipped
            and whole messages printed.
    """

    def __init__(self, console: Console, live: bool = True) -> None:
        self.console = console
        self.live = live
        self._streaming: str | None = None
        self._streamed: set[str] = set()
        self._depth: dict[str, int] = {}
        self._held: list[Event] | None = None

    def hold(self) -> None:
        """Keep events back (while the approval prompt is on screen: nothing is drawn
        under it) until :meth:`release`."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Print the events kept back, in order, and print as they come again."""
        held, self._held = self._held, None
        for ev in held or ():
            self.feed(ev)

    def _indent(self, ev: Event) -> str:
        return "  " * self._depth.get(ev.run_id, 0)

    def _end_stream(self) -> None:
        if self._streaming is not None:
            self.console.print()
            self._streaming = None

    def feed(self, ev: Event) -> None:
        """Print one event."""
        if self._held is not None:
            self._held.append(ev)
            return
        ev = safe_event(ev)
        if isinstance(ev, MessageDelta):
            if not self.live:
                return
            if self._streaming != ev.message_id:
                self._end_stream()
                self.console.print(
                    Text(f"{self._indent(ev)}{ev.source}: ", style="bold cyan"), end=""
                )
                self._streaming = ev.message_id
                self._streamed.add(ev.message_id)
            self.console.print(Text(ev.text), end="", soft_wrap=True)
            return
        self._end_stream()
        ind = self._indent(ev)
        c = self.console
        if isinstance(ev, RunStarted):
            depth = self._depth.get(ev.parent_run_id, -1) + 1 if ev.parent_run_id else 0
            self._depth[ev.run_id] = depth
            ind = "  " * depth
            model = f" [dim]({escape(ev.model)})[/]" if ev.model else ""
            resumed = " [yellow](resumed)[/]" if ev.resumed else ""
            c.print(
                f"{ind}[bold]▶ {ev.target_kind} {escape(ev.target)}[/]{model}{resumed}  [dim]{ev.run_id}[/]"
            )
        elif isinstance(ev, MessageCompleted):
            if ev.role == "user":
                if ev.parent_run_id is None:
                    c.print(f"{ind}[bold green]you:[/] {escape(ev.content)}")
                else:
                    c.print(f"{ind}[green]task:[/] {escape(short(ev.content))}")
            elif ev.role == "assistant" and ev.content and ev.message_id not in self._streamed:
                c.print(Text(f"{ind}{ev.source}: ", style="bold cyan"), Text(ev.content))
        elif isinstance(ev, ToolCall):
            c.print(
                f"{ind}[magenta]→ {escape(ev.tool)}[/] [dim]{escape(short(format_args(ev.arguments), 200))}[/]"
            )
        elif isinstance(ev, ToolResult):
            if ev.error is not None:
                c.print(f"{ind}[red]✗ {escape(ev.tool)}: {escape(short(ev.error))}[/]")
            else:
                c.print(
                    f"{ind}[magenta]← {escape(ev.tool)}[/] [dim]({ev.duration_ms:.0f} ms)[/] "
                    f"{escape(short(ev.output, 200))}"
                )
        elif isinstance(ev, ApprovalRequired):
            if ev.kind == "input":
                c.print(f"{ind}[yellow]? {escape(ev.tool)} asks for input[/]: {escape(ev.reason)}")
            else:
                c.print(
                    f"{ind}[yellow]? approval needed for {escape(ev.tool)}[/]: {escape(ev.reason)}"
                )
        elif isinstance(ev, ToolProgress):
            if self.live:
                done = f"{ev.progress:g}" + (f"/{ev.total:g}" if ev.total is not None else "")
                said = f" {escape(short(ev.message, 120))}" if ev.message else ""
                c.print(f"{ind}[dim]… {escape(ev.tool)} {done}{said}[/]")
        elif isinstance(ev, ToolUnavailable):
            first = ev.error.splitlines()[0] if ev.error else ""
            c.print(
                f"{ind}[yellow]! {escape(ev.toolkit)} unavailable, running without "
                f"{escape(', '.join(ev.patterns))}[/]: {escape(short(first, 300))}"
            )
        elif isinstance(ev, ApprovalResolved):
            colour = "green" if ev.decision == "allow" else "red"
            scope = f" for {ev.scope}" if ev.decision == "allow" and ev.scope != "once" else ""
            note = f" — {escape(ev.note)}" if ev.note else ""
            rule = f" [dim](rule: {escape(ev.rule)})[/]" if ev.rule else ""
            c.print(
                f"{ind}[{colour}]{ev.decision}{scope}[/] {escape(ev.tool)} by {escape(ev.decided_by)}{note}{rule}"
            )
        elif isinstance(ev, RunCompleted):
            cost = f", ${ev.cost:.4f}" if ev.cost else ""
            c.print(
                f"{ind}[dim]✓ {escape(ev.source)} done in {ev.duration_ms / 1000:.1f}s · "
                f"{ev.usage.prompt_tokens}+{ev.usage.completion_tokens} tokens{cost}[/]"
            )
        elif isinstance(ev, RunFailed):
            c.print(f"{ind}[bold red]✗ {escape(ev.source)} failed: {escape(ev.error)}[/]")
            if ev.hint:
                c.print(f"{ind}[yellow]  hint: {escape(ev.hint)}[/]")
        elif isinstance(ev, RunCancelled):
            c.print(f"{ind}[yellow]■ {escape(ev.source)} cancelled[/]")
        elif isinstance(ev, RunInterrupted):
            c.print(f"{ind}[yellow]⚠ {escape(ev.source)} interrupted: {escape(ev.reason)}[/]")
        elif isinstance(ev, TeamDelegated):
            c.print(f"{ind}[blue]⇢ {escape(ev.member)}[/]: {escape(short(ev.task, 200))}")
        elif isinstance(ev, TeamVote):
            verdict = "agrees" if ev.agree else "disagrees"
            c.print(
                f"{ind}[blue]round {ev.round}: {escape(ev.member)} {verdict}[/] {escape(short(ev.position, 200))}"
            )
        elif isinstance(ev, WorkflowStepStarted):
            c.print(f"{ind}[blue]◆ {escape(ev.path)}[/] [dim]{ev.kind}[/]")
        elif isinstance(ev, WorkflowStepCompleted):
            style = {"done": "green", "failed": "red", "skipped": "dim", "cancelled": "yellow"}[
                ev.status
            ]
            detail = escape(short(ev.error or ev.output, 160))
            c.print(f"{ind}[{style}]◇ {escape(ev.path)} {ev.status}[/] {detail}")
        elif isinstance(ev, WorkflowConflict):
            c.print(f"{ind}[yellow]! state conflict on '{escape(ev.key)}' in {escape(ev.path)}[/]")
        elif isinstance(ev, ContextSummarized):
            c.print(
                f"{ind}[yellow]⋯ {ev.turns} earlier messages summarised "
                f"({ev.tokens_before} → {ev.tokens_after} tokens)[/]"
            )
        elif isinstance(ev, SessionImported):
            c.print(
                f"[dim]⋯ the {ev.events} events above came from {escape(ev.origin)}: their "
                "decisions were made elsewhere (shown, not trusted here)[/]"
            )
        elif isinstance(ev, ModelRetry):
            c.print(
                f"{ind}[yellow]↻ model call failed ({escape(short(ev.error, 120))}); retry in {ev.delay_s:.1f}s[/]"
            )

    def close(self) -> None:
        """End a line left open by streaming."""
        self._end_stream()
