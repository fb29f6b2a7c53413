"""The tables of the store, as sqlmodel classes.

These classes describe the *current* schema. The database gets there through the ordered
steps in :mod:`workbench.store.migrations`, never through ``metadata.create_all``; a test
checks that a freshly migrated database matches these classes. Changing a table here
therefore means adding a migration step.

Types are portable between SQLite and PostgreSQL: text as ``VARCHAR``/``TEXT``, times as
double-precision epoch seconds, the event id as ``BIGINT`` (``INTEGER`` on SQLite, where
only that spelling makes it an alias of the rowid and so autoincrementing).

Callers outside the store get frozen value objects (``SessionInfo``, ``RunInfo``,
``RuleInfo``), never these rows.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

__all__ = [
    "ControlRequestRow",
    "EventRow",
    "KnowledgeSourceRow",
    "ProcessRow",
    "RuleRow",
    "RunRow",
    "SchemaVersionRow",
    "SessionRow",
    "TABLE_NAMES",
]

_EVENT_ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")
"""``BIGINT`` everywhere but SQLite, where ``INTEGER PRIMARY KEY`` is the rowid."""


class SessionRow(SQLModel, table=True):
    """One session: the ordered log of events of one conversation or task."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_updated_at", "updated_at"),)

    id: str = Field(primary_key=True)
    """``s_`` plus 12 hex digits, or whatever id the engine chose."""
    title: str = ""
    """Shown in the session browser; the first run's input unless set."""
    workspace: str = ""
    """Absolute path of the workspace folder ('' when unknown)."""
    created_at: float
    """Epoch seconds."""
    updated_at: float
    """Epoch seconds of the last event or change."""
    last_seq: int = 0
    """The highest ``seq`` given out in this session: the per-session counter."""
    forked_from: str | None = None
    """The session this one was forked from (schema version 3)."""
    forked_from_seq: int | None = None
    """The seq of the event in ``forked_from`` the fork was taken at."""


class RunRow(SQLModel, table=True):
    """One run (agent, team or workflow), maintained from the events the store appends."""

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_session_id", "session_id"),
        Index("ix_runs_status", "status"),
    )

    id: str = Field(primary_key=True)
    """The run id of its events."""
    session_id: str = Field(foreign_key="sessions.id", ondelete="CASCADE")
    """The session it belongs to."""
    parent_run_id: str | None = None
    """The run that started it (team member and workflow step runs)."""
    target_kind: str
    """``agent``, ``team`` or ``workflow``."""
    target: str
    """The name of what runs."""
    input: str = Field(sa_type=Text)
    """The prompt or task."""
    status: str
    """``running``, ``waiting``, ``completed``, ``failed``, ``cancelled`` or ``interrupted``."""
    output: str | None = Field(default=None, sa_type=Text)
    """The final answer of a completed run."""
    error: str | None = Field(default=None, sa_type=Text)
    """Why a failed run failed."""
    owner: str
    """``hostname:pid`` of the process that runs (or last ran) it."""
    created_at: float
    """Epoch seconds of its ``run.started``."""
    updated_at: float
    """Epoch seconds of its last status change."""
    prompt_tokens: int = 0
    """Prompt tokens over the run, from its terminal event."""
    completion_tokens: int = 0
    """Completion tokens over the run, from its terminal event."""
    cost: float | None = None
    """Cost in USD when known."""


