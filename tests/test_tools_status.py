"""What a person sees of their tools: ``workbench tools``, ``GET /api/tools`` and ``doctor``
show every MCP server's state (ready, failed with its stderr tail, starting) and the
workspace's ``module:function`` tools; a Python tool with a bad annotation fails when it is
loaded; an unset ``${VAR}`` in a header is a config error; and a stdio server does not
outlive a ``workbench run`` killed with SIGKILL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from workbench.engine import Engine
from workbench.registry import PluginError, load_module_tool
from workbench.workspace import WorkspaceError, load_workspace

TOY = Path(__file__).parent / "support" / "mcp_servers" / "toy.py"
PY = json.dumps(sys.executable)
TOY_ARG = json.dumps(str(TOY))
ESCAPES = "\\x1b]0;pwned\\x07\\x1b[2J"
"""What a failing server writes before its error, in YAML's escapes: a window title and a
screen clear. Every face shows them as text, spelled exactly so."""

pytestmark = pytest.mark.timeout(120)

TOOLS_PY = '''
from typing import TypedDict


class Options(TypedDict):
    depth: int


def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


def deep(options: Options) -> str:
    """typing.TypedDict cannot be validated on Python 3.11."""
    return "deep"


def ghost(thing: "Phantom", n: int = 1) -> str:
    """An annotation that names nothing."""
    return "boo"
'''


def wb(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workbench.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


@pytest.fixture
def mixed(write_workspace: Any) -> Path:
    """A workspace with a good server, one that exits at start, one that never answers,
    and workspace tools good and bad."""
    return write_workspace(
        f"""
        mcp:
          toy: {{ command: {PY}, args: [{TOY_ARG}] }}
          broken: {{ command: {PY}, args: [{TOY_ARG}, --exit-at-start, "{ESCAPES}FATAL: no GITHUB_TOKEN"] }}
          slow: {{ command: {PY}, args: [{TOY_ARG}, --hang-at-start], startup_timeout: 60 }}
        agents:
          a:
            model: test
            tools: [toy.echo, "mytools:word_count"]
          b:
            model: test
            tools: ["mytools:deep", "mytools:ghost"]
        approvals:
          default: ask
          allow: [toy.echo]
        """,
        {"mytools.py": TOOLS_PY},
    )


def test_python_tools_fail_at_load_naming_file_function_and_parameter(tmp_path: Path) -> None:
    (tmp_path / "mytools.py").write_text(TOOLS_PY)
    path = tmp_path / "mytools.py"
    assert load_module_tool(tmp_path, "mytools:word_count").name == "mytools:word_count"
    with pytest.raises(PluginError) as info:
        load_module_tool(tmp_path, "mytools:deep")
    message = str(info.value)
    assert f"tool 'mytools:deep' in {path}: parameter 'options' of deep()" in message
    assert "typing_extensions.TypedDict" in message
    with pytest.raises(PluginError) as info:
        load_module_tool(tmp_path, "mytools:ghost")
    assert f"in {path}: parameter 'thing' of ghost()" in str(info.value)
    assert "'Phantom', which is not defined" in str(info.value)


async def test_an_agent_with_a_bad_python_tool_fails_before_the_model(
    mixed: Path, db_url: str
) -> None:
    async with Engine.open(mixed, db=db_url) as engine:
        outcome = await engine.run("b", "go")
        events = engine.session_events(engine.sessions()[0].id)
    assert outcome.status == "failed"
    assert "parameter 'options' of deep()" in (outcome.error or "")
    assert not [e for e in events if e.type == "message.completed" and e.role == "assistant"]  # type: ignore[union-attr]


def test_workbench_tools_shows_every_server_and_workspace_tool(mixed: Path, db_url: str) -> None:
    t0 = time.monotonic()
    r = wb("tools", "-w", str(mixed), "--db", db_url, "--wait", "10")
    took = time.monotonic() - t0
    out = r.stdout
    assert r.returncode == 1, out + r.stderr  # a server failed and a tool does not load
    assert took < 40  # the hanging server does not hold the listing for its 60 s
    assert re.search(r"toy\.echo\s+mcp toy\s+allow", out)
    assert re.search(r"mytools:word_count\s+workspace mytools\.py\s+ask", out)
    assert "✓ mcp server toy: ready, 12 tools" in out
    assert "not offered: batch_job: requires MCP tasks" in out
    assert "✗ mcp server broken: failed" in out and "FATAL: no GITHUB_TOKEN" in out
    assert "\x1b" not in out and ESCAPES in out  # the server's escapes, shown, not obeyed
    assert "… mcp server slow: still starting after 10s" in out
    assert "✗ tool mytools:deep:" in out and "parameter 'options' of deep()" in out
    assert "✗ tool mytools:ghost:" in out

    j = wb("tools", "-w", str(mixed), "--db", db_url, "--wait", "10", "--json")
    report = json.loads(j.stdout)
    states = {k["name"]: k for k in report["toolkits"]}
    assert states["toy"]["state"] == "ready" and "toy.echo" in states["toy"]["tools"]
    assert states["broken"]["state"] == "failed"
    assert "FATAL: no GITHUB_TOKEN" in states["broken"]["error"]
    assert "\x1b" not in j.stdout and "\x1b]0;pwned" in states["broken"]["error"]
    assert states["slow"]["state"] == "starting"
    assert {t["name"] for t in report["tools"]} >= {"toy.echo", "mytools:word_count"}
    assert set(report["broken"]) == {"mytools:deep", "mytools:ghost"}


def test_api_tools_and_toolkits(mixed: Path, db_url: str) -> None:
    from fastapi.testclient import TestClient

    from workbench.server import ServerConfig, create_app

    engine = Engine.open(mixed, db=db_url)
    app = create_app(engine, ServerConfig(), owns_engine=True)
    # A loopback Host: without a token the server answers no other name (DNS rebinding).
    with TestClient(app, base_url="http://127.0.0.1") as client:
        # serve warms every server at start: they are starting (or done) before any request.
        listing = client.get("/api/toolkits")
        assert listing.status_code == 200, listing.text
        first = {k["name"]: k["state"] for k in listing.json()}
        assert first["toy"] in ("starting", "ready") and first["slow"] == "starting"
        rows = {t["name"]: t for t in client.get("/api/tools", params={"wait": 5}).json()}
        assert rows["toy.echo"]["state"] == "ready" and rows["toy.echo"]["policy"] == "allow"
        assert rows["mytools:word_count"]["source"] == "workspace mytools.py"
        assert rows["broken.*"]["state"] == "failed"
        assert "FATAL: no GITHUB_TOKEN" in rows["broken.*"]["error"]
        assert rows["slow.*"]["state"] == "starting"
        assert rows["mytools:deep"]["state"] == "failed"
        assert "parameter 'options'" in rows["mytools:deep"]["error"]
        kits = {k["name"]: k for k in client.get("/api/toolkits").json()}
        assert kits["toy"]["kind"] == "mcp" and kits["toy"]["instructions"]
        assert kits["files"]["kind"] == "plugin"


def test_doctor_starts_each_server(write_workspace: Any, db_url: str) -> None:
    ws = write_workspace(
        f"""
        mcp:
          time: {{ command: mcp-server-time }}
          broken: {{ command: {PY}, args: [{TOY_ARG}, --exit-at-start, "{ESCAPES}FATAL: bad config"] }}
        agents:
          a: {{ model: test, tools: [time.get_current_time] }}
        """
    )
    r = wb("doctor", "-w", str(ws), "--db", db_url, "--offline")
    assert r.returncode == 1, r.stdout
    assert "✓ mcp time: 2 tools: get_current_time, convert_time" in r.stdout
    assert "✗ mcp broken: MCP server 'broken' failed to start" in r.stdout
    assert "FATAL: bad config" in r.stdout
    assert "\x1b" not in r.stdout and ESCAPES in r.stdout


def test_an_unset_variable_in_a_header_is_a_config_error(
    write_workspace: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WB_NO_SUCH_TOKEN", raising=False)
    root = write_workspace(
        """
        mcp:
          docs:
            url: "http://127.0.0.1:9/mcp"
            headers:
              Authorization: "Bearer ${WB_NO_SUCH_TOKEN}"
        """
    )
    with pytest.raises(WorkspaceError) as info:
        load_workspace(root)
    err = info.value
    assert err.line == 6 and err.key == "mcp.docs.headers.Authorization"
    assert "${WB_NO_SUCH_TOKEN} is not set in the environment" in str(err)
    monkeypatch.setenv("WB_NO_SUCH_TOKEN", "t0k")
    ws = load_workspace(root)
    assert ws.mcp["docs"].headers == {"Authorization": "Bearer t0k"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal")
def test_no_orphans_after_kill_9_of_workbench_run(
    write_workspace: Any, db_url: str, tmp_path: Path
) -> None:
    """A stdio server busy in a call (it does not read its stdin, so it would never see
    the pipe close) ends within a couple of seconds of ``kill -9`` of ``workbench run``."""
    pidfile = tmp_path / "server.pid"
    server = tmp_path / "busy_server.py"
    server.write_text(
        f"""
