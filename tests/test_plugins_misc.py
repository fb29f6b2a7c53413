"""The ``shell``, ``calculator``, ``http``, ``web`` and ``time`` toolkits. Nothing here
reaches the network: HTTP goes to a server the test starts on 127.0.0.1, and web search is
pointed at a closed local port."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from plugins.calculator import CalculatorToolkit, evaluate_expression
from plugins.clock import TimeToolkit
from plugins.http import HttpToolkit
from plugins.shell import ShellToolkit, cap_output
from plugins.web import WebToolkit, run_in_daemon_thread
from workbench.tools import Tool, ToolContext, ToolError, Toolkit


async def tools_of(kit: Toolkit) -> dict[str, Tool]:
    return {t.name: t for t in await kit.list_tools()}


def ctx_for(root: Path) -> ToolContext:
    return ToolContext(workspace_root=root)


def _gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _wait_gone(pid: int, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.02)
    return _gone(pid)


# -- shell -------------------------------------------------------------------------------


@pytest.fixture
async def run(tmp_path: Path) -> Tool:
    return (await tools_of(ShellToolkit("shell", {}, tmp_path)))["shell.run"]


async def test_shell_tool_contract() -> None:
    kit = ShellToolkit("shell", {}, Path("."))
    (run_tool,) = await kit.list_tools()
    assert run_tool.name == "shell.run"
    assert run_tool.match_on == ("command", "cmd")
    assert run_tool.parameters["required"] == ["cmd"]
    assert "Never allowed by default" in (ShellToolkit.__doc__ or "")


async def test_shell_output_and_exit_code(run: Tool, tmp_path: Path) -> None:
    out = await run.invoke({"cmd": "echo out; echo err >&2; exit 1"}, ctx_for(tmp_path))
    assert out == "out\nerr\nexit code 1"
    assert await run.invoke({"cmd": "true"}, ctx_for(tmp_path)) == "exit code 0"
    assert await run.invoke({"cmd": "kill -9 $$"}, ctx_for(tmp_path)) == "killed by signal 9"


async def test_shell_runs_commands_with_bash(run: Tool, tmp_path: Path) -> None:
    """The shell the matcher models: ``$'...'`` is ANSI-C quoting and ``&>`` redirects both
    streams (dash, Debian's /bin/sh, reads both otherwise and would run ``touch``)."""
    out = await run.invoke(
        {"cmd": "echo $'a\\x41\\'b'; echo ${BASH_VERSION:+bash}"}, ctx_for(tmp_path)
    )
    assert out == "aA'b\nbash\nexit code 0"
    out = await run.invoke({"cmd": "echo hi &>out.txt touch probe"}, ctx_for(tmp_path))
    assert out == "exit code 0"
    assert (tmp_path / "out.txt").read_text() == "hi touch probe\n"
    assert not (tmp_path / "probe").exists()


async def test_shell_without_bash_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    kit = ShellToolkit("shell", {}, tmp_path)
    (run_tool,) = await kit.list_tools()
    with pytest.raises(ToolError, match="bash was not found on PATH.*install bash"):
        await run_tool.invoke({"cmd": "true"}, ctx_for(tmp_path))


async def test_shell_refuses_a_nul_byte_clearly(run: Tool, tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="NUL byte"):
        await run.invoke({"cmd": "echo a\x00; touch probe"}, ctx_for(tmp_path))
    assert not (tmp_path / "probe").exists()


async def test_shell_cwd_is_workspace_root(run: Tool, tmp_path: Path) -> None:
    out = await run.invoke({"cmd": "pwd; echo hi > made.txt"}, ctx_for(tmp_path))
    assert out.splitlines()[0] == os.path.realpath(tmp_path)
    assert (tmp_path / "made.txt").read_text() == "hi\n"


async def test_shell_timeout_kills_the_process_group(run: Tool, tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(ToolError, match=r"timed out after 0\.5s.*killed") as err:
        await run.invoke(
            {"cmd": "sleep 30 & echo $! > child.pid; echo started; wait", "timeout": 0.5},
            ctx_for(tmp_path),
        )
    assert time.monotonic() - t0 < 5
    assert "started" in str(err.value), "the output so far is reported"
    child = int((tmp_path / "child.pid").read_text())
    assert _wait_gone(child), "the sleep 30 child outlived the timeout"


async def test_shell_default_timeout_comes_from_config(tmp_path: Path) -> None:
    kit = ShellToolkit("shell", {"timeout": 0.3}, tmp_path)
    run_tool = (await tools_of(kit))["shell.run"]
    with pytest.raises(ToolError, match=r"timed out after 0\.3s"):
        await run_tool.invoke({"cmd": "sleep 10"}, ctx_for(tmp_path))


async def test_shell_background_leftovers_are_stopped(run: Tool, tmp_path: Path) -> None:
    out = await run.invoke({"cmd": "sleep 30 & echo $! > bg.pid; echo done"}, ctx_for(tmp_path))
    assert out == "done\n[background processes it left running were stopped]\nexit code 0"
    assert _wait_gone(int((tmp_path / "bg.pid").read_text()))


async def test_shell_returns_when_an_escaped_process_holds_the_pipe(
    run: Tool, tmp_path: Path
) -> None:
    # setsid puts the child out of the command's process group, beyond killpg's reach; the
    # call must still come back (and stop reading) instead of waiting for it.
    cmd = "setsid sh -c 'echo $$ > escaped.pid; exec sleep 30' & sleep 0.2; echo back"
    t0 = time.monotonic()
    try:
        out = await run.invoke({"cmd": cmd}, ctx_for(tmp_path))
        assert out.startswith("back\n") and out.endswith("exit code 0")
        assert time.monotonic() - t0 < 6
    finally:
        pid = int((tmp_path / "escaped.pid").read_text())
        os.kill(pid, 9)
        assert _wait_gone(pid)


async def test_shell_cancel_kills_the_process_group(run: Tool, tmp_path: Path) -> None:
    task = asyncio.create_task(
        run.invoke({"cmd": "sleep 30 & echo $! > c.pid; wait"}, ctx_for(tmp_path))
    )
    for _ in range(1000):
        if (tmp_path / "c.pid").exists() and (tmp_path / "c.pid").read_text().strip():
            break
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _wait_gone(int((tmp_path / "c.pid").read_text()))


@pytest.mark.parametrize("delay", [0.0, 0.001, 0.005, 0.02])
async def test_shell_cancel_while_starting_leaves_nothing(
    run: Tool, tmp_path: Path, delay: float
) -> None:
    # A cancel may land while asyncio is still connecting the pipes of a command that
    # already runs: its children must not survive either.
    for i in range(5):
        pid_file = tmp_path / f"s{i}.pid"
        task = asyncio.create_task(
            run.invoke({"cmd": f"sleep 30 & echo $! > {pid_file.name}; wait"}, ctx_for(tmp_path))
        )
        await asyncio.sleep(delay)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.3)  # a shell that got to run has written the pid by now
        if pid_file.exists() and pid_file.read_text().strip():
            assert _wait_gone(int(pid_file.read_text())), f"delay {delay}, round {i}"


async def test_shell_output_cap_keeps_head_and_tail(tmp_path: Path) -> None:
    kit = ShellToolkit("shell", {"max_output": 1000}, tmp_path)
    run_tool = (await tools_of(kit))["shell.run"]
    cmd = "echo FIRST; yes | head -c 100000; echo LAST"
    out = await run_tool.invoke({"cmd": cmd}, ctx_for(tmp_path))
    assert out.startswith("FIRST\n")
    assert out.endswith("LAST\nexit code 0")
    assert "[... 99011 chars cut ...]" in out
    assert len(out) < 1100


def test_cap_output() -> None:
    assert cap_output("short", 10) == "short"
    assert cap_output("a" * 10 + "b" * 10, 10) == "aaaaa\n[... 10 chars cut ...]\nbbbbb"


# -- calculator --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("2 ** 10", "1024"),
        ("2 ^ 10", "1024"),
        ("7 / 2", "3.5"),
        ("7 // 2", "3"),
        ("-7 % 3", "2"),
        ("-(2 + 3)", "-5"),
        ("sqrt(16) + abs(-2)", "6"),
        ("round(pi, 3)", "3.142"),
        ("floor(2.7) + ceil(2.1)", "5"),
        ("min(3, 1, 2) + max(4, 5)", "6"),
        ("log(e)", "1"),
        ("log(8, 2)", "3"),
        ("exp(0) + sin(0) + cos(0) + tan(0)", "2"),
        ("10 ** 30", "1" + "0" * 30),
        ("0.1 + 0.2", "0.30000000000000004"),
    ],
)
async def test_calculator_values(expression: str, expected: str) -> None:
    tool_ = (await tools_of(CalculatorToolkit("calculator", {}, Path("."))))["calculator.evaluate"]
    assert await tool_.invoke({"expression": expression}, ctx_for(Path("."))) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os')", "unknown function '__import__'"),
        ("(1).__class__", "attribute access"),
        ("().__class__.__bases__", "attribute access"),
        ("os.system('true')", "unknown function 'os.system'"),
        ("x + 1", "unknown name 'x'"),
        ("open", "unknown name 'open'"),
        ("'a' * 3", "only numbers"),
        ("9**9**9", "too large"),
        ("2 ** 100000", "too large"),
        ("10**3000 * 10**3000", "too large"),
        ("1e308 * 10", "too large"),
        ("exp(1000)", "too large"),
        ("1 / 0", "division by zero"),
        ("1 // 0", "division by zero"),
        ("1 % 0", "division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("(-8) ** 0.5", "not a real number"),
        ("[1, 2]", "not allowed"),
        ("lambda: 1", "not allowed"),
        ("1 +", "not a valid expression"),
        ("round(1.5, ndigits=1)", "positional"),
        ("", "empty"),
    ],
)
def test_calculator_refusals(expression: str, message: str) -> None:
    with pytest.raises(ToolError, match=message.replace("(", r"\(")):
        evaluate_expression(expression)


