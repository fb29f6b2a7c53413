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
