"""MCP as its users meet it, against real server processes: the SDK's own ``MCPServer``
(``tests/support/mcp_servers/toy.py``) over stdio and streamable HTTP, restarted between two
calls; big results, progress, images and audio, structured content, elicitation, tasks,
instructions, resources and prompts; a server that cannot start beside one that can."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from plugins.mcp import McpToolkit
from tests.support.openai_server import FakeOpenAI, Reply
from workbench.approvals import PendingApproval, Resolution
from workbench.engine import Engine
from workbench.events import (
    ApprovalRequired,
    Event,
    RunFailed,
    ToolProgress,
    ToolResult,
    ToolUnavailable,
)
from workbench.tools import DEFAULT_MAX_OUTPUT, Tool, ToolContext, ToolError

TOY = Path(__file__).parent / "support" / "mcp_servers" / "toy.py"
PY = json.dumps(sys.executable)
TOY_ARG = json.dumps(str(TOY))

pytestmark = pytest.mark.timeout(90)


def by_name(tools: list[Tool]) -> dict[str, Tool]:
    return {t.name: t for t in tools}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_http(port: int, transport: str = "--http") -> subprocess.Popen[bytes]:
    """The toy server over streamable HTTP (or ``--sse``) on ``port``, once it accepts
    connections."""
    proc = subprocess.Popen(
        [sys.executable, str(TOY), transport, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the HTTP MCP server did not start") from None
            time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def http_port() -> Iterator[tuple[int, list[subprocess.Popen[bytes]]]]:
    """A port and the servers started on it (all stopped at the end)."""
    procs: list[subprocess.Popen[bytes]] = []
    yield free_port(), procs
    for p in procs:
        if p.poll() is None:
            stop(p)


def model_workspace(
    write_workspace: Any, base_url: str, tools: list[str], extra: str = "", media: str = ""
) -> Path:
    """A workspace whose agent ``a`` talks to the fake model server and uses ``tools``."""
    return write_workspace(
        f"""
        models:
          fake: {{ model: openai/fake, api_base: "{base_url}", api_key: x {media} }}
        mcp:
          toy: {{ command: {PY}, args: [{TOY_ARG}], timeout: 20 {extra} }}
        agents:
          a: {{ model: fake, instructions: Be brief., tools: {json.dumps(tools)} }}
        approvals:
          default: allow
        """
    )


async def run_collect(engine: Engine, target: str, prompt: str) -> tuple[Any, list[Event]]:
    seen: list[Event] = []
    engine.add_listener(seen.append)
    outcome = await engine.run(target, prompt)
    return outcome, seen


# -- 1. a remote session that is lost is established again ----------------------------------


async def test_http_server_restarted_between_two_calls(
    http_port: tuple[int, list[subprocess.Popen[bytes]]],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="workbench.mcp")
    port, procs = http_port
    procs.append(start_http(port))
    tk = McpToolkit("web", {"url": f"http://127.0.0.1:{port}/mcp", "timeout": 10}, tmp_path)
    try:
        echo = by_name(await tk.list_tools())["web.echo"]
        ctx = ToolContext(workspace_root=tmp_path)
        first = await echo.invoke({"text": "before"}, ctx)
        stop(procs[0])
        procs.append(start_http(port))  # the same URL; the old session id means nothing now
        second = await echo.invoke({"text": "after"}, ctx)
        assert second.startswith("after (pid ")
        assert f"the session is gone (HTTP 404 from http://127.0.0.1:{port}/mcp)" in caplog.text
        assert first.split("pid ")[1] != second.split("pid ")[1]
        assert tk.status.state == "ready"
        # And the next call uses the new session without another round trip to fail.
        assert (await echo.invoke({"text": "again"}, ctx)).startswith("again")
    finally:
        await tk.aclose()


async def test_http_errors_name_the_status_and_the_url(
    http_port: tuple[int, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    port, procs = http_port
    procs.append(start_http(port))
    url = f"http://127.0.0.1:{port}/not-mcp"
    tk = McpToolkit("web", {"url": url, "timeout": 5}, tmp_path)
    try:
        with pytest.raises(ToolError) as info:
            await tk.list_tools()
        assert f"HTTP 404 from {url}" in str(info.value)
        assert tk.status.state == "failed" and f"HTTP 404 from {url}" in (tk.status.error or "")
    finally:
        await tk.aclose()


async def test_over_streamable_http_big_results_progress_media_and_input(
    http_port: tuple[int, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    """The same features over HTTP: the server's requests and notifications come back on the
    call's own response stream."""
    port, procs = http_port
    procs.append(start_http(port))
    tk = McpToolkit("web", {"url": f"http://127.0.0.1:{port}/mcp", "timeout": 10}, tmp_path)
    steps: list[float] = []
    asked: list[str] = []

    async def progress(p: float, total: float | None, message: str | None) -> None:
        steps.append(p)

    async def ask(message: str, schema: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        asked.append(message)
        return "accept", {"name": "Bo", "count": 1}

    ctx = ToolContext(workspace_root=tmp_path, progress=progress, ask=ask)
    try:
        tools = by_name(await tk.list_tools())
        big = await tools["web.big"].run({"chars": 2_000_000}, ctx)
        assert len(big.text) <= DEFAULT_MAX_OUTPUT + 200 and big.text.endswith("<TAIL")
        assert big.structured is None
        pic = await tools["web.picture"].run({}, ctx)
        assert [(m.kind, m.mime_type) for m in pic.media] == [("image", "image/png")]
        assert await tools["web.slow"].invoke({"seconds": 0.4, "steps": 4}, ctx) == "slept 0.4s"
        assert steps == [1, 2, 3, 4]
        assert await tools["web.ask_name"].invoke({}, ctx) == "hello Bo x1"
        assert asked == ["Who is asking?"]
    finally:
        await tk.aclose()
    # A message over max_message_bytes is refused by the SDK's transport: said as such.
    small = McpToolkit(
        "web",
        {"url": f"http://127.0.0.1:{port}/mcp", "timeout": 10, "max_message_bytes": 100_000},
        tmp_path,
    )
    try:
        big_tool = by_name(await small.list_tools())["web.big"]
        with pytest.raises(ToolError, match="larger than 100,000 bytes \\(max_message_bytes"):
            await big_tool.invoke({"chars": 500_000}, ctx)
        echoed = await by_name(await small.list_tools())["web.echo"].invoke({"text": "ok"}, ctx)
        assert echoed.startswith("ok (pid ")
    finally:
        await small.aclose()


async def test_sse_transport_with_progress_and_errors_named(
    http_port: tuple[int, list[subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    port, procs = http_port
    procs.append(start_http(port, "--sse"))
    tk = McpToolkit("old", {"url": f"http://127.0.0.1:{port}/sse", "timeout": 10}, tmp_path)
    seen: list[float] = []

    async def progress(p: float, total: float | None, message: str | None) -> None:
        seen.append(p)

    try:
        assert tk.transport == "sse"
        tools = by_name(await tk.list_tools())
        ctx = ToolContext(workspace_root=tmp_path, progress=progress)
        assert (await tools["old.echo"].invoke({"text": "sse"}, ctx)).startswith("sse (pid ")
        assert await tools["old.slow"].invoke({"seconds": 0.3, "steps": 3}, ctx) == "slept 0.3s"
        assert seen == [1, 2, 3]
    finally:
        await tk.aclose()
    wrong = McpToolkit("old", {"url": f"http://127.0.0.1:{port}/nope/sse", "timeout": 5}, tmp_path)
    try:
        with pytest.raises(ToolError, match=f"HTTP 404 from http://127.0.0.1:{port}/nope/sse"):
            await wrong.list_tools()
    finally:
        await wrong.aclose()


# -- 2. partial failure: the agent runs with the tools that loaded ---------------------------


async def test_a_server_that_cannot_start_does_not_sink_the_run(
    write_workspace: Any, db_url: str
) -> None:
    root = write_workspace(
        f"""
        mcp:
          toy: {{ command: {PY}, args: [{TOY_ARG}] }}
          broken: {{ command: {PY}, args: [{TOY_ARG}, --exit-at-start, "no API key in env"] }}
        agents:
          a: {{ model: test, instructions: x, tools: [toy.echo, broken.*] }}
        approvals:
          default: allow
        """
    )
    async with Engine.open(root, db=db_url) as engine:
        outcome, seen = await run_collect(engine, "a", "hi")
        statuses = {s.name: s for s in engine.toolkit_statuses()}
    assert outcome.ok, outcome.error
    gone = [e for e in seen if isinstance(e, ToolUnavailable)]
    assert len(gone) == 1 and gone[0].toolkit == "broken" and gone[0].patterns == ["broken.*"]
    assert "failed to start" in gone[0].error and "no API key in env" in gone[0].error
    results = [e for e in seen if isinstance(e, ToolResult)]
    assert [r.tool for r in results] == ["toy.echo"] and results[0].error is None
    assert statuses["toy"].state == "ready" and "toy.echo" in statuses["toy"].tools
    assert statuses["broken"].state == "failed"
    assert "no API key in env" in (statuses["broken"].error or "")


async def test_a_required_server_that_cannot_start_fails_the_run(
    write_workspace: Any, db_url: str
) -> None:
    root = write_workspace(
        f"""
        mcp:
          broken:
            command: {PY}
            args: [{TOY_ARG}, --exit-at-start, "cannot open the database"]
            required: true
        agents:
          a: {{ model: test, instructions: x, tools: [broken.*] }}
        """
    )
    async with Engine.open(root, db=db_url) as engine:
        outcome, seen = await run_collect(engine, "a", "hi")
    assert outcome.status == "failed"
    failed = next(e for e in seen if isinstance(e, RunFailed))
    assert "cannot open the database" in failed.error
    assert failed.hint is not None and "required" in failed.hint
    assert not any(e.type == "message.completed" and e.role == "assistant" for e in seen)  # type: ignore[union-attr]


async def test_an_agent_waits_only_for_its_own_servers(write_workspace: Any, db_url: str) -> None:
    """A server that hangs at start keeps starting in the background; an agent that does
    not use it runs at once, and the status says where each server is."""
    root = write_workspace(
        f"""
        mcp:
          toy: {{ command: {PY}, args: [{TOY_ARG}] }}
          slow: {{ command: {PY}, args: [{TOY_ARG}, --hang-at-start], startup_timeout: 60 }}
        agents:
          a: {{ model: test, instructions: x, tools: [toy.echo] }}
        approvals:
          default: allow
        """
    )
    async with Engine.open(root, db=db_url) as engine:
        engine.warm_toolkits()
        t0 = time.monotonic()
        outcome, _ = await run_collect(engine, "a", "hi")
        took = time.monotonic() - t0
        statuses = {s.name: s for s in engine.toolkit_statuses()}
    assert outcome.ok
    assert took < 30  # far below the hanging server's 60 s
    assert statuses["slow"].state == "starting"
    assert statuses["toy"].state == "ready"


async def test_status_changes_are_heard(tmp_path: Path) -> None:
    seen: list[str] = []
    tk = McpToolkit(
        "broken",
        {
            "command": sys.executable,
            "args": [str(TOY), "--exit-at-start", "bad"],
            "retry_after": 60,
        },
        tmp_path,
    )
    tk.on_status = lambda s: seen.append(s.state)
    try:
        assert tk.status.state == "idle"
        task = tk.start()
        with pytest.raises(ToolError):
            await task
        assert seen == ["starting", "failed"]
        # Within retry_after, a use gets the failure at once, without starting it again.
        t0 = time.monotonic()
        with pytest.raises(ToolError, match="bad"):
            await tk.list_tools()
        assert time.monotonic() - t0 < 0.5 and seen == ["starting", "failed"]
        # A forced restart tries again.
        with pytest.raises(ToolError):
            await tk.restart()
        assert seen == ["starting", "failed", "starting", "failed"]
    finally:
        await tk.aclose()


# -- 4. every result is capped ----------------------------------------------------------------


async def test_a_two_million_character_result_is_capped_head_and_tail(
    write_workspace: Any, db_url: str, fake_model: FakeOpenAI
) -> None:
    fake_model.push(Reply(tool_calls=[("toy__big", {"chars": 2_000_000})]), Reply(text="done"))
    root = model_workspace(write_workspace, fake_model.base_url, ["toy.big"])
    async with Engine.open(root, db=db_url) as engine:
        outcome, seen = await run_collect(engine, "a", "go")
        stored = engine.session_events(seen[0].session_id)
    assert outcome.ok
    result = next(e for e in stored if isinstance(e, ToolResult))
    out = result.output or ""
    assert len(out) <= DEFAULT_MAX_OUTPUT + 200
    assert out.startswith("HEAD>") and out.endswith("<TAIL")
    assert "characters cut from the middle: 2,000,000 in all" in out
    assert "max_output under mcp: toy:" in out
    assert result.structured is None  # the server's {"result": ...} copy is over the cap too
    sent = fake_model.chat_requests[1].messages[-1]
    assert sent["role"] == "tool" and sent["content"] == out


async def test_a_cap_per_tool_from_the_server_table(write_workspace: Any, db_url: str) -> None:
    root = write_workspace(
        f"""
        mcp:
          toy:
            command: {PY}
            args: [{TOY_ARG}]
            max_output: {{ big: 1000, "*": 50000 }}
        agents:
          a: {{ model: test, tools: [toy.big, toy.echo] }}
        """
    )
    async with Engine.open(root, db=db_url) as engine:
        tools = by_name(await engine.tools_for(["toy.big", "toy.echo"]))
        out = await tools["toy.big"].invoke({"chars": 5000}, ToolContext(workspace_root=root))
    assert tools["toy.big"].output_limit == 1000 and tools["toy.echo"].output_limit == 50000
    assert len(out) < 1200 and out.startswith("HEAD>") and out.endswith("<TAIL")


# -- 5. progress, media, structured content, tasks, instructions ------------------------------


async def test_progress_notifications_become_events(
    write_workspace: Any, db_url: str, fake_model: FakeOpenAI
) -> None:
    fake_model.push(
        Reply(tool_calls=[("toy__slow", {"seconds": 1.2, "steps": 4})]), Reply(text="ok")
    )
    root = model_workspace(write_workspace, fake_model.base_url, ["toy.slow"])
    async with Engine.open(root, db=db_url) as engine:
        outcome, seen = await run_collect(engine, "a", "go")
    assert outcome.ok
    progress = [e for e in seen if isinstance(e, ToolProgress)]
    assert progress, "no tool.progress event"
    call = next(e for e in seen if e.type == "tool.call")
    assert all(p.call_id == call.call_id and p.tool == "toy.slow" for p in progress)  # type: ignore[attr-defined]
    assert progress[-1].progress == 4 and progress[-1].total == 4
    assert progress[-1].message == "step 4 of 4"
    # Each came before the result.
    kinds = [e.type for e in seen]
    assert kinds.index("tool.progress") < kinds.index("tool.result")


async def test_progress_keeps_a_long_call_alive(tmp_path: Path) -> None:
    """A call that reports progress is not cut off at ``timeout`` (3 s here) while it
    reports; one that is silent is."""
    tk = McpToolkit("toy", {"command": sys.executable, "args": [str(TOY)], "timeout": 3}, tmp_path)
    try:
        tools = by_name(await tk.list_tools())
        out = await tools["toy.slow"].invoke(
            {"seconds": 5, "steps": 10}, ToolContext(workspace_root=tmp_path)
        )
        assert out == "slept 5.0s"
    finally:
        await tk.aclose()


@pytest.mark.parametrize("media", ["[image, audio]", "[]"], ids=["accepts", "text-only"])
async def test_images_and_audio_reach_a_model_that_accepts_them(
    write_workspace: Any, db_url: str, fake_model: FakeOpenAI, media: str
) -> None:
    fake_model.push(
        Reply(tool_calls=[("toy__picture", {}), ("toy__sound", {})]), Reply(text="a dot")
    )
    root = model_workspace(
        write_workspace,
        fake_model.base_url,
        ["toy.picture", "toy.sound"],
        media=f", media: {media}",
    )
    async with Engine.open(root, db=db_url) as engine:
        outcome, seen = await run_collect(engine, "a", "what is it?")
    assert outcome.ok
    results = {e.tool: e for e in seen if isinstance(e, ToolResult)}
    pic = results["toy.picture"]
    assert pic.output is not None and "[image: image/png, " in pic.output
    assert [(m.kind, m.mime_type) for m in pic.media] == [("image", "image/png")]
    assert [(m.kind, m.mime_type) for m in results["toy.sound"].media] == [("audio", "audio/wav")]
    sent = fake_model.chat_requests[1].messages
    parts = sent[-1]["content"] if isinstance(sent[-1]["content"], list) else []
    kinds = [p["type"] for p in parts]
    if media == "[]":
        assert sent[-1]["role"] == "tool" and not parts
    else:
        assert sent[-1]["role"] == "user"
        assert kinds.count("image_url") == 1 and kinds.count("input_audio") == 1
        image = next(p for p in parts if p["type"] == "image_url")
        assert image["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
        audio = next(p for p in parts if p["type"] == "input_audio")
        assert audio["input_audio"]["format"] == "wav"
        # The tool messages come first, all of them, as providers require.
        assert [m["role"] for m in sent[-3:]] == ["tool", "tool", "user"]


async def test_the_test_model_sees_the_picture(write_workspace: Any, db_url: str) -> None:
    root = write_workspace(
        f"""
        mcp:
          toy: {{ command: {PY}, args: [{TOY_ARG}] }}
        agents:
          a: {{ model: test, tools: [toy.picture] }}
        approvals:
          default: allow
        """
    )
    async with Engine.open(root, db=db_url) as engine:
        outcome, _ = await run_collect(engine, "a", "look")
    assert outcome.ok and "I see 1 attachment(s): image/png" in outcome.output


async def test_structured_content_tasks_and_instructions(
    write_workspace: Any, db_url: str, fake_model: FakeOpenAI
) -> None:
    fake_model.push(Reply(tool_calls=[("toy__forecast", {"city": "Oslo"})]), Reply(text="mild"))
    root = model_workspace(write_workspace, fake_model.base_url, ["toy.*"])
    async with Engine.open(root, db=db_url) as engine:
        outcome, seen = await run_collect(engine, "a", "weather?")
        status = next(s for s in engine.toolkit_statuses() if s.name == "toy")
    assert outcome.ok
    result = next(e for e in seen if isinstance(e, ToolResult))
    assert result.structured == {"city": "Oslo", "celsius": 21.5}
    # A tool that requires MCP tasks is not offered, and the status says why.
    offered = fake_model.chat_requests[0].tool_names
    assert "toy__forecast" in offered and "toy__batch_job" not in offered
    assert any("batch_job" in s and "tasks" in s for s in status.skipped)
    # The server's instructions are in the agent's context, after its own.
    system = fake_model.chat_requests[0].system
    assert system.startswith("Be brief.")
    assert "Call toy.echo once before anything else" in system
    assert status.instructions and "toy.echo" in status.instructions


# -- 5. elicitation goes into the approvals queue ---------------------------------------------


@pytest.mark.parametrize("decision", ["allow", "deny"])
async def test_an_elicitation_is_a_form_in_the_approvals_queue(
    write_workspace: Any, db_url: str, fake_model: FakeOpenAI, decision: str
) -> None:
    fake_model.push(Reply(tool_calls=[("toy__ask_name", {})]), Reply(text="ok"))
    root = model_workspace(write_workspace, fake_model.base_url, ["toy.ask_name"])
    async with Engine.open(root, db=db_url) as engine:
        asked: list[PendingApproval] = []

        def on_change(kind: str, p: PendingApproval) -> None:
            if kind != "added":
                return
            asked.append(p)
            edited = {"name": "Ann <admin>", "count": 2} if decision == "allow" else None
            loop = asyncio.get_running_loop()
            loop.call_soon(
                engine.resolve_approval,
                p.run_id,
                p.call_id,
                Resolution(decision, edited_arguments=edited),  # type: ignore[arg-type]
            )

        engine.broker.subscribe(on_change)
        outcome, seen = await run_collect(engine, "a", "who?")
    assert outcome.ok
    assert len(asked) == 1
    p = asked[0]
    assert p.kind == "input" and p.tool == "toy.ask_name" and p.reason == "Who is asking?"
    assert p.form is not None and set(p.form["properties"]) == {"name", "count"}
    assert p.arguments == {"name": None, "count": 3}  # every field, with its default
    required = next(e for e in seen if isinstance(e, ApprovalRequired))
    assert required.kind == "input" and required.form == p.form
    result = next(e for e in seen if isinstance(e, ToolResult))
    if decision == "allow":
        assert result.output == "hello Ann <admin> x2"
    else:
        assert result.output == "no answer (decline)"


async def test_nobody_to_ask_declines(tmp_path: Path) -> None:
    tk = McpToolkit("toy", {"command": sys.executable, "args": [str(TOY)]}, tmp_path)
    try:
        tools = by_name(await tk.list_tools())
        out = await tools["toy.ask_name"].invoke({}, ToolContext(workspace_root=tmp_path))
        assert out == "no answer (decline)"
    finally:
        await tk.aclose()


# -- 5. resources and prompts -----------------------------------------------------------------


async def test_resources_and_prompts(tmp_path: Path) -> None:
    tk = McpToolkit("toy", {"command": sys.executable, "args": [str(TOY)]}, tmp_path)
    try:
        resources = await tk.list_resources()
        assert resources == [
            {
                "uri": "toy://readme",
                "name": "readme",
                "description": "What this server is.",
                "mime_type": "text/markdown",
            }
        ]
        assert await tk.read_resource("toy://readme") == "# Toy\nA server for tests."
        prompts = await tk.list_prompts()
        assert prompts[0]["name"] == "review"
        assert prompts[0]["arguments"] == [{"name": "topic", "description": "", "required": True}]
        assert await tk.get_prompt("review", {"topic": "the diff"}) == (
            "Please review the diff carefully."
        )
        with pytest.raises(ToolError, match="could not get the prompt review"):
            await tk.get_prompt("review", {})
    finally:
        await tk.aclose()


async def test_servers_without_resources_or_prompts(tmp_path: Path) -> None:
    tk = McpToolkit("time", {"command": "mcp-server-time"}, tmp_path)
    try:
        assert await tk.list_resources() == []
        assert await tk.list_prompts() == []
    finally:
        await tk.aclose()


async def test_fixing_a_server_in_the_workspace_file_takes_effect(
    write_workspace: Any, db_url: str
) -> None:
    """After workbench.yaml is reloaded with the server's command fixed, the next run
    starts it from the new settings (the old toolkit is closed once no run uses it)."""
    from workbench.workspace import load_workspace

    broken = f"""
        mcp:
          toy: {{ command: {PY}, args: [{TOY_ARG}, --exit-at-start, "bad flag"] }}
        agents:
          a: {{ model: test, tools: [toy.echo] }}
        approvals:
          default: allow
        """
    root = write_workspace(broken)
    async with Engine.open(root, db=db_url) as engine:
        _, seen = await run_collect(engine, "a", "hi")
        assert [e.toolkit for e in seen if isinstance(e, ToolUnavailable)] == ["toy"]
        old = await engine.toolkit("toy")
        write_workspace(broken.replace(', --exit-at-start, "bad flag"', ""))
        engine.reload(load_workspace(root))
        assert next(s for s in engine.toolkit_statuses() if s.name == "toy").state == "idle"
        outcome, seen = await run_collect(engine, "a", "again")
        assert outcome.ok
        assert not [e for e in seen if isinstance(e, ToolUnavailable)]
        result = next(e for e in seen if isinstance(e, ToolResult))
        assert result.tool == "toy.echo" and result.error is None
        assert await engine.toolkit("toy") is not old
