"""Names, statuses and the records the store hands out (sessions, runs, rules, claims, hits)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import platformdirs

from ..events import EventBase, Usage
from ._db import home_expanded
from .leases import ProcessInfo

if TYPE_CHECKING:
    from sqlalchemy import Connection

_INTERRUPT_REASON: Final = "its process ({process}) stopped renewing its lease"

log = logging.getLogger("workbench.store")

NOTIFY_CHANNEL: Final = "workbench"
"""The PostgreSQL notification channel. Payloads are JSON objects: ``{"e": {session_id:
last_seq, ...}, "a": 1}`` when events were stored (``a``: some concern approvals or end a
run), ``{"c": run_id}`` when a control request was written."""

_NOTIFY_BYTES: Final = 7000
"""Largest payload sent (PostgreSQL's limit is 8000 bytes): more sessions, more NOTIFYs."""

_APPROVAL_SIGNALS: Final = frozenset(
    {
        "approval.required",
        "approval.resolved",
        "run.completed",
        "run.failed",
        "run.cancelled",
        "run.interrupted",
    }
)
"""Event types that change the list of pending approvals."""

DB_ENV_VAR: Final = "WORKBENCH_DB"
"""Environment variable holding a SQLAlchemy URL used when ``Store.open`` gets none."""

RunStatus = Literal["running", "waiting", "completed", "failed", "cancelled", "interrupted"]
"""Where a run stands: ``waiting`` means on a person's decision; ``interrupted`` means its
process died without a terminal event."""

RuleScope = Literal["workspace", "always"]
"""How far a saved approval rule reaches."""

RuleDecision = Literal["allow", "deny"]
"""What a rule decides."""

_RUN_STATUSES: Final = frozenset(
    {"running", "waiting", "completed", "failed", "cancelled", "interrupted"}
)
_LIVE_STATUSES: Final = ("running", "waiting")
_TITLE_MAX: Final = 80
_MAX_BATCH: Final = 8192
"""Most events committed in one transaction (bounds memory and the first caller's wait)."""

_E = TypeVar("_E", bound=EventBase)


class StoreClosedError(RuntimeError):
    """The store was closed; nothing more can be appended."""


def new_id(prefix: str, nbytes: int = 6) -> str:
    """A random id like ``s_3f9a2c1b7d0e``: the prefix, ``_``, then ``2 * nbytes`` hex digits.

    Args:
        prefix: What the id names (``s`` session, ``r`` rule, ``run`` ...).
        nbytes: Random bytes; 6 gives 12 hex digits.
    """
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def process_owner() -> str:
    """``hostname:pid`` of this process: the owner recorded on runs it starts."""
    return f"{socket.gethostname()}:{os.getpid()}"


def notify(conn: Connection, payload: Mapping[str, Any]) -> None:
    """Send a notification on :data:`NOTIFY_CHANNEL` when the transaction commits
    (PostgreSQL only; a no-op elsewhere)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text

        conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": NOTIFY_CHANNEL, "payload": json.dumps(payload, separators=(",", ":"))},
        )


def default_url() -> str:
    """The database URL used when none is given.

    ``$WORKBENCH_DB`` when set, else the SQLite file ``workbench.db`` in the user data
    directory (``platformdirs.user_data_dir("workbench")``), which is created.
    """
    from_env = os.environ.get(DB_ENV_VAR, "").strip()
    if from_env:
        return from_env
    folder = Path(platformdirs.user_data_dir("workbench", appauthor=False))
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'workbench.db'}"


def store_url(url: str | None = None) -> str:
    """The database URL a store opens: ``url`` when given, else :func:`default_url`; a
    SQLite path under ``~`` with the home folder written out (see :func:`._db.home_expanded`)."""
    return home_expanded(url or default_url())


# -- value objects handed to callers ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A session as stored."""

    id: str
    """The session id."""
    title: str
    """Its title ('' until set or until its first run starts)."""
    workspace: str
    """Absolute path of its workspace ('' when unknown)."""
    created_at: float
    """Epoch seconds."""
    updated_at: float
    """Epoch seconds of its last event or change."""
    last_seq: int
    """The seq of its last event (0 when it has none)."""
    run_count: int = 0
    """How many runs it has, children included."""
    forked_from: str | None = None
    """The session it was forked from, if it is a fork."""
    forked_from_seq: int | None = None
    """The seq in ``forked_from`` it was forked at."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as derived from its events."""

    id: str
    """The run id."""
    session_id: str
    """Its session."""
    parent_run_id: str | None
    """The run that started it, for team member and workflow step runs."""
    target_kind: str
    """``agent``, ``team`` or ``workflow``."""
    target: str
    """The name of what runs."""
    input: str
    """The prompt or task."""
    status: RunStatus
    """Where it stands."""
    output: str | None
    """The final answer, once completed."""
    error: str | None
    """Why it failed."""
    owner: str
    """``hostname:pid`` of the process that runs or last ran it."""
    created_at: float
    """Epoch seconds of its ``run.started``."""
    updated_at: float
    """Epoch seconds of its last status change."""
    prompt_tokens: int
    """Prompt tokens over the run, known once it ended."""
    completion_tokens: int
    """Completion tokens over the run, known once it ended."""
    cost: float | None
    """Cost in USD, when known."""

    @property
    def usage(self) -> Usage:
        """The token counts as a :class:`~workbench.events.Usage`."""
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens)

    @property
    def live(self) -> bool:
        """True while running or waiting on a decision."""
        return self.status in _LIVE_STATUSES


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """A saved approval rule."""

    id: str
    """Short id like ``r_3f9a2c``; ``decided_by`` says ``rule:<id>``."""
    scope: RuleScope
    """``workspace`` or ``always``."""
    workspace: str
    """The workspace it was saved in."""
    tool: str
    """Glob on the tool's workspace name."""
    pattern: str | None
    """Glob on the argument; None matches any."""
    decision: RuleDecision
    """``allow`` or ``deny``."""
    created_at: float
    """Epoch seconds."""
    note: str | None
    """Why it exists."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What :meth:`Store.claim_run` found: the run is this process's now, or why not."""

    won: bool
    """True when the run is this process's to run now."""
    reason: Literal["claimed", "missing", "ended", "child", "alive", "mine"]
    """``claimed``; or the run does not exist, already ended, is part of another run,
    is alive in another process, or is already this process's."""
    run: RunInfo | None
    """The run as it stands after the attempt."""
    holder: ProcessInfo | None = None
    """For ``alive``: the process that runs it (None when it holds no lease row)."""
    now: float = 0.0
    """The database's clock at the claim."""

    def explain(self) -> str:
        """A sentence for people."""
        run_id = self.run.id if self.run is not None else "?"
        match self.reason:
            case "claimed":
                return f"run {run_id} is this process's now"
            case "missing":
                return "no such run"
            case "ended":
                status = self.run.status if self.run is not None else "ended"
                return f"run {run_id} already {status}; nothing to resume"
            case "child":
                parent = self.run.parent_run_id if self.run is not None else "?"
                return f"run {run_id} is part of run {parent}"
            case "mine":
                return f"run {run_id} is running in this process"
        where = (
            self.holder.describe(self.now) if self.holder else (self.run.owner if self.run else "")
        )
        return f"run {run_id} is alive in another process: {where}"


