"""The store: the durable, ordered event log of every session, and what is derived from it.

One :class:`Store` per process. Events are appended as they happen through a single
writer thread that does *group commit*: every event queued while the previous transaction
was committing goes into the next one, which bumps each session's counter
(``UPDATE sessions SET last_seq = last_seq + n ... RETURNING last_seq``: a row lock that
also serialises writers in other processes on PostgreSQL), inserts the events, updates the
``runs`` rows they imply, and commits before any caller is answered. So an append that
returned survives SIGKILL, ``seq`` is gap-free per session, and ten thousand events a
second cost a few hundred transactions, not ten thousand.

Reads go through a SQLAlchemy connection pool and may be called from any thread. They see
committed data only; an append that returned is visible to every reader.

SQLite (the default, in WAL mode) and PostgreSQL are supported; the SQL is portable
between them (``ON CONFLICT``, ``RETURNING``). On PostgreSQL every commit that stores events
also sends one ``NOTIFY workbench`` naming the sessions and their new last seq, so that
other processes sharing the database learn of it at once (``LISTEN``) instead of polling.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import re
import secrets
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal, TypeVar, cast

import platformdirs
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    create_engine,
    delete,
    event,
    select,
    text,
    update,
)
from sqlalchemy import func as sa_func
from sqlalchemy.engine import URL, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection, DBAPICursor
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, StaticPool
from sqlmodel import SQLModel

from ..events import Event, EventAdapter, EventBase, RunInterrupted, Usage, dump_event
from ._errors import StoreError, sqlite_path, store_error
from .leases import Lease, ProcessInfo, lease_seconds, now_sql, owner_host_pid, pid_alive
from .migrations import current_version, latest_version, migrate
from .schema import TABLE_NAMES

__all__ = [
    "DB_ENV_VAR",
    "NOTIFY_CHANNEL",
    "Claim",
    "RuleDecision",
    "RuleInfo",
    "RuleScope",
    "RunInfo",
    "RunStatus",
    "SNIPPET_END",
    "SNIPPET_START",
    "SearchHit",
    "SessionInfo",
    "Store",
    "StoreClosedError",
    "StoreError",
    "create_engine_for",
    "default_url",
    "new_id",
    "notify",
    "process_owner",
]

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

_SEARCH_PROBE_FROM: Final = 4000
"""Matching events from which a SQLite search walks the sessions newest first instead of
grouping every match (bench/sessions.py: 2.5x faster for a word in every session)."""


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


# -- engine -------------------------------------------------------------------------------


def _is_sqlite_memory(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _sqlite_on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # Take transaction control away from pysqlite (which would not BEGIN before DDL and so
    # autocommit it); the "begin" listener below issues BEGIN itself.
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
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if sqlite3.sqlite_version_info < (3, 35, 0):
        raise RuntimeError(
            f"SQLite {sqlite3.sqlite_version} is too old: the store needs 3.35 or newer "
            "(UPDATE ... RETURNING)"
        )
    if _is_sqlite_memory(parsed):
        engine = create_engine(
            parsed, connect_args={"check_same_thread": False}, poolclass=StaticPool
        )
    else:
        if parsed.database and not parsed.query.get("uri"):
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


# -- the writer's SQL ---------------------------------------------------------------------


class _Sql:
    """A statement compiled once for the dialect, run on a raw DBAPI cursor."""

    __slots__ = ("keys", "sql")

    def __init__(self, engine: Engine, sql: str) -> None:
        compiled = text(sql).compile(dialect=engine.dialect)
        self.sql: str = str(compiled)
        self.keys: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positiontup is not None else None
        )

    def params(self, values: Mapping[str, Any]) -> Sequence[Any] | Mapping[str, Any]:
        """The parameters in the driver's style (a tuple for ``?``, a dict for ``%(x)s``)."""
        if self.keys is None:
            return values
        return tuple(values[k] for k in self.keys)

    def run(self, cursor: DBAPICursor, **values: Any) -> None:
        cursor.execute(self.sql, self.params(values))


class _Statements:
    def __init__(self, engine: Engine) -> None:
        s = _Sql
        self.bump = s(
            engine,
            "UPDATE sessions SET last_seq = last_seq + :n, updated_at = :now "
            "WHERE id = :id RETURNING last_seq",
        )
        self.new_session = s(
            engine,
            "INSERT INTO sessions (id, title, workspace, created_at, updated_at, last_seq) "
            "VALUES (:id, '', :ws, :now, :now, 0) ON CONFLICT (id) DO NOTHING",
        )
        self.insert_event = s(
            engine,
            "INSERT INTO events (session_id, seq, run_id, type, ts, data) "
            "VALUES (:session_id, :seq, :run_id, :type, :ts, :data)",
        )
        self.run_started = s(
            engine,
            "INSERT INTO runs (id, session_id, parent_run_id, target_kind, target, input, "
            "status, output, error, owner, created_at, updated_at, prompt_tokens, "
            "completion_tokens, cost) VALUES (:id, :session_id, :parent_run_id, "
            ":target_kind, :target, :input, 'running', NULL, NULL, :owner, :ts, :now, 0, 0, "
            "NULL) ON CONFLICT (id) DO UPDATE SET status = 'running', "
            "owner = excluded.owner, updated_at = excluded.updated_at",
        )
        self.title = s(engine, "UPDATE sessions SET title = :title WHERE id = :id AND title = ''")
        self.waiting = s(
            engine,
            "UPDATE runs SET status = 'waiting', updated_at = :now "
            "WHERE id = :id AND status IN ('running', 'waiting')",
        )
        # Back to running only when no other approval of the run is still pending
        # (parallel tool calls can each wait on a decision). Counted up to this event.
        self.resolved = s(
            engine,
            "UPDATE runs SET status = 'running', updated_at = :now "
            "WHERE id = :id AND status = 'waiting' AND "
            "(SELECT COUNT(*) FROM events WHERE run_id = :id "
            " AND type = 'approval.required' AND seq <= :seq) <= "
            "(SELECT COUNT(*) FROM events WHERE run_id = :id "
            " AND type = 'approval.resolved' AND seq <= :seq)",
        )
        self.completed = s(
            engine,
            "UPDATE runs SET status = 'completed', output = :output, "
            "prompt_tokens = :prompt_tokens, completion_tokens = :completion_tokens, "
            "cost = :cost, updated_at = :now WHERE id = :id",
        )
        self.failed = s(
            engine,
            "UPDATE runs SET status = 'failed', error = :error, "
            "prompt_tokens = :prompt_tokens, completion_tokens = :completion_tokens, "
            "cost = :cost, updated_at = :now WHERE id = :id",
        )
        self.notify = (
            s(engine, "SELECT pg_notify(:channel, :payload)")
            if engine.dialect.name == "postgresql"
            else None
        )
        self.cancelled = s(
            engine,
            "UPDATE runs SET status = 'cancelled', updated_at = :now WHERE id = :id",
        )
        # The saved rules are read before every tool call that the policy judges (a rule
        # removed elsewhere must stop applying at once): compiled once, run on a raw cursor.
        rule_columns = "id, scope, workspace, tool, pattern, decision, created_at, note"
        self.rules_all = s(
            engine, f"SELECT {rule_columns} FROM approval_rules ORDER BY created_at, id"
        )
        self.rules_of = s(
            engine,
            f"SELECT {rule_columns} FROM approval_rules "
            "WHERE workspace = :workspace OR scope = 'always' ORDER BY created_at, id",
        )
        self.interrupted = s(
            engine,
            "UPDATE runs SET status = 'interrupted', updated_at = :now "
            "WHERE id = :id AND status IN ('running', 'waiting')",
        )


