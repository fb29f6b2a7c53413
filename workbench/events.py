"""The event protocol: every event type, one discriminated union.

Every run is a stream of events and a session is the ordered log of them. Everything a
face shows (the TUI, ``replay``, the server's SSE, ``attach``) is derived from these, so
they cannot disagree. Events are plain pydantic models; ``Event`` is the union discriminated
on ``type`` and :data:`EventAdapter` parses and dumps it. A JSON round-trip is exact.

The common fields are filled in by the engine (``session_id``, ``run_id``,
``parent_run_id``, ``source``) and by the store (``seq``). ``seq`` is 0 until stored.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    model_serializer,
)

__all__ = [
    "ApprovalRequired",
    "ApprovalResolved",
    "ContextSummarized",
    "Event",
    "EventAdapter",
    "EventBase",
    "MessageCompleted",
    "MessageDelta",
    "ModelRetry",
    "RunCancelled",
    "RunCompleted",
    "RunFailed",
    "RunInterrupted",
    "RunStarted",
    "SessionImported",
    "TERMINAL_TYPES",
    "TeamDelegated",
    "TeamVote",
    "ToolCall",
    "ToolCallRequest",
    "ToolMedia",
    "ToolProgress",
    "ToolResult",
    "ToolUnavailable",
    "Usage",
    "WorkflowConflict",
    "WorkflowStepCompleted",
    "WorkflowStepStarted",
    "dump_event",
    "parse_event",
]

TargetKind = Literal["agent", "team", "workflow"]
"""What a run runs."""


class Usage(BaseModel):
    """Token counts of one model call, or summed over a run."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    prompt_tokens: int = 0
    """Tokens sent to the model."""
    completion_tokens: int = 0
    """Tokens the model produced."""

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
        )


class ToolCallRequest(BaseModel):
    """A tool call as the model asked for it, inside a ``message.completed``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    id: str
    """The provider's call id."""
    tool: str
    """The workspace name of the tool (``files.read``), never the provider-safe form."""
    arguments: dict[str, Any] = Field(default_factory=dict)
    """Parsed arguments; ``{"__raw__": "..."}`` when the model sent JSON that did not parse."""