SNIPPET_START: Final = "\ue000"
"""Marks the start of a matched term in :attr:`SearchHit.snippet` (a private-use character)."""
SNIPPET_END: Final = "\ue001"
"""Marks the end of a matched term in :attr:`SearchHit.snippet`."""


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A session whose messages or tool calls match a full-text search."""

    session_id: str
    """The session."""
    title: str
    """Its title."""
    workspace: str
    """Its workspace folder."""
    updated_at: float
    """Epoch seconds of its last event: hits come newest first."""
    seq: int
    """The first matching event."""
    type: str
    """That event's type (``message.completed``, ``tool.call`` or ``tool.result``)."""
    snippet: str
    """A short excerpt of that event around the match; matched terms sit between
    :data:`SNIPPET_START` and :data:`SNIPPET_END`."""
    matches: int
    """How many of the session's events match."""

    def parts(self) -> list[tuple[str, bool]]:
        """The snippet as ``(text, matched)`` pieces, for highlighting."""
        out: list[tuple[str, bool]] = []
        rest = self.snippet
        while rest:
            start = rest.find(SNIPPET_START)
            if start < 0:
                out.append((rest, False))
                break
            end = rest.find(SNIPPET_END, start)
            if end < 0:
                end = len(rest)
            if start:
                out.append((rest[:start], False))
            out.append((rest[start + 1 : end], True))
            rest = rest[end + 1 :]
        return [(t, m) for t, m in out if t]

    @property
    def text(self) -> str:
        """The snippet without its markers."""
        return self.snippet.replace(SNIPPET_START, "").replace(SNIPPET_END, "")
