"""Fifty runs at once through the API: every one completes, no event lost or repeated."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest

from tests.server.conftest import MakeServer, assert_gap_free
from workbench.client import iter_sse
from workbench.events import TERMINAL_TYPES, Event, parse_event

RUNS = 50


async def follow(client: httpx.AsyncClient, run_id: str) -> list[Event]:
    out: list[Event] = []
    async with client.stream("GET", f"/api/runs/{run_id}/stream") as resp:
        assert resp.status_code == 200
        async for msg in iter_sse(resp):
            ev = parse_event(msg.data)
            assert msg.id == str(ev.seq)
            out.append(ev)
            if ev.type in TERMINAL_TYPES and ev.run_id == run_id:
                break
    return out


async def test_fifty_concurrent_runs(
    make_server: MakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    # the CLI's setup_logging (run by other tests) stops our loggers from propagating
    watched = [logging.getLogger(n) for n in ("workbench", "uvicorn.error", "sqlalchemy")]
    for lg in watched:
        lg.addHandler(caplog.handler)
    try:
        await _fifty(make_server)
    finally:
        for lg in watched:
            lg.removeHandler(caplog.handler)
    assert "database is locked" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


async def _fifty(make_server: MakeServer) -> None:
    srv = make_server()
    limits = httpx.Limits(max_connections=2 * RUNS + 10)
    async with httpx.AsyncClient(base_url=srv.url, timeout=60, limits=limits) as client:
        # some runs have a session to themselves, others share one of five sessions
        shared = []
        for _ in range(5):
            body = (await client.post("/api/runs", json={"target": "chat", "input": "seed"})).json()
            await follow(client, body["run_id"])
            shared.append(body["session_id"])

        async def one(i: int) -> tuple[dict[str, Any], list[Event]]:
            payload: dict[str, Any] = {
                "target": "flow" if i % 3 == 0 else "chat",
                "input": f"run {i}",
            }
            if i % 2:
                payload["session_id"] = shared[i % 5]
            r = await client.post("/api/runs", json=payload)
            assert r.status_code == 202, r.text
            body = r.json()
            return body, await follow(client, body["run_id"])

        results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(RUNS))), 120)

        sessions = {body["session_id"] for body, _ in results}
        assert len(sessions) == RUNS // 2 + 5
        for body, streamed in results:
            run = (await client.get(f"/api/runs/{body['run_id']}")).json()
            assert run["status"] == "completed", run
            assert streamed[-1].type == "run.completed"
            assert len({e.seq for e in streamed}) == len(streamed), "an event came twice"
        for sid in sessions:
            events = [
                parse_event(e) for e in (await client.get(f"/api/sessions/{sid}/events")).json()
            ]
            assert_gap_free(events)
            # each run's stream is exactly its slice of the log
            for body, streamed in results:
                if body["session_id"] == sid:
                    tree = {e.run_id for e in streamed}
                    assert streamed == [
                        e for e in events if e.run_id in tree and e.seq >= streamed[0].seq
                    ]
        assert (await client.get("/ready")).json()["runs_in_flight"] == 0
