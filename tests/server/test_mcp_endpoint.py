"""The MCP endpoint, driven by the official ``mcp`` client over streamable HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.server.conftest import MakeServer
from workbench.server import ServerThread

TOKEN = "mcp-token"


@pytest.fixture
def srv(make_server: MakeServer) -> ServerThread:
    return make_server(token=TOKEN)


@asynccontextmanager
async def client_for(srv: ServerThread, token: str = TOKEN) -> AsyncIterator[Client]:
    async with (
        create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http,
        Client(streamable_http_client(srv.url + "/mcp", http_client=http)) as client,
    ):
        yield client


async def test_agents_teams_and_workflows_are_tools(srv: ServerThread) -> None:
    async with client_for(srv) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert set(tools) == {"chat", "helper", "sleeper", "duo", "flow"}
        assert tools["chat"].description == "Says back what it was told."
        assert tools["flow"].description == "Two chats in a row."
        assert tools["chat"].input_schema["required"] == ["input"]

        result = await client.call_tool("chat", {"input": "hello over mcp"})
        assert not result.is_error
        assert result.content[0].text == "[test model] You said: hello over mcp"  # type: ignore[union-attr]
        data = result.structured_content
        assert data["status"] == "completed" and data["run_id"].startswith("r_")

        # the same session continues
        again = await client.call_tool("flow", {"input": "next", "session_id": data["session_id"]})
        assert again.structured_content["session_id"] == data["session_id"]
        assert again.content[0].text.endswith("You said: next")  # type: ignore[union-attr]

        bad = await client.call_tool("nobody", {"input": "x"})
        assert bad.is_error and "no agent, team or workflow" in bad.content[0].text  # type: ignore[union-attr]


async def test_mcp_needs_the_token(srv: ServerThread) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(
            srv.url + "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
    assert r.status_code == 401
    with pytest.raises(Exception):  # noqa: B017 - whatever the SDK wraps the 401 in
        async with client_for(srv, "wrong") as client:
            await client.list_tools()


async def test_serverinfo_names_workbench_and_its_version(srv: ServerThread) -> None:
    from importlib.metadata import version

    async with client_for(srv) as client:
        info = client.server_info
        assert info is not None
        assert (info.name, info.version) == ("workbench", version("workbench-agents"))


async def _settled(srv: ServerThread) -> list[str]:
    """Statuses of the server's runs once none runs or waits; nothing pending either."""
    import asyncio

    async with httpx.AsyncClient(
        base_url=srv.url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as c:
        for _ in range(300):
            runs = [
                r
                for s in (await c.get("/api/sessions")).json()
                for r in (await c.get(f"/api/sessions/{s['id']}")).json()["runs"]
            ]
            if runs and all(r["status"] not in ("running", "waiting") for r in runs):
                assert (await c.get("/api/approvals")).json() == []
                return [r["status"] for r in runs]
            await asyncio.sleep(0.05)
    raise AssertionError(f"runs still live: {runs}")


async def test_a_client_that_gives_up_on_a_waiting_call_cancels_its_run(srv: ServerThread) -> None:
    with pytest.raises(Exception):  # noqa: B017 - the SDK's timeout error, however wrapped
        async with client_for(srv) as client:
            await client.call_tool("helper", {"input": "count"}, read_timeout_seconds=1.0)
    assert await _settled(srv) == ["cancelled"]


async def test_the_timeout_argument_ends_a_run_that_waits(srv: ServerThread) -> None:
    async with client_for(srv) as client:
        result = await client.call_tool("helper", {"input": "count", "timeout": 0.5})
        assert result.is_error
        assert "took longer than its timeout (0.5 s)" in result.content[0].text  # type: ignore[union-attr]
        assert result.structured_content["status"] == "cancelled"
        bad = await client.call_tool("chat", {"input": "x", "timeout": -1})
        assert bad.is_error and "positive number" in bad.content[0].text  # type: ignore[union-attr]
    assert await _settled(srv) == ["cancelled"]