def test_calculator_is_fast_on_huge_powers() -> None:
    t0 = time.monotonic()
    for expr in ("9**9**9", "2**2**2**2**2**2", "10**10**10"):
        with pytest.raises(ToolError):
            evaluate_expression(expr)
    assert time.monotonic() - t0 < 1


# -- http --------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    release: threading.Event

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (the size cap): expected

    def do_GET(self) -> None:
        if self.path == "/hello":
            self._send(200, f"hello {self.headers.get('X-Name', 'nobody')}".encode())
        elif self.path == "/big":
            self._send(200, b"a" * 200_000)
        elif self.path.startswith("/redirect/"):
            n = int(self.path.rsplit("/", 1)[1])
            if n == 0:
                self._send(200, b"arrived")
            else:
                self.send_response(302)
                self.send_header("Location", f"/redirect/{n - 1}")
                self.send_header("Content-Length", "0")
                self.end_headers()
        elif self.path == "/to-ftp":
            self.send_response(302)
            self.send_header("Location", "ftp://127.0.0.1/x")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/slow":
            self.release.wait(10)
            self._send(200, b"late")
        elif self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/to/") :])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/binary":
            self._send(200, b"\x00\x01\x02" * 10, "application/octet-stream")
        elif self.path == "/missing":
            self._send(404, b"not here")
        else:
            self._send(500, b"?")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode()
        reply = {"content_type": self.headers.get("Content-Type"), "body": body}
        self._send(201, json.dumps(reply).encode(), "application/json")


