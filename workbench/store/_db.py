"""Where the store's DB-API connections come from, and the SQL it runs on them.

The usual store is a SQLite file whose schema is current: it needs nothing but
:mod:`sqlite3` (the writer runs plain SQL on a raw cursor), and importing SQLAlchemy costs
≈ 150 ms of every start-up (``workbench run``, the TUI's first answer). So a SQLite file
is a :class:`SqliteFile`: plain :mod:`sqlite3` connections, with SQLAlchemy's engine made
from the same URL only when something asks for it (typed reads, search, migrations).
Every other database (PostgreSQL, in-memory SQLite, a URL with options) is an
:class:`SaDatabase` over a SQLAlchemy engine, as before.

Both give the same pragmas (:func:`sqlite_pragmas`, also run by the engine's ``connect``
listener), the same transactions (``BEGIN IMMEDIATE`` to write, ``BEGIN`` to read,
:meth:`Database.transaction`) and statements in the driver's parameter style
(:class:`Sql`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.engine.interfaces import Dialect

__all__ = [
    "Database",
    "SaDatabase",
    "Sql",
    "SqliteFile",
    "check_sqlite_version",
    "discard",
    "home_expanded",
    "make_parent",
    "sqlite_file",
    "sqlite_pragmas",
    "sqlite_url_path",
]

_SQLITE_PREFIXES: Final = ("sqlite:///", "sqlite+pysqlite:///")
_UNUSUAL: Final = frozenset("?#%@:~\\")
"""Characters that make a SQLite URL's path more than a plain path (a query string, an
escape, a URI, a home folder...): such a URL is left to SQLAlchemy to parse."""

_IDLE_MAX: Final = 5
"""Idle connections a :class:`SqliteFile` keeps (SQLAlchemy's pool keeps 5 too)."""


def home_expanded(url: str) -> str:
    """A SQLite URL whose path starts with ``~`` (``sqlite:///~/work/wb.db``), with the home
    folder written out, as a person means it; any other URL as it is. (SQLAlchemy takes the
    ``~`` literally and makes a folder named ``~`` in the working directory.)"""
    for prefix in _SQLITE_PREFIXES:
        if url.startswith(prefix) and url[len(prefix) :].startswith("~"):
            return prefix + os.path.expanduser(url[len(prefix) :])
    return url


def sqlite_url_path(url: str) -> str | None:
    """The path of a plain SQLite file URL (``sqlite:///rel/path``,
    ``sqlite:////abs/path``) as written, or None for anything else: another database, an
    in-memory one, a query string, an escaped or otherwise unusual path. None means
    "let SQLAlchemy parse it", never "not SQLite"."""
    for prefix in _SQLITE_PREFIXES:
        if url.startswith(prefix):
            path = url[len(prefix) :]
            break
    else:
        return None
    if not path or path.startswith("file:") or any(c in _UNUSUAL for c in path):
        return None
    return path


def sqlite_file(url: str) -> str | None:
    """The file a plain SQLite file URL opens (see :func:`sqlite_url_path`): absolute, as
    SQLAlchemy's pysqlite dialect makes it (relative to the working directory at open)."""
    path = sqlite_url_path(url)
    return None if path is None else os.path.abspath(path)


def check_sqlite_version() -> None:
    """Refuse a SQLite library older than the store's SQL needs.

    Raises:
        RuntimeError: Older than 3.35 (no ``UPDATE ... RETURNING``).
    """
    if sqlite3.sqlite_version_info < (3, 35, 0):
        raise RuntimeError(
            f"SQLite {sqlite3.sqlite_version} is too old: the store needs 3.35 or newer "
            "(UPDATE ... RETURNING)"
        )


def make_parent(database: str) -> None:
    """Create the folder of a SQLite file (SQLite creates the file, not its folder)."""
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)


def sqlite_pragmas(dbapi_connection: Any) -> None:
    """Set up a new SQLite connection the way the store needs it: every connection, raw
    or SQLAlchemy's (its ``connect`` listener calls this)."""
    # Take transaction control away from pysqlite (which would not BEGIN before DDL and so
    # autocommit it): the store issues BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout = 10000")
        cursor.execute("PRAGMA journal_mode = WAL")
        # In WAL mode NORMAL syncs at checkpoints only: a commit survives a killed process
        # (it is in the WAL file) though not a power cut. That is the durability promised.
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def discard(conn: Any, *, invalidate: bool) -> None:
    """Close a connection from :meth:`Database.connect`; with ``invalidate``, one that
    may be broken (a pool's is then not given out again)."""
    with contextlib.suppress(Exception):
        if invalidate and hasattr(conn, "invalidate"):
            conn.invalidate()
        else:
            conn.close()


class Sql:
    """A statement written with ``:name`` parameters, in its driver's style.

    On plain :mod:`sqlite3` it stays as written (sqlite3 takes ``:name`` with a dict); for
    a SQLAlchemy dialect it is compiled once (``%(name)s`` for psycopg, ``?`` and a tuple
    for SQLAlchemy's pysqlite).
    """

    __slots__ = ("keys", "sql")

    def __init__(self, sql: str, dialect: Dialect | None = None) -> None:
        self.keys: tuple[str, ...] | None = None
        """The parameters' order when the style is positional, else None (a dict)."""
        if dialect is None:
            self.sql: str = sql
            return
        from sqlalchemy import text

        compiled = text(sql).compile(dialect=dialect)
        self.sql = str(compiled)
        if compiled.positiontup is not None:
            self.keys = tuple(compiled.positiontup)

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        """The parameters in the driver's style (a tuple for ``?``, else the dict)."""
        if self.keys is None:
            return values
        return tuple(values[k] for k in self.keys)

    def run(self, cursor: Any, **values: Any) -> None:
        """Execute on a DB-API cursor."""
        cursor.execute(self.sql, self.params(values))


