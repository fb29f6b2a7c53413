"""The writer thread: group commit of appended events, and the ``runs`` rows they imply.

See :mod:`workbench.store.store` for the guarantees (durable on return, gap-free ``seq``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from ..events import EventBase, Usage, dump_event
from ._db import Database, discard
from .connection import _StoreBase
from .records import (
    _APPROVAL_SIGNALS,
    _E,
    _MAX_BATCH,
    _NOTIFY_BYTES,
    _TITLE_MAX,
    NOTIFY_CHANNEL,
    StoreClosedError,
    log,
)

if TYPE_CHECKING:
    from sqlalchemy.engine.interfaces import DBAPICursor

# -- the writer's SQL ---------------------------------------------------------------------


class _Statements:
    """The writer's statements (and the saved rules' reads), each made once in the
    database's parameter style: ``:name`` and a dict on plain sqlite3, compiled by
    SQLAlchemy for PostgreSQL."""

    def __init__(self, db: Database) -> None:
        s = db.sql
        self.bump = s(
            "UPDATE sessions SET last_seq = last_seq + :n, updated_at = :now "
            "WHERE id = :id RETURNING last_seq",
        )
        self.new_session = s(
            "INSERT INTO sessions (id, title, workspace, created_at, updated_at, last_seq) "
            "VALUES (:id, '', :ws, :now, :now, 0) ON CONFLICT (id) DO NOTHING",
        )
        self.insert_event = s(
            "INSERT INTO events (session_id, seq, run_id, type, ts, data) "
            "VALUES (:session_id, :seq, :run_id, :type, :ts, :data)",
        )
        self.run_started = s(
            "INSERT INTO runs (id, session_id, parent_run_id, target_kind, target, input, "
            "status, output, error, owner, created_at, updated_at, prompt_tokens, "
            "completion_tokens, cost) VALUES (:id, :session_id, :parent_run_id, "
            ":target_kind, :target, :input, 'running', NULL, NULL, :owner, :ts, :now, 0, 0, "
            "NULL) ON CONFLICT (id) DO UPDATE SET status = 'running', "
            "owner = excluded.owner, updated_at = excluded.updated_at",
        )
        self.title = s("UPDATE sessions SET title = :title WHERE id = :id AND title = ''")
        self.waiting = s(
            "UPDATE runs SET status = 'waiting', updated_at = :now "
            "WHERE id = :id AND status IN ('running', 'waiting')",
        )
        # Back to running only when no other approval of the run is still pending
        # (parallel tool calls can each wait on a decision). Counted up to this event.
        self.resolved = s(
            "UPDATE runs SET status = 'running', updated_at = :now "
            "WHERE id = :id AND status = 'waiting' AND "
            "(SELECT COUNT(*) FROM events WHERE run_id = :id "
            " AND type = 'approval.required' AND seq <= :seq) <= "
            "(SELECT COUNT(*) FROM events WHERE run_id = :id "
            " AND type = 'approval.resolved' AND seq <= :seq)",
        )
        self.completed = s(
            "UPDATE runs SET status = 'completed', output = :output, "
            "prompt_tokens = :prompt_tokens, completion_tokens = :completion_tokens, "
            "cost = :cost, updated_at = :now WHERE id = :id",
        )
        self.failed = s(
            "UPDATE runs SET status = 'failed', error = :error, "
            "prompt_tokens = :prompt_tokens, completion_tokens = :completion_tokens, "
            "cost = :cost, updated_at = :now WHERE id = :id",
        )
        self.notify = (
            s("SELECT pg_notify(:channel, :payload)") if db.dialect == "postgresql" else None
        )
        self.cancelled = s(
            "UPDATE runs SET status = 'cancelled', updated_at = :now WHERE id = :id",
        )
        # The saved rules are read before every tool call that the policy judges (a rule
        # removed elsewhere must stop applying at once): compiled once, run on a raw cursor.
        rule_columns = "id, scope, workspace, tool, pattern, decision, created_at, note"
        self.rules_all = s(f"SELECT {rule_columns} FROM approval_rules ORDER BY created_at, id")
        self.rules_of = s(
            f"SELECT {rule_columns} FROM approval_rules "
            "WHERE workspace = :workspace OR scope = 'always' ORDER BY created_at, id",
        )
        self.interrupted = s(
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

    def __init__(self, db: Database) -> None:
        self._db = db
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
        raw: Any = None
        try:
            while True:
                self._dirty.wait()
                if self._stopping.wait(self._DEBOUNCE_S):
                    return
                self._dirty.clear()
                # stop() sets _stopping, then _dirty: a stop that came just before this
                # clear had its wake-up cleared, and the wait above would never return
                # (seen: an app's exit hung in join under load). _stopping is set by then.
                if self._stopping.is_set():
                    return
                try:
                    raw = raw or self._db.connect()
                    cursor = raw.cursor()
                    try:
                        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                        cursor.fetchall()
                    finally:
                        cursor.close()
                except Exception:  # the next commit triggers another try
                    log.debug("store: WAL checkpoint failed", exc_info=True)
                    if raw is not None:
                        discard(raw, invalidate=True)
                    raw = None
        finally:
            if raw is not None:
                discard(raw, invalidate=False)


class _Writer(_StoreBase):
    """Appending: one writer thread commits every queued event in one transaction."""

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

    def _connection(self) -> Any:
        if self._raw is None:
            raw = self._db.connect()
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
        if raw is not None:
            discard(raw, invalidate=invalidate)

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
