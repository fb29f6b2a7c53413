"""One accumulator for a streamed OpenAI-style completion, whichever path it comes by: the
direct path's chunks (JSON parsed from the wire) and litellm's (``ModelResponseStream``
objects) give the same turn. Chunks as providers send them: text split anywhere (with
``<angle brackets>`` and escape codes), tool calls whose id, name and arguments come in
pieces, parallel calls interleaved, a call id reused across runs (``call_t2_0``), usage in
the last chunk or under Groq's ``x_groq``."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.models import ModelTurn, _Accumulator, litellm_module

TEXT = st.text(alphabet=st.sampled_from(list("ab <>/\x1b[]0;é\n\"'{}")), max_size=12)


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


@st.composite
def streams(draw: st.DrawFn) -> list[dict[str, Any]]:
    chunks: list[dict[str, Any]] = [_chunk({"role": "assistant", "content": ""})]
    for piece in draw(st.lists(TEXT, max_size=6)):
        chunks.append(_chunk({"content": piece}))
    calls = draw(
        st.lists(st.tuples(st.sampled_from(["word_count", "files__read"]), TEXT), max_size=3)
    )
    queues: list[list[dict[str, Any]]] = []
    for index, (name, args) in enumerate(calls):
        args_json = json.dumps({"text": args})
        cut = draw(st.integers(0, len(args_json)))
        first = {
            "index": index,
            "id": f"call_t2_{index}",
            "type": "function",
            "function": {"name": name, "arguments": args_json[:cut]},
        }
        queues.append([first, {"index": index, "function": {"arguments": args_json[cut:]}}])
    # parallel calls interleave; each call's pieces come in order
    while any(queues):
        i = draw(st.sampled_from([i for i, q in enumerate(queues) if q]))
        chunks.append(_chunk({"tool_calls": [queues[i].pop(0)]}))
    chunks.append(_chunk({}, finish="tool_calls" if calls else "stop"))
    usage = {"prompt_tokens": draw(st.integers(0, 10**6)), "completion_tokens": 3}
    if draw(st.booleans()):
        chunks.append({**_chunk({}), "choices": [], "usage": {**usage, "total_tokens": 0}})
    return chunks


def _turn(chunks: list[Any]) -> tuple[ModelTurn, str]:
    acc = _Accumulator("m")
    streamed = "".join(acc.add(c) for c in chunks)
    return acc.turn(), streamed


@settings(max_examples=60, deadline=None)
@given(streams())
def test_wire_chunks_and_litellm_objects_give_the_same_turn(chunks: list[dict[str, Any]]) -> None:
    stream_type = litellm_module().types.utils.ModelResponseStream
    from_wire, wire_text = _turn(chunks)
    from_litellm, litellm_text = _turn([stream_type(**c) for c in chunks])
    assert from_wire == from_litellm
    assert wire_text == litellm_text == from_wire.text
    assert from_wire.text == "".join(
        c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]
    )
    for call in from_wire.tool_calls:
        assert json.loads(call.arguments).keys() == {"text"}  # the pieces, joined in order


def test_groq_usage_and_a_call_without_an_index() -> None:
    acc = _Accumulator("groq/llama")
    acc.add(
        _chunk({"tool_calls": [{"id": "call_1", "function": {"name": "f", "arguments": "{}"}}]})
    )
    acc.add(
        {
            **_chunk({}, finish="tool_calls"),
            "x_groq": {"usage": {"prompt_tokens": 9, "completion_tokens": 4}},
        }
    )
    turn = acc.turn()
    assert [(c.id, c.name, c.arguments) for c in turn.tool_calls] == [("call_1", "f", "{}")]
    assert (turn.usage.prompt_tokens, turn.usage.completion_tokens) == (9, 4)
    assert turn.finish_reason == "tool_calls"
