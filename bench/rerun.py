"""Re-running a recorded session with the replay model, next to running it live.

For each sample recording (the code-review workflow: 13 agent runs and 15 tool calls over
files and shell; the debate's consensus team: 5 agent runs, no tools), on a fresh copy of
the sample and a fresh SQLite store:

* the baseline: the same team or workflow run live on the offline ``test`` model, every
  approval allowed, as ``workbench run --approve all`` runs it;
* the re-run: ``workbench.sessions.rerun_session`` with the ``replay`` model (every agent
  answers with its recorded turns, the tools really run, approvals decided as recorded),
  the comparison of every tool result and answer included.

Median of ``--runs`` (after one unmeasured run of each), in-process on one engine per
recording; the ratio says what replaying and comparing cost over running.

Run by hand: ``.venv/bin/python bench/rerun.py [--runs N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.approvals import PendingApproval, Resolution  # noqa: E402
from workbench.engine import Engine  # noqa: E402
from workbench.sessions import import_session, read_archive, rerun_session  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CASES = [
    ("code-review", "review.test-model.jsonl"),
    ("debate", "council.test-model.jsonl"),
]


def allow_all(p: PendingApproval) -> Resolution:
    return Resolution("allow", decided_by="bench")


async def measure(sample: str, recording: str, runs: int, tmp: Path) -> tuple[float, float, int]:
    path = ROOT / "sample_workspaces" / sample / "sessions" / recording
    _, events = read_archive(path)
    first = events[0]
    root = Path(
        shutil.copytree(
            ROOT / "sample_workspaces" / sample,
            tmp / sample,
            ignore=shutil.ignore_patterns("sessions", ".workbench", "__pycache__"),
        )
    )
    live: list[float] = []
    replayed: list[float] = []
    async with Engine.open(root, f"sqlite:///{tmp / (sample + '.db')}") as engine:
        recorded = import_session(engine.store, path).id
        kind = first.target_kind  # type: ignore[union-attr]
        target = first.target  # type: ignore[union-attr]
        for i in range(runs + 1):
            engine.broker.auto_decider = allow_all
            t0 = time.perf_counter()
            handle = await engine.start_run(target, first.input, kind=kind)  # type: ignore[union-attr]
            outcome = await handle.wait()
            t1 = time.perf_counter()
            assert outcome.ok, outcome.error
            engine.broker.auto_decider = None
            report = await rerun_session(engine, recorded)
            t2 = time.perf_counter()
            assert report.identical, report
            if i:  # the first of each warms imports and caches
                live.append(t1 - t0)
                replayed.append(t2 - t1)
        calls = sum(len(r.calls) for r in report.runs)
    return statistics.median(live), statistics.median(replayed), calls


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    print(f"median of {args.runs} runs, ms\n")
    print("| recording | live on the test model | re-run (replay) | x live | tool calls |")
    print("|---|--:|--:|--:|--:|")
    with tempfile.TemporaryDirectory() as name:
        for sample, recording in CASES:
            live, replayed, calls = await measure(sample, recording, args.runs, Path(name))
            print(
                f"| {sample}/{recording} | {live * 1000:.0f} | {replayed * 1000:.0f} "
                f"| {replayed / live:.2f}x | {calls} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