_EVENT_COLUMNS: Final = ("session_id", "seq", "run_id", "type", "ts", "data")
"""The columns of the event insert, in its order."""

_RUN_EVENT_TYPES: Final = frozenset(
    {
        "run.started",
        "run.completed",
        "run.failed",
        "run.cancelled",
        "approval.required",
        "approval.resolved",
        "run.interrupted",
    }
)


def _clean(value: str | None) -> str | None:
    # PostgreSQL text cannot hold NUL; the runs table is an index, the event JSON (which
    # escapes it) keeps the exact text.
    return None if value is None else value.replace("\x00", "\ufffd")


def _title_from(input_text: str) -> str:
    return " ".join(input_text.split())[:_TITLE_MAX]


@dataclass(slots=True)
class _Pending:
    """One queued event (or a flush barrier when ``event`` is None) and who waits for it."""

    event: EventBase | None
    loop: asyncio.AbstractEventLoop | None = None
    afuture: asyncio.Future[EventBase] | None = None
    cfuture: concurrent.futures.Future[EventBase | None] | None = None
    callback: Callable[[EventBase | None, BaseException | None], None] | None = None
    result: EventBase | None = None
    error: BaseException | None = None


def _settle_async(items: list[_Pending]) -> None:
    for p in items:
        if p.callback is not None:
            try:
                p.callback(p.result, p.error)
            except Exception:  # a failing callback must not stop the others
                log.exception("store: append callback failed")
            continue
        fut = p.afuture
        if fut is None or fut.done():  # the caller was cancelled: the event is stored anyway
            continue
        if p.error is not None:
            fut.set_exception(p.error)
        else:
            fut.set_result(cast(EventBase, p.result))


class _Checkpointer:
    """Runs SQLite WAL checkpoints in a thread of their own.

    A checkpoint copies the WAL back into the database file and fsyncs it: tens of
    milliseconds. Left to SQLite's auto-checkpoint it runs inside whichever commit crosses
    1000 pages, i.e. on the writer thread, stalling every append queued behind it (it
    halved throughput in bench/event_log.py). So the writer's connection turns
    auto-checkpoint off and this thread checkpoints (PASSIVE: it never blocks the writer)
    at most four times a second while commits keep coming.
    """

    _DEBOUNCE_S: Final = 0.25

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="workbench-store-checkpoint", daemon=True
        )
        self._thread.start()

    def committed(self) -> None:
        """The writer committed: the WAL grew."""
        self._dirty.set()

    def stop(self) -> None:
        """Stop the thread (SQLite checkpoints when the last connection closes)."""
        self._stopping.set()
        self._dirty.set()
        self._thread.join()

    def _run(self) -> None:
        raw: PoolProxiedConnection | None = None
        try:
            while True:
                self._dirty.wait()
                if self._stopping.wait(self._DEBOUNCE_S):
                    return
                self._dirty.clear()
                try:
                    raw = raw or self._engine.raw_connection()
                    cursor = raw.cursor()
                    try:
                        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        cursor.fetchall()
                    finally:
                        cursor.close()
                except Exception:  # the next commit triggers another try
                    log.debug("store: WAL checkpoint failed", exc_info=True)
                    if raw is not None:
                        with contextlib.suppress(Exception):
                            raw.invalidate()
                    raw = None
        finally:
            if raw is not None:
                with contextlib.suppress(Exception):
                    raw.close()


# -- the store ----------------------------------------------------------------------------


