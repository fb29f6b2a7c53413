"""How fast the chat pane renders a stream, and how fast it answers keys meanwhile.

The app runs headless (120x40) in this process. A producer in the app's own event loop (as
the engine is) publishes ``message.delta`` events through the app's engine listener at an
offered rate; every 50 ms a key press is posted to the prompt. Measured:

- rendered tok/s: tokens / time from the first delta to the moment the message widget
  holds the whole text (so it counts parsing and drawing, not just folding events), and
  how long after the last token was produced that happened (the pane keeps up when this
  stays about one frame);
- key latency: from posting a key to the prompt handling it (worst and 95th percentile).

Scenarios: one chat answer at 2,000 and 10,000 offered tok/s, and as fast as the producer
can go; and a team of 8 members streaming at once (8 lanes, 250 tok/s each). Budget:
2,000 tok/s rendered, worst key latency under 100 ms.

    python bench/stream_render.py [--tokens 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual import events  # noqa: E402

from screens.app import WorkbenchApp  # noqa: E402
from screens.prompt import PromptInput  # noqa: E402
from screens.transcript import AssistantMessage  # noqa: E402
from tests.tui.fakes import FakeEngine  # noqa: E402
from workbench.events import MessageDelta, RunStarted  # noqa: E402

WORDS = (
    "the workbench streams every event of a run as it happens and the pane keeps up "
    "with **bold** words, `code`, lists and\n\n- items in a list\n- and more items\n\n"
).split(" ")


async def scenario(tokens: int, rate: float | None, lanes: int) -> dict[str, float]:
    engine = FakeEngine()  # the tests' engine, kept in step with the app by mypy
    app = WorkbenchApp(
        engine_factory=lambda: engine, animate=False, watch_workspace=False, warm_up=False
    )
    sent: dict[str, float] = {}
    handled: dict[str, float] = {}
    original = PromptInput._on_key

    async def timed_on_key(self: PromptInput, event: events.Key) -> None:
        if event.character and event.character in sent and event.character not in handled:
            handled[event.character] = time.perf_counter()
        await original(self, event)

    PromptInput._on_key = timed_on_key  # type: ignore[method-assign]
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            while app.engine is None or app.view is None:
                await pilot.pause(0.01)
            publish = engine.listeners[0]
            sid = "s_bench"
            runs = [f"r_{i}" for i in range(lanes)]
            start_events: list[Any] = []
            if lanes > 1:
                start_events.append(
                    RunStarted(
                        session_id=sid,
                        run_id="r_team",
                        target_kind="team",
                        target="desk",
                        input="go",
                        seq=1,
                    )
                )
                app.view.show("team")
            for i, run in enumerate(runs):
                start_events.append(
                    RunStarted(
                        session_id=sid,
                        run_id=run,
                        parent_run_id="r_team" if lanes > 1 else None,
                        source=f"member{i}" if lanes > 1 else "helper",
                        target_kind="agent",
                        target=f"member{i}" if lanes > 1 else "helper",
                        input="go",
                        seq=len(start_events) + 1,
                    )
                )
            app.feed(start_events)
            await pilot.pause(0.2)
            app.prompt.focus()  # the keys go to the prompt, on every tab
            await pilot.pause(0.05)
            texts = [
                "".join(WORDS[j % len(WORDS)] + " " for j in range(tokens // lanes)) for _ in runs
            ]
            seq = len(start_events)
            keys = [chr(c) for c in range(0x4E00, 0x4E00 + 400)]  # distinct printable keys

            async def press_keys() -> None:
                for k in keys:
                    sent[k] = time.perf_counter()
                    app.post_message(events.Key(k, k))
                    await asyncio.sleep(0.05)

            presser = asyncio.create_task(press_keys())
            t0 = time.perf_counter()
            per_tick = 1 if rate is None else max(1, int(rate / 1000))
            emitted = 0
            for j in range(tokens // lanes):
                for i, run in enumerate(runs):
                    seq += 1
                    publish(
                        MessageDelta(
                            session_id=sid,
                            run_id=run,
                            parent_run_id="r_team" if lanes > 1 else None,
                            source=f"member{i}" if lanes > 1 else "helper",
                            message_id=f"m_{run}",
                            text=WORDS[j % len(WORDS)] + " ",
                            seq=seq,
                        )
                    )
                    emitted += 1
                if rate is None:
                    if emitted % 50 == 0:
                        await asyncio.sleep(0)
                elif emitted % per_tick == 0:
                    target = t0 + emitted / rate
                    await asyncio.sleep(max(0.0, target - time.perf_counter()))
            produced = time.perf_counter() - t0

            def rendered() -> bool:
                shown = {w.item.run_id: w.shown_text for w in app.query(AssistantMessage)}
                return all(
                    shown.get(r, "").rstrip() == t.rstrip()
                    for r, t in zip(runs, texts, strict=True)
                )

            while not rendered():
                await asyncio.sleep(0.005)
                if time.perf_counter() - t0 > 120:
                    raise RuntimeError("the stream never finished rendering")
            elapsed = time.perf_counter() - t0
            presser.cancel()
            await pilot.pause(0.2)
    finally:
        PromptInput._on_key = original  # type: ignore[method-assign]
    lat = sorted((handled[k] - sent[k]) * 1000 for k in handled)
    return {
        "lag": (elapsed - produced) * 1000,
        "offered": (tokens / produced),
        "rendered": tokens / elapsed,
        "worst": lat[-1] if lat else float("nan"),
        "p95": lat[int(len(lat) * 0.95) - 1] if lat else float("nan"),
        "keys": len(lat),
        "lost": len(sent) - len(handled),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=6000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = [
        ("chat, 2,000 tok/s offered", 2000.0, 1),
        ("chat, 10,000 tok/s offered", 10000.0, 1),
        ("chat, as fast as produced", None, 1),
        ("team, 8 lanes x 250 tok/s", 2000.0, 8),
    ]
    print(f"stream render, {args.tokens} tokens, median of {args.runs} runs, headless 120x40\n")
    print(
        "| scenario | offered tok/s | rendered tok/s | on screen after the last token "
        "| worst key latency | p95 key latency | keys |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, rate, lanes in rows:
        results = [asyncio.run(scenario(args.tokens, rate, lanes)) for _ in range(args.runs)]

        def med(key: str, results: list[dict[str, float]] = results) -> float:
            return statistics.median(r[key] for r in results)

        print(
            f"| {name} | {med('offered'):,.0f} | {med('rendered'):,.0f} | {med('lag'):.0f} ms "
            f"| {med('worst'):.0f} ms "
            f"| {med('p95'):.0f} ms | {med('keys'):.0f} ({med('lost'):.0f} unanswered) |"
        )
    print("\nbudget: 2,000 tok/s rendered, worst key latency < 100 ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
