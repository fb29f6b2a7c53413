"""How the store connects: the SQLAlchemy engine (SQLite pragmas, PostgreSQL), and the
read and write connections every part of the store uses (raw DB-API cursors, or
SQLAlchemy's connections: see :mod:`._db` for which needs what)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ._db import Database, check_sqlite_version, make_parent, sqlite_pragmas

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from sqlalchemy.engine import URL
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry
    from sqlmodel import Session

    from ._errors import StoreError
    from .leases import Lease
    from .writer import _Checkpointer, _Pending, _Statements

# -- engine -------------------------------------------------------------------------------
# SQLAlchemy is imported here when an engine is made, not with the module: a SQLite file
# whose schema is current needs none (see ._db).


def _is_sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _sqlite_on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    sqlite_pragmas(dbapi_connection)


def _sqlite_on_begin(conn: Connection) -> None:
    # Write transactions begin IMMEDIATE: a deferred one that reads, then writes, gets
    # SQLITE_BUSY at once (no busy_timeout) if another writer committed in between.
    if conn.get_execution_options().get("workbench_immediate"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


def create_engine_for(url: str | URL) -> Engine:
    """A SQLAlchemy engine set up the way the store needs it.

    SQLite gets WAL, ``synchronous=NORMAL``, ``busy_timeout=10000`` and foreign keys on
    every connection, connections usable from any thread, explicit ``BEGIN`` (so DDL is
    transactional) and its parent directory created. An in-memory SQLite database is one
    connection shared by everyone (the store serialises access to it). Other databases get
    a pool that pings connections before use.

    Args:
        url: Any SQLAlchemy URL (``sqlite:///path``, ``postgresql+psycopg://...``).
    """
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import StaticPool

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    check_sqlite_version()
    if _is_sqlite_memory(parsed):
        engine = create_engine(
            parsed, connect_args={"check_same_thread": False}, poolclass=StaticPool
        )
    else:
        if parsed.database and not parsed.query.get("uri"):
            make_parent(parsed.database)
        engine = create_engine(parsed, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


class _StoreBase:
    """What every part of :class:`~workbench.store.Store` shares: the database, the lock of
    a shared in-memory SQLite connection, the writer's statements and queue (set by
    ``Store.__init__``), and the read and write connections: DB-API cursors
    (:meth:`_raw_read`, :meth:`_raw_write`: plain SQL, no SQLAlchemy) and SQLAlchemy
    connections (:meth:`_read`, :meth:`_write`, :meth:`_typed`: SQLAlchemy is imported on
    the first)."""

    _db: Database
    _sqlite: bool
    _db_lock: contextlib.AbstractContextManager[Any]
    _sql: _Statements
    _item_errors: tuple[type[BaseException], ...]
    _host: str
    _lease: Lease | None
    _lease_lost: list[Callable[[str], None]]
    _now_sql: str
    _cond: threading.Condition
    _queue: list[_Pending]
    _closing: bool
    _raw: Any
    _checkpointer: _Checkpointer | None
    _thread: threading.Thread
    read_only: StoreError | None
    """Why the store is open for reading only (a full disk, a read-only file), or None."""
    default_workspace: str
    """The workspace recorded for a session that its first event creates."""

    # -- reading --------------------------------------------------------------------------

    @property
    def owner(self) -> str:
        """What runs started through this store record as their owner: the lease's id
        (``hostname:pid:nonce``) once :meth:`~workbench.store.Store.hold_lease` was called. A store without a
        lease runs nothing (engines hold one): the runs it writes (an import, a fork, a
        test's) are nobody's, ``''``."""
        return self._lease.id if self._lease is not None else ""

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for modules that keep their own tables here). On a
        SQLite file it is made on first use."""
        return self._db.engine

    @contextlib.contextmanager
    def _raw_read(self) -> Iterator[Any]:
        """A DB-API cursor in a read transaction (``BEGIN`` on SQLite), rolled back after."""
        with self._db.transaction(self._db_lock, write=False) as cursor:
            yield cursor

    @contextlib.contextmanager
    def _raw_write(self) -> Iterator[Any]:
        """A DB-API cursor in a write transaction (``BEGIN IMMEDIATE`` on SQLite),
        committed at the end."""
        with self._db.transaction(self._db_lock, write=True) as cursor:
            yield cursor

    def _run(self, cursor: Any, sql: str, **params: Any) -> Any:
        """Execute plain SQL with ``:name`` parameters on a raw cursor; returns it."""
        self._db.sql(sql).run(cursor, **params)
        return cursor

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._db_lock, self.engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def _typed(self) -> Iterator[Session]:
        """A sqlmodel session over a read connection: typed reads of the derived tables
        (rows come back as :mod:`~workbench.store.schema` models). sqlmodel is imported
        here, on the first typed read, not when the store opens."""
        from sqlmodel import Session

        with self._read() as conn, Session(conn) as session:
            yield session

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._db_lock, self.engine.connect() as conn:
            conn = conn.execution_options(workbench_immediate=True)
            with conn.begin():
                yield conn
