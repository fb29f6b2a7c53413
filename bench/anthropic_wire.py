"""Anthropic models: the Messages API against an OpenAI-compatible endpoint, on our side.

Anthropic offers two doors: its Messages API (``/v1/messages``) and an OpenAI-compatible
endpoint (``/v1/chat/completions``). Which one Workbench speaks cannot be timed against
Anthropic from here (no network, and the server's time would drown ours), so this measures
what each costs on our side, against a local server that speaks both from the same script
(tests/support/openai_server.py in its own process, answering at once): a one-tool-call
conversation (two streamed model calls) through

- the direct path speaking the Messages API (``anthropic/...``: the request translated from
  the OpenAI-format conversation, the event stream folded back);
- the direct path speaking the OpenAI wire format (how Anthropic's OpenAI-compatible
  endpoint would be spoken: no translation at all);
- litellm's Anthropic provider (``direct: false``), what every ``anthropic/`` model used
  before, for reference.

Then the translation alone (a request built and a recorded stream folded), without I/O.
Median of ``--repeat`` rounds of ``--runs`` conversations, the rows alternating.

    python bench/anthropic_wire.py [--runs 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.openai_server import spawn  # noqa: E402

TOOL = {
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
PROMPT = "How many words are in 'the quick brown fox'?"


def conversation(model: Any) -> Callable[[], Awaitable[str]]:
    """Two streamed calls: the model asks for the tool, then answers with its result."""
    from workbench.models import ModelTurn

    async def run() -> str:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": "You count words."},
            {"role": "user", "content": PROMPT},
        ]
        for _ in range(2):
            turn = None
            async for item in model.stream(messages, [TOOL]):
                if isinstance(item, ModelTurn):
                    turn = item
            assert turn is not None
            if not turn.tool_calls:
                return turn.text
            messages.append(
                {
                    "role": "assistant",
                    "content": turn.text or None,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments},
                        }
                        for c in turn.tool_calls
                    ],
                }
            )
            for c in turn.tool_calls:
                count = len(json.loads(c.arguments).get("text", "").split())
                messages.append({"role": "tool", "tool_call_id": c.id, "content": str(count)})
        raise AssertionError("no answer after the tool result")

    return run


def translation_only() -> Callable[[], None]:
    """Build a Messages request for the second call and fold a recorded stream."""
    from workbench.messages_api import StreamReader, request

    messages = [
        {"role": "system", "content": "You count words."},
        {"role": "user", "content": PROMPT},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "word_count", "arguments": '{"text": "a b c d"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "4"},
    ]
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 30, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        *(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}
            for w in "There are four words .".split()
        ),
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 5},
        },
        {"type": "message_stop"},
    ]
    lines = [json.dumps(e) for e in events]

    def run() -> None:
        body = request("claude-x", messages, [TOOL], {}, stream=True, max_tokens=4096)
        json.dumps(body)
        reader = StreamReader("anthropic/claude-x")
        for line in lines:
            reader.add(json.loads(line))
        reader.turn()

    return run


async def timed(fn: Callable[[], Awaitable[str]], runs: int) -> tuple[float, float]:
    """Wall and client CPU milliseconds per conversation (the server is another process:
    the CPU time is ours alone)."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(runs):
        await fn()
    return (time.perf_counter() - t0) / runs * 1000, (time.process_time() - c0) / runs * 1000


async def main_async(args: argparse.Namespace, url: str) -> None:
    from workbench.models import LiteLLMModel, litellm_async

    os.environ["ANTHROPIC_API_KEY"] = "x"
    os.environ["ANTHROPIC_BASE_URL"] = url
    await litellm_async()  # imported before the clocks start: its import is not the point
    models = {
        "direct, Messages API (anthropic/...)": LiteLLMModel("anthropic/claude-sonnet-4-5"),
        "direct, OpenAI wire (the compatible endpoint's way)": LiteLLMModel(
            "openai/claude-sonnet-4-5", {"api_base": f"{url}/v1", "api_key": "x"}
        ),
        "litellm, anthropic provider (direct: false)": LiteLLMModel(
            "anthropic/claude-sonnet-4-5", {"api_base": url, "api_key": "x"}, direct=False
        ),
    }
    fns = {label: conversation(m) for label, m in models.items()}
    for label, fn in fns.items():  # warm: connections, caches
        answer = await fn()
        assert answer.startswith("done: "), (label, answer)
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in fns}
    labels = list(fns)
    for i in range(args.repeat):
        for label in labels[i % len(labels) :] + labels[: i % len(labels)]:
            times[label].append(await timed(fns[label], args.runs))
    for m in models.values():
        await m.aclose()
    wall = {k: statistics.median(t[0] for t in v) for k, v in times.items()}
    cpu = {k: statistics.median(t[1] for t in v) for k, v in times.items()}
    base = labels[1]
    print(
        f"one-tool-call conversation (2 streamed calls), median of {args.repeat} x {args.runs}, "
        f"load average {os.getloadavg()[0]:.2f}\n"
    )
    print("| path | wall ms | x OpenAI wire | our CPU ms | x OpenAI wire |")
    print("|---|--:|--:|--:|--:|")
    for label in labels:
        print(
            f"| {label} | {wall[label]:.2f} | {wall[label] / wall[base]:.2f}x "
            f"| {cpu[label]:.2f} | {cpu[label] / cpu[base]:.2f}x |"
        )
    fn = translation_only()
    n = 5000
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    us = (time.perf_counter() - t0) / n * 1e6
    print(f"\nthe Messages translation alone (request built, 11-event stream folded): {us:.0f} µs")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server, base = spawn()
    url = base.removesuffix("/v1")
    try:
        asyncio.run(main_async(args, url))
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
