"""``workbench attach``: the TUI on a RemoteEngine, against a server in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from tests.server.conftest import MakeServer
from workbench.client import RemoteEngine

textual = pytest.importorskip("textual")

from screens.app import WorkbenchApp  # noqa: E402

TOKEN = "attach-token"


async def wait_for(pilot: Any, condition: Callable[[], Any], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out waiting for the app"
        await pilot.pause(0.02)


async def send(pilot: Any, text: str) -> None:
    app = pilot.app
    app.view.show("chat")
    await pilot.pause()
    app.prompt.focus()
    await pilot.press(*text)
    await pilot.press("enter")


async def test_the_tui_runs_and_approves_through_a_server(make_server: MakeServer) -> None:
    srv = make_server(token=TOKEN)
    app = WorkbenchApp(
        engine_factory=lambda: RemoteEngine.open(srv.url, TOKEN),
        animate=False,
        watch_workspace=False,
        warm_up=False,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.engine is not None)
        engine = app.engine
        assert isinstance(engine, RemoteEngine)
        # a plain answer, streamed from the server into the chat
        await send(pilot, "hello server")
        await wait_for(
            pilot, lambda: app.state.runs and not app.state.running() and not app._active
        )
        assert app.session_id is not None
        events = await engine.asession_events(app.session_id)
        assert events[-1].type == "run.completed"
        assert events[-1].output == "[test model] You said: hello server"  # type: ignore[union-attr]
        # a tool call that asks: decided with 'y' in the approvals pane
        app.choose_target("agent", "helper")
        await send(pilot, "count")
        await wait_for(pilot, lambda: app.state.pending_approvals())
        await pilot.press("f5")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: not app._active and not app.state.running())
        events = await engine.asession_events(app.session_id)
        resolved = [e for e in events if e.type == "approval.resolved"]
        assert [(e.decision, e.scope) for e in resolved] == [("allow", "once")]  # type: ignore[attr-defined]
        assert events[-1].type == "run.completed"
