"""Event streams: resume with Last-Event-ID (on any instance), slow clients, gap-free order."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from tests.server.conftest import MakeServer, assert_gap_free, iter_sse, read_until
from workbench.engine import Engine
from workbench.events import TERMINAL_TYPES, Event, parse_event
from workbench.server._hub import EventHub


def stored(client: httpx.Client, session_id: str) -> list[Event]:
    return [parse_event(e) for e in client.get(f"/api/sessions/{session_id}/events").json()]


def test_a_client_that_disconnects_and_reconnects_misses_nothing(make_server: MakeServer) -> None:
    srv = make_server()
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        body = c.post("/api/runs", json={"target": "sleeper", "input": "rest"}).json()
        sid, rid = body["session_id"], body["run_id"]
        # read part of the session's stream, then drop the connection mid-run
        first = read_until(c, f"/api/sessions/{sid}/stream", lambda e: e.type == "tool.call")
        assert_gap_free(first)
        # events happen while nobody listens
        assert c.post(f"/api/runs/{rid}/cancel").json()["cancelled"] is True
        c.post("/api/runs", json={"target": "chat", "input": "more", "session_id": sid})
        rest = read_until(
            c,
            f"/api/sessions/{sid}/stream",
            lambda e: e.type == "run.completed",
            headers={"Last-Event-ID": str(first[-1].seq)},
        )
        assert rest[0].seq == first[-1].seq + 1
        assert {"run.cancelled", "run.completed"} <= {e.type for e in rest}
        assert first + rest == stored(c, sid)


def test_last_event_id_works_on_another_instance_of_the_same_database(
    make_server: MakeServer,
) -> None:
    a, b = make_server(), make_server()  # two servers, one SQLite file
    with (
        httpx.Client(base_url=a.url, timeout=30) as ca,
        httpx.Client(base_url=b.url, timeout=30) as cb,
    ):
        body = ca.post("/api/runs", json={"target": "sleeper", "input": "rest"}).json()
        sid, rid = body["session_id"], body["run_id"]
        first = read_until(ca, f"/api/sessions/{sid}/stream", lambda e: e.type == "tool.call")
        # B streams what A writes (through the database), from where the client left
        with cb.stream(
            "GET", f"/api/sessions/{sid}/stream", headers={"Last-Event-ID": str(first[-1].seq)}
        ) as resp:
            ca.post(f"/api/runs/{rid}/cancel")
            rest: list[Event] = []
            for msg in iter_sse(resp):
                rest.append(msg.parsed)
                if rest[-1].type in TERMINAL_TYPES:
                    break
        assert rest[-1].type == "run.cancelled"
        assert first + rest == stored(cb, sid)


def test_a_run_stream_resumes_after_a_seq(client: httpx.Client) -> None:
    body = client.post("/api/runs", json={"target": "flow", "input": "go"}).json()
    whole = read_until(client, f"/api/runs/{body['run_id']}/stream", lambda e: False)
    assert whole[-1].type == "run.completed" and whole[-1].run_id == body["run_id"]
    assert len({e.run_id for e in whole}) == 3  # the workflow and its two steps
    cut = whole[5].seq
    tail = read_until(
        client,
        f"/api/runs/{body['run_id']}/stream",
        lambda e: False,
        headers={"Last-Event-ID": str(cut)},
    )
    assert tail == whole[6:]
    # a stream of a run that ended, asked from after its end, ends at once
    assert (
        read_until(
            client, f"/api/runs/{body['run_id']}/stream", lambda e: False, params={"after": 10_000}
        )
        == []
    )


def test_a_slow_client_never_blocks_the_run_and_catches_up(make_server: MakeServer) -> None:
    srv = make_server(client_queue_size=4)
    words = " ".join(f"w{i}" for i in range(3000))  # the test model streams them back one by one
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        sid = c.post("/api/runs", json={"target": "chat", "input": "warm up"}).json()["session_id"]
        read_until(c, f"/api/sessions/{sid}/stream", lambda e: e.type == "run.completed")
        with c.stream("GET", f"/api/sessions/{sid}/stream") as resp:
            # the client reads nothing while a run streams thousands of events
            body = c.post(
                "/api/runs", json={"target": "chat", "input": words, "session_id": sid}
            ).json()
            deadline = time.monotonic() + 20
            while c.get(f"/api/runs/{body['run_id']}").json()["status"] != "completed":
                assert time.monotonic() < deadline, "the run was blocked by a slow client"
                time.sleep(0.05)
            events: list[Event] = []
            for msg in iter_sse(resp):
                events.append(msg.parsed)
                if events[-1].type == "run.completed" and events[-1].run_id == body["run_id"]:
                    break
        assert len(events) > 3000
        assert_gap_free(events)
        assert events == stored(c, sid)


def test_streams_of_unknown_sessions_and_runs_are_404(client: httpx.Client) -> None:
    assert client.get("/api/sessions/s_nope/stream").status_code == 404
    assert client.get("/api/runs/r_nope/stream").status_code == 404


async def test_a_client_whose_buffer_overflows_reads_the_rest_from_the_store(
    workspace: Path, db_url: str
) -> None:
    words = " ".join(f"w{i}" for i in range(2000))
    async with Engine.open(workspace, db_url) as engine:
        hub = EventHub(engine, queue_size=4, poll_interval=0.05)
        hub.start()
        try:
            first = await engine.run("chat", "warm up")
            sid = engine.runs(engine.sessions()[0].id)[0].session_id
            stream = hub.stream(sid)
            got = [await anext(stream)]  # subscribed, reading
            # the client takes nothing while a long run goes through: it is never waited on
            outcome = await asyncio.wait_for(engine.run("chat", words, session_id=sid), 20)
            assert outcome.ok and first.ok
            assert hub.overflows == 0  # counted when the client notices
            while got[-1].type != "run.completed" or got[-1].run_id != outcome.run_id:
                got.append(await asyncio.wait_for(anext(stream), 5))
            assert hub.overflows >= 1
            assert_gap_free(got)
            assert got == engine.session_events(sid)
            await stream.aclose()
            assert hub.client_count == 0
        finally:
            await hub.aclose()


def test_a_client_that_leaves_is_forgotten(client: httpx.Client) -> None:
    body = client.post("/api/runs", json={"target": "sleeper", "input": "rest"}).json()
    read_until(
        client, f"/api/sessions/{body['session_id']}/stream", lambda e: e.type == "tool.call"
    )

    def open_streams() -> int:
        text = client.get("/metrics").text
        return int(text.split("\nworkbench_sse_clients ")[1].split()[0])

    deadline = time.monotonic() + 5
    while open_streams():
        assert time.monotonic() < deadline, "the stream's subscription outlived its client"
        time.sleep(0.05)
    client.post(f"/api/runs/{body['run_id']}/cancel")
