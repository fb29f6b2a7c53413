"""Leases: a run belongs to a live process or to nobody; resume is one atomic claim.

Several stores on one database stand for several processes (each holds its own lease, as
each process does). Every test runs on a SQLite file and on a real PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import WriteWorkspace
from workbench.engine import Engine
from workbench.events import ApprovalRequired, RunCompleted, RunInterrupted, RunStarted
from workbench.runtime import RunError
from workbench.store import Store, lease_seconds

LEASE = 1.0
"""Seconds: short, so that a process is noticed dead quickly (a third of it between
heartbeats leaves room for a loaded machine)."""


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'wb.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def stores(url: str) -> Iterator[Callable[..., Store]]:
    """Open stores on the database (closed after the test), each holding a lease."""
    opened: list[Store] = []

    def open_store(kind: str = "serve", lease_s: float = LEASE) -> Store:
        s = Store.open(url)
        s.hold_lease(kind, "/ws", lease_s)
        opened.append(s)
        return s

    yield open_store
    for s in opened:
        s.close()


def start(store: Store, session_id: str, run_id: str, **kw: Any) -> None:
    store.append_sync(
        RunStarted(
            session_id=session_id,
            run_id=run_id,
            source="helper",
            target_kind="agent",
            target="helper",
            input="count",
            **kw,
        )
    )


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_lease_seconds_come_from_the_argument_the_environment_or_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("WORKBENCH_LEASE", raising=False)
    assert lease_seconds() == 10.0
    assert lease_seconds(2.5) == 2.5
    monkeypatch.setenv("WORKBENCH_LEASE", "1.5")
    assert lease_seconds() == 1.5
    for bad in ("soon", "0", "-3", "nan", "inf"):
        monkeypatch.setenv("WORKBENCH_LEASE", bad)
        with pytest.raises(ValueError, match="WORKBENCH_LEASE|positive"):
            lease_seconds()


def test_a_process_registers_renews_and_releases_its_lease(
    stores: Callable[..., Store],
) -> None:
    a = stores("serve")
    me = next(p for p in a.processes() if p.id == a.owner)
    assert (me.kind, me.workspace, me.lease_s) == ("serve", "/ws", LEASE)
    first = me.heartbeat_at
    wait_for(lambda: next(p for p in a.processes() if p.id == a.owner).heartbeat_at > first)
    start(a, "s_1", "r_1")
    assert a.get_run("r_1").owner == a.owner  # type: ignore[union-attr]
    observer = stores("tui")
    owner = a.owner
    a.close()  # a clean exit takes the row away
    assert owner not in {p.id for p in observer.processes()}


def test_a_dead_process_is_noticed_within_its_lease_and_its_runs_say_so(
    stores: Callable[..., Store],
) -> None:
    a, b = stores("serve"), stores("serve")
    start(a, "s_1", "r_top")
    start(a, "s_1", "r_child", parent_run_id="r_top")
    a.append_sync(
        ApprovalRequired(
            session_id="s_1", run_id="r_child", call_id="c1", tool="t", arguments={}, reason="ask"
        )
    )
    start(b, "s_2", "r_b")  # the live process's own run is never touched
    assert b.mark_interrupted() == []  # a's lease holds
    dead = a.owner
    assert a.lease is not None
    a.lease.stop(release=False)  # as if killed: no heartbeat, the row stays
    marked = wait_for(b.mark_interrupted, timeout=LEASE * 10)  # once its lease runs out
    assert sorted(marked) == ["r_child", "r_top"]
    assert {r.id: r.status for r in b.list_runs("s_1")} == {
        "r_top": "interrupted",
        "r_child": "interrupted",
    }
    assert b.get_run("r_b").status == "running"  # type: ignore[union-attr]
    said = [e for e in b.events("s_1") if isinstance(e, RunInterrupted)]
    assert sorted(e.run_id for e in said) == ["r_child", "r_top"]
    assert all(e.owner == dead and e.noticed_by == b.owner for e in said)
    assert "stopped renewing its lease" in said[0].reason
    assert dead not in {p.id for p in b.processes()}
    assert b.mark_interrupted() == []  # once


def test_resume_is_refused_while_the_owner_lives_and_won_by_exactly_one_after(
    stores: Callable[..., Store],
) -> None:
    a = stores("run")
    start(a, "s_1", "r_1")
    start(a, "s_1", "r_kid", parent_run_id="r_1")
    claimers = [stores("serve") for _ in range(6)]
    refused = claimers[0].claim_run("r_1")
    assert (refused.won, refused.reason) == (False, "alive")
    assert refused.holder is not None and refused.holder.id == a.owner
    assert "alive in another process: workbench run (pid" in refused.explain()
    assert claimers[0].claim_run("r_kid").reason == "child"
    assert claimers[0].claim_run("r_nope").reason == "missing"

    assert a.lease is not None
    a.lease.stop(release=False)
    time.sleep(LEASE + 0.1)
    results: list[Any] = [None] * len(claimers)
    go = threading.Barrier(len(claimers))

    def claim(i: int) -> None:
        go.wait()
        results[i] = claimers[i].claim_run("r_1")

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(claimers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    winners = [i for i, r in enumerate(results) if r.won]
    assert len(winners) == 1, [r.reason for r in results]
    winner = claimers[winners[0]]
    assert {r.reason for r in results if not r.won} <= {"alive"}
    run = winner.get_run("r_1")
    assert run is not None and (run.status, run.owner) == ("running", winner.owner)
    # interrupted once, by whoever noticed first
    interrupted = [e.run_id for e in winner.events("s_1") if e.type == "run.interrupted"]
    assert sorted(interrupted) == ["r_1", "r_kid"]
    assert winner.claim_run("r_1").reason == "mine"
    assert winner.release_run("r_1")
    assert winner.get_run("r_1").status == "interrupted"  # type: ignore[union-attr]


def test_a_process_that_lost_its_lease_knows_it_and_registers_anew(
    stores: Callable[..., Store],
) -> None:
    a, b = stores("serve"), stores("serve")
    lost: list[str] = []
    a.on_lease_lost(lost.append)
    old = a.owner
    with b.engine.begin() as conn:  # b declared a dead (a could not renew in time)
        conn.execute(text("DELETE FROM processes WHERE id = :id"), {"id": old})
    wait_for(lambda: lost)
    assert lost == [old] and a.owner != old
    wait_for(lambda: a.owner in {p.id for p in b.processes()})


# -- the engine ------------------------------------------------------------------------

WORKSPACE = """
agents:
  sleeper:
    model: test
    instructions: Nap.
    tools: ["tools:nap"]
