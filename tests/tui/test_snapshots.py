"""Snapshot tests: every screen and pane at 120x40 and 80x24, in the states that matter.

Deterministic by construction: a scripted engine (no model, no clock: fixed timestamps in
the events), spinners and cursor blink off, times printed in UTC. Update the SVGs with
``pytest tests/tui --snapshot-update`` and look at them before committing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from textual.pilot import Pilot

from screens.app import WorkbenchApp
from screens.replay import ReplayScreen
from tests.tui.conftest import wait_for
from tests.tui.fakes import FakeEngine, Script, chat_session, team_session, workflow_session

SIZES = [pytest.param((120, 40), id="120x40"), pytest.param((80, 24), id="80x24")]

Snap = Callable[..., bool]


def fake_engine(**kw: Any) -> FakeEngine:
    from workbench.approvals import ApprovalPolicy

    engine = FakeEngine(**kw)
    engine.policy = ApprovalPolicy(default="ask")
    return engine


def app_with(engine: FakeEngine | None = None) -> WorkbenchApp:
    """The app on a scripted engine (or one that never finishes loading)."""
    if engine is None:
        gate = threading.Event()

        def never() -> Any:
            gate.wait(2)
            raise RuntimeError("the test is over")

        return WorkbenchApp(
            engine_factory=never, animate=False, watch_workspace=False, warm_up=False
        )
    return WorkbenchApp(
        engine_factory=lambda: engine, animate=False, watch_workspace=False, warm_up=False
    )


def feeding(script: Script | None, *keys: str) -> Callable[[Pilot[Any]], Any]:
    """run_before: wait for the engine, feed the script's events, press keys."""

    async def run_before(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, WorkbenchApp)
        await wait_for(pilot, lambda: app.engine is not None)
        if script is not None:
            app.feed(script.events)
        await pilot.pause(0.2)
        for key in keys:
            await pilot.press(key)
            await pilot.pause(0.1)
        await settle(pilot)

    return run_before


