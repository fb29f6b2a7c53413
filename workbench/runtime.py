"""What every run shares: its context (ids, where events go) and its lifecycle.

A :class:`RunContext` is handed to an agent, team or workflow when it runs. Its
:meth:`RunContext.emit` stamps the common fields on an event and publishes it through the
engine (store first, then subscribers), so a run never writes anywhere else.
:func:`run_lifecycle` wraps a run's body in ``run.started`` and exactly one terminal event,
whatever happens (an answer, an error, a cancellation).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

from workbench.errors import WorkbenchError
from workbench.events import (
    TERMINAL_TYPES,
    Event,
    EventBase,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunStarted,
    TargetKind,
    Usage,
)
from workbench.models import ModelError

if TYPE_CHECKING:
    from workbench.approvals import ApprovalBroker, ApprovalPolicy, Rule
    from workbench.models import Recording
    from workbench.store import Store

__all__ = [
    "RUN_FENCE",
    "ChildCheckpoint",
    "RunContext",
    "RunError",
    "RunFence",
    "RunHandle",
    "RunOutcome",
    "Services",
    "child_checkpoint",
    "merge_usage",
    "new_run_id",
    "run_lifecycle",
]

log = logging.getLogger("workbench.runtime")


def new_run_id() -> str:
    """A fresh run id."""
    return "r_" + secrets.token_hex(6)


class RunFence:
    """Stops a run tree without a word: set on the runs of a process that lost its lease.

    Another process declared this one dead (it could not renew its lease in time), so it
    may be running these runs already; nothing more may be written for them here, not even
    ``run.cancelled``. The engine sets one per top-level run (children share it through the
    task context) and trips it when the store reports the lease lost.
    """

    __slots__ = ("lost", "owner")

    def __init__(self, owner: str = "") -> None:
        self.owner = owner
        """The lease id the run was started under."""
        self.lost = False
        """True once the run is not this process's any more."""


RUN_FENCE: contextvars.ContextVar[RunFence | None] = contextvars.ContextVar(
    "workbench_run_fence", default=None
)
"""The fence of the run tree the current task belongs to."""


def _fenced() -> bool:
    fence = RUN_FENCE.get()
    return fence is not None and fence.lost


class RunError(WorkbenchError):
    """A run failed for a reason the user should read (with an optional hint)."""


class Services(Protocol):
    """What runs need from the engine."""

    root: Path
    """The workspace folder."""
    broker: ApprovalBroker
    """Pending approvals."""
    policy: ApprovalPolicy
    """The workspace's approval policy."""

    async def publish(self, event: EventBase, *, durable: bool = False) -> Event:
        """Store the event (assigning its seq) and fan it out; ``durable`` waits for the disk."""
        ...

    def saved_rules(self, session_id: str) -> list[Rule]:
        """Rules people saved (this session, this workspace, everywhere)."""
        ...

    def save_rules(self, session_id: str, rules: Sequence[Rule], scope: str) -> None:
        """Keep rules a person chose: in the session, the workspace or everywhere."""
        ...


@dataclass
class RunOutcome:
    """How a run ended."""

    status: Literal["completed", "failed", "cancelled"]
    """The terminal state."""
    output: str = ""
    """The answer, when completed."""
    error: str | None = None
    """Why it failed."""
    hint: str | None = None
    """What to fix."""
    usage: Usage = field(default_factory=Usage)
    """Tokens, children included."""
    cost: float | None = None
    """USD, children included, when known."""
    structured: Any = None
    """The validated output of an agent with an output schema."""
    run_id: str = ""
    """The run."""

    @property
    def ok(self) -> bool:
        """Completed with an answer."""
        return self.status == "completed"


@dataclass
class RunHandle:
    """A run the engine started."""

    run_id: str
    """The run."""
    session_id: str
    """Its session."""
    task: asyncio.Task[RunOutcome]
    """Await it for the outcome."""

    async def wait(self) -> RunOutcome:
        """The outcome (a cancelled run gives status ``cancelled``)."""
        try:
            return await asyncio.shield(self.task)
        except asyncio.CancelledError:
            if self.task.cancelled():
                return RunOutcome("cancelled", run_id=self.run_id)
            raise


@dataclass
class RunContext:
    """Identity of a run and the door its events go out by."""

    services: Services
    """The engine."""
    session_id: str
    """The session."""
    run_id: str
    """This run."""
    parent_run_id: str | None = None
    """The team or workflow run that started this one."""
    source: str = ""
    """The agent, team or workflow name stamped on events."""
    prior: list[Event] = field(default_factory=list)
    """This run's events from an earlier process, when resuming."""
    usage: Usage = field(default_factory=Usage)
    """Tokens spent by this run itself (children add theirs through their outcome)."""
    cost: float | None = None
    """Cost spent by this run itself."""
    recording: Recording | None = None
    """Recorded model turns the agents of this run tree answer with instead of their models
    (``sessions rerun``); children inherit it."""

    async def emit(self, event: EventBase, *, durable: bool = False) -> Event:
        """Stamp the common fields and publish (``durable`` waits until it is on disk)."""
        if _fenced():  # the run is another process's now: stop, say nothing
            raise asyncio.CancelledError()
        event.session_id = self.session_id
        event.run_id = self.run_id
        event.parent_run_id = self.parent_run_id
        if not event.source:
            event.source = self.source
        return await self.services.publish(event, durable=durable)

    def child(
        self, source: str, run_id: str | None = None, prior: list[Event] | None = None
    ) -> RunContext:
        """The context of a child run (a team member, a workflow step)."""
        return RunContext(
            services=self.services,
            session_id=self.session_id,
            run_id=run_id or new_run_id(),
            parent_run_id=self.run_id,
            source=source,
            prior=prior or [],
            recording=self.recording,
        )

    def add_usage(self, usage: Usage | None, cost: float | None) -> None:
        """Count a model call's tokens and cost."""
        if usage is not None:
            self.usage = self.usage + usage
        if cost is not None:
            self.cost = (self.cost or 0.0) + cost


