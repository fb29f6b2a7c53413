"""The broker of pending decisions: calls waiting for a person, and the resolution that settles them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeAlias

if TYPE_CHECKING:  # asyncio and pathlib are imported when used: this loads fast
    import asyncio
    from pathlib import Path

    from ..events import ApprovalRequired, ApprovalResolved

from .policy import rules_for_decision
from .rules import _RES_DECISIONS, _RES_SCOPES, ResolutionDecision, ResolutionScope, Rule, Verdict

logger = logging.getLogger("workbench.approvals")

# -- the broker ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolution:
    """A decision on a pending call."""

    decision: ResolutionDecision
    """``allow`` or ``deny``."""
    scope: ResolutionScope = "once"
    """How far an allow reaches: this call, this session, this workspace, everywhere."""
    note: str | None = None
    """A deny's note, sent back to the model."""
    edited_arguments: dict[str, Any] | None = None
    """Arguments a person changed before allowing (the call runs with these)."""
    decided_by: str = "user"
    """Who decided: ``user``, ``policy``, ``rule:<id>``, ``--approve`` ..."""

    def __post_init__(self) -> None:
        if self.decision not in _RES_DECISIONS:
            raise ValueError(f"a decision is allow or deny, not {self.decision!r}")
        if self.scope not in _RES_SCOPES:
            raise ValueError(f"a scope is once, session, workspace or always, not {self.scope!r}")


