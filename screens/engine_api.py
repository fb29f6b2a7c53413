"""The part of the engine the app uses, as a Protocol.

:class:`workbench.engine.Engine` is one; tests inject fakes with the same shape. Naming it
here (for the type checker only) keeps ``screens`` importable before the engine is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = ["EngineLike", "RunHandleLike"]


class RunHandleLike(Protocol):
    """A run the engine started."""

    run_id: str
    """The run."""
    session_id: str
    """Its session."""

    async def wait(self) -> Any:
        """The outcome."""
        ...


class EngineLike(Protocol):
    """What the TUI needs from an engine."""

    workspace: Any
    """The loaded workspace (agents, teams, workflows, root, name, path)."""
    root: Path
    """The workspace folder."""
    policy: Any
    """The approval policy."""
    broker: Any
    """The approval broker."""

    def add_listener(self, fn: Callable[[Any], None]) -> Callable[[], None]:
        """Call ``fn`` with every published event."""
        ...

    def catalogue_names(self) -> list[str]:
        """Every runnable name."""
        ...

    def target_kind(self, name: str) -> Any:
        """agent, team or workflow."""
        ...

    async def start_run(
        self,
        target: str,
        input: str,
        *,
        session_id: str | None = None,
        kind: Any = None,
        model: str | None = None,
    ) -> RunHandleLike:
        """Start a run."""
        ...

    async def resume(self, run_id: str) -> RunHandleLike:
        """Continue a run whose process died."""
        ...

    def cancel(self, run_id: str) -> bool:
        """Cancel a run and its children."""
        ...

    def resolve_approval(self, run_id: str, call_id: str, resolution: Any) -> bool:
        """Decide the pending tool call ``call_id`` of the run ``run_id``."""
        ...

    def saved_rules(self, session_id: str) -> list[Any]:
        """Approval rules in force (the session's, then the saved ones)."""
        ...

    def remove_rule(self, rule: Any, session_id: str = "") -> bool:
        """Remove a rule in force (False: it was not there)."""
        ...

    async def tools_for(self, patterns: Sequence[str]) -> list[Any]:
        """Tools by pattern."""
        ...

    async def build_target(self, kind: Any, name: str) -> Any:
        """The runnable object of a name."""
        ...

    def sessions(
        self, limit: int = 50, offset: int = 0, *, workspace: str | None = None
    ) -> list[Any]:
        """Stored sessions, newest first (only a workspace folder's, when given)."""
        ...

    def session_events(self, session_id: str, after_seq: int = 0) -> list[Any]:
        """A session's events."""
        ...

    def runs(self, session_id: str) -> list[Any]:
        """A session's runs."""
        ...

    def delete_session(self, session_id: str) -> bool:
        """Delete a session."""
        ...

    def search_sessions(self, query: str, limit: int = 50, *, prefix: bool = False) -> list[Any]:
        """Full-text search over every session (``SearchHit`` objects, newest first)."""
        ...

    def fork_session(
        self,
        session_id: str,
        *,
        at_seq: int | None = None,
        message_id: str | None = None,
        title: str | None = None,
    ) -> Any:
        """A new session with this one's events up to ``at_seq`` (its ``SessionInfo``)."""
        ...

    # The TUI itself calls these: never a blocking call on its event loop (an attached
    # engine answers over HTTP).

    async def asessions(
        self, limit: int = 50, offset: int = 0, *, workspace: str | None = None
    ) -> list[Any]:
        """Stored sessions, newest first (only a workspace folder's, when given)."""
        ...

    async def asession_events(self, session_id: str, after_seq: int = 0) -> list[Any]:
        """A session's events."""
        ...

    async def aruns(self, session_id: str) -> list[Any]:
        """A session's runs."""
        ...

    async def adelete_session(self, session_id: str) -> bool:
        """Delete a session."""
        ...

    async def asearch_sessions(
        self, query: str, limit: int = 50, *, prefix: bool = False
    ) -> list[Any]:
        """Full-text search over every session."""
        ...

    async def afork_session(
        self,
        session_id: str,
        *,
        at_seq: int | None = None,
        message_id: str | None = None,
        title: str | None = None,
    ) -> Any:
        """Fork a session (its ``SessionInfo``)."""
        ...

    async def aremove_rule(self, rule: Any, session_id: str = "") -> bool:
        """Remove a rule in force (False when it was not there)."""
        ...

    async def asaved_rules(self, session_id: str) -> list[Any]:
        """Approval rules in force."""
        ...

    async def aclose(self) -> None:
        """Close."""
        ...