Body = Callable[[RunContext], Awaitable[RunOutcome]]


class ChildCheckpoint(NamedTuple):
    """What the log holds of an earlier attempt of a child run (see :func:`child_checkpoint`)."""

    outcome: RunOutcome | None
    """The attempt completed: its recorded outcome (nothing runs again)."""
    prior: list[Event]
    """The attempt was interrupted: its events, to continue from (else empty)."""
    run_id: str
    """The id to run under: the one asked for, or a new one when the attempt failed or was
    cancelled (it runs again from scratch)."""


def child_checkpoint(store: Store, session_id: str, run_id: str) -> ChildCheckpoint:
    """Where a child run (a team member, a workflow step) starts when its parent is resumed.

    A resumed parent asks for each child by the id it gave it the first time: a child that
    completed gives its recorded outcome and runs no model call; one that was interrupted
    continues from its events; one that failed or was cancelled runs again under a new id;
    one that never ran starts. The runs table is asked first, so the log is read only for a
    child that did run.

    Args:
        store: The store holding earlier attempts.
        session_id: The parent's session.
        run_id: The child's run id.
    """
    if store.get_run(run_id) is None:
        return ChildCheckpoint(None, [], run_id)
    prior = store.events(session_id, run_id=run_id)
    ended = next((e for e in reversed(prior) if e.type in TERMINAL_TYPES), None)
    if isinstance(ended, RunCompleted):
        return ChildCheckpoint(
            RunOutcome(
                "completed",
                output=ended.output,
                usage=ended.usage,
                cost=ended.cost,
                structured=ended.structured,
                run_id=run_id,
            ),
            prior,
            run_id,
        )
    if ended is not None:
        return ChildCheckpoint(None, [], new_run_id())
    return ChildCheckpoint(None, prior, run_id)


async def run_lifecycle(
    ctx: RunContext,
    kind: TargetKind,
    target: str,
    input: str,
    body: Body,
    *,
    model: str | None = None,
    resumed: bool = False,
) -> RunOutcome:
    """Run ``body`` between ``run.started`` and one terminal event.

    Errors become ``run.failed`` (with a hint when known) and a returned outcome, never an
    exception, so a failing team member cannot take its team down. Cancellation emits
    ``run.cancelled`` and propagates.
    """
    already_started = any(e.type == "run.started" for e in ctx.prior)
    if not already_started or resumed:
        await ctx.emit(
            RunStarted(target_kind=kind, target=target, input=input, model=model, resumed=resumed)
        )
    t0 = time.perf_counter()

    def ms() -> float:
        return (time.perf_counter() - t0) * 1000

    try:
        outcome = await body(ctx)
    except asyncio.CancelledError:
        if not _fenced():
            await asyncio.shield(ctx.emit(RunCancelled(duration_ms=ms()), durable=True))
        raise
    except (ModelError, RunError) as exc:
        hint = getattr(exc, "hint", None)
        await ctx.emit(
            RunFailed(error=str(exc), hint=hint, duration_ms=ms(), usage=ctx.usage, cost=ctx.cost),
            durable=True,
        )
        return RunOutcome(
            "failed", error=str(exc), hint=hint, usage=ctx.usage, cost=ctx.cost, run_id=ctx.run_id
        )
    except Exception as exc:
        log.error("run %s crashed:\n%s", ctx.run_id, traceback.format_exc())
        error = f"{type(exc).__name__}: {exc}"
        await ctx.emit(
            RunFailed(error=error, duration_ms=ms(), usage=ctx.usage, cost=ctx.cost), durable=True
        )
        return RunOutcome("failed", error=error, usage=ctx.usage, cost=ctx.cost, run_id=ctx.run_id)
    outcome.run_id = ctx.run_id
    if outcome.status == "completed":
        await ctx.emit(
            RunCompleted(
                output=outcome.output,
                usage=outcome.usage,
                cost=outcome.cost,
                duration_ms=ms(),
                structured=outcome.structured,
            ),
            durable=True,
        )
    elif outcome.status == "failed":
        await ctx.emit(
            RunFailed(
                error=outcome.error or "failed",
                hint=outcome.hint,
                duration_ms=ms(),
                usage=outcome.usage,
                cost=outcome.cost,
            ),
            durable=True,
        )
    return outcome


def merge_usage(outcomes: Sequence[RunOutcome]) -> tuple[Usage, float | None]:
    """Sum the usage and cost of several outcomes."""
    usage = Usage()
    cost: float | None = None
    for o in outcomes:
        usage = usage + o.usage
        if o.cost is not None:
            cost = (cost or 0.0) + o.cost
    return usage, cost
