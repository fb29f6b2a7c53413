"""What the panes show, derived from events only.

:class:`SessionState` folds a session's events, in ``seq`` order, into runs, transcript
items, workflow steps, approvals and usage. Every pane renders from it, so a live run and
its replay are drawn by the same code from the same data. :meth:`SessionState.apply`
records what changed in :attr:`SessionState.changes`; the app hands those changes to the
panes once per frame and then clears them.

This module reads events by attribute and ``type`` only: it imports nothing from the engine
(not even pydantic), so it is cheap to import before the first frame and safe to run in a
worker thread (a replay builds a fresh state off the UI thread and swaps it in).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from workbench.termsafe import safe_event, visible

__all__ = [
    "AgentUsage",
    "ApprovalState",
    "AssistantItem",
    "CallKey",
    "Changes",
    "EndItem",
    "Item",
    "NoteItem",
    "RunState",
    "SessionState",
    "StepState",
    "ToolItem",
    "UserItem",
    "WorkflowState",
    "call_summary",
    "format_cost",
    "format_duration",
    "format_tokens",
]

RunStatus = Literal["running", "completed", "failed", "cancelled", "interrupted"]
StepStatus = Literal["waiting", "running", "done", "failed", "skipped", "cancelled", "approval"]
ToolStatus = Literal[
    "requested", "awaiting", "running", "done", "failed", "denied", "cancelled", "interrupted"
]
ApprovalStatus = Literal["pending", "allowed", "denied", "abandoned", "cancelled", "interrupted"]

CallKey = tuple[str, str]
"""``(run_id, call_id)``: what names a tool call. A model's call ids are unique within one
run only (the ``test`` model and several local servers number them ``call_t2_0``, ...), so
two runs of a session, two members of a team or two parallel steps may repeat one."""


def format_tokens(n: int) -> str:
    """``1234`` -> ``1.2k``."""
    if n < 1000:
        return str(n)
    if n < 1_000_000:
        return f"{n / 1000:.1f}k"
    return f"{n / 1_000_000:.1f}M"


def format_cost(cost: float | None) -> str:
    """USD with enough digits to be useful; '' when unknown."""
    if cost is None:
        return ""
    if cost == 0:
        return "$0"
    if cost < 0.01:
        return f"${cost:.4f}"
    return f"${cost:.2f}"


def format_duration(ms: float | None) -> str:
    """``1234.5`` -> ``1.2s``; ``83000`` -> ``1m23s``."""
    if ms is None:
        return ""
    if ms < 1000:
        return f"{ms:.0f}ms"
    s = ms / 1000
    if s < 60:
        return f"{s:.1f}s"
    return f"{int(s // 60)}m{int(s % 60):02d}s"


_SUMMARY_KEYS = ("cmd", "command", "path", "query", "q", "url", "pattern", "expression", "text")
"""Arguments that say what a call does, in the order they are looked for."""


def call_summary(arguments: dict[str, Any], width: int = 60) -> str:
    """One line that tells two calls of a tool apart: the command, path, query or URL if
    there is one, else ``key=value`` pairs; cut to ``width`` characters."""
    picked = [arguments[k] for k in _SUMMARY_KEYS if isinstance(arguments.get(k), str)]
    if picked:
        text = str(picked[0])
    else:
        text = " ".join(
            f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in arguments.items()
        )
    # One line (newlines and tabs become spaces), and nothing a terminal would obey: the
    # arguments are kept exact in the state, so they are made visible here.
    text = visible(" ".join(text.split()))
    return text if len(text) <= width else text[: width - 1] + "…"


# -- transcript items -------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class Item:
    """One block of a transcript."""

    uid: int
    """Unique in the state, increasing in creation order."""
    run_id: str
    """The run it belongs to."""
    ts: float = 0.0
    """When it began (the event's timestamp)."""
    source: str = ""
    """The agent, team or workflow that produced it."""
    version: int = 0
    """Bumped on every change, so a widget knows when to redraw."""


@dataclass(slots=True, eq=False)
class UserItem(Item):
    """The user's prompt, or a task a team or workflow gave a member."""

    text: str = ""
    """What was asked."""
    task: bool = False
    """True when a parent run gave this input (not a person)."""


@dataclass(slots=True, eq=False)
class AssistantItem(Item):
    """One assistant message, streamed or whole."""

    message_id: str = ""
    """Groups its deltas."""
    parts: list[str] = field(default_factory=list)
    """Streamed pieces (joined lazily; appending a string in place would copy it)."""
    done: bool = False
    """The ``message.completed`` arrived."""
    model: str | None = None
    """The model that wrote it."""
    prompt_tokens: int = 0
    """Tokens of the model call."""
    completion_tokens: int = 0
    """Tokens of the model call."""
    cost: float | None = None
    """Cost of the model call."""

    @property
    def text(self) -> str:
        """The text so far (the pieces are joined once, when asked)."""
        if len(self.parts) > 1:
            self.parts[:] = ["".join(self.parts)]
        return self.parts[0] if self.parts else ""


@dataclass(slots=True, eq=False)
class ToolItem(Item):
    """A tool call, from the request to its result."""

    call_id: str = ""
    """The model's call id."""
    tool: str = ""
    """Workspace name of the tool."""
    arguments: dict[str, Any] = field(default_factory=dict)
    """Arguments (the edited ones once a person edited them)."""
    status: ToolStatus = "requested"
    """Where the call stands."""
    output: str | None = None
    """What it returned."""
    error: str | None = None
    """Why it failed (or was refused)."""
    duration_ms: float | None = None
    """How long it ran."""
    decision: str | None = None
    """How an approval was decided, in words."""
    progress: str | None = None
    """What a running call last said of its progress (``3/10 indexing``), or that it
    waits for the person's input."""
    asked: ApprovalState | None = None
    """The approval it asked for, if it asked (the card a person decides on)."""

    @property
    def key(self) -> CallKey:
        """``(run_id, call_id)``: the call's identity in the session."""
        return (self.run_id, self.call_id)

    @property
    def settled(self) -> bool:
        """The call reached an end: done, failed, denied or cancelled."""
        return self.status in ("done", "failed", "denied", "cancelled", "interrupted")


@dataclass(slots=True, eq=False)
class NoteItem(Item):
    """A one-line note: a delegation, a vote, a retry, a workflow step, a decision."""

    text: str = ""
    """The note."""
    style: str = "note"
    """A CSS-ish kind: note, warning, error, team, step, approval."""


@dataclass(slots=True, eq=False)
class EndItem(Item):
    """How a run ended, with its usage and cost."""

    status: RunStatus = "completed"
    """completed, failed or cancelled."""
    error: str | None = None
    """Why it failed."""
    hint: str | None = None
    """What to fix."""
    prompt_tokens: int = 0
    """Tokens over the run."""
    completion_tokens: int = 0
    """Tokens over the run."""
    cost: float | None = None
    """Cost over the run."""
    duration_ms: float = 0.0
    """Wall time."""
    kind: str = "agent"
    """What ran."""

    def summary(self) -> str:
        """``✓ helper done in 1.2s · 120+30 tokens · $0.01``."""
        dur = format_duration(self.duration_ms)
        if self.status == "cancelled":
            return f"■ {self.source} cancelled after {dur}"
        tokens = f"{self.prompt_tokens}+{self.completion_tokens} tokens"
        cost = format_cost(self.cost)
        tail = f" · {tokens}" + (f" · {cost}" if cost else "")
        if self.status == "failed":
            return f"✗ {self.source} failed after {dur}{tail}"
        return f"✓ {self.source} done in {dur}{tail}"


# -- runs, steps, approvals, usage --------------------------------------------------------


@dataclass(slots=True, eq=False)
class RunState:
    """One run (top-level, team member, workflow step child)."""

    run_id: str
    """The run."""
    parent_run_id: str | None
    """The run that started it."""
    kind: str
    """agent, team or workflow."""
    target: str
    """Its name."""
    input: str = ""
    """Prompt or task."""
    model: str | None = None
    """Model of an agent run."""
    status: RunStatus = "running"
    """Where it stands."""
    started_ts: float = 0.0
    """Timestamp of ``run.started``."""
    duration_ms: float | None = None
    """Wall time once ended."""
    prompt_tokens: int = 0
    """Tokens so far (from its model calls; the total once ended)."""
    completion_tokens: int = 0
    """Tokens so far."""
    cost: float | None = None
    """Cost so far."""
    error: str | None = None
    """Why it failed."""
    children: list[str] = field(default_factory=list)
    """Runs it started, in order."""
    streaming: bool = False
    """An assistant message is streaming right now."""
    waiting: int = 0
    """Approvals it waits on."""
    depth: int = 0
    """0 for a top-level run."""

    @property
    def ended(self) -> bool:
        """It reached a terminal event."""
        return self.status != "running"


@dataclass(slots=True, eq=False)
class StepState:
    """A workflow node as the events describe it."""

    path: str
    """Its path in the graph."""
    kind: str
    """step, condition, loop, parallel, router, function."""
    status: StepStatus = "waiting"
    """Where it stands."""
    started_ts: float | None = None
    """When it began."""
    ended_ts: float | None = None
    """When it ended."""
    prompt_tokens: int = 0
    """Tokens spent in the step (children's calls as they happen, then the step's total)."""
    completion_tokens: int = 0
    """Tokens spent in the step."""
    cost: float | None = None
    """Cost of the step."""
    output: str | None = None
    """Its output."""
    error: str | None = None
    """Why it failed."""
    run_ids: list[str] = field(default_factory=list)
    """Child runs that did the step's work (their transcripts are the node's)."""
    runs: int = 0
    """How many times it started (a loop body runs several times)."""

    @property
    def duration_ms(self) -> float | None:
        """Wall time of its last execution."""
        if self.started_ts is None or self.ended_ts is None:
            return None
        return max(0.0, (self.ended_ts - self.started_ts) * 1000)


@dataclass(slots=True, eq=False)
class WorkflowState:
    """The steps of one workflow run."""

    run_id: str
    """The workflow run."""
    name: str
    """The workflow's name."""
    steps: dict[str, StepState] = field(default_factory=dict)
    """Path -> step, in the order they first started."""


@dataclass(slots=True, eq=False)
class ApprovalState:
    """A tool call that asked for a decision."""

    call_id: str
    """The call; decisions refer to it."""
    tool: str
    """Workspace name of the tool."""
    arguments: dict[str, Any]
    """Arguments as the model sent them."""
    reason: str
    """Why it asks."""
    run_id: str
    """The run that asks."""
    source: str
    """The agent that asks."""
    seq: int
    """Position of the ``approval.required`` event."""
    ts: float
    """When it asked."""
    parts: list[str] = field(default_factory=list)
    """Shell command parts."""
    diff: str | None = None
    """Unified diff of a file edit."""
    status: ApprovalStatus = "pending"
    """Pending until decided (abandoned when its run ended first, cancelled when its run
    was cancelled)."""
    decision: str | None = None
    """How it was decided, in words."""
    kind: str = "tool"
    """``tool``, or ``input``: a running tool asks the person for the values of a form."""
    form: dict[str, Any] | None = None
    """For ``input``: the form's JSON schema (``arguments`` holds its values)."""
    edited_arguments: dict[str, Any] | None = None
    """The arguments a person allowed instead of the model's (``e``)."""
    session_id: str = ""
    """Set for a call of another session than the one shown (the queue shows every
    session's); '' for the session's own."""

    @property
    def key(self) -> CallKey:
        """``(run_id, call_id)``: decisions refer to it."""
        return (self.run_id, self.call_id)


@dataclass(slots=True)
class AgentUsage:
    """Tokens and cost of one agent over the session."""

    prompt_tokens: int = 0
    """Prompt tokens."""
    completion_tokens: int = 0
    """Completion tokens."""
    cost: float | None = None
    """USD, when known."""
    calls: int = 0
    """Model calls."""

    @property
    def total(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class Changes:
    """What one batch of events changed."""

    new_items: list[Item] = field(default_factory=list)
    """Items created, in order."""
    updated: dict[int, Item] = field(default_factory=dict)
    """Items changed (uid -> item), new ones excluded."""
    runs: set[str] = field(default_factory=set)
    """Runs whose state changed or that started."""
    steps: bool = False
    """A workflow step changed."""
    approvals: bool = False
    """The approval queue changed."""
    new_approvals: list[ApprovalState] = field(default_factory=list)
    """Approvals that arrived (to notify and ring)."""
    usage: bool = False
    """Usage totals changed."""
    count: int = 0
    """Events applied."""

    def __bool__(self) -> bool:
        return bool(self.count)

    def touch(self, item: Item) -> None:
        """Mark an existing item changed."""
        item.version += 1
        self.updated[item.uid] = item


def _child_run_id(parent_run_id: str, key: str) -> str | None:
    """The id the engine gives the child run of a workflow step (None if unknown)."""
    try:
        from workbench.team import child_run_id
    except ImportError:  # pragma: no cover - the engine is always installed with the app
        return None
    return child_run_id(parent_run_id, key)


def _usage_of(obj: Any) -> tuple[int, int]:
    usage = getattr(obj, "usage", None)
    if usage is None:
        return 0, 0
    return int(getattr(usage, "prompt_tokens", 0)), int(getattr(usage, "completion_tokens", 0))


def _add_cost(a: float | None, b: float | None) -> float | None:
    if b is None:
        return a
    return (a or 0.0) + b


class SessionState:
    """A session, folded from its events.

    Args:
        session_id: The session (events of other sessions are ignored when set).
    """

    def __init__(self, session_id: str | None = None) -> None:
        self.session_id = session_id
        """The session."""
        self.runs: dict[str, RunState] = {}
        """Every run, by id, in start order."""
        self.items: list[Item] = []
        """Every transcript item in creation order."""
        self.approvals: dict[CallKey, ApprovalState] = {}
        """Approvals by ``(run_id, call_id)``."""
        self.waiting: dict[CallKey, ApprovalState] = {}
        """The approvals still pending, oldest first."""
        self.workflows: dict[str, WorkflowState] = {}
        """Workflow runs by run id."""
        self.usage: dict[str, AgentUsage] = {}
        """Usage per agent (the source of each model call)."""
        self.changes = Changes()
        """What changed since the last :meth:`take_changes`."""
        self.last_seq = 0
        """The seq of the last event applied."""
        self.last_ts = 0.0
        """The timestamp of the last event applied."""
        self.count = 0
        """Events applied."""
        self._uid = 0
        self._messages: dict[str, AssistantItem] = {}
        self._tools: dict[CallKey, ToolItem] = {}
        # Per run, what may still be open when it ends (so ending a run costs its own items,
        # not the session's).
        self._run_tools: dict[str, list[ToolItem]] = {}
        self._run_approvals: dict[str, list[ApprovalState]] = {}
        self._run_messages: dict[str, list[AssistantItem]] = {}
        self._run_steps: dict[str, StepState] = {}

    # -- queries ---------------------------------------------------------------------------

    def top_runs(self) -> list[RunState]:
        """Runs with no parent, in start order."""
        return [r for r in self.runs.values() if r.parent_run_id is None]

    def running(self) -> list[RunState]:
        """Runs in flight."""
        return [r for r in self.runs.values() if not r.ended]

    def pending_approvals(self) -> list[ApprovalState]:
        """Approvals waiting for a decision, newest first."""
        return list(reversed(self.waiting.values()))

    def descendants(self, run_id: str) -> Iterator[RunState]:
        """The runs below ``run_id``, depth first."""
        run = self.runs.get(run_id)
        if run is None:
            return
        for child in run.children:
            c = self.runs.get(child)
            if c is not None:
                yield c
                yield from self.descendants(child)

    def team_of(self, run_id: str) -> str | None:
        """The nearest team run at or above ``run_id``'s parent."""
        run = self.runs.get(run_id)
        while run is not None and run.parent_run_id is not None:
            parent = self.runs.get(run.parent_run_id)
            if parent is None:
                return None
            if parent.kind == "team":
                return parent.run_id
            run = parent
        return None

    def latest_workflow(self) -> WorkflowState | None:
        """The most recent top-level workflow run (or any workflow run)."""
        tops = [w for w in self.workflows.values() if self.runs[w.run_id].parent_run_id is None]
        pool = tops or list(self.workflows.values())
        return pool[-1] if pool else None

    def mark_interrupted(self, run_ids: Iterable[str]) -> None:
        """Runs whose process stopped them without ending them (the store says
        ``interrupted``): not in flight, resumable. Their waiting calls cannot be decided
        until the run is resumed (which asks them again)."""
        for run_id in run_ids:
            run = self.runs.get(run_id)
            if run is None or run.ended:
                continue
            run.status = "interrupted"
            run.streaming = False
            run.waiting = 0
            self.changes.runs.add(run_id)
            for a in self._run_approvals.get(run_id, ()):
                if a.status == "pending":
                    a.status = "interrupted"
                    a.decision = "interrupted: resume the run to decide (F7, r)"
                    self.waiting.pop(a.key, None)
                    self.changes.approvals = True
            for t in self._run_tools.get(run_id, ()):
                if not t.settled:
                    t.status = "interrupted"
                    self.changes.touch(t)
            for msg in self._run_messages.get(run_id, ()):
                if not msg.done:
                    msg.done = True
                    self.changes.touch(msg)

    def take_changes(self) -> Changes:
        """The changes since the last call; starts a new batch."""
        changes, self.changes = self.changes, Changes()
        return changes

    # -- folding ---------------------------------------------------------------------------

    def _new(self, cls: type[Any], ev: Any, **kw: Any) -> Any:
        self._uid += 1
        item = cls(uid=self._uid, run_id=ev.run_id, ts=ev.ts, source=ev.source, **kw)
        self.items.append(item)
        self.changes.new_items.append(item)
        return item

    def _note(self, ev: Any, text: str, style: str = "note") -> NoteItem:
        note: NoteItem = self._new(NoteItem, ev, text=text, style=style)
        return note

    def extend(self, events: Iterable[Any]) -> None:
        """Apply events in order."""
        for ev in events:
            self.apply(ev)

    def apply(self, ev: Any) -> None:
        """Fold one event in (its text made terminal-safe: control sequences from a model or a
        tool become visible escapes; arguments stay exact, faces show them as JSON)."""
        ev = safe_event(ev)
        if self.session_id is None:
            self.session_id = ev.session_id
        elif ev.session_id and ev.session_id != self.session_id:
            return
        self.count += 1
        self.changes.count += 1
        if ev.seq:
            self.last_seq = ev.seq
        self.last_ts = ev.ts
        handler = _HANDLERS.get(ev.type)
        if handler is not None:
            handler(self, ev)

    def _run(self, ev: Any) -> RunState | None:
        run = self.runs.get(ev.run_id)
        if run is not None:
            self.changes.runs.add(run.run_id)
        return run

    def _on_run_started(self, ev: Any) -> None:
        run = self.runs.get(ev.run_id)
        if run is None:
            parent = self.runs.get(ev.parent_run_id) if ev.parent_run_id else None
            run = RunState(
                run_id=ev.run_id,
                parent_run_id=ev.parent_run_id,
                kind=ev.target_kind,
                target=ev.target,
                input=ev.input,
                model=ev.model,
                started_ts=ev.ts,
                depth=parent.depth + 1 if parent else 0,
            )
            self.runs[ev.run_id] = run
            if parent is not None:
                parent.children.append(ev.run_id)
                self.changes.runs.add(parent.run_id)
                self._link_step(parent, run)
            if ev.target_kind == "workflow":
                self.workflows[ev.run_id] = WorkflowState(run_id=ev.run_id, name=ev.target)
                self.changes.steps = True
        else:
            run.status = "running"
            run.duration_ms = None
            if ev.resumed:
                self._note(ev, f"↻ {ev.target} resumed", "warning")
        self.changes.runs.add(ev.run_id)

    def _link_step(self, parent: RunState, child: RunState) -> None:
        """A workflow's child run does the work of the running step it belongs to."""
        wf = self.workflows.get(parent.run_id)
        if wf is None:
            return
        running = [s for s in wf.steps.values() if s.status in ("running", "approval")]
        if not running:
            return
        # The engine derives a step's child run id from the workflow run and the step's
        # path; failing that (an older log), the earliest running step still without a run.
        exact = [s for s in running if _child_run_id(parent.run_id, s.path) == child.run_id]
        free = [s for s in running if len(s.run_ids) < s.runs and s.kind in ("step", "function")]
        pool = exact or free or [s for s in running if s.kind in ("step", "function")]
        if not pool:
            return
        step = min(pool, key=lambda s: s.started_ts or 0.0)
        step.run_ids.append(child.run_id)
        self._run_steps[child.run_id] = step
        self.changes.steps = True

    def _end(self, ev: Any, status: RunStatus) -> None:
        run = self._run(ev)
        if run is None:
            return
        run.status = status
        run.streaming = False
        run.duration_ms = ev.duration_ms
        if status != "cancelled":
            p, c = _usage_of(ev)
            if p or c or run.kind != "agent":
                run.prompt_tokens, run.completion_tokens = p, c
            if ev.cost is not None:
                run.cost = ev.cost
        if status == "failed":
            run.error = ev.error
        # Nothing of an ended run is left waiting: its open calls end with it (cancelled
        # with a cancelled run; otherwise they never ran to a result).
        for a in self._run_approvals.get(ev.run_id, ()):
            if a.status == "pending":
                a.status = "cancelled" if status == "cancelled" else "abandoned"
                a.decision = f"{a.status}: run {status}"
                self.waiting.pop(a.key, None)
                self.changes.approvals = True
        for t in self._run_tools.get(ev.run_id, ()):
            if not t.settled:
                t.status = "cancelled" if status == "cancelled" else "failed"
                if status != "cancelled":
                    t.error = t.error or f"no result: the run {status} first"
                self.changes.touch(t)
        for msg in self._run_messages.get(ev.run_id, ()):
            if not msg.done:
                msg.done = True
                self.changes.touch(msg)
        run.waiting = 0
        self._new(
            EndItem,
            ev,
            status=status,
            error=getattr(ev, "error", None) if status == "failed" else getattr(ev, "reason", None),
            hint=getattr(ev, "hint", None),
            prompt_tokens=run.prompt_tokens,
            completion_tokens=run.completion_tokens,
            cost=run.cost,
            duration_ms=ev.duration_ms,
            kind=run.kind,
        )

    def _on_completed(self, ev: Any) -> None:
        self._end(ev, "completed")

    def _on_failed(self, ev: Any) -> None:
        self._end(ev, "failed")

    def _on_cancelled(self, ev: Any) -> None:
        self._end(ev, "cancelled")

    def _on_interrupted(self, ev: Any) -> None:
        # Its process died (another process noticed): not running, not ended (resumable).
        run = self.runs.get(ev.run_id)
        if run is None:
            return
        self.mark_interrupted([ev.run_id])
        self._note(ev, f"⚠ {ev.source or run.target} interrupted: {ev.reason}", "warning")

    def _on_delta(self, ev: Any) -> None:
        msg = self._messages.get(ev.message_id)
        if msg is None:
            msg = self._new_message(ev)
            run = self._run(ev)
            if run is not None:
                run.streaming = True
        else:
            self.changes.touch(msg)
        msg.parts.append(ev.text)

    def _on_message(self, ev: Any) -> None:
        if ev.role == "user":
            self._new(UserItem, ev, text=ev.content, task=ev.parent_run_id is not None)
            return
        if ev.role == "system":
            self._note(ev, ev.content, "note")
            return
        msg = self._messages.get(ev.message_id)
        if msg is None:
            if ev.content or not ev.tool_calls:
                msg = self._new_message(ev)
        else:
            self.changes.touch(msg)
        if msg is not None:
            msg.parts[:] = [ev.content] if ev.content else []
            msg.done = True
            msg.model = ev.model
            msg.prompt_tokens, msg.completion_tokens = _usage_of(ev)
            msg.cost = ev.cost
        run = self._run(ev)
        if run is not None:
            run.streaming = False
            p, c = _usage_of(ev)
            run.prompt_tokens += p
            run.completion_tokens += c
            run.cost = _add_cost(run.cost, ev.cost)
            step = self._run_steps.get(run.run_id)
            if step is not None:
                step.prompt_tokens += p
                step.completion_tokens += c
                step.cost = _add_cost(step.cost, ev.cost)
                self.changes.steps = True
        if ev.usage is not None or ev.cost is not None:
            u = self.usage.setdefault(ev.source or "?", AgentUsage())
            p, c = _usage_of(ev)
            u.prompt_tokens += p
            u.completion_tokens += c
            u.cost = _add_cost(u.cost, ev.cost)
            u.calls += 1
            self.changes.usage = True
        for call in ev.tool_calls:
            # A new model turn: a new call, even if the model reuses an id it gave before.
            self._new_tool(ev, call.id, call.tool, call.arguments)

    def _new_message(self, ev: Any) -> AssistantItem:
        msg: AssistantItem = self._new(AssistantItem, ev, message_id=ev.message_id)
        self._messages[ev.message_id] = msg
        self._run_messages.setdefault(ev.run_id, []).append(msg)
        return msg

    def _new_tool(self, ev: Any, call_id: str, tool: str, arguments: dict[str, Any]) -> ToolItem:
        item: ToolItem = self._new(
            ToolItem, ev, call_id=call_id, tool=tool, arguments=dict(arguments)
        )
        self._tools[(ev.run_id, call_id)] = item
        self._run_tools.setdefault(ev.run_id, []).append(item)
        return item

    def _tool(self, ev: Any) -> ToolItem:
        """The call an event is about: ``(run_id, call_id)``, never the call id alone."""
        tool = self._tools.get((ev.run_id, ev.call_id))
        if tool is None:
            tool = self._new_tool(ev, ev.call_id, ev.tool, getattr(ev, "arguments", {}))
        else:
            self.changes.touch(tool)
        return tool

    def tool_item(self, key: CallKey) -> ToolItem | None:
        """The transcript item of a call (the latest, if a run reused the id)."""
        return self._tools.get(key)

    def _asking_tool(self, ev: Any) -> ToolItem | None:
        """For an input request (an MCP elicitation, call id ``<call>#input<n>``): the
        running call of the same run that asks."""
        if getattr(ev, "kind", "tool") != "input" and "#input" not in ev.call_id:
            return None
        return self._tools.get((ev.run_id, ev.call_id.split("#", 1)[0]))

    def _on_approval_required(self, ev: Any) -> None:
        asking = self._asking_tool(ev)
        tool: ToolItem | None = None
        if asking is not None:
            # An input request: the call keeps running; its question is in the approvals.
            asking.progress = "waits for your input (approvals)"
            self.changes.touch(asking)
        elif getattr(ev, "kind", "tool") != "input":
            tool = self._tool(ev)
            tool.status = "awaiting"
        approval = ApprovalState(
            call_id=ev.call_id,
            tool=ev.tool,
            arguments=dict(ev.arguments),
            reason=ev.reason,
            run_id=ev.run_id,
            source=ev.source,
            seq=ev.seq,
            ts=ev.ts,
            parts=list(ev.parts),
            diff=ev.diff,
            kind=getattr(ev, "kind", "tool"),
            form=getattr(ev, "form", None),
        )
        old = self.approvals.get(approval.key)
        if old is not None and old.status == "pending":
            # Asked again (a resumed run re-offers its pending call): one waiting call.
            self._run_approvals[ev.run_id].remove(old)
            run = self.runs.get(ev.run_id)
            if run is not None:
                run.waiting = max(0, run.waiting - 1)
        self.approvals[approval.key] = approval
        self.waiting.pop(approval.key, None)
        self.waiting[approval.key] = approval
        self._run_approvals.setdefault(ev.run_id, []).append(approval)
        if tool is not None:
            tool.asked = approval
        self.changes.approvals = True
        self.changes.new_approvals.append(approval)
        run = self._run(ev)
        if run is not None:
            run.waiting += 1
            step = self._run_steps.get(run.run_id)
            if step is not None and step.status == "running":
                step.status = "approval"
                self.changes.steps = True

    def _on_approval_resolved(self, ev: Any) -> None:
        words = ev.decision if ev.decision == "deny" else "allowed"
        if ev.decision == "allow" and ev.scope != "once":
            words += f" for {ev.scope}"
        if ev.edited_arguments is not None:
            words += " with edited arguments"
        words += f" by {ev.decided_by}"
        if ev.note:
            words += f": {ev.note}"
        approval = self.approvals.get((ev.run_id, ev.call_id))
        if approval is not None:
            was_pending = approval.status == "pending"
            self.waiting.pop(approval.key, None)
            approval.status = "allowed" if ev.decision == "allow" else "denied"
            approval.decision = words
            if ev.edited_arguments is not None:
                approval.edited_arguments = dict(ev.edited_arguments)
            self.changes.approvals = True
            run = self._run(ev)
            if run is not None and was_pending:
                run.waiting = max(0, run.waiting - 1)
                step = self._run_steps.get(run.run_id)
                if step is not None and step.status == "approval" and not run.waiting:
                    step.status = "running"
                    self.changes.steps = True
        if approval is not None and approval.kind == "input":
            asking = self._asking_tool(ev)
            if asking is not None:
                asking.progress = None
                self.changes.touch(asking)
            return
        tool = self._tool(ev)
        tool.decision = words
        if ev.decision == "deny":
            tool.status = "denied"
        elif ev.edited_arguments is not None:
            tool.arguments = dict(ev.edited_arguments)
        if ev.rule:
            self._note(ev, f"rule saved: {ev.rule}", "approval")

    def _on_tool_call(self, ev: Any) -> None:
        tool = self._tool(ev)
        tool.status = "running"
        tool.arguments = dict(ev.arguments)

    def _on_tool_progress(self, ev: Any) -> None:
        tool = self._tool(ev)
        done = f"{ev.progress:g}" + (f"/{ev.total:g}" if ev.total is not None else "")
        tool.progress = f"{done} {ev.message}" if ev.message else done

    def _on_tool_unavailable(self, ev: Any) -> None:
        first = ev.error.strip().splitlines()[0] if ev.error.strip() else ""
        self._note(
            ev,
            f"! {ev.toolkit} is unavailable; running without {', '.join(ev.patterns)}: {first}",
            "warning",
        )

    def _on_tool_result(self, ev: Any) -> None:
        tool = self._tool(ev)
        tool.progress = None
        tool.output = ev.output
        tool.error = ev.error
        tool.duration_ms = ev.duration_ms
        if ev.error is None:
            tool.status = "done"
        elif tool.status != "denied":
            tool.status = "failed"

    def _on_delegated(self, ev: Any) -> None:
        task = ev.task if len(ev.task) <= 200 else ev.task[:199] + "…"
        self._note(ev, f"⇢ {ev.member}: {task}", "team")

    def _on_vote(self, ev: Any) -> None:
        verdict = "agrees" if ev.agree else "disagrees"
        self._note(ev, f"round {ev.round}: {ev.member} {verdict} — {ev.position}", "team")

    def _step(self, ev: Any) -> StepState | None:
        wf = self.workflows.get(ev.run_id)
        if wf is None:
            wf = self.workflows[ev.run_id] = WorkflowState(run_id=ev.run_id, name=ev.source)
        step = wf.steps.get(ev.path)
        if step is None:
            step = wf.steps[ev.path] = StepState(path=ev.path, kind=ev.kind)
        self.changes.steps = True
        return step

    def _on_step_started(self, ev: Any) -> None:
        step = self._step(ev)
        if step is None:
            return
        step.status = "running"
        step.started_ts = ev.ts
        step.ended_ts = None
        step.runs += 1
        step.error = None
        self._note(ev, f"◆ {ev.path} ({ev.kind})", "step")

    def _on_step_completed(self, ev: Any) -> None:
        step = self._step(ev)
        if step is None:
            return
        step.status = ev.status
        step.ended_ts = ev.ts
        if step.started_ts is None:
            step.started_ts = ev.ts
        step.output = ev.output
        step.error = ev.error
        if ev.usage is not None:
            step.prompt_tokens, step.completion_tokens = _usage_of(ev)
        if ev.cost is not None:
            step.cost = ev.cost
        detail = ev.error or ""
        style = {"done": "step", "failed": "error", "skipped": "note", "cancelled": "warning"}
        self._note(
            ev, f"◇ {ev.path} {ev.status}" + (f": {detail}" if detail else ""), style[ev.status]
        )

    def _on_conflict(self, ev: Any) -> None:
        values = json.dumps(ev.values, ensure_ascii=False, default=str)
        self._note(ev, f"! state conflict on '{ev.key}' in {ev.path}: {values}", "warning")

    def _on_summarized(self, ev: Any) -> None:
        self._note(
            ev,
            f"⋯ {ev.turns} earlier messages summarised ({ev.tokens_before} → {ev.tokens_after} tokens)",
            "warning",
        )

    def _on_retry(self, ev: Any) -> None:
        self._note(
            ev,
            f"↻ model call failed ({ev.error}); retry {ev.attempt} in {ev.delay_s:.1f}s",
            "warning",
        )


_HANDLERS: dict[str, Any] = {
    "run.started": SessionState._on_run_started,
    "run.completed": SessionState._on_completed,
    "run.failed": SessionState._on_failed,
    "run.cancelled": SessionState._on_cancelled,
    "run.interrupted": SessionState._on_interrupted,
    "message.delta": SessionState._on_delta,
    "message.completed": SessionState._on_message,
    "tool.call": SessionState._on_tool_call,
    "tool.result": SessionState._on_tool_result,
    "approval.required": SessionState._on_approval_required,
    "approval.resolved": SessionState._on_approval_resolved,
    "team.delegated": SessionState._on_delegated,
    "team.vote": SessionState._on_vote,
    "workflow.step.started": SessionState._on_step_started,
    "workflow.step.completed": SessionState._on_step_completed,
    "workflow.conflict": SessionState._on_conflict,
    "context.summarized": SessionState._on_summarized,
    "model.retry": SessionState._on_retry,
    "tool.progress": SessionState._on_tool_progress,
    "tool.unavailable": SessionState._on_tool_unavailable,
}
