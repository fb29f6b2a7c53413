"""Re-running a stored session against the current workspace, and comparing the calls."""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from workbench.events import (
    ApprovalRequired,
    ApprovalResolved,
    ContextSummarized,
    Event,
    MessageCompleted,
    SessionImported,
    ToolCall,
    ToolResult,
)

if TYPE_CHECKING:
    from workbench.approvals import PendingApproval, Resolution
    from workbench.engine import Engine
    from workbench.store import RunInfo

from .archive import SessionsError, _session, iter_events

ApproveMode = Literal["recorded", "all", "never"]
"""How a re-run decides tool calls that need approval: as the recording did, allow all, or
refuse all."""

# -- re-run -------------------------------------------------------------------------------------


CallStatus = Literal["same", "changed", "missing", "extra"]
"""How a re-run tool call compares with the recorded one."""


@dataclass
class CallDiff:
    """One tool call of a re-run, next to the recorded one."""

    call_id: str
    """The call id (the recorded one: the replay model asks with the same ids)."""
    tool: str
    """The tool."""
    arguments: dict[str, Any]
    """The arguments it was called with."""
    status: CallStatus
    """``same`` result, ``changed`` result, ``missing`` (recorded, not made again) or
    ``extra`` (made again, not recorded)."""
    old_output: str | None = None
    """The recorded output."""
    old_error: str | None = None
    """The recorded error."""
    new_output: str | None = None
    """The output now."""
    new_error: str | None = None
    """The error now."""
    old_ms: float = 0.0
    """The recorded duration."""
    new_ms: float = 0.0
    """The duration now."""
    agent: str = ""
    """The agent that made the call (in a team or a workflow, one of many)."""

    @property
    def same(self) -> bool:
        """The result did not change."""
        return self.status == "same"

    def unified_diff(self, context: int = 3) -> str:
        """The recorded result against the new one, as a unified diff ('' when the same)."""
        if self.same:
            return ""

        def text(output: str | None, error: str | None, present: bool) -> list[str]:
            if not present:
                return []
            body = f"Error: {error}" if error is not None else (output or "")
            return (body if body.endswith("\n") else body + "\n").splitlines(keepends=True)

        old = text(self.old_output, self.old_error, self.status != "extra")
        new = text(self.new_output, self.new_error, self.status != "missing")
        return "".join(
            difflib.unified_diff(
                old,
                new,
                fromfile=f"recorded {self.tool} {self.call_id}",
                tofile=f"re-run {self.tool} {self.call_id}",
                n=context,
            )
        )


@dataclass
class RunDiff:
    """One top-level run, recorded and re-run."""

    old_run_id: str
    """The recorded run."""
    target: str
    """Its agent."""
    input: str
    """Its prompt."""
    old_status: str
    """How the recorded run ended."""
    new_run_id: str | None = None
    """The re-run (None when skipped)."""
    new_status: str | None = None
    """How the re-run ended."""
    new_error: str | None = None
    """Why the re-run failed, if it did."""
    calls: list[CallDiff] = field(default_factory=list)
    """Its tool calls, in recorded order (extras last)."""
    skipped: str | None = None
    """Why it was not re-run."""
    old_output: str | None = None
    """The recorded answer."""
    new_output: str | None = None
    """The answer now."""
    output_changed: bool = False
    """Under the replay model, the answer is not the recorded one (a workflow's function
    step or a changed tool result upstream of it). A live model's answer is not compared."""

    def answer_diff(self) -> str:
        """The recorded answer against the new one, as a unified diff ('' when not changed)."""
        if not self.output_changed:
            return ""
        return "".join(
            difflib.unified_diff(
                (self.old_output or "").splitlines(keepends=True),
                (self.new_output or "").splitlines(keepends=True),
                fromfile=f"recorded answer of {self.target}",
                tofile=f"re-run answer of {self.target}",
            )
        )

    @property
    def differs(self) -> bool:
        """Re-run, and it ended otherwise, gave another answer under the replay model, or
        some tool result changed."""
        if self.skipped is not None:
            return False
        return (
            self.new_status != self.old_status
            or self.output_changed
            or not all(c.same for c in self.calls)
        )


@dataclass
class RerunReport:
    """A session re-run: where the new tool results differ from the recorded ones."""

    source_session_id: str
    """The recorded session."""
    session_id: str
    """The new session holding the re-run."""
    model: str
    """``replay`` or the model used."""
    runs: list[RunDiff] = field(default_factory=list)
    """One per top-level run of the recorded session."""

    @property
    def identical(self) -> bool:
        """No re-run ended otherwise than recorded, and no tool result changed (runs
        that were skipped do not count either way)."""
        return not any(r.differs for r in self.runs)

    @property
    def rerun(self) -> list[RunDiff]:
        """The runs that were re-run (not skipped)."""
        return [r for r in self.runs if r.skipped is None]

    @property
    def differing_calls(self) -> list[CallDiff]:
        """Every call whose result differs."""
        return [c for r in self.runs for c in r.calls if not c.same]


