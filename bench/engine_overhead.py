"""Engine overhead: a one-tool-call conversation (two model calls) through every layer.

Runs N conversations against a local OpenAI-compatible server (a separate process, so the
server's work is not billed to the client) through:

- raw httpx (the floor),
- the openai SDK,
- ``litellm.acompletion`` directly,
- the workbench engine (agent loop, approval policy, events appended to a SQLite store),
- agno (the peer; ``pip install -e '.[bench]'``), when installed,

streaming and not, in one process, and prints the median ms per conversation and each
ratio to the engine. Then agent creation time and memory held per live agent (1,000 agents
with one tool each), against agno measured the same way.

    python bench/engine_overhead.py [--runs 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.openai_server import spawn  # noqa: E402

PROMPT = "How many words are in 'the quick brown fox'?"
TOOL_SCHEMA = {
    "type": "function",
    "function": {
        "name": "word_count",
        "description": "Count the words in a text.",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "The text."}},
            "required": ["text"],
        },
    },
}


def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text.
    """
    return len(text.split())


# -- one conversation per layer ------------------------------------------------------------


def _messages_after(call: dict[str, Any], result: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": PROMPT},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": result},
    ]


async def _sse(resp: Any) -> tuple[str, list[dict[str, Any]]]:
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    async for line in resp.aiter_lines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[6:])
        for choice in chunk.get("choices", []):
            delta = choice.get("delta", {})
            if delta.get("content"):
                text.append(delta["content"])
            for tc in delta.get("tool_calls") or []:
                slot = calls.setdefault(
                    tc["index"],
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if tc.get("id"):
                    slot["id"] = tc["id"]
                fn = tc.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
    return "".join(text), [calls[i] for i in sorted(calls)]


async def _collect(stream: Any) -> tuple[str, list[dict[str, Any]]]:
    """Text and tool calls from a stream of SDK chunk objects (openai SDK and litellm alike)."""
    text: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    async for chunk in stream:
        for ch in chunk.choices:
            if ch.delta.content:
                text.append(ch.delta.content)
            for tc in ch.delta.tool_calls or []:
                slot = calls.setdefault(
                    tc.index,
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["function"]["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    slot["function"]["arguments"] += tc.function.arguments
    return "".join(text), [calls[i] for i in sorted(calls)]


def httpx_layer(base: str, stream: bool) -> Callable[[], Awaitable[str]]:
    import httpx

    client = httpx.AsyncClient(base_url=base, headers={"Authorization": "Bearer x"})

    async def turn(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
        body = {"model": "fake", "messages": messages, "tools": [TOOL_SCHEMA], "stream": stream}
        if stream:
            async with client.stream("POST", "/chat/completions", json=body) as resp:
                return await _sse(resp)
        r = await client.post("/chat/completions", json=body)
        msg = r.json()["choices"][0]["message"]
        return msg.get("content") or "", msg.get("tool_calls") or []

    async def convo() -> str:
        _, calls = await turn([{"role": "user", "content": PROMPT}])
        args = json.loads(calls[0]["function"]["arguments"])
        text, _ = await turn(_messages_after(calls[0], str(word_count(**args))))
        return text

    return convo


def openai_layer(base: str, stream: bool) -> Callable[[], Awaitable[str]]:
    import openai

    client = openai.AsyncOpenAI(base_url=base, api_key="x")

    async def turn(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
        if stream:
            s = await client.chat.completions.create(
                model="fake",
                messages=messages,
                tools=[TOOL_SCHEMA],
                stream=True,  # type: ignore[arg-type]
            )
            return await _collect(s)
        r = await client.chat.completions.create(
            model="fake", messages=messages, tools=[TOOL_SCHEMA]
        )  # type: ignore[arg-type]
        m = r.choices[0].message
        return m.content or "", [tc.model_dump() for tc in m.tool_calls or []]

    async def convo() -> str:
        _, calls = await turn([{"role": "user", "content": PROMPT}])
        args = json.loads(calls[0]["function"]["arguments"])
        text, _ = await turn(_messages_after(calls[0], str(word_count(**args))))
        return text

    return convo


def litellm_layer(base: str, stream: bool) -> Callable[[], Awaitable[str]]:
    from workbench.models import litellm_module

    ll = litellm_module()

    async def turn(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
        kw = {
            "model": "openai/fake",
            "api_base": base,
            "api_key": "x",
            "messages": messages,
            "tools": [TOOL_SCHEMA],
        }
        if stream:
            s = await ll.acompletion(stream=True, **kw)
            return await _collect(s)
        r = await ll.acompletion(**kw)
        m = r.choices[0].message
        return m.content or "", [tc.model_dump() for tc in m.tool_calls or []]

    async def convo() -> str:
        _, calls = await turn([{"role": "user", "content": PROMPT}])
        args = json.loads(calls[0]["function"]["arguments"])
        text, _ = await turn(_messages_after(calls[0], str(word_count(**args))))
        return text

    return convo


def engine_layer(base: str, stream: bool, tmp: Path) -> tuple[Callable[[], Awaitable[str]], Any]:
    from workbench.engine import Engine

    ws = tmp / f"ws-{'s' if stream else 'n'}"
    ws.mkdir()
    (ws / "benchtools.py").write_text(
        "def word_count(text: str) -> int:\n"
        '    """Count the words in a text.\n\n    Args:\n        text: The text.\n    """\n'
        "    return len(text.split())\n"
    )
    (ws / "workbench.yaml").write_text(
        "models:\n"
        f"  local: {{model: openai/fake, api_base: '{base}', api_key: x, stream: {str(stream).lower()}}}\n"
        "agents:\n"
        "  counter:\n"
        "    model: local\n"
        "    tools: ['benchtools:word_count']\n"
        "approvals:\n"
        "  default: allow\n"
    )
    engine = Engine.open(ws, f"sqlite:///{ws}/wb.db")

    async def convo() -> str:
        outcome = await engine.run("counter", PROMPT)
        if not outcome.ok:
            raise RuntimeError(outcome.error)
        return outcome.output

    return convo, engine


def agno_layer(base: str, stream: bool) -> Callable[[], Awaitable[str]] | None:
    try:
        from agno.agent import Agent as AgnoAgent
        from agno.models.openai import OpenAIChat
    except ImportError:
        return None
    agent = AgnoAgent(model=OpenAIChat(id="fake", base_url=base, api_key="x"), tools=[word_count])

    async def convo() -> str:
        if stream:
            text = []
            async for ev in agent.arun(PROMPT, stream=True):
                content = getattr(ev, "content", None)
                if isinstance(content, str) and getattr(ev, "event", "") == "RunContent":
                    text.append(content)
            return "".join(text)
        out = await agent.arun(PROMPT)
        return str(out.content)

    return convo


async def measure(fn: Callable[[], Awaitable[str]], runs: int) -> float:
    for _ in range(5):  # warm-up: connections, imports, caches
        await fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def creation(runs: int = 1000) -> dict[str, tuple[float, float]]:
    """Microseconds to create one agent, and KiB it keeps, for 1,000 agents with one tool."""
    from workbench.agent import Agent
    from workbench.models import LiteLLMModel
    from workbench.tools import tool

    def ours(i: int) -> Any:
        return Agent(
            name=f"a{i}",
            model=LiteLLMModel(
                "openai/fake", {"api_base": "http://127.0.0.1:1/v1", "api_key": "x"}
            ),
            tools=[tool(word_count)],
        )

    makers: dict[str, Callable[[int], Any]] = {"workbench": ours}
    try:
        from agno.agent import Agent as AgnoAgent
        from agno.models.openai import OpenAIChat

        makers["agno"] = lambda i: AgnoAgent(
            name=f"a{i}",
            model=OpenAIChat(id="fake", base_url="http://127.0.0.1:1/v1", api_key="x"),
            tools=[word_count],
        )
    except ImportError:
        pass
    out: dict[str, tuple[float, float]] = {}
    for name, make in makers.items():
        make(0)
        gc.collect()
        t0 = time.perf_counter()
        keep = [make(i) for i in range(runs)]
        us = (time.perf_counter() - t0) / runs * 1e6
        del keep
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        keep = [make(i) for i in range(runs)]
        gc.collect()
        kib = (tracemalloc.get_traced_memory()[0] - base) / runs / 1024
        tracemalloc.stop()
        del keep
        out[name] = (us, kib)
    return out


async def main_async(args: argparse.Namespace) -> None:
    proc, base = spawn()
    tmp = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    os.environ["WORKBENCH_LOG"] = str(tmp / "bench.log")
    from workbench.logs import setup_logging

    setup_logging("WARNING")
    results: dict[str, dict[str, float]] = {}
    engines: list[Any] = []
    try:
        for stream in (False, True):
            mode = "stream" if stream else "no stream"
            layers: dict[str, Callable[[], Awaitable[str]] | None] = {
                "httpx (floor)": httpx_layer(base, stream),
                "openai SDK": openai_layer(base, stream),
                "litellm.acompletion": litellm_layer(base, stream),
            }
            convo, engine = engine_layer(base, stream, tmp)
            engines.append(engine)
            layers["workbench engine"] = convo
            layers["agno"] = agno_layer(base, stream)
            for name, fn in layers.items():
                if fn is None:
                    continue
                meds = [await measure(fn, args.runs) for _ in range(args.repeat)]
                results.setdefault(name, {})[mode] = statistics.median(meds)
    finally:
        for e in engines:
            await e.aclose()
        proc.terminate()
        proc.wait()
    eng = results["workbench engine"]
    print(
        f"\nOne-tool-call conversation (2 model calls), median ms per run, {args.runs} runs x {args.repeat}"
    )
    print(f"{'layer':<22} {'no stream':>10} {'ratio':>7} {'stream':>10} {'ratio':>7}")
    for name, r in results.items():
        cells = []
        for mode in ("no stream", "stream"):
            v = r.get(mode)
            cells.append(
                f"{v:>10.2f} {v / eng[mode]:>6.2f}x" if v is not None else f"{'-':>10} {'-':>7}"
            )
        print(f"{name:<22} {cells[0]} {cells[1]}")
    print("\nAgent creation, 1,000 agents with one tool each")
    print(f"{'framework':<12} {'us/agent':>10} {'KiB kept/agent':>15}")
    for name, (us, kib) in creation().items():
        print(f"{name:<12} {us:>10.1f} {kib:>15.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--repeat", type=int, default=3)
    asyncio.run(main_async(p.parse_args()))


if __name__ == "__main__":
    main()
