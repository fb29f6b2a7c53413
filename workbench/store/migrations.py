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

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    insert,
    select,
    text,
)
from sqlalchemy import func as sa_func

__all__ = [
    "MIGRATIONS",
    "Migration",
    "SchemaTooNewError",
    "current_version",
    "latest_version",
    "migrate",
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

_version_metadata = MetaData()
_schema_version = Table(
    "schema_version",
    _version_metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String, nullable=False),
    Column("applied_at", Float, nullable=False),
)


# -- version 1 ---------------------------------------------------------------------------


def _v1_create_tables(conn: Connection) -> None:
    """The first schema: sessions, runs, events, approval rules, knowledge sources."""
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


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1, "create sessions, runs, events, approval_rules, knowledge_sources", _v1_create_tables
    ),
    Migration(
        2, "create control_requests (cancel and decide across processes)", _v2_control_requests
    ),
)
"""The whole history, in order."""


def latest_version() -> int:
    """The version a fully migrated database has."""
    return MIGRATIONS[-1].version


def current_version(conn: Connection) -> int:
    """The highest applied version (0 for an empty database)."""
    if not conn.dialect.has_table(conn, "schema_version"):
        return 0
    found = conn.execute(select(sa_func.max(_schema_version.c.version))).scalar()
    return int(found or 0)


def _lock(conn: Connection) -> None:
    """Serialise migrating processes (SQLite's ``BEGIN IMMEDIATE`` already does)."""
    if conn.dialect.name == "postgresql":
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
                _schema_version.create(conn, checkfirst=True)
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
                    insert(_schema_version).values(
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
