"""The sessions screen's full-text search and forking from the replay view (pilot tests on
the real engine with the offline ``test`` model)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from screens.replay import SPEEDS, ReplayScreen, speed_index
from tests.tui.conftest import real_app, wait_engine, wait_for
from workbench.approvals import Resolution
from workbench.engine import Engine
from workbench.events import MessageCompleted

SIZE = (120, 40)


async def record(root: Path, db: str, agent: str, prompt: str) -> str:
    """One run in a new session, tool calls allowed; returns the session id."""
    async with Engine.open(root, db) as engine:
        engine.broker.auto_decider = lambda p: Resolution("allow", decided_by="test")
        outcome = await engine.run(agent, prompt)
        run = engine.store.get_run(outcome.run_id)
        assert outcome.ok and run is not None
        return run.session_id


async def test_the_search_box_finds_sessions_by_what_their_tools_returned(
    tui_workspace: Path, db_url: str
) -> None:
    writer = await record(tui_workspace, db_url, "helper", "save a note")
    await record(tui_workspace, db_url, "plain", "say hello")
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await pilot.press("f7")
        await wait_for(
            pilot,
            lambda: type(app.screen).__name__ == "SessionsScreen" and app.screen.sessions,  # type: ignore[attr-defined]
        )
        screen: Any = app.screen
        assert len(screen.shown) == 2
        await pilot.press("slash", *"creat")  # as typed so far: the tool said "created test"
        await wait_for(pilot, lambda: screen.hits)
        assert [s.id for s in screen.shown] == [writer]  # not in its title: in a tool result
        hit = screen.hits[writer]
        assert hit.type == "tool.result" and "created test" in hit.text
        title = screen.query_one("DataTable").get_row(writer)[2]
        assert "save a note" in str(title) and "created test" in str(title)
        await pilot.press(*"zzz")
        await wait_for(pilot, lambda: not screen.shown)


async def test_f_in_the_replay_forks_at_the_last_message_and_opens_the_fork(
    tui_workspace: Path, db_url: str
) -> None:
    sid = await record(tui_workspace, db_url, "plain", "tell me a story")
    app = real_app(tui_workspace, db_url, replay=sid, replay_speed=math.inf)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen))
        replay: Any = app.screen
        await wait_for(pilot, lambda: replay.timeline.speed == math.inf)  # --speed inf
        await wait_for(
            pilot, lambda: replay.timeline.total and replay.position == replay.timeline.total
        )
        await pilot.press("f")
        await wait_for(pilot, lambda: app.session_id not in (None, sid))
        assert not isinstance(app.screen, ReplayScreen)
        assert app.engine is not None
        fork = app.engine.store.get_session(app.session_id)  # type: ignore[attr-defined]
        events = app.engine.session_events(sid)
        answer = [e for e in events if isinstance(e, MessageCompleted)][-1]
        assert fork.forked_from == sid and fork.forked_from_seq == answer.seq
        assert fork.title == "fork of tell me a story"
        await wait_for(pilot, lambda: app.state.top_runs())
        assert [r.input for r in app.state.top_runs()] == ["tell me a story"]


def test_speed_index_snaps_to_the_replay_speeds() -> None:
    assert [SPEEDS[speed_index(s)] for s in (1, 1.3, 3, 8, 50, 0, math.inf)] == [
        1.0,
        1.0,
        2.0,
        10.0,
        10.0,
        math.inf,
        math.inf,
    ]
