"""The server: runs per second through the API, and how late events reach SSE clients.

``workbench serve`` runs in a subprocess (a fresh SQLite store, an agent on the offline
``test`` model); the clients run here, so they do not share the server's GIL. With 1, 10
and 50 concurrent clients, each client repeatedly starts a run (``POST /api/runs``) and
follows its event stream (``GET /api/runs/{id}/stream``) to the end. A run is about 60
events (a 50-word answer streamed word by word, as fast as the test model can).

- runs/s: runs completed per second of wall time, over all clients.
- event latency: from the event's creation in the engine (its ``ts``) to the moment the
  client parsed it off the SSE stream: the store's commit, the fan-out, HTTP, parsing.
  Same machine, same clock.
- baseline: the same runs with ``Engine.start_run`` in this process, no server at all.

Those clients keep the server saturated (each starts its next run at once), so their
latency is mostly queueing. A second table measures fan-out on an idle server: 1, 10 or 50
clients all follow one session's stream while runs go through it one after another; the
latency is again from each event's creation to each client parsing it.

With ``--cross``, two ``workbench serve`` processes share one PostgreSQL (a throwaway
cluster started here, as the tests do) and the bench measures what crosses between them:
a run goes on server A while the client talks to server B.

- event: from an event's creation on A to a client of B parsing it off B's stream.
- approval shown: from the ``approval.required`` created on A to B's approvals stream
  announcing it (``event: added``).
- decision: from ``POST /api/approvals/...`` on B to B's stream showing A's
  ``approval.resolved`` (B writes the decision, A takes it up, B sees A's event).
- cancel: from ``POST /api/runs/{id}/cancel`` on B to B's stream showing ``run.cancelled``.

The baseline is the same with the client on A (nothing crosses).

Run by hand: ``.venv/bin/python bench/server.py [--runs N] [--repeat N] [--cross]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from workbench.client import SseMessage, iter_sse  # noqa: E402
from workbench.engine import Engine  # noqa: E402
from workbench.events import TERMINAL_TYPES, parse_event  # noqa: E402

WORKSPACE = "agents:\n  chat: {model: test, instructions: Answer.}\n"
CROSS_WORKSPACE = """
agents:
  chat: {model: test, instructions: Answer.}
  asker: {model: test, instructions: Count., tools: ["tools:word_count"]}
  sleeper: {model: test, instructions: Nap., tools: ["tools:nap"]}
approvals:
  default: ask
  allow: ["tools:nap"]