class EventRow(SQLModel, table=True):
    """One event of a session's log: append-only.

    Full-text search over its text (schema version 3) lives beside it, not in these
    columns: on SQLite the FTS5 table ``events_fts`` kept by triggers, on PostgreSQL the
    GIN expression index ``ix_events_search`` (see :mod:`workbench.store.migrations`).
    """

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("session_id", "seq", name="uq_events_session_seq"),
        Index("ix_events_run_id", "run_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=_EVENT_ID_TYPE)
    """Autoincrementing; ``seq`` is what orders a session."""
    session_id: str = Field(foreign_key="sessions.id", ondelete="CASCADE")
    """The session."""
    seq: int
    """Gap-free from 1 within the session."""
    run_id: str
    """The run that emitted it ('' for none)."""
    type: str
    """The event type, e.g. ``message.delta``."""
    ts: float
    """The event's own timestamp."""
    data: str = Field(sa_type=Text)
    """The whole event as JSON (``dump_event``), ``seq`` included."""


class RuleRow(SQLModel, table=True):
    """A saved approval rule."""

    __tablename__ = "approval_rules"
    __table_args__ = (Index("ix_approval_rules_workspace", "workspace"),)

    id: str = Field(primary_key=True)
    """Short, like ``r_3f9a2c``."""
    scope: str
    """``workspace`` (this workspace only) or ``always`` (every workspace)."""
    workspace: str
    """The workspace it was saved in."""
    tool: str
    """Glob on the tool's workspace name (``files.*``)."""
    pattern: str | None = None
    """Glob on the argument (a shell command part, a path); None matches any."""
    decision: str
    """``allow`` or ``deny``."""
    created_at: float
    """Epoch seconds."""
    note: str | None = None
    """Why the rule exists, as a person wrote it."""


class KnowledgeSourceRow(SQLModel, table=True):
    """One indexed file of a knowledge source (its chunks live in LanceDB)."""

    __tablename__ = "knowledge_sources"
    __table_args__ = (
        UniqueConstraint("workspace", "name", "path", name="uq_knowledge_sources_file"),
    )

    id: str = Field(primary_key=True)
    """An id chosen by the knowledge module."""
    workspace: str
    """The workspace folder."""
    name: str
    """The source's name under ``knowledge:`` in workbench.yaml."""
    path: str
    """The indexed file."""
    sha256: str
    """Hex digest of the file as indexed; a change means re-index."""
    chunks: int = 0
    """How many chunks it gave."""
    updated_at: float
    """Epoch seconds of the last indexing."""


class ControlRequestRow(SQLModel, table=True):
    """A request from one server process to the one that runs a run (schema version 2).

    Several ``workbench serve`` processes share one database; a run lives in the process
    that started it. Another process asked to cancel it, or to decide one of its pending
    tool calls, writes a row here; the owner polls, claims the row (sets ``handled_at``)
    and acts. The outcome reaches everybody as events in the log.
    """

    __tablename__ = "control_requests"
    __table_args__ = (Index("ix_control_requests_handled_at", "handled_at"),)

    id: str = Field(primary_key=True)
    """``c_`` plus 16 hex digits."""
    kind: str
    """``cancel`` or ``approval``."""
    run_id: str
    """The run meant (the top-level run for a cancel)."""
    call_id: str | None = None
    """For an approval: the pending tool call."""
    payload: str | None = Field(default=None, sa_type=Text)
    """For an approval: the decision as JSON."""
    created_at: float
    """Epoch seconds."""
    requested_by: str
    """``hostname:pid`` of the process that wrote it."""
    handled_at: float | None = None
    """Epoch seconds when a process took it up; None while open."""
    handled_by: str | None = None
    """``hostname:pid`` of that process."""


class ProcessRow(SQLModel, table=True):
    """A process that runs runs, holding a lease (schema version 4).

    Every engine registers itself here and renews ``heartbeat_at`` every third of its
    lease. A run's ``owner`` is the id of such a row: while the row is fresh the run is
    alive there; once it is older than ``lease_s`` (by the database's clock) the process
    counts as dead and any other process marks its runs interrupted. Resume and take-over
    claim a run with one conditional update, so exactly one process wins.
    """

    __tablename__ = "processes"

    id: str = Field(primary_key=True)
    """``hostname:pid:nonce``: what runs record as their owner."""
    kind: str
    """What the process is: ``serve``, ``run``, ``tui``, ``engine``..."""
    host: str
    """Its host name."""
    pid: int
    """Its process id on that host."""
    workspace: str
    """The workspace folder it serves ('' when unknown)."""
    started_at: float
    """Epoch seconds (the database's clock) when it registered."""
    heartbeat_at: float
    """Epoch seconds (the database's clock) of its last heartbeat."""
    lease_s: float
    """Seconds without a heartbeat after which it counts as dead."""


class SchemaVersionRow(SQLModel, table=True):
    """One applied migration step."""

    __tablename__ = "schema_version"

    version: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    """The step's version number."""
    description: str
    """What the step did."""
    applied_at: float
    """Epoch seconds."""


TABLE_NAMES: tuple[str, ...] = (
    "sessions",
    "runs",
    "events",
    "approval_rules",
    "knowledge_sources",
    "control_requests",
    "processes",
    "schema_version",
)
"""Every table the store owns."""
