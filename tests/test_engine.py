"""The engine end to end: litellm's real HTTP path against a local server, and the test model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import WriteWorkspace
from tests.support.openai_server import FakeOpenAI, Reply
from workbench.approvals import Resolution
from workbench.engine import Engine
from workbench.events import (
    ApprovalRequired,
    ApprovalResolved,
    ContextSummarized,
    Event,
    MessageCompleted,
    MessageDelta,
    ModelRetry,
    RunFailed,
    ToolCall,
    ToolResult,
)

TOOLS_PY = '''
import asyncio
import time

from workbench.tools import tool

def word_count(text: str) -> int:
    """Count the words in a text.

    Args:
        text: The text to count.
    """
    return len(text.split())

def boom(reason: str) -> str:
    """Always fails.

    Args:
        reason: Why.
    """
    raise ValueError(f"boom: {reason}")

@tool(timeout=0.5)
async def slow(seconds: float) -> str:
    """Sleep.

    Args:
        seconds: How long.
    """
    await asyncio.sleep(seconds)
    return f"slept {seconds}"

def stamp(label: str) -> str:
    """Record when it ran.

    Args:
        label: A label.
    """
    t0 = time.monotonic()
    time.sleep(0.3)
    return f"{label}:{t0:.3f}:{time.monotonic():.3f}"
'''


def workspace(
    write: WriteWorkspace,
    base_url: str,
    extra: str = "",
    default: str = "allow",
    direct: bool = True,
) -> Path:
    return write(
        f"""
        models:
          local: {{model: openai/fake, api_base: "{base_url}", api_key: x, retry_delay: 0.01, direct: {str(direct).lower()}}}
        agents:
          helper:
            model: local
            instructions: You help.
            tools: ["tools:word_count", "tools:boom", "tools:slow", "tools:stamp"]
        {extra}
        approvals:
          default: {default}
        """,
        {"tools.py": TOOLS_PY},
    )


async def run_collect(
    engine: Engine, target: str, prompt: str, **kw: Any
) -> tuple[Any, list[Event]]:
    seen: list[Event] = []
    engine.add_listener(seen.append)
    outcome = await engine.run(target, prompt, **kw)
    return outcome, seen


@pytest.mark.parametrize("direct", [False, True], ids=["litellm", "direct"])
async def test_streams_text_and_tool_call(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str, direct: bool
) -> None:
    fake_model.push(
        Reply(tool_calls=[("tools_-word_count", {"text": "a b c"})]),
        Reply(text="There are three words."),
    )
    root = workspace(write_workspace, fake_model.base_url, direct=direct)
    async with Engine.open(root, db_url) as engine:
        outcome, seen = await run_collect(engine, "helper", "count 'a b c'")
        stored = engine.session_events(seen[0].session_id)
    assert outcome.ok and outcome.output == "There are three words."
    types = [e.type for e in seen]
    assert types[0] == "run.started" and types[-1] == "run.completed"
    assert "message.delta" in types
    call = next(e for e in seen if isinstance(e, ToolCall))
    assert call.tool == "tools:word_count" and call.arguments == {"text": "a b c"}
    result = next(e for e in seen if isinstance(e, ToolResult))
    assert result.output == "3" and result.error is None
    # The second request carried the tool result back to the model under the safe name.
    second = fake_model.chat_requests[1].messages
    assert second[-1] == {"role": "tool", "tool_call_id": call.call_id, "content": "3"}
    assert second[-2]["tool_calls"][0]["function"]["name"] == "tools_-word_count"
    assert fake_model.chat_requests[0].stream
    # Stored log == what was published, with gap-free seq.
    assert [e.seq for e in stored] == list(range(1, len(stored) + 1))
    assert [e.model_dump() for e in stored] == [e.model_dump() for e in seen]
    done = stored[-1]
    assert done.type == "run.completed" and done.usage.total_tokens > 0  # type: ignore[union-attr]


@pytest.mark.parametrize("direct", [False, True], ids=["litellm", "direct"])
async def test_bad_arguments_go_back_to_the_model(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str, direct: bool
) -> None:
    fake_model.push(
        Reply(tool_calls=[("tools_-word_count", {"txt": 1})]),
        Reply(tool_calls=[("tools_-word_count", '{"text": "unterminated')]),
        Reply(text="ok"),
    )
    root = workspace(write_workspace, fake_model.base_url, direct=direct)
    async with Engine.open(root, db_url) as engine:
        outcome, seen = await run_collect(engine, "helper", "go")
    assert outcome.ok
    errors = [e.error for e in seen if isinstance(e, ToolResult)]
    assert errors[0] is not None and "text: Field required" in errors[0] and "txt" in errors[0]
    assert errors[1] is not None and "not valid JSON" in errors[1]
    tool_msgs = [m for m in fake_model.chat_requests[2].messages if m["role"] == "tool"]
    assert all(m["content"].startswith("Error:") for m in tool_msgs)
    assert not any(isinstance(e, ToolCall) for e in seen)  # invalid calls never ran


async def test_failing_and_timed_out_tools_become_results(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.push(
        Reply(tool_calls=[("tools_-boom", {"reason": "bad"}), ("tools_-slow", {"seconds": 5})]),
        Reply(text="recovered"),
    )
    root = workspace(write_workspace, fake_model.base_url)
    async with Engine.open(root, db_url) as engine:
        outcome, seen = await run_collect(engine, "helper", "go")
    assert outcome.ok and outcome.output == "recovered"
    results = {e.tool: e for e in seen if isinstance(e, ToolResult)}
    assert "ValueError: boom: bad" in (results["tools:boom"].error or "")
    assert "timed out" in (results["tools:slow"].error or "")


async def test_tool_calls_of_one_turn_run_concurrently(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.push(
        Reply(tool_calls=[("tools_-stamp", {"label": "a"}), ("tools_-stamp", {"label": "b"})]),
        Reply(text="ok"),
    )
    root = workspace(write_workspace, fake_model.base_url)
    async with Engine.open(root, db_url) as engine:
        _, seen = await run_collect(engine, "helper", "go")
    spans = [
        tuple(map(float, (e.output or "").split(":")[1:]))
        for e in seen
        if isinstance(e, ToolResult)
    ]
    assert len(spans) == 2
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, f"the two calls did not overlap: {spans}"


@pytest.mark.parametrize("direct", [False, True], ids=["litellm", "direct"])
async def test_retries_transient_errors_then_succeeds(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str, direct: bool
) -> None:
    fake_model.push(Reply(error=429), Reply(error=503), Reply(text="finally"))
    root = workspace(write_workspace, fake_model.base_url, direct=direct)
    async with Engine.open(root, db_url) as engine:
        outcome, seen = await run_collect(engine, "helper", "hi")
    assert outcome.ok, outcome.error
    assert outcome.output == "finally"
    retries = [e for e in seen if isinstance(e, ModelRetry)]
    assert [r.attempt for r in retries] == [1, 2]


@pytest.mark.parametrize(
    ("reply", "expect_error", "expect_hint"),
    [
        (
            Reply(error=401, message="Incorrect API key provided"),
            "authentication failed",
            "API key",
        ),
        (
            Reply(error=404, message="The model `fake` does not exist"),
            "model not found",
            "model name",
        ),
    ],
)
@pytest.mark.parametrize("direct", [False, True], ids=["litellm", "direct"])
async def test_auth_and_unknown_model_end_the_run_with_a_hint(
    fake_model: FakeOpenAI,
    write_workspace: WriteWorkspace,
    db_url: str,
    reply: Reply,
    expect_error: str,
    expect_hint: str,
    direct: bool,
) -> None:
    fake_model.push(reply)
    root = workspace(write_workspace, fake_model.base_url, direct=direct)
    async with Engine.open(root, db_url) as engine:
        outcome, seen = await run_collect(engine, "helper", "hi")
    assert outcome.status == "failed"
    failed = seen[-1]
    assert isinstance(failed, RunFailed)
    assert expect_error in failed.error
    assert failed.hint is not None and expect_hint in failed.hint
    assert len(fake_model.chat_requests) == 1  # not retried


@pytest.mark.parametrize("direct", [False, True], ids=["litellm", "direct"])
async def test_unreachable_endpoint_fails_with_what_to_fix(
    write_workspace: WriteWorkspace, db_url: str, direct: bool
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again below: nothing listens there
    root = workspace(write_workspace, f"http://127.0.0.1:{port}/v1", direct=direct)
    async with Engine.open(root, db_url) as engine:
        outcome, seen = await run_collect(engine, "helper", "hi")
    assert outcome.status == "failed"
    failed = seen[-1]
    assert isinstance(failed, RunFailed)
    assert "cannot reach" in failed.error and f"127.0.0.1:{port}" in failed.error
    assert failed.hint and "server running" in failed.hint


async def test_unknown_provider_is_a_clear_failure(
    write_workspace: WriteWorkspace, db_url: str
) -> None:
    root = write_workspace(
        """
        agents:
          helper: {model: nosuchprovider/model-x}
        """
    )
    async with Engine.open(root, db_url) as engine:
        outcome, _ = await run_collect(engine, "helper", "hi")
    assert outcome.status == "failed"
    assert outcome.error is not None and "nosuchprovider/model-x" in outcome.error
    assert outcome.hint


async def test_history_of_a_session_is_the_next_runs_context(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.push(Reply(text="Nice to meet you, Ada."), Reply(text="Your name is Ada."))
    root = write_workspace(
        f"""
        models:
          local: {{model: openai/fake, api_base: "{fake_model.base_url}", api_key: x}}
        agents:
          helper: {{model: local, instructions: Be kind.}}
        """
    )
    async with Engine.open(root, db_url) as engine:
        first = await engine.start_run("helper", "I am Ada.")
        await first.wait()
        second = await engine.run("helper", "What is my name?", session_id=first.session_id)
    assert second.output == "Your name is Ada."
    msgs = fake_model.chat_requests[1].messages
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[1]["content"] == "I am Ada." and msgs[2]["content"] == "Nice to meet you, Ada."


async def test_cancel_stops_the_model_stream(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.push(Reply(text=" ".join(["word"] * 200), chunk_delay=0.05))
    root = workspace(write_workspace, fake_model.base_url)
    async with Engine.open(root, db_url) as engine:
        seen: list[Event] = []
        engine.add_listener(seen.append)
        handle = await engine.start_run("helper", "talk")
        while not any(isinstance(e, MessageDelta) for e in seen):
            await asyncio.sleep(0.01)
        assert engine.cancel(handle.run_id)
        outcome = await handle.wait()
        n = sum(isinstance(e, MessageDelta) for e in seen)
        await asyncio.sleep(0.3)
        assert sum(isinstance(e, MessageDelta) for e in seen) == n  # nothing streams after cancel
        run = engine.store.get_run(handle.run_id)
    assert outcome.status == "cancelled"
    assert seen[-1].type == "run.cancelled"
    assert run is not None and run.status == "cancelled"


async def test_cancel_stops_running_tools(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.push(Reply(tool_calls=[("tools_-slow", {"seconds": 30})]))
    root = workspace(write_workspace, fake_model.base_url)
    async with Engine.open(root, db_url) as engine:
        seen: list[Event] = []
        engine.add_listener(seen.append)
        handle = await engine.start_run("helper", "wait")
        while not any(isinstance(e, ToolCall) for e in seen):
            await asyncio.sleep(0.01)
        engine.cancel(handle.run_id)
        outcome = await asyncio.wait_for(handle.wait(), 5)
    assert outcome.status == "cancelled"
    assert not any(isinstance(e, ToolResult) for e in seen)


async def test_output_schema_gets_one_corrective_retry(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.push(Reply(text="The answer is 42"), Reply(text='```json\n{"answer": 42}\n```'))
    root = write_workspace(
        f"""
        models:
          local: {{model: openai/fake, api_base: "{fake_model.base_url}", api_key: x}}
        agents:
          typed:
            model: local
            output_schema:
              type: object
              properties: {{answer: {{type: integer}}}}
              required: [answer]
        """
    )
    async with Engine.open(root, db_url) as engine:
        outcome, seen = await run_collect(engine, "typed", "answer")
    assert outcome.ok and outcome.structured == {"answer": 42}
    correction = fake_model.chat_requests[1].messages[-1]["content"]
    assert "not valid JSON" in correction and '"answer"' in correction
    assert seen[-1].type == "run.completed"


async def test_output_schema_failing_twice_fails_the_run(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.push(Reply(text='{"answer": "x"}'), Reply(text='{"answer": "still text"}'))
    root = write_workspace(
        f"""
        models:
          local: {{model: openai/fake, api_base: "{fake_model.base_url}", api_key: x}}
        agents:
          typed:
            model: local
            output_schema: {{type: object, properties: {{answer: {{type: integer}}}}, required: [answer]}}
        """
    )
    async with Engine.open(root, db_url) as engine:
        outcome, _ = await run_collect(engine, "typed", "answer")
    assert outcome.status == "failed"
    assert outcome.error and "output schema" in outcome.error and "answer" in outcome.error


async def test_context_budget_summarises_oldest_turns(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    root = write_workspace(
        f"""
        models:
          local: {{model: openai/fake, api_base: "{fake_model.base_url}", api_key: x, context_window: 200}}
        agents:
          helper: {{model: local}}
        """
    )
    async with Engine.open(root, db_url) as engine:
        fake_model.push(Reply(text="first answer " + "x " * 200))
        first = await engine.start_run("helper", "first question " + "y " * 200)
        await first.wait()
        fake_model.push(Reply(text="SUMMARY: asked first question"), Reply(text="second answer"))
        outcome, seen = await run_collect(
            engine, "helper", "second question", session_id=first.session_id
        )
    assert outcome.ok and outcome.output == "second answer"
    note = next(e for e in seen if isinstance(e, ContextSummarized))
    assert note.turns == 2 and note.summary == "SUMMARY: asked first question"
    assert note.tokens_after < note.tokens_before
    final_msgs = fake_model.chat_requests[-1].messages
    assert any("SUMMARY: asked first question" in (m.get("content") or "") for m in final_msgs)
    assert not any("y y y" in (m.get("content") or "") for m in final_msgs)


async def test_ask_policy_waits_for_the_broker(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.push(
        Reply(tool_calls=[("tools_-word_count", {"text": "one two"})]),
        Reply(tool_calls=[("tools_-word_count", {"text": "three"})]),
        Reply(text="end"),
    )
    root = workspace(write_workspace, fake_model.base_url, default="ask")
    async with Engine.open(root, db_url) as engine:
        seen: list[Event] = []
        engine.add_listener(seen.append)
        handle = await engine.start_run("helper", "count")
        while not engine.broker.pending():
            await asyncio.sleep(0.01)
        first = engine.broker.pending()[0]
        assert first.tool == "tools:word_count" and first.arguments == {"text": "one two"}
        # approval.required is not awaited (runs never wait for the disk): it is committed
        # a moment after the broker holds the call
        for _ in range(500):
            run = engine.store.get_run(handle.run_id)
            if run is not None and run.status == "waiting":
                break
            await asyncio.sleep(0.01)
        assert run is not None and run.status == "waiting"
        engine.resolve_approval(
            first.run_id, first.call_id, Resolution(decision="allow", scope="session")
        )
        outcome = await handle.wait()  # the second call is allowed by the session rule
    assert outcome.ok
    resolved = [e for e in seen if isinstance(e, ApprovalResolved)]
    assert len(resolved) == 1 and resolved[0].scope == "session" and resolved[0].rule
    assert sum(isinstance(e, ApprovalRequired) for e in seen) == 1
    assert [e.output for e in seen if isinstance(e, ToolResult)] == ["2", "1"]


async def test_deny_with_note_goes_back_to_the_model(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.push(
        Reply(tool_calls=[("tools_-word_count", {"text": "x"})]), Reply(text="understood")
    )
    root = workspace(write_workspace, fake_model.base_url, default="ask")
    async with Engine.open(root, db_url) as engine:
        engine.broker.auto_decider = lambda p: Resolution(decision="deny", note="not now")
        outcome, seen = await run_collect(engine, "helper", "count")
    assert outcome.ok
    result = next(e for e in seen if isinstance(e, ToolResult))
    assert result.error and "not now" in result.error
    tool_msg = fake_model.chat_requests[1].messages[-1]
    assert tool_msg["role"] == "tool" and "not now" in tool_msg["content"]


async def test_edited_arguments_are_what_runs(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.push(Reply(tool_calls=[("tools_-word_count", {"text": "x"})]), Reply(text="ok"))
    root = workspace(write_workspace, fake_model.base_url, default="ask")
    async with Engine.open(root, db_url) as engine:
        engine.broker.auto_decider = lambda p: Resolution(
            decision="allow", edited_arguments={"text": "a b c d"}
        )
        _, seen = await run_collect(engine, "helper", "count")
    call = next(e for e in seen if isinstance(e, ToolCall))
    assert call.arguments == {"text": "a b c d"}
    assert next(e for e in seen if isinstance(e, ToolResult)).output == "4"


async def test_test_model_calls_tools_then_answers(
    write_workspace: WriteWorkspace, db_url: str
) -> None:
    root = write_workspace(
        """
        agents:
          demo: {model: test, tools: ["tools:word_count"]}
        approvals: {default: allow}
        """,
        {"tools.py": TOOLS_PY},
    )
    async with Engine.open(root, db_url) as engine:
        outcome, seen = await run_collect(engine, "demo", "count words")
    assert outcome.ok
    assert outcome.output.startswith("[test model]")
    call = next(e for e in seen if isinstance(e, ToolCall))
    assert call.arguments == {"text": "test"}
    assert next(e for e in seen if isinstance(e, ToolResult)).output == "1"
    completed = [e for e in seen if isinstance(e, MessageCompleted) and e.role == "assistant"]
    assert completed[0].model == "test"


async def test_max_tool_rounds_forces_an_answer(
    fake_model: FakeOpenAI, write_workspace: WriteWorkspace, db_url: str
) -> None:
    fake_model.push(*[Reply(tool_calls=[("tools_-word_count", {"text": "x"})]) for _ in range(2)])
    fake_model.push(Reply(text="final"))
    root = write_workspace(
        f"""
        models:
          local: {{model: openai/fake, api_base: "{fake_model.base_url}", api_key: x}}
        agents:
          helper: {{model: local, tools: ["tools:word_count"], max_tool_rounds: 2}}
        approvals: {{default: allow}}
        """,
        {"tools.py": TOOLS_PY},
    )
    async with Engine.open(root, db_url) as engine:
        outcome, _ = await run_collect(engine, "helper", "loop")
    assert outcome.output == "final"
    last = fake_model.chat_requests[-1]
    assert not last.tools  # no tools offered once the bound is reached
    assert "tool rounds" in json.dumps(last.messages[-1])


async def test_a_rule_removed_elsewhere_stops_applying_at_the_next_call(
    write_workspace: WriteWorkspace, db_url: str
) -> None:
    """``workbench rules rm`` in another process: the running engine asks again at once."""
    import subprocess
    import sys

    root = write_workspace(
        """
        agents:
          demo: {model: test, tools: ["tools:word_count"]}
        approvals: {default: ask}
        """,
        {"tools.py": TOOLS_PY},
    )
    async with Engine.open(root, db_url) as engine:
        engine.broker.auto_decider = lambda p: Resolution("allow", "workspace")
        first, seen = await run_collect(engine, "demo", "count")
        assert first.ok and sum(isinstance(e, ApprovalRequired) for e in seen) == 1
        (rule,) = engine.store.list_rules(str(root))
        engine.broker.auto_decider = lambda p: Resolution("deny", note="asked again")
        seen.clear()
        again = await engine.run("demo", "count")  # the saved rule decides: nobody is asked
        assert again.ok and not any(isinstance(e, ApprovalRequired) for e in seen)
        out = subprocess.run(
            [sys.executable, "-m", "workbench.cli", "-w", str(root), "--db", db_url]
            + ["rules", "rm", rule.id],
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr
        seen.clear()
        third = await engine.run("demo", "count")
        denied = [e for e in seen if isinstance(e, ApprovalResolved)]
        assert third.ok and [(e.decision, e.note) for e in denied] == [("deny", "asked again")]
        # A rule the engine removes itself (the TUI's rules list) is gone for the next call.
        engine.broker.auto_decider = lambda p: Resolution("allow", "session")
        await engine.run("demo", "count", session_id=denied[0].session_id)
        (session_rule,) = engine.saved_rules(denied[0].session_id)
        assert session_rule.scope == "session"
        assert engine.remove_rule(session_rule, denied[0].session_id) is True
        assert engine.saved_rules(denied[0].session_id) == []
        assert engine.remove_rule(session_rule, denied[0].session_id) is False
