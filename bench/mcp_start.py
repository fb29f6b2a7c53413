"""What five stdio MCP servers cost before an agent's first model call.

Five real servers speaking MCP over stdio: ``mcp-server-time`` and ``mcp-server-git`` from
PyPI (two of each, under other names) and the test suite's server built on the SDK's own
``MCPServer``. An agent lists tools of all five; the time measured is from ``start_run``
to the first request reaching the model (a local OpenAI-compatible server in this
process), on a fresh engine each run, so every server starts cold.

Rows, each the median of ``--runs`` runs, in the same run of the script:

- each server alone; the slowest of them is the baseline (the budget: five servers cost
  no more than the slowest alone);
- the five started one after another, each waited for before the next (what Workbench did
  before: toolkit by toolkit), timed to the moment all five have listed their tools;
- the five through the engine (concurrently, as an agent now waits for its servers);
- the five warmed when the engine opens (``serve`` and the TUI do this), the prompt sent
  once they are ready: what a person who types after the app shows pays.

Then the same under load: a busy loop on every core in other processes.

    python bench/mcp_start.py [--runs 5] [--no-load]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.openai_server import FakeOpenAI, Reply  # noqa: E402

TOY = ROOT / "tests" / "support" / "mcp_servers" / "toy.py"
BIN = Path(sys.executable).parent


def servers(repo: Path) -> dict[str, dict[str, object]]:
    """The five servers, by name."""
    git = {"command": str(BIN / "mcp-server-git"), "args": ["--repository", str(repo)]}
    return {
        "time": {"command": str(BIN / "mcp-server-time")},
        "clock": {"command": str(BIN / "mcp-server-time")},
        "git": git,
        "vcs": dict(git),
        "toy": {"command": sys.executable, "args": [str(TOY)]},
    }


def write_workspace(folder: Path, base_url: str, mcp: dict[str, dict[str, object]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tools = [f"{name}.*" for name in mcp]
    text = {
        "models": {"fake": {"model": "openai/fake", "api_base": base_url, "api_key": "x"}},
        "mcp": mcp,
        "agents": {"a": {"model": "fake", "instructions": "Be brief.", "tools": tools}},
        "approvals": {"default": "allow"},
    }
    (folder / "workbench.yaml").write_text(json.dumps(text))  # JSON is YAML
    return folder


async def first_call(root: Path, db: str, srv: FakeOpenAI, warm_first: bool = False) -> float:
    """Seconds from start_run to the first model request, on a fresh engine."""
    from workbench.engine import Engine

    arrived: list[float] = []
    srv.responder = lambda req: (arrived.append(time.perf_counter()), Reply(text="ok"))[1]
    engine = Engine.open(root, db=db)
    try:
        if warm_first:
            engine.warm_toolkits()
            while any(
                s.state in ("idle", "starting")
                for s in engine.toolkit_statuses()
                if s.kind == "mcp"
            ):
                await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        await engine.run("a", "hi")
        return arrived[0] - t0
    finally:
        await engine.aclose()


async def one_after_another(root: Path) -> float:
    """Seconds for the five servers to list their tools, each started after the last."""
    from plugins.mcp import McpToolkit
    from workbench.workspace import load_workspace

    ws = load_workspace(root)
    kits = [McpToolkit(n, c.model_dump(), root) for n, c in ws.mcp.items()]
    try:
        t0 = time.perf_counter()
        for tk in kits:
            await tk.list_tools()
        return time.perf_counter() - t0
    finally:
        await asyncio.gather(*(tk.aclose() for tk in kits))


async def cpu_of(root: Path, db: str, srv: FakeOpenAI) -> tuple[float, float]:
    """CPU seconds of one cold run: the servers' (with their guards) and this process's."""
    import resource

    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s0 = resource.getrusage(resource.RUSAGE_SELF)
    await first_call(root, db, srv)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the guards are reaped by aclose
    s1 = resource.getrusage(resource.RUSAGE_SELF)
    children = c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime
    own = s1.ru_utime + s1.ru_stime - s0.ru_utime - s0.ru_stime
    return children, own


def burn() -> None:
    while True:
        pass


async def measure(runs: int, tmp: Path, srv: FakeOpenAI) -> list[tuple[str, float]]:
    repo = tmp / "repo"
    if not repo.exists():
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
    every = servers(repo)
    db = f"sqlite:///{tmp}/bench.db"
    all_five = write_workspace(tmp / "five", srv.base_url, every)
    alone = {n: write_workspace(tmp / f"alone-{n}", srv.base_url, {n: c}) for n, c in every.items()}

    async def median(fn: Callable[[], Awaitable[float]]) -> float:
        await fn()  # a first, unmeasured run: imports, the page cache
        return statistics.median([await fn() for _ in range(runs)])

    rows: list[tuple[str, float]] = []
    singles = {n: await median(lambda r=r: first_call(r, db, srv)) for n, r in alone.items()}
    slowest = max(singles, key=lambda n: singles[n])
    rows.append((f"slowest server alone ({slowest})", singles[slowest]))
    rows.append(("5 servers, one after another", await median(lambda: one_after_another(all_five))))
    rows.append(
        ("5 servers, concurrently (engine)", await median(lambda: first_call(all_five, db, srv)))
    )
    rows.append(
        (
            "5 servers warmed at open, prompt once ready",
            await median(lambda: first_call(all_five, db, srv, warm_first=True)),
        )
    )
    servers_cpu, own_cpu = await cpu_of(all_five, db, srv)
    rows.append(("(CPU of one cold run: the 5 servers)", servers_cpu))
    rows.append(("(CPU of one cold run: Workbench)", own_cpu))
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-load", action="store_true", help="skip the run under load")
    opts = parser.parse_args()
    from workbench.logs import setup_logging

    setup_logging()
    load_before = os.getloadavg()[0]
    results: dict[str, list[tuple[str, float]]] = {}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        async with FakeOpenAI() as srv:
            results["quiet"] = await measure(opts.runs, tmp, srv)
            if not opts.no_load:
                burners = [
                    multiprocessing.Process(target=burn, daemon=True)
                    for _ in range(os.cpu_count() or 2)
                ]
                for b in burners:
                    b.start()
                try:
                    results["under load"] = await measure(opts.runs, tmp, srv)
                finally:
                    for b in burners:
                        b.terminate()
                        b.join()
    cols = list(results)
    print(f"MCP start-up before the first model call (median of {opts.runs}, ms)")
    print(f"{os.cpu_count()} cores, load average before: {load_before:.2f}\n")
    header = "| what | " + " | ".join(f"{c} ms | ratio" for c in cols) + " |"
    print(header)
    print("|---|" + "--:|--:|" * len(cols))
    for i, (label, _) in enumerate(results["quiet"]):
        cells = []
        for c in cols:
            base = results[c][0][1]
            value = results[c][i][1]
            cells.append(f"{value * 1000:.0f} | {value / base:.2f}x")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    asyncio.run(main())