class EventBase(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    type: str
    """The discriminator, e.g. ``run.started``."""
    session_id: str = ""
    """The session this event belongs to."""
    run_id: str = ""
    """The run that emitted it."""
    parent_run_id: str | None = None
    """For team member and workflow step runs: the run that started them."""
    seq: int = 0
    """Position in the session, gap-free from 1, assigned by the store (0 until stored)."""
    ts: float = Field(default_factory=time.time)
    """Seconds since the epoch when the event was created."""
    source: str = ""
    """The agent, team or workflow that emitted it."""


class _QuietDefaults(EventBase):
    """An event with fields added after the first logs were written: they are left out of
    the JSON while they hold their default, so a log written before them reads (and
    exports) byte for byte the same."""

    _quiet_defaults: ClassVar[dict[str, Any]] = {}
    """Field -> the default that is not written."""

    @model_serializer(mode="wrap")
    def _drop_quiet_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for key, default in self._quiet_defaults.items():
                if key in data and data[key] == default:
                    del data[key]
        return data


class RunStarted(EventBase):
    """A run began (or was resumed)."""

    type: Literal["run.started"] = "run.started"
    target_kind: TargetKind
    """Whether an agent, a team or a workflow runs."""
    target: str
    """Its name in the workspace."""
    input: str
    """The prompt or task."""
    model: str | None = None
    """The model of an agent run, as configured."""
    resumed: bool = False
    """True when this continues a run whose process died."""


class RunCompleted(EventBase):
    """A run finished with an answer."""

    type: Literal["run.completed"] = "run.completed"
    output: str
    """The final answer."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens over the whole run (children included)."""
    cost: float | None = None
    """Cost in USD when the provider's price is known."""
    duration_ms: float = 0.0
    """Wall time of the run."""
    structured: dict[str, Any] | list[Any] | None = None
    """The validated output when the agent has an output schema."""


class RunFailed(EventBase):
    """A run ended with an error."""

    type: Literal["run.failed"] = "run.failed"
    error: str
    """What went wrong."""
    hint: str | None = None
    """What to fix, when we know."""
    duration_ms: float = 0.0
    """Wall time of the run."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens spent before it failed."""
    cost: float | None = None
    """Cost spent before it failed."""


class RunCancelled(EventBase):
    """A run was cancelled (by a person, or because its parent was)."""

    type: Literal["run.cancelled"] = "run.cancelled"
    reason: str = "cancelled"
    """Why."""
    duration_ms: float = 0.0
    """Wall time of the run."""


class RunInterrupted(EventBase):
    """The process that ran a run died (its lease ran out) before the run ended.

    Not an end: the run can be resumed from its last checkpoint (``run.started`` with
    ``resumed``), by a person or by a server that takes over. Written by whichever live
    process noticed, not by the run itself.
    """

    type: Literal["run.interrupted"] = "run.interrupted"
    reason: str = "its process died"
    """Why, for people."""
    owner: str = ""
    """The process that ran it (``hostname:pid:nonce``)."""
    noticed_by: str = ""
    """The process that noticed."""


class MessageDelta(EventBase):
    """A piece of streamed assistant text."""

    type: Literal["message.delta"] = "message.delta"
    message_id: str
    """Groups the deltas of one message; matches its ``message.completed``."""
    text: str
    """The new text."""


class MessageCompleted(EventBase):
    """A whole message: the user's input, an assistant turn, or a system note."""

    type: Literal["message.completed"] = "message.completed"
    message_id: str
    """Matches the deltas that streamed it."""
    role: Literal["user", "assistant", "system"]
    """Who speaks."""
    content: str
    """The text."""
    tool_calls: list[ToolCallRequest] = Field(default_factory=list)
    """Tool calls the assistant asked for in this turn."""
    model: str | None = None
    """The model that wrote an assistant message."""
    usage: Usage | None = None
    """Tokens of the model call that produced it."""
    cost: float | None = None
    """Cost of that call."""
    raw: dict[str, Any] | None = None
    """The provider response, kept so the ``replay`` model can serve it again."""


class ToolCall(EventBase):
    """A tool is about to run (after approval, if one was needed)."""

    type: Literal["tool.call"] = "tool.call"
    call_id: str
    """The model's call id."""
    tool: str
    """Workspace name of the tool."""
    arguments: dict[str, Any]
    """Validated arguments (edited ones, if a person edited them)."""


class ToolMedia(BaseModel):
    """An image or a sound a tool returned (MCP ``image`` / ``audio`` content)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    kind: Literal["image", "audio"]
    """What it is."""
    mime_type: str
    """``image/png``, ``audio/wav`` ..."""
    data: str
    """The bytes, base64-encoded."""


class ToolResult(_QuietDefaults):
    """A tool returned, failed, timed out or was refused."""

    type: Literal["tool.result"] = "tool.result"
    call_id: str
    """The model's call id."""
    tool: str
    """Workspace name of the tool."""
    output: str | None = None
    """What the tool returned, as sent to the model (capped: see ``max_output``)."""
    error: str | None = None
    """Why it failed; also sent to the model."""
    duration_ms: float = 0.0
    """How long the call took."""
    structured: Any = None
    """Structured content (an MCP tool with an ``outputSchema``), as the tool returned it."""
    media: list[ToolMedia] = Field(default_factory=list)
    """Images and sounds it returned; models that accept them get them as content parts."""

    _quiet_defaults: ClassVar[dict[str, Any]] = {"structured": None, "media": []}


class ToolProgress(EventBase):
    """A running tool call said how far it got (MCP progress notifications)."""

    type: Literal["tool.progress"] = "tool.progress"
    call_id: str
    """The model's call id."""
    tool: str
    """Workspace name of the tool."""
    progress: float
    """How far it got (in the tool's own unit)."""
    total: float | None = None
    """Out of how much, when the tool knows."""
    message: str | None = None
    """What it is doing."""


class ToolUnavailable(EventBase):
    """Tools an agent lists could not be loaded: it runs without them (or, for a
    ``required`` MCP server, the run fails)."""

    type: Literal["tool.unavailable"] = "tool.unavailable"
    toolkit: str
    """The toolkit or MCP server that failed."""
    patterns: list[str] = Field(default_factory=list)
    """The agent's ``tools:`` entries it would have served."""
    error: str
    """Why (with an MCP server's stderr tail)."""
    required: bool = False
    """True when the server is ``required``: the run fails."""


class ApprovalRequired(_QuietDefaults):
    """A tool call waits for a person's decision."""

    type: Literal["approval.required"] = "approval.required"
    call_id: str
    """The model's call id; decisions refer to it."""
    tool: str
    """Workspace name of the tool."""
    arguments: dict[str, Any]
    """The arguments as the model sent them."""
    reason: str
    """Why it asks (which policy or which command part had no rule)."""
    parts: list[str] = Field(default_factory=list)
    """For shell commands: the split parts, each of which must be allowed."""
    diff: str | None = None
    """For file writes and edits: the unified diff the call would apply."""
    kind: Literal["tool", "input"] = "tool"
    """``tool``: a tool call waits to run. ``input``: a running tool asks the person for
    input (an MCP elicitation); ``arguments`` are the form's values, ``form`` its fields;
    allow sends them (edited, if edited), deny declines."""
    form: dict[str, Any] | None = None
    """For ``input``: the JSON schema of the form (``arguments`` holds its values)."""

    _quiet_defaults: ClassVar[dict[str, Any]] = {"kind": "tool", "form": None}


Decision = Literal["allow", "deny"]
Scope = Literal["once", "session", "workspace", "always"]


class ApprovalResolved(EventBase):
    """A decision on a pending tool call: the audit trail."""

    type: Literal["approval.resolved"] = "approval.resolved"
    call_id: str
    """The call decided on."""
    tool: str
    """Workspace name of the tool."""
    decision: Decision
    """allow or deny."""
    scope: Scope = "once"
    """How far an allow reaches: this call, this session, this workspace, everywhere."""
    note: str | None = None
    """A deny's note, sent back to the model."""
    edited_arguments: dict[str, Any] | None = None
    """Arguments a person changed before allowing."""
    decided_by: str = "user"
    """Who decided: ``user``, ``policy``, ``rule:<id>``, ``--approve`` ..."""
    rule: str | None = None
    """The rule saved by a session/workspace/always decision, as it is stored."""


class TeamDelegated(EventBase):
    """A team gave a member a task."""

    type: Literal["team.delegated"] = "team.delegated"
    member: str
    """The member's name."""
    task: str
    """What it was asked."""
    child_run_id: str | None = None
    """The member's run."""


class TeamVote(EventBase):
    """A member's position in a consensus round."""

    type: Literal["team.vote"] = "team.vote"
    member: str
    """The member's name."""
    round: int
    """1-based round."""
    agree: bool
    """Whether it agrees with the current proposal."""
    position: str
    """Its answer."""
    reasoning: str = ""
    """Why."""


StepKind = Literal["step", "condition", "loop", "parallel", "router", "function"]


class WorkflowStepStarted(EventBase):
    """A workflow node began."""

    type: Literal["workflow.step.started"] = "workflow.step.started"
    path: str
    """The node's path in the graph (``brief/parallel[2]/a``), as ``workflow.graph()`` names it."""
    kind: StepKind
    """The primitive."""
    input: str = ""
    """What the step was given."""


class WorkflowStepCompleted(EventBase):
    """A workflow node finished, failed or was skipped. The checkpoint of a workflow run."""

    type: Literal["workflow.step.completed"] = "workflow.step.completed"
    path: str
    """The node's path."""
    kind: StepKind
    """The primitive."""
    status: Literal["done", "failed", "skipped", "cancelled"] = "done"
    """How it ended."""
    output: str | None = None
    """Its output."""
    error: str | None = None
    """Why it failed."""
    state: dict[str, Any] | None = None
    """The workflow state after this step (what a resume starts from)."""
    usage: Usage | None = None
    """Tokens spent in the step."""
    cost: float | None = None
    """Cost of the step."""


class WorkflowConflict(EventBase):
    """Two Parallel branches wrote the same state key; both values are kept."""

    type: Literal["workflow.conflict"] = "workflow.conflict"
    path: str
    """The Parallel node."""
    key: str
    """The state key."""
    values: dict[str, Any]
    """Branch path -> the value it wrote."""


class ContextSummarized(EventBase):
    """The history no longer fitted the context window: the oldest turns became one summary."""

    type: Literal["context.summarized"] = "context.summarized"
    turns: int
    """How many messages were folded."""
    summary: str
    """The summary that replaced them."""
    tokens_before: int
    """Estimated prompt tokens before."""
    tokens_after: int
    """Estimated prompt tokens after."""


class ModelRetry(EventBase):
    """A model call failed transiently and will be tried again."""

    type: Literal["model.retry"] = "model.retry"
    attempt: int
    """The attempt that failed (1-based)."""
    error: str
    """What the provider said."""
    delay_s: float
    """Back-off before the next attempt."""


class SessionImported(EventBase):
    """The events before this one came from elsewhere (``sessions import``, or a fork of an
    imported session): they are evidence of what happened, not decisions this store made. A
    re-run does not replay their approvals."""

    type: Literal["session.imported"] = "session.imported"
    origin: str = ""
    """Where they came from (the file imported, or the session forked)."""
    events: int = 0
    """How many events came in."""


Event = Annotated[
    RunStarted
    | RunCompleted
    | RunFailed
    | RunCancelled
    | RunInterrupted
    | MessageDelta
    | MessageCompleted
    | ToolCall
    | ToolResult
    | ApprovalRequired
    | ApprovalResolved
    | TeamDelegated
    | TeamVote
    | WorkflowStepStarted
    | WorkflowStepCompleted
    | WorkflowConflict
    | ContextSummarized
    | ModelRetry
    | ToolProgress
    | ToolUnavailable
    | SessionImported,
    Field(discriminator="type"),
]
"""Any event."""

EventAdapter: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(defer_build=True))
"""Validates and dumps :data:`Event`.

Every model here defers building its validator and serializer to its first use: a start-up
(``workbench run``, the app's first answer) builds the five or six it creates, not all of
them and the union (measured: 348 → 332 ms of the engine thread's CPU to open and run once).
"""

TERMINAL_TYPES = frozenset({"run.completed", "run.failed", "run.cancelled"})
"""Event types that end a run."""


def parse_event(data: str | bytes | dict[str, Any]) -> Event:
    """Parse one event from JSON text or a dict.

    Raises:
        pydantic.ValidationError: if it is not a known event.
    """
    if isinstance(data, dict):
        return EventAdapter.validate_python(data)
    return EventAdapter.validate_json(data)


def dump_event(event: EventBase) -> str:
    """The event as compact JSON (what the store keeps and SSE sends)."""
    return event.model_dump_json()
