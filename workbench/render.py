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

from workbench import events as evt
from workbench.describe import describe
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

    It is an :class:`~workbench.describe.EventRenderer`: one method per kind of event, each
    printing that event's line.

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
        self._held: list[evt.Event] | None = None
        self._ind = ""
        """The indent of the event being printed (its run's depth)."""

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

    def _indent(self, ev: evt.Event) -> str:
        return "  " * self._depth.get(ev.run_id, 0)

    def _end_stream(self) -> None:
        if self._streaming is not None:
            self.console.print()
            self._streaming = None

    def feed(self, ev: evt.Event) -> None:
        """Print one event."""
        if self._held is not None:
            self._held.append(ev)
            return
        ev = safe_event(ev)
        if not isinstance(ev, evt.MessageDelta):
            self._end_stream()
        self._ind = self._indent(ev)
        describe(ev, self)

    # -- one method per kind of event (workbench.describe.EventRenderer) --

    def message_delta(self, ev: evt.MessageDelta) -> None:
        """Stream a piece of an assistant message (live only)."""
        if not self.live:
            return
        if self._streaming != ev.message_id:
            self._end_stream()
            self.console.print(Text(f"{self._indent(ev)}{ev.source}: ", style="bold cyan"), end="")
            self._streaming = ev.message_id
            self._streamed.add(ev.message_id)
        self.console.print(Text(ev.text), end="", soft_wrap=True)

    def run_started(self, ev: evt.RunStarted) -> None:
        """``▶ agent name (model)  run id``, indented under its parent run."""
        depth = self._depth.get(ev.parent_run_id, -1) + 1 if ev.parent_run_id else 0
        self._depth[ev.run_id] = depth
        ind = "  " * depth
        model = f" [dim]({escape(ev.model)})[/]" if ev.model else ""
        resumed = " [yellow](resumed)[/]" if ev.resumed else ""
        self.console.print(
            f"{ind}[bold]▶ {ev.target_kind} {escape(ev.target)}[/]{model}{resumed}  [dim]{ev.run_id}[/]"
        )

    def message(self, ev: evt.MessageCompleted) -> None:
        """The person's message, a task, or an assistant message that was not streamed."""
        c, ind = self.console, self._ind
        if ev.role == "user":
            if ev.parent_run_id is None:
                c.print(f"{ind}[bold green]you:[/] {escape(ev.content)}")
            else:
                c.print(f"{ind}[green]task:[/] {escape(short(ev.content))}")
        elif ev.role == "assistant" and ev.content and ev.message_id not in self._streamed:
            c.print(Text(f"{ind}{ev.source}: ", style="bold cyan"), Text(ev.content))

    def tool_call(self, ev: evt.ToolCall) -> None:
        """``→ tool {arguments}``."""
        self.console.print(
            f"{self._ind}[magenta]→ {escape(ev.tool)}[/] [dim]{escape(short(format_args(ev.arguments), 200))}[/]"
        )

    def tool_result(self, ev: evt.ToolResult) -> None:
        """``← tool (ms) output`` or ``✗ tool: error``."""
        if ev.error is not None:
            self.console.print(f"{self._ind}[red]✗ {escape(ev.tool)}: {escape(short(ev.error))}[/]")
        else:
            self.console.print(
                f"{self._ind}[magenta]← {escape(ev.tool)}[/] [dim]({ev.duration_ms:.0f} ms)[/] "
                f"{escape(short(ev.output, 200))}"
            )

    def approval_required(self, ev: evt.ApprovalRequired) -> None:
        """``? approval needed for tool: reason`` (or ``asks for input``)."""
        ind = self._ind
        if ev.kind == "input":
            self.console.print(
                f"{ind}[yellow]? {escape(ev.tool)} asks for input[/]: {escape(ev.reason)}"
            )
        else:
            self.console.print(
                f"{ind}[yellow]? approval needed for {escape(ev.tool)}[/]: {escape(ev.reason)}"
            )

    def tool_progress(self, ev: evt.ToolProgress) -> None:
        """``… tool 3/10 message`` (live only)."""
        if self.live:
            done = f"{ev.progress:g}" + (f"/{ev.total:g}" if ev.total is not None else "")
            said = f" {escape(short(ev.message, 120))}" if ev.message else ""
            self.console.print(f"{self._ind}[dim]… {escape(ev.tool)} {done}{said}[/]")

    def tool_unavailable(self, ev: evt.ToolUnavailable) -> None:
        """``! toolkit unavailable, running without patterns: first line of the error``."""
        first = ev.error.splitlines()[0] if ev.error else ""
        self.console.print(
            f"{self._ind}[yellow]! {escape(ev.toolkit)} unavailable, running without "
            f"{escape(', '.join(ev.patterns))}[/]: {escape(short(first, 300))}"
        )

    def approval_resolved(self, ev: evt.ApprovalResolved) -> None:
        """``allow for session tool by who — note (rule: ...)``."""
        colour = "green" if ev.decision == "allow" else "red"
        scope = f" for {ev.scope}" if ev.decision == "allow" and ev.scope != "once" else ""
        note = f" — {escape(ev.note)}" if ev.note else ""
        rule = f" [dim](rule: {escape(ev.rule)})[/]" if ev.rule else ""
        self.console.print(
            f"{self._ind}[{colour}]{ev.decision}{scope}[/] {escape(ev.tool)} by {escape(ev.decided_by)}{note}{rule}"
        )

    def run_completed(self, ev: evt.RunCompleted) -> None:
        """``✓ agent done in 1.2s · tokens, cost``."""
        cost = f", ${ev.cost:.4f}" if ev.cost else ""
        self.console.print(
            f"{self._ind}[dim]✓ {escape(ev.source)} done in {ev.duration_ms / 1000:.1f}s · "
            f"{ev.usage.prompt_tokens}+{ev.usage.completion_tokens} tokens{cost}[/]"
        )

    def run_failed(self, ev: evt.RunFailed) -> None:
        """``✗ agent failed: error`` and its hint."""
        ind = self._ind
        self.console.print(f"{ind}[bold red]✗ {escape(ev.source)} failed: {escape(ev.error)}[/]")
        if ev.hint:
            self.console.print(f"{ind}[yellow]  hint: {escape(ev.hint)}[/]")

    def run_cancelled(self, ev: evt.RunCancelled) -> None:
        """``■ agent cancelled``."""
        self.console.print(f"{self._ind}[yellow]■ {escape(ev.source)} cancelled[/]")

    def run_interrupted(self, ev: evt.RunInterrupted) -> None:
        """``⚠ agent interrupted: reason``."""
        self.console.print(
            f"{self._ind}[yellow]⚠ {escape(ev.source)} interrupted: {escape(ev.reason)}[/]"
        )

    def team_delegated(self, ev: evt.TeamDelegated) -> None:
        """``⇢ member: task``."""
        self.console.print(
            f"{self._ind}[blue]⇢ {escape(ev.member)}[/]: {escape(short(ev.task, 200))}"
        )

    def team_vote(self, ev: evt.TeamVote) -> None:
        """``round 1: member agrees position``."""
        verdict = "agrees" if ev.agree else "disagrees"
        self.console.print(
            f"{self._ind}[blue]round {ev.round}: {escape(ev.member)} {verdict}[/] {escape(short(ev.position, 200))}"
        )

    def step_started(self, ev: evt.WorkflowStepStarted) -> None:
        """``◆ path kind``."""
        self.console.print(f"{self._ind}[blue]◆ {escape(ev.path)}[/] [dim]{ev.kind}[/]")

    def step_completed(self, ev: evt.WorkflowStepCompleted) -> None:
        """``◇ path status detail``."""
        style = {"done": "green", "failed": "red", "skipped": "dim", "cancelled": "yellow"}[
            ev.status
        ]
        detail = escape(short(ev.error or ev.output, 160))
        self.console.print(f"{self._ind}[{style}]◇ {escape(ev.path)} {ev.status}[/] {detail}")

    def workflow_conflict(self, ev: evt.WorkflowConflict) -> None:
        """``! state conflict on 'key' in path``."""
        self.console.print(
            f"{self._ind}[yellow]! state conflict on '{escape(ev.key)}' in {escape(ev.path)}[/]"
        )

    def context_summarized(self, ev: evt.ContextSummarized) -> None:
        """``⋯ n earlier messages summarised (before → after tokens)``."""
        self.console.print(
            f"{self._ind}[yellow]⋯ {ev.turns} earlier messages summarised "
            f"({ev.tokens_before} → {ev.tokens_after} tokens)[/]"
        )

    def session_imported(self, ev: evt.SessionImported) -> None:
        """Where the events above came from, and that their decisions are not trusted here."""
        self.console.print(
            f"[dim]⋯ the {ev.events} events above came from {escape(ev.origin)}: their "
            "decisions were made elsewhere (shown, not trusted here)[/]"
        )

    def model_retry(self, ev: evt.ModelRetry) -> None:
        """``↻ model call failed (error); retry in 1.0s``."""
        self.console.print(
            f"{self._ind}[yellow]↻ model call failed ({escape(short(ev.error, 120))}); retry in {ev.delay_s:.1f}s[/]"
        )

    def close(self) -> None:
        """End a line left open by streaming."""
        self._end_stream()
