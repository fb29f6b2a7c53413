"""The store: event log, seq assignment, runs, sessions, rules, migrations, durability.

Every test uses a real SQLite file in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic_core import PydanticSerializationError
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from workbench.events import (
    ApprovalRequired,
    ApprovalResolved,
    ContextSummarized,
    EventBase,
    MessageCompleted,
    MessageDelta,
    ModelRetry,
    RunCancelled,
    RunCompleted,
    RunFailed,
    RunInterrupted,
    RunStarted,
    TeamDelegated,
    TeamVote,
    ToolCall,
    ToolCallRequest,
    ToolResult,
    Usage,
    WorkflowConflict,
    WorkflowStepCompleted,
    WorkflowStepStarted,
    dump_event,
)
from workbench.store import (
    MIGRATIONS,
    SchemaTooNewError,
    Store,
    StoreClosedError,
    create_engine_for,
    latest_version,
    migrate,
    new_id,
    process_owner,
)
from workbench.store.schema import TABLE_NAMES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'workbench.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store.open(db_url) as s:
        yield s


def delta(session_id: str, text: str = "tok", run_id: str = "run_1") -> MessageDelta:
    return MessageDelta(session_id=session_id, run_id=run_id, message_id="msg_1", text=text)


def started(session_id: str, run_id: str, input: str = "do it", **kw: Any) -> RunStarted:
    return RunStarted(
        session_id=session_id,
        run_id=run_id,
        target_kind="agent",
        target="researcher",
        input=input,
        **kw,
    )


def scalar(store: Store, sql: str, **params: Any) -> Any:
    with store.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


# -- opening, migrations ------------------------------------------------------------------


def test_open_migrates_to_the_latest_version_and_records_it(store: Store) -> None:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT version, description FROM schema_version")).all()
    assert [r[0] for r in rows] == [m.version for m in MIGRATIONS] == [1, 2, 3, 4]
    assert [r[1] for r in rows] == [m.description for m in MIGRATIONS]
    assert latest_version() == 4


def test_migrated_schema_matches_the_models(store: Store) -> None:
    insp = inspect(store.engine)
    assert set(TABLE_NAMES) <= set(insp.get_table_names())
    for name in TABLE_NAMES:
        model = SQLModel.metadata.tables[name]
        columns = {c["name"]: c for c in insp.get_columns(name)}
        assert set(columns) == {c.name for c in model.columns}, name
        for col in model.columns:
            assert bool(columns[col.name]["nullable"]) == col.nullable, (name, col.name)
        pk = insp.get_pk_constraint(name)["constrained_columns"]
        assert pk == [c.name for c in model.primary_key.columns], name
        indexes = {
            i["name"]: i["column_names"]
            for i in insp.get_indexes(name)
            if not i.get("duplicates_constraint")  # PostgreSQL lists a UNIQUE's index too
        }
        assert indexes == {i.name: [c.name for c in i.columns] for i in model.indexes}, name
        uniques = {u["name"]: u["column_names"] for u in insp.get_unique_constraints(name)}
        expected_uniques = {
            c.name: [col.name for col in c.columns]
            for c in model.constraints
            if c.__class__.__name__ == "UniqueConstraint"
        }
        assert uniques == expected_uniques, name
        fks = {
            (f["referred_table"], f["options"].get("ondelete")) for f in insp.get_foreign_keys(name)
        }
        expected_fks = {(f.column.table.name, f.ondelete) for f in model.foreign_keys}
        assert fks == expected_fks, name


def test_migrations_are_idempotent(db_url: str) -> None:
    Store.open(db_url).close()
    with Store.open(db_url) as s:
        assert migrate(s.engine) == []
        assert scalar(s, "SELECT COUNT(*) FROM schema_version") == len(MIGRATIONS)


def test_migrate_applies_missing_versions_in_order(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        assert migrate(engine) == [m.version for m in MIGRATIONS]
        assert migrate(engine) == []
    finally:
        engine.dispose()


def test_a_later_step_is_applied_once_and_a_failing_one_leaves_nothing(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workbench.store import migrations

    Store.open(db_url).close()  # at the latest version
    n = latest_version()

    def pin(conn: Any) -> None:
        conn.execute(text("ALTER TABLE sessions ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0"))

    def broken(conn: Any) -> None:
        conn.execute(text("CREATE TABLE half_done (id INTEGER PRIMARY KEY)"))
        raise RuntimeError("step 3 is broken")

    steps = (*MIGRATIONS, migrations.Migration(n + 1, "pin sessions", pin))
    monkeypatch.setattr(migrations, "MIGRATIONS", steps)
    engine = create_engine_for(db_url)
    try:
        assert migrate(engine) == [n + 1]
        assert migrate(engine) == []
        monkeypatch.setattr(
            migrations, "MIGRATIONS", (*steps, migrations.Migration(n + 2, "broken", broken))
        )
        with pytest.raises(RuntimeError, match="broken"):
            migrate(engine)
        insp = inspect(engine)
        assert "half_done" not in insp.get_table_names(), "DDL is rolled back with the step"
        assert "pinned" in {c["name"] for c in insp.get_columns("sessions")}
        with engine.connect() as conn:
            versions = (
                conn.execute(text("SELECT version FROM schema_version ORDER BY version"))
                .scalars()
                .all()
            )
        assert versions == list(range(1, n + 2))
    finally:
        engine.dispose()


def test_a_newer_schema_is_refused(db_url: str) -> None:
    with Store.open(db_url) as s, s.engine.begin() as conn:
        conn.execute(
            text("INSERT INTO schema_version VALUES (:v, 'from the future', 0)"),
            {"v": latest_version() + 1},
        )
    with pytest.raises(SchemaTooNewError, match="upgrade workbench"):
        Store.open(db_url)


def test_sqlite_connections_are_configured(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


async def test_open_with_a_url_creates_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "x.db"
    with Store.open(f"sqlite:///{path}") as s:
        await s.append(delta("s_1"))
    assert path.is_file()
    with Store.open(f"sqlite:///{path}") as s:
        assert s.last_seq("s_1") == 1


async def test_open_honours_workbench_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "from-env.db"
    monkeypatch.setenv("WORKBENCH_DB", f"sqlite:///{path}")
    with Store.open() as s:
        await s.append(delta("s_env"))
        assert str(path) in s.url
    with Store.open(f"sqlite:///{path}") as s:
        assert s.last_seq("s_env") == 1


def test_open_defaults_to_the_user_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if sys.platform != "linux":
        pytest.skip("XDG_DATA_HOME steers platformdirs on Linux only")
    monkeypatch.delenv("WORKBENCH_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with Store.open() as s:
        s.create_session("s_default")
    assert (tmp_path / "data" / "workbench" / "workbench.db").is_file()


async def test_in_memory_sqlite_works() -> None:
    with Store.open("sqlite://") as s:
        e = await s.append(started("s_mem", "run_m"))
        assert e.seq == 1
        assert s.events("s_mem") == [e]
        assert s.get_run("run_m") is not None


# -- appending ----------------------------------------------------------------------------


async def test_seq_is_gap_free_per_session_under_concurrent_appenders(store: Store) -> None:
    sessions = ["s_a", "s_b", "s_c"]
    per_appender = 40

    async def appender(k: int) -> list[EventBase]:
        out = []
        for i in range(per_appender):
            e = delta(sessions[k % 3], text=f"{k}:{i}", run_id=f"run_{k}")
            out.append(await store.append(e))
            if i % 7 == 0:
                await asyncio.sleep(0)
        return out

    results = await asyncio.gather(*(appender(k) for k in range(20)))

    for k, got in enumerate(results):
        seqs = [e.seq for e in got]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), "order kept per appender"
        assert all(e.session_id == sessions[k % 3] for e in got)
    for i, sid in enumerate(sessions):
        n = sum(1 for k in range(20) if k % 3 == i) * per_appender
        returned = sorted(e.seq for got in results for e in got if e.session_id == sid)
        assert returned == list(range(1, n + 1))
        stored = store.events(sid)
        assert [e.seq for e in stored] == list(range(1, n + 1))
        assert store.last_seq(sid) == n
        by_seq = {e.seq: e for got in results for e in got if e.session_id == sid}
        assert stored == [by_seq[e.seq] for e in stored]


def test_append_sync_from_many_threads(store: Store) -> None:
    out: list[EventBase] = []
    lock = threading.Lock()

    def worker(k: int) -> None:
        for i in range(50):
            e = store.append_sync(delta(f"s_{k % 2}", text=str(i)))
            with lock:
                out.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sid in ("s_0", "s_1"):
        assert sorted(e.seq for e in out if e.session_id == sid) == list(range(1, 201))
        assert [e.seq for e in store.events(sid)] == list(range(1, 201))


async def test_two_stores_on_one_file_share_the_counter(db_url: str) -> None:
    """Two writers (as two processes would be) never hand out the same seq."""
    with Store.open(db_url) as one, Store.open(db_url) as two:
        got = await asyncio.gather(
            *(s.append(delta("s_shared", text=str(i))) for i in range(150) for s in (one, two))
        )
    assert sorted(e.seq for e in got) == list(range(1, 301))


async def test_append_returns_a_copy_with_seq(store: Store) -> None:
    original = delta("s_1")
    stored = await store.append(original)
    assert original.seq == 0
    assert stored.seq == 1
    assert stored.model_copy(update={"seq": 0}) == original
    assert type(stored) is MessageDelta


def _all_kinds(sid: str) -> list[EventBase]:
    common: dict[str, Any] = {"session_id": sid, "run_id": "run_x", "source": "researcher"}
    usage = Usage(prompt_tokens=12, completion_tokens=34)
    return [
        RunStarted(
            target_kind="team",
            target="desk",
            input="Plan a trip 🚀\n\tto Zürich",
            model="test",
            **common,
        ),
        MessageDelta(message_id="m1", text='Hé\u0000llo "quoted" \\ \u2028 line', **common),
        MessageCompleted(
            message_id="m1",
            role="assistant",
            content="Hello",
            tool_calls=[
                ToolCallRequest(
                    id="c1", tool="web.search", arguments={"q": "x", "n": [1, 2.5, None]}
                )
            ],
            model="test",
            usage=usage,
            cost=0.000123456789,
            raw={"choices": [{"delta": {"content": "Hello"}}], "nested": {"a": {"b": True}}},
            **common,
        ),
        ApprovalRequired(
            call_id="c1",
            tool="shell.run",
            arguments={"cmd": "ls | wc -l"},
            reason="ask",
            parts=["ls", "wc -l"],
            diff="--- a\n+++ b\n",
            **common,
        ),
        ApprovalResolved(
            call_id="c1",
            tool="shell.run",
            decision="allow",
            scope="workspace",
            edited_arguments={"cmd": "ls"},
            decided_by="rule:r_abc123",
            rule="shell.run:ls*",
            **common,
        ),
        ToolCall(call_id="c1", tool="shell.run", arguments={"cmd": "ls"}, **common),
        ToolResult(call_id="c1", tool="shell.run", output="a\nb", duration_ms=1.5, **common),
        TeamDelegated(member="writer", task="write", child_run_id="run_child", **common),
        TeamVote(
            member="writer", round=2, agree=False, position="no", reasoning="because", **common
        ),
        WorkflowStepStarted(path="brief/parallel[2]/a", kind="parallel", input="in", **common),
        WorkflowStepCompleted(
            path="brief/gather",
            kind="step",
            status="failed",
            error="boom",
            state={"k": [1, {"x": 1e-300}]},
            usage=usage,
            cost=1.0,
            **common,
        ),
        WorkflowConflict(path="brief/p", key="k", values={"a": 1, "b": "two"}, **common),
        ContextSummarized(turns=4, summary="sum", tokens_before=1000, tokens_after=100, **common),
        ModelRetry(attempt=1, error="429", delay_s=0.25, **common),
        RunFailed(error="bad", hint="fix it", duration_ms=3.0, usage=usage, cost=None, **common),
        RunCancelled(reason="user", **common),
        RunCompleted(
            output="done",
            usage=usage,
            cost=0.5,
            duration_ms=10.0,
            structured={"a": [1, 2]},
            **common,
        ),
    ]


async def test_stored_events_round_trip_exactly(store: Store) -> None:
    events = _all_kinds("s_rt")
    stored = [await store.append(e) for e in events]
    read = store.events("s_rt")
    assert read == stored
    assert [type(e) for e in read] == [type(e) for e in events]
    with store.engine.connect() as conn:
        data = (
            conn.execute(text("SELECT data FROM events WHERE session_id = 's_rt' ORDER BY seq"))
            .scalars()
            .all()
        )
    assert data == [dump_event(e) for e in stored]


async def test_events_filters(store: Store) -> None:
    for i in range(10):
        await store.append(delta("s_f", text=str(i), run_id="run_a" if i % 2 else "run_b"))
    await store.append(delta("s_other"))
    assert [e.seq for e in store.events("s_f", after_seq=7)] == [8, 9, 10]
    assert [e.seq for e in store.events("s_f", run_id="run_a")] == [2, 4, 6, 8, 10]
    assert [e.seq for e in store.events("s_f", run_id="run_a", after_seq=4, limit=2)] == [6, 8]
    assert [e.seq for e in store.events("s_f", limit=3)] == [1, 2, 3]
    assert store.events("s_missing") == []
    assert store.last_seq("s_missing") == 0


async def test_a_bad_event_fails_alone(store: Store) -> None:
    good = [delta("s_bad", text=str(i)) for i in range(20)]
    bad = ToolCall(
        session_id="s_bad", run_id="run_1", call_id="c", tool="t", arguments={"x": object()}
    )
    results = await asyncio.gather(
        *(store.append(e) for e in good[:10]),
        store.append(bad),
        *(store.append(e) for e in good[10:]),
        return_exceptions=True,
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1 and isinstance(errors[0], PydanticSerializationError)
    assert [e.seq for e in store.events("s_bad")] == list(range(1, 21))


async def test_append_checks_its_input(store: Store) -> None:
    with pytest.raises(ValueError, match="session_id"):
        await store.append(delta(""))
    with pytest.raises(TypeError):
        store.append_sync({"type": "message.delta"})  # type: ignore[type-var]


async def test_a_cancelled_append_is_still_stored(store: Store) -> None:
    task = asyncio.ensure_future(store.append(delta("s_cancel")))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    store.flush()
    assert [e.seq for e in store.events("s_cancel")] == [1]


async def test_close_commits_what_is_queued_and_refuses_more(db_url: str) -> None:
    s = Store.open(db_url)
    futures = [asyncio.ensure_future(s.append(delta("s_close", text=str(i)))) for i in range(100)]
    await asyncio.sleep(0)  # let every append queue its event
    s.close()
    s.close()  # idempotent
    results = await asyncio.gather(*futures)
    assert [e.seq for e in results] == list(range(1, 101))
    with pytest.raises(StoreClosedError):
        await s.append(delta("s_close"))
    with pytest.raises(StoreClosedError):
        s.append_sync(delta("s_close"))
    s.flush()  # a no-op once closed
    with Store.open(db_url) as again:
        assert again.last_seq("s_close") == 100


# -- runs ---------------------------------------------------------------------------------


async def test_runs_follow_events(store: Store) -> None:
    sid = "s_runs"
    long_input = "Research   the\nhistory of " + "x" * 200
    await store.append(started(sid, "run_p", input=long_input, model="test"))
    run = store.get_run("run_p")
    assert run is not None
    assert (run.status, run.target_kind, run.target, run.input, run.parent_run_id) == (
        "running",
        "agent",
        "researcher",
        long_input,
        None,
    )
    assert run.owner == ""  # a store without a lease runs nothing: its runs are nobody's
    session = store.get_session(sid)
    assert session is not None
    assert session.title == ("Research the history of " + "x" * 200)[:80]

    await store.append(started(sid, "run_c", input="child task", parent_run_id="run_p"))
    assert store.get_session(sid).title == session.title  # type: ignore[union-attr]
    child = store.get_run("run_c")
    assert child is not None and child.parent_run_id == "run_p"

    # two tool calls wait on decisions at once: running again only when both are decided
    for call in ("c1", "c2"):
        await store.append(
            ApprovalRequired(
                session_id=sid,
                run_id="run_p",
                call_id=call,
                tool="shell.run",
                arguments={},
                reason="ask",
            )
        )
    assert store.get_run("run_p").status == "waiting"  # type: ignore[union-attr]
    await store.append(
        ApprovalResolved(
            session_id=sid, run_id="run_p", call_id="c1", tool="shell.run", decision="allow"
        )
    )
    assert store.get_run("run_p").status == "waiting"  # type: ignore[union-attr]
    await store.append(
        ApprovalResolved(
            session_id=sid,
            run_id="run_p",
            call_id="c2",
            tool="shell.run",
            decision="deny",
            note="no",
        )
    )
    assert store.get_run("run_p").status == "running"  # type: ignore[union-attr]

    await store.append(
        RunFailed(
            session_id=sid,
            run_id="run_c",
            error="tool crashed",
            usage=Usage(prompt_tokens=5, completion_tokens=1),
        )
    )
    child = store.get_run("run_c")
    assert child is not None
    assert (child.status, child.error, child.prompt_tokens, child.completion_tokens) == (
        "failed",
        "tool crashed",
        5,
        1,
    )

    await store.append(
        RunCompleted(
            session_id=sid,
            run_id="run_p",
            output="the answer",
            usage=Usage(prompt_tokens=100, completion_tokens=20),
            cost=0.25,
        )
    )
    run = store.get_run("run_p")
    assert run is not None
    assert (run.status, run.output, run.usage, run.cost, run.live) == (
        "completed",
        "the answer",
        Usage(prompt_tokens=100, completion_tokens=20),
        0.25,
        False,
    )

    await store.append(started(sid, "run_x"))
    await store.append(RunCancelled(session_id=sid, run_id="run_x", reason="user"))
    assert store.get_run("run_x").status == "cancelled"  # type: ignore[union-attr]

    assert [r.id for r in store.list_runs(sid)] == ["run_p", "run_c", "run_x"]
    assert [r.id for r in store.runs_with_status("failed")] == ["run_c"]
    assert {r.id for r in store.runs_with_status(["completed", "cancelled"])} == {"run_p", "run_x"}
    with pytest.raises(ValueError):
        store.runs_with_status("bogus")  # type: ignore[arg-type]
    assert store.get_session(sid).run_count == 3  # type: ignore[union-attr]
    assert store.get_run("run_nope") is None


async def test_approval_events_do_not_reopen_a_finished_run(store: Store) -> None:
    await store.append(started("s_1", "run_1"))
    await store.append(RunCompleted(session_id="s_1", run_id="run_1", output="ok"))
    for e in (
        ApprovalRequired(
            session_id="s_1", run_id="run_1", call_id="c", tool="t", arguments={}, reason="late"
        ),
        ApprovalResolved(session_id="s_1", run_id="run_1", call_id="c", tool="t", decision="allow"),
    ):
        await store.append(e)
        assert store.get_run("run_1").status == "completed"  # type: ignore[union-attr]


async def test_a_given_title_is_kept(store: Store) -> None:
    store.create_session("s_t", title="Mine")
    await store.append(started("s_t", "run_1", input="not the title"))
    assert store.get_session("s_t").title == "Mine"  # type: ignore[union-attr]


async def test_resumed_run_is_running_again_and_owned_by_us(store: Store) -> None:
    store.hold_lease("engine", "", 10)
    await store.append(started("s_1", "run_1"))
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE runs SET status = 'interrupted', owner = 'elsewhere:1'"))
    await store.append(started("s_1", "run_1", resumed=True))
    run = store.get_run("run_1")
    assert run is not None and (run.status, run.owner) == ("running", store.owner)
    assert store.owner.startswith(f"{socket.gethostname()}:{os.getpid()}:")
    assert len(store.list_runs("s_1")) == 1


async def test_mark_interrupted_marks_runs_of_processes_without_a_live_lease(
    store: Store,
) -> None:
    """A run belongs to a live process or to nobody. Owners that hold no lease row: a dead
    pid on this host, an owner on another host (since leases, every process that runs
    anything holds one: such a run is from a process gone before it got one), nobody (a
    run written by a store that runs nothing: an import). A ``host:pid`` owner on this host
    whose pid is alive (from before leases) is left alone."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    dead_pid = proc.pid
    host = socket.gethostname()
    for run_id in ("run_dead", "run_dead_waiting", "run_mine", "run_remote", "run_done", "run_x"):
        await store.append(started("s_1", run_id))
    await store.append(
        ApprovalRequired(
            session_id="s_1",
            run_id="run_dead_waiting",
            call_id="c",
            tool="t",
            arguments={},
            reason="ask",
        )
    )
    await store.append(RunCompleted(session_id="s_1", run_id="run_done", output="ok"))
    owners = {
        "run_dead": f"{host}:{dead_pid}",
        "run_dead_waiting": f"{host}:{dead_pid}",
        "run_mine": process_owner(),
        "run_remote": f"another-host-{host}:{dead_pid}",
        "run_done": f"{host}:{dead_pid}",
        "run_x": "",  # as written: a store without a lease
    }
    with store.engine.begin() as conn:
        for run_id, owner in owners.items():
            conn.execute(
                text("UPDATE runs SET owner = :o WHERE id = :id"), {"o": owner, "id": run_id}
            )
    before = store.last_seq("s_1")

    marked = ["run_dead", "run_dead_waiting", "run_remote", "run_x"]
    assert sorted(store.mark_interrupted()) == marked
    status = {r.id: r.status for r in store.list_runs("s_1")}
    assert status == {
        "run_dead": "interrupted",
        "run_dead_waiting": "interrupted",
        "run_mine": "running",
        "run_remote": "interrupted",
        "run_done": "completed",
        "run_x": "interrupted",
    }
    # every stream says so: one run.interrupted each, in the log, with the next seqs
    said = store.events("s_1", after_seq=before)
    assert [e.seq for e in said] == [before + 1, before + 2, before + 3, before + 4]
    assert sorted(e.run_id for e in said if isinstance(e, RunInterrupted)) == marked
    assert {e.owner for e in said} == {f"{host}:{dead_pid}", f"another-host-{host}:{dead_pid}", ""}  # type: ignore[attr-defined]
    nobody = next(e for e in said if e.run_id == "run_x")
    assert nobody.reason.startswith("no process runs it")  # type: ignore[attr-defined]
    assert all(e.noticed_by == store.owner for e in said)  # type: ignore[attr-defined]
    assert store.mark_interrupted() == []
    assert {r.id for r in store.runs_with_status("interrupted")} == set(marked)


