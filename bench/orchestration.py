"""Orchestration overhead: teams and workflows against the raw litellm calls they make.

Against a local OpenAI-compatible server (a separate process, so its work is not billed to
the client), in one process and one run:

- a ``broadcast`` team of 8 members and a leader: the engine's run (8 member runs at once,
  then the leader, every event appended to a SQLite store) against the same 9 model calls
  made with ``litellm.acompletion(stream=True)`` directly (8 concurrent, then 1);
- a workflow of 50 agent steps: the engine's run against 50 sequential raw calls;
- a workflow of 50 function steps: no model at all, the engine's own cost per step.

The engine runs each scenario twice over: with ``direct: false`` on the model, so that it
makes the very litellm calls of the baseline and the difference is the orchestration (the
ratio and the overhead columns), and with the default model path (an ``openai/`` model with
an ``api_base`` speaks to the server directly, without litellm), for reference.

Each scenario runs ``--repeat`` times after a warm-up, rotating which of the three goes
first, and the medians are compared. The server answers at once; ``--delay`` makes it wait
that many ms per call (a model's latency), which only shrinks the ratios.

    python bench/orchestration.py [--repeat 9] [--delay 0]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEMBERS = 8
STEPS = 50
TASK = "Name one colour."
REPLY = "Blue is a colour."


def start_server(delay_ms: float) -> tuple[subprocess.Popen[str], str, Path]:
    """The fake model server in its own process, answering ``REPLY`` to everything."""
    script = Path(tempfile.mkdtemp()) / "replies.py"
    script.write_text(
        "import asyncio, sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from tests.support.openai_server import FakeOpenAI, Reply\n"
        "async def main():\n"
        f"    reply = lambda req: Reply(text={REPLY!r}, delay={delay_ms / 1000!r})\n"
        "    async with FakeOpenAI(responder=reply) as srv:\n"
        "        print('READY', srv.base_url, flush=True)\n"
        "        await asyncio.Event().wait()\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ROOT)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("READY"):
        raise SystemExit(f"server did not start: {line!r}")
    return proc, line.split()[1], script


def write_workspace(folder: Path, base_url: str, *, direct: bool) -> None:
    members = [f"m{i}" for i in range(1, MEMBERS + 1)]
    agents = "\n".join(f"  {m}: {{instructions: You are {m}.}}" for m in [*members, "lead"])
    agent_steps = "\n".join(
        f"      - {{step: s{i}, agent: m{i % MEMBERS + 1}, input: '{{input}}'}}"
        for i in range(1, STEPS + 1)
    )
    function_steps = "\n".join(
        f"      - {{step: f{i}, function: 'fns:step'}}" for i in range(1, STEPS + 1)
    )
    (folder / "fns.py").write_text("def step(ctx):\n    return ctx.input\n")
    (folder / "workbench.yaml").write_text(
        f"""models:
  default: {{model: openai/fake, api_base: "{base_url}", api_key: x, direct: {str(direct).lower()}}}
agents:
{agents}
teams:
  eight: {{mode: broadcast, leader: lead, members: [{", ".join(members)}]}}
workflows:
  fifty:
    steps:
{agent_steps}
  fifty_functions:
    steps:
{function_steps}
approvals:
  default: allow
