"""The ``mcp`` toolkit against real MCP servers: ``mcp-server-time`` and ``mcp-server-git``
from PyPI over stdio, and a test server (``tests/support/mcp_servers/toy.py``, built on the
SDK's ``MCPServer``) over stdio and streamable HTTP, misbehaving on request."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from plugins.mcp import McpTool, McpToolkit, result_text
from workbench.tools import Tool, ToolContext, ToolError

TOY = Path(__file__).parent / "support" / "mcp_servers" / "toy.py"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.timeout(60)


def ctx(root: Path) -> ToolContext:
    return ToolContext(workspace_root=root)


def by_name(tools: list[Tool]) -> dict[str, Tool]:
    return {t.name: t for t in tools}


def pid_of(echo_output: str) -> int:
    m = re.search(r"\(pid (\d+)\)", echo_output)
    assert m, echo_output
    return int(m.group(1))


def process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it is gone for our purposes once it is not running.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
async def toy(tmp_path: Path) -> AsyncIterator[McpToolkit]:
    """The toy server over stdio, with a short timeout."""
    tk = McpToolkit("toy", {"command": sys.executable, "args": [str(TOY)], "timeout": 6}, tmp_path)
    try:
        yield tk
    finally:
        await tk.aclose()


# -- servers from PyPI ---------------------------------------------------------------------


async def test_time_server_lists_and_calls(tmp_path: Path) -> None:
    # The bare command name: found next to this Python even if its bin is not on PATH.
    tk = McpToolkit("time", {"command": "mcp-server-time"}, tmp_path)
    try:
        tools = by_name(await tk.list_tools())
        assert {"time.get_current_time", "time.convert_time"} <= set(tools)
        get = tools["time.get_current_time"]
        assert isinstance(get, McpTool) and get.source == "mcp time"
        assert get.parameters["required"] == ["timezone"]
        assert "timezone" in get.parameters["properties"]

        out = await get.invoke({"timezone": "Europe/Paris"}, ctx(tmp_path))
        data = json.loads(out)
        assert data["timezone"] == "Europe/Paris" and data["datetime"][:4].isdigit()

        # The server's own error result (isError) becomes a ToolError with its text.
        with pytest.raises(ToolError, match="Mars/Olympus"):
            await get.invoke({"timezone": "Mars/Olympus"}, ctx(tmp_path))
        # The schema is checked before anything is sent.
        with pytest.raises(ToolError, match="missing required argument"):
            await get.invoke({}, ctx(tmp_path))
    finally:
        await tk.aclose()


async def test_git_server_status(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    subprocess.run(["git", "init", "-q", str(repo)], check=True, env=env)
    (repo / "notes.txt").write_text("untracked work\n")
    tk = McpToolkit(
        "git",
        {"command": str(BIN / "mcp-server-git"), "args": ["--repository", str(repo)]},
        tmp_path,
    )
    try:
        tools = by_name(await tk.list_tools())
        assert "git.git_status" in tools
        out = await tools["git.git_status"].invoke({"repo_path": str(repo)}, ctx(tmp_path))
        assert "notes.txt" in out
        # Outside the repository it was confined to: the server's error, as a ToolError.
        with pytest.raises(ToolError, match="outside"):
            await tools["git.git_status"].invoke({"repo_path": str(tmp_path)}, ctx(tmp_path))
    finally:
        await tk.aclose()


# -- streamable HTTP -----------------------------------------------------------------------


@pytest.fixture
def http_server() -> Iterator[str]:
    """The toy server over streamable HTTP on a free port of 127.0.0.1; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, str(TOY), "--http", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the HTTP MCP server did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_streamable_http_lists_calls_and_notices_changes(
    http_server: str, tmp_path: Path
) -> None:
    tk = McpToolkit("web", {"url": http_server, "headers": {"X-Test": "yes"}}, tmp_path)
    try:
        tools = by_name(await tk.list_tools())
        assert {"web.echo", "web.grow"} <= set(tools)
        assert tools["web.echo"].parameters["required"] == ["text"]
        assert (await tools["web.echo"].invoke({"text": "over http"}, ctx(tmp_path))).startswith(
            "over http"
        )
        await tools["web.grow"].invoke({"name": "late_http"}, ctx(tmp_path))
        await _until(lambda: tk._stale)
        assert "web.late_http" in by_name(await tk.list_tools())
    finally:
        await tk.aclose()