# -- sessions -----------------------------------------------------------------------------


def test_new_id() -> None:
    assert re.fullmatch(r"s_[0-9a-f]{12}", new_id("s"))
    assert re.fullmatch(r"r_[0-9a-f]{6}", new_id("r", 3))
    assert new_id("s") != new_id("s")


async def test_create_get_and_list_sessions(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    made = store.create_session(title="First", workspace="ws")
    assert re.fullmatch(r"s_[0-9a-f]{12}", made.id)
    assert made.workspace == str(tmp_path / "ws")
    assert (made.title, made.last_seq, made.run_count) == ("First", 0, 0)
    assert store.get_session(made.id) == made
    assert store.get_session("s_missing") is None

    # a session born from a first append is filled in, not duplicated
    await store.append(started("s_auto", "run_1", input="from the run"))
    await store.append(started("s_auto", "run_2"))
    filled = store.create_session("s_auto", title="ignored, has a title", workspace="/ws")
    assert (filled.title, filled.workspace, filled.last_seq, filled.run_count) == (
        "from the run",
        "/ws",
        2,
        2,
    )
    again = store.create_session("s_auto", workspace="/other")
    assert again.workspace == "/ws"

    listed = store.list_sessions()
    assert [s.id for s in listed] == ["s_auto", made.id]  # most recently active first
    assert [s.run_count for s in listed] == [2, 0]
    assert [s.id for s in store.list_sessions(limit=1, offset=1)] == [made.id]
    await store.append(delta(made.id))
    assert store.list_sessions()[0].id == made.id


async def test_delete_session_cascades(store: Store) -> None:
    for sid in ("s_gone", "s_kept"):
        await store.append(started(sid, f"run_{sid}"))
        for i in range(5):
            await store.append(delta(sid, text=str(i), run_id=f"run_{sid}"))
    assert store.delete_session("s_gone") is True
    assert store.get_session("s_gone") is None
    assert store.events("s_gone") == []
    assert store.get_run("run_s_gone") is None
    assert scalar(store, "SELECT COUNT(*) FROM events WHERE session_id = 's_gone'") == 0
    assert scalar(store, "SELECT COUNT(*) FROM runs WHERE session_id = 's_gone'") == 0
    assert store.delete_session("s_gone") is False
    assert len(store.events("s_kept")) == 6
    assert store.get_run("run_s_kept") is not None
    # a deleted session starts again from seq 1
    assert (await store.append(delta("s_gone"))).seq == 1


# -- rules --------------------------------------------------------------------------------


def test_rules_add_list_delete(store: Store) -> None:
    a = store.add_rule("workspace", "/ws/a", "shell.run", "ls *", "allow", note="harmless")
    b = store.add_rule("workspace", "/ws/b", "files.*", None, "deny")
    c = store.add_rule("always", "/ws/a", "web.search", None, "allow")
    assert re.fullmatch(r"r_[0-9a-f]{6}", a.id)
    assert (a.scope, a.workspace, a.tool, a.pattern, a.decision, a.note) == (
        "workspace",
        "/ws/a",
        "shell.run",
        "ls *",
        "allow",
        "harmless",
    )
    assert store.list_rules() == [a, b, c]
    assert store.list_rules("/ws/a") == [a, c]
    assert store.list_rules("/ws/b") == [b, c]
    assert store.list_rules("/ws/none") == [c]
    assert store.delete_rule(a.id) is True
    assert store.delete_rule(a.id) is False
    assert store.list_rules("/ws/a") == [c]
    with pytest.raises(ValueError, match="scope"):
        store.add_rule("session", "/ws", "x", None, "allow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="decision"):
        store.add_rule("always", "/ws", "x", None, "maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tool"):
        store.add_rule("always", "/ws", "", None, "allow")


# -- durability ---------------------------------------------------------------------------

_KILL_SCRIPT = """
import asyncio, sys
from workbench.events import MessageDelta
from workbench.store import Store

async def main():
    store = Store.open(sys.argv[1])

    async def producer(k):
        i = 0
        while True:
            e = await store.append(MessageDelta(
                session_id="s_kill", run_id=f"run_{k}", message_id="m", text=f"token {i}"))
            print(e.seq, flush=True)
            i += 1

    await asyncio.gather(*(producer(k) for k in range(4)))

asyncio.run(main())
"""


def test_appended_events_survive_sigkill(db_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_SCRIPT, db_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stderr is not None
    printed: list[int] = []
    try:
        while len(printed) < 300:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"the writer died early: {proc.stderr.read()}")
            printed.append(int(line))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        printed += [int(line) for line in proc.stdout.read().split()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    with Store.open(db_url) as s:
        stored = [e.seq for e in s.events("s_kill")]
        assert s.last_seq("s_kill") == len(stored)
    assert stored == list(range(1, len(stored) + 1)), "gap-free"
    assert set(printed) <= set(stored), "every acknowledged append is in the log"
    assert len(printed) >= 300


def test_the_checkpoint_thread_stops_when_stop_races_its_wake_up(tmp_path: Path) -> None:
    """stop() sets "stopping" then wakes the thread; a thread that had just woken for a
    commit clears that wake-up. It must still notice the stop (an app's exit once hung
    for good in ``Store.close``, joining it, on a loaded CI run)."""
    import threading

    from workbench.store.writer import _Checkpointer

    class Racing(threading.Event):
        """The thread's wake-up, with stop() landing just before the thread clears it."""

        checkpointer: _Checkpointer | None = None

        def clear(self) -> None:
            if self.checkpointer is not None:
                self.checkpointer._stopping.set()  # what stop() does first...
                super().set()  # ...then this, before the thread's clear
            super().clear()

    store = Store.open(f"sqlite:///{tmp_path / 'wb.db'}")
    try:
        checkpointer = _Checkpointer(store._db)
        waiting_on, racing = checkpointer._dirty, Racing()
        racing.checkpointer = checkpointer
        checkpointer._dirty = racing
        waiting_on.set()  # a commit wakes the thread; it then clears the racing wake-up
        checkpointer._thread.join(timeout=5)
        assert not checkpointer._thread.is_alive()
    finally:
        store.close()