@dataclass
class _Recorded:
    """A recorded decision and the call it was made on."""

    decision: ApprovalResolved
    arguments: dict[str, Any]
    """The arguments the person was shown (the ``approval.required`` it answered)."""
    trusted: bool
    """Made in this store (not imported)."""


def _recorded_decisions(events: Sequence[Event]) -> dict[tuple[str, str], list[_Recorded]]:
    """The decisions people (or a decider) made on asked calls, per agent and call id, in
    order; each with the arguments it was asked on and whether this store made it."""
    imported_through = max((e.seq for e in events if isinstance(e, SessionImported)), default=0)
    asked: dict[tuple[str, str, str], dict[str, Any]] = {}
    out: dict[tuple[str, str], list[_Recorded]] = {}
    for e in events:
        if isinstance(e, ApprovalRequired):
            asked[(e.run_id, e.source, e.call_id)] = e.arguments
        elif isinstance(e, ApprovalResolved):
            args = asked.pop((e.run_id, e.source, e.call_id), None)
            if args is None:
                continue  # the policy decided; it decides again
            out.setdefault((e.source, e.call_id), []).append(
                _Recorded(e, args, trusted=e.seq > imported_through)
            )
    return out


def _recorded_decider(
    mode: ApproveMode, decisions: dict[tuple[str, str], list[_Recorded]]
) -> Callable[[PendingApproval], Resolution]:
    """Decide as recorded: each recorded decision once, in order, per agent and call id;
    only a decision this store made, on the same call."""
    from workbench.approvals import Resolution

    def decide(p: PendingApproval) -> Resolution:
        if mode == "all":
            return Resolution("allow", decided_by="rerun --approve all")
        if mode == "never":
            return Resolution(
                "deny", note="refused by the re-run", decided_by="rerun --approve never"
            )
        # Call ids are the model's: two agents of a team may both have made a 'call_1'.
        queue = decisions.get((p.source, p.call_id))
        recorded = queue.pop(0) if queue else None
        if recorded is None:
            return Resolution(
                "deny",
                note="no decision was recorded for this call (rerun with --approve all)",
                decided_by="rerun: none recorded",
            )
        if not recorded.trusted:
            return Resolution(
                "deny",
                note="the recorded decision was imported (made elsewhere): a re-run shows it "
                "but does not trust it (rerun with --approve all to allow such calls)",
                decided_by="rerun: imported decision not trusted",
            )
        if p.tool != recorded.decision.tool or p.arguments != recorded.arguments:
            return Resolution(
                "deny",
                note="the recorded decision was made on another call (its tool or arguments "
                "differ now); rerun with --approve all to allow it",
                decided_by="rerun: another call",
            )
        was = recorded.decision
        # A recorded rule-saving allow applies to this session only: a re-run saves nothing.
        scope: Literal["once", "session"] = "once" if was.scope == "once" else "session"
        return Resolution(
            was.decision,
            scope=scope if was.decision == "allow" else "once",
            note=was.note,
            edited_arguments=was.edited_arguments,
            decided_by=f"rerun: recorded {was.decided_by}",
        )

    return decide


def _results(events: Iterable[Event]) -> list[tuple[ToolResult, dict[str, Any]]]:
    args: dict[str, dict[str, Any]] = {}
    out: list[tuple[ToolResult, dict[str, Any]]] = []
    for e in events:
        if isinstance(e, ToolCall):
            args[e.call_id] = e.arguments
        elif isinstance(e, MessageCompleted):
            for c in e.tool_calls:
                args.setdefault(c.id, c.arguments)
        elif isinstance(e, ToolResult):
            out.append((e, args.get(e.call_id, {})))
    return out


def _compare(
    old: list[tuple[ToolResult, dict[str, Any]]],
    new: list[tuple[ToolResult, dict[str, Any]]],
    by_id: bool,
) -> list[CallDiff]:
    # Calls are matched per agent (members of a team run at once, so only each agent's own
    # calls keep their order): by call id and occurrence under the replay model, which asks
    # with the recorded ids, else by position.
    def keyed(items: list[tuple[ToolResult, dict[str, Any]]]) -> dict[tuple[str, str, int], Any]:
        seen: dict[tuple[str, str], int] = {}
        out: dict[tuple[str, str, int], Any] = {}
        for r, a in items:
            name = (r.source, r.call_id if by_id else "")
            n = seen[name] = seen.get(name, -1) + 1
            out[(*name, n)] = (r, a)
        return out

    old_k, new_k = keyed(old), keyed(new)
    diffs: list[CallDiff] = []
    for key, (r, a) in old_k.items():
        match = new_k.get(key)
        if match is None:
            diffs.append(
                CallDiff(
                    r.call_id,
                    r.tool,
                    a,
                    "missing",
                    old_output=r.output,
                    old_error=r.error,
                    old_ms=r.duration_ms,
                    agent=r.source,
                )
            )
            continue
        n, _ = match
        same = n.tool == r.tool and n.output == r.output and n.error == r.error
        diffs.append(
            CallDiff(
                r.call_id,
                r.tool,
                a,
                "same" if same else "changed",
                old_output=r.output,
                old_error=r.error,
                new_output=n.output,
                new_error=n.error,
                old_ms=r.duration_ms,
                new_ms=n.duration_ms,
                agent=r.source,
            )
        )
    for key, (n, a) in new_k.items():
        if key not in old_k:
            diffs.append(
                CallDiff(
                    n.call_id,
                    n.tool,
                    a,
                    "extra",
                    new_output=n.output,
                    new_error=n.error,
                    new_ms=n.duration_ms,
                    agent=n.source,
                )
            )
    return diffs