@pytest.fixture
def server() -> Iterator[str]:
    release = threading.Event()
    handler = type("Handler", (_Handler,), {"release": release})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


LOCAL: dict[str, Any] = {"trust_env": False, "allow_private": ["127.0.0.1"]}
"""Settings for a toolkit that may reach this test's server on 127.0.0.1 (and nothing
else private)."""


@pytest.fixture
async def http_tools() -> dict[str, Tool]:
    # trust_env off: a proxy in the developer's environment must not catch 127.0.0.1.
    # The test server is on loopback, which the toolkit refuses unless allowed.
    return await tools_of(HttpToolkit("http", {**LOCAL, "timeout": 5}, Path(".")))


async def test_http_get(http_tools: dict[str, Tool], server: str) -> None:
    out = await http_tools["http.get"].invoke(
        {"url": f"{server}/hello", "headers": {"X-Name": "ada"}}, ctx_for(Path("."))
    )
    assert out == "HTTP/1.0 200 OK\ncontent-type: text/plain\n\nhello ada"


async def test_http_status_errors_are_answers(http_tools: dict[str, Tool], server: str) -> None:
    out = await http_tools["http.get"].invoke({"url": f"{server}/missing"}, ctx_for(Path(".")))
    assert out.startswith("HTTP/1.0 404 Not Found\n") and out.endswith("not here")


