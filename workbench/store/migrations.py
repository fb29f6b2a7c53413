"""Ordered, versioned schema migrations, from the very first schema on.

Each :class:`Migration` is applied once, in version order, in its own transaction, and
recorded in ``schema_version``. A step describes its tables with SQLAlchemy Core as they
were *at that version* (frozen here, not imported from :mod:`workbench.store.schema`), so
replaying the history on an empty database always gives the same result however the models
change later. A test checks that the end of the history matches the models.

Concurrent openers are safe: on PostgreSQL each step takes a transaction-level advisory
lock, on SQLite the step's transaction starts with ``BEGIN IMMEDIATE`` (see
:func:`workbench.store.store.create_engine_for`); both re-read the version under the lock
and skip what another process applied meanwhile. DDL is transactional on both, so a step
that fails leaves nothing behind.

To change the schema: change the model in ``schema.py``, then append a step here with the
next version, using ``op``-style Core statements (``ALTER TABLE ... ADD COLUMN`` with a
``server_default`` for NOT NULL columns, new ``Index(...).create(conn)``, ...).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine, Table

# SQLAlchemy is imported by the steps and by migrate(), not with this module: a store whose
# schema is current learns so by plain SQL (sqlite_schema_version) and needs none.

__all__ = [
    "MIGRATIONS",
    "PG_SEARCH_PREDICATE",
    "PG_SEARCH_VECTOR",
    "SEARCHED_TYPES",
    "Migration",
    "SchemaTooNewError",
    "current_version",
    "latest_version",
    "migrate",
    "sqlite_schema_version",
]

_PG_LOCK_KEY = 0x776F726B62656E63  # "workbenc": one advisory lock for all migrations
"""Key of the PostgreSQL advisory lock held while a step is applied."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step."""

    version: int
    """Its place in the history, from 1, without gaps."""
    description: str
    """What it does, recorded in ``schema_version``."""
    apply: Callable[[Connection], None]
    """Runs the step's DDL and data changes on a connection inside a transaction."""


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer workbench than this one."""


# -- the schema version table: never changes, so it is defined once ---------------------


@functools.cache
def _schema_version() -> Table:
    from sqlalchemy import Column, Float, Integer, MetaData, String, Table

    return Table(
        "schema_version",
        MetaData(),
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("description", String, nullable=False),
        Column("applied_at", Float, nullable=False),
    )


# -- version 1 ---------------------------------------------------------------------------


def _v1_create_tables(conn: Connection) -> None:
    """The first schema: sessions, runs, events, approval rules, knowledge sources."""
    from sqlalchemy import (
        BigInteger,
        Column,
        Float,
        ForeignKey,
        Index,
        Integer,
        MetaData,
        String,
        Table,
        Text,
        UniqueConstraint,
    )

    md = MetaData()
    Table(
        "sessions",
        md,
        Column("id", String, primary_key=True),
        Column("title", String, nullable=False),
        Column("workspace", String, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
        Column("last_seq", Integer, nullable=False),
    )
    Table(
        "runs",
        md,
        Column("id", String, primary_key=True),
        Column(
            "session_id",
            String,
            ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("parent_run_id", String, nullable=True),
        Column("target_kind", String, nullable=False),
        Column("target", String, nullable=False),
        Column("input", Text, nullable=False),
        Column("status", String, nullable=False),
        Column("output", Text, nullable=True),
        Column("error", Text, nullable=True),
        Column("owner", String, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
        Column("prompt_tokens", Integer, nullable=False),
        Column("completion_tokens", Integer, nullable=False),
        Column("cost", Float, nullable=True),
        Index("ix_runs_session_id", "session_id"),
        Index("ix_runs_status", "status"),
    )
    Table(
        "events",
        md,
        Column(
            "id",
            BigInteger().with_variant(Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        Column(
            "session_id",
            String,
            ForeignKey("sessions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        Column("seq", Integer, nullable=False),
        Column("run_id", String, nullable=False),
        Column("type", String, nullable=False),
        Column("ts", Float, nullable=False),
        Column("data", Text, nullable=False),
        UniqueConstraint("session_id", "seq", name="uq_events_session_seq"),
        Index("ix_events_run_id", "run_id"),
    )
    Table(
        "approval_rules",
        md,
        Column("id", String, primary_key=True),
        Column("scope", String, nullable=False),
        Column("workspace", String, nullable=False),
        Column("tool", String, nullable=False),
        Column("pattern", String, nullable=True),
        Column("decision", String, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("note", String, nullable=True),
        Index("ix_approval_rules_workspace", "workspace"),
    )
    Table(
        "knowledge_sources",
        md,
        Column("id", String, primary_key=True),
        Column("workspace", String, nullable=False),
        Column("name", String, nullable=False),
        Column("path", String, nullable=False),
        Column("sha256", String, nullable=False),
        Column("chunks", Integer, nullable=False),
        Column("updated_at", Float, nullable=False),
        UniqueConstraint("workspace", "name", "path", name="uq_knowledge_sources_file"),
    )
    md.create_all(conn, checkfirst=False)


# -- version 2 ---------------------------------------------------------------------------


def _v2_control_requests(conn: Connection) -> None:
    """Requests between server processes sharing the database (see workbench.server._control):
    cancel a run, decide a pending tool call. The process that runs the run takes them up."""
    from sqlalchemy import Column, Float, Index, MetaData, String, Table, Text

    md = MetaData()
    Table(
        "control_requests",
        md,
        Column("id", String, primary_key=True),
        Column("kind", String, nullable=False),
        Column("run_id", String, nullable=False),
        Column("call_id", String, nullable=True),
        Column("payload", Text, nullable=True),
        Column("created_at", Float, nullable=False),
        Column("requested_by", String, nullable=False),
        Column("handled_at", Float, nullable=True),
        Column("handled_by", String, nullable=True),
        Index("ix_control_requests_handled_at", "handled_at"),
    )
    md.create_all(conn, checkfirst=False)


# -- version 3 ---------------------------------------------------------------------------

SEARCHED_TYPES: tuple[str, ...] = ("message.completed", "tool.call", "tool.result")
"""Event types whose text full-text search covers (frozen with version 3)."""

_V3_SQLITE = (
    # The searchable text of an event, kept by triggers (so every writer, and an import,
    # keeps it in sync). rowid is events.id: a search reads the session and seq from the
    # events table by its primary key (cheaper than unindexed FTS columns).
    "CREATE VIRTUAL TABLE events_fts USING fts5(body, "
    "tokenize = 'porter unicode61 remove_diacritics 2')",
    """CREATE TRIGGER events_fts_insert AFTER INSERT ON events
    WHEN new.type IN ('message.completed', 'tool.call', 'tool.result')
    BEGIN
        INSERT INTO events_fts (rowid, body) VALUES (new.id, {body});
    END""",
    """CREATE TRIGGER events_fts_delete AFTER DELETE ON events
    WHEN old.type IN ('message.completed', 'tool.call', 'tool.result')
    BEGIN
        DELETE FROM events_fts WHERE rowid = old.id;
    END""",
    "INSERT INTO events_fts (rowid, body) SELECT id, {body_events} FROM events "
    "WHERE type IN ('message.completed', 'tool.call', 'tool.result')",
)


def _sqlite_body(row: str) -> str:
    """The SQL (JSON1) expression of an event's searchable text."""

    def field(name: str) -> str:
        # (SQLite's json_extract stops at a NUL inside a string: such text is searchable
        # up to it. The event itself is untouched.)
        return f"coalesce(json_extract({row}.data, '$.{name}'), '')"

    return (
        f"CASE {row}.type WHEN 'message.completed' THEN {field('content')} "
        f"WHEN 'tool.call' THEN {field('tool')} || ' ' || {field('arguments')} "
        f"ELSE {field('tool')} || ' ' || {field('output')} || ' ' || {field('error')} END"
    )


