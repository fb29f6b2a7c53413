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
        # Not just any hits: on a busy machine a search for "cr" or "cre" may answer while
        # the keys are still being typed; the list shows the writer once "creat" has.
        await wait_for(pilot, lambda: [s.id for s in screen.shown] == [writer])
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


async def test_the_browser_lists_this_workspaces_sessions_and_warns_before_crossing(
    tui_workspace: Path, db_url: str, tmp_path: Path
) -> None:
    from screens.sessions import ConfirmOtherWorkspace

    other = tmp_path / "other"
    other.mkdir()
    (other / "workbench.yaml").write_text(
        "models: {default: test}\nagents:\n  plain: {instructions: Answer.}\n"
    )
    mine = await record(tui_workspace, db_url, "plain", "here, in this workspace")
    theirs = await record(other, db_url, "plain", "over there")
    app = real_app(tui_workspace, db_url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_engine(pilot)
        await pilot.press("f7")
        await wait_for(
            pilot,
            lambda: type(app.screen).__name__ == "SessionsScreen" and app.screen.sessions,  # type: ignore[attr-defined]
        )
        screen: Any = app.screen
        assert [s.id for s in screen.shown] == [mine]
        table = screen.query_one("DataTable")
        assert "workspace" not in [str(c.label) for c in table.columns.values()]
        await pilot.press("a")  # every workspace, with a workspace column
        await wait_for(pilot, lambda: len(screen.shown) == 2)
        assert [str(c.label) for c in table.columns.values()][3] == "workspace"
        assert str(table.get_row(theirs)[3]) == "other"
        assert str(table.get_row(mine)[3]) == "ws"
        table.move_cursor(row=[s.id for s in screen.shown].index(theirs))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmOtherWorkspace))
        assert str(other) in " ".join(str(w.render()) for w in app.screen.query("Static"))
        await pilot.press("n")  # back: nothing opened
        await pilot.pause(0.1)
        assert app.screen is screen and app.session_id is None
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmOtherWorkspace))
        await pilot.press("y")
        await wait_for(pilot, lambda: app.session_id == theirs)
        # One of this workspace's opens without a question.
        await pilot.press("f7")
        await wait_for(
            pilot,
            lambda: type(app.screen).__name__ == "SessionsScreen" and app.screen.sessions,  # type: ignore[attr-defined]
        )
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.session_id == mine)
