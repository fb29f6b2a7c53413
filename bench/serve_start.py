"""``workbench serve``: what the first client waits for after the server starts.

For each workspace, a fresh ``workbench serve`` process (its own SQLite file), and four
times:

- **listening**: from the process's start to its "listening on" line;
- **first call at once**: a chat completion sent the moment it listens
  (``/v1/chat/completions``, the workspace's agent as the model), until its answer;
- **first call, 5 s later**: the same from another fresh process, sent 5 s after it
  listens (what the warm-up has done by then: a client that comes a moment later);
- **later calls**: the median of five more, one after another.

Workspaces: one agent on a local OpenAI-compatible server (tests/support/openai_server.py in
its own process, answering at once) through the direct path; the same with ``direct: false``
(through litellm, which ``serve`` imports while it starts, because a model needs it); the
offline ``test`` model. Then the same under load (one CPU burner per core). ``serve``
warms what its workspace needs in the background once it listens (litellm, when a model
needs it, and one call litellm answers itself): a call sent at once waits for that, one
sent a moment later should cost what a later one costs.

    python bench/serve_start.py [--runs 5] [--no-load]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.load import cpu_burners  # noqa: E402
from tests.support.openai_server import spawn  # noqa: E402

TOKEN = "bench-token"
SETTLE_S = 5.0


@dataclass
class Row:
    label: str
    model: str
    listening: list[float] = field(default_factory=list)
    first: list[float] = field(default_factory=list)
    settled: list[float] = field(default_factory=list)
    later: list[float] = field(default_factory=list)
    workspace: Path = Path()

    def clear(self) -> None:
        for times in (self.listening, self.first, self.settled, self.later):
            times.clear()


def ask(client: httpx.Client, url: str, text: str) -> float:
    t0 = time.perf_counter()
    r = client.post(
        f"{url}/v1/chat/completions",
        json={"model": "helper", "messages": [{"role": "user", "content": text}]},
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    answer = r.json()["choices"][0]["message"]["content"]
    if text not in answer:
        raise SystemExit(f"unexpected answer: {answer!r}")
    return elapsed


def once(row: Row, tmp: Path, settle: float = 0.0) -> None:
    script = Path(sys.executable).with_name("workbench")
    db = f"sqlite:///{tmp / f'serve-{time.monotonic_ns()}.db'}"
    env = {
        **os.environ,
        "WORKBENCH_TOKEN": TOKEN,
        "PYTHONUNBUFFERED": "1",
        "WORKBENCH_LOG": str(tmp / "serve.log"),
    }
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(script), "serve", "-w", str(row.workspace), "--db", db, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url = ""
    lines: list[str] = []
    for line in proc.stdout:
        lines.append(line)
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            url = found[1]
            break
    listening = time.perf_counter() - t0
    if not url:
        proc.kill()
        raise SystemExit(f"serve did not start:\n{''.join(lines)}")
    drain = threading.Thread(target=lambda: [None for _ in proc.stdout or ()], daemon=True)
    drain.start()
    try:
        with httpx.Client(timeout=120) as client:
            if settle:
                time.sleep(settle)
                row.settled.append(ask(client, url, "first"))
                return
            first = ask(client, url, "first")
            later = statistics.median(ask(client, url, f"later {i}") for i in range(5))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    row.listening.append(listening)
    row.first.append(first)
    row.later.append(later)


def phase(rows: list[Row], runs: int, tmp: Path, title: str) -> list[str]:
    """Measure every row ``runs`` times (after one unmeasured run each: the file cache,
    the .pyc files); the table."""
    load = os.getloadavg()[0]
    for row in rows:
        once(row, tmp)
        row.clear()
    for i in range(runs):
        for row in rows[i % len(rows) :] + rows[: i % len(rows)]:
            once(row, tmp)
            once(row, tmp, settle=SETTLE_S)
    return table(rows, title, load)


def table(rows: list[Row], title: str, load: float) -> list[str]:
    lines = [
        f"{title} (load average {load:.2f} at the start, median of {len(rows[0].first)})",
        "",
        "| workspace | listening | first call at once | first call, 5 s later | later calls |",
        "|---|--:|--:|--:|--:|",
    ]
    for row in rows:
        listening = statistics.median(row.listening)
        first, later = statistics.median(row.first), statistics.median(row.later)
        settled = statistics.median(row.settled)
        lines.append(
            f"| {row.label} | {listening:.2f} s | {first * 1000:.0f} ms ({first / later:.1f}x) "
            f"| {settled * 1000:.0f} ms ({settled / later:.1f}x) | {later * 1000:.1f} ms |"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-load", action="store_true", help="skip the phase under load")
    args = parser.parse_args()
    if not Path(sys.executable).with_name("workbench").exists():
        print("install the command first: pip install -e . --no-deps", file=sys.stderr)
        return 2
    server, base = spawn()
    try:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            local = f'{{model: openai/fake, api_base: "{base}", api_key: none}}'
            rows = [
                Row("local server, direct path", local),
                Row("local server, `direct: false` (litellm)", local[:-1] + ", direct: false}"),
                Row("the `test` model", "test"),
            ]
            for i, row in enumerate(rows):
                row.workspace = tmp / f"ws{i}"
                row.workspace.mkdir()
                (row.workspace / "workbench.yaml").write_text(
                    f"models:\n  default: {row.model}\nagents:\n  helper:\n    instructions: Hi.\n"
                )
            out = phase(rows, args.runs, tmp, "quiet")
            if not args.no_load:
                with cpu_burners() as burners:
                    out += ["", *phase(rows, args.runs, tmp, f"under load ({burners} CPU burners)")]
            print("\n".join(out))
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
