"""The seam between the faces and the engine, as Protocols.

:class:`EngineLike` is what the TUI needs of an engine. Two engines have that shape: the
local :class:`workbench.engine.Engine` and :class:`workbench.client.RemoteEngine` (an engine
served over HTTP, ``workbench attach``); mypy checks both against it (below), so neither can
drift from what the panes call. Tests inject fakes with the same shape.

The types are imported for the type checker only: ``screens`` stays importable before the
engine is (the first frame comes before pydantic, SQLAlchemy or litellm load).

Blocking calls: a remote engine answers over HTTP. What the TUI calls on its event loop is
therefore async (the ``a``-prefixed data methods, :meth:`EngineLike.start_run`,
:meth:`EngineLike.tools_for`...); the plain data methods are for a thread or a script.
``cancel`` and ``resolve_approval`` return at once on both engines (the remote one sends in
the background).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from workbench.approvals import ApprovalPolicy, PendingApproval, Resolution, Rule
    from workbench.events import Event, TargetKind
    from workbench.runtime import RunOutcome
    from workbench.store import RunInfo, SearchHit, SessionInfo
    from workbench.workspace import Workspace

__all__ = ["BrokerLike", "EngineLike", "RunHandleLike", "ToolLike"]


class RunHandleLike(Protocol):
    """A run an engine started (:class:`workbench.engine.RunHandle`, and
    :class:`workbench.client.RemoteRunHandle` for a run on a server)."""

    @property
    def run_id(self) -> str:
        """The run."""
        ...

    @property
    def session_id(self) -> str:
        """Its session."""
        ...

    async def wait(self) -> RunOutcome:
        """The outcome (a cancelled run gives status ``cancelled``)."""
        ...


class ToolLike(Protocol):
    """A tool, as far as the TUI asks about it (an approval's rules preview)."""

    @property
    def name(self) -> str:
        """Workspace name (``files.read``)."""
        ...

    @property
    def match_on(self) -> tuple[str, str] | None:
        """What approval rules match on (``("command", "cmd")``), if anything."""
        ...


class BrokerLike(Protocol):
    """The calls waiting for a person (:class:`workbench.approvals.ApprovalBroker`, or the
    server's, followed by :class:`workbench.client.RemoteBroker`)."""

    def pending(self, session_id: str | None = None) -> list[PendingApproval]:
        """Pending calls, newest first (only a session's, when given)."""
        ...

    def get(self, run_id: str, call_id: str) -> PendingApproval | None:
        """The pending call ``call_id`` of the run ``run_id``, if any."""
        ...

    def subscribe(
        self, callback: Callable[[Literal["added", "removed"], PendingApproval], None]
    ) -> Callable[[], None]:
        """Call ``callback(kind, pending)`` when a call is added or removed; returns a
        function that unsubscribes."""
        ...


class EngineLike(Protocol):
    """What the TUI needs from an engine."""

    @property
    def workspace(self) -> Workspace:
        """The loaded workspace (agents, teams, workflows, root, name, path)."""
        ...

    @property
    def root(self) -> Path:
        """The workspace folder."""
        ...

    @property
    def policy(self) -> ApprovalPolicy:
        """The approval policy (a remote engine's is for previews: the server decides)."""
        ...

    @property
    def broker(self) -> BrokerLike:
        """The calls waiting for a person."""
        ...

    def add_listener(self, fn: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``fn`` with every published event; returns a remover."""
        ...

    def catalogue_names(self) -> list[str]:
        """Every runnable name."""
        ...

    def target_kind(self, name: str) -> TargetKind:
        """Whether ``name`` is an agent, a team or a workflow (RunError if none)."""
        ...

    async def start_run(
        self,
        target: str,
        input: str,
        *,
        session_id: str | None = None,
        kind: TargetKind | None = None,
        model: str | None = None,
    ) -> RunHandleLike:
        """Start a run; returns at once with its ids."""
        ...

    async def resume(self, run_id: str) -> RunHandleLike:
        """Continue a run whose process died."""
        ...

    def cancel(self, run_id: str) -> bool:
        """Cancel a run and its children."""
        ...

    def resolve_approval(self, run_id: str, call_id: str, resolution: Resolution) -> bool:
        """Decide the pending tool call ``call_id`` of the run ``run_id``."""
        ...

    def saved_rules(self, session_id: str) -> list[Rule]:
        """Approval rules in force (the session's, then the saved ones)."""
        ...

    def remove_rule(self, rule: Rule, session_id: str = "") -> bool:
        """Remove a rule in force (False: it was not there)."""
        ...

    async def tools_for(self, patterns: Sequence[str]) -> Sequence[ToolLike]:
        """Tools by pattern."""
        ...

    async def build_target(self, kind: TargetKind, name: str) -> Any:
        """The runnable object of a name (the TUI asks a workflow's ``graph()`` of it; a
        remote engine builds nothing else)."""
        ...

    def sessions(
        self, limit: int = 50, offset: int = 0, *, workspace: str | None = None
    ) -> list[SessionInfo]:
        """Stored sessions, newest first (only a workspace folder's, when given)."""
        ...

    def session_events(self, session_id: str, after_seq: int = 0) -> list[Event]:
        """A session's events."""
        ...

    def runs(self, session_id: str) -> list[RunInfo]:
        """A session's runs."""
        ...

    def delete_session(self, session_id: str) -> bool:
        """Delete a session."""
        ...

    def search_sessions(
        self, query: str, limit: int = 50, *, prefix: bool = False
    ) -> list[SearchHit]:
        """Full-text search over every session (newest first)."""
        ...

    def fork_session(
        self,
        session_id: str,
        *,
        at_seq: int | None = None,
        message_id: str | None = None,
        title: str | None = None,
    ) -> SessionInfo:
        """A new session with this one's events up to ``at_seq``."""
        ...

    # The TUI itself calls these: never a blocking call on its event loop (an attached
    # engine answers over HTTP).

    async def asessions(
        self, limit: int = 50, offset: int = 0, *, workspace: str | None = None
    ) -> list[SessionInfo]:
        """Stored sessions, newest first (only a workspace folder's, when given)."""
        ...

    async def asession_events(self, session_id: str, after_seq: int = 0) -> list[Event]:
        """A session's events."""
        ...

    async def aruns(self, session_id: str) -> list[RunInfo]:
        """A session's runs."""
        ...

    async def adelete_session(self, session_id: str) -> bool:
        """Delete a session."""
        ...

    async def asearch_sessions(
        self, query: str, limit: int = 50, *, prefix: bool = False
    ) -> list[SearchHit]:
        """Full-text search over every session."""
        ...

    async def afork_session(
        self,
        session_id: str,
        *,
        at_seq: int | None = None,
        message_id: str | None = None,
        title: str | None = None,
    ) -> SessionInfo:
        """Fork a session."""
        ...

    async def aremove_rule(self, rule: Rule, session_id: str = "") -> bool:
        """Remove a rule in force (False when it was not there)."""
        ...

    async def asaved_rules(self, session_id: str) -> list[Rule]:
        """Approval rules in force."""
        ...

    async def aclose(self) -> None:
        """Close."""
        ...


if TYPE_CHECKING:
    # Checked by mypy, never run: both engines (and both run handles) have the shape the
    # TUI is written against. An engine that drifts from it fails `mypy` here.
    from workbench.client import RemoteEngine, RemoteRunHandle
    from workbench.engine import Engine, RunHandle

    def _local_is_engine_like(engine: Engine, handle: RunHandle) -> None:
        _engine: EngineLike = engine
        _handle: RunHandleLike = handle

    def _remote_is_engine_like(engine: RemoteEngine, handle: RemoteRunHandle) -> None:
        _engine: EngineLike = engine
        _handle: RunHandleLike = handle