def _subtree(runs: Sequence[RunInfo], root: str) -> set[str]:
    """``root`` and every run below it (runs are listed parents first)."""
    ids = {root}
    for r in runs:
        if r.parent_run_id in ids:
            ids.add(r.id)
    return ids


async def rerun_session(
    engine: Engine,
    session_id: str,
    *,
    model: str = "replay",
    approve: ApproveMode = "recorded",
    on_run: Callable[[RunInfo, str], None] | None = None,
) -> RerunReport:
    """Run a session's top-level runs again, in a new session, and compare tool results.

    With the ``replay`` model every agent of a run answers with the turns its recorded
    counterpart made (:class:`~workbench.models.Recording`): a top-level agent, and in a
    team or a workflow each member, leader, judge and step, matched by agent name and
    input. No model is called, the same tool calls are made, with the same ids, and the
    tools really run, so a saved session works as a regression test for an agent, a team or
    a workflow. With another model name the runs go to that model and calls are compared
    agent by agent in order.

    Tool calls that need approval are decided as recorded (an allow that saved a rule only
    allows for the re-run's session), or all allowed, or all refused (``approve``). A
    recorded decision is replayed only when this store made it (an imported session's are
    shown, not trusted) and only on the call it was made on; an edit it replays is judged by
    the current rules like a new call, so a deny rule wins.

    Args:
        engine: An engine on the store holding the session, with the workspace whose tools
            the agents use.
        session_id: The recorded session.
        model: ``replay``, or a model name or litellm string for live calls.
        approve: ``recorded``, ``all`` or ``never``.
        on_run: Called with each recorded run and the new run's id as it starts.

    Returns:
        The report; ``report.identical`` is the verdict.

    Raises:
        SessionNotFoundError: No such session.
        SessionsError: The session has no top-level run.
    """
    from workbench.models import Recording
    from workbench.store import new_id

    store = engine.store
    info = _session(store, session_id)
    runs = store.list_runs(session_id)
    top = [r for r in runs if r.parent_run_id is None]
    if not top:
        raise SessionsError(f"session {session_id} has no run to re-run")
    events = list(iter_events(store, session_id))
    new_session = new_id("s")
    store.create_session(
        new_session,
        title=f"rerun of {info.title or session_id}",
        workspace=str(engine.root),
    )
    report = RerunReport(session_id, new_session, model)
    ws = engine.workspace
    defined: dict[str, Any] = {"agent": ws.agents, "team": ws.teams, "workflow": ws.workflows}
    previous = engine.broker.auto_decider, engine.model_override
    try:
        for run in top:
            diff = RunDiff(run.id, run.target, run.input, run.status, old_output=run.output)
            report.runs.append(diff)
            if run.target not in defined.get(run.target_kind, ()):
                diff.skipped = f"the workspace has no {run.target_kind} '{run.target}' now"
                continue
            tree = _subtree(runs, run.id)
            recorded = [e for e in events if e.run_id in tree]
            decisions = _recorded_decisions(
                [e for e in events if e.run_id in tree or isinstance(e, SessionImported)]
            )
            engine.broker.auto_decider = _recorded_decider(approve, decisions)
            recording: Recording | None = None
            if model == "replay":
                recording = Recording()
                for r in runs:
                    if r.id in tree and r.target_kind == "agent":
                        own = [e for e in recorded if e.run_id == r.id]
                        recording.add(
                            r.target,
                            r.input,
                            [e for e in own if isinstance(e, MessageCompleted)],
                            [e.summary for e in own if isinstance(e, ContextSummarized)],
                        )
            else:
                engine.model_override = model
            handle = await engine.start_run(
                run.target,
                run.input,
                session_id=new_session,
                kind=run.target_kind,  # type: ignore[arg-type]
                recording=recording,
            )
            if on_run is not None:
                on_run(run, handle.run_id)
            outcome = await handle.wait()
            diff.new_run_id = handle.run_id
            diff.new_status = outcome.status
            diff.new_error = outcome.error
            diff.new_output = outcome.output if outcome.ok else None
            diff.output_changed = model == "replay" and diff.new_output != diff.old_output
            await asyncio.to_thread(store.flush)
            fresh_tree = _subtree(store.list_runs(new_session), handle.run_id)
            fresh = [e for e in store.events(new_session) if e.run_id in fresh_tree]
            diff.calls = _compare(_results(recorded), _results(fresh), by_id=model == "replay")
    finally:
        engine.broker.auto_decider, engine.model_override = previous
    return report