_V3_PG_FUNCTION = r"""
CREATE FUNCTION workbench_event_text(event_type text, data text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    doc jsonb;
    body text;
BEGIN
    IF event_type NOT IN ('message.completed', 'tool.call', 'tool.result') THEN
        RETURN NULL;
    END IF;
    IF position('\u0000' in data) = 0 THEN
        doc := data::jsonb;
    ELSE
        -- jsonb cannot hold NUL: drop the escapes; text that still does not parse is
        -- indexed raw (search text only, the event itself is untouched).
        BEGIN
            doc := replace(data, '\u0000', '')::jsonb;
        EXCEPTION WHEN others THEN
            RETURN data;
        END;
    END IF;
    IF event_type = 'message.completed' THEN
        body := coalesce(doc ->> 'content', '');
    ELSIF event_type = 'tool.call' THEN
        body := coalesce(doc ->> 'tool', '') || ' ' || coalesce(doc ->> 'arguments', '');
    ELSE
        body := coalesce(doc ->> 'tool', '') || ' ' || coalesce(doc ->> 'output', '') || ' '
            || coalesce(doc ->> 'error', '');
    END IF;
    -- PostgreSQL's parser keeps files.read, notes/a.txt, word_count as one token each;
    -- split them into words, as SQLite's unicode61 tokenizer does.
    RETURN regexp_replace(body, '([[:alnum:]])[/._:@-]+(?=[[:alnum:]])', '\1 ', 'g');
END
$$
"""

PG_SEARCH_VECTOR = "to_tsvector('english'::regconfig, workbench_event_text(type, data))"
"""The indexed expression on PostgreSQL; a query must spell it exactly so to use the index."""

PG_SEARCH_PREDICATE = "type IN ('message.completed', 'tool.call', 'tool.result')"
"""The partial index's predicate; a query must include it."""


