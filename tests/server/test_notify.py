"""PostgreSQL LISTEN/NOTIFY between servers: what one does reaches the other at once, with
polling out of the picture; the listening connection comes back after it is cut; polling
stays the fallback (``--no-listen``, SQLite)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.server.conftest import MakeServer, iter_sse, read_until
from workbench.events import Event
from workbench.server._notify import Listener

pytestmark = pytest.mark.postgres

NEVER = 600.0
"""A poll interval that never comes within a test: whatever arrives came by NOTIFY."""


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_listener_reads_what_the_store_and_the_control_plane_send() -> None:
    from sqlalchemy.engine import make_url

    got: list[Any] = []
    listener = Listener(
        make_url("postgresql+psycopg://x@127.0.0.1/db"),
        on_events=lambda sessions, approvals: got.append((sessions, approvals)),
        on_control=got.append,
        on_state=got.append,
    )
    listener.dispatch('{"e":{"s_1":7,"s_<2>":1},"a":1}')
    listener.dispatch('{"e":{"s_1":8}}')
    listener.dispatch('{"c":"r_1"}')
    for junk in ("", "not json", "[1, 2]", '{"e": [1]}', '{"e": {"s": "x"}}', '{"c": 5}', "null"):
        listener.dispatch(junk)
    assert got == [({"s_1": 7, "s_<2>": 1}, True), ({"s_1": 8}, False), "r_1"]


def test_two_servers_learn_of_each_other_through_notifications(
    make_server: MakeServer, pg_url: str
) -> None:
    a = make_server(pg_url, poll_interval=NEVER)
    b = make_server(pg_url, poll_interval=NEVER)
    b.app.state.wb.approvals.interval = NEVER
    with (
        httpx.Client(base_url=a.url, timeout=30) as ca,
        httpx.Client(base_url=b.url, timeout=30) as cb,
    ):
        for c in (ca, cb):
            wait_for(lambda c=c: c.get("/ready").json()["notifications"] == "listen")
        # an approval asked on A shows on B's approvals stream, and is decided through B
        added: list[Any] = []

        def follow_approvals() -> None:
            with cb.stream("GET", "/api/approvals/stream") as resp:
                for msg in iter_sse(resp):
                    if msg.event == "added":
                        added.append(msg.json)
                        return

        follower = threading.Thread(target=follow_approvals, daemon=True)
        follower.start()
        time.sleep(0.3)  # past the snapshot
        run = ca.post("/api/runs", json={"target": "helper", "input": "count"}).json()
        follower.join(15)
        assert added and added[0]["run_id"] == run["run_id"]
        decided = cb.post(
            f"/api/approvals/{run['run_id']}/{added[0]['call_id']}",
            json={"decision": "allow"},
        ).json()
        assert decided["resolved"] is True and decided["via"] == "database"
        # B's stream follows A's run to its end
        seen = read_until(
            cb,
            f"/api/runs/{run['run_id']}/stream",
            lambda e: e.type == "run.completed" and e.run_id == run["run_id"],
        )
        assert seen[-1].output == "[test model] Tool results: 1"  # type: ignore[attr-defined]
        # a run on B cancelled through A
        nap = cb.post("/api/runs", json={"target": "sleeper", "input": "rest"}).json()
        read_until(ca, f"/api/runs/{nap['run_id']}/stream", lambda e: e.type == "tool.call")
        cancelled = ca.post(f"/api/runs/{nap['run_id']}/cancel").json()
        assert (cancelled["cancelled"], cancelled["via"]) == (True, "database")


def test_a_cut_listening_connection_comes_back_and_catches_up(
    make_server: MakeServer, pg_url: str
) -> None:
    a = make_server(pg_url, poll_interval=NEVER)
    b = make_server(pg_url, poll_interval=NEVER)
    with (
        httpx.Client(base_url=a.url, timeout=30) as ca,
        httpx.Client(base_url=b.url, timeout=30) as cb,
    ):
        wait_for(lambda: cb.get("/ready").json()["notifications"] == "listen")
        first = ca.post("/api/runs", json={"target": "chat", "input": "one"}).json()
        sid = first["session_id"]
        seen: list[Event] = []

        def follow() -> None:
            with cb.stream("GET", f"/api/sessions/{sid}/stream") as resp:
                for msg in iter_sse(resp):
                    seen.append(msg.parsed)
                    if sum(1 for e in seen if e.type == "run.completed") == 2:
                        return

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        wait_for(lambda: any(e.type == "run.completed" for e in seen))
        # cut every LISTEN connection (B's and A's). The next run is over before they are
        # back (0.2 s later): its NOTIFYs are lost, and B catches up by looking once.
        import psycopg

        with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
            cut = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'"
            ).fetchall()
        assert cut
        ca.post("/api/runs", json={"target": "chat", "input": "two", "session_id": sid})
        follower.join(20)
        assert not follower.is_alive()
        assert [e.seq for e in seen] == list(range(1, len(seen) + 1))
        wait_for(lambda: cb.get("/ready").json()["notifications"] == "listen")


def test_without_listen_servers_poll(make_server: MakeServer, pg_url: str) -> None:
    a = make_server(pg_url, listen=False)
    b = make_server(pg_url, listen=False)
    with (
        httpx.Client(base_url=a.url, timeout=30) as ca,
        httpx.Client(base_url=b.url, timeout=30) as cb,
    ):
        assert cb.get("/ready").json()["notifications"] == "poll"
        run = ca.post("/api/runs", json={"target": "chat", "input": "hi"}).json()
        seen = read_until(
            cb, f"/api/runs/{run['run_id']}/stream", lambda e: e.type == "run.completed"
        )
        assert seen[-1].run_id == run["run_id"]