import os, sys, time
sys.path.insert(0, {json.dumps(str(TOY.parent))})
import toy
from mcp.server.mcpserver import MCPServer

app = toy.build()

@app.tool()
def busy() -> str:
    \"\"\"Block the process (as a stuck server does), after saying who it is.\"\"\"
    open({json.dumps(str(pidfile))}, "w").write(str(os.getpid()))
    time.sleep(600)
    return "done"

app.run("stdio")
"""
    )
    root = write_workspace(
        f"""
        mcp:
          busy: {{ command: {PY}, args: [{json.dumps(str(server))}], timeout: 600 }}
        agents:
          a: {{ model: test, tools: [busy.busy] }}
        approvals:
          default: allow
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "workbench.cli", "run", "-w", str(root), "--db", db_url, "go"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # as a terminal's job would be: not in pytest's group
    )
    try:
        deadline = time.monotonic() + 60
        while not pidfile.exists() or not pidfile.read_text():
            assert proc.poll() is None, "workbench run ended before the call"
            assert time.monotonic() < deadline, "the server never got the call"
            time.sleep(0.05)
        server_pid = int(pidfile.read_text())
        assert _alive(server_pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        gone_by = time.monotonic() + 3
        while _alive(server_pid) and time.monotonic() < gone_by:
            time.sleep(0.05)
        assert not _alive(server_pid), "the MCP server outlived workbench run"
    finally:
        if proc.poll() is None:
            proc.kill()
        if pidfile.exists() and pidfile.read_text() and _alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