"""
CROSS_TOOLS = '''
import asyncio


def word_count(text: str) -> int:
    """Count words.

    Args:
        text: The text.
    """
    return len(text.split())


async def nap(seconds: float = 60.0) -> str:
    """Sleep.

    Args:
        seconds: How long.
    """
    await asyncio.sleep(60)
    return "rested"
'''
PROMPT = " ".join(f"word{i}" for i in range(50))
CLIENTS = (1, 10, 50)
CROSS_MODES: list[tuple[str, tuple[str, ...]]] = [
    ("polling (--no-listen)", ("--no-listen",)),
    ("LISTEN/NOTIFY", ()),
]
"""Modes of the cross-server bench: a label and extra ``serve`` options."""

Row = tuple[int, float, float, float, float, float, float]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def through_api(url: str, clients: int, runs: int) -> tuple[float, list[float]]:
    """Runs/s and event latencies (ms) with ``clients`` concurrent clients."""
    latencies: list[float] = []
    todo = iter(range(runs))
    size = clients * 2 + 4
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:

        async def client() -> None:
            for _ in todo:
                r = await http.post("/api/runs", json={"target": "chat", "input": PROMPT})
                run_id = r.json()["run_id"]
                async with http.stream("GET", f"/api/runs/{run_id}/stream") as resp:
                    async for msg in iter_sse(resp):
                        ev = parse_event(msg.data)
                        latencies.append((time.time() - ev.ts) * 1000)
                        if ev.type in TERMINAL_TYPES and ev.run_id == run_id:
                            break

        t0 = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - t0
    return runs / elapsed, latencies


async def fanout(url: str, clients: int, runs: int) -> list[float]:
    """Event latencies (ms) of ``clients`` streams of one session, runs one at a time."""
    latencies: list[float] = []
    size = clients + 8
    limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        first = (await http.post("/api/runs", json={"target": "chat", "input": "hi"})).json()
        sid = first["session_id"]
        ended: dict[str, int] = {}
        done = asyncio.Event()
        ready = 0

        async def follow() -> None:
            nonlocal ready
            async with http.stream("GET", f"/api/sessions/{sid}/stream") as resp:
                ready += 1
                async for msg in iter_sse(resp):
                    ev = parse_event(msg.data)
                    if ev.run_id != first["run_id"]:
                        latencies.append((time.time() - ev.ts) * 1000)
                    if ev.type == "run.completed":
                        ended[ev.run_id] = ended.get(ev.run_id, 0) + 1
                        if ended[ev.run_id] == clients:
                            done.set()

        tasks = [asyncio.create_task(follow()) for _ in range(clients)]
        while ready < clients:
            await asyncio.sleep(0.01)
        for _ in range(runs):
            done.clear()
            await http.post(
                "/api/runs", json={"target": "chat", "input": PROMPT, "session_id": sid}
            )
            await done.wait()
            await asyncio.sleep(0.02)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return latencies


async def engine_alone(engine: Engine, clients: int, runs: int) -> float:
    """Runs/s with the engine alone, no HTTP."""
    todo = iter(range(runs))

    async def worker() -> None:
        for _ in todo:
            handle = await engine.start_run("chat", PROMPT)
            await handle.wait()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return runs / (time.perf_counter() - t0)


def start_server(
    root: Path, db: str | None = None, *extra: str, log: str = "log"
) -> tuple[subprocess.Popen[str], str]:
    """``workbench serve`` on a free port; returns the process and its URL."""
    db = db or f"sqlite:///{root / 'server.db'}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workbench.cli",
            "serve",
            "-w",
            str(root),
            "--db",
            db,
            "--port",
            "0",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "WORKBENCH_LOG": str(root / log)},
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            return proc, found[1]
    raise RuntimeError("workbench serve did not start")


async def measure(root: Path, url: str, runs_wanted: int, repeat: int) -> list[Row]:
    """One row per number of clients."""
    rows: list[Row] = []
    async with Engine.open(root, f"sqlite:///{root / 'alone.db'}") as engine:
        await engine_alone(engine, 4, 40)  # warm up both
        await through_api(url, 4, 20)
        for clients in CLIENTS:
            runs = runs_wanted or max(100, 4 * clients)
            api, alone, p50, p99, f50, f99 = [], [], [], [], [], []
            for _ in range(repeat):
                rate, lat = await through_api(url, clients, runs)
                api.append(rate)
                p50.append(percentile(lat, 50))
                p99.append(percentile(lat, 99))
                alone.append(await engine_alone(engine, clients, runs))
                fan = await fanout(url, clients, 10)
                f50.append(percentile(fan, 50))
                f99.append(percentile(fan, 99))
            rows.append(
                (
                    clients,
                    statistics.median(api),
                    statistics.median(alone),
                    statistics.median(p50),
                    statistics.median(p99),
                    statistics.median(f50),
                    statistics.median(f99),
                )
            )
    return rows


# -- two servers, one PostgreSQL ------------------------------------------------------------


async def _first(
    http: httpx.AsyncClient, path: str, want: Callable[[SseMessage], bool], ready: asyncio.Event
) -> tuple[float, SseMessage]:
    """Follow a stream until ``want``; returns when (time.time()) and the message."""
    async with http.stream("GET", path, timeout=60) as resp:
        ready.set()
        async for msg in iter_sse(resp):
            if want(msg):
                return time.time(), msg
    raise RuntimeError(f"{path} ended")


async def cross(a_url: str, b_url: str, runs: int) -> dict[str, list[float]]:
    """Latencies (ms) of what crosses from A to a client of B."""
    out: dict[str, list[float]] = {"event": [], "approval shown": [], "decision": [], "cancel": []}
    async with (
        httpx.AsyncClient(base_url=a_url, timeout=60) as a,
        httpx.AsyncClient(base_url=b_url, timeout=60) as b,
    ):
        first = (await a.post("/api/runs", json={"target": "chat", "input": "hi"})).json()
        sid = first["session_id"]
        while (await a.get(f"/api/runs/{first['run_id']}")).json()["status"] == "running":
            await asyncio.sleep(0.01)
        for _ in range(runs):
            # events of a run on A, streamed live from B (subscribed before the run starts)
            after = (await a.get(f"/api/sessions/{sid}")).json()["session"]["last_seq"]
            ready = asyncio.Event()
            latencies: list[float] = []

            def ended(m: SseMessage, into: list[float] = latencies) -> bool:
                ev = parse_event(m.data)
                into.append((time.time() - ev.ts) * 1000)
                return ev.type in TERMINAL_TYPES and ev.parent_run_id is None

            streamed = asyncio.create_task(
                _first(b, f"/api/sessions/{sid}/stream?after={after}", ended, ready)
            )
            await ready.wait()
            await asyncio.sleep(0.05)
            await a.post("/api/runs", json={"target": "chat", "input": PROMPT, "session_id": sid})
            await streamed
            out["event"].extend(latencies)
            # an approval asked on A, shown and decided on B
            ready = asyncio.Event()
            shown = asyncio.create_task(
                _first(b, "/api/approvals/stream", lambda m: m.event == "added", ready)
            )
            await ready.wait()
            await asyncio.sleep(0.05)  # past the snapshot
            r = (await a.post("/api/runs", json={"target": "asker", "input": "count"})).json()
            when, msg = await shown
            added = json.loads(msg.data)
            out["approval shown"].append((when - added["ts"]) * 1000)
            ready = asyncio.Event()
            resolved = asyncio.create_task(
                _first(
                    b,
                    f"/api/runs/{r['run_id']}/stream?after={added['seq']}",
                    lambda m: parse_event(m.data).type == "approval.resolved",
                    ready,
                )
            )
            await ready.wait()
            t0 = time.time()
            await b.post(
                f"/api/approvals/{r['run_id']}/{added['call_id']}",
                json={"decision": "allow"},
            )
            when, _ = await resolved
            out["decision"].append((when - t0) * 1000)
            # a run on A cancelled through B
            r = (await a.post("/api/runs", json={"target": "sleeper", "input": "nap"})).json()
            ready = asyncio.Event()
            seen_call = asyncio.create_task(
                _first(
                    b,
                    f"/api/runs/{r['run_id']}/stream",
                    lambda m: parse_event(m.data).type == "tool.call",
                    ready,
                )
            )
            _, call = await seen_call
            ready = asyncio.Event()
            ended = asyncio.create_task(
                _first(
                    b,
                    f"/api/runs/{r['run_id']}/stream?after={parse_event(call.data).seq}",
                    lambda m: parse_event(m.data).type == "run.cancelled",
                    ready,
                )
            )
            await ready.wait()
            t0 = time.time()
            await b.post(f"/api/runs/{r['run_id']}/cancel")
            when, _ = await ended
            out["cancel"].append((when - t0) * 1000)
    return out


def cross_main(runs: int, repeat: int, modes: list[tuple[str, tuple[str, ...]]]) -> None:
    """Two servers on one throwaway PostgreSQL, per mode (extra ``serve`` options)."""
    from tests.server._postgres import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    pg = PostgresServer(bin_dir).start()
    table: dict[str, dict[str, list[float]]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "workbench.yaml").write_text(CROSS_WORKSPACE)
            (root / "tools.py").write_text(CROSS_TOOLS)
            for label, extra in modes:
                db = pg.create_database()
                procs = [start_server(root, db, *extra, log=f"log-{i}") for i in range(2)]
                try:
                    (_, a_url), (_, b_url) = procs
                    asyncio.run(cross(a_url, a_url, 2))  # warm up
                    same: dict[str, list[float]] = {}
                    other: dict[str, list[float]] = {}
                    for _ in range(repeat):
                        for key, values in asyncio.run(cross(a_url, a_url, runs)).items():
                            same.setdefault(key, []).append(statistics.median(values))
                        for key, values in asyncio.run(cross(a_url, b_url, runs)).items():
                            other.setdefault(key, []).append(statistics.median(values))
                    table.setdefault("one server (baseline)", {}).update(
                        {f"{label}|{k}": v for k, v in same.items()}
                    )
                    table.setdefault("across servers", {}).update(
                        {f"{label}|{k}": v for k, v in other.items()}
                    )
                finally:
                    for proc, _ in procs:
                        proc.terminate()
                        proc.wait(20)
                        if proc.stdout is not None:
                            proc.stdout.close()
    finally:
        pg.stop()
    print(f"cross-server bench: two workbench serve on one PostgreSQL, median of {repeat} x {runs}")
    print()
    print("| mode | what | one server | across servers | ratio |")
    print("|---|---|--:|--:|--:|")
    for label, _ in modes:
        for key in ("event", "approval shown", "decision", "cancel"):
            one = statistics.median(table["one server (baseline)"][f"{label}|{key}"])
            two = statistics.median(table["across servers"][f"{label}|{key}"])
            print(f"| {label} | {key} | {one:.1f} ms | {two:.1f} ms | {two / one:.1f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description="runs/s and SSE event latency of the server")
    parser.add_argument(
        "--cross",
        action="store_true",
        help="two servers on one PostgreSQL: the latency of what crosses between them",
    )
    parser.add_argument(
        "--runs", type=int, default=0, help="runs per scenario (default: 4 x clients, at least 100)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; the median is shown")
    args = parser.parse_args()
    if args.cross:
        cross_main(args.runs or 10, args.repeat, CROSS_MODES)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "workbench.yaml").write_text(WORKSPACE)
        proc, url = start_server(root)
        try:
            rows = asyncio.run(measure(root, url, args.runs, args.repeat))
        finally:
            proc.terminate()
            proc.wait(20)
            if proc.stdout is not None:
                proc.stdout.close()
    words = len(PROMPT.split())
    print(
        f"server bench: {words}-word answers (~{words + 8} events a run), median of {args.repeat}"
    )
    print()
    print("Saturated: every client starts its next run at once.")
    print()
    print("| clients | runs/s via API | runs/s engine alone | API / alone | latency p50 | p99 |")
    print("|--:|--:|--:|--:|--:|--:|")
    for clients, api, alone, p50, p99, _, _ in rows:
        ratio = api / alone
        print(
            f"| {clients} | {api:.1f} | {alone:.1f} | {ratio:.2f} | {p50:.1f} ms | {p99:.1f} ms |"
        )
    print()
    print("Fan-out: the clients follow one session; runs go through it one at a time.")
    print()
    print("| clients | latency p50 | p99 |")
    print("|--:|--:|--:|")
    for clients, _, _, _, _, f50, f99 in rows:
        print(f"| {clients} | {f50:.1f} ms | {f99:.1f} ms |")


if __name__ == "__main__":
    main()