async def test_http_post_json_and_body(http_tools: dict[str, Tool], server: str) -> None:
    post = http_tools["http.post"]
    assert "json" in post.parameters["properties"]
    out = await post.invoke({"url": f"{server}/echo", "json": {"a": [1, 2]}}, ctx_for(Path(".")))
    head, _, body = out.partition("\n\n")
    assert head == "HTTP/1.0 201 Created\ncontent-type: application/json"
    echoed = json.loads(body)
    assert echoed["content_type"] == "application/json"
    assert json.loads(echoed["body"]) == {"a": [1, 2]}
    out = await post.invoke(
        {"url": f"{server}/echo", "body": "x=1", "headers": {"Content-Type": "text/x-test"}},
        ctx_for(Path(".")),
    )
    assert json.loads(out.partition("\n\n")[2]) == {"content_type": "text/x-test", "body": "x=1"}
    with pytest.raises(ToolError, match="not both"):
        await post.invoke({"url": f"{server}/echo", "body": "x", "json": {}}, ctx_for(Path(".")))


async def test_http_size_cap_truncates(server: str) -> None:
    tools = await tools_of(HttpToolkit("http", {**LOCAL, "max_bytes": 1000}, Path(".")))
    out = await tools["http.get"].invoke({"url": f"{server}/big"}, ctx_for(Path(".")))
    body = out.partition("\n\n")[2]
    assert body == "a" * 1000 + "\n[truncated: the body is longer than 1000 bytes]"


async def test_http_redirects_are_followed_up_to_the_limit(server: str) -> None:
    tools = await tools_of(HttpToolkit("http", {**LOCAL, "max_redirects": 3}, Path(".")))
    out = await tools["http.get"].invoke({"url": f"{server}/redirect/3"}, ctx_for(Path(".")))
    assert out.endswith("\n\narrived") and f"url: {server}/redirect/0" in out
    with pytest.raises(ToolError, match=r"too many redirects \(more than 3\)"):
        await tools["http.get"].invoke({"url": f"{server}/redirect/4"}, ctx_for(Path(".")))
    with pytest.raises(ToolError, match="only http and https"):
        await tools["http.get"].invoke({"url": f"{server}/to-ftp"}, ctx_for(Path(".")))


async def test_http_timeout(server: str) -> None:
    tools = await tools_of(HttpToolkit("http", {**LOCAL, "timeout": 0.5}, Path(".")))
    t0 = time.monotonic()
    with pytest.raises(ToolError, match=r"timed out after 0\.5s"):
        await tools["http.get"].invoke({"url": f"{server}/slow"}, ctx_for(Path(".")))
    assert time.monotonic() - t0 < 3


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "example.com", "http://"]
)
async def test_http_bad_urls(http_tools: dict[str, Tool], url: str) -> None:
    with pytest.raises(ToolError, match="only http and https|no host"):
        await http_tools["http.get"].invoke({"url": url}, ctx_for(Path(".")))