"""
    )


# -- the raw calls ------------------------------------------------------------------------


def raw_call(base_url: str) -> Callable[[str, str], Awaitable[str]]:
    """One streamed completion through ``litellm.acompletion``, consumed to the end."""
    from workbench.models import litellm_module

    ll = litellm_module()

    async def call(system: str, user: str) -> str:
        stream = await ll.acompletion(
            model="openai/fake",
            api_base=base_url,
            api_key="x",
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            stream=True,
            stream_options={"include_usage": True},
            num_retries=0,
            timeout=120,  # what the engine passes (litellm keys its client cache on it)
        )
        text: list[str] = []
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    text.append(choice.delta.content)
        return "".join(text)

    return call


async def raw_broadcast(call: Callable[[str, str], Awaitable[str]]) -> None:
    answers = await asyncio.gather(*(call(f"You are m{i}.", TASK) for i in range(1, MEMBERS + 1)))
    combined = "\n\n".join(f"### m{i}\n{a}" for i, a in enumerate(answers, 1))
    await call("You are lead. Combine the answers.", f"Task:\n{TASK}\n\n{combined}")


async def raw_steps(call: Callable[[str, str], Awaitable[str]]) -> None:
    for i in range(1, STEPS + 1):
        await call(f"You are m{i % MEMBERS + 1}.", TASK)


# -- measuring ----------------------------------------------------------------------------


async def settle() -> None:
    """Let background tasks (litellm's success logging) run, and collect garbage."""
    await asyncio.sleep(0.2)
    gc.collect()


async def timed(fn: Callable[[], Awaitable[Any]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return (time.perf_counter() - t0) * 1000


Row = tuple[str, int, list[float], list[float], list[float]]
"""Scenario, units (model calls or steps), then per repetition: raw ms, engine through
litellm ms, engine ms (the three of one repetition ran back to back)."""


async def measure(repeat: int, delay_ms: float) -> list[Row]:
    from workbench.engine import Engine

    server, base_url, script = start_server(delay_ms)
    tmp = Path(tempfile.mkdtemp(prefix="wb-orch-"))
    try:
        # The same workspace twice: with the engine's default model path (the direct
        # OpenAI-compatible route for an openai/ model with an api_base) and with
        # ``direct: false``, which makes the very litellm calls the raw baseline makes.
        folders = {"litellm": tmp / "litellm", "default": tmp / "default"}
        for kind, folder in folders.items():
            folder.mkdir()
            write_workspace(folder, base_url, direct=kind == "default")
        call = raw_call(base_url)
        async with (
            Engine.open(folders["litellm"], f"sqlite:///{tmp}/litellm.db") as via_litellm,
            Engine.open(folders["default"], f"sqlite:///{tmp}/default.db") as default,
        ):

            def run(engine: Engine, target: str) -> Callable[[], Awaitable[None]]:
                async def go() -> None:
                    outcome = await engine.run(target, TASK)
                    assert outcome.ok, outcome.error

                return go

            async def nothing() -> None:
                return None

            scenarios: list[tuple[str, int, str, Callable[[], Awaitable[Any]]]] = [
                (
                    f"broadcast team, {MEMBERS} members + leader",
                    MEMBERS + 1,
                    "eight",
                    lambda: raw_broadcast(call),
                ),
                (f"workflow, {STEPS} agent steps", STEPS, "fifty", lambda: raw_steps(call)),
                (f"workflow, {STEPS} function steps", STEPS, "fifty_functions", nothing),
            ]
            rows: list[Row] = []
            for name, units, target, raw_fn in scenarios:
                fns = [raw_fn, run(via_litellm, target), run(default, target)]
                for fn in fns:
                    await fn()  # warm-up: imports, connection pools, module loading
                times: list[list[float]] = [[], [], []]
                for i in range(repeat):
                    # Rotate which goes first, and let litellm's background logging tasks of
                    # one finish before the next is timed, so none pays for another.
                    for k in range(3):
                        j = (i + k) % 3
                        times[j].append(await timed(fns[j]))
                        await settle()
                rows.append((name, units, times[0], times[1], times[2]))
            return rows
    finally:
        server.terminate()
        server.wait(10)
        script.unlink(missing_ok=True)


def table(rows: list[Row], delay_ms: float) -> str:
    """Medians; the ratio and the overhead are medians of the paired repetitions, which
    ran back to back, so a change in the machine's load between repetitions cancels out."""
    med = statistics.median
    out = [
        f"server delay per call: {delay_ms:g} ms; medians of {len(rows[0][2])} runs",
        "",
        "| scenario | units | raw litellm (ms) | engine via litellm (ms) | ratio "
        "| overhead per unit (ms) | engine, default model path (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, units, raw, via, eng in rows:
        pairs = list(zip(raw, via, strict=True))
        ratio = f"{med(v / r for r, v in pairs):.2f}x" if med(raw) > 0.5 else "n/a"
        overhead = med(v - r for r, v in pairs) / units
        out.append(
            f"| {name} | {units} | {med(raw):.1f} | {med(via):.1f} | {ratio} "
            f"| {overhead:.2f} | {med(eng):.1f} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=9, help="measured runs per scenario")
    parser.add_argument("--delay", type=float, default=0.0, help="server delay per call, ms")
    args = parser.parse_args()
    rows = asyncio.run(measure(args.repeat, args.delay))
    print(table(rows, args.delay))


if __name__ == "__main__":
    main()
