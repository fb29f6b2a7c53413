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


async def test_an_attached_tui_shows_what_other_clients_do_as_it_happens(
    make_server: MakeServer,
) -> None:
    """Another client (REST) starts a run in the session the TUI has open, and a run in a
    new session that waits for approval: the chat shows the first as it goes, the queue
    the second's question; deciding it in the TUI finishes it on the server, and nothing
    the TUI asks of the server blocks its event loop."""
    import httpx

    srv = make_server(token=TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=srv.url, headers=auth, timeout=30) as rest:
        first = (await rest.post("/api/runs", json={"target": "chat", "input": "one"})).json()
        sid = first["session_id"]
        for _ in range(200):
            if (await rest.get(f"/api/runs/{first['run_id']}")).json()["status"] == "completed":
                break
            await asyncio.sleep(0.02)
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

            def blocking(*args: Any, **kwargs: Any) -> Any:
                raise AssertionError("the TUI made a blocking request to the server")

            engine._sync.send = blocking  # type: ignore[method-assign]
            await pilot.press("f7")  # the sessions screen lists the server's sessions
            await wait_for(pilot, lambda: getattr(app.screen, "sessions", None))
            await pilot.press("escape")
            app.open_session(sid)
            await wait_for(pilot, lambda: app.session_id == sid and len(app.state.runs) == 1)

            # a run started elsewhere in the open session shows as it goes
            other = (
                await rest.post(
                    "/api/runs",
                    json={"target": "chat", "input": "from elsewhere", "session_id": sid},
                )
            ).json()
            await wait_for(
                pilot,
                lambda: (
                    other["run_id"] in app.state.runs
                    and app.state.runs[other["run_id"]].status == "completed"
                ),
            )
            said = [
                (type(i).__name__, i.text)  # type: ignore[attr-defined]
                for i in app.state.items
                if getattr(i, "run_id", "") == other["run_id"] and hasattr(i, "text")
            ]
            assert said == [
                ("UserItem", "from elsewhere"),
                ("AssistantItem", "[test model] You said: from elsewhere"),
            ]

            # a question asked in the open session, decided with y: it stays listed, decided
            here = (
                await rest.post(
                    "/api/runs", json={"target": "helper", "input": "count", "session_id": sid}
                )
            ).json()
            await wait_for(pilot, lambda: app.state.pending_approvals())
            await pilot.press("f5")
            await pilot.pause()
            await pilot.press("y")
            await wait_for(
                pilot,
                lambda: (
                    here["run_id"] in app.state.runs
                    and app.state.runs[here["run_id"]].status == "completed"
                ),
            )
            await pilot.press("f2")

            # a run in another session asks: its question joins the queue at once
            asks = (
                await rest.post("/api/runs", json={"target": "helper", "input": "count"})
            ).json()
            assert asks["session_id"] != sid
            await wait_for(pilot, lambda: app.status.pending == 1)
            await pilot.press("f5")
            pane = app.view.approvals  # type: ignore[union-attr]
            # the waiting call is the one highlighted, not the one decided before it
            await wait_for(pilot, lambda: pane.highlighted is not None)
            shown = pane.highlighted
            assert shown is not None
            assert (shown.tool, shown.session_id, shown.run_id) == (
                "tools:word_count",
                asks["session_id"],
                asks["run_id"],
            )
            await pilot.press("y")
            for _ in range(300):
                run = (await rest.get(f"/api/runs/{asks['run_id']}")).json()
                if run["status"] == "completed":
                    break
                await asyncio.sleep(0.02)
            assert run["status"] == "completed"
            await wait_for(pilot, lambda: app.status.pending == 0)
            events = await engine.asession_events(asks["session_id"])
            resolved = [e for e in events if e.type == "approval.resolved"]
            assert [(e.decision, e.decided_by) for e in resolved] == [("allow", "user")]  # type: ignore[attr-defined]


async def test_the_remote_engine_lists_one_workspaces_sessions(make_server: MakeServer) -> None:
    """The sessions screen of an attached TUI shows its workspace's sessions: the server
    filters them (a store shared by several workspaces), page by page like a local engine."""
    srv = make_server(token=TOKEN)
    store = srv.engine.store
    root = str(srv.engine.root)
    mine = [store.create_session(title=f"mine {i}", workspace=root) for i in range(3)]
    for i in range(4):
        store.create_session(title=f"elsewhere {i}", workspace="/somewhere/else")
    async with await RemoteEngine.connect(srv.url, TOKEN) as remote:
        listed = await remote.asessions(workspace=root)
        assert {s.id for s in listed} == {s.id for s in mine}
        page = await remote.asessions(limit=2, offset=1, workspace=root)
        assert [s.id for s in page] == [s.id for s in listed[1:3]]
        every = await remote.asessions(limit=100)
        assert len(every) == 7
        assert [s.id for s in await asyncio.to_thread(remote.sessions, workspace=root)] == [
            s.id for s in listed
        ]
