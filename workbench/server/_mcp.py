"""The MCP endpoint (streamable HTTP at ``/mcp``): each agent, team and workflow as a tool.

A tool call starts a run and answers with its output once it ends (a tool call that needs
approval waits for a decision from any face, as every run does). The transport is
stateless, so any server process of a deployment can answer any request. A call whose
client goes away cancels its run, and so does its ``timeout`` argument (seconds): nothing is
left waiting for an answer nobody reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from workbench.runtime import RunError
from workbench.tools import ToolNames

from ._config import ServerConfig, is_loopback, workbench_version

if TYPE_CHECKING:
    from workbench.engine import Engine

__all__ = ["McpEndpoint"]

_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "input": {"type": "string", "description": "The prompt or task."},
        "session_id": {
            "type": "string",
            "description": "Continue this workbench session (its earlier turns are the history).",
        },
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Seconds the run may take, approvals included; it is cancelled after.",
        },
    },
    "required": ["input"],
    "additionalProperties": False,
}

_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "output": {"type": "string"},
        "status": {"type": "string", "enum": ["completed", "failed", "cancelled"]},
        "session_id": {"type": "string"},
        "run_id": {"type": "string"},
        "error": {"type": ["string", "null"]},
    },
    "required": ["output", "status", "session_id", "run_id"],
}


class McpEndpoint:
    """The MCP server of a workbench server, and the ASGI app that serves it.

    Args:
        engine: The engine whose catalogue is offered.
        config: The server's settings (the bound address decides DNS-rebinding checks).
    """

    def __init__(self, engine: Engine, config: ServerConfig) -> None:
        self.engine = engine
        self.server: Server[Any] = Server(
            "workbench",
            version=workbench_version(),
            instructions="Each tool runs an agent, team or workflow of a workbench workspace.",
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
        )
        security = None
        if is_loopback(config.host):
            # A browser page must not reach a loopback server through DNS rebinding.
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
            )
        else:
            security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self.manager = StreamableHTTPSessionManager(
            app=self.server,
            stateless=True,
            security_settings=security,
            max_request_body_size=config.max_body_bytes,
        )
        self.app = StreamableHTTPASGIApp(self.manager)
        """The ASGI app to mount at ``/mcp``."""

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        """Serve MCP requests while inside (enter from the app's lifespan)."""
        async with self.manager.run():
            yield

    def _names(self) -> dict[str, tuple[str, str]]:
        ws = self.engine.workspace
        out: dict[str, tuple[str, str]] = {}
        for kind, names in (("agent", ws.agents), ("team", ws.teams), ("workflow", ws.workflows)):
            for name in names:
                out[ToolNames.encode(name)] = (kind, name)
        return out

    def _description(self, kind: str, name: str) -> str:
        ws = self.engine.workspace
        if kind == "agent":
            cfg = ws.agents[name]
            return cfg.description or cfg.instructions or f"The agent '{name}'."
        if kind == "team":
            team = ws.teams[name]
            return (
                team.description or f"The team '{name}' ({team.mode}): {', '.join(team.members)}."
            )
        wf = ws.workflows[name]
        return wf.description or f"The workflow '{name}'."

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        tools = [
            types.Tool(
                name=safe,
                title=f"{kind} {name}",
                description=self._description(kind, name),
                input_schema=_INPUT_SCHEMA,
                output_schema=_OUTPUT_SCHEMA,
            )
            for safe, (kind, name) in self._names().items()
        ]
        return types.ListToolsResult(tools=tools)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        found = self._names().get(params.name)
        if found is None:
            return _error(f"no agent, team or workflow named '{params.name}'")
        kind, name = found
        args = params.arguments or {}
        text = args.get("input")
        session_id = args.get("session_id")
        if not isinstance(text, str):
            return _error("'input' (a string) is required")
        if session_id is not None and not isinstance(session_id, str):
            return _error("'session_id' must be a string")
        timeout = args.get("timeout")
        if timeout is not None and (
            isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0
        ):
            return _error("'timeout' must be a positive number of seconds")
        if session_id:  # a new session's row is made by its first event
            # in a thread: a write may wait for the database's lock, never in the event loop
            await asyncio.to_thread(
                self.engine.store.create_session, session_id, "", str(self.engine.root)
            )
        try:
            handle = await self.engine.start_run(
                name,
                text,
                session_id=session_id or None,
                kind=kind,  # type: ignore[arg-type]
            )
        except RunError as exc:
            return _error(str(exc))
        try:
            done, _ = await asyncio.wait({handle.task}, timeout=timeout)
            if not done:
                self.engine.cancel(handle.run_id)
            outcome = await handle.wait()
        except BaseException:
            # the request ended without its answer (the client went away): nobody waits
            if not handle.task.done():
                self.engine.cancel(handle.run_id)
            raise
        result = {
            "output": outcome.output,
            "status": outcome.status,
            "session_id": handle.session_id,
            "run_id": handle.run_id,
            "error": outcome.error,
        }
        if outcome.ok:
            content = outcome.output
        elif outcome.status == "cancelled" and timeout is not None and not done:
            content = f"the run took longer than its timeout ({timeout:g} s) and was cancelled"
        elif outcome.status == "cancelled":
            content = "the run was cancelled"
        else:
            content = f"the run failed: {outcome.error}"
        return types.CallToolResult(
            content=[types.TextContent(text=content)],
            structured_content=result,
            is_error=not outcome.ok,
        )


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=message)], is_error=True)
