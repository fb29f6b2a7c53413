"""Searching sessions: full text over messages, tool calls and results (SQLite FTS5,
PostgreSQL ``tsvector``). SQLAlchemy is imported on the first search."""

from __future__ import annotations

import re
from typing import Any, Final

from .connection import _StoreBase
from .records import SNIPPET_END, SNIPPET_START, SearchHit

_SEARCH_PROBE_FROM: Final = 4000
"""Matching events from which a SQLite search walks the sessions newest first instead of
grouping every match (bench/sessions.py: 2.5x faster for a word in every session)."""


class _Search(_StoreBase):
    """Session search."""

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
        from sqlalchemy import text

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
        from sqlalchemy import text

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
