"""The MCP screen (F9) on a real engine with real MCP server processes, and what the chat
shows of MCP: a server that could not start, progress on the running call, a server asking
for input through the approvals queue."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Static

from screens.mcp import McpScreen, PromptArguments, resource_block
from screens.state import SessionState, ToolItem
from tests.tui.conftest import real_app, wait_for
from workbench.events import (
    ApprovalRequired,
    ApprovalResolved,
    MessageCompleted,
    RunStarted,
    ToolCall,
    ToolCallRequest,
    ToolProgress,
    ToolResult,
    ToolUnavailable,
)

TOY = Path(__file__).parent.parent / "support" / "mcp_servers" / "toy.py"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def mcp_workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    py, toy = json.dumps(sys.executable), json.dumps(str(TOY))
    (root / "workbench.yaml").write_text(
        textwrap.dedent(
            f"""\
            mcp:
              toy: {{ command: {py}, args: [{toy}] }}
              broken: {{ command: {py}, args: [{toy}, --exit-at-start, "\\x1b]0;pwned\\x07ERROR: no token"] }}
            agents:
              helper: {{ model: test, tools: [toy.echo] }}
            """
        )
    )
    return root


def cell_texts(table: DataTable[Any]) -> list[list[str]]:
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_the_app_starts_every_mcp_server_when_the_engine_opens(
    mcp_workspace: Path, db_url: str
) -> None:
    """The app's warm-up is the engine's (``Engine.warm_up``): the MCP servers start in the
    background, all at once, as soon as the workspace is open, before any prompt or F9."""
    app = real_app(mcp_workspace, db_url, warm_up=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        engine: Any = app.engine

        def states() -> dict[str, str]:
            return {s.name: s.state for s in engine.toolkit_statuses() if s.kind == "mcp"}

        await wait_for(pilot, lambda: states() == {"toy": "ready", "broken": "failed"}, 30)
        assert app.session_id is None  # nothing was sent: the warm-up started them


async def test_mcp_screen_shows_states_and_attaches_a_resource(
    mcp_workspace: Path, db_url: str
) -> None:
    app = real_app(mcp_workspace, db_url)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        app.engine.warm_up(litellm=False)  # type: ignore[union-attr]  # what the app does at open
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, McpScreen))
        screen = app.screen
        assert isinstance(screen, McpScreen)
        servers = screen.query_one("#mcp-servers", DataTable)

        def states() -> dict[str, str]:
            return {row[0]: row[1] for row in cell_texts(servers)}

        await wait_for(pilot, lambda: states().get("toy") == "✓ ready", timeout=60)
        await wait_for(pilot, lambda: states().get("broken") == "✗ failed", timeout=60)
        # The ready server's details, its resources, prompts and tools.
        items = screen.query_one("#mcp-items", DataTable)
        # Tools show at once; resources and prompts once a worker has listed them.
        await wait_for(pilot, lambda: "resource" in [r[0] for r in cell_texts(items)], timeout=30)
        rows = cell_texts(items)
        assert rows[0][:2] == ["resource", "toy://readme"]
        assert rows[1][:2] == ["prompt", "review"]
        # Each tool with the first line of what the server says it does.
        assert ["tool", "toy.echo", "Answer the text back."] in rows
        detail = str(screen.query_one("#mcp-detail", Static).render())
        assert "Call toy.echo once before anything else" in detail
        assert "not offered: batch_job" in detail
        # Another server's change of state leaves the person's place in these items.
        items.focus()
        await pilot.press("down", "down")
        assert items.cursor_row == 2
        screen.post_message(McpScreen.StatusChanged(screen.statuses["broken"]))
        await pilot.pause()
        assert items.cursor_row == 2 and cell_texts(items)[0][0] == "resource"
        servers.focus()
        await pilot.pause()
        # The failed one says why, with its stderr.
        await pilot.press("down")
        await pilot.pause()
        detail = str(screen.query_one("#mcp-detail", Static).render())
        assert "failed to start" in detail and "ERROR: no token" in detail
        # What the server wrote to its stderr is shown as text, never sent to the terminal.
        assert "\x1b" not in detail and "\\x1b]0;pwned\\x07ERROR" in detail
        # Back to toy, tab to its items, enter on the resource: it goes into the prompt.
        await pilot.press("up", "tab", "enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, McpScreen), timeout=20)
        assert app.prompt.text == resource_block("toy://readme", "# Toy\nA server for tests.")
        assert app.prompt.has_focus


async def test_a_prompt_with_arguments_goes_into_the_prompt(
    mcp_workspace: Path, db_url: str
) -> None:
    app = real_app(mcp_workspace, db_url)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        await pilot.press("f9")
        await wait_for(pilot, lambda: isinstance(app.screen, McpScreen))
        screen = app.screen
        assert isinstance(screen, McpScreen)
        # Not started yet: r starts it.
        servers = screen.query_one("#mcp-servers", DataTable)
        assert cell_texts(servers)[0][1] == "· idle"
        await pilot.press("r")
        items = screen.query_one("#mcp-items", DataTable)
        await wait_for(pilot, lambda: "prompt" in [r[0] for r in cell_texts(items)], timeout=60)
        await pilot.press("tab", "down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptArguments))
        await pilot.press(*"the <diff>", "enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, (McpScreen, PromptArguments)))
        assert app.prompt.text == "Please review the <diff> carefully.\n"


def _ev(cls: Any, **kw: Any) -> Any:
    base = {"session_id": "s1", "run_id": "r1", "source": "helper"}
    return cls(**{**base, **kw})


def test_state_shows_progress_unavailable_and_input_requests() -> None:
    """Folded events: a call's progress shows on it, an unavailable server is a note, an
    input request is a pending approval of kind input that leaves no phantom tool call."""
    state = SessionState()
    state.apply(_ev(RunStarted, target_kind="agent", target="helper", input="go"))
    state.apply(
        _ev(
            ToolUnavailable,
            toolkit="broken",
            patterns=["broken.*"],
            error="MCP server 'broken' failed to start: Connection closed\nstderr...",
        )
    )
    state.apply(
        _ev(
            MessageCompleted,
            message_id="m1",
            role="assistant",
            content="",
            tool_calls=[ToolCallRequest(id="call_t2_0", tool="toy.ask_name", arguments={})],
        )
    )
    state.apply(_ev(ToolCall, call_id="call_t2_0", tool="toy.ask_name", arguments={}))
    state.apply(
        _ev(
            ToolProgress,
            call_id="call_t2_0",
            tool="toy.ask_name",
            progress=3,
            total=10,
            message="indexing <src>",
        )
    )
    tools = [i for i in state.items if isinstance(i, ToolItem)]
    assert len(tools) == 1 and tools[0].progress == "3/10 indexing <src>"
    assert any(
        "broken is unavailable; running without broken.*" in getattr(i, "text", "")
        for i in state.items
    )
    state.apply(
        _ev(
            ApprovalRequired,
            call_id="call_t2_0#input1",
            tool="toy.ask_name",
            arguments={"name": None},
            reason="Who is asking?",
            kind="input",
            form={"type": "object", "properties": {"name": {"type": "string"}}},
        )
    )
    # Keyed by (run_id, call_id) like every call since main's issue 13.
    approval = state.approvals[("r1", "call_t2_0#input1")]
    assert approval.kind == "input" and approval.form is not None
    assert state.pending_approvals() == [approval]
    assert tools[0].progress == "waits for your input (approvals)"
    assert tools[0].asked is None and tools[0].status == "running"  # the call still runs
    assert len([i for i in state.items if isinstance(i, ToolItem)]) == 1
    state.apply(
        _ev(
            ApprovalResolved,
            call_id="call_t2_0#input1",
            tool="toy.ask_name",
            decision="allow",
            edited_arguments={"name": "Ann"},
        )
    )
    assert approval.status == "allowed" and tools[0].progress is None
    state.apply(_ev(ToolResult, call_id="call_t2_0", tool="toy.ask_name", output="hello Ann"))
    assert tools[0].status == "done" and tools[0].progress is None
    assert len([i for i in state.items if isinstance(i, ToolItem)]) == 1