@dataclass(eq=False)
class PendingApproval:
    """A tool call waiting for a decision; the broker sets :attr:`future` when it registers it."""

    call_id: str
    """The model's call id; decisions refer to it."""
    tool: str
    """Workspace name of the tool."""
    arguments: dict[str, Any]
    """The arguments as the model sent them."""
    reason: str = ""
    """Why it asks (the verdict's reason)."""
    parts: list[str] = field(default_factory=list)
    """Shell: the command's parts. Paths: the normalised paths."""
    diff: str | None = None
    """For file writes and edits: the unified diff the call would apply."""
    session_id: str = ""
    """The session of the run that asks."""
    run_id: str = ""
    """The run that asks."""
    source: str = ""
    """The agent (team, workflow) that asks."""
    created_at: float = field(default_factory=time.time)
    """When it started waiting (seconds since the epoch)."""
    verdict: Verdict | None = None
    """The policy's verdict, when the engine has it (for :meth:`rules_for`)."""
    match_on: tuple[str, str] | None = None
    """The tool's ``match_on`` (for :meth:`rules_for`)."""
    kind: Literal["tool", "input"] = "tool"
    """``tool``: a call waits to run. ``input``: a running tool asks the person for input (an
    MCP elicitation): ``arguments`` are the form's values, :attr:`form` its schema; allow
    sends them (edited, if edited), deny declines. Never decided by rules."""
    form: dict[str, Any] | None = None
    """For ``input``: the JSON schema of the form."""
    interrupted: bool = False
    """The call started in a process that stopped before it gave a result: it may already
    have run (a resumed run offers it again instead of running it silently)."""
    seq: int = 0
    """Seq of its ``approval.required`` event, once stored (0 before)."""
    future: asyncio.Future[Resolution] | None = field(default=None, repr=False)
    """Resolved with the decision; set by :meth:`ApprovalBroker.request`."""

    WIRE_FIELDS: ClassVar[tuple[str, ...]] = (
        "call_id",
        "run_id",
        "session_id",
        "tool",
        "arguments",
        "reason",
        "parts",
        "diff",
        "source",
        "seq",
        "ts",
    )
    """The keys of :meth:`to_json`, in order: what ``GET /api/approvals`` and the approvals
    stream send for one pending call (the server's ``ApprovalOut`` is checked against it)."""

    @property
    def key(self) -> tuple[str, str]:
        """``(run_id, call_id)``: unique, unlike a call id alone (models reuse call ids)."""
        return (self.run_id, self.call_id)

    @property
    def resolved(self) -> bool:
        """True once decided (or abandoned)."""
        return self.future is not None and self.future.done()

    def to_json(self) -> dict[str, Any]:
        """The pending call as the REST API sends it (keys :attr:`WIRE_FIELDS`; ``ts`` is
        :attr:`created_at`)."""
        return {n: self.created_at if n == "ts" else getattr(self, n) for n in self.WIRE_FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PendingApproval:
        """A pending call from what :meth:`to_json` sent (a remote engine's view of it)."""
        texts = {name: data.get(name, "") for name in ("reason", "session_id", "run_id", "source")}
        return cls(
            call_id=data["call_id"],
            tool=data["tool"],
            arguments=dict(data.get("arguments") or {}),
            parts=list(data.get("parts") or []),
            diff=data.get("diff"),
            created_at=float(data.get("ts") or time.time()),
            seq=int(data.get("seq") or 0),
            **texts,
        )

    @classmethod
    def from_event(cls, event: ApprovalRequired) -> PendingApproval:
        """Rebuild a pending call from its ``approval.required`` event (after a restart)."""
        return cls(
            call_id=event.call_id,
            tool=event.tool,
            arguments=dict(event.arguments),
            reason=event.reason,
            parts=list(event.parts),
            diff=event.diff,
            session_id=event.session_id,
            run_id=event.run_id,
            source=event.source,
            created_at=event.ts,
            kind=event.kind,
            form=event.form,
            seq=event.seq,
        )

    def _about(self, parent_run_id: str | None) -> dict[str, Any]:
        """What every event about this call says of it: where it runs, which call, which tool."""
        names = ("session_id", "run_id", "source", "call_id", "tool")
        return {"parent_run_id": parent_run_id} | {n: getattr(self, n) for n in names}

    def required_event(self, parent_run_id: str | None = None) -> ApprovalRequired:
        """The ``approval.required`` event announcing this call."""
        from ..events import ApprovalRequired

        return ApprovalRequired(
            **self._about(parent_run_id),
            arguments=self.arguments,
            reason=self.reason,
            parts=list(self.parts),
            diff=self.diff,
            kind=self.kind,
            form=self.form,
        )

    def resolved_event(
        self,
        resolution: Resolution,
        saved: Sequence[Rule] = (),
        parent_run_id: str | None = None,
    ) -> ApprovalResolved:
        """The ``approval.resolved`` event (the audit trail) for a decision on this call.

        Args:
            resolution: The decision.
            saved: The rules the decision saved, shown as :meth:`Rule.display` texts joined
                by ``; `` (as the event has always recorded them).
            parent_run_id: The run's parent, if any.
        """
        from ..events import ApprovalResolved

        return ApprovalResolved(
            **self._about(parent_run_id),
            decision=resolution.decision,
            scope=resolution.scope,
            note=resolution.note,
            edited_arguments=resolution.edited_arguments,
            decided_by=resolution.decided_by,
            rule="; ".join(r.display() for r in saved) or None,
        )

    def rules_for(self, scope: ResolutionScope, root: Path | None = None) -> list[Rule]:
        """The rules "allow for ``scope``" would save, to show before saving.

        Args:
            scope: ``session``, ``workspace`` or ``always``.
            root: The workspace root.
        """
        if self.verdict is None or self.kind != "tool":
            return []
        return rules_for_decision(
            self.tool, self.match_on, self.arguments, self.verdict, scope, root=root
        )


BrokerListener: TypeAlias = Callable[[Literal["added", "removed"], PendingApproval], None]
"""Called on the event loop's thread when a pending approval is added or removed."""


def _settle(fut: asyncio.Future[Resolution], resolution: Resolution) -> None:
    if not fut.done():
        fut.set_result(resolution)


class ApprovalBroker:
    """Holds the calls that wait for a person, and the session-scoped rules.

    The engine ``await`` s :meth:`request`; any face calls :meth:`resolve` (from the event
    loop or from another thread). Cancelling the awaiting task withdraws the request.
    """

    auto_decider: Callable[[PendingApproval], Resolution | None] | None
    """When set and it returns a Resolution, a request resolves at once without waiting
    (``workbench run --approve all|never`` with no terminal). ``None`` from it means ask a
    person; an exception from it denies (it fails closed)."""

    def __init__(
        self, auto_decider: Callable[[PendingApproval], Resolution | None] | None = None
    ) -> None:
        self.auto_decider = auto_decider
        self._lock = threading.Lock()
        # Keyed by (run_id, call_id): a model's call ids are unique within a run only (the
        # test model and some local servers number them), so concurrent runs may repeat one.
        self._pending: dict[
            tuple[str, str], tuple[PendingApproval, asyncio.AbstractEventLoop, int]
        ] = {}
        self._seq = 0
        self._listeners: list[BrokerListener] = []
        self._session_rules: dict[str, list[Rule]] = {}

    async def request(self, p: PendingApproval) -> Resolution:
        """Register a pending call and wait for its decision.

        Args:
            p: The call; its :attr:`~PendingApproval.future` is replaced by a new one.

        Returns:
            The decision.

        Raises:
            ValueError: A call with the same id is already pending in the same run.
            asyncio.CancelledError: The awaiting task was cancelled (the call is withdrawn).
        """
        if self.auto_decider is not None:
            try:
                decided = self.auto_decider(p)
            except Exception as exc:
                logger.exception("the approval auto_decider failed on %s", p.call_id)
                decided = Resolution(
                    "deny", note=f"the approval hook failed: {exc}", decided_by="auto_decider"
                )
            if decided is not None:
                return decided
        import asyncio

        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Resolution] = loop.create_future()
        key = (p.run_id, p.call_id)
        with self._lock:
            if key in self._pending:
                raise ValueError(f"call {p.call_id!r} is already waiting for a decision")
            p.future = fut
            self._seq += 1
            self._pending[key] = (p, loop, self._seq)
        self._notify("added", p)
        try:
            return await fut
        finally:
            with self._lock:
                entry = self._pending.get(key)
                if entry is not None and entry[0] is p:
                    del self._pending[key]
            if not fut.done():
                fut.cancel()
            self._notify("removed", p)

    def resolve(self, run_id: str, call_id: str, resolution: Resolution) -> bool:
        """Decide on a pending call. Safe from any thread.

        Args:
            run_id: The run that asks.
            call_id: The call's id (unique within its run only: never guess the run).
            resolution: The decision.

        Returns:
            False if no such call is pending (unknown, already resolved or withdrawn).
        """
        key = (run_id, call_id)
        with self._lock:
            entry = self._pending.get(key)
            if entry is None:
                return False
            p, loop, _ = entry
            fut = p.future
            if fut is None or fut.done():
                return False
            del self._pending[key]
        import asyncio

        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            _settle(fut, resolution)
        else:
            try:
                loop.call_soon_threadsafe(_settle, fut, resolution)
            except RuntimeError:  # the loop is closed: nobody waits any more
                return False
        return True

    def get(self, run_id: str, call_id: str) -> PendingApproval | None:
        """The pending call ``call_id`` of the run ``run_id``, if any."""
        with self._lock:
            entry = self._pending.get((run_id, call_id))
        return entry[0] if entry else None

    def pending(self, session_id: str | None = None) -> list[PendingApproval]:
        """Pending calls, newest first.

        Args:
            session_id: Only this session's; None for all.
        """
        with self._lock:
            entries = list(self._pending.values())
        entries.sort(key=lambda e: (e[0].created_at, e[2]), reverse=True)
        return [p for p, _, _ in entries if session_id is None or p.session_id == session_id]

    def subscribe(self, callback: BrokerListener) -> Callable[[], None]:
        """Call ``callback(kind, pending)`` when a call is added or removed.

        Returns:
            A function that unsubscribes.
        """
        self._listeners.append(callback)

        def unsubscribe() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return unsubscribe

    def _notify(self, kind: Literal["added", "removed"], p: PendingApproval) -> None:
        for callback in list(self._listeners):
            try:
                callback(kind, p)
            except Exception:  # a face's bug must not break the run that waits
                logger.exception("approval listener failed")

    # -- session rules ---------------------------------------------------------------------

    def add_session_rules(self, session_id: str, rules: Iterable[Rule]) -> list[Rule]:
        """Keep rules for one session (they are given scope ``session``).

        Returns:
            The rules added (those not already held).
        """
        added: list[Rule] = []
        with self._lock:
            held = self._session_rules.setdefault(session_id, [])
            keys = {(r.tool, r.pattern, r.decision) for r in held}
            for r in rules:
                if r.scope != "session":
                    r = replace(r, scope="session")
                key = (r.tool, r.pattern, r.decision)
                if key not in keys:
                    keys.add(key)
                    held.append(r)
                    added.append(r)
        return added

    def session_rules(self, session_id: str) -> list[Rule]:
        """The rules saved for a session, oldest first."""
        with self._lock:
            return list(self._session_rules.get(session_id, ()))

    def remove_session_rule(self, session_id: str, rule: Rule) -> bool:
        """Forget a session rule (matched on tool, pattern and decision).

        Returns:
            False if the session had no such rule.
        """
        key = (rule.tool, rule.pattern, rule.decision)
        with self._lock:
            held = self._session_rules.get(session_id, [])
            for i, r in enumerate(held):
                if (r.tool, r.pattern, r.decision) == key:
                    del held[i]
                    return True
        return False

    def clear_session(self, session_id: str) -> None:
        """Forget every rule of a session."""
        with self._lock:
            self._session_rules.pop(session_id, None)