approvals:
  default: allow
"""

TOOLS = '''
import asyncio


async def nap(seconds: float = 60.0) -> str:
    """Sleep.

    Args:
        seconds: How long.
    """
    await asyncio.sleep(60)
    return "rested"
'''


async def test_an_engine_that_lost_its_lease_stops_its_runs_without_a_word(
    write_workspace: WriteWorkspace, url: str
) -> None:
    root = write_workspace(WORKSPACE, {"tools.py": TOOLS})
    async with Engine.open(root, url, kind="serve", lease_s=LEASE) as engine:
        handle = await engine.start_run("sleeper", "rest")
        while not any(e.type == "tool.call" for e in engine.store.events(handle.session_id)):
            await asyncio.sleep(0.02)
        old = engine.store.owner
        with Store.open(url) as other:
            with other.engine.begin() as conn:
                conn.execute(text("DELETE FROM processes WHERE id = :id"), {"id": old})
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(handle.task, LEASE * 5)
            engine.store.flush()
            types = [e.type for e in engine.store.events(handle.session_id)]
            assert "run.cancelled" not in types  # nothing more written for it here
            # its run is nobody's now: any process marks it interrupted, and may resume it
            assert other.mark_interrupted() == [handle.run_id]
        assert engine.store.owner != old


async def test_resume_in_a_second_engine_is_refused_while_the_first_lives(
    write_workspace: WriteWorkspace, url: str
) -> None:
    root = write_workspace(WORKSPACE, {"tools.py": TOOLS})
    async with Engine.open(root, url, kind="run", lease_s=LEASE) as first:
        handle = await first.start_run("sleeper", "rest")
        while first.store.get_run(handle.run_id) is None:  # its run.started is in the log
            await asyncio.sleep(0.01)
        async with Engine.open(root, url, kind="tui", lease_s=LEASE) as second:
            with pytest.raises(RunError, match="alive in another process: workbench run") as exc:
                await second.resume(handle.run_id)
            assert exc.value.hint is not None and "lease runs out" in exc.value.hint
            with pytest.raises(RunError, match="running in this process"):
                await first.resume(handle.run_id)
        first.cancel(handle.run_id)
        outcome = await handle.wait()
        assert outcome.status == "cancelled"


# -- the CLI ---------------------------------------------------------------------------

NAP_WHILE_FLAGGED = '''
import time
from pathlib import Path

HERE = Path(__file__).parent


def nap(seconds: float = 60.0) -> str:
    """Sleep while the flag file exists.

    Args:
        seconds: How long at most.
    """
    with open(HERE / "naps.log", "a") as f:
        f.write("nap\\n")
    while (HERE / "nap.flag").exists():
        time.sleep(0.05)
    return "rested"
'''


def test_cli_resume_refuses_a_run_alive_in_another_process(
    write_workspace: WriteWorkspace, tmp_path: Path
) -> None:
    """``workbench run --resume`` of a run that another ``workbench run`` still runs: exit 2
    and why, and nothing runs twice; once that process is killed, the resume goes ahead."""
    import os
    import signal
    import subprocess
    import sys

    root = write_workspace(WORKSPACE, {"tools.py": NAP_WHILE_FLAGGED})
    (root / "nap.flag").write_text("1")
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    env = {**os.environ, "WORKBENCH_LEASE": "2", "COLUMNS": "400"}
    argv = [sys.executable, "-m", "workbench.cli", "run", "-w", str(root), "--db", url]
    first = subprocess.Popen(
        [*argv, "--agent", "sleeper", "rest"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        wait_for(lambda: (root / "naps.log").exists(), timeout=60)
        with Store.open(url) as store:
            run = next(r for s in store.list_sessions() for r in store.list_runs(s.id))
        again = subprocess.run(
            [*argv, "--resume", run.id], capture_output=True, text=True, env=env, timeout=60
        )
        assert again.returncode == 2, again.stderr
        message = " ".join(again.stderr.split())
        assert f"run {run.id} is alive in another process: workbench run (pid {first.pid}" in (
            message
        )
        assert "once its lease runs out (within 2 s)" in message
        assert (root / "naps.log").read_text().split() == ["nap"]  # not run twice
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    (root / "nap.flag").unlink()
    resumed = subprocess.run(
        [*argv, "--resume", run.id, "--approve", "all"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert resumed.returncode == 0, resumed.stderr
    with Store.open(url) as store:
        events = store.events(run.session_id)
        final = store.get_run(run.id)
    assert final is not None and final.status == "completed"
    kinds = [e.type for e in events if e.type.startswith("run.")]
    assert kinds == ["run.started", "run.interrupted", "run.started", "run.completed"]


def test_runs_stopped_without_ending_say_so_too(stores: Callable[..., Store]) -> None:
    """interrupt_runs (a TUI quitting with a run in flight): the runs are interrupted with a
    run.interrupted event each, like those of a dead process; ended runs are left alone."""
    a = stores("tui")
    start(a, "s_1", "r_1")
    start(a, "s_1", "r_kid", parent_run_id="r_1")
    start(a, "s_1", "r_done")
    a.append_sync(RunCompleted(session_id="s_1", run_id="r_done", output="ok"))
    assert sorted(a.interrupt_runs(["r_1", "r_kid", "r_done", "r_nope"])) == ["r_1", "r_kid"]
    said = [e for e in a.events("s_1") if isinstance(e, RunInterrupted)]
    assert sorted(e.run_id for e in said) == ["r_1", "r_kid"]
    assert all("without ending it" in e.reason and e.owner == a.owner for e in said)
    assert {r.id: r.status for r in a.list_runs("s_1")} == {
        "r_1": "interrupted",
        "r_kid": "interrupted",
        "r_done": "completed",
    }
    assert a.interrupt_runs(["r_1"]) == []  # once
