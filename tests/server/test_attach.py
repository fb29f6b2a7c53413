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
        # a plain answer, streamed from the server into the chat (the app opens on the
        # workspace's workflow: say whom to talk to)
        await wait_for(pilot, lambda: app.view is not None and app.view.chat.choices)
        app.choose_target("agent", "chat")
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


async def test_search_and_fork_from_the_tui_over_attach(make_server: MakeServer) -> None:
    """The sessions screen searches the server's store and the replay view forks on the
    server: both work over attach as they do on a local engine."""
    from screens.replay import ReplayScreen

    srv = make_server(token=TOKEN)
    async with await RemoteEngine.connect(srv.url, TOKEN) as remote:
        story = await remote.start_run("chat", "tell me about herons")
        await story.wait()
        other = await remote.start_run("chat", "something else")
        await other.wait()
    app = WorkbenchApp(
        engine_factory=lambda: RemoteEngine.open(srv.url, TOKEN),
        replay=story.session_id,
        replay_speed=float("inf"),
        animate=False,
        watch_workspace=False,
        warm_up=False,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen))
        replay: Any = app.screen
        await wait_for(
            pilot, lambda: replay.timeline.total and replay.position == replay.timeline.total
        )
        await pilot.press("f")
        await wait_for(pilot, lambda: app.session_id not in (None, story.session_id))
        assert not isinstance(app.screen, ReplayScreen)
        engine = app.engine
        assert isinstance(engine, RemoteEngine)
        forked = next(s for s in await engine.asessions() if s.id == app.session_id)
        assert forked.forked_from == story.session_id
        await pilot.press("f7")
        await wait_for(
            pilot,
            lambda: type(app.screen).__name__ == "SessionsScreen" and app.screen.sessions,  # type: ignore[attr-defined]
        )
        screen: Any = app.screen
        assert len(screen.shown) == 3
        await pilot.press("slash", *"hero")  # as typed so far
        await wait_for(pilot, lambda: screen.hits)
        assert {s.id for s in screen.shown} == {story.session_id, forked.id}
        assert "herons" in screen.hits[story.session_id].text
