"""Open a 100,000-event session in the replay view: time to the first frame, and memory.

A session of ``--events`` events (turns of a chat: a prompt, a streamed answer of many
deltas, tool calls with approvals, run ends) is written to a SQLite store in a temporary
folder. A fresh process then opens the app headless (120x40) on that store and the replay
view on the session, and reports:

- time from asking for the replay to its first frame (the timeline knows the size, the
  panes are drawn): budget < 1 s;
- time to jump to the end (every event folded, in a worker, then the panes redrawn);
- the process's peak resident memory after both: budget < 300 MB.

The replay view reads events page by page and never mounts more than a window of items, so
neither figure grows with the session the way a list of 100,000 widgets would.

    python bench/replay_load.py [--events 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def build(url: str, n: int) -> str:
    """Write a session of about ``n`` events; returns its id."""
    from workbench.events import (
        ApprovalRequired,
        ApprovalResolved,
        MessageCompleted,
        MessageDelta,
        RunCompleted,
        RunStarted,
        ToolCall,
        ToolCallRequest,
        ToolResult,
        Usage,
    )
    from workbench.store import Store

    store = Store.open(url)
    sid = store.create_session(title="a long session", workspace=str(ROOT)).id
    events: list[Any] = []
    turn = 0
    ts = 1_700_000_000.0
    while len(events) < n:
        turn += 1
        run = f"r_{turn:06d}"
        common = {"session_id": sid, "run_id": run, "source": "helper"}

        def add(ev: Any) -> None:
            nonlocal ts
            ts += 0.01
            ev.ts = ts
            events.append(ev)

        add(
            RunStarted(
                **common,
                target_kind="agent",
                target="helper",
                input=f"question {turn}",
                model="test",
            )
        )
        add(
            MessageCompleted(
                **common, message_id=f"m_in_{turn}", role="user", content=f"question {turn}"
            )
        )
        call = f"call_{turn}"
        add(
            MessageCompleted(
                **common,
                message_id=f"m_t_{turn}",
                role="assistant",
                content="",
                tool_calls=[
                    ToolCallRequest(id=call, tool="files.write", arguments={"path": f"f{turn}.txt"})
                ],
                usage=Usage(prompt_tokens=100, completion_tokens=10),
            )
        )
        add(
            ApprovalRequired(
                **common,
                call_id=call,
                tool="files.write",
                arguments={"path": f"f{turn}.txt"},
                reason="ask",
            )
        )
        add(ApprovalResolved(**common, call_id=call, tool="files.write", decision="allow"))
        add(
            ToolCall(**common, call_id=call, tool="files.write", arguments={"path": f"f{turn}.txt"})
        )
        add(
            ToolResult(
                **common, call_id=call, tool="files.write", output="wrote 10 bytes", duration_ms=3
            )
        )
        words = [f"word{i}" for i in range(80)]
        for i, w in enumerate(words):
            add(MessageDelta(**common, message_id=f"m_a_{turn}", text=(" " if i else "") + w))
        text = " ".join(words)
        add(
            MessageCompleted(
                **common,
                message_id=f"m_a_{turn}",
                role="assistant",
                content=text,
                usage=Usage(prompt_tokens=150, completion_tokens=80),
                cost=0.001,
            )
        )
        add(
            RunCompleted(
                **common,
                output=text,
                usage=Usage(prompt_tokens=250, completion_tokens=90),
                duration_ms=900,
            )
        )
    for i in range(0, len(events), 8192):
        store.append_many(events[i : i + 8192])
    store.close()
    return sid


def child(url: str, sid: str, ws: str) -> None:
    """In a fresh process: open the app and the replay view; print the figures as JSON."""
    t_start = time.perf_counter()
    from screens.app import WorkbenchApp
    from screens.replay import ReplayScreen

    out: dict[str, float] = {}

    async def drive(app: WorkbenchApp) -> None:
        pass

    class Bench(WorkbenchApp):
        def open_replay(self, session_id: str, **_: Any) -> None:
            assert self.engine is not None
            screen = ReplayScreen(self.engine, session_id, autoplay=False, graph_source=None)
            t0 = time.perf_counter()

            def opened() -> None:
                if screen.timeline.total == 0:
                    self.set_timer(0.005, opened)
                    return
                # first frame of the replay with the session known
                self.call_after_refresh(lambda: first_frame(t0, screen))

            self.push_screen(screen)
            self.set_timer(0.005, opened)

    def first_frame(t0: float, screen: ReplayScreen) -> None:
        out["first_frame_s"] = time.perf_counter() - t0
        out["since_process_start_s"] = time.perf_counter() - t_start
        out["events"] = screen.timeline.total
        t1 = time.perf_counter()
        screen.action_speed(3)  # instant: fold everything, redraw

        def at_end() -> None:
            if screen.position < screen.timeline.total or screen.timeline.busy:
                app.set_timer(0.01, at_end)
                return

            def done() -> None:
                out["jump_to_end_s"] = time.perf_counter() - t1
                out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                out["items_mounted"] = sum(len(t._widgets) for t in screen.query("Transcript"))  # type: ignore[attr-defined]
                print(json.dumps(out), flush=True)
                app.exit(0)

            app.call_after_refresh(done)

        app.set_timer(0.01, at_end)

    app = Bench(ws, url, replay=sid, warm_up=False, watch_workspace=False, animate=False)
    app.run(headless=True, size=(120, 40))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--child", nargs=3, metavar=("URL", "SESSION", "WORKSPACE"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return 0
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ws = tmp / "ws"
        ws.mkdir()
        (ws / "workbench.yaml").write_text("models:\n  default: test\nagents:\n  helper: {}\n")
        url = f"sqlite:///{tmp / 'replay.db'}"
        t0 = time.perf_counter()
        sid = build(url, args.events)
        print(f"wrote {args.events:,}+ events in {time.perf_counter() - t0:.1f} s")
        env = {
            **os.environ,
            "WORKBENCH_LOG": str(tmp / "wb.log"),
            "XDG_DATA_HOME": str(tmp / "data"),
        }
        runs = []
        for _ in range(3):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", url, sid, str(ws)],
                capture_output=True,
                text=True,
                env=env,
                cwd=ROOT,
                timeout=300,
            )
            line = next((x for x in proc.stdout.splitlines() if x.startswith("{")), None)
            if line is None:
                print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                return 1
            runs.append(json.loads(line))
    runs.sort(key=lambda r: r["first_frame_s"])
    r = runs[len(runs) // 2]
    print(
        f"\nreplay of a {r['events']:,}-event session, headless 120x40, median of {len(runs)} processes\n"
    )
    print("| what | figure | budget |")
    print("|---|---|---|")
    print(f"| replay view: request to first frame | {r['first_frame_s'] * 1000:.0f} ms | < 1 s |")
    print(
        f"| process start to replay first frame (engine open included) | {r['since_process_start_s'] * 1000:.0f} ms | |"
    )
    print(f"| jump to the end (fold every event, redraw) | {r['jump_to_end_s'] * 1000:.0f} ms | |")
    print(f"| peak resident memory | {r['peak_rss_mb']:.0f} MB | < 300 MB |")
    print(f"| transcript items mounted at the end | {r['items_mounted']:.0f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