class Store:
    """The event log and its derived tables. Open with :meth:`open`; close with :meth:`close`.

    Appends (:meth:`append`, :meth:`append_sync`) are serialised through one writer thread
    and return once committed. Everything else may be called from any thread.
    """

    def __init__(self, engine: Engine, *, read_only: StoreError | None = None) -> None:
        """Wrap an engine whose database is migrated. Prefer :meth:`open`.

        Args:
            engine: From :func:`create_engine_for`. The store disposes of it on close.
            read_only: Why the store could only be opened for reading (appends refuse).
        """
        self._engine = engine
        self.read_only = read_only
        """Why the store is open for reading only (a full disk, a read-only file), or None."""
        self._sqlite = engine.dialect.name == "sqlite"
        self.default_workspace = ""
        """The workspace recorded for a session that its first event creates."""
        # One shared in-memory connection: readers and the writer take turns on it.
        self._db_lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock()
            if self._sqlite and _is_sqlite_memory(engine.url)
            else contextlib.nullcontext()
        )
        self._sql = _Statements(engine)
        dbapi = engine.dialect.loaded_dbapi
        self._item_errors: tuple[type[BaseException], ...] = (
            dbapi.IntegrityError,
            dbapi.DataError,
            ValueError,
            TypeError,
        )
        self._host = socket.gethostname()
        self._lease: Lease | None = None
        self._lease_lost: list[Callable[[str], None]] = []
        self._now_sql = now_sql(engine.dialect.name)
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Pending] = []
        self._closing = False
        self._raw: PoolProxiedConnection | None = None
        self._checkpointer = (
            _Checkpointer(engine)
            if self._sqlite and not _is_sqlite_memory(engine.url) and read_only is None
            else None
        )
        self._thread = threading.Thread(
            target=self._writer, name="workbench-store-writer", daemon=True
        )
        self._thread.start()

    @classmethod
    def open(cls, url: str | None = None, *, read_only_fallback: bool = False) -> Store:
        """Open (creating and migrating as needed) the database at a URL.

        Args:
            url: A SQLAlchemy URL. None means ``$WORKBENCH_DB`` if set, else the SQLite
                file ``workbench.db`` in the user data directory.
            read_only_fallback: When a SQLite store cannot be written (its disk is full,
                its file or folder is read-only), open it for reading instead
                (:attr:`read_only` says why); for commands that only read.

        Raises:
            StoreError: the database is damaged, read-only, full or unreachable (the
                message names it, the hint says what to do).
        """
        url = url or default_url()
        try:
            engine = create_engine_for(url)
        except Exception as exc:
            error = store_error(exc, url)
            if error is None:
                raise
            raise error from exc
        try:
            migrate(engine)
        except Exception as exc:
            engine.dispose()
            error = store_error(exc, url)
            if error is None:
                raise
            if read_only_fallback and error.problem in ("full", "read-only"):
                fallback = cls._open_read_only(url, error)
                if fallback is not None:
                    return fallback
            raise error from exc
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @classmethod
    def _open_read_only(cls, url: str, why: StoreError) -> Store | None:
        """The SQLite file opened immutable and read-only (no -wal or -shm written), if it
        is migrated already; else None."""
        path = sqlite_path(url)
        if path is None or not path.is_file():
            return None
        engine = create_engine(
            f"sqlite:///file:{path}?mode=ro&immutable=1&uri=true",
            connect_args={"check_same_thread": False},
        )
        try:
            with engine.connect() as conn:
                if current_version(conn) != latest_version():
                    engine.dispose()
                    return None
        except Exception:
            engine.dispose()
            return None
        return cls(engine, read_only=why)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for modules that keep their own tables here)."""
        return self._engine

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Commit everything queued, stop the writer thread, close all connections.

        Idempotent. Appending afterwards raises :class:`StoreClosedError`.
        """
        with self._cond:
            first = not self._closing
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        if not first:
            return
        if self._lease is not None:
            self._lease.stop()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- appending ------------------------------------------------------------------------

    async def append(self, event: _E) -> _E:
        """Append an event to its session's log; returns once it is committed.

        The event gets the next ``seq`` of its session (the session row is created if
        missing) and the ``runs`` row it implies is updated in the same transaction.
        Appends are committed in the order they were called. If the awaiting task is
        cancelled, the event is still stored.

        Args:
            event: Any event with a ``session_id``; its ``seq`` is ignored.

        Returns:
            A copy of the event with ``seq`` set.

        Raises:
            ValueError: The event has no ``session_id``.
            StoreClosedError: The store is closed.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[EventBase] = loop.create_future()
        self._put(_Pending(self._checked(event), loop=loop, afuture=fut))
        return cast(_E, await fut)

    def append_nowait(
        self,
        event: EventBase,
        callback: Callable[[EventBase | None, BaseException | None], None],
    ) -> None:
        """Queue an event and return at once; ``callback(stored, error)`` runs on the calling
        event loop once it is committed. Callbacks run in append order.

        This is the engine's hot path: a run never waits for the disk, yet every event
        reaches subscribers only after it is durable, with its ``seq``.

        Raises:
            ValueError: The event has no ``session_id``.
            StoreClosedError: The store is closed.
        """
        loop = asyncio.get_running_loop()
        self._put(_Pending(self._checked(event), loop=loop, callback=callback))

    def append_sync(self, event: _E, timeout: float | None = None) -> _E:
        """Like :meth:`append`, blocking the calling thread until committed.

        Args:
            event: Any event with a ``session_id``.
            timeout: Seconds to wait at most (None: for as long as it takes).

        Raises:
            ValueError: The event has no ``session_id``.
            StoreClosedError: The store is closed.
            TimeoutError: Not committed within ``timeout`` (it may still be later).
        """
        fut: concurrent.futures.Future[EventBase | None] = concurrent.futures.Future()
        self._put(_Pending(self._checked(event), cfuture=fut))
        return cast(_E, fut.result(timeout))

    def append_many(
        self, events: Iterable[EventBase], timeout: float | None = None
    ) -> list[EventBase]:
        """Append events in order, blocking until all are committed (an import, a fork).

        They are queued together, so the writer commits them in as few transactions as
        it can (up to 8192 events each) and nothing else lands between them in a session.

        Args:
            events: Events with a ``session_id``; their ``seq`` is ignored.
            timeout: Seconds to wait for each at most.

        Returns:
            Copies with ``seq`` set, in the same order.

        Raises:
            ValueError: An event has no ``session_id`` (nothing is queued then).
            StoreClosedError: The store is closed.
        """
        items = [_Pending(self._checked(e), cfuture=concurrent.futures.Future()) for e in events]
        if not items:
            return []
        with self._cond:
            if self._closing:
                raise StoreClosedError("the store is closed")
            self._queue.extend(items)
            self._cond.notify()
        return [cast(EventBase, cast(Any, p.cfuture).result(timeout)) for p in items]

    def flush(self, timeout: float | None = None) -> None:
        """Block until every event appended so far is committed (no-op once closed)."""
        fut: concurrent.futures.Future[EventBase | None] = concurrent.futures.Future()
        try:
            self._put(_Pending(None, cfuture=fut))
        except StoreClosedError:
            return
        fut.result(timeout)

    @staticmethod
    def _checked(event: EventBase) -> EventBase:
        if not isinstance(event, EventBase):
            raise TypeError(f"not an event: {event!r}")
        if not event.session_id:
            raise ValueError(f"{event.type} event has no session_id")
        return event

    def _put(self, item: _Pending) -> None:
        if self.read_only is not None:
            raise self.read_only
        with self._cond:
            if self._closing:
                raise StoreClosedError("the store is closed")
            self._queue.append(item)
            self._cond.notify()

    # -- the writer thread ----------------------------------------------------------------

    def _writer(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        self._cond.wait()
                    if not self._queue:
                        return  # closing, and everything is written
                    if len(self._queue) <= _MAX_BATCH:
                        batch, self._queue = self._queue, []
                    else:
                        batch = self._queue[:_MAX_BATCH]
                        del self._queue[:_MAX_BATCH]
                self._write_batch(batch)
        finally:
            self._drop_connection(invalidate=False)

    def _write_batch(self, batch: list[_Pending]) -> None:
        items = [p for p in batch if p.event is not None]
        if items:
            try:
                self._commit(items)
            except Exception as exc:  # every failure goes to the callers
                self._after_failure()
                if len(items) > 1 and isinstance(exc, self._item_errors):
                    # One bad event (say, arguments that do not serialise) must not sink
                    # the others queued with it: retry each in its own transaction.
                    for p in items:
                        try:
                            self._commit([p])
                        except Exception as one:
                            self._after_failure()
                            p.error = one
                else:
                    for p in items:
                        p.error = exc
        self._settle(batch)

    def _settle(self, batch: list[_Pending]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        for p in batch:
            if p.cfuture is not None:
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    if p.error is not None:
                        p.cfuture.set_exception(p.error)
                    else:
                        p.cfuture.set_result(p.result)
            elif p.loop is not None:
                by_loop.setdefault(p.loop, []).append(p)
        # One wake-up per event loop per batch, not one per event.
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle_async, items)

    def _connection(self) -> PoolProxiedConnection:
        if self._raw is None:
            raw = self._engine.raw_connection()
            if self._checkpointer is not None:
                cursor = raw.cursor()
                try:
                    cursor.execute("PRAGMA wal_autocheckpoint = 0")  # see _Checkpointer
                finally:
                    cursor.close()
            self._raw = raw
        return self._raw

    def _drop_connection(self, *, invalidate: bool) -> None:
        raw, self._raw = self._raw, None
        if raw is None:
            return
        with contextlib.suppress(Exception):
            if invalidate:
                raw.invalidate()
            else:
                raw.close()

    def _after_failure(self) -> None:
        raw = self._raw
        if raw is None:
            return
        try:
            raw.rollback()
        except Exception:  # the connection is gone: start afresh next time
            log.warning("store writer: connection lost, reconnecting", exc_info=True)
            self._drop_connection(invalidate=True)

    def _commit(self, items: list[_Pending]) -> None:
        """One transaction: bump counters, insert the events, update runs, commit."""
        with self._db_lock:
            raw = self._connection()
            cursor = raw.cursor()
            try:
                if self._sqlite:
                    cursor.execute("BEGIN IMMEDIATE")
                stored = self._store_events(
                    cursor, [cast(EventBase, p.event) for p in items], time.time()
                )
                for p, e in zip(items, stored, strict=True):
                    p.result = e
                raw.commit()
                if self._checkpointer is not None:
                    self._checkpointer.committed()
            except BaseException:
                for p in items:
                    p.result = None
                raise
            finally:
                with contextlib.suppress(Exception):
                    cursor.close()

    def _store_events(
        self, cursor: DBAPICursor, events: list[EventBase], now: float
    ) -> list[EventBase]:
        """Inside a write transaction: give the events their seqs, insert them, update the
        runs they imply. Returns the stored copies, in the same order."""
        sql = self._sql
        by_session: dict[str, list[int]] = {}
        for i, e in enumerate(events):
            by_session.setdefault(e.session_id, []).append(i)
        counts = {sid: len(group) for sid, group in by_session.items()}
        last_seqs = self._bump(cursor, counts, now)
        stored: list[EventBase] = list(events)
        for session_id, group in by_session.items():
            seq = last_seqs[session_id] - len(group)
            for i in group:
                seq += 1
                stored[i] = events[i].model_copy(update={"seq": seq})
        rows: list[Any]
        if sql.insert_event.keys == _EVENT_COLUMNS:  # qmark: tuples, built directly
            rows = [(e.session_id, e.seq, e.run_id, e.type, e.ts, dump_event(e)) for e in stored]
        else:
            rows = [
                sql.insert_event.params(dict(zip(_EVENT_COLUMNS, row, strict=True)))
                for row in (
                    (e.session_id, e.seq, e.run_id, e.type, e.ts, dump_event(e)) for e in stored
                )
            ]
        cursor.executemany(sql.insert_event.sql, rows)
        approvals = False
        for e in stored:
            if e.type in _RUN_EVENT_TYPES and e.run_id:
                self._apply_to_run(cursor, e, now)
                approvals = approvals or e.type in _APPROVAL_SIGNALS
        if sql.notify is not None:
            self._notify(cursor, {sid: last_seqs[sid] for sid in by_session}, approvals)
        return stored

    def _notify(self, cursor: DBAPICursor, last: dict[str, int], approvals: bool) -> None:
        """Tell listening processes which sessions moved (delivered at commit)."""
        statement = self._sql.notify
        assert statement is not None
        flag = ',"a":1' if approvals else ""
        parts: list[str] = []
        size = 0
        for sid, seq in last.items():
            item = f"{json.dumps(sid)}:{seq}"
            if parts and size + len(item) > _NOTIFY_BYTES:
                statement.run(
                    cursor,
                    channel=NOTIFY_CHANNEL,
                    payload='{"e":{' + ",".join(parts) + "}" + flag + "}",
                )
                parts, size = [], 0
            parts.append(item)
            size += len(item) + 1
        statement.run(
            cursor, channel=NOTIFY_CHANNEL, payload='{"e":{' + ",".join(parts) + "}" + flag + "}"
        )

    def _bump(self, cursor: DBAPICursor, counts: dict[str, int], now: float) -> dict[str, int]:
        """Take ``counts[id]`` seqs of each session (creating missing ones).

        Returns:
            Each session's new ``last_seq``: its events get the seqs up to it.
        """
        if self._sqlite:
            return self._bump_sqlite(cursor, counts, now)
        sql = self._sql
        last: dict[str, int] = {}
        # Row locks in a fixed order, so that two processes writing to the same sessions
        # cannot deadlock each other.
        for session_id in sorted(counts):
            values = {"n": counts[session_id], "now": now, "id": session_id}
            sql.bump.run(cursor, **values)
            row = cursor.fetchone()
            if row is None:
                sql.new_session.run(cursor, id=session_id, ws=self.default_workspace, now=now)
                sql.bump.run(cursor, **values)
                row = cursor.fetchone()
            if row is None:  # pragma: no cover - the row was just inserted
                raise RuntimeError(f"session {session_id} vanished while appending")
            last[session_id] = int(row[0])
        return last

    def _bump_sqlite(
        self, cursor: DBAPICursor, counts: dict[str, int], now: float
    ) -> dict[str, int]:
        # On SQLite, BEGIN IMMEDIATE already holds the database's write lock, so one
        # UPDATE for all the batch's sessions and one SELECT of the results are as atomic
        # as UPDATE ... RETURNING per session, and cheaper: pysqlite's RETURNING costs 33 us
        # a statement against 14 us for UPDATE + SELECT, and a batch spread over ten
        # sessions would pay it ten times (bench/event_log.py, 10 sessions: +30%).
        last: dict[str, int] = {}
        ids = list(counts)
        for start in range(0, len(ids), 400):  # well under SQLite's bound-variable limit
            chunk = ids[start : start + 400]
            marks = ", ".join("?" * len(chunk))
            case = " ".join("WHEN ? THEN ?" for _ in chunk)
            cursor.execute(
                f"UPDATE sessions SET last_seq = last_seq + CASE id {case} END, "
                f"updated_at = ? WHERE id IN ({marks})",
                [*(v for sid in chunk for v in (sid, counts[sid])), now, *chunk],
            )
            cursor.execute(f"SELECT id, last_seq FROM sessions WHERE id IN ({marks})", chunk)
            last.update((sid, int(seq)) for sid, seq in cursor.fetchall())
        missing = [sid for sid in ids if sid not in last]
        if missing:  # first events of new sessions: nobody else can insert them meanwhile
            cursor.executemany(
                "INSERT INTO sessions (id, title, workspace, created_at, updated_at, last_seq) "
                "VALUES (?, '', ?, ?, ?, ?)",
                [(sid, self.default_workspace, now, now, counts[sid]) for sid in missing],
            )
            last.update((sid, counts[sid]) for sid in missing)
        return last

    def _apply_to_run(self, cursor: DBAPICursor, e: EventBase, now: float) -> None:
        sql = self._sql
        data = e.__dict__  # the fields of the concrete event type
        match e.type:
            case "run.started":
                sql.run_started.run(
                    cursor,
                    id=e.run_id,
                    session_id=e.session_id,
                    parent_run_id=e.parent_run_id,
                    target_kind=data["target_kind"],
                    target=_clean(data["target"]),
                    input=_clean(data["input"]),
                    owner=self.owner,
                    ts=e.ts,
                    now=now,
                )
                title = _title_from(data["input"])
                if title:
                    sql.title.run(cursor, title=_clean(title), id=e.session_id)
            case "approval.required":
                sql.waiting.run(cursor, id=e.run_id, now=now)
            case "approval.resolved":
                sql.resolved.run(cursor, id=e.run_id, seq=e.seq, now=now)
            case "run.completed" | "run.failed":
                usage = cast(Usage, data["usage"])
                values = {
                    "id": e.run_id,
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "cost": data["cost"],
                    "now": now,
                }
                if e.type == "run.completed":
                    sql.completed.run(cursor, output=_clean(data["output"]), **values)
                else:
                    sql.failed.run(cursor, error=_clean(data["error"]), **values)
            case "run.cancelled":
                sql.cancelled.run(cursor, id=e.run_id, now=now)
            case "run.interrupted":
                sql.interrupted.run(cursor, id=e.run_id, now=now)

    # -- reading --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._db_lock, self._engine.connect() as conn:
            yield conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._db_lock, self._engine.connect() as conn:
            conn = conn.execution_options(workbench_immediate=True)
            with conn.begin():
                yield conn

    def events(
        self,
        session_id: str,
        after_seq: int = 0,
        run_id: str | None = None,
        limit: int | None = None,
    ) -> list[Event]:
        """A session's events in ``seq`` order.

        Args:
            session_id: The session.
            after_seq: Only events with a greater ``seq`` (what an SSE client last saw).
            run_id: Only the events of this run.
            limit: At most this many (page with ``after_seq``).
        """
        sql = "SELECT data FROM events WHERE session_id = :sid AND seq > :after"
        params: dict[str, Any] = {"sid": session_id, "after": after_seq}
        if run_id is not None:
            sql += " AND run_id = :run"
            params["run"] = run_id
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = limit
        with self._read() as conn:
            rows = conn.execute(text(sql), params).all()
        parse = EventAdapter.validate_json
        return [parse(row[0]) for row in rows]

    def last_seq(self, session_id: str) -> int:
        """The seq of the session's last committed event (0 if none or no such session)."""
        with self._read() as conn:
            found = conn.execute(
                select(_sessions.c.last_seq).where(_sessions.c.id == session_id)
            ).scalar()
        return int(found or 0)

    # -- sessions -------------------------------------------------------------------------

    def create_session(
        self,
        session_id: str | None = None,
        title: str = "",
        workspace: str = "",
        *,
        created_at: float | None = None,
        forked_from: str | None = None,
        forked_from_seq: int | None = None,
    ) -> SessionInfo:
        """Create a session, or fill in an existing one.

        If a session with this id exists (a first append creates one bare), its empty
        title and workspace are filled in from the arguments and it is returned.

        Args:
            session_id: The id; ``s_`` plus 12 hex digits when None.
            title: Shown in the session browser ('' takes the first run's input).
            workspace: The workspace folder; made absolute.
            created_at: Epoch seconds (an imported session keeps its own); now when None.
            forked_from: For a fork: the session it was forked from.
            forked_from_seq: For a fork: the seq it was forked at.
        """
        session_id = session_id or new_id("s")
        workspace = _abs(workspace)
        now = time.time()
        with self._write() as conn:
            conn.execute(
                text(
                    "INSERT INTO sessions (id, title, workspace, created_at, updated_at, "
                    "last_seq, forked_from, forked_from_seq) VALUES (:id, :title, :ws, "
                    ":created, :now, 0, :forked_from, :forked_from_seq) "
                    "ON CONFLICT (id) DO NOTHING"
                ),
                {
                    "id": session_id,
                    "title": title,
                    "ws": workspace,
                    "created": now if created_at is None else created_at,
                    "now": now,
                    "forked_from": forked_from,
                    "forked_from_seq": forked_from_seq,
                },
            )
            conn.execute(
                text(
                    "UPDATE sessions SET "
                    "title = CASE WHEN title = '' THEN :title ELSE title END, "
                    "workspace = CASE WHEN workspace = '' THEN :ws ELSE workspace END "
                    "WHERE id = :id"
                ),
                {"id": session_id, "title": title, "ws": workspace},
            )
            info = self._session(conn, session_id)
        assert info is not None
        return info

    def get_session(self, session_id: str) -> SessionInfo | None:
        """The session, or None."""
        with self._read() as conn:
            return self._session(conn, session_id)

    def list_sessions(
        self, limit: int = 50, offset: int = 0, *, workspace: str | None = None
    ) -> list[SessionInfo]:
        """Sessions, most recently active first, each with its run count.

        Args:
            limit: At most this many.
            offset: Skip this many first.
            workspace: Only the sessions of this workspace folder (None: every one).
        """
        # The page first (through ix_sessions_updated_at), then run counts for it alone:
        # counting runs of every skipped session made deep pages slow.
        query = select(_sessions)
        if workspace is not None:
            query = query.where(_sessions.c.workspace == _abs(workspace))
        page = (
            query.order_by(_sessions.c.updated_at.desc(), _sessions.c.id.desc())
            .limit(limit)
            .offset(offset)
            .subquery()
        )
        run_count = (
            select(sa_func.count())
            .select_from(_runs)
            .where(_runs.c.session_id == page.c.id)
            .scalar_subquery()
        )
        with self._read() as conn:
            rows = conn.execute(
                select(page, run_count.label("run_count")).order_by(
                    page.c.updated_at.desc(), page.c.id.desc()
                )
            ).all()
        return [SessionInfo(**row._mapping) for row in rows]

    def delete_session(self, session_id: str) -> bool:
        """Delete a session with its runs and events (``ON DELETE CASCADE``).

        Returns:
            Whether it existed.
        """
        with self._write() as conn:
            result = conn.execute(delete(_sessions).where(_sessions.c.id == session_id))
        return result.rowcount > 0

    def sessions_not_updated_since(
        self, cutoff: float, limit: int | None = None
    ) -> list[SessionInfo]:
        """Sessions whose last event or change is older than ``cutoff``, oldest first.

        Sessions with a run still running or waiting on a decision are left out: they
        are not finished, however old.

        Args:
            cutoff: Epoch seconds.
            limit: At most this many.
        """
        live = (
            select(_runs.c.id)
            .where(_runs.c.session_id == _sessions.c.id, _runs.c.status.in_(_LIVE_STATUSES))
            .exists()
        )
        query = (
            _session_query()
            .where(_sessions.c.updated_at < cutoff, ~live)
            .order_by(_sessions.c.updated_at, _sessions.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [SessionInfo(**row._mapping) for row in rows]

    def delete_sessions(self, session_ids: Iterable[str], batch: int = 200) -> int:
        """Delete sessions with their runs and events, ``batch`` sessions a transaction
        (so that appends from running sessions are not held up for long).

        Returns:
            How many existed.
        """
        ids = list(dict.fromkeys(session_ids))
        deleted = 0
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            with self._write() as conn:
                deleted += conn.execute(delete(_sessions).where(_sessions.c.id.in_(chunk))).rowcount
        return deleted

    def search_sessions(
        self, query: str, limit: int = 50, offset: int = 0, *, prefix: bool = False
    ) -> list[SearchHit]:
        """Full-text search over every session's messages, tool calls and tool results.

        Every word must occur (as PostgreSQL's ``plainto_tsquery``); words are stemmed
        (English). SQLite searches its FTS5 table ``events_fts``, PostgreSQL the GIN
        expression index ``ix_events_search``.

        Args:
            query: Words, as a person types them (no query syntax).
            limit: At most this many sessions.
            offset: Skip this many (pages).
            prefix: The last word may be the start of a word (search as you type).

        Returns:
            Matching sessions, most recently active first, each with the excerpt of its
            first matching event.
        """
        words = re.findall(r"\w+", query)
        if not words:
            return []
        if self._sqlite:
            return self._search_sqlite(words, limit, offset, prefix)
        return self._search_pg(words, limit, offset, prefix)

    def _search_sqlite(
        self, words: list[str], limit: int, offset: int, prefix: bool
    ) -> list[SearchHit]:
        terms = ['"' + w.replace('"', '""') + '"' for w in words]
        if prefix:
            terms[-1] += "*"
        match = " ".join(terms)
        params = {"q": match, "limit": limit, "offset": offset}
        with self._read() as conn:
            total = conn.execute(
                text("SELECT COUNT(*) FROM events_fts WHERE events_fts MATCH :q"), params
            ).scalar()  # cheap: FTS5 counts a doclist without reading rows
            if not total:
                return []
            if total < _SEARCH_PROBE_FROM:
                # Few matches: group them by session, then sort those sessions.
                sql = (
                    "WITH m AS (SELECT rowid AS id FROM events_fts WHERE events_fts MATCH :q), "
                    "hits AS (SELECT e.session_id, MIN(e.id) AS first, COUNT(*) AS n "
                    "FROM m JOIN events e ON e.id = m.id GROUP BY e.session_id) "
                    "SELECT s.id, s.title, s.workspace, s.updated_at, h.first, h.n "
                    "FROM hits h JOIN sessions s ON s.id = h.session_id "
                    "ORDER BY s.updated_at DESC, s.id DESC LIMIT :limit OFFSET :offset"
                )
            else:
                # Many: walk the sessions newest first and stop at the page's end (a common
                # word is in most sessions, so few are looked at).
                # (``+e.id`` keeps SQLite on the (session_id, seq) index: probing each
                # session's few events, not every match for each session.)
                sql = (
                    "WITH m(id) AS MATERIALIZED "
                    "(SELECT rowid FROM events_fts WHERE events_fts MATCH :q), "
                    "page AS MATERIALIZED (SELECT s.id, s.title, s.workspace, s.updated_at "
                    "FROM sessions s WHERE EXISTS (SELECT 1 FROM events e "
                    "WHERE e.session_id = s.id AND +e.id IN (SELECT id FROM m)) "
                    "ORDER BY s.updated_at DESC, s.id DESC LIMIT :limit OFFSET :offset) "
                    "SELECT p.id, p.title, p.workspace, p.updated_at, MIN(e.id) AS first, "
                    "COUNT(*) AS n FROM page p JOIN events e ON e.session_id = p.id "
                    "WHERE +e.id IN (SELECT id FROM m) "
                    "GROUP BY p.id, p.title, p.workspace, p.updated_at "
                    "ORDER BY p.updated_at DESC, p.id DESC"
                )
            found = conn.execute(text(sql), params).all()
            if not found:
                return []
            marks = ", ".join(f":e{i}" for i in range(len(found)))
            ids = {f"e{i}": row.first for i, row in enumerate(found)}
            snippets = {
                int(row[0]): (int(row[1]), str(row[2]), str(row[3]))
                for row in conn.execute(
                    text(
                        "SELECT f.rowid, e.seq, e.type, "
                        "snippet(events_fts, 0, :start, :end, '…', 24) "
                        "FROM events_fts f JOIN events e ON e.id = f.rowid "
                        f"WHERE events_fts MATCH :q AND f.rowid IN ({marks})"
                    ),
                    {"q": match, "start": SNIPPET_START, "end": SNIPPET_END, **ids},
                ).all()
            }
        hits = []
        for row in found:
            seq, kind, snippet = snippets.get(int(row.first), (0, "", ""))
            hits.append(
                SearchHit(
                    session_id=row.id,
                    title=row.title,
                    workspace=row.workspace,
                    updated_at=row.updated_at,
                    seq=seq,
                    type=kind,
                    snippet=snippet,
                    matches=int(row.n),
                )
            )
        return hits

    def _search_pg(
        self, words: list[str], limit: int, offset: int, prefix: bool
    ) -> list[SearchHit]:
        from .migrations import PG_SEARCH_PREDICATE, PG_SEARCH_VECTOR

        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if prefix:
            # The last word as a prefix; the others as plainto_tsquery takes them.
            tsquery = "to_tsquery('english', :last || ':*')"
            params["last"] = words[-1]
            if len(words) > 1:
                tsquery = f"(plainto_tsquery('english', :head) && {tsquery})"
                params["head"] = " ".join(words[:-1])
        else:
            tsquery = "plainto_tsquery('english', :q)"
            params["q"] = " ".join(words)
        with self._read() as conn:
            found = conn.execute(
                text(
                    "WITH hits AS (SELECT session_id, MIN(seq) AS seq, COUNT(*) AS n "
                    f"FROM events WHERE {PG_SEARCH_PREDICATE} "
                    f"AND {PG_SEARCH_VECTOR} @@ {tsquery} GROUP BY session_id) "
                    "SELECT s.id, s.title, s.workspace, s.updated_at, h.seq, h.n "
                    "FROM hits h JOIN sessions s ON s.id = h.session_id "
                    "ORDER BY s.updated_at DESC, s.id DESC LIMIT :limit OFFSET :offset"
                ),
                params,
            ).all()
            if not found:
                return []
            pairs = ", ".join(f"(:s{i}, :n{i})" for i in range(len(found)))
            keys: dict[str, Any] = {}
            for i, row in enumerate(found):
                keys[f"s{i}"] = row.id
                keys[f"n{i}"] = row.seq
            options = (
                f'StartSel="{SNIPPET_START}", StopSel="{SNIPPET_END}", MaxWords=24, '
                'MinWords=8, MaxFragments=1, FragmentDelimiter=" … "'
            )
            snippets = {
                (str(r[0]), int(r[1])): (str(r[2]), str(r[3] or ""))
                for r in conn.execute(
                    text(
                        "SELECT session_id, seq, type, ts_headline('english', "
                        f"workbench_event_text(type, data), {tsquery}, :options) "
                        f"FROM events WHERE (session_id, seq) IN (VALUES {pairs})"
                    ),
                    {**params, **keys, "options": options},
                ).all()
            }
        return [
            SearchHit(
                session_id=row.id,
                title=row.title,
                workspace=row.workspace,
                updated_at=row.updated_at,
                seq=int(row.seq),
                type=snippets.get((row.id, int(row.seq)), ("", ""))[0],
                snippet=snippets.get((row.id, int(row.seq)), ("", ""))[1],
                matches=int(row.n),
            )
            for row in found
        ]

    @staticmethod
    def _session(conn: Connection, session_id: str) -> SessionInfo | None:
        row = conn.execute(_session_query().where(_sessions.c.id == session_id)).first()
        return None if row is None else SessionInfo(**row._mapping)

    # -- runs -----------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunInfo | None:
        """The run, or None."""
        with self._read() as conn:
            row = conn.execute(select(_runs).where(_runs.c.id == run_id)).first()
        return None if row is None else RunInfo(**row._mapping)

    def list_runs(self, session_id: str) -> list[RunInfo]:
        """A session's runs (children included) in the order they started."""
        with self._read() as conn:
            rows = conn.execute(
                select(_runs)
                .where(_runs.c.session_id == session_id)
                .order_by(_runs.c.created_at, _runs.c.id)
            ).all()
        return [RunInfo(**row._mapping) for row in rows]

    def runs_with_status(self, status: RunStatus | Iterable[RunStatus]) -> list[RunInfo]:
        """Runs in any session with the given status (or any of several), oldest first.

        Raises:
            ValueError: An unknown status.
        """
        wanted = [status] if isinstance(status, str) else list(status)
        unknown = set(wanted) - _RUN_STATUSES
        if unknown:
            raise ValueError(f"unknown run status: {', '.join(sorted(unknown))}")
        with self._read() as conn:
            rows = conn.execute(
                select(_runs)
                .where(_runs.c.status.in_(wanted))
                .order_by(_runs.c.created_at, _runs.c.id)
            ).all()
        return [RunInfo(**row._mapping) for row in rows]

    # -- leases: who runs what -----------------------------------------------------------

    @property
    def owner(self) -> str:
        """What runs started through this store record as their owner: the lease's id
        (``hostname:pid:nonce``) once :meth:`hold_lease` was called. A store without a
        lease runs nothing (engines hold one): the runs it writes (an import, a fork, a
        test's) are nobody's, ``''``."""
        return self._lease.id if self._lease is not None else ""

    @property
    def lease(self) -> Lease | None:
        """The lease this store holds, if any."""
        return self._lease

    def hold_lease(
        self, kind: str = "engine", workspace: str = "", lease_s: float | None = None
    ) -> Lease:
        """Register this process in ``processes`` and keep its heartbeat (idempotent).

        Args:
            kind: What the process is (``serve``, ``run``, ``tui``...), for messages.
            workspace: The workspace it serves.
            lease_s: Seconds without a heartbeat after which the others count this process
                dead (default ``$WORKBENCH_LEASE``, else 10).

        Raises:
            ValueError: A lease that is not a positive number of seconds.
        """
        if self._lease is None:
            self._lease = Lease(
                self._engine,
                self._db_lock,
                kind=kind,
                workspace=_abs(workspace),
                lease_s=lease_seconds(lease_s),
                on_lost=self._lost,
            ).start()
        return self._lease

    def on_lease_lost(self, fn: Callable[[str], None]) -> Callable[[], None]:
        """Call ``fn(old_owner_id)`` (from the heartbeat thread) when the lease is lost:
        another process declared this one dead, and its runs are not its own any more.

        Returns:
            A function that removes ``fn``.
        """
        self._lease_lost.append(fn)
        return lambda: self._lease_lost.remove(fn) if fn in self._lease_lost else None

    def _lost(self, old: str) -> None:
        for fn in list(self._lease_lost):
            fn(old)

    def db_now(self) -> float:
        """The database's clock, epoch seconds (what leases are measured by)."""
        with self._read() as conn:
            return float(conn.execute(text(f"SELECT {self._now_sql}")).scalar_one())

    def processes(self) -> list[ProcessInfo]:
        """Every process that holds a lease row (alive or not yet noticed dead), oldest first."""
        with self._read() as conn:
            rows = conn.execute(select(_processes).order_by(_processes.c.started_at)).all()
        return [ProcessInfo(**row._mapping) for row in rows]

    def _owner_gone(self, owner: str, alive: set[str], dead: set[str]) -> bool:
        if not owner:
            return True  # nobody's: written by a store that runs nothing
        if (self._lease is not None and owner == self.owner) or owner in alive:
            return False
        if owner in dead or owner.count(":") != 1:
            return True  # its lease row expired, or is gone
        # A ``host:pid`` owner is from before leases: alive while that pid is, as far as
        # this host can tell.
        host, pid = owner_host_pid(owner)
        return host != self._host or pid is None or not pid_alive(pid)

    def mark_interrupted(self) -> list[str]:
        """Notice dead processes and mark their runs ``interrupted``.

        A process is dead when its heartbeat is older than its lease (by the database's
        clock), or when it ran on this host and its pid is gone. Its lease row is deleted;
        each of its runs still running or waiting becomes ``interrupted``, with a
        ``run.interrupted`` event in the run's session (committed in the same transaction,
        so every stream says so). A run whose owner holds no lease at all counts as dead
        too, but for a ``hostname:pid`` owner on this host whose pid is alive.

        Several processes may call this at once: each run is marked by exactly one. Servers
        call it every quarter of their lease: when nothing is dead (the usual case) it only
        reads, and takes no write lock.

        Returns:
            The ids of the runs marked (none in a store open for reading only).
        """
        if self.read_only is not None or not self._anything_dead():
            return []
        with self._write() as conn:
            now = float(conn.execute(text(f"SELECT {self._now_sql}")).scalar_one())
            procs = [ProcessInfo(**r._mapping) for r in conn.execute(select(_processes)).all()]
            by_id = {p.id: p for p in procs}
            dead = {p.id for p in procs if p.id != self.owner and p.dead(now)}
            alive = set(by_id) - dead
            if dead:
                conn.execute(delete(_processes).where(_processes.c.id.in_(dead)))
            candidates = [
                r.id
                for r in conn.execute(select(_runs.c.id, _runs.c.owner).where(_live)).all()
                if self._owner_gone(r.owner, alive, dead)
            ]

            def reason(row: Any) -> str:
                holder = by_id.get(row.owner)
                process = holder.describe(now) if holder is not None else row.owner
                if not process:
                    return "no process runs it (it was written by an import or a copy of a log)"
                return _INTERRUPT_REASON.format(process=process)

            marked = self._interrupt(
                conn,
                candidates,
                keep=lambda row: self._owner_gone(row.owner, alive, dead),
                reason=reason,
            )
        if marked:
            log.warning(
                "marked %d run(s) interrupted: their process died (%s)",
                len(marked),
                ", ".join(sorted({r.owner for r in marked})),
            )
        return [r.id for r in marked]

    def interrupt_runs(self, run_ids: Iterable[str]) -> list[str]:
        """Mark these runs ``interrupted`` (those still running or waiting): their process
        stops them without ending them, so they can be resumed from their last checkpoint.
        Each gets a ``run.interrupted`` event, as a run whose process died does.

        Returns:
            The ids of the runs marked.
        """
        ids = list(dict.fromkeys(run_ids))
        if not ids or self.read_only is not None:
            return []
        with self._write() as conn:
            marked = self._interrupt(
                conn,
                ids,
                keep=lambda _row: True,
                reason=lambda _row: "its process stopped it without ending it (resume it)",
            )
        return [r.id for r in marked]

    def _interrupt(
        self,
        conn: Connection,
        run_ids: list[str],
        *,
        keep: Callable[[Any], bool],
        reason: Callable[[Any], str],
    ) -> list[Any]:
        """Inside a write transaction: of these runs, those still running or waiting for
        which ``keep`` holds become ``interrupted``, each with a ``run.interrupted`` event
        committed with it (so every stream says so). Several processes may do this at once:
        each run is marked by one."""
        if not run_ids:
            return []
        rows_of = select(
            _runs.c.id, _runs.c.session_id, _runs.c.parent_run_id, _runs.c.owner, _runs.c.target
        ).where(_runs.c.id.in_(run_ids), _live)
        rows = [r for r in conn.execute(rows_of).all() if keep(r)]
        if rows and not self._sqlite:
            # Lock the sessions first, in order, as the writer does (its seq bump), then
            # look again: another process may have marked them meanwhile.
            conn.execute(
                select(_sessions.c.id)
                .where(_sessions.c.id.in_(sorted({r.session_id for r in rows})))
                .order_by(_sessions.c.id)
                .with_for_update()
            ).all()
            ids = [r.id for r in rows]
            rows = [
                r
                for r in conn.execute(rows_of.where(_runs.c.id.in_(ids)).with_for_update()).all()
                if keep(r)
            ]
        if not rows:
            return []
        now = float(conn.execute(text(f"SELECT {self._now_sql}")).scalar_one())
        conn.execute(
            update(_runs)
            .where(_runs.c.id.in_([r.id for r in rows]))
            .values(status="interrupted", updated_at=now)
        )
        events: list[EventBase] = [
            RunInterrupted(
                session_id=r.session_id,
                run_id=r.id,
                parent_run_id=r.parent_run_id,
                source=r.target,
                reason=reason(r),
                owner=r.owner,
                noticed_by=self.owner,
            )
            for r in rows
        ]
        cursor = conn.connection.cursor()
        try:
            self._store_events(cursor, events, time.time())
        finally:
            cursor.close()
        if self._checkpointer is not None:
            self._checkpointer.committed()
        return rows

    def _anything_dead(self) -> bool:
        """Whether :meth:`mark_interrupted` has anything to do (a read, no lock)."""
        with self._read() as conn:
            now = float(conn.execute(text(f"SELECT {self._now_sql}")).scalar_one())
            procs = [ProcessInfo(**r._mapping) for r in conn.execute(select(_processes)).all()]
            owners = {
                str(o)
                for (o,) in conn.execute(
                    select(_runs.c.owner).where(_runs.c.status.in_(_LIVE_STATUSES)).distinct()
                ).all()
            }
        dead = {p.id for p in procs if p.id != self.owner and p.dead(now)}
        alive = {p.id for p in procs} - dead
        return bool(dead) or any(self._owner_gone(o, alive, dead) for o in owners)

    def claim_run(self, run_id: str) -> Claim:
        """Make a run whose process died this process's, to resume it: one conditional
        update, so of several processes claiming one run exactly one wins.

        Dead processes are noticed first (:meth:`mark_interrupted`); then a top-level run
        that is ``interrupted`` becomes ``running``, owned by :attr:`owner`.

        Returns:
            A :class:`Claim`: won, or why not (the run is missing, ended, a child run, or
            alive in a process whose lease holds, maybe this one).
        """
        self.mark_interrupted()
        with self._write() as conn:
            now = float(conn.execute(text(f"SELECT {self._now_sql}")).scalar_one())
            won = conn.execute(
                update(_runs)
                .where(
                    _runs.c.id == run_id,
                    _runs.c.parent_run_id.is_(None),
                    _runs.c.status == "interrupted",
                )
                .values(status="running", owner=self.owner, updated_at=now)
            ).rowcount
            row = conn.execute(select(_runs).where(_runs.c.id == run_id)).first()
            holder_row = (
                conn.execute(select(_processes).where(_processes.c.id == row.owner)).first()
                if row is not None
                else None
            )
        run = None if row is None else RunInfo(**row._mapping)
        if won == 1:
            return Claim(True, "claimed", run, now=now)
        if run is None:
            return Claim(False, "missing", None, now=now)
        if run.status in ("completed", "failed", "cancelled"):
            return Claim(False, "ended", run, now=now)
        if run.parent_run_id is not None:
            return Claim(False, "child", run, now=now)
        if run.owner == self.owner:
            return Claim(False, "mine", run, now=now)
        holder = None if holder_row is None else ProcessInfo(**holder_row._mapping)
        return Claim(False, "alive", run, holder, now=now)

    def release_run(self, run_id: str) -> bool:
        """Give back a run claimed by :meth:`claim_run` that could not be started after all:
        it is ``interrupted`` again, for anyone to resume. Returns whether it was ours."""
        with self._write() as conn:
            result = conn.execute(
                update(_runs)
                .where(
                    _runs.c.id == run_id,
                    _runs.c.owner == self.owner,
                    _runs.c.status.in_(_LIVE_STATUSES),
                )
                .values(status="interrupted", updated_at=time.time())
            )
        return bool(result.rowcount == 1)

    # -- approval rules -------------------------------------------------------------------

    def add_rule(
        self,
        scope: RuleScope,
        workspace: str,
        tool: str,
        pattern: str | None,
        decision: RuleDecision,
        note: str | None = None,
    ) -> RuleInfo:
        """Save an approval rule.

        Args:
            scope: ``workspace`` (applies in ``workspace`` only) or ``always`` (everywhere).
            workspace: The workspace it is saved in; made absolute.
            tool: Glob on the tool's workspace name.
            pattern: Glob on the argument, or None for any.
            decision: ``allow`` or ``deny``.
            note: Why.

        Raises:
            ValueError: A bad scope or decision, or an empty tool.
        """
        if scope not in ("workspace", "always"):
            raise ValueError(f"rule scope must be 'workspace' or 'always', not {scope!r}")
        if decision not in ("allow", "deny"):
            raise ValueError(f"rule decision must be 'allow' or 'deny', not {decision!r}")
        if not tool:
            raise ValueError("a rule needs a tool (glob)")
        workspace = _abs(workspace)
        dbapi = self._engine.dialect.loaded_dbapi
        for attempt in range(8):
            rule = RuleInfo(
                id=new_id("r", 3),
                scope=scope,
                workspace=workspace,
                tool=tool,
                pattern=pattern,
                decision=decision,
                created_at=time.time(),
                note=note,
            )
            try:
                with self._write() as conn:
                    conn.execute(_rules.insert().values(**_asdict(rule)))
            except Exception as exc:  # an id collision (1 in 16M): draw another
                if attempt == 7 or not isinstance(getattr(exc, "orig", None), dbapi.IntegrityError):
                    raise
                continue
            return rule
        raise AssertionError("unreachable")  # pragma: no cover

    def list_rules(self, workspace: str | None = None) -> list[RuleInfo]:
        """Saved rules, oldest first.

        Args:
            workspace: None for every rule; else the rules of that workspace plus every
                ``always`` rule.
        """
        if workspace is None:
            stmt, values = self._sql.rules_all, {}
        else:
            stmt, values = self._sql.rules_of, {"workspace": _abs(workspace)}
        with self._read() as conn:
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                stmt.run(cursor, **values)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        return [RuleInfo(*row) for row in rows]

    def delete_rule(self, rule_id: str) -> bool:
        """Delete a rule. Returns whether it existed."""
        with self._write() as conn:
            result = conn.execute(delete(_rules).where(_rules.c.id == rule_id))
        return result.rowcount > 0


# -- helpers ------------------------------------------------------------------------------

assert set(TABLE_NAMES) <= set(SQLModel.metadata.tables)
_sessions = SQLModel.metadata.tables["sessions"]
_runs = SQLModel.metadata.tables["runs"]
_rules = SQLModel.metadata.tables["approval_rules"]
_processes = SQLModel.metadata.tables["processes"]
_live = _runs.c.status.in_(_LIVE_STATUSES)


def _session_query() -> Select[Any]:
    run_count = (
        select(sa_func.count())
        .select_from(_runs)
        .where(_runs.c.session_id == _sessions.c.id)
        .scalar_subquery()
    )
    return select(_sessions, run_count.label("run_count"))


def _abs(workspace: str) -> str:
    return os.path.abspath(workspace) if workspace else ""


def _asdict(rule: RuleInfo) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in rule.__dataclass_fields__}
