"""The store: the durable, ordered event log of every session, and what is derived from it.

One :class:`Store` per process, made of parts that each answer one question:

- :mod:`~workbench.store.writer`: appending. Events are appended as they happen through a
  single writer thread that does *group commit*: every event queued while the previous
  transaction was committing goes into the next one, which bumps each session's counter
  (``UPDATE sessions SET last_seq = last_seq + n ... RETURNING last_seq``: a row lock that
  also serialises writers in other processes on PostgreSQL), inserts the events, updates
  the ``runs`` rows they imply, and commits before any caller is answered. So an append
  that returned survives SIGKILL, ``seq`` is gap-free per session, and ten thousand events
  a second cost a few hundred transactions, not ten thousand. SQLAlchemy Core and prepared
  DB-API statements: this is the hot path.
- :mod:`~workbench.store.queries`: reads of events, sessions, runs and rules, and the
  sessions and rules people create and delete.
- :mod:`~workbench.store.search`: full-text search over sessions.
- this module: opening and closing, leases (who runs what), interrupted runs, claims.

Reads may be called from any thread. They see committed data only; an append that returned
is visible to every reader.

A SQLite file whose schema is current (the usual store) is opened, written, leased and
checked for dead processes with plain :mod:`sqlite3`: SQLAlchemy, ≈ 150 ms of every
start-up, is imported only by what needs it (typed reads, search, migrations, PostgreSQL).
See :mod:`._db`.

SQLite (the default, in WAL mode) and PostgreSQL are supported; the SQL is portable
between them (``ON CONFLICT``, ``RETURNING``). On PostgreSQL every commit that stores events
also sends one ``NOTIFY workbench`` naming the sessions and their new last seq, so that
other processes sharing the database learn of it at once (``LISTEN``) instead of polling.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import threading
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from ..events import EventBase, RunInterrupted
from ._db import Database, SaDatabase, SqliteFile, in_list, sqlite_file
from ._errors import StoreError, sqlite_path, store_error
from .connection import create_engine_for
from .leases import Lease, ProcessInfo, lease_seconds, now_sql, owner_host_pid, pid_alive
from .migrations import current_version, latest_version, migrate
from .queries import T, _abs, _Queries
from .records import _INTERRUPT_REASON, _LIVE_STATUSES, Claim, RunInfo, log, store_url
from .search import _Search
from .writer import _Checkpointer, _Pending, _Statements, _Writer

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["Store"]

_PROCESS_COLUMNS = ", ".join(f.name for f in dataclasses.fields(ProcessInfo))
_LIVE = "status IN ({})".format(", ".join(f"'{status}'" for status in sorted(_LIVE_STATUSES)))
"""A run that is running or waiting, in plain SQL."""


class _LiveRun(NamedTuple):
    """A run still running or waiting, as :meth:`Store._interrupt` reads it."""

    id: str
    session_id: str
    parent_run_id: str | None
    owner: str
    target: str


_LIVE_RUN = "SELECT id, session_id, parent_run_id, owner, target FROM runs WHERE id IN {ids} AND "


# -- the store ----------------------------------------------------------------------------


class Store(_Writer, _Search, _Queries):
    """The event log and its derived tables. Open with :meth:`open`; close with :meth:`close`.

    Appends (:meth:`append`, :meth:`append_sync`) are serialised through one writer thread
    and return once committed. Everything else may be called from any thread.
    """

    def __init__(self, engine: Engine | Database, *, read_only: StoreError | None = None) -> None:
        """Wrap a database that is migrated. Prefer :meth:`open`.

        Args:
            engine: From :func:`create_engine_for` (or a :class:`~._db.Database`). The
                store disposes of it on close.
            read_only: Why the store could only be opened for reading (appends refuse).
        """
        db = engine if isinstance(engine, Database) else SaDatabase(engine)
        self._db = db
        self.read_only = read_only
        """Why the store is open for reading only (a full disk, a read-only file), or None."""
        self._sqlite = db.dialect == "sqlite"
        self.default_workspace = ""
        """The workspace recorded for a session that its first event creates."""
        # One shared in-memory connection: readers and the writer take turns on it.
        self._db_lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if db.memory else contextlib.nullcontext()
        )
        self._sql = _Statements(db)
        dbapi = db.dbapi
        self._item_errors: tuple[type[BaseException], ...] = (
            dbapi.IntegrityError,
            dbapi.DataError,
            ValueError,
            TypeError,
        )
        self._host = socket.gethostname()
        self._lease: Lease | None = None
        self._lease_lost: list[Callable[[str], None]] = []
        self._now_sql = now_sql(db.dialect)
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Pending] = []
        self._closing = False
        self._raw: Any = None
        self._checkpointer = (
            _Checkpointer(db) if self._sqlite and not db.memory and read_only is None else None
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
        url = store_url(url)
        # A plain SQLite file is used through sqlite3 (SQLAlchemy only if it must be
        # migrated); anything else through a SQLAlchemy engine.
        path = sqlite_file(url)
        try:
            db = SqliteFile(path, url) if path is not None else SaDatabase(create_engine_for(url))
        except Exception as exc:
            error = store_error(exc, url)
            if error is None:
                raise
            raise error from exc
        try:
            # Plain SQL tells whether a file's schema is current (the usual case): then
            # SQLAlchemy is not imported at all. Else its engine migrates it.
            if not isinstance(db, SqliteFile) or db.schema_version() != latest_version():
                migrate(db.engine)
        except Exception as exc:
            db.dispose()
            error = store_error(exc, url)
            if error is None:
                raise
            if read_only_fallback and error.problem in ("full", "read-only"):
                fallback = cls._open_read_only(url, error)
                if fallback is not None:
                    return fallback
            raise error from exc
        except BaseException:
            db.dispose()
            raise
        return cls(db)

    @classmethod
    def _open_read_only(cls, url: str, why: StoreError) -> Store | None:
        """The SQLite file opened immutable and read-only (no -wal or -shm written), if it
        is migrated already; else None."""
        from sqlalchemy import create_engine

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
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._db.url

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
        self._db.dispose()

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
    # -- leases: who runs what -----------------------------------------------------------

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
                self._db,
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
        with self._raw_read() as cursor:
            return self._now(cursor)

    def _now(self, cursor: Any) -> float:
        return float(self._run(cursor, f"SELECT {self._now_sql}").fetchone()[0])

    def _processes(self, cursor: Any, order: str = "") -> list[ProcessInfo]:
        sql = f"SELECT {_PROCESS_COLUMNS} FROM processes{order}"
        return [ProcessInfo(*row) for row in self._run(cursor, sql).fetchall()]

    def processes(self) -> list[ProcessInfo]:
        """Every process that holds a lease row (alive or not yet noticed dead), oldest first."""
        with self._raw_read() as cursor:
            return self._processes(cursor, " ORDER BY started_at")

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
        # Plain SQL on a raw cursor, as in _anything_dead: a store opened after a process
        # died must not import sqlmodel's tables nor SQLAlchemy for this (≈ 100 ms and
        # 150 ms of the first answer after a crash).
        with self._raw_write() as cursor:
            now = self._now(cursor)
            procs = self._processes(cursor)
            by_id = {p.id: p for p in procs}
            dead = {p.id for p in procs if p.id != self.owner and p.dead(now)}
            alive = set(by_id) - dead
            if dead:
                ids, params = in_list("id", sorted(dead))
                self._run(cursor, f"DELETE FROM processes WHERE id IN {ids}", **params)
            live = self._run(cursor, f"SELECT id, owner FROM runs WHERE {_LIVE}").fetchall()
            candidates = [run_id for run_id, owner in live if self._owner_gone(owner, alive, dead)]

            def reason(row: Any) -> str:
                holder = by_id.get(row.owner)
                process = holder.describe(now) if holder is not None else row.owner
                if not process:
                    return "no process runs it (it was written by an import or a copy of a log)"
                return _INTERRUPT_REASON.format(process=process)

            marked = self._interrupt(
                cursor,
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
        with self._raw_write() as cursor:
            marked = self._interrupt(
                cursor,
                ids,
                keep=lambda _row: True,
                reason=lambda _row: "its process stopped it without ending it (resume it)",
            )
        return [r.id for r in marked]

    def _interrupt(
        self,
        cursor: Any,
        run_ids: list[str],
        *,
        keep: Callable[[_LiveRun], bool],
        reason: Callable[[_LiveRun], str],
    ) -> list[_LiveRun]:
        """Inside a write transaction (a raw cursor): of these runs, those still running or
        waiting for which ``keep`` holds become ``interrupted``, each with a
        ``run.interrupted`` event committed with it (so every stream says so). Several
        processes may do this at once: each run is marked by one."""
        if not run_ids:
            return []

        def live(ids: list[str], lock: str = "") -> list[_LiveRun]:
            marks, params = in_list("id", ids)
            found = self._run(cursor, _LIVE_RUN.format(ids=marks) + _LIVE + lock, **params)
            return [row for row in map(_LiveRun._make, found.fetchall()) if keep(row)]

        rows = live(run_ids)
        if rows and not self._sqlite:
            # Lock the sessions first, in order, as the writer does (its seq bump), then
            # look again: another process may have marked them meanwhile.
            marks, params = in_list("id", sorted({r.session_id for r in rows}))
            lock_sessions = f"SELECT id FROM sessions WHERE id IN {marks} ORDER BY id FOR UPDATE"
            self._run(cursor, lock_sessions, **params).fetchall()
            rows = live([r.id for r in rows], " FOR UPDATE")
        if not rows:
            return []
        now = self._now(cursor)
        marks, params = in_list("id", [r.id for r in rows])
        self._run(
            cursor,
            f"UPDATE runs SET status = 'interrupted', updated_at = :now WHERE id IN {marks}",
            now=now,
            **params,
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
        self._store_events(cursor, events, time.time())
        if self._checkpointer is not None:
            self._checkpointer.committed()
        return rows

    def _anything_dead(self) -> bool:
        """Whether :meth:`mark_interrupted` has anything to do (a read, no lock)."""
        # Plain SQL on a raw cursor: this runs on every open, where neither SQLAlchemy nor
        # the Core tables (sqlmodel's) are imported.
        with self._raw_read() as cursor:
            now = self._now(cursor)
            procs = self._processes(cursor)
            live = self._run(cursor, f"SELECT DISTINCT owner FROM runs WHERE {_LIVE}")
            owners = {str(owner) for (owner,) in live.fetchall()}
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
        from sqlalchemy import select, text, update

        self.mark_interrupted()
        with self._write() as conn:
            now = float(conn.execute(text(f"SELECT {self._now_sql}")).scalar_one())
            won = conn.execute(
                update(T.runs)
                .where(
                    T.runs.c.id == run_id,
                    T.runs.c.parent_run_id.is_(None),
                    T.runs.c.status == "interrupted",
                )
                .values(status="running", owner=self.owner, updated_at=now)
            ).rowcount
            row = conn.execute(select(T.runs).where(T.runs.c.id == run_id)).first()
            holder_row = (
                conn.execute(select(T.processes).where(T.processes.c.id == row.owner)).first()
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
        from sqlalchemy import update

        with self._write() as conn:
            result = conn.execute(
                update(T.runs)
                .where(
                    T.runs.c.id == run_id,
                    T.runs.c.owner == self.owner,
                    T.runs.c.status.in_(_LIVE_STATUSES),
                )
                .values(status="interrupted", updated_at=time.time())
            )
        return bool(result.rowcount == 1)
