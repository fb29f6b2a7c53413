"""Full-text search, fork, import and prune on a real PostgreSQL started by the test
(migration 3's GIN ``tsvector`` expression index); skipped without the binaries."""

from __future__ import annotations

import time

from sqlalchemy import text

from tests.server._postgres import PostgresServer
from workbench import sessions as lib
from workbench.events import MessageCompleted, RunCompleted, RunStarted, ToolCall, ToolResult
from workbench.store import SNIPPET_END, SNIPPET_START, Store


def session(sid: str, run: str, *events: object) -> list[object]:
    return [e.model_copy(update={"session_id": sid, "run_id": run}) for e in events]  # type: ignore[attr-defined]


def test_search_fork_import_prune_on_postgresql(postgres: PostgresServer) -> None:
    with Store.open(postgres.create_database()) as store:
        store.append_many(
            session(
                "s_old",
                "r_old",
                RunStarted(target_kind="agent", target="a", input="Deploy the rockets"),
                MessageCompleted(message_id="m1", role="user", content="Deploy the rockets"),
                ToolCall(call_id="c1", tool="files.read", arguments={"path": "docs/moon_base.md"}),
                ToolResult(call_id="c1", tool="files.read", output="nul \x00 inside, then orbit"),
                RunCompleted(output="done"),
            )
        )
        store.append_many(
            session(
                "s_new",
                "r_new",
                ToolResult(call_id="c2", tool="shell.run", error="the rocket exploded"),
            )
        )
        # The index is there and the query uses it.
        with store.engine.connect() as conn:
            conn.execute(text("SET enable_seqscan = off"))
            plan = "\n".join(
                str(r[0])
                for r in conn.execute(
                    text(
                        "EXPLAIN SELECT session_id FROM events WHERE type IN "
                        "('message.completed', 'tool.call', 'tool.result') AND "
                        "to_tsvector('english'::regconfig, workbench_event_text(type, data)) "
                        "@@ plainto_tsquery('english', 'rocket')"
                    )
                )
            )
        assert "ix_events_search" in plan, plan

        hits = lib.search_sessions(store, "rocket")
        assert [h.session_id for h in hits] == ["s_new", "s_old"]  # newest first, stemmed
        assert hits[0].type == "tool.result" and hits[0].matches == 1
        assert f"{SNIPPET_START}rocket{SNIPPET_END}" in hits[0].snippet
        assert (
            hits[1].seq == 2 and hits[1].matches == 1
        )  # the message; the run input is not indexed
        assert hits[1].parts()[-1] == ("rockets", True)
        assert [h.session_id for h in lib.search_sessions(store, "moon")] == ["s_old"]  # args
        assert [h.session_id for h in lib.search_sessions(store, "files.read")] == ["s_old"]
        assert [h.session_id for h in lib.search_sessions(store, "orbit")] == ["s_old"]  # NUL
        assert [h.session_id for h in lib.search_sessions(store, "explo", prefix=True)] == ["s_new"]
        assert [h.session_id for h in lib.search_sessions(store, "deploy rock", prefix=True)] == [
            "s_old"
        ]
        assert lib.search_sessions(store, "explo") == []
        assert lib.search_sessions(store, "'&|!(") == []

        fork = lib.fork_session(store, "s_old", at_seq=2)
        assert (fork.forked_from, fork.forked_from_seq, fork.last_seq) == ("s_old", 2, 3)
        assert {h.session_id for h in lib.search_sessions(store, "deploy")} == {"s_old", fork.id}

        exported = lib.export_session(store, "s_old", "jsonl")
        copy = lib.import_session(store, exported.splitlines(keepends=True), as_new=True)
        store.delete_session("s_old")
        back = lib.import_session(store, exported.splitlines(keepends=True))
        again = lib.export_session(store, back.id, "jsonl")
        # the same events, then the import's record that they came from elsewhere
        assert again.startswith(exported) and '"type":"session.imported"' in again[len(exported) :]

        with store.engine.begin() as conn:
            conn.execute(
                text("UPDATE sessions SET updated_at = :t WHERE id <> :keep"),
                {"t": time.time() - 86400, "keep": copy.id},
            )
        gone = lib.prune_sessions(store, 3600)
        assert {s.id for s in gone} == {"s_old", "s_new", fork.id}
        assert [h.session_id for h in lib.search_sessions(store, "rocket")] == [copy.id]