def in_list(name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """``(:name_0, :name_1, ...)`` for ``IN``, and its parameters (``values`` not empty)."""
    keys = [f"{name}_{i}" for i in range(len(values))]
    return "(" + ", ".join(f":{k}" for k in keys) + ")", dict(zip(keys, values, strict=True))


class Database:
    """The store's database: DB-API connections, statements in their style, and the
    SQLAlchemy engine for the code written with SQLAlchemy."""

    dialect: str
    """``sqlite`` or ``postgresql`` (SQLAlchemy's dialect name)."""
    memory: bool
    """An in-memory SQLite database: one connection, shared."""
    url: str
    """The URL, password hidden."""
    dbapi: Any
    """The DB-API module (its ``IntegrityError``...)."""

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine."""
        raise NotImplementedError

    def connect(self) -> Any:
        """A DB-API connection of the caller's own (the writer's, the checkpointer's);
        give it back with :func:`discard`."""
        raise NotImplementedError

    def connection(self) -> contextlib.AbstractContextManager[Any]:
        """A DB-API connection for one piece of work (pooled)."""
        raise NotImplementedError

    _statements: dict[str, Sql]

    def sql(self, sql: str) -> Sql:
        """A statement with ``:name`` parameters in this database's style (made once)."""
        found = self._statements.get(sql)
        if found is None:
            if len(self._statements) >= 256:  # IN lists of many lengths: keep it bounded
                self._statements.clear()
            found = self._statements[sql] = self._compile(sql)
        return found

    def _compile(self, sql: str) -> Sql:
        raise NotImplementedError

    def dispose(self) -> None:
        """Close every connection (the writer's and the checkpointer's are their own)."""
        raise NotImplementedError

    @contextlib.contextmanager
    def transaction(
        self, lock: contextlib.AbstractContextManager[Any], *, write: bool
    ) -> Iterator[Any]:
        """A cursor in a transaction: committed at the end if ``write``, else rolled back.

        On SQLite a write transaction begins ``IMMEDIATE``: a deferred one that reads,
        then writes, gets SQLITE_BUSY at once (no busy_timeout) if another writer
        committed in between. ``lock`` is held throughout (the store's, for a shared
        in-memory connection).
        """
        with lock, self.connection() as conn:
            cursor = conn.cursor()
            try:
                if self.dialect == "sqlite":
                    cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield cursor
                if write:
                    conn.commit()
                else:
                    conn.rollback()
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.rollback()
                raise
            finally:
                with contextlib.suppress(Exception):
                    cursor.close()


class SqliteFile(Database):
    """A SQLite file through plain :mod:`sqlite3`; SQLAlchemy only when asked for.

    Args:
        path: The file (absolute), from :func:`sqlite_file`.
        url: Its URL, for messages.
    """

    dialect = "sqlite"
    memory = False
    dbapi = sqlite3

    def __init__(self, path: str, url: str) -> None:
        check_sqlite_version()
        make_parent(path)
        self.path = path
        """The file."""
        self.url = url
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()  # not the pool's: making it imports SQLAlchemy
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []
        self._closed = False
        self._statements = {}

    @property
    def engine(self) -> Engine:
        """SQLAlchemy's engine for this file, made on first use (and SQLAlchemy imported)."""
        with self._engine_lock:
            if self._engine is None:
                from sqlalchemy.engine import URL

                from .connection import create_engine_for

                # The file this store opened, not the URL parsed again: the same file
                # whatever the working directory is by now.
                self._engine = create_engine_for(URL.create("sqlite", database=self.path))
            return self._engine

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False)
        try:
            sqlite_pragmas(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self.connect()
        keep = False
        try:
            yield conn
            keep = not conn.in_transaction
        finally:
            with self._lock:
                keep = keep and not self._closed and len(self._idle) < _IDLE_MAX
                if keep:
                    self._idle.append(conn)
            if not keep:
                discard(conn, invalidate=True)

    def _compile(self, sql: str) -> Sql:
        return Sql(sql)

    def schema_version(self) -> int:
        """The highest migration applied, in plain SQL (0 for an empty database): what
        :func:`~workbench.store.migrations.current_version` says, without SQLAlchemy."""
        from .migrations import sqlite_schema_version

        with self.transaction(contextlib.nullcontext(), write=False) as cursor:
            return sqlite_schema_version(cursor)

    def dispose(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        with self._engine_lock:
            engine, self._engine = self._engine, None
        for conn in idle:
            discard(conn, invalidate=False)
        if engine is not None:
            engine.dispose()


class SaDatabase(Database):
    """Any database through a SQLAlchemy engine (PostgreSQL, in-memory SQLite, a SQLite
    URL with options, the read-only fallback)."""

    def __init__(self, engine: Engine) -> None:
        from .connection import _is_sqlite_memory

        self._engine = engine
        self.dialect = engine.dialect.name
        self.memory = self.dialect == "sqlite" and _is_sqlite_memory(engine.url)
        self.url = engine.url.render_as_string(hide_password=True)
        self.dbapi = engine.dialect.loaded_dbapi
        self._statements = {}

    @property
    def engine(self) -> Engine:
        return self._engine

    def connect(self) -> Any:
        return self._engine.raw_connection()

    @contextlib.contextmanager
    def connection(self) -> Iterator[Any]:
        conn = self._engine.raw_connection()
        try:
            yield conn
        finally:
            conn.close()  # back to the pool, which rolls back what is left open

    def _compile(self, sql: str) -> Sql:
        return Sql(sql, self._engine.dialect)

    def dispose(self) -> None:
        self._engine.dispose()
