"""One description of events: which kinds a transcript knows, and the method that renders each.

The terminal printer (:class:`workbench.render.TranscriptPrinter`), the Markdown export and the
HTML export (:mod:`workbench.sessions`) are each an :class:`EventRenderer`: one method per kind
of event, returning what that face makes of it (a printed line, a Markdown block, an HTML
fragment; ``None`` for nothing). :func:`describe` is the one place that maps an event to its
method, so a new kind of event is added here once and mypy then asks every renderer for it.

The TUI keeps its own dispatch (``screens/state.py``): it folds events into a live state
(pending approvals, streaming text, run trees) rather than rendering one event at a time.
"""

from __future__ import annotations

from typing import Protocol, TypeVar, assert_never

from workbench import events as evt

__all__ = ["EventRenderer", "describe"]

R_co = TypeVar("R_co", covariant=True)


class EventRenderer(Protocol[R_co]):
    """What a face makes of each kind of event. A renderer implements every method; one that
    shows nothing for a kind returns ``None`` from it."""

    def run_started(self, e: evt.RunStarted) -> R_co:
        """A run began (or was resumed)."""
        ...

    def run_completed(self, e: evt.RunCompleted) -> R_co:
        """A run finished: its duration, tokens and cost."""
        ...

    def run_failed(self, e: evt.RunFailed) -> R_co:
        """A run failed: the error and its hint."""
        ...

    def run_cancelled(self, e: evt.RunCancelled) -> R_co:
        """A run was cancelled."""
        ...

    def run_interrupted(self, e: evt.RunInterrupted) -> R_co:
        """A run stopped without an end (its process died); it may be resumed."""
        ...

    def message_delta(self, e: evt.MessageDelta) -> R_co:
        """A piece of an assistant message as it streams."""
        ...

    def message(self, e: evt.MessageCompleted) -> R_co:
        """A whole message (the person's, a task's, the assistant's)."""
        ...

    def tool_call(self, e: evt.ToolCall) -> R_co:
        """A tool is called with its arguments."""
        ...

    def tool_result(self, e: evt.ToolResult) -> R_co:
        """A tool's result or error."""
        ...

    def tool_progress(self, e: evt.ToolProgress) -> R_co:
        """A running tool's progress."""
        ...

    def tool_unavailable(self, e: evt.ToolUnavailable) -> R_co:
        """A toolkit could not start: the run goes on without its tools."""
        ...

    def approval_required(self, e: evt.ApprovalRequired) -> R_co:
        """A call waits for a person's decision (or input)."""
        ...

    def approval_resolved(self, e: evt.ApprovalResolved) -> R_co:
        """A person (a rule, ``--approve``) decided a call."""
        ...

    def team_delegated(self, e: evt.TeamDelegated) -> R_co:
        """A team handed a task to a member."""
        ...

    def team_vote(self, e: evt.TeamVote) -> R_co:
        """A member's vote in a consensus round."""
        ...

    def step_started(self, e: evt.WorkflowStepStarted) -> R_co:
        """A workflow step began."""
        ...

    def step_completed(self, e: evt.WorkflowStepCompleted) -> R_co:
        """A workflow step ended: done, failed, skipped or cancelled."""
        ...

    def workflow_conflict(self, e: evt.WorkflowConflict) -> R_co:
        """Parallel branches wrote different values to one state key."""
        ...

    def context_summarized(self, e: evt.ContextSummarized) -> R_co:
        """Earlier messages were summarised to fit the context window."""
        ...

    def model_retry(self, e: evt.ModelRetry) -> R_co:
        """A model call failed and will be retried."""
        ...

    def session_imported(self, e: evt.SessionImported) -> R_co:
        """The events before this one came from another store."""
        ...


def describe(event: evt.Event, to: EventRenderer[R_co]) -> R_co:
    """What ``to`` makes of ``event``: the method of its kind, called with it.

    Args:
        event: Any event.
        to: The renderer (the terminal printer, the Markdown or the HTML export).

    Returns:
        Whatever that method returns.
    """
    match event:
        case evt.RunStarted():
            return to.run_started(event)
        case evt.RunCompleted():
            return to.run_completed(event)
        case evt.RunFailed():
            return to.run_failed(event)
        case evt.RunCancelled():
            return to.run_cancelled(event)
        case evt.RunInterrupted():
            return to.run_interrupted(event)
        case evt.MessageDelta():
            return to.message_delta(event)
        case evt.MessageCompleted():
            return to.message(event)
        case evt.ToolCall():
            return to.tool_call(event)
        case evt.ToolResult():
            return to.tool_result(event)
        case evt.ToolProgress():
            return to.tool_progress(event)
        case evt.ToolUnavailable():
            return to.tool_unavailable(event)
        case evt.ApprovalRequired():
            return to.approval_required(event)
        case evt.ApprovalResolved():
            return to.approval_resolved(event)
        case evt.TeamDelegated():
            return to.team_delegated(event)
        case evt.TeamVote():
            return to.team_vote(event)
        case evt.WorkflowStepStarted():
            return to.step_started(event)
        case evt.WorkflowStepCompleted():
            return to.step_completed(event)
        case evt.WorkflowConflict():
            return to.workflow_conflict(event)
        case evt.ContextSummarized():
            return to.context_summarized(event)
        case evt.ModelRetry():
            return to.model_retry(event)
        case evt.SessionImported():
            return to.session_imported(event)
        case _:
            assert_never(event)
