"""Tests for the scripted OpenAI-compatible server in ``tests.support.openai_server``."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.support.openai_server import (
    FakeOpenAI,
    FakeOpenAIThread,
    Reply,
    Script,
    _split_text,
    echo_responder,
    minimal_args,
)

# litellm must never fetch its remote model-cost map in tests.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"

REPO = Path(__file__).resolve().parents[1]

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "metric": {"type": "boolean"},
            },
            "required": ["city", "days"],
        },
    },
}
SEARCH_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "search",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}
USER_HI = [{"role": "user", "content": "hi"}]


def client_for(srv: FakeOpenAI, **kwargs: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=srv.base_url, api_key="x", max_retries=0, **kwargs)


async def collect(stream: Any) -> list[Any]:
    return [chunk async for chunk in stream]


def assemble_tool_calls(chunks: list[Any]) -> dict[int, dict[str, str]]:
    """Reassemble streamed tool-call deltas the way agent frameworks do."""
    calls: dict[int, dict[str, str]] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
    return calls


# ----------------------------------------------------------------- openai client


async def test_non_streaming_text_and_recording() -> None:
    async with FakeOpenAI([Reply(text="hello there, world")]) as srv:
        async with client_for(srv) as client:
            resp = await client.chat.completions.create(
                model="fake-model",
                messages=[
                    {"role": "system", "content": "You are the planner."},
                    {"role": "user", "content": "x" * 40},
                ],
            )
    assert resp.object == "chat.completion"
    assert resp.model == "fake-model"
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "hello there, world"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert resp.usage is not None
    # prompt = total message characters // 4; completion = words
    assert resp.usage.prompt_tokens == (len("You are the planner.") + 40) // 4
    assert resp.usage.completion_tokens == 3
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 3

    (req,) = srv.requests
    assert (req.method, req.path) == ("POST", "/v1/chat/completions")
    assert req.headers["authorization"] == "Bearer x"
    assert req.json is not None and req.json["model"] == "fake-model"
    assert req.system == "You are the planner."
    assert req.last_message == {"role": "user", "content": "x" * 40}
    assert not req.stream
    assert req.reply == Reply(text="hello there, world")
    assert req.server_time is not None and req.server_time > 0


async def test_streaming_text_by_words_and_by_chunk_count() -> None:
    text = "the quick brown fox jumps"
    async with FakeOpenAI([Reply(text=text), Reply(text=text, chunks=2)]) as srv:
        async with client_for(srv) as client:
            by_words = await collect(
                await client.chat.completions.create(model="m", messages=USER_HI, stream=True)
            )
            by_two = await collect(
                await client.chat.completions.create(model="m", messages=USER_HI, stream=True)
            )
    for chunks in (by_words, by_two):
        assert all(c.object == "chat.completion.chunk" for c in chunks)
        assert len({c.id for c in chunks}) == 1
        assert chunks[0].choices[0].delta.role == "assistant"
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == text
        assert chunks[-1].choices[0].finish_reason == "stop"
        assert all(c.choices[0].finish_reason is None for c in chunks[:-1])
    contents = [c.choices[0].delta.content for c in by_words if c.choices[0].delta.content]
    assert contents == ["the", " quick", " brown", " fox", " jumps"]
    contents = [c.choices[0].delta.content for c in by_two if c.choices[0].delta.content]
    assert contents == ["the quick brown", " fox jumps"]


async def test_stream_usage_shapes() -> None:
    async with FakeOpenAI([Reply(text="a b c", usage=(11, 7))] * 2) as srv:
        async with client_for(srv) as client:
            with_opt = await collect(
                await client.chat.completions.create(
                    model="m",
                    messages=USER_HI,
                    stream=True,
                    stream_options={"include_usage": True},
                )
            )
            without = await collect(
                await client.chat.completions.create(model="m", messages=USER_HI, stream=True)
            )
    # Exact OpenAI shape: a trailing chunk with no choices carries the usage.
    assert with_opt[-1].choices == []
    assert with_opt[-1].usage is not None
    assert (with_opt[-1].usage.prompt_tokens, with_opt[-1].usage.completion_tokens) == (11, 7)
    assert all(c.usage is None for c in with_opt[:-1])
    assert with_opt[-2].choices[0].finish_reason == "stop"
    # Not requested: usage rides on the finish chunk anyway (always_stream_usage).
    assert without[-1].choices[0].finish_reason == "stop"
    assert without[-1].usage is not None and without[-1].usage.total_tokens == 18

    async with FakeOpenAI([Reply(text="a")], always_stream_usage=False) as srv:
        async with client_for(srv) as client:
            plain = await collect(
                await client.chat.completions.create(model="m", messages=USER_HI, stream=True)
            )
    assert all(c.usage is None for c in plain)


async def test_tool_calls_non_streaming() -> None:
    reply = Reply(
        text="Let me check.",
        tool_calls=[("get_weather", {"city": "Paris", "days": 2}), ("search", {"query": "q"})],
    )
    async with FakeOpenAI([reply]) as srv:
        async with client_for(srv) as client:
            resp = await client.chat.completions.create(
                model="m", messages=USER_HI, tools=[WEATHER_TOOL, SEARCH_TOOL]
            )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me check."
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 2
    first, second = calls
    assert first.type == "function" and second.type == "function"
    assert [first.id, second.id] == ["call_1", "call_2"]
    assert first.function.name == "get_weather"
    assert json.loads(first.function.arguments) == {"city": "Paris", "days": 2}
    assert second.function.name == "search"
    assert json.loads(second.function.arguments) == {"query": "q"}


async def test_tool_calls_streaming_fragments() -> None:
    reply = Reply(
        tool_calls=[("get_weather", {"city": "Paris", "days": 2}), ("search", '{"query": "raw"}')],
        arg_chunks=4,
    )
    async with FakeOpenAI([reply]) as srv:
        async with client_for(srv) as client:
            chunks = await collect(
                await client.chat.completions.create(
                    model="m", messages=USER_HI, tools=[WEATHER_TOOL, SEARCH_TOOL], stream=True
                )
            )
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    # per call: one header (id, type, name, empty args) + 4 argument fragments
    assert len(deltas) == 10
    header = deltas[0]
    assert (header.index, header.id, header.type) == (0, "call_1", "function")
    assert header.function is not None and header.function.name == "get_weather"
    assert header.function.arguments == ""
    fragments = deltas[1:5]
    assert all(d.id is None and d.index == 0 for d in fragments)
    assert all(d.function is not None and d.function.name is None for d in fragments)

    calls = assemble_tool_calls(chunks)
    assert calls[0] == {
        "id": "call_1",
        "name": "get_weather",
        "arguments": '{"city":"Paris","days":2}',
    }
    assert calls[1] == {"id": "call_2", "name": "search", "arguments": '{"query": "raw"}'}


async def test_echo_responder_tool_round_trip() -> None:
    async with FakeOpenAI() as srv:
        async with client_for(srv) as client:
            messages: list[Any] = [{"role": "user", "content": "weather?"}]
            first = await client.chat.completions.create(
                model="m", messages=messages, tools=[WEATHER_TOOL]
            )
            calls = first.choices[0].message.tool_calls
            assert calls is not None
            call = calls[0]
            assert call.function.name == "get_weather"
            assert json.loads(call.function.arguments) == {"city": "test", "days": 1}
            messages += [
                first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
            ]
            second = await client.chat.completions.create(
                model="m", messages=messages, tools=[WEATHER_TOOL], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in second])
            plain = await client.chat.completions.create(model="m", messages=USER_HI)
    assert text == "done: sunny, 21C"
    assert plain.choices[0].message.content == "echo: hi"
    assert srv.chat_requests[1].messages[-1]["tool_call_id"] == call.id


@pytest.mark.parametrize(
    ("status", "exc_type", "code"),
    [
        (400, openai.BadRequestError, None),
        (401, openai.AuthenticationError, "invalid_api_key"),
        (403, openai.PermissionDeniedError, None),
        (404, openai.NotFoundError, "model_not_found"),
        (429, openai.RateLimitError, "rate_limit_exceeded"),
        (500, openai.InternalServerError, None),
        (503, openai.InternalServerError, None),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_errors_map_to_openai_exceptions(
    status: int, exc_type: type[openai.APIStatusError], code: str | None, stream: bool
) -> None:
    async with FakeOpenAI([Reply(error=status, message=f"boom {status}")]) as srv:
        async with client_for(srv) as client:
            with pytest.raises(exc_type) as info:
                await client.chat.completions.create(model="m", messages=USER_HI, stream=stream)
    assert info.value.status_code == status
    assert f"boom {status}" in str(info.value)
    assert isinstance(info.value.body, dict)
    assert info.value.body["message"] == f"boom {status}"
    assert info.value.body["code"] == code
    assert info.value.body["type"]


async def test_error_retry_then_success_with_client_retries() -> None:
    fast = {"retry-after-ms": "1"}  # the SDK honours this; keeps the test quick
    script = [Reply(error=429, headers=fast), Reply(error=500, headers=fast), Reply(text="ok")]
    async with FakeOpenAI(script) as srv:
        async with openai.AsyncOpenAI(base_url=srv.base_url, api_key="x", max_retries=2) as client:
            resp = await client.chat.completions.create(model="m", messages=USER_HI)
    assert resp.choices[0].message.content == "ok"
    assert len(srv.chat_requests) == 3
    assert srv.chat_requests[2].headers["x-stainless-retry-count"] == "2"


async def test_keep_alive_many_sequential_requests() -> None:
    async with FakeOpenAI() as srv:
        async with client_for(srv) as client:
            for i in range(150):
                resp = await client.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": f"n{i}"}]
                )
                assert resp.choices[0].message.content == f"echo: n{i}"
    assert len(srv.requests) == 150
    assert srv.connections == 1
    times = sorted(r.server_time or 0.0 for r in srv.requests)
    # Generous bound (shared CI machines); the typical figure is ~0.1-0.2 ms.
    assert statistics.median(times) < 0.005


async def test_keep_alive_across_fully_read_streams() -> None:
    # The openai SDK stops reading at "data: [DONE]" and so drops the connection after
    # every stream; a client that reads the chunked body to its end keeps it.
    body = {"model": "m", "stream": True, "messages": USER_HI}
    async with FakeOpenAI() as srv:
        async with httpx.AsyncClient(base_url=srv.base_url) as client:
            for _ in range(20):
                async with client.stream("POST", "/chat/completions", json=body) as resp:
                    assert resp.status_code == 200
                    assert resp.headers["content-type"].startswith("text/event-stream")
                    payload = b"".join([part async for part in resp.aiter_bytes()])
                assert payload.endswith(b"data: [DONE]\n\n")
            models = await client.get("/models")
            assert models.json()["data"][0]["id"] == "fake"
    assert len(srv.requests) == 21
    assert srv.connections == 1


async def test_responder_routes_by_system_prompt_and_tools() -> None:
    def responder(req: dict[str, Any]) -> Reply | str | None:
        system = next((m["content"] for m in req["messages"] if m["role"] == "system"), "")
        offered = [t["function"]["name"] for t in req.get("tools", [])]
        if "researcher" in system and "search" in offered:
            return Reply(tool_calls=[("search", {"query": "agents"})])
        if "writer" in system:
            return "a draft"
        return None  # fall through to the echo responder

    async with FakeOpenAI(responder=responder) as srv:
        async with client_for(srv) as client:
            researcher = await client.chat.completions.create(
                model="m",
                messages=[{"role": "system", "content": "You are the researcher."}, *USER_HI],
                tools=[SEARCH_TOOL],
            )
            writer = await client.chat.completions.create(
                model="m", messages=[{"role": "system", "content": "You are the writer."}, *USER_HI]
            )
            other = await client.chat.completions.create(model="m", messages=USER_HI)
    calls = researcher.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "search"
    assert writer.choices[0].message.content == "a draft"
    assert other.choices[0].message.content == "echo: hi"
    assert [r.tool_names for r in srv.chat_requests] == [["search"], [], []]


async def test_script_first_then_async_responder_and_push() -> None:
    async def responder(req: dict[str, Any]) -> Reply:
        await asyncio.sleep(0)
        return Reply(text=f"responder saw {len(req['messages'])}")

    async with FakeOpenAI(Script(["one", {"text": "two"}]), responder=responder) as srv:
        async with client_for(srv) as client:

            async def ask() -> str | None:
                resp = await client.chat.completions.create(model="m", messages=USER_HI)
                return resp.choices[0].message.content

            assert [await ask(), await ask(), await ask()] == ["one", "two", "responder saw 1"]
            srv.push(Reply(text="pushed"))
            assert await ask() == "pushed"
            assert len(srv.script) == 0


async def test_responder_exception_becomes_500() -> None:
    def responder(req: dict[str, Any]) -> Reply:
        raise RuntimeError("bad responder")

    async with FakeOpenAI(responder=responder) as srv:
        async with client_for(srv) as client:
            with pytest.raises(openai.InternalServerError, match="bad responder"):
                await client.chat.completions.create(model="m", messages=USER_HI)
    assert [type(e) for e in srv.errors] == [RuntimeError]


async def test_delay_and_empty_reply_fills_from_echo() -> None:
    async with FakeOpenAI([Reply(delay=0.15)]) as srv:
        async with client_for(srv) as client:
            start = time.perf_counter()
            resp = await client.chat.completions.create(model="m", messages=USER_HI)
            elapsed = time.perf_counter() - start
    assert elapsed >= 0.15
    assert resp.choices[0].message.content == "echo: hi"


async def test_hang_times_out_and_server_still_stops() -> None:
    async with FakeOpenAI([Reply(hang=True), Reply(text="after")]) as srv:
        async with client_for(srv, timeout=0.2) as client:
            with pytest.raises(openai.APITimeoutError):
                await client.chat.completions.create(model="m", messages=USER_HI)
            resp = await client.chat.completions.create(model="m", messages=USER_HI)
            assert resp.choices[0].message.content == "after"
        # the hanging handler is still parked; stop() must cancel it promptly
        start = time.perf_counter()
    assert time.perf_counter() - start < 1.0


async def test_hang_after_some_stream_chunks() -> None:
    async with FakeOpenAI([Reply(text="one two three four", hang_after=3)]) as srv:
        async with client_for(srv, timeout=0.3) as client:
            stream = await client.chat.completions.create(model="m", messages=USER_HI, stream=True)
            received: list[str] = []
            # The stream ends in a timeout; which class says so is the SDK's choice (openai 1.x
            # let httpx.ReadTimeout through mid-stream, 3.x wraps it in APITimeoutError).
            with pytest.raises(Exception) as info:
                async for chunk in stream:
                    received.append(chunk.choices[0].delta.content or "")
            await stream.close()
    assert _is_timeout(info.value), repr(info.value)
    # role chunk + "one" + " two", then silence
    assert "".join(received) == "one two"


def _is_timeout(exc: BaseException | None) -> bool:
    """Whether an exception, or one it was raised from, reports a timeout."""
    while exc is not None:
        if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException | TimeoutError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


async def test_chunk_delay_streams_incrementally() -> None:
    async with FakeOpenAI([Reply(text="a b c d", chunk_delay=0.05)]) as srv:
        async with client_for(srv) as client:
            stream = await client.chat.completions.create(model="m", messages=USER_HI, stream=True)
            stamps = [time.perf_counter() async for _ in stream]
    # 6 chunks (role, 4 words, finish) spaced by ~50 ms
    assert len(stamps) == 6
    assert stamps[-1] - stamps[0] >= 0.2


async def test_models_endpoint() -> None:
    async with FakeOpenAI(models=["fake", "fake-large"]) as srv:
        async with client_for(srv) as client:
            models = [m.id async for m in client.models.list()]
            one = await client.models.retrieve("fake-large")
            with pytest.raises(openai.NotFoundError):
                await client.models.retrieve("nope")
    assert models == ["fake", "fake-large"]
    assert one.id == "fake-large"
    assert srv.chat_requests == []


def test_thread_server_with_sync_client() -> None:
    with FakeOpenAIThread(script=[Reply(text="sync hello")]) as srv:
        assert srv.base_url.startswith("http://127.0.0.1:") and srv.base_url.endswith("/v1")
        assert srv.port > 0
        with openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0) as client:
            resp = client.chat.completions.create(model="m", messages=USER_HI)
            chunks = list(
                client.chat.completions.create(
                    model="m", messages=USER_HI, tools=[WEATHER_TOOL], stream=True
                )
            )
            srv.push("pushed from test thread")
            pushed = client.chat.completions.create(model="m", messages=USER_HI)
    assert resp.choices[0].message.content == "sync hello"
    calls = assemble_tool_calls(chunks)
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "test", "days": 1}
    assert pushed.choices[0].message.content == "pushed from test thread"
    assert len(srv.requests) == 3


def test_thread_server_stops_with_hanging_request() -> None:
    with FakeOpenAIThread(script=[Reply(hang=True)]) as srv:
        with openai.OpenAI(
            base_url=srv.base_url, api_key="x", max_retries=0, timeout=0.2
        ) as client:
            with pytest.raises(openai.APITimeoutError):
                client.chat.completions.create(model="m", messages=USER_HI)
        start = time.perf_counter()
    assert time.perf_counter() - start < 2.0


# ------------------------------------------------------------------------ raw HTTP


async def raw_exchange(srv: FakeOpenAI, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(srv.host, srv.port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()


async def test_raw_http10_close_delimited_sse_and_chunked_request() -> None:
    body = json.dumps({"model": "m", "stream": True, "messages": USER_HI}).encode()
    async with FakeOpenAI([Reply(text="x y")]) as srv:
        raw = await raw_exchange(
            srv,
            b"POST /chat/completions HTTP/1.0\r\ncontent-length: %d\r\n\r\n%b" % (len(body), body),
        )
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"transfer-encoding" not in head.lower()
        events = [e for e in payload.decode().split("\n\n") if e]
        assert events[-1] == "data: [DONE]"
        assert json.loads(events[1].removeprefix("data: "))["choices"][0]["delta"] == {
            "content": "x"
        }

        # chunked request body + Connection: close
        chunked = b"%x\r\n%b\r\n%x\r\n%b\r\n0\r\n\r\n" % (
            10,
            body[:10],
            len(body) - 10,
            body[10:],
        )
        raw = await raw_exchange(
            srv,
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
            b"connection: close\r\n\r\n" + chunked,
        )
        assert raw.startswith(b"HTTP/1.1 200 OK")
        assert b"data: [DONE]" in raw
        assert srv.chat_requests[1].json == json.loads(body)


async def test_raw_http_errors() -> None:
    async with FakeOpenAI() as srv:
        raw = await raw_exchange(srv, b"GET /nope HTTP/1.1\r\nconnection: close\r\n\r\n")
        assert raw.startswith(b"HTTP/1.1 404 ")
        assert json.loads(raw.partition(b"\r\n\r\n")[2])["error"]["message"].startswith(
            "Unknown endpoint"
        )
        raw = await raw_exchange(
            srv,
            b"POST /v1/chat/completions HTTP/1.1\r\ncontent-length: 3\r\nconnection: close\r\n\r\n{x}",
        )
        assert raw.startswith(b"HTTP/1.1 400 ")
        assert json.loads(raw.partition(b"\r\n\r\n")[2])["error"]["type"] == "invalid_request_error"


# ------------------------------------------------------------------------ helpers


def test_minimal_args() -> None:
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "i": {"type": "integer", "minimum": 5},
            "n": {"type": "number"},
            "b": {"type": "boolean"},
            "a": {"type": "array", "items": {"type": "string"}},
            "a2": {"type": "array", "items": {"type": "integer"}, "minItems": 2},
            "e": {"type": "string", "enum": ["red", "green"]},
            "opt": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
            "nested": {"$ref": "#/$defs/Inner"},
            "nullable": {"type": ["null", "string"], "minLength": 6},
            "not_required": {"type": "string"},
        },
        "required": ["s", "i", "n", "b", "a", "a2", "e", "opt", "nested", "nullable"],
        "$defs": {
            "Inner": {
                "type": "object",
                "properties": {"k": {"type": "integer", "maximum": 0}, "o": {"type": "object"}},
                "required": ["k", "o"],
            }
        },
    }
    assert minimal_args(schema) == {
        "s": "test",
        "i": 5,
        "n": 1.0,
        "b": True,
        "a": [],
        "a2": [1, 1],
        "e": "red",
        "opt": 1,
        "nested": {"k": 0, "o": {}},
        "nullable": "testxx",
    }
    assert minimal_args(None) == {}
    assert minimal_args({"type": "object", "properties": {}}) == {}


def test_echo_responder_honours_tool_choice_and_none() -> None:
    base: dict[str, Any] = {"messages": USER_HI, "tools": [WEATHER_TOOL, SEARCH_TOOL]}
    chosen = echo_responder(
        {**base, "tool_choice": {"type": "function", "function": {"name": "search"}}}
    )
    assert chosen.tool_calls == [("search", {"query": "test"})]
    assert echo_responder({**base, "tool_choice": "none"}).text == "echo: hi"
    assert echo_responder({"messages": []}).text == "echo: "


def test_split_text() -> None:
    assert _split_text("", None) == []
    assert _split_text("a  b c", None) == ["a", "  b", " c"]
    assert _split_text("a b c d e", 2) == ["a b c", " d e"]
    assert _split_text("abcdef", 3) == ["ab", "cd", "ef"]  # fewer words than chunks
    assert _split_text("ab", 5) == ["a", "b"]
    for text in ("hello big   world ", "x", "  lead"):
        for n in (None, 1, 2, 3, 7):
            assert "".join(_split_text(text, n)) == text


def test_reply_from_json_and_validation() -> None:
    reply = Reply.from_json(
        {
            "tool_calls": [["a", {"x": 1}], {"name": "b", "arguments": "{}", "id": "call_b"}],
            "usage": [3, 4],
        }
    )
    assert reply.tool_calls == [("a", {"x": 1}), ("b", "{}", "call_b")]
    assert reply.usage == (3, 4)
    assert Reply.from_json("hi") == Reply(text="hi")
    with pytest.raises(ValueError, match="unknown Reply fields"):
        Reply.from_json({"txt": "typo"})
    with pytest.raises(ValueError):
        Reply(error=200)


# --------------------------------------------------------------------------- CLI


def test_cli_process(tmp_path: Path) -> None:
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(["from file", {"tool_calls": [["search", {"query": "q"}]]}, {"error": 429}])
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.openai_server",
            "--port",
            "0",
            "--script",
            str(script),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:"), line
        base_url = line.split(" ", 1)[1]
        assert base_url.endswith("/v1")
        with openai.OpenAI(base_url=base_url, api_key="x", max_retries=0) as client:
            first = client.chat.completions.create(model="m", messages=USER_HI)
            second = client.chat.completions.create(model="m", messages=USER_HI)
            with pytest.raises(openai.RateLimitError):
                client.chat.completions.create(model="m", messages=USER_HI)
            fallback = client.chat.completions.create(model="m", messages=USER_HI)
        assert first.choices[0].message.content == "from file"
        calls = second.choices[0].message.tool_calls
        assert calls is not None and calls[0].function.name == "search"
        assert fallback.choices[0].message.content == "echo: hi"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


# ------------------------------------------------------------------------- litellm


async def test_litellm_streaming_tool_call_round_trip() -> None:
    import litellm
    from litellm.llms.custom_httpx.async_client_cleanup import close_litellm_async_clients

    async with FakeOpenAI() as srv:
        try:
            resp = await litellm.acompletion(
                model="openai/fake",
                api_base=srv.base_url,
                api_key="x",
                messages=[{"role": "user", "content": "what's the weather?"}],
                tools=[WEATHER_TOOL],
                stream=True,
            )
            calls: dict[int, dict[str, str]] = {}
            finish: str | None = None
            async for chunk in resp:
                choice = chunk.choices[0]
                finish = choice.finish_reason or finish
                for tc in choice.delta.tool_calls or []:
                    slot = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                    slot["id"] = tc.id or slot["id"]
                    slot["name"] += tc.function.name or ""
                    slot["arguments"] += tc.function.arguments or ""
        finally:
            await close_litellm_async_clients()
            litellm.in_memory_llm_clients_cache.flush_cache()
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0]["id"] == "call_1"
    assert calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "test", "days": 1}
    (req,) = srv.chat_requests
    assert req.model == "fake"
    assert req.stream
    assert req.tool_names == ["get_weather"]