async def settle(pilot: Pilot[Any]) -> None:
    """Until no worker runs and something has focus, then a moment more."""
    app = pilot.app
    waiting = {"approval-rules", "delete-session", "engine", "warm-up"}
    for _ in range(100):
        busy = [w for w in app.workers if w.is_running and w.group not in waiting]
        if not busy and app.screen.focused is not None:
            break
        await pilot.pause(0.02)
    # Toasts time out by the wall clock: a slow run would lose them. The pilot tests
    # check notifications; snapshots show the panes.
    app.clear_notifications()
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", SIZES)
class TestChat:
    def test_loading(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        async def typed(pilot: Pilot[Any]) -> None:
            await pilot.press(*"typed before the engine is ready", "enter")
            await pilot.pause(0.1)

        assert snap_compare(app_with(None), terminal_size=size, run_before=typed)

    def test_empty(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        assert snap_compare(app_with(fake_engine()), terminal_size=size, run_before=feeding(None))

    def test_streaming(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        app = app_with(fake_engine())
        assert snap_compare(
            app, terminal_size=size, run_before=feeding(chat_session(streaming=True))
        )

    def test_done_with_tool_block_open(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        async def run_before(pilot: Pilot[Any]) -> None:
            await feeding(chat_session())(pilot)
            app = pilot.app
            assert isinstance(app, WorkbenchApp)
            from screens.transcript import ToolBlock

            block = list(app.query(ToolBlock))[1]
            block.collapsed = False
            await settle(pilot)

        assert snap_compare(app_with(fake_engine()), terminal_size=size, run_before=run_before)

    def test_failed_run(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        app = app_with(fake_engine())
        assert snap_compare(app, terminal_size=size, run_before=feeding(chat_session(failed=True)))


@pytest.mark.parametrize("size", SIZES)
class TestApprovals:
    def test_pending(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        app = app_with(fake_engine())
        assert snap_compare(
            app, terminal_size=size, run_before=feeding(chat_session(pending=True), "f5")
        )

    def test_shell_parts(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        app = app_with(fake_engine())
        assert snap_compare(app, terminal_size=size, run_before=feeding(workflow_session(), "f5"))

    def test_allow_always_shows_the_rules(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        app = app_with(fake_engine())
        assert snap_compare(
            app, terminal_size=size, run_before=feeding(chat_session(pending=True), "f5", "a")
        )

    def test_deny_note(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        app = app_with(fake_engine())
        assert snap_compare(
            app, terminal_size=size, run_before=feeding(chat_session(pending=True), "f5", "n")
        )

    def test_edit_arguments(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        app = app_with(fake_engine())
        assert snap_compare(
            app, terminal_size=size, run_before=feeding(chat_session(pending=True), "f5", "e")
        )


@pytest.mark.parametrize("size", SIZES)
class TestTeam:
    def test_empty(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        assert snap_compare(
            app_with(fake_engine()), terminal_size=size, run_before=feeding(None, "f3")
        )

    def test_members_streaming(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        app = app_with(fake_engine())
        assert snap_compare(
            app, terminal_size=size, run_before=feeding(team_session(members=4), "f3")
        )


@pytest.mark.parametrize("size", SIZES)
class TestGraph:
    def test_mid_run(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        app = app_with(fake_engine())
        assert snap_compare(app, terminal_size=size, run_before=feeding(workflow_session(), "f4"))

    def test_failed_in_a_loop(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        app = app_with(fake_engine())
        keys = ("f4", "down", "down", "down", "down", "down")
        assert snap_compare(
            app, terminal_size=size, run_before=feeding(workflow_session(midway=False), *keys)
        )

    def test_node_transcript(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        app = app_with(fake_engine())
        assert snap_compare(
            app, terminal_size=size, run_before=feeding(workflow_session(), "f4", "enter")
        )


@pytest.mark.parametrize("size", SIZES)
class TestUsage:
    def test_per_agent(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        app = app_with(fake_engine())
        assert snap_compare(
            app, terminal_size=size, run_before=feeding(workflow_session(midway=False), "f6")
        )


@pytest.mark.parametrize("size", SIZES)
class TestSessions:
    def test_list(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        engine = fake_engine(
            sessions={
                "s_chat": chat_session(),
                "s_team": team_session(),
                "s_flow": workflow_session(),
            }
        )
        assert snap_compare(app_with(engine), terminal_size=size, run_before=feeding(None, "f7"))

    def test_confirm_delete(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        engine = fake_engine(sessions={"s_chat": chat_session(), "s_team": team_session()})
        assert snap_compare(
            app_with(engine), terminal_size=size, run_before=feeding(None, "f7", "d")
        )


@pytest.mark.parametrize("size", SIZES)
class TestReplay:
    def test_at_the_end(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        engine = fake_engine(sessions={"s_demo": chat_session()})

        async def run_before(pilot: Pilot[Any]) -> None:
            await feeding(None)(pilot)
            app = pilot.app
            assert isinstance(app, WorkbenchApp) and app.engine is not None
            screen = ReplayScreen(app.engine, "s_demo", autoplay=False)
            await app.push_screen(screen)
            await wait_for(pilot, lambda: screen.timeline.total > 0)
            await pilot.press("4")
            await wait_for(
                pilot, lambda: screen.position == screen.timeline.total and not screen.timeline.busy
            )
            await pilot.pause(0.3)

        assert snap_compare(app_with(engine), terminal_size=size, run_before=run_before)

    def test_stepping(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        engine = fake_engine(sessions={"s_demo": team_session(finished=True)})

        async def run_before(pilot: Pilot[Any]) -> None:
            await feeding(None)(pilot)
            app = pilot.app
            assert isinstance(app, WorkbenchApp) and app.engine is not None
            screen = ReplayScreen(app.engine, "s_demo", autoplay=False)
            await app.push_screen(screen)
            await wait_for(pilot, lambda: screen.timeline.total > 0)
            for _ in range(12):
                await pilot.press("full_stop")
            await pilot.press("f3")
            await settle(pilot)

        assert snap_compare(app_with(engine), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
class TestHelp:
    def test_keys(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        assert snap_compare(
            app_with(fake_engine()), terminal_size=size, run_before=feeding(None, "f1")
        )

    def test_light_theme(self, snap_compare: Snap, size: tuple[int, int]) -> None:
        app = app_with(fake_engine())
        assert snap_compare(app, terminal_size=size, run_before=feeding(chat_session(), "f8"))