async def test_http_server_unreachable(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    tk = McpToolkit("gone", {"url": f"http://127.0.0.1:{port}/mcp", "timeout": 5}, tmp_path)
    try:
        t0 = time.monotonic()
        with pytest.raises(ToolError, match="MCP server 'gone' failed to start"):
            await tk.list_tools()
        assert time.monotonic() - t0 < 5
    finally:
        await tk.aclose()


# -- failure modes -------------------------------------------------------------------------


async def test_bad_command_fails_to_start(tmp_path: Path) -> None:
    tk = McpToolkit("nope", {"command": "no-such-mcp-server-xyz"}, tmp_path)
    try:
        with pytest.raises(ToolError, match="failed to start: command not found"):
            await tk.list_tools()
    finally:
        await tk.aclose()


async def test_server_that_exits_at_start_shows_stderr(tmp_path: Path) -> None:
    tk = McpToolkit(
        "broken",
        {"command": sys.executable, "args": [str(TOY), "--exit-at-start", "bad config: no token"]},
        tmp_path,
    )
    try:
        with pytest.raises(ToolError) as info:
            await tk.list_tools()
        msg = str(info.value)
        assert "MCP server 'broken' failed to start" in msg
        assert "server stderr (last lines):\n  bad config: no token" in msg
    finally:
        await tk.aclose()


async def test_server_that_never_answers_at_start_is_stopped(tmp_path: Path) -> None:
    tk = McpToolkit(
        "slow",
        {"command": sys.executable, "args": [str(TOY), "--hang-at-start"], "startup_timeout": 3},
        tmp_path,
    )
    try:
        t0 = time.monotonic()
        with pytest.raises(ToolError) as info:
            await tk.list_tools()
        assert time.monotonic() - t0 < 3 + 3
        msg = str(info.value)
        assert "MCP server 'slow' did not answer within 3s of starting; it was stopped" in msg
        assert "loading a very large model..." in msg
    finally:
        await tk.aclose()


async def test_crash_mid_call_reports_stderr_and_restarts(toy: McpToolkit, tmp_path: Path) -> None:
    tools = by_name(await toy.list_tools())
    first = pid_of(await tools["toy.echo"].invoke({"text": "a"}, ctx(tmp_path)))
    with pytest.raises(ToolError) as info:
        await tools["toy.crash"].invoke({"message": "segfault in frobnicator"}, ctx(tmp_path))
    msg = str(info.value)
    assert "MCP server 'toy' exited during crash" in msg
    assert "starts again on the next call" in msg
    assert "segfault in frobnicator" in msg
    # The next call starts a new process, and it works.
    again = await tools["toy.echo"].invoke({"text": "b"}, ctx(tmp_path))
    assert again.startswith("b ") and pid_of(again) != first


async def test_hanging_tool_times_out_and_server_is_killed(tmp_path: Path) -> None:
    tk = McpToolkit("toy", {"command": sys.executable, "args": [str(TOY)], "timeout": 4}, tmp_path)
    try:
        tools = by_name(await tk.list_tools())
        hung = pid_of(await tools["toy.echo"].invoke({"text": "x"}, ctx(tmp_path)))
        t0 = time.monotonic()
        with pytest.raises(ToolError) as info:
            await tools["toy.hang"].invoke({"seconds": 120}, ctx(tmp_path))
        elapsed = time.monotonic() - t0
        assert 3.9 <= elapsed < 4 + 3
        assert "hang did not answer within 4s" in str(info.value)
        assert "hanging for 120.0s" in str(info.value)  # its stderr so far
        # The stuck process is stopped (stdin closed, then SIGTERM) and a new one serves.
        fresh = pid_of(await tools["toy.echo"].invoke({"text": "y"}, ctx(tmp_path)))
        assert fresh != hung
        await _until(lambda: process_gone(hung), timeout=10)
    finally:
        await tk.aclose()


async def test_tool_error_result_and_protocol_error(toy: McpToolkit, tmp_path: Path) -> None:
    tools = by_name(await toy.list_tools())
    with pytest.raises(ToolError, match="Error executing tool fail"):
        await tools["toy.fail"].invoke({"message": "nope"}, ctx(tmp_path))
    # A tool the server does not know (a stale list, say): the server's answer.
    with pytest.raises(ToolError, match="Unknown tool: no_such_tool"):
        await toy.call_tool("no_such_tool", {})
    # The connection survives both.
    assert (await tools["toy.echo"].invoke({"text": "ok"}, ctx(tmp_path))).startswith("ok")


async def test_tool_list_change_is_noticed(toy: McpToolkit, tmp_path: Path) -> None:
    changed: list[bool] = []
    toy.on_tools_changed = lambda: changed.append(True)
    tools = by_name(await toy.list_tools())
    assert "toy.shiny" not in tools
    assert await tools["toy.grow"].invoke({"name": "shiny"}, ctx(tmp_path)) == "added shiny"
    await _until(lambda: bool(changed))
    tools = by_name(await toy.list_tools())
    assert "toy.shiny" in tools
    assert await tools["toy.shiny"].invoke({}, ctx(tmp_path)) == "I am shiny"
    # Without a notice the list is served from the cache (no round trip).
    assert not toy._stale
    assert [t.name for t in await toy.list_tools()] == [t.name for t in tools.values()]


async def test_server_dying_while_idle_restarts_on_next_call(
    toy: McpToolkit, tmp_path: Path
) -> None:
    tools = by_name(await toy.list_tools())
    pid = pid_of(await tools["toy.echo"].invoke({"text": "a"}, ctx(tmp_path)))
    os.kill(pid, 9)
    await _until(lambda: toy._conn is None or not toy._conn.alive)
    out = await tools["toy.echo"].invoke({"text": "b"}, ctx(tmp_path))
    assert pid_of(out) != pid


async def test_aclose_stops_the_process(tmp_path: Path) -> None:
    tk = McpToolkit("toy", {"command": sys.executable, "args": [str(TOY)]}, tmp_path)
    tools = by_name(await tk.list_tools())
    pid = pid_of(await tools["toy.echo"].invoke({"text": "a"}, ctx(tmp_path)))
    await tk.aclose()
    assert process_gone(pid)
    with pytest.raises(ToolError, match="closed"):
        await tools["toy.echo"].invoke({"text": "b"}, ctx(tmp_path))


async def test_concurrent_calls_share_one_server(toy: McpToolkit, tmp_path: Path) -> None:
    tools = by_name(await toy.list_tools())
    outs = await asyncio.gather(
        *(tools["toy.echo"].invoke({"text": f"n{i}"}, ctx(tmp_path)) for i in range(8))
    )
    assert len({pid_of(o) for o in outs}) == 1
    assert sorted(o.split()[0] for o in outs) == sorted(f"n{i}" for i in range(8))


# -- a resumed run and a server's hints -------------------------------------------------------

_DRIVER = """
import asyncio, sys
from workbench.approvals import Resolution
from workbench.engine import Engine

async def main():
    root, db = sys.argv[1:3]
    async with Engine.open(root, db) as engine:
        engine.broker.auto_decider = lambda p: Resolution("allow", decided_by="user")
        handle = await engine.start_run("helper", "go")
        print(handle.run_id, flush=True)
        await handle.wait()

asyncio.run(main())
"""


async def test_a_servers_idempotent_hint_does_not_rerun_an_interrupted_call(
    write_workspace: Any, tmp_path: Path
) -> None:
    """toy.hang says it is read-only and idempotent. Its process is killed during a call;
    on resume the call is offered to a person again (it may have run), not re-run on the
    server's word: the MCP spec says a client must not trust such hints."""
    from tests.support.openai_server import FakeOpenAIThread, Reply
    from workbench.approvals import Resolution
    from workbench.engine import Engine
    from workbench.store import Store

    def responder(req: dict[str, Any]) -> Reply:
        if req["messages"][-1]["role"] == "user":
            return Reply(tool_calls=[("toy__hang", {"seconds": 60})])
        return Reply(text="done")

    with FakeOpenAIThread(responder=responder) as srv:
        root = write_workspace(
            f"""
            models:
              default: {{model: openai/scripted, api_base: "{srv.base_url}", api_key: none}}
            mcp:
              toy: {{ command: {json.dumps(sys.executable)}, args: [{json.dumps(str(TOY))}] }}
            agents:
              helper: {{ tools: [toy.hang] }}
            approvals:
              default: ask
              allow: ["toy.hang"]
            """
        )
        url = f"sqlite:///{tmp_path}/wb.db"
        driver = tmp_path / "driver.py"
        driver.write_text(_DRIVER)
        proc = subprocess.Popen(
            [sys.executable, str(driver), str(root), url],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[1],
            text=True,
        )
        try:
            assert proc.stdout is not None
            run_id = proc.stdout.readline().strip()
            deadline = time.monotonic() + 40
            with Store.open(url) as store:
                while not any(
                    e.type == "tool.call"
                    for session in store.list_sessions()
                    for e in store.events(session.id)
                ):
                    assert time.monotonic() < deadline, "the call never started"
                    await asyncio.sleep(0.05)
        finally:
            proc.kill()
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()

        async with Engine.open(root, url) as engine:
            hang = (await engine.tools_for(["toy.hang"]))[0]
            assert isinstance(hang, McpTool)
            assert hang.hints == {"readOnlyHint": True, "idempotentHint": True}
            assert hang.idempotent is False
            handle = await engine.resume(run_id)
            for _ in range(2000):
                if engine.broker.pending():
                    break
                await asyncio.sleep(0.01)
            (p,) = engine.broker.pending()
            assert p.interrupted and "may already have run" in p.reason
            engine.resolve_approval(p.run_id, p.call_id, Resolution("deny", note="it ran"))
            outcome = await asyncio.wait_for(handle.wait(), 30)
            assert outcome.ok
            results = [
                e for e in engine.session_events(handle.session_id) if e.type == "tool.result"
            ]
            assert len(results) == 1 and "refused" in (results[0].error or "")


# -- pieces --------------------------------------------------------------------------------


def test_registry_loads_the_toolkit_under_the_server_name(tmp_path: Path) -> None:
    from workbench.registry import load_toolkit

    tk = load_toolkit("mcp", {"command": "mcp-server-time"}, tmp_path, name="time")
    assert isinstance(tk, McpToolkit) and tk.name == "time"
    # A config that carries its name works too (for callers without ``name=``).
    tk = load_toolkit("mcp", {"name": "clock2", "command": "mcp-server-time"}, tmp_path)
    assert tk.name == "clock2"


async def test_engine_run_sees_a_crash_as_a_tool_result_error(
    write_workspace: Any, db_url: str
) -> None:
    from workbench.engine import Engine

    root = write_workspace(
        f"""
        mcp:
          toy: {{ command: {json.dumps(sys.executable)}, args: [{json.dumps(str(TOY))}] }}
        agents:
          crasher: {{ model: test, instructions: Call the tool., tools: [toy.crash] }}
          echoer: {{ model: test, instructions: Call the tool., tools: ["toy.ec*"] }}
        approvals:
          default: allow
        """
    )
    async with Engine.open(root, db=db_url) as engine:
        assert [t.name for t in await engine.tools_for(["toy.*"])][:2] == ["toy.echo", "toy.fail"]
        crashed = await engine.start_run("crasher", "go")
        await crashed.wait()
        results = [e for e in engine.session_events(crashed.session_id) if e.type == "tool.result"]
        assert len(results) == 1 and results[0].tool == "toy.crash"
        assert "MCP server 'toy' exited during crash" in (results[0].error or "")
        assert "server stderr (last lines)" in (results[0].error or "")

        # The next run's call starts the server again.
        echoed = await engine.start_run("echoer", "go", session_id=crashed.session_id)
        await echoed.wait()
        results = [e for e in engine.session_events(echoed.session_id) if e.type == "tool.result"]
        assert results[-1].tool == "toy.echo" and results[-1].error is None
        assert "(pid " in (results[-1].output or "")


def test_config_needs_command_or_url(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of 'command' or 'url'"):
        McpToolkit("x", {}, tmp_path)
    tk = McpToolkit("x", {"command": "srv", "cwd": "sub", "timeout": None}, tmp_path)
    assert tk.cwd == tmp_path / "sub" and tk.timeout == 30 and tk.startup_timeout == 30
    tk = McpToolkit("x", {"url": "http://127.0.0.1:1/mcp", "timeout": 2}, tmp_path)
    assert tk.cwd == tmp_path and tk.timeout == 2 and tk.startup_timeout == 30
    assert McpToolkit("x", {"command": "s", "timeout": 90}, tmp_path).startup_timeout == 90


def test_result_text_renders_every_block() -> None:
    import mcp_types as types

    result = types.CallToolResult(
        content=[
            types.TextContent(type="text", text="hello"),
            types.ImageContent(type="image", data="aGVsbG8=", mime_type="image/png"),
            types.EmbeddedResource(
                type="resource",
                resource=types.TextResourceContents(uri="file:///a.txt", text="inside"),
            ),
            types.ResourceLink(type="resource_link", uri="file:///b.txt", name="b"),
        ]
    )
    text = result_text(result)
    assert text.split("\n\n") == [
        "hello",
        "[image: image/png, 5 bytes]",  # "aGVsbG8=" is the 5 bytes of "hello"
        "inside",
        "[resource: file:///b.txt]",
    ]
    structured = types.CallToolResult(content=[], structured_content={"n": 1})
    assert result_text(structured) == '{"n": 1}'


async def _until(cond: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_a_chatty_servers_stderr_is_cut_to_its_tail(toy: McpToolkit, tmp_path: Path) -> None:
    """A stdio server's stderr goes to a temporary file; past 1 MiB it is cut to its last
    64 KiB on the next call, and its tail still reads (the server keeps appending)."""
    tools = by_name(await toy.list_tools())
    assert await tools["toy.chatter"].call({"kib": 1500, "last": "first burst"}, ctx(tmp_path))
    conn = toy._conn
    assert conn is not None and conn._errlog is not None
    fd = conn._errlog.fileno()
    assert os.fstat(fd).st_size > 1500 * 1024
    assert conn.tail().endswith("first burst")
    await tools["toy.chatter"].call({"kib": 1, "last": "second burst"}, ctx(tmp_path))
    size = os.fstat(fd).st_size
    assert 64 * 1024 < size < 70 * 1024  # cut before the call, then the call's 1 KiB
    assert conn.tail().endswith("second burst")
    assert "first burst" in conn.tail()  # the kept tail reaches back past the cut
    echoed = await tools["toy.echo"].call({"text": "still here"}, ctx(tmp_path))
    assert "still here" in echoed.text
