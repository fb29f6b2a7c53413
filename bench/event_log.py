"""Event log throughput: ``Store.append`` against raw sqlite3, in the same run.

Appends 50,000 ``message.delta`` events (streamed-token sized, ids as the engine makes
them) to a fresh SQLite file, through the async append API, across 1 session and across
10 sessions, with producers that each await every append before the next (as a streaming
run does). Three runs each; the table shows the median events/s and the median of each
run's append latency percentiles.

The baseline is the floor of doing it by hand: raw ``sqlite3`` ``executemany`` of the
same rows (JSON already dumped, seqs already known) into the same schema, one transaction
per 100 rows, same pragmas.

Run by hand: ``.venv/bin/python bench/event_log.py [--events N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.events import MessageDelta, dump_event  # noqa: E402
from workbench.store import Store, new_id  # noqa: E402

WORDS = (
    "the agent reads the file and finds that the configuration names a model which "
    "is not available locally so it falls back to the default provider and retries "
    "with a shorter prompt, summarising the three sources it found along the way"
).split()


@dataclass(frozen=True)
class Scenario:
    """One row of the table."""

    name: str
    sessions: int
    producers_per_session: int


SCENARIOS = (
    Scenario("append, 1 session, 1 producer", 1, 1),
    Scenario("append, 1 session, 10 producers", 1, 10),
    Scenario("append, 10 sessions, 1 producer each", 10, 1),
    Scenario("append, 10 sessions, 10 producers each", 10, 10),
)


def make_events(
    total: int, sessions: int, producers: int, seed: int = 7
) -> list[list[MessageDelta]]:
    """Events per producer, ``producers`` per session, ``total`` in all."""
    rng = random.Random(seed)
    session_ids = [new_id("s") for _ in range(sessions)]
    streams: list[list[MessageDelta]] = []
    per = total // (sessions * producers)
    for session_id in session_ids:
        for p in range(producers):
            run_id = new_id("run")
            message_id = new_id("msg")
            stream = []
            for _ in range(per):
                # A streamed chunk is one to four tokens: "the", " configuration names".
                text = " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))
                stream.append(
                    MessageDelta(
                        session_id=session_id,
                        run_id=run_id,
                        message_id=message_id,
                        source=f"agent{p}",
                        text=text,
                    )
                )
            streams.append(stream)
    return streams


async def _produce(store: Store, stream: list[MessageDelta], latencies: list[float]) -> None:
    clock = time.perf_counter
    for event in stream:
        t0 = clock()
        await store.append(event)
        latencies.append(clock() - t0)


async def _run_store(url: str, streams: list[list[MessageDelta]]) -> tuple[float, float, float]:
    store = Store.open(url)
    try:
        latencies: list[float] = []
        t0 = time.perf_counter()
        await asyncio.gather(*(_produce(store, s, latencies) for s in streams))
        elapsed = time.perf_counter() - t0
    finally:
        store.close()
    latencies.sort()
    n = len(latencies)
    return n / elapsed, latencies[n // 2], latencies[min(n - 1, int(n * 0.99))]


def run_store(folder: Path, scenario: Scenario, total: int, run: int) -> tuple[float, float, float]:
    """One run of a store scenario: (events/s, p50 latency s, p99 latency s)."""
    streams = make_events(total, scenario.sessions, scenario.producers_per_session, seed=run)
    url = f"sqlite:///{folder / f'store-{scenario.sessions}-{scenario.producers_per_session}-{run}.db'}"
    return asyncio.run(_run_store(url, streams))


def run_baseline(folder: Path, sessions: int, total: int, run: int) -> float:
    """Raw sqlite3 executemany into the store's schema, 100 rows per transaction."""
    path = folder / f"baseline-{sessions}-{run}.db"
    Store.open(f"sqlite:///{path}").close()  # the same schema, migrated
    streams = make_events(total, sessions, 1, seed=run)
    rows = []
    seqs: dict[str, int] = {}
    for i in range(len(streams[0])):  # interleave sessions as concurrent streams would
        for stream in streams:
            e = stream[i]
            seqs[e.session_id] = seq = seqs.get(e.session_id, 0) + 1
            stored = e.model_copy(update={"seq": seq})
            rows.append((e.session_id, seq, e.run_id, e.type, e.ts, dump_event(stored)))
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in (
            "busy_timeout = 10000",
            "journal_mode = WAL",
            "synchronous = NORMAL",
            "foreign_keys = ON",
        ):
            conn.execute(f"PRAGMA {pragma}")
        now = time.time()
        conn.executemany(
            "INSERT INTO sessions (id, title, workspace, created_at, updated_at, last_seq) VALUES (?, '', '', ?, ?, 0)",
            [(sid, now, now) for sid in seqs],
        )
        sql = (
            "INSERT INTO events (session_id, seq, run_id, type, ts, data) VALUES (?, ?, ?, ?, ?, ?)"
        )
        t0 = time.perf_counter()
        for start in range(0, len(rows), 100):
            conn.execute("BEGIN")
            conn.executemany(sql, rows[start : start + 100])
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - t0
    finally:
        conn.close()
    return len(rows) / elapsed


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    print(
        f"SQLite {sqlite3.sqlite_version}, Python {sys.version.split()[0]}, {args.events:,} events, median of {args.runs} runs"
    )
    print()
    header = f"{'scenario':<44} {'events/s':>10} {'vs floor':>9} {'p50 ms':>8} {'p99 ms':>8}"
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory(prefix="wb-bench-") as tmp:
        folder = Path(tmp)
        floors: dict[int, float] = {}
        for sessions in (1, 10):
            rate = statistics.median(
                run_baseline(folder, sessions, args.events, r) for r in range(args.runs)
            )
            floors[sessions] = rate
            name = (
                f"baseline: sqlite3, 100 rows/tx, {sessions} session{'s' if sessions > 1 else ''}"
            )
            print(f"{name:<44} {rate:>10,.0f} {1.0:>8.2f}x {'':>8} {'':>8}", flush=True)
        for scenario in SCENARIOS:
            results = [run_store(folder, scenario, args.events, r) for r in range(args.runs)]
            rate = statistics.median(r[0] for r in results)
            p50 = statistics.median(r[1] for r in results) * 1000
            p99 = statistics.median(r[2] for r in results) * 1000
            ratio = rate / floors[scenario.sessions]
            print(
                f"{scenario.name:<44} {rate:>10,.0f} {ratio:>8.2f}x {p50:>8.2f} {p99:>8.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