async def test_http_binary_body_is_not_dumped(http_tools: dict[str, Tool], server: str) -> None:
    out = await http_tools["http.get"].invoke({"url": f"{server}/binary"}, ctx_for(Path(".")))
    assert out.endswith("(binary body, 30 bytes, not shown)")


async def test_http_connection_refused(http_tools: dict[str, Tool]) -> None:
    with pytest.raises(ToolError, match="failed: ConnectError"):
        await http_tools["http.get"].invoke({"url": "http://127.0.0.1:9/"}, ctx_for(Path(".")))


@pytest.mark.parametrize(
    ("url", "what"),
    [
        ("http://127.0.0.1:{port}/hello", "127.0.0.1 is a loopback address"),
        ("http://localhost:{port}/hello", "(localhost resolves to "),
        ("http://[::1]:{port}/hello", "::1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://10.0.0.7/", "10.0.0.7 is a private address"),
        ("http://[::ffff:127.0.0.1]:{port}/", "is a loopback address"),
        ("http://0.0.0.0:{port}/", "0.0.0.0 is a unspecified address"),
    ],
)
async def test_http_refuses_private_addresses_by_default(server: str, url: str, what: str) -> None:
    port = server.rsplit(":", 1)[1]
    tools = await tools_of(HttpToolkit("http", {"trust_env": False, "timeout": 5}, Path(".")))
    for name in ("http.get", "http.post"):
        with pytest.raises(ToolError) as info:
            await tools[name].invoke({"url": url.format(port=port)}, ctx_for(Path(".")))
        assert what in str(info.value)
        assert "allow_private under toolkits: http:" in str(info.value)


