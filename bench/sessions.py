"""Sessions at scale: list and full-text search with 10,000 sessions of ~20 events each.

Fills a fresh store (SQLite file by default, or ``--db URL``) through ``Store.append_many``
(so the search index is kept by the same triggers as in use) with sessions shaped like a
one-tool-call agent run: run.started, the user's message, streamed deltas, an assistant
turn with a tool call, the call and its result, more deltas, the answer, run.completed
(20 events, 5 of them searchable). Then times, median of ``--runs``:

* the baseline: a plain ``SELECT id, title, updated_at FROM sessions LIMIT 50`` on the same
  database (no order, no run counts): the floor of reading one page;
* ``Store.list_sessions()`` first page (newest first, with run counts) and a deep page;
* ``Store.search_sessions()`` for a word in one session, in 1% of them, in every session
  (first page of 50), two words, and a prefix as the TUI's search box sends it.

Run by hand: ``.venv/bin/python bench/sessions.py [--sessions N] [--runs N] [--db URL]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from workbench.events import (  # noqa: E402
    EventBase,
    MessageCompleted,
    MessageDelta,
    RunCompleted,
    RunStarted,
    ToolCall,
    ToolCallRequest,
    ToolResult,
    Usage,
)
from workbench.store import Store, new_id  # noqa: E402

WORDS = (
    "agent model tool file search answer source brief summary review config provider prompt "
    "context window token stream retry schedule budget report table chart metric latency "
    "cache index query result error warning policy approval rule workspace session replay"
).split()


def session_events(i: int, rng: random.Random) -> list[EventBase]:
    """One session's 20 events. Every session says "agent"; one in a hundred "kestrel"; the
    session ``i`` alone says ``marker{i}``."""
    sid, run = new_id("s"), new_id("r")
    words = " ".join(rng.choice(WORDS) for _ in range(12))
    rare = " kestrel" if i % 100 == 0 else ""
    question = f"agent please look at {words}{rare} marker{i}"
    answer = f"The {rng.choice(WORDS)} says {' '.join(rng.choice(WORDS) for _ in range(30))}."
    out: list[EventBase] = [
        RunStarted(target_kind="agent", target="helper", input=question, model="test"),
        MessageCompleted(message_id="m_u", role="user", content=question),
    ]
    out += [MessageDelta(message_id="m_1", text=f" {rng.choice(WORDS)}") for _ in range(6)]
    out.append(
        MessageCompleted(
            message_id="m_1",
            role="assistant",
            content="Let me read the file.",
            tool_calls=[ToolCallRequest(id="c_1", tool="files.read", arguments={"path": "a.md"})],
            usage=Usage(prompt_tokens=120, completion_tokens=20),
        )
    )
    out.append(ToolCall(call_id="c_1", tool="files.read", arguments={"path": f"notes/{i}.md"}))
    out.append(
        ToolResult(
            call_id="c_1",
            tool="files.read",
            output=" ".join(rng.choice(WORDS) for _ in range(80)),
            duration_ms=1.5,
        )
    )
    out += [MessageDelta(message_id="m_2", text=f" {rng.choice(WORDS)}") for _ in range(7)]
    out.append(MessageCompleted(message_id="m_2", role="assistant", content=answer))
    out.append(RunCompleted(output=answer, usage=Usage(prompt_tokens=300, completion_tokens=60)))
    for e in out:
        e.session_id, e.run_id = sid, run
    return out


def fill(store: Store, sessions: int, batch: int = 500) -> float:
    """Append every session; returns events per second."""
    rng = random.Random(7)
    t0 = time.perf_counter()
    count = 0
    for start in range(0, sessions, batch):
        events = [
            e for i in range(start, min(sessions, start + batch)) for e in session_events(i, rng)
        ]
        store.append_many(events)
        count += len(events)
    return count / (time.perf_counter() - t0)


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    """Median and best milliseconds over ``runs`` calls (after one warm-up)."""
    result = fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15, help="timed calls per operation")
    parser.add_argument("--db", default=None, help="a SQLAlchemy URL of an EMPTY database")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="wb-bench-sessions-") as folder:
        url = args.db or f"sqlite:///{Path(folder) / 'sessions.db'}"
        with Store.open(url) as store:
            rate = fill(store, args.sessions)
            with store.engine.connect() as conn:
                events = conn.execute(text("SELECT COUNT(*) FROM events")).scalar()
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
            print(
                f"{args.sessions:,} sessions, {events:,} events on "
                f"{store.engine.dialect.name}, filled at {rate:,.0f} events/s\n"
            )

            def baseline() -> Any:
                with store.engine.connect() as conn:
                    return conn.execute(
                        text("SELECT id, title, updated_at FROM sessions LIMIT 50")
                    ).all()

            cases: list[tuple[str, Callable[[], Any]]] = [
                ("baseline: SELECT ... FROM sessions LIMIT 50", baseline),
                ("list_sessions(), first page of 50", lambda: store.list_sessions(50)),
                (
                    "list_sessions(), page 100 (offset 4,950)",
                    lambda: store.list_sessions(50, offset=4950),
                ),
                (
                    "search: a word in 1 session",
                    lambda: store.search_sessions(f"marker{args.sessions // 2}"),
                ),
                ("search: a word in 1% of sessions", lambda: store.search_sessions("kestrel")),
                ("search: a word in every session", lambda: store.search_sessions("agent")),
                (
                    "search: two words (1% and all)",
                    lambda: store.search_sessions("kestrel agent"),
                ),
                (
                    "search: prefix as typed ('kest')",
                    lambda: store.search_sessions("kest", prefix=True),
                ),
            ]
            rows = []
            base = 0.0
            for name, fn in cases:
                median, best, result = timed(fn, args.runs)
                base = base or median
                rows.append((name, median, best, len(result), median / base))
    width = max(len(r[0]) for r in rows)
    print(f"{'operation':<{width}}  {'median ms':>9}  {'best ms':>8}  {'rows':>5}  {'x base':>7}")
    for name, median, best, n, ratio in rows:
        print(f"{name:<{width}}  {median:>9.2f}  {best:>8.2f}  {n:>5}  {ratio:>6.1f}x")


if __name__ == "__main__":
    main()
