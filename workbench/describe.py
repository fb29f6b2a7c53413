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

from typing import TYPE_CHECKING, Protocol, TypeVar, assert_never

from workbench.events import (
    ApprovalRequired,
    ApprovalResolved,
    ContextSummarized,
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

if TYPE_CHECKING:
    from workbench.events import Event

__all__ = ["EventRenderer", "describe"]

R_co = TypeVar("R_co", covariant=True)


class EventRenderer(Protocol[R_co]):
    """What a face makes of each kind of event. A renderer implements every method; one that
    shows nothing for a kind returns ``None`` from it."""

    def run_started(self, e: RunStarted) -> R_co:
        """A run began (or was resumed)."""
        ...

    def run_completed(self, e: RunCompleted) -> R_co:
        """A run finished: its duration, tokens and cost."""
        ...

    def run_failed(self, e: RunFailed) -> R_co:
        """A run failed: the error and its hint."""
        ...

    def run_cancelled(self, e: RunCancelled) -> R_co:
        """A run was cancelled."""
        ...

    def run_interrupted(self, e: RunInterrupted) -> R_co:
        """A run stopped without an end (its process died); it may be resumed."""
        ...

    def message_delta(self, e: MessageDelta) -> R_co:
        """A piece of an assistant message as it streams."""
        ...

    def message(self, e: MessageCompleted) -> R_co:
        """A whole message (the person's, a task's, the assistant's)."""
        ...

    def tool_call(self, e: ToolCall) -> R_co:
        """A tool is called with its arguments."""
        ...

    def tool_result(self, e: ToolResult) -> R_co:
        """A tool's result or error."""
        ...

    def tool_progress(self, e: ToolProgress) -> R_co:
        """A running tool's progress."""
        ...

    def tool_unavailable(self, e: ToolUnavailable) -> R_co:
        """A toolkit could not start: the run goes on without its tools."""
        ...

    def approval_required(self, e: ApprovalRequired) -> R_co:
        """A call waits for a person's decision (or input)."""
        ...

    def approval_resolved(self, e: ApprovalResolved) -> R_co:
        """A person (a rule, ``--approve``) decided a call."""
        ...

    def team_delegated(self, e: TeamDelegated) -> R_co:
        """A team handed a task to a member."""
        ...

    def team_vote(self, e: TeamVote) -> R_co:
        """A member's vote in a consensus round."""
        ...

    def step_started(self, e: WorkflowStepStarted) -> R_co:
        """A workflow step began."""
        ...

    def step_completed(self, e: WorkflowStepCompleted) -> R_co:
        """A workflow step ended: done, failed, skipped or cancelled."""
        ...

    def workflow_conflict(self, e: WorkflowConflict) -> R_co:
        """Parallel branches wrote different values to one state key."""
        ...

    def context_summarized(self, e: ContextSummarized) -> R_co:
        """Earlier messages were summarised to fit the context window."""
        ...

    def model_retry(self, e: ModelRetry) -> R_co:
        """A model call failed and will be retried."""
        ...

    def session_imported(self, e: SessionImported) -> R_co:
        """The events before this one came from another store."""
        ...


def describe(event: Event, to: EventRenderer[R_co]) -> R_co:
    """What ``to`` makes of ``event``: the method of its kind, called with it.

    Args:
        event: Any event.
        to: The renderer (the terminal printer, the Markdown or the HTML export).

    Returns:
        Whatever that method returns.
    """
    match event:
        case RunStarted():
            return to.run_started(event)
        case RunCompleted():
            return to.run_completed(event)
        case RunFailed():
            return to.run_failed(event)
        case RunCancelled():
            return to.run_cancelled(event)
        case RunInterrupted():
            return to.run_interrupted(event)
        case MessageDelta():
            return to.message_delta(event)
        case MessageCompleted():
            return to.message(event)
        case ToolCall():
            return to.tool_call(event)
        case ToolResult():
            return to.tool_result(event)
        case ToolProgress():
            return to.tool_progress(event)
        case ToolUnavailable():
            return to.tool_unavailable(event)
        case ApprovalRequired():
            return to.approval_required(event)
        case ApprovalResolved():
            return to.approval_resolved(event)
        case TeamDelegated():
            return to.team_delegated(event)
        case TeamVote():
            return to.team_vote(event)
        case WorkflowStepStarted():
            return to.step_started(event)
        case WorkflowStepCompleted():
            return to.step_completed(event)
        case WorkflowConflict():
            return to.workflow_conflict(event)
        case ContextSummarized():
            return to.context_summarized(event)
        case ModelRetry():
            return to.model_retry(event)
        case SessionImported():
            return to.session_imported(event)
        case _:
            assert_never(event)