async def test_http_allow_private_and_redirects(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    everything = await tools_of(
        HttpToolkit("http", {"trust_env": False, "allow_private": True}, Path("."))
    )
    out = await everything["http.get"].invoke({"url": f"{server}/hello"}, ctx_for(Path(".")))
    assert "hello nobody" in out
    # Allowed: 127.0.0.1 only. A redirect to another loopback address is checked too.
    tools = await tools_of(HttpToolkit("http", LOCAL, Path(".")))
    arrived = await tools["http.get"].invoke(
        {"url": f"{server}/to/http://127.0.0.1:{port}/hello"}, ctx_for(Path("."))
    )
    assert "hello nobody" in arrived
    with pytest.raises(ToolError, match="127.0.0.2 is a loopback address"):
        await tools["http.get"].invoke(
            {"url": f"{server}/to/http://127.0.0.2:{port}/hello"}, ctx_for(Path("."))
        )
    with pytest.raises(ValueError, match="allow_private"):
        HttpToolkit("http", {"allow_private": "yes"}, Path("."))
    with pytest.raises(ValueError, match="not an address or a network"):
        HttpToolkit("http", {"allow_private": ["intranet"]}, Path("."))


async def test_the_connection_is_checked_not_only_the_name(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name that resolves to a public address when checked and to loopback when connected
    (DNS rebinding) is refused at the connection."""
    import plugins.http as http_plugin

    port = int(server.rsplit(":", 1)[1])
    calls = 0
    real = http_plugin._Guard.check_host

    async def flip(self: Any, host: str, p: int) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:  # the request hook: a public answer
            return ["93.184.216.34"]
        return await real(self, "127.0.0.1", p)  # the connection: loopback

    monkeypatch.setattr(http_plugin._Guard, "check_host", flip)
    tools = await tools_of(HttpToolkit("http", {"trust_env": False}, Path(".")))
    with pytest.raises(ToolError, match="127.0.0.1 is a loopback address"):
        await tools["http.get"].invoke(
            {"url": f"http://rebind.example:{port}/hello"}, ctx_for(Path("."))
        )
    assert calls == 2


# -- web ---------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every proxy variable points at a closed local port: any request fails at once."""
    for var in (
        "HTTPS_PROXY",
        "HTTP_PROXY",
        "ALL_PROXY",
        "https_proxy",
        "http_proxy",
        "all_proxy",
        "DDGS_PROXY",
    ):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)


@pytest.mark.parametrize("tool_name", ["web.search", "web.news"])
async def test_web_without_network_fails_fast_and_clearly(no_network: None, tool_name: str) -> None:
    tools = await tools_of(WebToolkit("web", {"timeout": 5}, Path(".")))
    t0 = time.monotonic()
    with pytest.raises(ToolError, match=r"^web search failed: no network\? "):
        await tools[tool_name].invoke({"query": "workbench"}, ctx_for(Path(".")))
    assert time.monotonic() - t0 < 6


async def test_web_tiny_timeout_gives_up_on_time(no_network: None) -> None:
    # The proxy is also in the config: the abandoned search thread may build its client
    # after this test has restored the environment, and must not reach the network then.
    config = {"timeout": 0.001, "proxy": "http://127.0.0.1:9"}
    tools = await tools_of(WebToolkit("web", config, Path(".")))
    t0 = time.monotonic()
    with pytest.raises(ToolError, match=r"^web search failed: no network\? "):
        await tools["web.search"].invoke({"query": "workbench"}, ctx_for(Path(".")))
    assert time.monotonic() - t0 < 2
    # Let the abandoned thread finish (it fails at the closed port) while the proxy
    # variables are still set.
    for thread in threading.enumerate():
        if thread.name == "workbench-web-search":
            await asyncio.to_thread(thread.join, 10)


async def test_daemon_thread_is_abandoned_on_timeout() -> None:
    release = threading.Event()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        await run_in_daemon_thread(lambda: release.wait(30), 0.1)
    assert time.monotonic() - t0 < 1
    release.set()
    assert await run_in_daemon_thread(lambda: 42, 1) == 42
    with pytest.raises(ZeroDivisionError):
        await run_in_daemon_thread(lambda: 1 / 0, 1)


def _fake_ddgs(results: list[dict[str, str]] | None, error: str = "") -> types.ModuleType:
    module = types.ModuleType("ddgs")

    class DDGS:
        def __init__(self, proxy: str | None = None, timeout: int | None = 5) -> None:
            pass

        def text(self, query: str, **kwargs: Any) -> list[dict[str, str]]:
            if error:
                raise RuntimeError(error)
            return (results or [])[: kwargs["max_results"]]

        news = text

    module.DDGS = DDGS  # type: ignore[attr-defined]
    return module


async def test_web_formats_results(monkeypatch: pytest.MonkeyPatch) -> None:
    found = [
        {
            "title": "One",
            "href": "https://one.test",
            "url": "https://one.test",
            "body": "first",
            "source": "S",
            "date": "2025-01-01",
        },
        {
            "title": "Two",
            "href": "https://two.test",
            "url": "https://two.test",
            "body": "",
            "source": "",
            "date": "",
        },
    ]
    monkeypatch.setitem(sys.modules, "ddgs", _fake_ddgs(found))
    tools = await tools_of(WebToolkit("web", {}, Path(".")))
    out = await tools["web.search"].invoke({"query": "q"}, ctx_for(Path(".")))
    assert out == "1. One\n   https://one.test\n   first\n2. Two\n   https://two.test"
    news = await tools["web.news"].invoke({"query": "q", "max_results": 1}, ctx_for(Path(".")))
    assert news == "1. One (S, 2025-01-01)\n   https://one.test\n   first"


async def test_web_no_results_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ddgs", _fake_ddgs(None, "No results found."))
    tools = await tools_of(WebToolkit("web", {}, Path(".")))
    assert (
        await tools["web.search"].invoke({"query": "q"}, ctx_for(Path("."))) == "no results for 'q'"
    )


async def test_web_missing_ddgs_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ddgs", None)  # makes ``import ddgs`` raise ImportError
    tools = await tools_of(WebToolkit("web", {}, Path(".")))
    with pytest.raises(ToolError, match="pip install ddgs"):
        await tools["web.search"].invoke({"query": "q"}, ctx_for(Path(".")))


def test_web_listing_does_not_import_ddgs() -> None:
    code = (
        "import asyncio, sys; from pathlib import Path; from plugins.web import WebToolkit\n"
        "tools = asyncio.run(WebToolkit('web', {}, Path('.')).list_tools())\n"
        "assert [t.name for t in tools] == ['web.search', 'web.news'], tools\n"
        "assert 'ddgs' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root, timeout=60)


# -- time --------------------------------------------------------------------------------


@pytest.fixture
async def time_tools() -> dict[str, Tool]:
    return await tools_of(TimeToolkit("time", {}, Path(".")))


async def test_time_now(time_tools: dict[str, Tool]) -> None:
    out = await time_tools["time.now"].invoke({}, ctx_for(Path(".")))
    stamp, _, rest = out.partition(" ")
    moment = datetime.fromisoformat(stamp)
    assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 5
    assert rest.endswith(", UTC)")
    paris = await time_tools["time.now"].invoke({"timezone": "Europe/Paris"}, ctx_for(Path(".")))
    assert "Europe/Paris" in paris and ("+01:00" in paris or "+02:00" in paris)


async def test_time_convert(time_tools: dict[str, Tool]) -> None:
    convert = time_tools["time.convert"]
    out = await convert.invoke(
        {"time": "2025-03-01T14:30", "from_tz": "Europe/Paris", "to_tz": "America/New_York"},
        ctx_for(Path(".")),
    )
    assert out == (
        "2025-03-01T14:30:00+01:00 (Saturday, Europe/Paris, CET) is "
        "2025-03-01T08:30:00-05:00 (Saturday, America/New_York, EST)"
    )
    summer = await convert.invoke(
        {"time": "2025-07-01 12:00", "from_tz": "UTC", "to_tz": "Europe/Paris"}, ctx_for(Path("."))
    )
    assert summer.endswith("2025-07-01T14:00:00+02:00 (Tuesday, Europe/Paris, CEST)")
    clock = await convert.invoke(
        {"time": "9:15 pm", "from_tz": "Asia/Tokyo", "to_tz": "UTC"}, ctx_for(Path("."))
    )
    assert "T21:15:00+09:00" in clock and "T12:15:00+00:00" in clock


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"time": "2025-03-01T14:30", "from_tz": "Mars/Olympus", "to_tz": "UTC"},
            "unknown time zone 'Mars/Olympus'",
        ),
        (
            {"time": "2025-03-01T14:30", "from_tz": "UTC", "to_tz": "../../etc/passwd"},
            "unknown time zone",
        ),
        ({"time": "tomorrowish", "from_tz": "UTC", "to_tz": "UTC"}, "bad time 'tomorrowish'"),
        ({"time": "25:00", "from_tz": "UTC", "to_tz": "UTC"}, "bad time '25:00'"),
    ],
)
async def test_time_refusals(
    time_tools: dict[str, Tool], args: dict[str, str], message: str
) -> None:
    with pytest.raises(ToolError, match=message.replace("(", r"\(")):
        await time_tools["time.convert"].invoke(args, ctx_for(Path(".")))


async def test_time_now_bad_zone(time_tools: dict[str, Tool]) -> None:
    with pytest.raises(ToolError, match="unknown time zone 'Nowhere/City'"):
        await time_tools["time.now"].invoke({"timezone": "Nowhere/City"}, ctx_for(Path(".")))