def _v3_fork_search_retention(conn: Connection) -> None:
    """Forks remember their origin; sessions list and prune by ``updated_at`` through an
    index; full-text search over messages and tool calls (FTS5 on SQLite, a GIN
    ``tsvector`` expression index on PostgreSQL)."""
    from sqlalchemy import Column, Float, Index, MetaData, Table, text

    conn.execute(text("ALTER TABLE sessions ADD COLUMN forked_from VARCHAR"))
    conn.execute(text("ALTER TABLE sessions ADD COLUMN forked_from_seq INTEGER"))
    md = MetaData()
    sessions = Table("sessions", md, Column("updated_at", Float, nullable=False))
    Index("ix_sessions_updated_at", sessions.c.updated_at).create(conn)
    if conn.dialect.name == "sqlite":
        body = _sqlite_body("new")
        for statement in _V3_SQLITE:
            conn.exec_driver_sql(statement.format(body=body, body_events=_sqlite_body("events")))
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(_V3_PG_FUNCTION)
        conn.exec_driver_sql(
            f"CREATE INDEX ix_events_search ON events USING gin (({PG_SEARCH_VECTOR})) "
            f"WHERE {PG_SEARCH_PREDICATE}"
        )


# -- version 4 ---------------------------------------------------------------------------


def _v4_processes(conn: Connection) -> None:
    """Leases: each process that runs anything registers itself and renews a heartbeat;
    a run belongs to a live process or to nobody (see workbench.store.leases)."""
    from sqlalchemy import Column, Float, Integer, MetaData, String, Table

    md = MetaData()
    Table(
        "processes",
        md,
        Column("id", String, primary_key=True),
        Column("kind", String, nullable=False),
        Column("host", String, nullable=False),
        Column("pid", Integer, nullable=False),
        Column("workspace", String, nullable=False),
        Column("started_at", Float, nullable=False),
        Column("heartbeat_at", Float, nullable=False),
        Column("lease_s", Float, nullable=False),
    )
    md.create_all(conn, checkfirst=False)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1, "create sessions, runs, events, approval_rules, knowledge_sources", _v1_create_tables
    ),
    Migration(
        2, "create control_requests (cancel and decide across processes)", _v2_control_requests
    ),
    Migration(
        3,
        "fork origin, sessions by updated_at, full-text search over events",
        _v3_fork_search_retention,
    ),
    Migration(4, "create processes (leases: who runs what)", _v4_processes),
)
"""The whole history, in order."""


def latest_version() -> int:
    """The version a fully migrated database has."""
    return MIGRATIONS[-1].version


def current_version(conn: Connection) -> int:
    """The highest applied version (0 for an empty database)."""
    from sqlalchemy import func, select

    if not conn.dialect.has_table(conn, "schema_version"):
        return 0
    found = conn.execute(select(func.max(_schema_version().c.version))).scalar()
    return int(found or 0)


def sqlite_schema_version(cursor: Any) -> int:
    """:func:`current_version` of a SQLite database in plain SQL, on a DB-API cursor: a
    store opening a file learns whether it needs migrating without SQLAlchemy."""
    cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
    if cursor.fetchone() is None:
        return 0
    cursor.execute("SELECT max(version) FROM schema_version")
    row = cursor.fetchone()
    return int(row[0] or 0) if row is not None else 0


def _lock(conn: Connection) -> None:
    """Serialise migrating processes (SQLite's ``BEGIN IMMEDIATE`` already does)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy import text

        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def migrate(engine: Engine) -> list[int]:
    """Apply the missing migration steps in order.

    Each step runs in its own transaction together with its ``schema_version`` row, so the
    database is always at some recorded version. Safe to call on every open and from
    several processes at once.

    Args:
        engine: The database. For SQLite it must come from
            :func:`~workbench.store.store.create_engine_for` (or issue ``BEGIN`` itself),
            since pysqlite's own transaction handling would autocommit DDL.

    Returns:
        The versions applied by this call (empty when already up to date).

    Raises:
        SchemaTooNewError: The database is at a version this code does not know.
    """
    from sqlalchemy import insert

    _check_history()
    applied: list[int] = []
    with engine.connect() as conn:
        with conn.begin():  # the common case, up to date, takes no write lock
            if current_version(conn) == latest_version():
                return applied
        conn = conn.execution_options(workbench_immediate=True)
        for step in MIGRATIONS:
            with conn.begin():
                _lock(conn)
                _schema_version().create(conn, checkfirst=True)
                version = current_version(conn)
                if version > latest_version():
                    raise SchemaTooNewError(
                        f"the database is at schema version {version}, newer than this "
                        f"workbench knows ({latest_version()}): upgrade workbench"
                    )
                if step.version <= version:
                    continue
                step.apply(conn)
                conn.execute(
                    insert(_schema_version()).values(
                        version=step.version,
                        description=step.description,
                        applied_at=time.time(),
                    )
                )
                applied.append(step.version)
    return applied


def _check_history() -> None:
    """The steps must be numbered 1, 2, 3, ... (a mistake here would corrupt databases)."""
    versions = [m.version for m in MIGRATIONS]
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migration versions must be 1..n without gaps, got {versions}")
