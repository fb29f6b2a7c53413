"""Reading and managing the derived tables: events by session, sessions, runs, saved rules.

What a run and the engine read on their way (a session's events, its last seq, the saved
rules) is plain SQL on a DB-API cursor; the rest is written with SQLAlchemy, imported by
each method when it is first called (see :mod:`._db`)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..events import Event, EventAdapter
from .connection import _StoreBase
from .records import (
    _LIVE_STATUSES,
    _RUN_STATUSES,
    RuleDecision,
    RuleInfo,
    RuleScope,
    RunInfo,
    RunStatus,
    SessionInfo,
    new_id,
)

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement, Connection, Select, Table

    from .schema import RunRow


class _Queries(_StoreBase):
    """Reads of events, sessions and runs; sessions and rules created and deleted."""

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
        with self._raw_read() as cursor:
            rows = self._run(cursor, sql, **params).fetchall()
        parse = EventAdapter.validate_json
        return [parse(row[0]) for row in rows]

    def last_seq(self, session_id: str) -> int:
        """The seq of the session's last committed event (0 if none or no such session)."""
        with self._raw_read() as cursor:
            row = self._run(
                cursor, "SELECT last_seq FROM sessions WHERE id = :id", id=session_id
            ).fetchone()
        return int(row[0] or 0) if row is not None else 0

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
        from sqlalchemy import text

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
        from sqlalchemy import func, select

        # The page first (through ix_sessions_updated_at), then run counts for it alone:
        # counting runs of every skipped session made deep pages slow.
        query = select(T.sessions)
        if workspace is not None:
            query = query.where(T.sessions.c.workspace == _abs(workspace))
        page = (
            query.order_by(T.sessions.c.updated_at.desc(), T.sessions.c.id.desc())
            .limit(limit)
            .offset(offset)
            .subquery()
        )
        run_count = (
            select(func.count())
            .select_from(T.runs)
            .where(T.runs.c.session_id == page.c.id)
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
        from sqlalchemy import delete

        with self._write() as conn:
            result = conn.execute(delete(T.sessions).where(T.sessions.c.id == session_id))
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
        from sqlalchemy import select

        live = (
            select(T.runs.c.id)
            .where(T.runs.c.session_id == T.sessions.c.id, T.runs.c.status.in_(_LIVE_STATUSES))
            .exists()
        )
        query = (
            _session_query()
            .where(T.sessions.c.updated_at < cutoff, ~live)
            .order_by(T.sessions.c.updated_at, T.sessions.c.id)
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
        from sqlalchemy import delete

        ids = list(dict.fromkeys(session_ids))
        deleted = 0
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            with self._write() as conn:
                deleted += conn.execute(
                    delete(T.sessions).where(T.sessions.c.id.in_(chunk))
                ).rowcount
        return deleted

    @staticmethod
    def _session(conn: Connection, session_id: str) -> SessionInfo | None:
        row = conn.execute(_session_query().where(T.sessions.c.id == session_id)).first()
        return None if row is None else SessionInfo(**row._mapping)

    # -- runs -----------------------------------------------------------------------------

    def get_run(self, run_id: str) -> RunInfo | None:
        """The run, or None."""
        from .schema import RunRow

        with self._typed() as s:
            row = s.get(RunRow, run_id)
            return None if row is None else _run_info(row)

    def list_runs(self, session_id: str) -> list[RunInfo]:
        """A session's runs (children included) in the order they started."""
        from sqlmodel import col
        from sqlmodel import select as typed_select

        from .schema import RunRow

        query = (
            typed_select(RunRow)
            .where(RunRow.session_id == session_id)
            .order_by(col(RunRow.created_at), col(RunRow.id))
        )
        with self._typed() as s:
            return [_run_info(row) for row in s.exec(query)]

    def runs_with_status(self, status: RunStatus | Iterable[RunStatus]) -> list[RunInfo]:
        """Runs in any session with the given status (or any of several), oldest first.

        Raises:
            ValueError: An unknown status.
        """
        wanted = [status] if isinstance(status, str) else list(status)
        unknown = set(wanted) - _RUN_STATUSES
        if unknown:
            raise ValueError(f"unknown run status: {', '.join(sorted(unknown))}")
        from sqlmodel import col
        from sqlmodel import select as typed_select

        from .schema import RunRow

        query = (
            typed_select(RunRow)
            .where(col(RunRow.status).in_(wanted))
            .order_by(col(RunRow.created_at), col(RunRow.id))
        )
        with self._typed() as s:
            return [_run_info(row) for row in s.exec(query)]

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
        dbapi = self._db.dbapi
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
                    conn.execute(T.rules.insert().values(**_asdict(rule)))
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
        # One statement on a raw connection, outside a transaction (no BEGIN): this runs
        # before every tool call the policy judges.
        with self._db_lock, self._db.connection() as conn:
            cursor = conn.cursor()
            try:
                stmt.run(cursor, **values)
                rows = cursor.fetchall()
            finally:
                cursor.close()
        return [RuleInfo(*row) for row in rows]

    def delete_rule(self, rule_id: str) -> bool:
        """Delete a rule. Returns whether it existed."""
        from sqlalchemy import delete

        with self._write() as conn:
            result = conn.execute(delete(T.rules).where(T.rules.c.id == rule_id))
        return result.rowcount > 0


# -- helpers ------------------------------------------------------------------------------


class _Tables:
    """The tables of :mod:`.schema` as SQLAlchemy Core tables, for the reads and deletes
    written with Core. Imported on first use, not when the store opens: sqlmodel and the
    ORM it brings are ≈ 85 ms of every start-up (``workbench run``, the app's first
    answer), and opening, writing and the lease path need neither (they run compiled SQL
    on a raw cursor, :mod:`.writer`)."""

    @functools.cached_property
    def _all(self) -> dict[str, Table]:
        from sqlmodel import SQLModel

        from .schema import TABLE_NAMES

        tables = dict(SQLModel.metadata.tables)
        assert set(TABLE_NAMES) <= set(tables)
        return tables

    @property
    def sessions(self) -> Table:
        return self._all["sessions"]

    @property
    def runs(self) -> Table:
        return self._all["runs"]

    @property
    def rules(self) -> Table:
        return self._all["approval_rules"]

    @property
    def processes(self) -> Table:
        return self._all["processes"]

    @property
    def live(self) -> ColumnElement[bool]:
        """A run that is running or waiting."""
        return self.runs.c.status.in_(_LIVE_STATUSES)


T = _Tables()


def _session_query() -> Select[Any]:
    from sqlalchemy import func, select

    run_count = (
        select(func.count())
        .select_from(T.runs)
        .where(T.runs.c.session_id == T.sessions.c.id)
        .scalar_subquery()
    )
    return select(T.sessions, run_count.label("run_count"))


def _run_info(row: RunRow) -> RunInfo:
    return RunInfo(**row.model_dump())


def _abs(workspace: str) -> str:
    return os.path.abspath(workspace) if workspace else ""


def _asdict(rule: RuleInfo) -> dict[str, Any]:
    return {name: getattr(rule, name) for name in rule.__dataclass_fields__}
